"""Privacy amplification by Toeplitz hashing over GF(2).

Convention
----------
For an input (key) of ``n`` bits ``x`` and an output of ``m ≤ n`` bits, the seed ``s`` has
``n + m − 1`` bits and defines the ``m × n`` Toeplitz matrix

.. math:: T_{ij} = s_{\\,i - j + n - 1}, \\qquad 0 \\le i < m,\\; 0 \\le j < n,

so the first column is ``s[n−1], s[n], …, s[n+m−2]`` (top to bottom) and the first row is
``s[n−1], s[n−2], …, s[0]`` (left to right). The hash is ``y = T x`` over GF(2):

.. math:: y_i = \\bigoplus_{j} s_{i-j+n-1}\\, x_j ,

which is exactly ``numpy.convolve(s, x, mode="valid") % 2`` — the "valid" middle of the linear
convolution of the seed with the key. :func:`toeplitz_matrix` builds ``T`` explicitly (small
sizes, tests and documentation).

Mappings to other conventions (checked in ``tests/postproc/test_toeplitz.py``):

* ``randextract.ToeplitzHashing`` (default seed mode, ``M[i, j] = seed[i − j]`` with Python's
  negative indexing): ``seed_randextract = numpy.roll(s, −(n − 1))``.
* Receive Side Scaling (RSS) hash, ``y_r = ⊕_i key_{i+r} x_i`` (a Hankel matrix in the input
  order): ``RSS(key, x) = toeplitz_hash(x[::-1], key[: n + m − 1], m)``.

Security
--------
The family ``{x ↦ T_s x}`` over uniformly random seeds ``s`` is 2-universal (H. Krawczyk,
"LFSR-based hashing and authentication", CRYPTO 1994; Y. Mansour, N. Nisan, P. Tiwari, "The
computational complexity of universal hashing", STOC 1990), so by the leftover hash lemma
(R. Impagliazzo, L. Levin, M. Luby, STOC 1989; quantum side information: R. Renner, PhD thesis,
ETH Zürich 2005, Cor. 5.6.1; M. Tomamichel, C. Schaffner, A. Smith, R. Renner, IEEE TIT 57,
5524 (2011)) the output is ``ε``-close to uniform and independent of Eve when ``m`` is set by
the security certificate. The seed is public but must be uniform and independent of the key:
:func:`privacy_amplify` draws it from the OS CSPRNG. The output length is the certificate's
business, never this module's.

Algorithm
---------
``y`` is computed with real FFTs in float64 (``O((n + m) log(n + m))``), rounded, and reduced
mod 2; see :mod:`diqkd.postproc._fftconv` for the error bound and the run-time guard that make
this exact. Blocks that would need a transform longer than ``max_fft_len`` are split into tiles
(overlap-add over input blocks and output blocks), each tile an independent exact
convolution whose parities are XOR-accumulated: memory stays ``O(max_fft_len)`` whatever the
key length. Record CPU throughput reported in the literature: about 71 Mbit/s at 128 Mbit blocks
(Tang et al. 2019, see ``docs/postprocessing.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import numpy as np
from numpy.typing import NDArray

from diqkd.errors import DiqkdError
from diqkd.postproc._fftconv import (
    RESIDUAL_LIMIT,
    Backend,
    Engine,
    fast_length,
    fft_error_bound,
    make_engine,
)
from diqkd.rng import secret_bytes

__all__ = [
    "DEFAULT_MAX_FFT_LEN",
    "TilePlan",
    "ToeplitzHasher",
    "draw_seed",
    "plan_tiles",
    "privacy_amplify",
    "seed_length",
    "toeplitz_hash",
    "toeplitz_matrix",
]

#: Default longest transform (real points). 2²⁶ keeps the FFT working set near 1–2 GB (two
#: 512 MiB buffers plus FFTW's twiddles; 2.3 GB peak resident for a 10⁸-bit key) and covers
#: single-shot blocks of up to about 6.7·10⁷ input + output bits.
DEFAULT_MAX_FFT_LEN = 2**26
_MIN_MAX_FFT_LEN = 16


def _as_count(value: object, name: str) -> int:
    if isinstance(value, bool | np.bool_):
        raise DiqkdError(f"{name} must be an integer, not a bool")
    if not isinstance(value, int | np.integer):
        raise DiqkdError(f"{name} must be an integer, got {type(value).__name__}")
    return int(value)


def _as_bits(
    arr: object, name: str, length: int | None = None, *, check_values: bool = True
) -> NDArray[np.uint8]:
    """Validate a 1-D 0/1 array (uint8 or bool) and return it as uint8 without copying."""
    if not isinstance(arr, np.ndarray):
        raise DiqkdError(f"{name} must be a numpy array of 0/1 uint8, got {type(arr).__name__}")
    if arr.ndim != 1:
        raise DiqkdError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype == np.bool_:
        arr = arr.view(np.uint8)
    elif arr.dtype != np.uint8:
        raise DiqkdError(f"{name} must have dtype uint8 (or bool), got {arr.dtype}")
    if length is not None and arr.shape[0] != length:
        raise DiqkdError(f"{name} must have {length} bits, got {arr.shape[0]}")
    if check_values and arr.size and int(arr.max()) > 1:
        raise DiqkdError(f"{name} must contain only 0 and 1")
    return arr


def seed_length(input_bits: int, output_bits: int) -> int:
    """Number of seed bits for an ``output_bits × input_bits`` Toeplitz matrix: ``n + m − 1``."""
    n, m = _check_lengths(input_bits, output_bits)
    return n + m - 1


def _check_lengths(input_bits: object, output_bits: object) -> tuple[int, int]:
    n = _as_count(input_bits, "input length")
    m = _as_count(output_bits, "output_bits")
    if n <= 0:
        raise DiqkdError(f"the key to hash must have at least one bit, got {n}")
    if m <= 0:
        raise DiqkdError(
            f"output_bits must be positive, got {m}; a certificate with no key means abort"
        )
    if m > n:
        raise DiqkdError(
            f"output_bits ({m}) cannot exceed the input length ({n}): hashing cannot create "
            "entropy; take the output length from the security certificate"
        )
    return n, m


@dataclass(frozen=True, kw_only=True)
class TilePlan:
    """How an ``m × n`` Toeplitz product is cut into exact FFT convolutions.

    Attributes
    ----------
    fft_len
        Transform length ``F`` of every tile (real points).
    out_block
        Output bits per tile ``M``.
    in_block
        Input bits per tile ``L``; ``M + L − 1 ≤ F``.
    tiles
        Number of tiles ``⌈m/M⌉·⌈n/L⌉`` (1: one single convolution).
    error_bound
        A priori bound on the absolute rounding error of one tile (must be ``< 0.5``).
    """

    fft_len: int
    out_block: int
    in_block: int
    tiles: int
    error_bound: float


def plan_tiles(input_bits: int, output_bits: int, max_fft_len: int) -> TilePlan:
    """Choose the tiling for ``n = input_bits``, ``m = output_bits`` (see :class:`TilePlan`).

    One tile when ``n + m − 1 ≤ max_fft_len``; otherwise output blocks of
    ``M = min(m, max_fft_len // 2)`` and input blocks of ``L = max_fft_len − M + 1``.
    """
    n, m = _check_lengths(input_bits, output_bits)
    cap = _as_count(max_fft_len, "max_fft_len")
    if cap < _MIN_MAX_FFT_LEN:
        raise DiqkdError(f"max_fft_len must be at least {_MIN_MAX_FFT_LEN}, got {cap}")
    if n + m - 1 <= cap:
        out_block, in_block = m, n
    else:
        out_block = min(m, cap // 2)
        in_block = min(n, cap - out_block + 1)
    fft_len = fast_length(out_block + in_block - 1)
    tiles = math.ceil(m / out_block) * math.ceil(n / in_block)
    return TilePlan(
        fft_len=fft_len,
        out_block=out_block,
        in_block=in_block,
        tiles=tiles,
        error_bound=fft_error_bound(fft_len),
    )


class ToeplitzHasher:
    """Reusable Toeplitz hasher for one block shape ``m × n`` (FFT plans and buffers kept).

    Building the FFT plans costs about as much as one hash for FFTW; a protocol that amplifies
    many blocks of the same size should build one hasher and call :meth:`hash` repeatedly.
    The buffers are zeroed after every hash; :meth:`close` (or the ``with`` statement) releases
    them. Not thread-safe: use one hasher per thread.

    Parameters
    ----------
    input_bits
        Key length ``n``.
    output_bits
        Output length ``m``, ``1 ≤ m ≤ n`` (from the security certificate).
    backend
        ``"auto"`` (pyFFTW when installed, else SciPy), ``"pyfftw"`` or ``"scipy"``.
    threads
        Threads in all (default: the usable CPUs, at most 8); with two or more, the two
        forward transforms of a tile run concurrently (see
        :func:`diqkd.postproc._fftconv.make_engine`).
    max_fft_len
        Longest transform; larger products are tiled (see :func:`plan_tiles`).
    """

    def __init__(
        self,
        input_bits: int,
        output_bits: int,
        *,
        backend: Backend = "auto",
        threads: int | None = None,
        max_fft_len: int = DEFAULT_MAX_FFT_LEN,
    ) -> None:
        self._n, self._m = _check_lengths(input_bits, output_bits)
        self._plan = plan_tiles(self._n, self._m, max_fft_len)
        self._engine: Engine | None = make_engine(
            self._plan.fft_len, backend=backend, threads=threads
        )
        self._backend = self._engine.name
        self._max_residual = 0.0

    @property
    def input_bits(self) -> int:
        """Key length ``n``."""
        return self._n

    @property
    def output_bits(self) -> int:
        """Output length ``m``."""
        return self._m

    @property
    def seed_bits(self) -> int:
        """Seed length ``n + m − 1``."""
        return self._n + self._m - 1

    @property
    def plan(self) -> TilePlan:
        """The tiling in use."""
        return self._plan

    @property
    def backend(self) -> str:
        """The FFT engine in use (``"pyfftw"`` or ``"scipy"``)."""
        return self._backend

    @property
    def max_residual(self) -> float:
        """Largest distance to the nearest integer seen by the exactness guard in the last hash.

        Diagnostic (observed values are about 1e-9 or 0); the guard raises at 0.25.
        """
        return self._max_residual

    def __repr__(self) -> str:
        return (
            f"ToeplitzHasher(input_bits={self._n}, output_bits={self._m}, "
            f"backend={self._backend!r}, fft_len={self._plan.fft_len}, tiles={self._plan.tiles})"
        )

    def hash(self, bits: NDArray[np.uint8], seed_bits: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """``T(seed)·bits`` over GF(2); see the module docstring for the convention.

        Parameters
        ----------
        bits
            Key, shape (n,), uint8 (or bool) 0/1.
        seed_bits
            Seed, shape (n + m − 1,), uint8 (or bool) 0/1.

        Returns
        -------
        numpy.ndarray
            Hash, shape (m,), uint8 0/1.

        Raises
        ------
        DiqkdError
            On malformed input, after :meth:`close`, or if the run-time exactness guard trips
            (a rounding residual ``≥ 0.25``; then no output is returned).
        """
        engine = self._engine
        if engine is None:
            raise DiqkdError("this ToeplitzHasher is closed; build a new one")
        n, m = self._n, self._m
        x = _as_bits(bits, "bits", n)
        s = _as_bits(seed_bits, "seed_bits", n + m - 1)
        out = np.zeros(m, dtype=np.uint8)
        M, L = self._plan.out_block, self._plan.in_block
        self._max_residual = 0.0
        try:
            for j0 in range(0, n, L):
                lb = min(L, n - j0)
                block: NDArray[np.uint8] | None = x[j0 : j0 + lb]
                for i0 in range(0, m, M):
                    mb = min(M, m - i0)
                    start = i0 - j0 - lb + n
                    segment = s[start : start + mb + lb - 1]
                    worst = engine.convolve_parity(segment, lb - 1, out[i0 : i0 + mb], block)
                    block = None
                    self._max_residual = max(self._max_residual, worst)
                    if not worst < RESIDUAL_LIMIT:
                        out[:] = 0
                        raise DiqkdError(
                            f"Toeplitz hash not exact: an FFT rounding residual of {worst:.3g} "
                            f"(limit {RESIDUAL_LIMIT}) at transform length "
                            f"{self._plan.fft_len} with the {self._backend!r} backend; the "
                            "FFT library is misbehaving: retry with the other backend"
                        )
        finally:
            engine.wipe()
        return out

    def close(self) -> None:
        """Release the FFT buffers and plans (idempotent)."""
        if self._engine is not None:
            self._engine.wipe()
            self._engine = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def toeplitz_hash(
    bits: NDArray[np.uint8],
    seed_bits: NDArray[np.uint8],
    output_bits: int,
    *,
    backend: Backend = "auto",
    threads: int | None = None,
    max_fft_len: int = DEFAULT_MAX_FFT_LEN,
) -> NDArray[np.uint8]:
    """Toeplitz hash ``y = T(seed)·bits`` over GF(2), exact, by FFT (one-shot).

    ``T[i, j] = seed_bits[i − j + n − 1]``; equivalently
    ``y = numpy.convolve(seed_bits, bits, "valid") % 2``.

    Parameters
    ----------
    bits
        Key, shape (n,), uint8 (or bool) 0/1.
    seed_bits
        Seed, shape (n + m − 1,), uint8 (or bool) 0/1; uniform and independent of the key
        for the 2-universal guarantee.
    output_bits
        ``m``, ``1 ≤ m ≤ n``.
    backend, threads, max_fft_len
        See :class:`ToeplitzHasher` (use that class to amortise FFT planning over many calls).

    Returns
    -------
    numpy.ndarray
        Shape (m,), uint8 0/1.
    """
    n = _as_bits(bits, "bits", check_values=False).shape[0]  # values: checked by hash()
    with ToeplitzHasher(
        n, output_bits, backend=backend, threads=threads, max_fft_len=max_fft_len
    ) as hasher:
        return hasher.hash(bits, seed_bits)


def toeplitz_matrix(
    seed_bits: NDArray[np.uint8], input_bits: int, output_bits: int
) -> NDArray[np.uint8]:
    """The explicit ``m × n`` matrix ``T[i, j] = seed_bits[i − j + n − 1]`` (small sizes only).

    Returns
    -------
    numpy.ndarray
        Shape (m, n), uint8 0/1.
    """
    n, m = _check_lengths(input_bits, output_bits)
    s = _as_bits(seed_bits, "seed_bits", n + m - 1)
    idx = np.arange(m)[:, None] - np.arange(n)[None, :] + (n - 1)
    matrix: NDArray[np.uint8] = s[idx]
    return matrix


def draw_seed(input_bits: int, output_bits: int) -> NDArray[np.uint8]:
    """A uniform seed of ``n + m − 1`` bits from the OS CSPRNG (:func:`diqkd.rng.secret_bytes`)."""
    length = seed_length(input_bits, output_bits)
    raw = np.frombuffer(secret_bytes((length + 7) // 8), dtype=np.uint8)
    return np.unpackbits(raw)[:length].copy()


def privacy_amplify(
    key_bits: NDArray[np.uint8],
    output_bits: int,
    *,
    seed_bits: NDArray[np.uint8] | None = None,
    backend: Backend = "auto",
) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Compress a reconciled, verified key to ``output_bits`` secret bits (Toeplitz hashing).

    The safe recipe: Alice calls it without ``seed_bits``; a fresh seed is drawn from the OS
    CSPRNG, and she sends that seed openly (over the authenticated channel) to Bob, who calls it
    with ``seed_bits=`` the received seed. Both get the same final key.

    Parameters
    ----------
    key_bits
        The reconciled key, shape (n,), uint8 (or bool) 0/1.
    output_bits
        Final key length ``m`` from the security certificate, ``1 ≤ m ≤ n``.
    seed_bits
        The seed to use (Bob's side); ``None`` draws a fresh one (Alice's side).
    backend
        FFT engine, see :class:`ToeplitzHasher`.

    Returns
    -------
    tuple of numpy.ndarray
        ``(final_key, seed_bits)``: shapes (m,) and (n + m − 1,), uint8 0/1.

    Raises
    ------
    DiqkdError
        If ``output_bits ≤ 0`` or ``> n``, or the inputs are malformed.
    """
    n = _as_bits(key_bits, "key_bits", check_values=False).shape[0]  # values: checked later
    _check_lengths(n, output_bits)
    seed = draw_seed(n, output_bits) if seed_bits is None else seed_bits
    final = toeplitz_hash(key_bits, seed, output_bits, backend=backend)
    return final, seed
