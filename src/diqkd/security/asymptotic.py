"""Analytic asymptotic key rates of the CHSH DI-QKD protocol (collective attacks).

These closed forms give the asymptotic rate per key round; they are the yardsticks against
which numerical and finite-size bounds are compared.
"""

from __future__ import annotations

import math

from scipy.optimize import minimize_scalar

from diqkd.errors import DiqkdError

__all__ = [
    "TSIRELSON_BOUND",
    "binary_entropy",
    "noisy_preprocessing_entropy",
    "noisy_preprocessing_rate",
    "optimal_noisy_preprocessing_rate",
    "pironio_rate",
]

#: Maximum quantum CHSH value 2√2 (Tsirelson 1980).
TSIRELSON_BOUND = 2.0 * math.sqrt(2.0)


def _check(chsh: float, qber: float) -> None:
    if not (math.isfinite(chsh) and math.isfinite(qber)):
        raise DiqkdError(f"CHSH value and QBER must be finite, got S={chsh}, Q={qber}")
    if not 0.0 <= qber <= 1.0:
        raise DiqkdError(f"QBER must lie in [0, 1], got {qber}")
    if chsh > TSIRELSON_BOUND + 1e-9:
        raise DiqkdError(f"CHSH value {chsh} exceeds the quantum maximum 2√2 ≈ 2.8284")


def binary_entropy(p: float) -> float:
    """``h(p) = −p log₂ p − (1−p) log₂(1−p)``, with ``h(0) = h(1) = 0``."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -p * math.log2(p) - (1.0 - p) * math.log2(1.0 - p)


def noisy_preprocessing_entropy(chsh: float, flip_probability: float) -> float:
    """Lower bound on H(Â|E) after Alice flips each key bit with probability p.

    Ho, Sekatski, Tan, Renner, Bancal, Sangouard, PRL 124, 230502 (2020), Eq. (3):
    ``H(Â|E) ≥ 1 − h((1 + √((S/2)² − 1))/2) + h((1 + √(1 − p(1−p)(8 − S²)))/2)``.
    For ``S ≤ 2`` nothing is certified (returns 0).
    """
    s = min(chsh, TSIRELSON_BOUND)
    if s <= 2.0:
        return 0.0
    p = flip_probability
    first = binary_entropy((1.0 + math.sqrt((s / 2.0) ** 2 - 1.0)) / 2.0)
    second = binary_entropy((1.0 + math.sqrt(max(0.0, 1.0 - p * (1.0 - p) * (8.0 - s * s)))) / 2.0)
    return 1.0 - first + second


def pironio_rate(chsh: float, qber: float) -> float:
    """Asymptotic key rate ``r = 1 − h(Q) − h((1 + √((S/2)² − 1))/2)`` per key round.

    Pironio, Acín, Brunner, Gisin, Massar, Scarani, New J. Phys. 11, 045021 (2009), Eq. (12)
    (collective attacks, one-way error correction at the Shannon limit). May be negative.
    """
    _check(chsh, qber)
    return noisy_preprocessing_rate(chsh, qber, 0.0)


def noisy_preprocessing_rate(chsh: float, qber: float, flip_probability: float) -> float:
    """``r = H(Â|E) − h(p + Q − 2pQ)`` for a fixed flip probability p (Ho et al. 2020).

    Alice's flipped bit disagrees with Bob's with probability ``p(1−Q) + (1−p)Q``.
    Returns ``−h(Q)``-like negative values when no key is certified (S ≤ 2).
    """
    _check(chsh, qber)
    if not 0.0 <= flip_probability <= 0.5:
        raise DiqkdError(f"flip probability must lie in [0, 0.5], got {flip_probability}")
    p = flip_probability
    error = p + qber - 2.0 * p * qber
    if chsh <= 2.0:
        return -binary_entropy(error)
    return noisy_preprocessing_entropy(chsh, p) - binary_entropy(error)


def optimal_noisy_preprocessing_rate(chsh: float, qber: float) -> tuple[float, float]:
    """Maximise :func:`noisy_preprocessing_rate` over p ∈ [0, 0.5]; returns ``(rate, p)``."""
    _check(chsh, qber)
    res = minimize_scalar(
        lambda p: -noisy_preprocessing_rate(chsh, qber, float(p)),
        bounds=(0.0, 0.5),
        method="bounded",
        options={"xatol": 1e-7},
    )
    best_p = float(res.x)
    best = noisy_preprocessing_rate(chsh, qber, best_p)
    at_zero = noisy_preprocessing_rate(chsh, qber, 0.0)
    if at_zero >= best:
        return at_zero, 0.0
    return best, best_p
