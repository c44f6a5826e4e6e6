"""Physics acceptance tests: limits, scaling laws, CHSH consistency, calibration of ustc-2026."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from diqkd.errors import ModelError
from diqkd.physics import bell_statistics, link_budget, link_point, link_sweep
from diqkd.physics.correlations import correlation_matrix, optimal_settings
from diqkd.profiles import Profile, load_profile, with_overrides
from diqkd.security import optimal_noisy_preprocessing_rate

PSI_PLUS = np.array([0, 1, 1, 0], dtype=complex) / math.sqrt(2)
TSIRELSON = 2 * math.sqrt(2)


def ideal(profile_name: str, **extra: object) -> Profile:
    """A profile stripped of every noise source (lossless optics stay lossy only via fiber)."""
    overrides: dict[str, object] = {
        "detection.dark_count_rate_hz": 0.0,
        "conversion.noise_rate_hz": 0.0,
        "interferometer.phase_noise_rad": 0.0,
        "interferometer.photon_indistinguishability": 1.0,
        "atom.memory_coherence_time_s": 1e6,
        "atom.readout_fidelity": 1.0,
        "measurement.angle_error_rad": 0.0,
    }
    overrides.update(extra)
    return with_overrides(load_profile(profile_name), overrides)


def test_small_alpha_gives_unit_fidelity_when_lossless_and_noiseless() -> None:
    fids = []
    for alpha in (1e-1, 1e-2, 1e-3, 1e-4):
        prof = ideal(
            "ustc-2026",
            **{
                "atom.bright_state_population": alpha,
                "atom.photon_collection_efficiency": 1.0,
                "conversion.efficiency": 1.0,
                "detection.efficiency": 1.0,
            },
        )
        lp = link_point(prof, 0.0)
        # Double excitation limits the fidelity to 1 - alpha (Cabrillo 1999; Humphreys 2018).
        # Lossless: both photons detected, bunched with probability 1 (V = 1), so the |↑↑⟩
        # weight is α²·½ against α(1−α) → F = (1−α)/(1−α/2).
        assert lp.fidelity == pytest.approx((1 - alpha) / (1 - alpha / 2), rel=1e-9)
        fids.append(lp.fidelity)
    assert fids == sorted(fids)
    assert fids[-1] > 1 - 1e-4


def test_fidelity_is_bounded_by_one_minus_alpha_with_loss() -> None:
    for alpha in (0.02, 0.05, 0.1):
        lp = link_point(ideal("ustc-2026", **{"atom.bright_state_population": alpha}), 11.0)
        assert lp.fidelity == pytest.approx(1 - alpha, abs=alpha**2 + 1e-3)


def test_perfect_state_and_readout_give_tsirelson_and_zero_qber() -> None:
    rho = np.outer(PSI_PLUS, PSI_PLUS.conj())
    stats = bell_statistics(rho, shrink_a=1.0, shrink_b=1.0)
    assert stats.chsh == pytest.approx(TSIRELSON, abs=1e-12)
    assert stats.qber == pytest.approx(0.0, abs=1e-12)
    assert stats.fidelity == pytest.approx(1.0, abs=1e-12)


def test_fully_dephased_state_violates_nothing() -> None:
    rho = np.diag([0.0, 0.5, 0.5, 0.0]).astype(complex)
    stats = bell_statistics(rho, shrink_a=1.0, shrink_b=1.0)
    assert stats.chsh <= 2.0 + 1e-12
    assert stats.qber == pytest.approx(0.0, abs=1e-12)  # classical Z correlation survives


def test_fully_dephased_link_gives_no_bell_violation() -> None:
    prof = with_overrides(
        load_profile("ustc-2026"), {"interferometer.photon_indistinguishability": 0.0}
    )
    assert link_point(prof, 11.0).chsh <= 2.0 + 1e-12


def _slope(profile: Profile, lengths: np.ndarray) -> float:
    pts = link_sweep(profile, lengths)
    eta = np.array([p.budget.fiber_transmission_total for p in pts])
    ph = np.array([p.herald_probability for p in pts])
    return float(np.polyfit(np.log(eta), np.log(ph), 1)[0])


def test_spi_herald_probability_scales_with_sqrt_eta() -> None:
    lengths = np.linspace(10.0, 200.0, 12)
    assert _slope(ideal("ustc-2026"), lengths) == pytest.approx(0.5, abs=0.005)
    # With the real noise the herald probability levels off at long distance, but stays
    # close to √η over the range where key is possible.
    assert _slope(load_profile("ustc-2026"), np.linspace(10.0, 100.0, 8)) == pytest.approx(
        0.5, abs=0.02
    )


def test_two_photon_herald_probability_scales_with_eta() -> None:
    lengths = np.linspace(10.0, 200.0, 12)
    assert _slope(ideal("generic-two-photon"), lengths) == pytest.approx(1.0, abs=0.005)
    assert _slope(load_profile("generic-two-photon"), np.linspace(10.0, 100.0, 8)) == (
        pytest.approx(1.0, abs=0.02)
    )


def test_spi_herald_probability_is_about_two_alpha_eta_arm() -> None:
    prof = ideal("ustc-2026")
    lp = link_point(prof, 11.0)
    alpha = prof.atom.bright_state_population
    assert alpha is not None
    assert lp.herald_probability == pytest.approx(2 * alpha * lp.budget.eta_a, rel=0.01)


@pytest.mark.parametrize("name", ["ustc-2026", "generic-spi", "generic-two-photon"])
@pytest.mark.parametrize("distance_km", [0.0, 11.0, 60.0, 150.0])
def test_chsh_from_state_agrees_with_chsh_from_table(name: str, distance_km: float) -> None:
    prof = load_profile(name)
    lp = link_point(prof, distance_km)
    _, _, t = correlation_matrix(lp.state)
    k = (2 * prof.atom.readout_fidelity - 1) * math.exp(-0.5 * prof.measurement.angle_error_rad**2)
    a0, a1 = lp.alice_settings
    s_state = k * k * (np.linalg.norm(t.T @ (a0 + a1)) + np.linalg.norm(t.T @ (a0 - a1)))
    assert lp.chsh == pytest.approx(s_state, abs=1e-10)
    if prof.measurement.key_basis == "optimal":
        sv = np.linalg.svd(t, compute_uv=False)
        assert lp.chsh == pytest.approx(2 * k * k * math.hypot(sv[0], sv[1]), abs=1e-10)


def test_readout_key_basis_measures_z() -> None:
    lp = link_point(load_profile("ustc-2026"), 11.0)
    assert np.allclose(lp.alice_settings[0], [0, 0, 1])
    assert abs(lp.bob_settings[2][2]) == pytest.approx(1.0)


def test_attempt_rate_falls_with_distance_and_events_include_duty_cycle() -> None:
    prof = load_profile("ustc-2026")
    pts = link_sweep(prof, [0.0, 11.0, 50.0, 100.0])
    rates = [p.attempt_rate_hz for p in pts]
    assert rates == sorted(rates, reverse=True)
    # 100 km: the herald needs a 50 km arm round trip, 2·50 km·n/c ≈ 490 µs.
    assert 1 / rates[-1] == pytest.approx(
        prof.timing.local_attempt_time_s + 2 * 50e3 * prof.fiber.group_index / 299792458.0
    )
    lp = pts[1]
    expected = prof.timing.duty_cycle / (
        lp.attempt_period_s / lp.herald_probability + prof.timing.measurement_time_s
    )
    assert lp.herald_rate_hz == pytest.approx(expected)


def test_off_centre_station_balances_alpha() -> None:
    prof = with_overrides(load_profile("ustc-2026"), {"heralding.station_position": 0.3})
    budget = link_budget(prof, 40.0)
    assert budget.arm_a_km == pytest.approx(12.0)
    lp = link_point(prof, 40.0)
    rho = lp.state
    assert rho[1, 1].real == pytest.approx(rho[2, 2].real, rel=0.02)


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_bad_distance_is_a_model_error(bad: float) -> None:
    with pytest.raises(ModelError, match="distance"):
        link_point(load_profile("ustc-2026"), bad)


# ---- calibration of ustc-2026 against the published facts (SCIENCE.md) -------------------


def test_ustc_2026_reproduces_published_facts() -> None:
    prof = load_profile("ustc-2026")
    at11, at100 = link_point(prof, 11.0), link_point(prof, 100.0)
    assert at11.qber == pytest.approx(0.03, abs=0.005)  # "about 3 % at 11 km"
    assert at100.qber > 0.07  # "above 7 % at 100 km"
    assert at100.fidelity > 0.90  # "fidelity above 0.90 at 100 km"
    rate, _ = optimal_noisy_preprocessing_rate(at100.chsh, at100.qber)
    assert rate > 0  # positive asymptotic key at 100 km
    events_in_624_h = at11.herald_rate_hz * 624 * 3600
    assert events_in_624_h >= 1.2e6
    assert events_in_624_h < 1.5 * 1.2e6  # and not wildly more than the experiment saw


# ---- property tests --------------------------------------------------------------------------


@st.composite
def density_matrices(draw: st.DrawFn) -> np.ndarray:
    vals = draw(
        st.lists(st.floats(-1, 1, allow_nan=False), min_size=32, max_size=32).filter(
            lambda v: sum(x * x for x in v) > 1e-3
        )
    )
    g = np.array(vals[:16]).reshape(4, 4) + 1j * np.array(vals[16:]).reshape(4, 4)
    rho = g @ g.conj().T
    return rho / np.trace(rho).real


@given(rho=density_matrices(), k=st.floats(0.0, 1.0))
def test_tables_are_valid_no_signalling_and_bounded(rho: np.ndarray, k: float) -> None:
    stats = bell_statistics(rho, shrink_a=k, shrink_b=k)
    p = stats.correlations
    assert p.shape == (2, 3, 2, 2)
    assert np.all(p >= 0)
    assert np.allclose(p.sum(axis=(2, 3)), 1.0)
    alice = p.sum(axis=3)  # P(a|x,y) must not depend on y
    assert np.allclose(alice, alice[:, :1, :], atol=1e-9)
    bob = p.sum(axis=2)  # P(b|x,y) must not depend on x
    assert np.allclose(bob, bob[:1], atol=1e-9)
    assert stats.chsh <= TSIRELSON + 1e-9
    _, _, t = correlation_matrix(rho)
    sv = np.linalg.svd(t, compute_uv=False)
    assert stats.chsh == pytest.approx(2 * k * k * math.hypot(sv[0], sv[1]), abs=1e-7)


@given(rho=density_matrices())
def test_key_setting_maximises_key_correlation(rho: np.ndarray) -> None:
    _, _, t = correlation_matrix(rho)
    alice, bob = optimal_settings(t)
    assert alice[0] @ t @ bob[2] >= -1e-12
    assert alice[0] @ t @ bob[2] == pytest.approx(np.linalg.norm(t.T @ alice[0]), abs=1e-9)
