"""Exact GF(2) middle products by floating-point FFT: engines, rounding kernel, error bound.

The Toeplitz hash of :mod:`diqkd.postproc.toeplitz` reduces to pieces of the form

.. math:: y_i = \\Big(\\sum_{j=0}^{L-1} g_{i - j + L - 1}\\, x_j\\Big) \\bmod 2,
   \\qquad 0 \\le i < M,

with ``g`` a 0/1 vector of length ``M + L − 1`` (a seed segment) and ``x`` a 0/1 vector of
length ``L`` (a key block). The integer sums are the entries ``L − 1 … L + M − 2`` of the
*cyclic* convolution of ``g`` and ``x`` of any length ``F ≥ M + L − 1`` (no index wraps
there), computed here as ``irfft(rfft(g, F) · rfft(x, F))`` in IEEE float64 and rounded to the
nearest integer, whose parity is the hash bit.

Exactness
---------
The exact sums are integers in ``[0, L]``. Rounding returns them exactly when the absolute
floating-point error is below 1/2. :func:`fft_error_bound` gives an a priori bound from
Percival's theorem for FFT-based convolution (C. Percival, "Rapid multiplication modulo the
sum and difference of highly composite numbers", Math. Comp. 72 (2003) 387–395, Theorem 5.1),
with the complex-multiplication constant ``√5·ε`` of R. Brent, C. Percival and P. Zimmermann,
"Error bounds on complex floating-point multiplication", Math. Comp. 76 (2007) 1469–1481:

.. math:: \\|z' - z\\|_\\infty < \\|g\\|_2 \\|x\\|_2
   \\big[(1+ε)^{3k} (1+\\sqrt5 ε)^{3k+1} (1+β)^{3k} - 1\\big],

for a radix-2 complex FFT of length ``2^k`` with unit roundoff ``ε = 2^{-53}`` and
precomputed roots of unity accurate to ``β``. With 0/1 inputs ``‖g‖₂‖x‖₂ ≤ F``. The bound is
proven for radix-2 complex transforms; the libraries used here (FFTW, pocketfft) run mixed-
radix real transforms, so we evaluate it for the next power of two above ``2F`` (one extra
level for the real/complex packing), take ``β = 4ε`` and multiply by a safety factor of 8.
That gives about ``2e-5`` at ``F = 2^25`` and stays below ``1/8`` up to ``F ≈ 2^37``; the
planner refuses lengths where it would not. The bound is an engineering argument for the
mixed-radix case, so every result is also checked at run time: the distance of every
computed sum to the nearest integer must be below :data:`RESIDUAL_LIMIT` (observed values
are 0 to a few ``1e-9``, also at 10⁸ input bits), otherwise :class:`~diqkd.errors.DiqkdError`
is raised rather than a wrong hash returned.

Engines
-------
``pyfftw`` (FFTW 3 through pyFFTW, in-place real transforms, plans kept for the life of the
engine) when it is importable, else ``scipy`` (:mod:`scipy.fft`, pocketfft). pyFFTW is an
optional dependency: its wheels bundle FFTW, which is GPL-2.0-or-later.
Both are wrapped by the same small interface; the buffers, which hold key-dependent data, are
zeroed by :meth:`wipe` after each hash (best effort: Python cannot promise that no copy
survives elsewhere).
"""

from __future__ import annotations

import importlib
import math
import os
import threading
from collections.abc import Callable
from typing import Any, Literal, Protocol

import numpy as np
import scipy.fft as _sfft
from numba import njit
from numpy.typing import NDArray

from diqkd.errors import DiqkdError

__all__ = [
    "RESIDUAL_LIMIT",
    "Backend",
    "Engine",
    "fast_length",
    "fft_error_bound",
    "make_engine",
    "pyfftw_available",
    "round_parity_xor",
    "round_parity_xor_numpy",
]

Backend = Literal["auto", "pyfftw", "scipy"]

#: Largest tolerated distance of a computed sum to the nearest integer. Anything above this
#: means the floating-point result can no longer be trusted to round to the exact sum.
RESIDUAL_LIMIT = 0.25

_EPS = 2.0**-53
_SAFETY = 8.0
_BOUND_LIMIT = 0.125


def fft_error_bound(fft_len: int) -> float:
    """A priori bound on the absolute error of one 0/1 cyclic convolution of length ``fft_len``.

    Percival (2003), Theorem 5.1, with Brent–Percival–Zimmermann (2007) complex products,
    evaluated for ``k = ceil(log2(2·fft_len))`` levels, ``β = 4ε``, ``‖g‖₂‖x‖₂ ≤ fft_len``,
    times a safety factor of 8 (see the module docstring for what is proven and what is not).

    Parameters
    ----------
    fft_len
        Transform length ``F`` (number of real points), ``F ≥ 1``.

    Returns
    -------
    float
        Upper bound on ``max_i |computed_i − exact_i|``; exact rounding needs ``< 0.5``.
    """
    if fft_len < 1:
        raise DiqkdError(f"FFT length must be positive, got {fft_len}")
    k = max(1, math.ceil(math.log2(2 * fft_len)))
    beta = 4.0 * _EPS
    growth = (
        math.expm1(
            3 * k * math.log1p(_EPS)
            + (3 * k + 1) * math.log1p(math.sqrt(5.0) * _EPS)
            + 3 * k * math.log1p(beta)
        )
        * _SAFETY
    )
    return float(fft_len) * growth


def fast_length(n: int) -> int:
    """Smallest 5-smooth length ``≥ n`` (fast for both FFTW and pocketfft), checked for exactness.

    Raises
    ------
    DiqkdError
        If :func:`fft_error_bound` at that length exceeds 1/8 (far beyond any key block).
    """
    length = int(_sfft.next_fast_len(int(n), real=True))
    if fft_error_bound(length) > _BOUND_LIMIT:
        raise DiqkdError(
            f"an FFT of length {length} is too long to be provably exact in float64; "
            "use a smaller max_fft_len (the hash is then computed in tiles)"
        )
    return length


@njit(cache=True, nogil=True)
def _round_parity_xor_kernel(y: NDArray[np.float64], scale: float, out: NDArray[np.uint8]) -> float:
    worst = 0.0
    for i in range(y.shape[0]):
        v = y[i] * scale
        r = np.floor(v + 0.5)
        d = abs(v - r)
        if d != d or abs(v) > 9.0e15:  # NaN or beyond exact float64 integers
            return np.inf
        if d > worst:
            worst = d
        out[i] ^= np.uint8(np.int64(r) & 1)
    return worst


def round_parity_xor(y: NDArray[np.float64], scale: float, out: NDArray[np.uint8]) -> float:
    """XOR the parity of ``round(y·scale)`` into ``out`` (in place); return the worst residual.

    Numba kernel; :func:`round_parity_xor_numpy` is the reference it must match.

    Parameters
    ----------
    y
        Float64 convolution values, shape (M,), contiguous or strided.
    scale
        Normalisation (``1/F`` for an unnormalised inverse transform, else 1).
    out
        uint8 array of shape (M,) that accumulates parities (0/1).

    Returns
    -------
    float
        ``max_i |y_i·scale − round(y_i·scale)|``, or ``inf`` if a value is NaN or too large to
        be an exact integer.
    """
    return float(_round_parity_xor_kernel(y, float(scale), out))


def round_parity_xor_numpy(y: NDArray[np.float64], scale: float, out: NDArray[np.uint8]) -> float:
    """Pure-numpy reference of :func:`round_parity_xor` (same arguments, same result)."""
    v = y * scale
    if not np.all(np.isfinite(v)) or (v.size and float(np.max(np.abs(v))) > 9.0e15):
        return math.inf
    r = np.floor(v + 0.5)
    worst = float(np.max(np.abs(v - r))) if v.size else 0.0
    np.bitwise_xor(out, (r.astype(np.int64) & 1).astype(np.uint8), out=out)
    return worst


class Engine(Protocol):
    """One transform length ``F``: convolve seed segments against a key block held as a spectrum."""

    @property
    def fft_len(self) -> int:
        """The transform length ``F``."""
        ...

    @property
    def name(self) -> str:
        """``"pyfftw"`` or ``"scipy"``."""
        ...

    def convolve_parity(
        self,
        g: NDArray[np.uint8],
        offset: int,
        out: NDArray[np.uint8],
        x: NDArray[np.uint8] | None = None,
    ) -> float:
        """XOR into ``out`` the parities of entries ``offset … offset + len(out) − 1`` of g ⊛ x.

        ``x`` (length ``≤ F``) replaces the held key block when given (its transform then runs
        concurrently with that of ``g``); otherwise the last one given is used. ``g`` has
        length ``≤ F``. Returns the worst rounding residual (see :func:`round_parity_xor`).
        """
        ...

    def wipe(self) -> None:
        """Zero every buffer that held key-dependent data (the held key block is dropped)."""
        ...


def pyfftw_available() -> bool:
    """Whether :mod:`pyfftw` can be imported (the fast engine)."""
    try:
        importlib.import_module("pyfftw")
    except ImportError:
        return False
    return True


def _default_threads() -> int:
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        count = os.cpu_count() or 1
    return max(1, min(count, 8))


def _run_pair(first: Callable[[], object], second: Callable[[], object], parallel: bool) -> None:
    """Run two GIL-releasing transforms, on two threads when ``parallel``."""
    if not parallel:
        first()
        second()
        return
    failure: list[BaseException] = []

    def target() -> None:
        try:
            first()
        except BaseException as exc:  # pragma: no cover - re-raised below
            failure.append(exc)

    worker = threading.Thread(target=target, name="diqkd-fft", daemon=True)
    worker.start()
    try:
        second()
    finally:
        worker.join()
    if failure:  # pragma: no cover - FFT libraries do not raise here
        raise failure[0]


class _FFTWEngine:
    """FFTW through pyFFTW: two in-place real buffers and their plans, built once (ESTIMATE).

    With ``threads ≥ 2`` the two forward transforms of a tile run concurrently; every transform
    uses ``max(1, threads // 2)`` FFTW threads. (Independent concurrent transforms degrade
    gracefully on a busy machine; FFTW's barrier-synchronised threads do not: measured on the
    2-core reference machine under load, 2 FFTW threads per transform were 10–40 % slower than 1.)
    """

    def __init__(self, fft_len: int, threads: int) -> None:
        pyfftw: Any = importlib.import_module("pyfftw")
        self._F = fft_len
        self._parallel = threads >= 2
        per_transform = max(1, threads // 2)
        half = fft_len // 2 + 1
        self._A: NDArray[np.complex128] = pyfftw.empty_aligned(half, dtype="complex128")
        self._B: NDArray[np.complex128] = pyfftw.empty_aligned(half, dtype="complex128")
        self._A[:] = 0
        self._B[:] = 0
        self._a: NDArray[np.float64] = self._A.view(np.float64)[:fft_len]
        self._b: NDArray[np.float64] = self._B.view(np.float64)[:fft_len]
        flags = ("FFTW_ESTIMATE", "FFTW_DESTROY_INPUT")
        self._fa = pyfftw.FFTW(self._a, self._A, flags=flags, threads=per_transform)
        self._fb = pyfftw.FFTW(self._b, self._B, flags=flags, threads=per_transform)
        self._ia = pyfftw.FFTW(
            self._A, self._a, direction="FFTW_BACKWARD", flags=flags, threads=per_transform
        )

    @property
    def fft_len(self) -> int:
        return self._F

    @property
    def name(self) -> str:
        return "pyfftw"

    def convolve_parity(
        self,
        g: NDArray[np.uint8],
        offset: int,
        out: NDArray[np.uint8],
        x: NDArray[np.uint8] | None = None,
    ) -> float:
        length = g.shape[0]
        self._a[:length] = g
        self._a[length:] = 0.0
        if x is None:
            self._fa.execute()
        else:
            self._b[: x.shape[0]] = x
            self._b[x.shape[0] :] = 0.0
            _run_pair(self._fb.execute, self._fa.execute, self._parallel)
        np.multiply(self._A, self._B, out=self._A)
        self._ia.execute()  # unnormalised: F times the cyclic convolution
        return round_parity_xor(self._a[offset : offset + out.shape[0]], 1.0 / self._F, out)

    def wipe(self) -> None:
        self._A[:] = 0
        self._B[:] = 0


class _SciPyEngine:
    """pocketfft through :mod:`scipy.fft` (allocating transforms; scipy caches the plans)."""

    def __init__(self, fft_len: int, threads: int) -> None:
        self._F = fft_len
        self._parallel = threads >= 2
        self._X: NDArray[np.complex128] | None = None

    @property
    def fft_len(self) -> int:
        return self._F

    @property
    def name(self) -> str:
        return "scipy"

    def _rfft(self, bits: NDArray[np.uint8]) -> NDArray[np.complex128]:
        buf = np.zeros(self._F, dtype=np.float64)
        buf[: bits.shape[0]] = bits
        spec: NDArray[np.complex128] = _sfft.rfft(buf, overwrite_x=True)
        buf[:] = 0.0
        return spec

    def convolve_parity(
        self,
        g: NDArray[np.uint8],
        offset: int,
        out: NDArray[np.uint8],
        x: NDArray[np.uint8] | None = None,
    ) -> float:
        spectra: dict[str, NDArray[np.complex128]] = {}
        if x is None:
            if self._X is None:
                raise DiqkdError("internal error: no key block loaded before convolve_parity")
            spectra["g"] = self._rfft(g)
        else:
            self.wipe()

            def fx() -> None:
                spectra["x"] = self._rfft(x)

            def fg() -> None:
                spectra["g"] = self._rfft(g)

            _run_pair(fx, fg, self._parallel)
            self._X = spectra["x"]
        spec = spectra["g"]
        spec *= self._X
        y = _sfft.irfft(spec, self._F, overwrite_x=True)
        spec[:] = 0
        worst = round_parity_xor(y[offset : offset + out.shape[0]], 1.0, out)
        y[:] = 0.0
        return worst

    def wipe(self) -> None:
        if self._X is not None:
            self._X[:] = 0
            self._X = None


def make_engine(fft_len: int, *, backend: Backend = "auto", threads: int | None = None) -> Engine:
    """Build the FFT engine for transforms of length ``fft_len``.

    Parameters
    ----------
    fft_len
        Transform length ``F`` (use :func:`fast_length`).
    backend
        ``"auto"`` (pyFFTW when importable, else SciPy), ``"pyfftw"`` or ``"scipy"``.
    threads
        Threads in all (default: the CPUs this process may use, at most 8): with 2 or more,
        the two forward transforms of a tile run concurrently, each transform on
        ``max(1, threads // 2)`` threads (pyFFTW; pocketfft transforms are single-threaded).
    """
    if threads is None:
        threads = _default_threads()
    if threads < 1:
        raise DiqkdError(f"threads must be at least 1, got {threads}")
    if backend == "auto":
        backend = "pyfftw" if pyfftw_available() else "scipy"
    if backend == "pyfftw":
        if not pyfftw_available():
            raise DiqkdError(
                "backend='pyfftw' needs the pyFFTW package (pip install pyfftw); "
                "or use backend='scipy'"
            )
        return _FFTWEngine(fft_len, threads)
    if backend == "scipy":
        return _SciPyEngine(fft_len, threads)
    raise DiqkdError(f"backend must be 'auto', 'pyfftw' or 'scipy', got {backend!r}")
