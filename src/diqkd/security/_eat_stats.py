"""Honest-device statistics of the test rounds (private helpers of :mod:`.finite`).

Completeness probabilities are computed exactly (binomial sums) where that is cheap and
bounded by Bernstein's inequality otherwise; both are upper bounds on the abort probability.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln
from scipy.stats import binom

__all__ = [
    "log2_strings_with_few_losses",
    "max_test_rounds",
    "score_abort_probability",
    "score_threshold",
]

_EXACT_SPAN = 400_000  # largest number of test-round counts summed exactly
_TAIL_SIGMAS = 15.0


def max_test_rounds(n: int, gamma: float, budget: float) -> int:
    """Smallest ``m_max`` with ``P[Bin(n, γ) > m_max] ≤ budget`` (the test-count abort rule)."""
    mean = n * gamma
    sd = math.sqrt(max(n * gamma * (1.0 - gamma), 1e-300))
    lo, hi = int(mean), min(n, math.ceil(mean + 60.0 * sd) + 1)
    if binom.sf(hi, n, gamma) > budget:
        return n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if binom.sf(mid, n, gamma) <= budget:
            hi = mid
        else:
            lo = mid
    return hi


def _z_moments(gamma: float, omega: float, pivot: float) -> tuple[float, float]:
    """Mean and variance of ``z`` = 0 (key), ``1 − ω₀`` (win), ``−ω₀`` (lose) per round."""
    mean = gamma * (omega - pivot)
    second = gamma * (omega * (1.0 - pivot) ** 2 + (1.0 - omega) * pivot**2)
    return mean, max(second - mean * mean, 0.0)


def score_abort_probability(
    n: int, gamma: float, omega: float, pivot: float, threshold: float
) -> float:
    """Upper bound on ``P[Σ z_i < threshold]`` for honest i.i.d. rounds.

    ``Σ z = W − ω₀ m`` with ``m ~ Bin(n, γ)`` test rounds and ``W | m ~ Bin(m, ω)`` wins.
    Exact sum over m (the mass beyond ±15σ of m is added in full) when the span is small;
    otherwise Bernstein's inequality with ``|z − E z| ≤ 1``.
    """
    return _AbortTail(n, gamma, omega, pivot)(threshold)


class _AbortTail:
    """``threshold ↦ P[Σ z < threshold]`` with the m-grid and its pmf computed once."""

    def __init__(self, n: int, gamma: float, omega: float, pivot: float) -> None:
        self.n, self.omega, self.pivot = n, omega, pivot
        self.mean_z, self.var_z = _z_moments(gamma, omega, pivot)
        sd_m = math.sqrt(max(n * gamma * (1.0 - gamma), 0.0))
        lo = max(0, math.floor(n * gamma - _TAIL_SIGMAS * sd_m))
        hi = min(n, math.ceil(n * gamma + _TAIL_SIGMAS * sd_m))
        self.exact = hi - lo <= _EXACT_SPAN
        if self.exact:
            self.m = np.arange(lo, hi + 1, dtype=np.float64)
            self.pmf = binom.pmf(self.m, n, gamma)
            self.outside = float(binom.cdf(lo - 1, n, gamma)) + float(binom.sf(hi, n, gamma))

    def __call__(self, threshold: float) -> float:
        if self.exact:
            need = np.ceil(threshold + self.pivot * self.m - 1e-9)  # accept iff W ≥ need
            p_fail = binom.cdf(need - 1.0, self.m, self.omega)
            return min(1.0, float(np.sum(self.pmf * p_fail)) + self.outside)
        t = self.n * self.mean_z - threshold
        if t <= 0:
            return 1.0
        return min(1.0, math.exp(-(t * t) / (2.0 * (self.n * self.var_z + t / 3.0))))


def score_threshold(n: int, gamma: float, omega: float, pivot: float, budget: float) -> float:
    """Largest threshold (to ±0.01) with :func:`score_abort_probability` ≤ budget."""
    tail = _AbortTail(n, gamma, omega, pivot)
    centre = n * tail.mean_z
    sd = math.sqrt(max(n * tail.var_z, 1e-300))
    lo, hi = centre - 60.0 * sd - 2.0, centre
    if tail(lo) > budget:
        return -math.inf
    while hi - lo > 0.01:
        mid = 0.5 * (lo + hi)
        if tail(mid) <= budget:
            lo = mid
        else:
            hi = mid
    return lo


def log2_strings_with_few_losses(m: int, max_losses: int) -> float:
    """Upper bound on ``log₂ Σ_{j ≤ L} C(m, j)``: bits of a win/lose string with ≤ L losses.

    For ``L < m/2`` the terms grow geometrically up to ``j = L`` with ratio at most
    ``q = L/(m − L + 1)``, so ``Σ_{j ≤ L} C(m, j) ≤ C(m, L)/(1 − q)`` (tight to a factor
    ``≤ 1/(1 − q)``); for ``L ≥ m/2`` the bound ``2^m`` is used.
    """
    if max_losses < 0:
        return -math.inf
    if 2 * max_losses >= m:
        return float(m)
    big_l = float(max_losses)
    q = big_l / (m - big_l + 1.0)
    log_c = gammaln(m + 1.0) - gammaln(big_l + 1.0) - gammaln(m - big_l + 1.0)
    return float(log_c - math.log1p(-q)) / math.log(2.0)
