"""Heralded atom–atom states: single-photon-interference and two-photon heralding.

Basis order of the 4×4 density matrices: ``|↑↑⟩, |↑↓⟩, |↓↑⟩, |↓↓⟩`` with ``|↑⟩ = |0⟩`` the
bright (emitting) state. The target state is ``|Ψ+⟩ = (|↑↓⟩ + |↓↑⟩)/√2``: a herald on the
"other" detector (SPI) or Bell-state pattern (two-photon) projects onto ``|Ψ−⟩``, which the
nodes turn into ``|Ψ+⟩`` by a known local phase flip, so both heralds are counted and the
returned state is the one after that correction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from diqkd.physics.channel import LinkBudget

__all__ = ["HeraldedState", "memory_dephasing", "spi_state", "two_photon_state"]

_UU, _UD, _DU, _DD = 0, 1, 2, 3


@dataclass(frozen=True, kw_only=True)
class HeraldedState:
    """Outcome of one entanglement attempt.

    Attributes
    ----------
    herald_probability
        Probability that an attempt is heralded as a success (all herald patterns counted).
    rho
        4×4 complex density matrix of the two atoms given a herald, after the Ψ−→Ψ+ correction.
    bright_state_populations
        (α_A, α_B) actually used (SPI only; the nearer node's α is lowered to balance the arms).
    """

    herald_probability: float
    rho: NDArray[np.complex128]
    bright_state_populations: tuple[float, float] | None = None


def memory_dephasing(wait_s: float, coherence_time_s: float) -> float:
    """Coherence factor ``exp(−(t/T₂)²)`` of an atomic memory idling for ``wait_s``.

    Gaussian decay from quasi-static magnetic-field fluctuations, as observed for Rb ground-
    state qubits (Körber et al., Nat. Photon. 12, 18 (2018), Eq. 1).
    """
    return math.exp(-((wait_s / coherence_time_s) ** 2))


def spi_state(
    budget: LinkBudget,
    *,
    bright_state_population: float,
    indistinguishability: float,
    phase_noise_rad: float,
    coherence_time_s: float,
) -> HeraldedState:
    """Single-photon-interference heralding (Cabrillo et al., PRA 59, 1025 (1999)).

    Each atom starts in ``√α|↑⟩ + √(1−α)|↓⟩`` and emits a photon only from ``|↑⟩``; the photons
    meet on a beam splitter and exactly one click of one of two threshold detectors heralds.
    Following the error model of Humphreys et al., Nature 558, 268 (2018) (Methods) and
    Hermans et al., NJP 25, 013011 (2023), arXiv:2208.07449 (Sec. 3), per detector D+:

    * single excitation, photon detected (prob. ``α(1−α)η/2`` per arm): the coherent part
      ``|Ψ+⟩``, with coherence reduced by the photon overlap ``√V``, the phase noise
      ``exp(−σ_φ²/2)`` and each atom's memory dephasing while it waits for the herald;
    * single excitation, photon lost, noise click: ``|↑↓⟩`` or ``|↓↑⟩`` without coherence;
    * double excitation (prob. ``α²``): ``|↑↑⟩`` — one photon detected, or both detected and
      bunched by Hong–Ou–Mandel interference (probability ``(1+V)/2`` to share a detector),
      or both lost and a noise click; this limits the fidelity to ≈ 1 − α;
    * no excitation and a noise click: ``|↓↓⟩``.

    A herald requires the other detector to stay silent (probability ``1 − p_n``).
    The herald probability is ``2 Tr ρ̃`` (both detectors) ≈ ``2αη_arm`` — the √η scaling.
    When the arms differ, the node with the larger η lowers its α so that both single-
    excitation terms are equal (``α_near η_near = α_far η_far``), as done in Humphreys 2018.
    """
    eta_a, eta_b, pn = budget.eta_a, budget.eta_b, budget.noise_click_probability
    if eta_a <= eta_b:
        alpha_a, alpha_b = bright_state_population, bright_state_population * eta_a / eta_b
    else:
        alpha_a, alpha_b = bright_state_population * eta_b / eta_a, bright_state_population
    silent = 1.0 - pn
    noise_only = pn * silent
    rho = np.zeros((4, 4), dtype=np.complex128)
    rho[_DD, _DD] = (1 - alpha_a) * (1 - alpha_b) * noise_only
    w_a = alpha_a * (1 - alpha_b)
    w_b = alpha_b * (1 - alpha_a)
    rho[_UD, _UD] = w_a * (0.5 * eta_a * silent + (1 - eta_a) * noise_only)
    rho[_DU, _DU] = w_b * (0.5 * eta_b * silent + (1 - eta_b) * noise_only)
    coherence = (
        math.sqrt(indistinguishability)
        * math.exp(-0.5 * phase_noise_rad**2)
        * memory_dephasing(budget.wait_a_s, coherence_time_s)
        * memory_dephasing(budget.wait_b_s, coherence_time_s)
    )
    off = coherence * 0.5 * silent * math.sqrt(w_a * eta_a * w_b * eta_b)
    rho[_UD, _DU] = rho[_DU, _UD] = off
    one_detected = eta_a * (1 - eta_b) + eta_b * (1 - eta_a)
    both_detected_same = eta_a * eta_b * (1 + indistinguishability) / 4.0
    both_lost_noise = (1 - eta_a) * (1 - eta_b) * noise_only
    rho[_UU, _UU] = (
        alpha_a * alpha_b * ((0.5 * one_detected + both_detected_same) * silent + both_lost_noise)
    )
    trace = float(np.real(np.trace(rho)))
    return HeraldedState(
        herald_probability=2.0 * trace,
        rho=rho / trace,
        bright_state_populations=(alpha_a, alpha_b),
    )


def two_photon_state(
    budget: LinkBudget,
    *,
    indistinguishability: float,
    coherence_time_s: float,
) -> HeraldedState:
    """Two-photon (two-click) heralding by a linear-optics Bell-state measurement.

    Each atom emits one photon entangled with its spin, ``(|↑⟩|H⟩ + |↓⟩|V⟩)/√2``; the station
    projects the photons onto ``|Ψ±⟩`` with a coincidence of two of four detectors (Barrett &
    Kok, PRA 71, 060310 (2005); Hofmann et al., Science 337, 72 (2012); Nadlinger et al.,
    Nature 607, 682 (2022)). Success needs both photons: probability ``η_A η_B / 2`` — the
    η-of-the-whole-link scaling. Partially distinguishable photons (visibility V) herald
    ``(1+V)/2 |Ψ+⟩⟨Ψ+| + (1−V)/2 |Ψ−⟩⟨Ψ−|`` (coherence factor V, not √V; the optical phase
    cancels, so interferometer phase noise does not enter). Accidental coincidences — one
    photon plus a noise click in one of the two detectors that complete a valid pattern, or
    two noise clicks in one of four valid patterns — leave the atoms uncorrelated (``I/4``
    after averaging over patterns). The two other detectors must stay silent.
    """
    eta_a, eta_b, pn = budget.eta_a, budget.eta_b, budget.noise_click_probability
    silent2 = (1.0 - pn) ** 2
    p_signal = 0.5 * eta_a * eta_b * silent2
    one_photon = eta_a * (1 - eta_b) + eta_b * (1 - eta_a)
    p_accidental = (2.0 * one_photon * pn + 4.0 * (1 - eta_a) * (1 - eta_b) * pn**2) * silent2
    coherence = (
        indistinguishability
        * memory_dephasing(budget.wait_a_s, coherence_time_s)
        * memory_dephasing(budget.wait_b_s, coherence_time_s)
    )
    rho = np.zeros((4, 4), dtype=np.complex128)
    rho[_UD, _UD] = rho[_DU, _DU] = 0.5 * p_signal
    rho[_UD, _DU] = rho[_DU, _UD] = 0.5 * p_signal * coherence
    rho += np.eye(4) * p_accidental / 4.0
    total = p_signal + p_accidental
    return HeraldedState(herald_probability=total, rho=rho / total)
