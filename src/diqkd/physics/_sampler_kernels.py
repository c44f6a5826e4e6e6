"""Numba kernel of the per-round sampler, and the pure-numpy reference it must match.

Both functions implement the same map, bit for bit, from one block of uniforms to one chunk of
round records (see :func:`diqkd.physics.sampler.sample_rounds` for the model). Event ``i`` of a
chunk reads two uniforms ``U = uniforms[i, 0]`` and ``V = uniforms[i, 1]`` in ``[0, 1)``:

* the joint cell ``c`` of ``(x, y, a, b)`` by inversion, ``c = #{j : cdf[j] <= U}``, which is
  ``numpy.searchsorted(cdf, U, side="right")`` (a branch-free binary search in the kernel;
  Devroye 1986, *Non-Uniform Random Variate Generation*, ch. III.2); the cell packs
  ``c = ((x·3 + y)·2 + a)·2 + b``;
* the number of attempts up to and including the herald by inversion of the geometric law,
  ``K = max(1, ceil(log(1 − V) / log1p(−p)))``, so that ``P(K > k) = (1 − p)^k`` (Devroye 1986,
  ch. X.2). ``1 − V`` is exact for the 53-bit uniforms of numpy and lies in ``(0, 1]``, so the
  log is finite; ``V = 0`` gives ``K = 1`` through the ``max``.

The one transcendental step, ``log(1 − V)``, is computed by numpy (:func:`survival_log`) for
*both* backends and handed to the kernel: numpy's SIMD ``log`` (AVX-512) and the libm ``log``
that numba calls differ in the last bit for about 0.35 % of inputs (measured on an AVX-512
machine with numpy 2.4), which would flip ``K`` whenever the ratio lands within an ulp of an
integer. Everything after it (division, ``ceil``, integer
sums, the time formula) is exactly rounded IEEE-754 arithmetic done in the same order in both
backends, so the outputs are identical. No ``fastmath``: it would allow FMA contraction and
reassociation and break that identity.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

from diqkd.errors import ModelError

__all__ = ["CDF_LENGTH", "N_CELLS", "sample_chunk_numba", "sample_chunk_numpy", "survival_log"]

#: Number of joint cells (x, y, a, b) = 2·3·2·2.
N_CELLS = 24
#: Length of the cumulative table handed to the kernels: the 24 cells padded with 1.0 to a
#: power of two for the branch-free binary search.
CDF_LENGTH = 32


def survival_log(uniforms: NDArray[np.float64]) -> NDArray[np.float64]:
    """``log(1 − V)`` for the attempt uniforms ``V = uniforms[:, 1]``; shape (n,), contiguous.

    Shared by both backends so that they see the same bits (see the module docstring).
    """
    out = np.subtract(1.0, uniforms[:, 1])
    np.log(out, out=out)
    return out


@njit(cache=True, nogil=True)
def _chunk_kernel(
    cell_uniforms: NDArray[np.float64],
    log_survival: NDArray[np.float64],
    cdf: NDArray[np.float64],
    log_q: float,
    start_round: np.uint64,
    attempts_before: np.uint64,
    heralds_before: np.int64,
    start_time_s: float,
    attempt_period_s: float,
    measurement_time_s: float,
    duty_cycle: float,
    out_round: NDArray[np.uint64],
    out_t_s: NDArray[np.float64],
    out_x: NDArray[np.uint8],
    out_y: NDArray[np.uint8],
    out_a: NDArray[np.uint8],
    out_b: NDArray[np.uint8],
) -> tuple[np.uint64, bool]:
    n = log_survival.shape[0]
    one = np.uint64(1)
    attempts = attempts_before
    overflow = False
    for i in range(n):
        # Joint cell by inversion: the number of cdf entries <= U (= searchsorted right), by a
        # branch-free binary search over the 32-entry padded table.
        u = cell_uniforms[i]
        c = 16 * (cdf[15] <= u)
        c += 8 * (cdf[c + 7] <= u)
        c += 4 * (cdf[c + 3] <= u)
        c += 2 * (cdf[c + 1] <= u)
        c += cdf[c] <= u
        out_b[i] = c & 1
        out_a[i] = (c >> 1) & 1
        xy = c >> 2
        x = 1 if xy >= 3 else 0
        out_x[i] = x
        out_y[i] = xy - 3 * x
        # Attempts to the herald: geometric by inversion.
        k = np.ceil(log_survival[i] / log_q)
        if k < 1.0:
            k = 1.0
        previous = attempts
        attempts = attempts + np.uint64(k)
        if attempts < previous:
            overflow = True
        out_round[i] = start_round + attempts - one
        out_t_s[i] = (
            start_time_s
            + (
                np.float64(attempts) * attempt_period_s
                + np.float64(heralds_before + i) * measurement_time_s
            )
            / duty_cycle
        )
    return attempts, overflow


def _decode_cells_numpy(
    cell: NDArray[np.intp],
) -> tuple[NDArray[np.uint8], NDArray[np.uint8], NDArray[np.uint8], NDArray[np.uint8]]:
    b = (cell & 1).astype(np.uint8)
    a = ((cell >> 1) & 1).astype(np.uint8)
    xy = cell >> 2
    x = (xy >= 3).astype(np.uint8)
    y = (xy - 3 * x).astype(np.uint8)
    return x, y, a, b


ChunkArrays = tuple[
    NDArray[np.uint64],
    NDArray[np.float64],
    NDArray[np.uint8],
    NDArray[np.uint8],
    NDArray[np.uint8],
    NDArray[np.uint8],
]


def sample_chunk_numba(
    uniforms: NDArray[np.float64],
    cdf: NDArray[np.float64],
    *,
    log_q: float,
    start_round: int,
    attempts_before: int,
    heralds_before: int,
    start_time_s: float,
    attempt_period_s: float,
    measurement_time_s: float,
    duty_cycle: float,
) -> tuple[ChunkArrays, int, bool]:
    """Map ``uniforms`` (shape (n, 2), float64) to one chunk with the numba kernel.

    Parameters
    ----------
    uniforms
        ``[:, 0]`` picks the joint cell, ``[:, 1]`` the attempts to the herald.
    cdf
        Cumulative joint table, shape (32,) (:data:`CDF_LENGTH`), non-decreasing, entries from
        the last positive cell on (padding included) exactly 1.0, so that a zero-probability
        cell is never picked and ``c <= 23`` for every ``U < 1``.
    log_q
        ``log1p(−p)`` for the per-attempt herald probability ``p`` (−inf when ``p = 1``).
    start_round, attempts_before, heralds_before
        Attempt index of the stream's first attempt; attempts and heralds already produced by
        earlier chunks of the same stream.
    start_time_s, attempt_period_s, measurement_time_s, duty_cycle
        Herald-time model, seconds (see :func:`diqkd.physics.sampler.sample_rounds`).

    Returns
    -------
    (round, t_s, x, y, a, b), attempts_after, overflow
        The chunk's columns; the attempt total after the chunk; whether the 64-bit attempt
        counter wrapped (the caller raises).
    """
    n = uniforms.shape[0]
    if cdf.shape != (CDF_LENGTH,):
        raise ModelError(f"cdf must have shape ({CDF_LENGTH},), got {cdf.shape}")
    log_survival = survival_log(uniforms)
    out_round = np.empty(n, dtype=np.uint64)
    out_t_s = np.empty(n, dtype=np.float64)
    out_x = np.empty(n, dtype=np.uint8)
    out_y = np.empty(n, dtype=np.uint8)
    out_a = np.empty(n, dtype=np.uint8)
    out_b = np.empty(n, dtype=np.uint8)
    attempts_after, overflow = _chunk_kernel(
        uniforms[:, 0],
        log_survival,
        cdf,
        float(log_q),
        np.uint64(start_round),
        np.uint64(attempts_before),
        np.int64(heralds_before),
        float(start_time_s),
        float(attempt_period_s),
        float(measurement_time_s),
        float(duty_cycle),
        out_round,
        out_t_s,
        out_x,
        out_y,
        out_a,
        out_b,
    )
    return (
        (out_round, out_t_s, out_x, out_y, out_a, out_b),
        int(attempts_after),
        bool(overflow),
    )


def sample_chunk_numpy(
    uniforms: NDArray[np.float64],
    cdf: NDArray[np.float64],
    *,
    log_q: float,
    start_round: int,
    attempts_before: int,
    heralds_before: int,
    start_time_s: float,
    attempt_period_s: float,
    measurement_time_s: float,
    duty_cycle: float,
) -> tuple[ChunkArrays, int, bool]:
    """Pure-numpy reference of :func:`sample_chunk_numba`: same arguments, same bits out."""
    n = uniforms.shape[0]
    cell = np.searchsorted(cdf, uniforms[:, 0], side="right")
    x, y, a, b = _decode_cells_numpy(cell)
    k = np.ceil(survival_log(uniforms) / log_q)
    np.maximum(k, 1.0, out=k)
    attempts = np.cumsum(k.astype(np.uint64), dtype=np.uint64)
    attempts += np.uint64(attempts_before)  # wraps modulo 2**64 like the kernel
    # Each K < 2**63, so the counter wrapped iff it ever decreased.
    overflow = False
    if n:
        overflow = bool(attempts[0] < np.uint64(attempts_before)) or bool(
            np.any(attempts[1:] < attempts[:-1])
        )
    rounds = attempts + np.uint64(start_round)
    rounds -= np.uint64(1)
    heralds = np.arange(heralds_before, heralds_before + n, dtype=np.int64)
    t_s = (
        start_time_s
        + (
            attempts.astype(np.float64) * attempt_period_s
            + heralds.astype(np.float64) * measurement_time_s
        )
        / duty_cycle
    )
    attempts_after = int(attempts[-1]) if n else int(attempts_before)
    return (rounds, t_s, x, y, a, b), attempts_after, overflow
