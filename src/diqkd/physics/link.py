"""The link model: from a hardware profile and a fiber length to Bell-test predictions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from diqkd.physics.channel import LinkBudget, link_budget
from diqkd.physics.correlations import bell_statistics, measurement_shrink
from diqkd.physics.heralding import HeraldedState, spi_state, two_photon_state
from diqkd.profiles import Profile

__all__ = ["LinkPoint", "heralded_state", "link_point", "link_sweep"]

_Z_AXIS = np.array([0.0, 0.0, 1.0])


@dataclass(frozen=True, kw_only=True)
class LinkPoint:
    """Predictions of the link model at one total fiber length.

    Attributes
    ----------
    distance_km
        Total fiber length, km.
    scheme
        ``"spi"`` or ``"two-photon"``.
    herald_probability
        Probability that one attempt is heralded.
    attempt_period_s, attempt_rate_hz
        Time per attempt (local time + herald round trip of the longer arm), s, and its inverse.
    herald_rate_hz
        Heralded events per wall-clock second: ``d / (T_att/p + T_meas)`` with duty cycle d,
        attempt period T_att, herald probability p and the post-herald measurement time T_meas.
    fidelity
        ``⟨Ψ+|ρ|Ψ+⟩`` of the heralded atom–atom state.
    chsh, qber
        CHSH value S and key-round QBER with the optimal settings and the readout model.
    state
        4×4 heralded density matrix (basis ``|↑↑⟩, |↑↓⟩, |↓↑⟩, |↓↓⟩``).
    correlations
        ``P[x, y, a, b]``, shape (2, 3, 2, 2).
    alice_settings, bob_settings
        Measurement Bloch directions, (2, 3) and (3, 3); Bob's y = 2 is the key setting.
    budget
        The optical budget and timing behind these numbers.
    measurement_time_s, duty_cycle
        From the profile, for samplers that turn the rates into herald times.
    """

    distance_km: float
    scheme: str
    herald_probability: float
    attempt_period_s: float
    attempt_rate_hz: float
    herald_rate_hz: float
    fidelity: float
    chsh: float
    qber: float
    state: NDArray[np.complex128]
    correlations: NDArray[np.float64]
    alice_settings: NDArray[np.float64]
    bob_settings: NDArray[np.float64]
    budget: LinkBudget
    measurement_time_s: float
    duty_cycle: float

    def summary(self) -> dict[str, Any]:
        """The scalar predictions as JSON-ready data (the ``diqkd link --json`` point)."""
        return {
            "distance_km": self.distance_km,
            "herald_probability": self.herald_probability,
            "attempt_rate_hz": self.attempt_rate_hz,
            "herald_rate_hz": self.herald_rate_hz,
            "fidelity": self.fidelity,
            "chsh": self.chsh,
            "qber": self.qber,
            "attempt_period_s": self.attempt_period_s,
            "fiber_transmission": self.budget.fiber_transmission_total,
            "eta_arm_a": self.budget.eta_a,
            "eta_arm_b": self.budget.eta_b,
            "noise_click_probability": self.budget.noise_click_probability,
        }


def heralded_state(profile: Profile, budget: LinkBudget) -> HeraldedState:
    """Dispatch to the profile's heralding scheme (:mod:`diqkd.physics.heralding`)."""
    coherence_time_s = profile.atom.memory_coherence_time_s
    visibility = profile.interferometer.photon_indistinguishability
    if profile.heralding.scheme == "spi":
        alpha = profile.atom.bright_state_population
        if alpha is None:  # guarded by profile validation; kept for type narrowing
            raise ValueError("SPI profile without atom.bright_state_population")
        return spi_state(
            budget,
            bright_state_population=alpha,
            indistinguishability=visibility,
            phase_noise_rad=profile.interferometer.phase_noise_rad,
            coherence_time_s=coherence_time_s,
        )
    return two_photon_state(
        budget, indistinguishability=visibility, coherence_time_s=coherence_time_s
    )


def link_point(profile: Profile, distance_km: float) -> LinkPoint:
    """Evaluate the link model at one total fiber length (km).

    Raises
    ------
    ModelError
        If ``distance_km`` is negative or not finite.
    """
    budget = link_budget(profile, distance_km)
    herald = heralded_state(profile, budget)
    k = measurement_shrink(profile.atom.readout_fidelity, profile.measurement.angle_error_rad)
    key_axis = _Z_AXIS if profile.measurement.key_basis == "readout" else None
    stats = bell_statistics(herald.rho, shrink_a=k, shrink_b=k, key_axis=key_axis)
    p = herald.herald_probability
    timing = profile.timing
    herald_rate = timing.duty_cycle / (budget.attempt_period_s / p + timing.measurement_time_s)
    return LinkPoint(
        distance_km=budget.length_km,
        scheme=profile.heralding.scheme,
        herald_probability=p,
        attempt_period_s=budget.attempt_period_s,
        attempt_rate_hz=1.0 / budget.attempt_period_s,
        herald_rate_hz=herald_rate,
        fidelity=stats.fidelity,
        chsh=stats.chsh,
        qber=stats.qber,
        state=herald.rho,
        correlations=stats.correlations,
        alice_settings=stats.alice_settings,
        bob_settings=stats.bob_settings,
        budget=budget,
        measurement_time_s=timing.measurement_time_s,
        duty_cycle=timing.duty_cycle,
    )


def link_sweep(profile: Profile, distances_km: Iterable[float]) -> list[LinkPoint]:
    """:func:`link_point` at each distance."""
    return [link_point(profile, d) for d in distances_km]
