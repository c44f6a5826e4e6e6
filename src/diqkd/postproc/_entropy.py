"""The binary entropy function, shared by the reconciliation modules."""

from __future__ import annotations

import math

from diqkd.postproc.messages import ReconciliationError

__all__ = ["binary_entropy", "inverse_binary_entropy"]


def binary_entropy(p: float) -> float:
    """``h(p) = −p·log₂p − (1−p)·log₂(1−p)`` (Shannon 1948), with ``h(0) = h(1) = 0``.

    Raises
    ------
    ReconciliationError
        If ``p`` is not a probability (outside [0, 1], or NaN).
    """
    if not 0.0 <= p <= 1.0:
        raise ReconciliationError(f"a probability must lie in [0, 1], got {p}")
    if p in (0.0, 1.0):
        return 0.0
    return -p * math.log2(p) - (1.0 - p) * math.log2(1.0 - p)


def inverse_binary_entropy(h: float) -> float:
    """The crossover ``p ∈ [10⁻⁶, ½]`` with ``h(p) = h`` on the increasing branch: 60 bisection
    steps from ``[10⁻⁶, ½]``, returning the lower end (so ``h(p) ≤ h``; ``10⁻⁶`` for ``h``
    below ``h(10⁻⁶)``).

    Raises
    ------
    ReconciliationError
        If ``h`` is outside [0, 1] (or NaN).
    """
    if not 0.0 <= h <= 1.0:
        raise ReconciliationError(f"an entropy in bits must lie in [0, 1], got {h}")
    lo, hi = 1e-6, 0.5
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if binary_entropy(mid) < h else (lo, mid)
    return lo
