"""Known values of the analytic bounds, PLOB, and the certificate's invariants."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import brentq

from diqkd.errors import DiqkdError
from diqkd.security import (
    TSIRELSON_BOUND,
    Certificate,
    Epsilons,
    binary_entropy,
    noisy_preprocessing_entropy,
    noisy_preprocessing_rate,
    optimal_noisy_preprocessing_rate,
    pironio_rate,
    plob_bound,
)


def depolarised(q: float) -> float:
    """CHSH value of a Werner state with QBER q: S = 2√2 (1 − 2q)."""
    return TSIRELSON_BOUND * (1 - 2 * q)


@pytest.mark.parametrize(("s", "q"), [(2.8, 0.01), (2.7, 0.03), (2.5, 0.05), (2.3, 0.08)])
def test_pironio_closed_form(s: float, q: float) -> None:
    # Pironio et al., NJP 11, 045021 (2009), Eq. (12).
    expected = 1 - binary_entropy(q) - binary_entropy((1 + math.sqrt((s / 2) ** 2 - 1)) / 2)
    assert pironio_rate(s, q) == pytest.approx(expected, abs=1e-14)


def test_pironio_end_points() -> None:
    assert pironio_rate(TSIRELSON_BOUND, 0.0) == pytest.approx(1.0)
    assert noisy_preprocessing_entropy(2.0, 0.0) == 0.0
    assert pironio_rate(2.0, 0.0) == pytest.approx(0.0)


def test_depolarising_thresholds() -> None:
    q_pironio = brentq(lambda q: pironio_rate(depolarised(q), q), 0.05, 0.1)
    assert q_pironio == pytest.approx(0.071, abs=0.001)  # Pironio et al. 2009: 7.1 %
    q_npp = brentq(
        lambda q: optimal_noisy_preprocessing_rate(depolarised(q), q)[0] - 1e-9, 0.07, 0.09
    )
    assert q_npp == pytest.approx(0.080, abs=0.002)  # Ho et al. 2020: ≈ 8 %


@given(st.floats(2.0, TSIRELSON_BOUND), st.floats(0.0, 0.5))
def test_noisy_preprocessing_never_worse(s: float, q: float) -> None:
    best, p = optimal_noisy_preprocessing_rate(s, q)
    assert 0.0 <= p <= 0.5
    assert best >= noisy_preprocessing_rate(s, q, 0.0) - 1e-12


@given(st.floats(2.0, TSIRELSON_BOUND), st.floats(0.0, 0.5))
def test_entropy_bound_is_monotone_in_flip(s: float, p: float) -> None:
    assert noisy_preprocessing_entropy(s, p) >= noisy_preprocessing_entropy(s, 0.0) - 1e-12
    assert noisy_preprocessing_entropy(s, p) <= 1.0 + 1e-12


@pytest.mark.parametrize(("s", "q"), [(2.9, 0.0), (2.5, -0.1), (2.5, 1.1), (math.nan, 0.0)])
def test_impossible_statistics(s: float, q: float) -> None:
    with pytest.raises(DiqkdError):
        pironio_rate(s, q)


def test_plob() -> None:
    assert plob_bound(0.5) == pytest.approx(1.0)
    assert plob_bound(0.0) == 0.0
    assert plob_bound(1e-6) == pytest.approx(1e-6 / math.log(2), rel=1e-5)
    with pytest.raises(DiqkdError):
        plob_bound(1.5)


def make_certificate(**overrides: object) -> Certificate:
    data: dict[str, object] = {
        "method": "test",
        "theorem": "none",
        "n_rounds": 1000,
        "chsh": 2.7,
        "qber": 0.03,
        "thresholds": {"chsh_min": 2.6},
        "epsilons": Epsilons(pa=1e-7, ec=1e-7, pe=1e-7, sound=3e-7, complete=1e-3),
        "key_length_bits": 100,
        "test_fraction": 0.1,
        "flip_probability": 0.0,
    }
    data.update(overrides)
    return Certificate(**data)  # type: ignore[arg-type]


def test_certificate_rates_and_invariants() -> None:
    cert = make_certificate()
    assert cert.secure
    assert cert.key_rate_per_round == pytest.approx(0.1)
    assert cert.key_rate_per_key_round == pytest.approx(100 / 900)
    doc = cert.to_dict()
    assert doc["epsilon_sound"] == 3e-7 and doc["epsilon_complete"] == 1e-3
    with pytest.raises(DiqkdError, match="reason"):
        make_certificate(key_length_bits=0)
    assert not make_certificate(key_length_bits=0, reason="S too low").secure
    with pytest.raises(DiqkdError, match="exceed"):
        Epsilons(pa=1e-6, ec=1e-6, pe=1e-6, sound=1e-6, complete=0.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cert.key_length_bits = 5  # type: ignore[misc]
