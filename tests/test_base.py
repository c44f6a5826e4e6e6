"""Base modules: units, the seeding contract, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from diqkd.errors import DiqkdError, UnitError
from diqkd.rng import fresh_seed, make_rng, secret_bytes, spawn
from diqkd.units import (
    check_finite,
    check_probability,
    db_to_transmission,
    fiber_delay_s,
    fiber_transmission,
    transmission_to_db,
)


def test_fiber_known_values() -> None:
    assert fiber_transmission(10.0, 0.2) == pytest.approx(10 ** (-0.2))
    assert db_to_transmission(3.0) == pytest.approx(0.501187, rel=1e-6)
    # 100 km of SMF-28 (n_g = 1.468): 489.7 µs one way.
    assert fiber_delay_s(100.0, 1.468) == pytest.approx(100e3 * 1.468 / 299_792_458.0)


@given(st.floats(0.0, 200.0))
def test_db_round_trip(loss_db: float) -> None:
    assert transmission_to_db(db_to_transmission(loss_db)) == pytest.approx(loss_db, abs=1e-9)


@pytest.mark.parametrize("bad", [math.nan, math.inf, "x", None])
def test_finite_checks(bad: object) -> None:
    with pytest.raises(UnitError):
        check_finite("q", bad)  # type: ignore[arg-type]


def test_range_checks() -> None:
    with pytest.raises(UnitError, match="gain"):
        db_to_transmission(-1.0)
    with pytest.raises(UnitError, match=r"\[0, 1\]"):
        check_probability("p", 1.5)
    with pytest.raises(UnitError, match="length_km"):
        fiber_transmission(-1.0, 0.2)
    with pytest.raises(UnitError, match="infinite"):
        transmission_to_db(0.0)


def test_seeding_contract() -> None:
    a, b = make_rng(42), make_rng(42)
    assert a.random() == b.random()
    gen = np.random.default_rng(1)
    assert make_rng(gen) is gen
    with pytest.raises(DiqkdError):
        make_rng(-1)
    with pytest.raises(DiqkdError):
        make_rng(True)  # type: ignore[arg-type]
    kids = spawn(make_rng(3), 2)
    assert kids[0].random() != kids[1].random()
    seeds = {fresh_seed() for _ in range(8)}
    assert len(seeds) == 8 and all(0 <= s < 2**63 for s in seeds)


def test_secret_bytes_come_from_the_os() -> None:
    assert len(secret_bytes(32)) == 32
    assert secret_bytes(16) != secret_bytes(16)
    with pytest.raises(DiqkdError):
        secret_bytes(-1)
