"""Eve's states: intercept-resend breaks entanglement; rank-2 attack; Helstrom guessing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from diqkd.adversary import (
    intercept_resend_branches,
    purification_branches,
    rank2_attack_state,
)
from diqkd.errors import ModelError
from diqkd.physics import LinkPoint, bell_statistics, chsh_from_correlations, link_point
from diqkd.profiles import load_profile

Z = np.array([0.0, 0.0, 1.0])


def partial_transpose_min_eigenvalue(rho: np.ndarray) -> float:
    """Smallest eigenvalue of ρ^{T_B} (Peres, PRL 77, 1413 (1996): < 0 ⇒ entangled)."""
    r = rho.reshape(2, 2, 2, 2).transpose(0, 3, 2, 1).reshape(4, 4)
    return float(np.linalg.eigvalsh(r).min())


@pytest.fixture(scope="module")
def link() -> LinkPoint:
    return link_point(load_profile("ustc-2026"), 11.0)


@pytest.mark.parametrize("node", ["alice", "bob"])
def test_intercept_resend_breaks_entanglement(link: LinkPoint, node: str) -> None:
    assert partial_transpose_min_eigenvalue(link.state) < -0.4  # the honest state is entangled
    br = intercept_resend_branches(link.state, node=node)
    assert br.weights.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(np.trace(br.states, axis1=1, axis2=2).real, 1.0, atol=1e-12)
    # Every branch is a product state, the mixture separable (PPT for two qubits, Horodecki 1996).
    assert partial_transpose_min_eigenvalue(br.average_state) > -1e-12
    tables = [
        bell_statistics(
            s,
            shrink_a=1.0,
            shrink_b=1.0,
            alice_settings=link.alice_settings,
            bob_settings=link.bob_settings,
        ).correlations
        for s in br.states
    ]
    avg = np.einsum("g,gxyab->xyab", br.weights, np.stack(tables))
    assert chsh_from_correlations(avg) <= 2.0 + 1e-12
    # Key rounds: Eve's result is Alice's ideal key outcome (node alice), or Bob's, which equals
    # Alice's except on the |↑↑⟩, |↓↓⟩ populations of the heralded state (node bob).
    hit = sum(
        w * t[0, 2].sum(axis=1)[guess]
        for w, t, guess in zip(br.weights, tables, br.guesses, strict=True)
    )
    rho = link.state.real
    expected = 1.0 if node == "alice" else 1.0 - rho[0, 0] - rho[3, 3]
    assert hit == pytest.approx(expected, abs=1e-9)


def test_intercept_resend_rejects_bad_node(link: LinkPoint) -> None:
    with pytest.raises(ModelError):
        intercept_resend_branches(link.state, node="carol")


@pytest.mark.parametrize("s", [2.0, 2.4, 2.7, 2.0 * math.sqrt(2.0)])
def test_rank2_state_reaches_its_chsh(s: float) -> None:
    """Known answer (Pironio et al. 2009): S = 2√(1 + R²) with perfect key correlation."""
    rho = rank2_attack_state(s)
    stats = bell_statistics(rho, shrink_a=1.0, shrink_b=1.0, key_axis=Z)
    assert stats.chsh == pytest.approx(s, abs=1e-9)
    assert stats.qber == pytest.approx(0.0, abs=1e-12)


def test_rank2_state_range() -> None:
    with pytest.raises(ModelError):
        rank2_attack_state(1.9)
    with pytest.raises(ModelError):
        rank2_attack_state(2.9)


@pytest.mark.parametrize("s", [2.2, 2.5, 2.7, 2.8])
def test_helstrom_guess_probability(s: float) -> None:
    """P_guess = ½(1 + √(1 − R²)), R = √((S/2)² − 1) (Helstrom 1976 on Pironio's state)."""
    rho = rank2_attack_state(s)
    br = purification_branches(rho, key_axis=Z)
    np.testing.assert_allclose(br.average_state, rho, atol=1e-12)
    r = math.sqrt((s / 2) ** 2 - 1)
    p_guess = 0.0
    for w, state, g in zip(br.weights, br.states, br.guesses, strict=True):
        # P(a = g | branch) for Alice's ideal σ_z measurement
        p_up = state[0, 0].real + state[1, 1].real
        p_guess += w * (p_up if g == 0 else 1 - p_up)
    assert p_guess == pytest.approx(0.5 * (1 + math.sqrt(1 - r * r)), abs=1e-9)
    # Every branch is a quantum (hence no-signalling) two-qubit state.
    for state in br.states:
        assert np.linalg.eigvalsh(state).min() > -1e-12
