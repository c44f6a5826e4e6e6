"""Sampled density evolution (diagnostic tool for the LDPC ensembles)."""

from __future__ import annotations

import numpy as np
import pytest

from diqkd.errors import ReconciliationError
from diqkd.postproc._ldpc_codes import ELKOUSS_2009, build_code
from diqkd.postproc._ldpc_de import (
    converges,
    ensemble_of_code,
    table_ensemble,
    threshold,
)


def test_regular_3_6_threshold_matches_the_literature() -> None:
    # BP threshold of the (3, 6)-regular ensemble on the BSC: 0.084 (Richardson, Urbanke,
    # "The capacity of LDPC codes under message-passing decoding", IEEE TIT 47, 599 (2001))
    ens = table_ensemble({3: 1.0}, {6: 1.0})
    assert converges(ens, 0.080, population=40_000)[0]
    assert not converges(ens, 0.088, population=40_000)[0]
    th = threshold(ens, 0.07, 0.10, tol=2e-3, population=40_000)
    assert 0.080 <= th <= 0.088


def test_published_table_threshold_is_reproduced() -> None:
    # Elkouss et al. (ISIT 2009), Table I, rate 0.8: p* = 0.0298
    dist = ELKOUSS_2009[0.80]
    ens = table_ensemble(dist.lam, dist.rho)
    assert converges(ens, 0.0298 * 0.97, population=40_000)[0]
    assert not converges(ens, 0.0298 * 1.03, population=40_000)[0]


def test_empirical_ensemble_of_a_built_code() -> None:
    code = build_code(3000, 38, 1)
    p = code.n_puncturable // 2
    ens = ensemble_of_code(
        code.check_ptr, code.check_var, code.n, code.specials[:p], code.specials[p:]
    )
    assert abs(sum(ens.lam.values()) - 1) < 1e-12
    assert abs(sum(ens.rho.values()) - 1) < 1e-12
    # the leak of the rate-adapted code: M − p syndrome bits per n_key key bits
    assert ens.design_leak() == pytest.approx((code.m - p) / code.n_key, rel=1e-12)
    deg = np.bincount(code.check_var, minlength=code.n)
    kinds = {k for (_, k) in ens.lam}
    assert kinds == {"channel", "punctured", "known"}
    assert {i for (i, k) in ens.lam if k != "channel"} == set(deg[code.specials].tolist())


def test_bad_crossover_raises() -> None:
    with pytest.raises(ReconciliationError):
        converges(table_ensemble({3: 1.0}, {6: 1.0}), 0.0)
