"""Global search of LDPC ensembles (differential evolution over λ) and its table."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diqkd.errors import ReconciliationError
from diqkd.postproc._entropy import binary_entropy, inverse_binary_entropy
from diqkd.postproc._ldpc_codes import FAMILY, FOREST_FAMILY
from diqkd.postproc._ldpc_design import _stability_cap, concentrated_rho, design_rate
from diqkd.postproc._ldpc_search import (
    GLOBAL_DESIGNED,
    SEARCH_DEGREES,
    _to_lambda,
    global_search,
    search_objective,
)


def test_global_designs_are_well_formed_ensembles() -> None:
    assert GLOBAL_DESIGNED, "the table is empty"
    for rate, (lam, rho, p_star) in GLOBAL_DESIGNED.items():
        assert rate not in FAMILY and rate in FOREST_FAMILY  # named by rate alone
        assert sum(lam.values()) == pytest.approx(1.0, abs=1e-6)
        assert sum(rho.values()) == pytest.approx(1.0, abs=1e-6)
        assert set(lam) <= set(SEARCH_DEGREES) and max(rho) - min(rho) <= 1  # concentrated
        assert design_rate(lam, rho) == pytest.approx(rate, abs=2e-4)
        # λ₂ within the stability bound at p*; variant "b" (0.79, 0.84) beyond the forest's
        # 2/d̄c, "c" (0.905) at 3/d̄c (n₂ = 1.5·M), at its cap up to the 6-digit rounding
        dc = 1.0 / sum(w / d for d, w in rho.items())
        assert lam[2] < _stability_cap(rho, p_star)
        n2_over_m = {0.905: 1.5}.get(rate)
        if n2_over_m is None:
            assert lam[2] > 2.0 / dc
        else:
            assert lam[2] * dc / 2.0 == pytest.approx(n2_over_m, abs=1e-4)
        f_star = (1.0 - rate) / binary_entropy(p_star)
        assert 1.0 < f_star < 1.06
        assert FOREST_FAMILY[rate].threshold_efficiency() == pytest.approx(f_star)


def test_objective_ranks_a_known_ensemble_near_its_threshold() -> None:
    # the family's rate-0.5 λ at its own rate and check side: the coarse-grid f* lies within
    # the bisection tolerance (and the coarse grid's ≈ 0.3 %) of the default grid's
    lam = FAMILY[0.5].lam
    rate = FAMILY[0.5].rate
    degs = np.array(SEARCH_DEGREES)
    x = np.zeros(degs.size)
    for d, w in lam.items():
        x[int(np.argmin(np.abs(degs - d)))] += w
    f = search_objective(round(rate, 6), "b")(x)
    assert 1.0 < f < 1.06
    # (3,6)-regular: threshold 0.084 (Richardson, Urbanke 2001), f* = 0.5/h(0.084) ≈ 1.20, so
    # DE fails at p(f = 1.15) and the objective says 1.15
    regular = np.where(degs == 3, 1.0, 0.0)
    assert search_objective(0.5, "b")(regular) == 1.15


@pytest.mark.slow
def test_search_never_ends_worse_than_its_start() -> None:
    # one generation of 8: the start is in the population, so the result is at least as good
    start = {2: 0.2, 3: 0.3, 8: 0.2, 21: 0.3}
    lam, rho, p_star = global_search(0.6, start, generations=1, population=8)
    assert sum(lam.values()) == pytest.approx(1.0, abs=1e-5)
    assert rho == pytest.approx(
        concentrated_rho(1.0 / (0.4 * sum(w / i for i, w in lam.items()))), abs=1e-5
    )
    # the result's p* is on the default grid, which differs from the search's coarse grid by
    # up to ≈ 0.6 % of f* (rate 0.84: 1.0374 coarse, 1.0316 default): hence the 0.01
    f_found = 0.4 / binary_entropy(p_star)
    assert (
        f_found
        <= search_objective(0.6, "b")(np.array([start.get(d, 0.0) for d in SEARCH_DEGREES])) + 0.01
    )


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ReconciliationError):
        global_search(0.8, {3: 1.0}, variant="e")
    with pytest.raises(ReconciliationError):
        global_search(1.2, {3: 1.0})
    with pytest.raises(ReconciliationError):
        global_search(0.8, {3: 1.0}, population=2)


@settings(max_examples=60, deadline=None)
@given(p=st.floats(1e-5, 0.5))
def test_property_inverse_binary_entropy_inverts_h(p: float) -> None:
    # bisection to 2⁻⁶⁰ of the bracket: p back to ≈ 1e-12 relative where h' is not tiny
    h = binary_entropy(p)
    q = inverse_binary_entropy(h)
    assert binary_entropy(q) <= h
    assert q == pytest.approx(p, rel=1e-6, abs=1e-9) or p > 0.4999
    assert inverse_binary_entropy(0.0) == 1e-6
    with pytest.raises(ReconciliationError):
        inverse_binary_entropy(1.5)


@settings(max_examples=60, deadline=None)
@given(
    x=st.lists(st.floats(0.0, 1.0), min_size=len(SEARCH_DEGREES), max_size=len(SEARCH_DEGREES)),
    rate=st.sampled_from([0.5, 0.79, 0.905]),
)
def test_property_degree_two_caps_hold(x: list[float], rate: float) -> None:
    # every variant keeps λ₂ below 0.95 × the stability bound at p(f = 1.03); "a" also keeps
    # n₂ = λ₂·d̄c/2 ≤ M, "c" n₂ ≤ 1.5·M and "d" n₂ ≤ 1.15·M (the clipping reaches its fixed
    # point from above, to 1e-12)
    degs = np.array(SEARCH_DEGREES)
    p_ref = inverse_binary_entropy((1.0 - rate) / 1.03)
    for variant, per_check in (("a", 2.0), ("b", np.inf), ("c", 3.0), ("d", 2.3)):
        lam, dc = _to_lambda(np.array(x), rate, variant, degs)
        assert lam.sum() == pytest.approx(1.0)
        assert np.all(lam >= 0.0)
        assert dc == pytest.approx(1.0 / ((1.0 - rate) * float((lam / degs).sum())))
        if 4.0 <= dc <= 90.0:  # the objective refuses the rest before using λ
            assert lam[0] <= 0.95 * _stability_cap(concentrated_rho(dc), p_ref) * (1 + 1e-9)
            assert lam[0] * dc / 2.0 <= per_check / 2.0 * (1 + 1e-9)
