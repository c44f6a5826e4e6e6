"""Sanity checks on the protocol's statistics that go beyond the certificate.

:func:`tsirelson_check` flags a CHSH winning frequency that no quantum device reaches with
fresh private inputs: no quantum device wins a CHSH round with probability above
``ω_Q = cos²(π/8)`` (Tsirelson, Lett. Math. Phys. 4, 93 (1980)). With fresh uniform inputs this
holds in every round *given the past*, so ``W − m·ω_Q`` is a supermartingale with increments in
``[−ω_Q, 1 − ω_Q]`` and the Azuma–Hoeffding inequality (Hoeffding, JASA 58, 13 (1963), Thm. 2;
Azuma, Tohoku Math. J. 19, 357 (1967)) gives, for *any* quantum devices,
``P[W ≥ m·ω_Q + t] ≤ exp(−2t²/m)``. Flagging at ``t = √(m ln(1/ε)/2)`` raises a false alarm on
honest devices with probability at most ε, whatever they do; the protocol counts ε in its
completeness. A trip means the devices knew the inputs (a predictable random source) or signal,
or the data are corrupt. Bob's parameter estimation aborts on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from diqkd.errors import DiqkdError

__all__ = [
    "TSIRELSON_FALSE_ALARM",
    "TSIRELSON_WIN_PROBABILITY",
    "TsirelsonCheck",
    "tsirelson_check",
]

#: False-alarm probability of the protocol's Tsirelson check for honest quantum devices.
TSIRELSON_FALSE_ALARM = 1e-9

#: ``cos²(π/8) = (2 + √2)/4``: the largest CHSH winning probability of quantum devices
#: (Tsirelson 1980), i.e. ``S = 2√2``.
TSIRELSON_WIN_PROBABILITY = (2.0 + math.sqrt(2.0)) / 4.0


@dataclass(frozen=True)
class TsirelsonCheck:
    """Outcome of :func:`tsirelson_check`.

    Attributes
    ----------
    wins, test_rounds
        CHSH games won and played.
    observed_chsh
        ``S = 8 W/m − 4``.
    max_wins
        The most wins quantum devices reach except with probability ``epsilon``:
        ``m·ω_Q + √(m ln(1/ε)/2)``.
    excess_sigma
        ``(W − m ω_Q) / √(m ω_Q (1 − ω_Q))``: the excess in binomial standard deviations.
    p_value
        Azuma–Hoeffding bound on the probability of at least ``W`` wins with quantum devices:
        ``exp(−2 (W − m ω_Q)² / m)`` when ``W > m ω_Q``, else 1.
    epsilon
        False-alarm probability the threshold is set for.
    flagged
        ``W > max_wins``: super-quantum: the inputs were predictable (or the devices signal).
    """

    wins: int
    test_rounds: int
    observed_chsh: float
    max_wins: float
    excess_sigma: float
    p_value: float
    epsilon: float
    flagged: bool

    def reason(self) -> str:
        """A one-line abort reason (empty when not flagged)."""
        if not self.flagged:
            return ""
        return (
            f"Bell test beyond Tsirelson's bound: S = {self.observed_chsh:.4f} on "
            f"{self.test_rounds} test rounds (p ≤ {self.p_value:.2g} for any quantum device): "
            "the inputs were predictable or the devices signal; no key"
        )


def tsirelson_check(
    wins: int, test_rounds: int, *, epsilon: float = TSIRELSON_FALSE_ALARM
) -> TsirelsonCheck:
    """Flag a CHSH winning frequency that no quantum device can produce with private inputs.

    Parameters
    ----------
    wins, test_rounds
        ``W`` and ``m`` of the test rounds.
    epsilon
        Allowed false-alarm probability for honest (quantum) devices (default 10⁻⁹, the value
        the protocol's parameter estimation uses). It
        adds to the protocol's completeness error.

    Notes
    -----
    Threshold ``W > m ω_Q + √(m ln(1/ε)/2)`` (Azuma–Hoeffding, module docstring); in standard
    deviations ``k = √(ln(1/ε)/2) / √(ω_Q(1 − ω_Q))`` (k ≈ 9.1 at ε = 10⁻⁹). Bob's parameter
    estimation (:meth:`diqkd.protocol.roles.Bob.estimate`) applies the same rule and aborts.
    """
    if test_rounds < 0 or not 0 <= wins <= max(test_rounds, 0):
        raise DiqkdError(f"need 0 ≤ wins ≤ test_rounds, got {wins} of {test_rounds}")
    if not 0.0 < epsilon < 1.0:
        raise DiqkdError(f"epsilon must lie in (0, 1), got {epsilon}")
    m = int(test_rounds)
    w = TSIRELSON_WIN_PROBABILITY
    if m == 0:
        return TsirelsonCheck(wins, 0, float("nan"), 0.0, 0.0, 1.0, epsilon, False)
    excess = wins - m * w
    max_wins = m * w + math.sqrt(m * math.log(1.0 / epsilon) / 2.0)
    p_value = math.exp(-2.0 * excess**2 / m) if excess > 0 else 1.0
    return TsirelsonCheck(
        wins=int(wins),
        test_rounds=m,
        observed_chsh=8.0 * wins / m - 4.0,
        max_wins=max_wins,
        excess_sigma=excess / math.sqrt(m * w * (1.0 - w)),
        p_value=p_value,
        epsilon=float(epsilon),
        flagged=wins > max_wins,
    )
