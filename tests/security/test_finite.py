"""Finite-size key length (Rényi entropy accumulation) — diqkd.security.finite.

Reference values and their sources are named in each test; the seed check is the 2026
Science experiment's 0.112 bit per event (Lu et al., Science 391, 592 (2026)) at the link
model's 11 km statistics.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.optimize import minimize

from diqkd.errors import DiqkdError
from diqkd.security._eat_renyi import (
    OMEGA_MAX,
    bell_diagonal_key_entropy,
    flip_renyi_entropy,
    key_renyi_entropy,
    max_chsh_bell_diagonal,
    single_round_rate,
)
from diqkd.security._eat_stats import (
    log2_strings_with_few_losses,
    score_abort_probability,
    score_threshold,
)
from diqkd.security.asymptotic import (
    TSIRELSON_BOUND,
    noisy_preprocessing_entropy,
    optimal_noisy_preprocessing_rate,
)
from diqkd.security.finite import (
    FiniteSizeResult,
    finite_size_certificate,
    finite_size_key_length,
)

SEED_S, SEED_Q, SEED_N = 2.6713, 0.0307, 1_200_000


@pytest.fixture(scope="module")
def seed_result() -> FiniteSizeResult:
    return finite_size_key_length(chsh=SEED_S, qber=SEED_Q, n_rounds=SEED_N, epsilon_sound=1e-6)


# --- single-round Rényi entropy ---------------------------------------------------------------


@pytest.mark.parametrize("s", [2.2, 2.5, 2.6713, 2.8])
@pytest.mark.parametrize("p", [0.0, 0.05, 0.2])
def test_alpha_to_one_reproduces_pironio_and_ho(s: float, p: float) -> None:
    """α → 1 gives the published vN bounds: Pironio et al. NJP 2009 Eq. (12) (p = 0) and
    Ho et al. PRL 124, 230502 (2020) Eq. (3)."""
    omega = (4.0 + s) / 8.0
    h = float(key_renyi_entropy(np.array([omega]), p, 1.0 + 1e-7)[0])
    assert h == pytest.approx(noisy_preprocessing_entropy(s, p), abs=2e-5)


def test_tsirelson_point_is_one_bit_for_every_alpha() -> None:
    """At S = 2√2 Alice's bit is uniform and uncorrelated with Eve: H_α = 1 for all α."""
    at_tsirelson = np.array([OMEGA_MAX + 1e-12])  # clipped to S = 2√2 exactly
    for alpha in (1.001, 1.5, 2.0, 5.0):
        h = float(key_renyi_entropy(at_tsirelson, 0.0, alpha)[0])
        assert h == pytest.approx(1.0, abs=1e-12)


def test_renyi_entropy_is_monotone_and_below_von_neumann() -> None:
    ws = np.linspace(0.75, OMEGA_MAX, 400)
    for p in (0.0, 0.1):
        for alpha in (1.001, 1.1, 1.5):
            h = key_renyi_entropy(ws, p, alpha)
            assert np.all(np.diff(h) >= -1e-12)
            vn = np.array([noisy_preprocessing_entropy(8 * w - 4, p) for w in ws[1:]])
            assert np.all(h[1:] <= vn + 1e-9)  # H_α ≤ H for α > 1
            assert np.all(h >= flip_renyi_entropy(p, alpha) - 1e-12)


def test_closed_form_matches_direct_evaluation_of_rank2_attack() -> None:
    for s in (2.3, 2.6713):
        r = math.sqrt(s * s / 4 - 1)
        lam = np.array([(1 + r) / 2, (1 - r) / 2, 0.0, 0.0])  # Φ+, Φ−: t = (r, −r, 1)
        assert max_chsh_bell_diagonal(lam, 0.0) == pytest.approx(s, abs=1e-12)
        for p, alpha in ((0.0, 1.01), (0.1, 1.3)):
            direct = bell_diagonal_key_entropy(lam, 0.0, p, alpha)
            closed = float(key_renyi_entropy(np.array([(4 + s) / 8]), p, alpha)[0])
            assert closed == pytest.approx(direct, abs=1e-10)


def test_horodecki_criterion_for_max_chsh() -> None:
    """θ = 0: S_max = 2√(t_x² + t_z²) (Horodecki, Horodecki, Horodecki, PLA 200, 340 (1995))."""
    lam = np.array([0.7, 0.2, 0.06, 0.04])
    tx, _, tz = lam @ np.array([[1, -1, 1], [-1, 1, 1], [1, 1, -1], [-1, -1, -1]])
    assert max_chsh_bell_diagonal(lam, 0.0) == pytest.approx(2 * math.hypot(tx, tz))


@pytest.mark.parametrize(("s", "p", "alpha"), [(2.6713, 0.0, 1.001), (2.5, 0.1, 1.2)])
def test_rank2_attack_is_the_minimum_over_bell_diagonal_states(
    s: float, p: float, alpha: float
) -> None:
    """Numerical check of the reduction: no Bell-diagonal state / A₀ angle with CHSH ≥ S
    has a smaller H_α than the rank-2 family (random samples + constrained local searches)."""
    target = float(key_renyi_entropy(np.array([(4 + s) / 8]), p, alpha)[0])
    rng = np.random.default_rng(20260101)
    found = 0
    for _ in range(3000):
        lam = rng.dirichlet(np.full(4, 0.3))
        theta = rng.uniform(-math.pi / 2, math.pi / 2)
        if max_chsh_bell_diagonal(lam, theta) >= s:
            found += 1
            assert bell_diagonal_key_entropy(lam, theta, p, alpha) >= target - 1e-9
    assert found > 20

    def lam_of(x: np.ndarray) -> np.ndarray:
        e = np.exp(x[:4] - np.max(x[:4]))
        return np.asarray(e / e.sum())

    for _ in range(6):
        x0 = np.concatenate([rng.normal(size=4) * 2, [rng.uniform(-1.5, 1.5)]])
        res = minimize(
            lambda x: bell_diagonal_key_entropy(lam_of(x), x[4], p, alpha),
            x0,
            method="SLSQP",
            constraints=[
                {"type": "ineq", "fun": lambda x: max_chsh_bell_diagonal(lam_of(x), x[4]) - s}
            ],
            options={"maxiter": 300, "ftol": 1e-12},
        )
        if res.success and max_chsh_bell_diagonal(lam_of(res.x), res.x[4]) >= s - 1e-9:
            assert res.fun >= target - 1e-6


def test_single_round_rate_is_a_lower_bound_of_the_continuum() -> None:
    """The grid minimum (cell bound) lies below the objective at any ω, also off-grid."""
    kw = {
        "test_fraction": 0.05,
        "flip_probability": 0.01,
        "alpha": 1.001,
        "score_win": 30.0,
        "score_lose": -150.0,
    }
    r, _ = single_round_rate(**kw, grid=301)
    ws = np.linspace(0.70, OMEGA_MAX, 5001)
    h = key_renyi_entropy(ws, 0.01, 1.001)
    br = 0.95 * 2 ** (-0.001 * h) + 0.05 * (ws * 2 ** (0.001 * 30) + (1 - ws) * 2 ** (-0.15))
    assert r <= float(np.min(-np.log2(br) / 0.001)) + 1e-12
    r_final, _ = single_round_rate(**kw, grid=20001)  # the grid of the reported key length
    r_limit, _ = single_round_rate(**kw, grid=200001)
    assert r <= r_final <= r_limit <= r_final + 2e-4


# --- statistics --------------------------------------------------------------------------------


def test_string_count_bound_is_an_upper_bound() -> None:
    from scipy.special import comb

    for m, big_l in ((10, 3), (200, 40), (5, 2)):
        exact = math.log2(sum(comb(m, j, exact=True) for j in range(big_l + 1)))
        assert exact <= log2_strings_with_few_losses(m, big_l) <= exact + 0.5


def test_abort_probability_matches_simulation() -> None:
    """Seeded Monte Carlo of the honest test statistic; tolerance 4 binomial σ."""
    n, gamma, omega, pivot = 3000, 0.2, 0.83, 0.85
    thr = score_threshold(n, gamma, omega, pivot, 0.05)
    p = score_abort_probability(n, gamma, omega, pivot, thr)
    assert p <= 0.05
    rng = np.random.default_rng(7)
    trials = 20_000
    m = rng.binomial(n, gamma, size=trials)
    w = rng.binomial(m, omega)
    freq = float(np.mean(w - pivot * m < thr))
    assert abs(freq - p) <= 4 * math.sqrt(p * (1 - p) / trials)


# --- the key length ----------------------------------------------------------------------------


def test_seed_check_general_attacks(seed_result: FiniteSizeResult) -> None:
    """≥ 0.112 bit per event at S = 2.6713, Q = 0.0307, n = 1.2e6, ε_sound = 1e-6
    (Lu et al., Science 391, 592 (2026): 0.112 against general attacks at 11 km)."""
    r = seed_result
    assert r.key_rate_per_round >= 0.112
    assert r.key_length_bits == math.floor(r.key_length_bits)
    assert r.chsh_threshold < SEED_S  # a completeness margin was taken
    assert r.reason == ""


def test_seed_check_at_epsilon_1e10() -> None:
    r = finite_size_key_length(chsh=SEED_S, qber=SEED_Q, n_rounds=SEED_N, epsilon_sound=1e-10)
    assert r.key_rate_per_round >= 0.112


def test_epsilon_bookkeeping(seed_result: FiniteSizeResult) -> None:
    r = seed_result
    used = 2 * r.epsilon_ec + r.epsilon_pa + r.epsilon_ea + 2 * r.epsilon_smooth
    assert used <= r.epsilon_sound * (1 + 1e-12)
    assert r.epsilon_pe == pytest.approx(r.epsilon_ea + 2 * r.epsilon_smooth)
    assert min(r.epsilon_ec, r.epsilon_pa, r.epsilon_ea, r.epsilon_smooth) > 0
    # terms add up to the key length
    assert math.floor(sum(r.terms_bits.values())) == r.key_length_bits


def test_completeness_is_computed(seed_result: FiniteSizeResult) -> None:
    r = seed_result
    assert 1e-3 < r.epsilon_complete <= 1e-2 * (1 + 1e-9)  # EC failure 1e-3 is part of it
    strict = finite_size_key_length(
        chsh=SEED_S,
        qber=SEED_Q,
        n_rounds=SEED_N,
        epsilon_complete_target=1e-4,
        ec_failure_probability=1e-5,
    )
    assert strict.epsilon_complete <= 1e-4 * (1 + 1e-9)
    assert strict.chsh_threshold < r.chsh_threshold  # wider margin
    assert strict.key_length_bits < r.key_length_bits


@pytest.mark.slow
def test_rate_increases_with_n_and_tends_to_asymptotic() -> None:
    asym, _ = optimal_noisy_preprocessing_rate(SEED_S, SEED_Q)
    rates = [
        finite_size_key_length(
            chsh=SEED_S, qber=SEED_Q, n_rounds=n, ec_efficiency=1.0
        ).key_rate_per_round
        for n in (10**6, 10**8, 10**10, 10**12)
    ]
    assert all(b > a for a, b in itertools.pairwise(rates))
    assert rates[-1] <= asym
    assert rates[-1] >= 0.97 * asym


def test_no_key_beyond_noise_threshold() -> None:
    q = 0.09
    r = finite_size_key_length(
        chsh=TSIRELSON_BOUND * (1 - 2 * q), qber=q, n_rounds=10**10, ec_efficiency=1.0
    )
    assert r.key_length_bits == 0
    assert "asymptotic rate" in r.reason


@pytest.mark.parametrize(("q", "positive"), [(0.075, True), (0.078, True), (0.082, False)])
def test_large_n_reproduces_the_noisy_preprocessing_threshold(q: float, positive: bool) -> None:
    """The method's noise threshold tends to the published one of its single-round bound.

    Ho et al., PRL 124, 230502 (2020): noisy preprocessing raises the depolarising-noise
    threshold of CHSH DI-QKD from 7.1 % to about 8 % (between 8.0 % and 8.2 % for the bound
    of their Eq. (3), see ``test_asymptotic.py``). At n = 10¹³ with f = 1 the finite-size
    key must be positive just below and zero just above.
    """
    r = finite_size_key_length(
        chsh=TSIRELSON_BOUND * (1 - 2 * q), qber=q, n_rounds=10**13, ec_efficiency=1.0
    )
    assert (r.key_length_bits > 0) is positive


def test_no_key_without_violation() -> None:
    r = finite_size_key_length(chsh=1.9, qber=0.01, n_rounds=10**6)
    assert r.key_length_bits == 0
    assert "S ≤ 2" in r.reason


def test_no_key_when_n_is_too_small() -> None:
    r = finite_size_key_length(chsh=SEED_S, qber=SEED_Q, n_rounds=20_000)
    assert r.key_length_bits == 0
    assert "too few" in r.reason


def test_fixed_parameters_and_leak_are_used() -> None:
    r = finite_size_key_length(
        chsh=SEED_S,
        qber=SEED_Q,
        n_rounds=SEED_N,
        test_fraction=0.05,
        flip_probability=0.0,
        leak_ec_bits=300_000.0,
    )
    assert r.test_fraction == 0.05
    assert r.flip_probability == 0.0
    assert r.leak_ec_bits == 300_000.0
    assert r.terms_bits["leak_ec"] == -300_000.0


def test_certificate_wrapper() -> None:
    cert = finite_size_certificate(chsh=SEED_S, qber=SEED_Q, n_rounds=SEED_N)
    assert cert.secure
    assert cert.key_rate_per_round >= 0.112
    assert cert.epsilons.sound == 1e-6
    assert cert.parameters["asymptotic_rate"] > cert.key_rate_per_round
    assert "Dupuis" in cert.theorem
    none = finite_size_certificate(chsh=SEED_S, qber=SEED_Q, n_rounds=1000)
    assert not none.secure
    assert none.reason


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"chsh": 2.9}, "2√2"),
        ({"chsh": math.nan}, "finite"),
        ({"qber": -0.01}, r"\[0, 0.5\]"),
        ({"qber": 0.6}, r"\[0, 0.5\]"),
        ({"n_rounds": 0}, ">= 1"),
        ({"n_rounds": 2.5}, "integer"),
        ({"epsilon_sound": 0.0}, r"\(0, 1\)"),
        ({"epsilon_sound": 1.0}, r"\(0, 1\)"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"flip_probability": 0.5}, "flip_probability"),
        ({"leak_ec_bits": -1.0}, "leak_ec_bits"),
        ({"ec_efficiency": 0.9}, "ec_efficiency"),
        ({"epsilon_complete_target": 0.0}, "epsilon_complete_target"),
        ({"ec_failure_probability": 0.5}, "ec_failure_probability"),
    ],
)
def test_bad_inputs_raise(kwargs: dict[str, float], match: str) -> None:
    args: dict[str, float] = {"chsh": SEED_S, "qber": SEED_Q, "n_rounds": SEED_N}
    args.update(kwargs)
    with pytest.raises(DiqkdError, match=match):
        finite_size_key_length(**args)  # type: ignore[arg-type]
