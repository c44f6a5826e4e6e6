"""The certified Brown–Fawzi–Fawzi bound: analytic agreement, certificate validity, inputs.

Reference values: Pironio et al., NJP 11, 045021 (2009) (tight for H(A|X=0,E) given S) and
Ho et al., PRL 124, 230502 (2020) (noisy preprocessing), both in
:mod:`diqkd.security.asymptotic`. Tolerances: the relaxations and the certificate cost
≲ 2·10⁻⁴ bits away from S = 2√2 (measured: ≤ 1.5·10⁻⁴); the dropped last quadrature node
costs at most ``1/(2m² ln 2)`` (0.005 at m = 12), attained as S → 2√2.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest
import scipy.linalg as sla
from numpy.typing import NDArray

from diqkd.errors import DiqkdError
from diqkd.security._npa import FLIP_ALL, SWAP_BOB, act, adjoint, canonical, reduce_word
from diqkd.security.asymptotic import (
    TSIRELSON_BOUND,
    binary_entropy,
    noisy_preprocessing_entropy,
    pironio_rate,
)
from diqkd.security.numerical import (
    _kind_bounds,
    _objective_terms,
    _relaxation,
    _solve_node,
    certify_dual,
    gauss_radau,
    numerical_entropy_bound,
    numerical_key_rate,
)

M = 12
LAST_NODE = 1.0 / (2 * M**2 * math.log(2))  # at most this is lost by not solving t_m = 1
RELAX_TOL = 1e-3  # relaxation + certificate away from 2√2 (measured ≤ 1.5e-4)


def werner_table(v: float) -> NDArray[np.float64]:
    """P(a,b|x,y) of a Werner state of visibility v, CHSH-optimal settings, y = 2 = key."""
    ang_a = [0.0, math.pi / 2]
    ang_b = [math.pi / 4, -math.pi / 4, 0.0]
    p = np.zeros((2, 3, 2, 2))
    for x in range(2):
        for y in range(3):
            e = v * math.cos(ang_a[x] - ang_b[y])
            for a in range(2):
                for b in range(2):
                    p[x, y, a, b] = (1 + (-1) ** (a + b) * e) / 4
    return p


# --------------------------------------------------------------------------- quadrature


@pytest.mark.parametrize("m", [2, 5, 12, 20])
def test_gauss_radau_exact_to_degree_2m_minus_2(m: int) -> None:
    t, w = gauss_radau(m)
    assert t[-1] == 1.0
    assert np.all(np.diff(t) > 0) and t[0] > 0
    for k in range(2 * m - 1):
        assert math.isclose(float(w @ t**k), 1.0 / (k + 1), rel_tol=1e-11, abs_tol=1e-13)


def test_gauss_radau_rejects_one_node() -> None:
    with pytest.raises(DiqkdError):
        gauss_radau(1)


# --------------------------------------------------------------------------- word algebra


def test_word_reduction_rules() -> None:
    assert reduce_word(("Z0", "E0", "B1", "E0")) == ("E0", "B1", "Z0")  # parties commute, E² = E
    assert reduce_word(("E0", "E1")) is None  # orthogonal projectors
    assert reduce_word(("A1", "B0", "A1", "B0")) == ()  # involutions
    assert reduce_word(("E0", "A1", "A1", "E1")) is None
    assert adjoint(("E0", "A1", "Z0", "Z1*")) == ("A1", "E0", "Z1", "Z0*")
    assert canonical(("A1", "E0")) == canonical(("E0", "A1"))
    assert act(FLIP_ALL, ("E0", "A1", "B0", "Z0*")) == (1, ("E1", "A1", "B0", "Z1*"))
    assert act(SWAP_BOB, ("A1", "B0")) == (-1, ("A1", "B1"))


# --------------------------------------------------------------------------- a quantum strategy


def _op(letter: str, mats: dict[str, NDArray[np.complex128]]) -> NDArray[np.complex128]:
    if letter.endswith("*"):
        return mats[letter[:-1]].conj().T
    return mats[letter]


def strategy_moments(
    relax_args: tuple[str, str, int, str, bool],
    mats: dict[str, NDArray[np.complex128]],
    psi: NDArray[np.complex128],
) -> NDArray[np.float64]:
    """Symmetrised real moments ``y_k = |G|⁻¹ Σ_g s_g Re⟨g·w_k⟩`` of a concrete strategy."""
    relax = _relaxation(*relax_args)
    structure = relax.structure
    group: list[dict[str, tuple[int, str]]] = [{}]  # the identity
    if relax_args[3] in ("flip", "full"):
        group.append(FLIP_ALL)
    if relax_args[3] == "full":
        group += [SWAP_BOB, {k: _compose(FLIP_ALL, SWAP_BOB, k) for k in _LETTERS}]
    y = np.zeros(structure.n_vars)
    for k, word in enumerate(structure.words):
        acc = 0.0
        for g in group:
            sign, image = act(g, word)
            assert image is not None
            op = np.eye(psi.size, dtype=np.complex128)
            for letter in image:
                op = op @ _op(letter, mats)
            acc += sign * float(np.real(psi.conj() @ op @ psi))
        y[k] = acc / len(group)
    return y


_LETTERS = ["E0", "E1", "A1", "B0", "B1", "B2", "Z0", "Z1", "Z0*", "Z1*"]


def _compose(
    g: dict[str, tuple[int, str]], h: dict[str, tuple[int, str]], letter: str
) -> tuple[int, str]:
    s1, l1 = h.get(letter, (1, letter))
    s2, l2 = g.get(l1, (1, l1))
    return s1 * s2, l2


def pironio_attack(s: float) -> tuple[dict[str, NDArray[np.complex128]], NDArray[np.complex128]]:
    """Eve's optimal CHSH attack (Pironio et al. 2009): λΦ⁺ + (1−λ)Φ⁻ purified by Eve's qubit.

    ``A₀ = σ_z``, ``A₁ = σ_x``, ``B_y = cos θ σ_z ± sin θ σ_x`` with ``tan θ = 2λ − 1``, so
    that ``S = 2√(1 + (2λ−1)²)``; Bob's key observable ``B₂ = σ_z``.
    """
    c = math.sqrt((s / 2) ** 2 - 1)  # 2λ − 1
    lam = (1 + c) / 2
    sz = np.diag([1.0, -1.0]).astype(np.complex128)
    sx = np.array([[0, 1], [1, 0]], dtype=np.complex128)
    i2 = np.eye(2, dtype=np.complex128)
    theta = math.atan(c)
    kron = np.kron
    phi_p = np.array([1, 0, 0, 1], dtype=np.complex128) / math.sqrt(2)
    phi_m = np.array([1, 0, 0, -1], dtype=np.complex128) / math.sqrt(2)
    psi = math.sqrt(lam) * kron(phi_p, [1, 0]) + math.sqrt(1 - lam) * kron(phi_m, [0, 1])
    b0 = math.cos(theta) * sz + math.sin(theta) * sx
    b1 = math.cos(theta) * sz - math.sin(theta) * sx

    def k3(a: NDArray[np.complex128], b: NDArray[np.complex128]) -> NDArray[np.complex128]:
        return np.asarray(np.kron(np.kron(a, b), i2), dtype=np.complex128)

    mats = {
        "E0": k3((i2 + sz) / 2, i2),
        "E1": k3((i2 - sz) / 2, i2),
        "A1": k3(sx, i2),
        "B0": k3(i2, b0),
        "B1": k3(i2, b1),
        "B2": k3(i2, sz),
    }
    return mats, np.asarray(psi, dtype=np.complex128)


def optimal_z(
    mats: dict[str, NDArray[np.complex128]], psi: NDArray[np.complex128], t: float, p: float
) -> dict[str, NDArray[np.complex128]]:
    """Eve's minimising ``Z_a`` on her qubit: ``tρ_E Z + (1−t) Z σ̂_a = −σ̂_a`` (stationarity)."""
    full = np.outer(psi, psi.conj()).reshape(4, 2, 4, 2)
    rho_e = np.einsum("iaib->ab", full)
    out = dict(mats)
    for a in range(2):
        m_hat = (1 - p) * mats[f"E{a}"] + p * mats[f"E{1 - a}"]
        sigma = np.einsum("iaib->ab", (m_hat @ np.outer(psi, psi.conj())).reshape(4, 2, 4, 2))
        z = sla.solve_sylvester(t * rho_e, (1 - t) * sigma, -sigma)
        out[f"Z{a}"] = np.kron(np.eye(4), z)
    return out


# --------------------------------------------------------------------------- analytic agreement


@pytest.mark.parametrize("s", [2.2, 2.5, 2.7, 2.8])
def test_matches_pironio_where_it_is_tight(s: float) -> None:
    bound = numerical_entropy_bound(chsh=s, nodes=M)
    analytic = noisy_preprocessing_entropy(s, 0.0)
    # valid ⇒ never above a tight bound; close to it up to relaxation + last node
    assert bound.entropy <= analytic + 1e-7
    assert bound.entropy >= analytic - RELAX_TOL
    assert bound.primal_value >= bound.certified_sum


@pytest.mark.parametrize(("s", "p"), [(2.5, 0.1), (2.7, 0.25)])
def test_matches_noisy_preprocessing(s: float, p: float) -> None:
    bound = numerical_entropy_bound(chsh=s, flip_probability=p)
    analytic = noisy_preprocessing_entropy(s, p)
    assert abs(bound.entropy - analytic) <= RELAX_TOL
    assert bound.entropy > numerical_entropy_bound(chsh=s).entropy  # flipping helps H(Â|E)


def test_local_bound_gives_zero_and_tsirelson_gives_one() -> None:
    at_two = numerical_entropy_bound(chsh=2.0)
    assert at_two.entropy == 0.0
    assert -1e-4 <= at_two.certified_sum <= 1e-7
    at_max = numerical_entropy_bound(chsh=TSIRELSON_BOUND)
    assert 1.0 - LAST_NODE - 1e-4 <= at_max.entropy <= 1.0


def test_more_nodes_converge_towards_one_at_tsirelson() -> None:
    few = numerical_entropy_bound(chsh=TSIRELSON_BOUND, nodes=6).entropy
    many = numerical_entropy_bound(chsh=TSIRELSON_BOUND, nodes=16).entropy
    assert few < many <= 1.0
    assert many >= 1.0 - 1.0 / (2 * 16**2 * math.log(2)) - 1e-4


def test_qber_constraint_cannot_tighten_the_chsh_bound() -> None:
    s, q = 2.6, 0.02
    with_q = numerical_entropy_bound(chsh=s, qber=q)
    without = numerical_entropy_bound(chsh=s)
    assert abs(with_q.entropy - without.entropy) <= 1e-4
    assert "QBER" in with_q.constraints


def test_key_rate_against_pironio() -> None:
    for s, q in [(2.7, 0.02), (2.5, 0.05)]:
        assert abs(numerical_key_rate(s, q) - pironio_rate(s, q)) <= RELAX_TOL
    assert numerical_key_rate(2.3, 0.1) < 0
    rate = numerical_key_rate(2.6, 0.06, flip_probability=0.1)
    assert rate == pytest.approx(
        numerical_entropy_bound(chsh=2.6, flip_probability=0.1).entropy
        - binary_entropy(0.1 + 0.06 - 2 * 0.1 * 0.06),
        abs=1e-9,
    )


# --------------------------------------------------------------------------- tables


def test_table_constraints_give_at_least_the_chsh_bound() -> None:
    v = 0.9
    table = werner_table(v)
    s = 2 * math.sqrt(2) * v
    from_table = numerical_entropy_bound(correlations=table)
    from_chsh = numerical_entropy_bound(chsh=s)
    # all four correlators exclude Pironio's attack: strictly more entropy, still ≤ 1
    assert from_table.entropy >= from_chsh.entropy + 0.01
    assert from_table.entropy <= 1.0


def test_symmetrisation_is_exact_for_a_symmetric_table() -> None:
    table = werner_table(0.85)[:, :2]
    full = numerical_entropy_bound(correlations=table, nodes=4)
    plain = numerical_entropy_bound(correlations=table, nodes=4, symmetrize="none")
    assert "fully" in full.constraints and "marginals" in plain.constraints
    assert abs(full.entropy - plain.entropy) <= 1e-4


def test_biased_table_flip_symmetrisation_is_a_valid_lower_bound() -> None:
    table = 0.9 * werner_table(0.95)
    table[:, :, 0, 0] += 0.1  # mixed with the local deterministic box a = b = 0: biased
    flip = numerical_entropy_bound(correlations=table, nodes=4)
    plain = numerical_entropy_bound(correlations=table, nodes=4, symmetrize="none")
    assert flip.entropy <= plain.entropy + 1e-5


# --------------------------------------------------------------------------- the certificate


def test_certified_value_never_exceeds_the_primal() -> None:
    bound = numerical_entropy_bound(chsh=2.65, flip_probability=0.05)
    for cert, primal in zip(bound.node_certified, bound.node_primal, strict=True):
        assert cert <= primal + 1e-12
        assert primal - cert <= 1e-4
    assert bound.primal_value - bound.certified_sum <= 1e-4


@pytest.mark.parametrize("p", [0.0, 0.2])
def test_certificate_holds_for_a_concrete_quantum_strategy(p: float) -> None:
    """Moments of Pironio's attack with Eve's optimal Z are feasible and above the bound."""
    s_true = 2.6
    args = ("2+ABZ", "chsh", 3, "full", p > 0)
    relax = _relaxation(*args)
    relax.rhs.value = np.array([s_true - 1e-9, 0.98])  # S ≥ 2.6, QBER ≤ 1 %
    t_nodes, _ = gauss_radau(8)
    for t in t_nodes[[0, 3, 6]]:
        mats, psi = pironio_attack(s_true)
        y = strategy_moments(args, optimal_z(mats, psi, float(t), p), psi)
        structure = relax.structure
        beta = _kind_bounds(float(t), p)
        for block, bounds in zip(structure.blocks, structure.diag_bounds(beta), strict=True):
            gamma = (block.basis @ y + block.constant).reshape(block.size, block.size, order="F")
            assert np.linalg.eigvalsh(gamma)[0] >= -1e-9  # a real moment matrix is PSD
            assert np.all(np.diag(gamma) <= bounds + 1e-9)  # and obeys the norm bounds
        assert np.all(np.abs(y) <= structure.var_bounds(beta) + 1e-9)
        rows = relax.rows
        fixed = relax.fixed_rhs
        assert np.allclose(rows[: fixed.size] @ y, fixed, atol=1e-9)  # completeness
        assert np.all(rows[fixed.size :] @ y >= relax.rhs.value - 1e-9)
        c = structure.coefficients(_objective_terms(float(t), p))
        node = _solve_node(relax, float(t), p, "CLARABEL")
        assert node.certified <= float(c @ y) + 1e-9
        assert node.certified <= node.primal + 1e-12


def test_perturbed_duals_still_certify_below_every_feasible_point() -> None:
    """Wrong duals weaken the certificate but never make it invalid."""
    s_true, p, t = 2.6, 0.0, float(gauss_radau(8)[0][2])
    args = ("2+ABZ", "chsh", 2, "full", False)
    relax = _relaxation(*args)
    relax.rhs.value = np.array([s_true - 1e-9])
    structure = relax.structure
    node = _solve_node(relax, t, p, "CLARABEL")
    mats, psi = pironio_attack(s_true)
    c = structure.coefficients(_objective_terms(t, p))
    value_at_strategy = float(c @ strategy_moments(args, optimal_z(mats, psi, t, p), psi))
    xs = [np.asarray(con.dual_value) for con in relax.psd]
    others = relax.problem.constraints[len(relax.psd) :]
    lam = np.concatenate([np.atleast_1d(np.asarray(con.dual_value)) for con in others])
    lam[: relax.n_equal] *= -1
    beta = _kind_bounds(t, p)
    common: dict[str, Any] = {
        "bases": [b.basis for b in structure.blocks],
        "constants": [b.constant for b in structure.blocks],
        "rows": relax.rows,
        "rhs": np.concatenate([relax.fixed_rhs, relax.rhs.value]),
        "n_equal": relax.n_equal,
        "c": c,
        "diag_bounds": structure.diag_bounds(beta),
        "var_bounds": structure.var_bounds(beta),
    }
    exact = certify_dual(psd_duals=xs, row_duals=lam, **common)
    assert exact.value <= node.primal and node.primal - exact.value <= 1e-5
    rng = np.random.default_rng(7)
    for scale in (1e-6, 1e-4, 1e-2):
        noisy_x = []
        for x in xs:
            g = rng.normal(size=x.shape)
            noisy_x.append(x + scale * (g + g.T))
        noisy_lam = lam + scale * rng.normal(size=lam.size)
        cert = certify_dual(psd_duals=noisy_x, row_duals=noisy_lam, **common)
        assert cert.value <= node.primal + 1e-12
        assert cert.value <= value_at_strategy + 1e-12
        assert cert.residual_norm > 0 and cert.penalty >= 0
    assert (
        certify_dual(psd_duals=[np.zeros_like(x) for x in xs], row_duals=0 * lam, **common).value
        <= node.primal
    )


def test_certify_dual_on_a_two_by_two_sdp() -> None:
    """min y s.t. [[1, y], [y, 1]] ⪰ 0 has optimum −1 with dual X = ½[[1, 1], [1, 1]]."""
    import scipy.sparse as sp

    basis = sp.csc_matrix(np.array([[0.0], [1.0], [1.0], [0.0]]))
    constant = np.array([1.0, 0.0, 0.0, 1.0])
    common: dict[str, Any] = {
        "bases": [basis],
        "constants": [constant],
        "rows": np.zeros((0, 1)),
        "rhs": np.zeros(0),
        "n_equal": 0,
        "c": np.array([1.0]),
        "row_duals": np.zeros(0),
        "diag_bounds": [np.ones(2)],
        "var_bounds": np.ones(1),
    }
    exact = certify_dual(psd_duals=[0.5 * np.ones((2, 2))], **common)
    assert -1.0 - 1e-12 <= exact.value <= -1.0
    off = certify_dual(psd_duals=[np.array([[0.4, 0.3], [0.3, 0.7]])], **common)
    assert off.value <= -1.0  # a bad dual point still gives a valid (weaker) bound
    assert off.min_eigenvalue < 0.6


def test_kind_bounds_hold_for_the_optimal_z() -> None:
    """The Sylvester minimiser respects X, Y bounds of _kind_bounds on random instances."""
    rng = np.random.default_rng(3)
    for t in (0.01, 0.3, 0.7, 0.99):
        bounds = _kind_bounds(t, 0.0)
        for _ in range(200):
            d, dq = int(rng.integers(2, 5)), int(rng.integers(2, 4))
            psi = rng.normal(size=(dq, d)) + 1j * rng.normal(size=(dq, d))
            psi *= rng.random(d) ** rng.uniform(1, 6)
            psi /= np.linalg.norm(psi)
            v = rng.normal(size=dq) + 1j * rng.normal(size=dq)
            proj = np.outer(v, v.conj()) / np.vdot(v, v)
            sigma = psi.T @ proj.T @ psi.conj()
            rho = psi.T @ psi.conj()
            z = sla.solve_sylvester(t * rho, (1 - t) * sigma, -sigma)
            x_val = np.real(np.trace(sigma @ z.conj().T @ z))
            y_val = np.real(np.trace(rho @ z @ z.conj().T))
            assert x_val <= bounds["XA"] * (1 + 1e-9)
            assert y_val <= bounds["Y"] * (1 + 1e-9)


# --------------------------------------------------------------------------- plumbing


def test_problem_is_built_once_and_dpp() -> None:
    numerical_entropy_bound(chsh=2.4, nodes=3)
    before = _relaxation.cache_info()
    numerical_entropy_bound(chsh=2.45, nodes=3)
    after = _relaxation.cache_info()
    assert after.hits == before.hits + 1 and after.misses == before.misses
    assert _relaxation("2+ABZ", "chsh", 2, "full", False).problem.is_dpp()


def test_scs_solver_and_levels() -> None:
    scs = numerical_entropy_bound(chsh=2.6, nodes=4, solver="SCS")
    clarabel = numerical_entropy_bound(chsh=2.6, nodes=4)
    assert scs.solver == "SCS"
    assert abs(scs.entropy - clarabel.entropy) <= 1e-3
    low = numerical_entropy_bound(chsh=2.2, npa_level="1+ABZ")
    high = numerical_entropy_bound(chsh=2.2, npa_level="2+ABZ")
    assert low.entropy <= high.entropy + 1e-6


def test_result_is_frozen_and_complete() -> None:
    bound = numerical_entropy_bound(chsh=2.5, nodes=5)
    assert bound.nodes == 5 and len(bound.t_nodes) == 5 and len(bound.node_certified) == 4
    assert bound.solver == "CLARABEL" and bound.seconds > 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        bound.entropy = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"chsh": 2.9},
        {"chsh": -3.0},
        {"chsh": math.nan},
        {},
        {"chsh": 2.5, "correlations": werner_table(0.9)},
        {"chsh": 2.5, "qber": 0.6},
        {"chsh": 2.5, "qber": -0.1},
        {"chsh": 2.5, "flip_probability": 0.7},
        {"chsh": 2.5, "nodes": 1},
        {"chsh": 2.5, "nodes": 2.5},
        {"chsh": 2.5, "npa_level": "3"},
        {"chsh": 2.5, "solver": "MOSEK"},
        {"correlations": np.zeros((2, 2, 2))},
        {"correlations": -werner_table(0.9)},
        {"correlations": 2 * werner_table(0.9)},
        {"correlations": werner_table(0.9)[:, :2], "key_round": True},
        {"correlations": werner_table(0.9), "qber": 0.1},
        {"correlations": werner_table(0.9), "symmetrize": "yes"},
    ],
)
def test_bad_inputs_raise(kwargs: dict[str, object]) -> None:
    with pytest.raises(DiqkdError):
        numerical_entropy_bound(**kwargs)  # type: ignore[arg-type]


def test_non_quantum_table_raises() -> None:
    pr_box = np.zeros((2, 2, 2, 2))
    for x in range(2):
        for y in range(2):
            for a in range(2):
                pr_box[x, y, a, a ^ (x & y)] = 0.5  # PR box: S = 4
    with pytest.raises(DiqkdError, match="quantum"):
        numerical_entropy_bound(correlations=pr_box, nodes=3)


def test_key_rate_rejects_bad_qber() -> None:
    with pytest.raises(DiqkdError):
        numerical_key_rate(2.5, 0.7)


def test_worker_pool_gives_the_same_certified_bound() -> None:
    alone = numerical_entropy_bound(chsh=2.55, nodes=5)
    pooled = numerical_entropy_bound(chsh=2.55, nodes=5, workers=2)
    # same SDPs; only the solvers' floating-point paths differ (threaded factorisation)
    assert pooled.node_certified == pytest.approx(alone.node_certified, abs=1e-6)
    with pytest.raises(DiqkdError):
        numerical_entropy_bound(chsh=2.55, workers=0)
