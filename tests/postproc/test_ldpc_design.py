"""Discretized density evolution and the designed LDPC degree distributions."""

from __future__ import annotations

import math

import pytest

from diqkd.errors import ReconciliationError
from diqkd.postproc._ldpc_codes import (
    ELKOUSS_2009,
    FAMILY,
    FOREST_FAMILY,
    FOREST_RUNGS,
    LADDER_BASE,
    LADDER_RATIO,
    LADDER_TOP,
    SPECIAL_FRACTION,
)
from diqkd.postproc._ldpc_design import (
    DESIGNED,
    FOREST_FAMILY_REACH,
    MAX_EVOLVE_DEGREE,
    MAX_VAR_DEGREE,
    check_rate,
    concentrated_rho,
    converges,
    design_rate,
    evolve,
    forest_rung_table,
    rung_threshold_efficiency,
)


def test_regular_3_6_threshold_matches_the_literature() -> None:
    # BP threshold of the (3, 6)-regular ensemble on the BSC: 0.084 (Richardson, Urbanke,
    # IEEE TIT 47, 599 (2001)); discretized DE gives 0.08402, checked here to ±0.3 %
    assert converges({3: 1.0}, {6: 1.0}, 0.0840 * 0.997)
    assert not converges({3: 1.0}, {6: 1.0}, 0.0840 * 1.003)


def test_published_table_threshold_is_reproduced() -> None:
    # Elkouss, Leverrier, Alléaume, Boutros (ISIT 2009), Table I, rate 0.8: p* = 0.0298 (±1 %)
    lam = {2: 0.09420, 3: 0.18088, 6: 0.11972, 7: 0.08550, 8: 0.09816, 17: 0.07194, 26: 0.34960}
    rho = {29: 0.58807, 30: 0.41193}
    assert converges(lam, rho, 0.0298 * 0.99)
    assert not converges(lam, rho, 0.0298 * 1.01)


@pytest.mark.parametrize("rate", [max(DESIGNED), 0.5])  # a high rate; an optimised low one
def test_a_designed_ensemble_has_its_threshold(rate: float) -> None:
    lam, rho, p_star = DESIGNED[rate]
    assert converges(lam, rho, 0.98 * p_star)
    assert not converges(lam, rho, 1.02 * p_star)


@pytest.mark.parametrize("rate", sorted(DESIGNED))
def test_designed_entries_satisfy_their_constraints(rate: float) -> None:
    lam, rho, p_star = DESIGNED[rate]
    assert abs(sum(lam.values()) - 1.0) < 1e-9
    assert abs(sum(rho.values()) - 1.0) < 1e-9
    assert min(lam) >= 2 and max(lam) <= MAX_VAR_DEGREE
    assert all(w > 0 for w in lam.values()) and all(w > 0 for w in rho.values())
    assert abs(design_rate(lam, rho) - rate) < 1e-3
    dc_mean = check_rate(lam, rate)
    # concentrated check side: degrees ⌊d̄c⌋ and ⌈d̄c⌉ (an integer mean: one degree)
    assert set(rho) <= {math.floor(dc_mean), math.ceil(dc_mean)}
    # variant (a): at most M degree-2 nodes, λ₂ ≤ 2/d̄c
    assert lam.get(2, 0.0) <= 2.0 / dc_mean + 1e-6
    # stability condition (Richardson, Shokrollahi, Urbanke 2001) at the threshold
    rho_prime = sum(w * (d - 1) for d, w in rho.items())
    assert lam.get(2, 0.0) * rho_prime * 2 * math.sqrt(p_star * (1 - p_star)) < 1.0
    # the threshold lies below capacity: h(p*) < 1 − R
    h = -p_star * math.log2(p_star) - (1 - p_star) * math.log2(1 - p_star)
    assert h < 1.0 - rate


def test_concentrated_rho_has_the_requested_mean() -> None:
    rho = concentrated_rho(29.4)
    assert set(rho) == {29, 30}
    assert 1.0 / sum(w / d for d, w in rho.items()) == pytest.approx(29.4)
    assert concentrated_rho(6.0) == {6: 1.0}


def test_evolve_reports_and_validates() -> None:
    res = evolve({3: 1.0}, {6: 1.0}, 0.05, record=True)
    assert res.converged and res.errors[0] == 0.05
    # the recorded per-degree errors reproduce the mixture's next error (linear in λ)
    assert res.per_degree[:, 3] == pytest.approx(res.errors[1:], rel=1e-6, abs=1e-12)
    with pytest.raises(ReconciliationError):
        evolve({3: 1.0}, {6: 1.0}, 0.6)
    with pytest.raises(ReconciliationError):  # the designs' (and recording's) limit
        evolve({MAX_VAR_DEGREE + 1: 1.0}, {6: 1.0}, 0.05, record=True)
    with pytest.raises(ReconciliationError):
        evolve({MAX_EVOLVE_DEGREE + 1: 1.0}, {6: 1.0}, 0.05)


@pytest.mark.slow
def test_a_forest_rung_entry_is_regenerated() -> None:
    # FOREST_RUNGS[61] is Table I 0.5's λ with its spread ρ scaled to the rung (R = 0.494):
    # the generator's five candidates (0.5, 0.55, 0.6; 0.5 and 0.6 also spread) pick it again
    assert FOREST_RUNGS[61][1]
    assert forest_rung_table(range(61, 62)) == [FOREST_RUNGS[61]]
    assert rung_threshold_efficiency(61, 0.5, False) > FOREST_RUNGS[61][2] + 0.003


@pytest.mark.slow
def test_a_global_design_rung_entry_is_reproduced() -> None:
    # the QBER-2 % rung (29, R = 0.848) builds the rate-0.84 global design: its table f* is
    # the built ensemble's threshold, and it beats the family's 0.85 by far more than 0.003
    rate, spread, f_star = FOREST_RUNGS[29]
    assert rate == 0.84 and rate in FOREST_FAMILY and not spread
    assert rung_threshold_efficiency(29, rate, False) == pytest.approx(f_star, abs=5e-5)
    assert f_star < 1.035
    # the QBER-1 % rung (15, R = 0.911) builds the rate-0.905 design of variant "c"
    # (n₂ ≤ 1.5·M); the family's best for it (rate 0.925's λ) had f* 1.127
    rate, spread, f_star = FOREST_RUNGS[15]
    assert rate == 0.905 and rate in FOREST_FAMILY and not spread
    assert rung_threshold_efficiency(15, rate, False) == pytest.approx(f_star, abs=5e-5)
    assert f_star < 1.05


def test_forest_rung_table_is_well_formed() -> None:
    assert len(FOREST_RUNGS) == LADDER_TOP + 1
    for k, (rate, spread, f_star) in enumerate(FOREST_RUNGS):
        assert 1.0 < f_star < 1.3
        m = LADDER_BASE * LADDER_RATIO**k
        r_k = 1.0 - m / (1.0 + SPECIAL_FRACTION * m)
        if rate in FOREST_FAMILY:  # a global design within reach, concentrated checks
            assert abs(rate - r_k) <= FOREST_FAMILY_REACH and not spread
            continue
        assert rate in FAMILY
        assert rate in sorted(FAMILY, key=lambda r: (abs(r - r_k), r))[:3]  # a near rate
        if spread:  # only Table I entries with a spread ρ
            rho = ELKOUSS_2009[rate].rho
            assert FAMILY[rate].rho == rho and max(rho) - min(rho) > 1
