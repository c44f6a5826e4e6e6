"""Certified numerical lower bounds on H(A|X=0,E): the Brown–Fawzi–Fawzi method.

Brown, Fawzi, Fawzi, "Device-independent lower bounds on the conditional von Neumann
entropy", Quantum 8, 1445 (2024), arXiv:2106.13692 (BFF below). For the m-node Gauss–Radau
rule on [0, 1] with nodes ``t_1 < … < t_m = 1`` and weights ``w_i``, BFF's main theorem
(their Gauss–Radau bound, in the form used for their CHSH and DI-QKD examples) reads::

    H(A|X=0,E) ≥ Σ_{i=1}^{m} c_i (1 + inf Σ_a ⟨M̂_a(Z_a + Z_a* + (1−t_i) Z_a*Z_a) + t_i Z_a Z_a*⟩),
    c_i = w_i / (t_i ln 2),

the infimum running over the quantum strategies compatible with the constraints and over
Eve's operators ``Z_a`` (commuting with Alice's and Bob's). ``M̂_a = (1−p)A_{a|0} +
p A_{1−a|0}`` is Alice's key POVM followed by a bit flip with probability p (noisy
preprocessing: Ho et al., PRL 124, 230502 (2020), as in BFF's DI-QKD example). Every step
below can only lower the number, so the result stays a lower bound:

1. **One problem per node** (``inf Σ_i ≥ Σ_i inf``), as in BFF's computations.
2. **The last node (t_m = 1) is bounded analytically.** Its infimum over Z is attained at
   ``Z_a = −ρ_E⁻¹σ̂_a`` (``σ̂_a = Tr_Q[(M̂_a ⊗ 1)ψ]``), giving ``1 − Σ_a Tr[σ̂_a ρ_E⁻¹ σ̂_a]
   = 2p(1−p) + 2(1−2p)² Tr[σ₀ρ_E⁻¹σ₁]`` (using ``σ₀ + σ₁ = ρ_E``), and ``Tr[σ₀ρ_E⁻¹σ₁] =
   Tr σ₀ − Tr[σ₀ρ_E⁻¹σ₀] ≥ 0`` because ``σ₀ ≤ ρ_E``. So its term is at least
   ``2p(1−p) c_m`` (the bound in the authors' DI-QKD script), at a cost of at most
   ``c_m/2 = 1/(2m² ln 2)`` bits (0.005 at m = 12, largest near S = 2√2).
3. **NPA relaxation** of each node (Navascués, Pironio, Acín, New J. Phys. 10, 073013
   (2008)) on the rows of :data:`NPA_LEVELS`, reduced by symmetry (:mod:`._npa`).

**Certification.** The reported entropy is built from repaired dual points
(:func:`certify_dual`), never from a solver's primal value; the bounds on the moment matrix
that the repair needs follow from an elementary argument (:func:`_kind_bounds`), not from
the solver.

**Performance.** Each node's SDP is built once per structural option (cached) with CVXPY
parameters for the objective and the data, so re-solves reuse CVXPY's DPP
canonicalisation; the symmetry reduction splits the moment matrix into four blocks of
≈10 rows (CHSH constraint), which is what makes a point cost ≈0.35 s with m = 12 on two
cores (≈0.16 s with ``workers=2``), against ≈4.7 s for the unreduced matrix rebuilt per
node (``benchmarks/bench_numerical.py``).
"""

from __future__ import annotations

import functools
import math
import multiprocessing
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import cvxpy as cp
import numpy as np
import scipy.sparse as sp
from cvxpy.atoms.affine.reshape import reshape as cp_reshape
from numpy.polynomial import legendre
from numpy.typing import ArrayLike, NDArray

from diqkd.errors import DiqkdError
from diqkd.security._npa import (
    FLIP_ALL,
    SWAP_BOB,
    LetterMap,
    MomentStructure,
    Word,
    build_structure,
    canonical,
)
from diqkd.security.asymptotic import TSIRELSON_BOUND, binary_entropy

__all__ = [
    "NPA_LEVELS",
    "DualCertificate",
    "NumericalBound",
    "certify_dual",
    "gauss_radau",
    "numerical_entropy_bound",
    "numerical_key_rate",
]

NpaLevel = Literal["1+ABZ", "2+ABZ"]
SolverName = Literal["CLARABEL", "SCS"]
Symmetrize = Literal["none", "flip", "full"]

#: Rows of the moment matrix. Alice's operators are ``{E₀, E₁, A₁}`` (her key projectors
#: and x = 1 observable; they span ``{1, Â₀, Â₁}``), Bob's ``{1, B̂_y}``, Eve's ``Z_a*`` and
#: ``Z_a``. ``"2+ABZ"`` (default): NPA level 2 in Alice's and Bob's operators plus the
#: products ``AB·Z`` — the ``ABZ`` extension BFF add to level 2 — where rows ending in
#: ``Z_a`` carry Alice's key projector (``E_a Z_a``, ``A₁ E_a Z_a``) so that every row has a
#: norm bound. ``"1+ABZ"`` drops the level-2 ``AA``, ``BB`` rows: ≈3·10⁻³ bits looser at
#: S = 2.2, equal elsewhere to 10⁻⁵, ≈1.3× faster.
NPA_LEVELS: Mapping[str, str] = MappingProxyType(
    {
        "1+ABZ": "{E0,E1,A1}×{1,B_y} ∪ {E0,E1,A1}×{1,B_y}×Z_a* ∪ {E_a, A1 E_a}×{1,B_y}×Z_a",
        "2+ABZ": "1+ABZ ∪ {Â0Â1, Â1Â0, B_y B_y'}",
    }
)

_LN2 = math.log(2.0)
#: The CHSH constraint is ``S ≥ min(chsh, 2√2 − 10⁻⁷)``: weaker than ``S ≥ chsh`` (so the
#: bound stays valid) and it leaves the SDP a feasible interior at ``chsh = 2√2``.
_CHSH_CAP = TSIRELSON_BOUND - 1e-7
_OK = ("optimal", "optimal_inaccurate")
_EPS = float(np.finfo(np.float64).eps)


# --------------------------------------------------------------------------- quadrature


def gauss_radau(m: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Gauss–Radau nodes and weights on [0, 1] with the fixed node ``t_m = 1``.

    Abramowitz & Stegun, Eq. 25.4.31, reflected to fix the right end: the m − 1 free nodes
    on [−1, 1] are the roots of ``(P_{m−1}(x) − P_m(x))/(x − 1)`` (P Legendre), with weights
    ``(1 + x_i)/(m² P_{m−1}(x_i)²)``, and ``x = 1`` has weight ``2/m²``; both are then mapped to
    [0, 1]. The rule is exact for polynomials of degree ≤ 2m − 2 (the rule BFF use).

    Parameters
    ----------
    m
        Number of nodes, ``m ≥ 2``.

    Returns
    -------
    t, w
        Arrays of shape ``(m,)``: ``t`` increasing with ``t[-1] == 1``; ``w.sum() == 1``.
    """
    if m < 2:
        raise DiqkdError(f"Gauss–Radau needs at least 2 nodes, got {m}")
    coef = np.zeros(m + 1)
    coef[m - 1] = 1.0
    coef[m] = -1.0
    roots = np.sort(np.real(legendre.legroots(coef)))
    roots = roots[np.abs(roots - 1.0) > 1e-9]
    deriv = legendre.legder(coef)
    roots = roots - legendre.legval(roots, coef) / legendre.legval(roots, deriv)  # Newton polish
    pm1 = np.zeros(m)
    pm1[m - 1] = 1.0
    weights = (1.0 + roots) / (m**2 * legendre.legval(roots, pm1) ** 2)
    x = np.append(roots, 1.0)
    w = np.append(weights, 2.0 / m**2)
    return (x + 1.0) / 2.0, w / 2.0


# --------------------------------------------------------------------------- the node SDP


def _rows(level: str, bob_inputs: int, both_projectors: bool) -> list[dict[Word, float]]:
    """Rows of the moment matrix (:data:`NPA_LEVELS`); ``both_projectors`` adds the rows
    ``E_{1−a}Z_a`` that the objective needs when the flip probability is positive."""
    alice: list[Word] = [("E0",), ("E1",), ("A1",)]
    bob: list[Word] = [(), *((f"B{y}",) for y in range(bob_inputs))]
    rows: list[dict[Word, float]] = [{a + b: 1.0} for a in alice for b in bob]
    if level == "2+ABZ":
        rows.append({("E0", "A1"): 1.0, ("E1", "A1"): -1.0})  # Â₀Â₁
        rows.append({("A1", "E0"): 1.0, ("A1", "E1"): -1.0})  # Â₁Â₀
        rows += [
            {(f"B{y}", f"B{z}"): 1.0}
            for y in range(bob_inputs)
            for z in range(bob_inputs)
            if y != z
        ]
    for a in range(2):
        rows += [{u + b + (f"Z{a}*",): 1.0} for u in alice for b in bob]
        for e in range(2):
            if e == a or both_projectors:
                rows += [
                    {u + b + (f"Z{a}",): 1.0} for u in ((f"E{e}",), ("A1", f"E{e}")) for b in bob
                ]
    return rows


def _objective_terms(t: float, p: float) -> dict[Word, float]:
    """BFF node objective ``Σ_a ⟨M̂_a(Z_a + Z_a* + (1−t)Z_a*Z_a) + t Z_aZ_a*⟩`` as words.

    ``M̂_a = (1−p)E_a + pE_{1−a}``. ``⟨E_bZ_a⟩`` and ``⟨E_bZ_a*⟩`` share one real variable
    (hence the factor 2) and ``⟨Z_aZ_a*⟩ = ⟨E₀Z_aZ_a*⟩ + ⟨E₁Z_aZ_a*⟩`` (completeness).
    """
    terms: dict[Word, float] = {}
    for a in range(2):
        z, zs = f"Z{a}", f"Z{a}*"
        for e, weight in ((a, 1.0 - p), (1 - a, p)):
            if weight > 0.0:
                terms[(f"E{e}", z)] = 2.0 * weight
                terms[(f"E{e}", zs, z)] = (1.0 - t) * weight
        for e in range(2):
            terms[(f"E{e}", z, zs)] = t
    return terms


def _kind_bounds(t: float, p: float) -> dict[str, float]:
    """Bounds on ``‖u ψ‖²`` for the norm kinds of :mod:`diqkd.security._npa` at node t.

    For a fixed strategy, ``f_a(Z) = 2Re Tr[σ̂_a Z] + (1−t)X + tY`` with ``X = ⟨Z*M̂_aZ⟩ =
    Tr[σ̂_a Z*Z]``, ``Y = ⟨ZZ*⟩ = Tr[ρ_E ZZ*]``, ``0 ≤ σ̂_a ≤ ρ_E`` and ``Tr σ̂_a ≤ 1``. The node
    infimum is ``Σ_a inf_Z f_a`` and ``f_a(0) = 0``, so it may be taken over ``f_a(Z) ≤ 0``
    only. Cauchy–Schwarz gives ``|Tr σ̂Z| ≤ √X`` and ``|Tr σ̂Z| = |Tr[σ̂ρ^{-1/2}·ρ^{1/2}Z]| ≤
    √Y`` (``σ̂ρ⁻¹σ̂ ≤ σ̂``); with ``f_a ≤ 0`` this forces ``(1−t)X ≤ 2√X``, ``(1−t)X ≤ 2√Y − tY
    ≤ 1/t`` and the same with X, Y and t, 1−t exchanged: ``X ≤ min(4/(1−t)², 1/(t(1−t)))``,
    ``Y ≤ min(4/t², 1/(t(1−t)))``. As ``M̂_a ≥ (1−p)E_a`` and ``M̂_a ≥ pE_{1−a}``,
    ``⟨Z*E_aZ⟩ ≤ X/(1−p)`` and ``⟨Z*E_{1−a}Z⟩ ≤ X/p``; unitaries and projectors in front do
    not increase these. No bound on the operator norm ‖Z‖ is needed.
    """
    x = min(4.0 / (1.0 - t) ** 2, 1.0 / (t * (1.0 - t)))
    y = min(4.0 / t**2, 1.0 / (t * (1.0 - t)))
    return {"1": 1.0, "Y": y, "XA": x / (1.0 - p), "XO": x / p if p > 0.0 else math.inf}


def _correlator(x: int, y: int) -> dict[Word, float]:
    """``⟨Â_x B̂_y⟩`` in the relaxation's letters (``Â₀ = E₀ − E₁``)."""
    if x == 0:
        return {("E0", f"B{y}"): 1.0, ("E1", f"B{y}"): -1.0}
    return {("A1", f"B{y}"): 1.0}


def _completeness_rows(
    structure: MomentStructure,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Equalities ``⟨w E₀ w'⟩ + ⟨w E₁ w'⟩ = ⟨w w'⟩`` among the relaxation's variables.

    For each variable word with a letter ``E_b``, the words with ``E_{1−b}`` instead and with
    the letter removed are looked up; the identity is kept when all are known (the empty
    word is the constant 1, a vanishing word 0). Duplicate rows are dropped.
    """
    found: dict[tuple[float, ...], tuple[NDArray[np.float64], float]] = {}
    for word in structure.words:
        for pos, letter in enumerate(word):
            if letter not in ("E0", "E1"):
                continue
            other = "E1" if letter == "E0" else "E0"
            vec = np.zeros(structure.n_vars)
            rhs = 0.0
            complete = True
            for w, coef in (
                (word, 1.0),
                ((*word[:pos], other, *word[pos + 1 :]), 1.0),
                ((*word[:pos], *word[pos + 1 :]), -1.0),
            ):
                cw = canonical(w)
                if cw is None:
                    continue
                if not cw:
                    rhs -= coef
                    continue
                entry = structure.index.get(cw)
                if entry is None:
                    complete = False
                    break
                sign, k = entry
                if k >= 0:
                    vec[k] += sign * coef
            nonzero = np.flatnonzero(vec)
            if not complete or nonzero.size == 0:
                continue
            scale = vec[nonzero[0]]
            key = (*np.round(vec / scale, 12), round(rhs / scale, 12))
            found[key] = (vec, rhs)
    if not found:
        return np.zeros((0, structure.n_vars)), np.zeros(0)
    return np.vstack([v for v, _ in found.values()]), np.array([r for _, r in found.values()])


@dataclass(frozen=True)
class _Relaxation:
    """A built node SDP ``min c·y`` s.t. PSD blocks, completeness and data rows."""

    structure: MomentStructure
    problem: Any
    c: Any
    rhs: Any
    psd: tuple[Any, ...]
    rows: NDArray[np.float64]
    fixed_rhs: NDArray[np.float64]
    n_equal: int
    repair: NDArray[np.float64]


@functools.lru_cache(maxsize=16)
def _relaxation(
    level: str, mode: str, bob_inputs: int, symmetry: str, both_projectors: bool
) -> _Relaxation:
    """Build (once per structural option; cached) the DPP-parametrised node SDP.

    Constraints after the PSD blocks: the completeness equalities, then the data —
    ``mode == "chsh"``: ``S ≥ rhs₀`` (and ``⟨Â₀B̂₂⟩ ≥ rhs₁`` with 3 Bob inputs);
    ``mode == "table"``: ``⟨Â_xB̂_y⟩ = rhs`` for the correlators that the symmetry leaves
    distinct (and the marginals when ``symmetry == "none"``). ``symmetry``: ``"flip"``
    (outcome flip), ``"full"`` (flip and Bob-input swap) or ``"none"``.
    """
    generators: list[LetterMap] = []
    if symmetry in ("flip", "full"):
        generators.append(FLIP_ALL)
    if symmetry == "full":
        generators.append(SWAP_BOB)
    structure = build_structure(_rows(level, bob_inputs, both_projectors), generators)
    comp_matrix, comp_rhs = _completeness_rows(structure)
    data_rows: list[NDArray[np.float64]] = []
    for functional in _data_functionals(mode, bob_inputs, symmetry):
        data_rows.append(structure.coefficients(functional))
    y = cp.Variable(structure.n_vars)
    c = cp.Parameter(structure.n_vars)
    rhs = cp.Parameter(len(data_rows))
    psd = []
    for block in structure.blocks:
        n = block.size
        psd.append(cp_reshape(block.basis @ y + block.constant, (n, n), order="F") >> 0)
    data_matrix = np.vstack(data_rows)
    constraints = [*psd]
    if comp_matrix.shape[0]:
        constraints.append(comp_matrix @ y == comp_rhs)
    constraints.append(data_matrix @ y == rhs if mode == "table" else data_matrix @ y >= rhs)
    n_equal = comp_matrix.shape[0] + (len(data_rows) if mode == "table" else 0)
    rows = np.vstack([comp_matrix, data_matrix])
    return _Relaxation(
        structure=structure,
        problem=cp.Problem(cp.Minimize(c @ y), constraints),
        c=c,
        rhs=rhs,
        psd=tuple(psd),
        rows=rows,
        fixed_rhs=comp_rhs,
        n_equal=n_equal,
        repair=_repair_operator([b.basis for b in structure.blocks], rows[:n_equal]),
    )


def _data_functionals(mode: str, bob_inputs: int, symmetry: str) -> list[dict[Word, float]]:
    """The constrained functionals (values in the same order: :func:`_table_data`)."""
    if mode == "chsh":
        chsh: dict[Word, float] = {}
        for (x, y), sign in (((0, 0), 1.0), ((0, 1), 1.0), ((1, 0), 1.0), ((1, 1), -1.0)):
            for w, c in _correlator(x, y).items():
                chsh[w] = chsh.get(w, 0.0) + sign * c
        return [chsh] + ([_correlator(0, 2)] if bob_inputs == 3 else [])
    pairs = [(0, 0), (1, 0)] if symmetry == "full" else [(0, 0), (0, 1), (1, 0), (1, 1)]
    out = [_correlator(x, y) for x, y in pairs]
    if bob_inputs == 3:
        out.append(_correlator(0, 2))
    if symmetry == "none":
        out.append({("E0",): 1.0, ("E1",): -1.0})
        out.append({("A1",): 1.0})
        out += [{(f"B{y}",): 1.0} for y in range(bob_inputs)]
    return out


# --------------------------------------------------------------------------- certificate


@dataclass(frozen=True, kw_only=True)
class DualCertificate:
    """A rigorous lower bound on one SDP's optimum, from a repaired dual point.

    Attributes
    ----------
    value
        Certified lower bound on ``min c·y`` over every feasible point whose moment matrix
        diagonal and moments obey the stated bounds.
    dual_objective
        The solver's dual objective before repair (not certified).
    residual_norm
        ‖c − Σ_b B_bᵀ vec X_b − Rᵀλ‖₂ at the solver's dual point (its dual infeasibility).
    min_eigenvalue
        Smallest eigenvalue over the rescaled repaired blocks ``D_b X_b D_b``.
    penalty
        ``dual_objective − value``: the price of the repair, the negative eigenvalues, the
        leftover residual and rounding.
    """

    value: float
    dual_objective: float
    residual_norm: float
    min_eigenvalue: float
    penalty: float


def _repair_operator(
    bases: Sequence[sp.spmatrix], equality_rows: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Pseudo-inverse of ``[G, R_eqᵀ]`` (``G_kl = Σ_b ⟨F_kᵇ, F_lᵇ⟩``), see :func:`certify_dual`."""
    k = equality_rows.shape[1]
    gram = np.zeros((k, k))
    for b in bases:
        bb = sp.csc_matrix(b)
        gram += (bb.T @ bb).toarray()
    return np.asarray(np.linalg.pinv(np.hstack([gram, equality_rows.T]), rcond=1e-12))


def certify_dual(
    *,
    bases: Sequence[sp.spmatrix],
    constants: Sequence[NDArray[np.float64]],
    rows: NDArray[np.float64],
    rhs: NDArray[np.float64],
    n_equal: int,
    c: NDArray[np.float64],
    psd_duals: Sequence[NDArray[np.float64]],
    row_duals: NDArray[np.float64],
    diag_bounds: Sequence[NDArray[np.float64]],
    var_bounds: NDArray[np.float64],
    repair: NDArray[np.float64] | None = None,
) -> DualCertificate:
    """Turn an approximate dual solution into a valid lower bound (weak duality, repaired).

    Primal: ``min c·y`` s.t. ``Γ_b(y) = F₀ᵇ + Σ_k y_k F_kᵇ ⪰ 0`` (``vec F_kᵇ`` is column k of
    ``bases[b]``, ``vec F₀ᵇ = constants[b]``, column-major), ``R_i·y = rhs_i`` for the first
    ``n_equal`` rows and ``R_i·y ≥ rhs_i`` for the rest. For *any* symmetric ``X_b`` and any
    λ with ``λ_i ≥ 0`` on the inequality rows, writing ``r = c − Σ_b B_bᵀ vec X_b − Rᵀλ``,
    every feasible y satisfies

        c·y = Σ_b ⟨X_b, Γ_b(y)⟩ − Σ_b ⟨X_b, F₀ᵇ⟩ + λᵀR y + r·y
            ≥ Σ_b ⟨X_b, Γ_b(y)⟩ − Σ_b ⟨X_b, F₀ᵇ⟩ + λᵀrhs + r·y.

    The solver's point is repaired without trusting its accuracy:

    1. ``X_b`` is symmetrised and inequality multipliers are clipped to ``λ_i ≥ 0``;
    2. the residual is removed by the least-norm step ``X_b += Σ_k β_k F_kᵇ``,
       ``λ_eq += δ`` with ``Gβ + R_eqᵀδ = r`` (``G_kl = Σ_b⟨F_kᵇ, F_lᵇ⟩``); what remains
       (``r'``, rounding or a part outside that range) is bounded by ``Σ_k |r'_k| v_k`` with
       ``|y_k| ≤ v_k = var_bounds[k]``;
    3. the PSD term: with ``D_b = diag(d_b)^{1/2}`` where ``Γ_b,ii ≤ d_b,i``, the matrix
       ``D_b⁻¹Γ_bD_b⁻¹`` is PSD with trace ≤ n_b, so ``⟨X_b, Γ_b⟩ = ⟨D_bX_bD_b, D_b⁻¹Γ_bD_b⁻¹⟩
       ≥ n_b · min(0, λ_min(D_bX_bD_b))``; the eigenvalue is lowered by ``10 n_b ε ‖·‖₂``
       for the eigensolver's backward error.

    The result, minus a rounding margin for the final sums, bounds ``c·y`` from below for
    every feasible y with those diagonal and moment bounds. This is the rigorous-bound
    construction of Jansson, Chaykin, Keil, SIAM J. Numer. Anal. 46, 180 (2007), Sec. 3,
    with the primal bounds supplied by the physics (norms of the row operators).

    Parameters
    ----------
    bases, constants
        Per block b: sparse ``(n_b², K)`` matrix and ``(n_b²,)`` vector.
    rows, rhs, n_equal
        Linear constraints ``R`` (shape ``(r, K)``), right-hand side ``(r,)``, and the number
        of leading equality rows.
    c
        Objective, shape ``(K,)``.
    psd_duals
        The solver's ``X_b``, shape ``(n_b, n_b)``, sign convention ``c = Σ_b B_bᵀ vec X_b +
        Rᵀλ``.
    row_duals
        The solver's λ, shape ``(r,)``, same convention.
    diag_bounds
        Per block, bounds ``d_b`` on Γ_b's diagonal, shape ``(n_b,)``, positive (``inf``
        allowed: then any negative eigen-direction makes the bound ``−inf``).
    var_bounds
        ``v``, bounds on ``|y_k|``, shape ``(K,)``.
    repair
        Optional precomputed pseudo-inverse of ``[G, R_eqᵀ]`` (shape ``(K + n_equal, K)``).

    Returns
    -------
    DualCertificate
    """
    c = np.asarray(c, dtype=np.float64)
    lam = np.array(row_duals, dtype=np.float64).reshape(-1)
    lam[n_equal:] = np.maximum(lam[n_equal:], 0.0)
    basis_list = [sp.csc_matrix(b) for b in bases]
    mats = [
        0.5 * (np.asarray(x, dtype=np.float64) + np.asarray(x, dtype=np.float64).T)
        for x in psd_duals
    ]

    def residual(
        xs: Sequence[NDArray[np.float64]], lam_: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        r = c - rows.T @ lam_
        for b, x in zip(basis_list, xs, strict=True):
            r = r - b.T @ x.reshape(-1, order="F")
        return np.asarray(r, dtype=np.float64)

    def dual_objective(
        xs: Sequence[NDArray[np.float64]], lam_: NDArray[np.float64]
    ) -> tuple[float, float]:
        terms = [float(v) for v in lam_ * rhs]
        terms += [
            -float(f0 @ x.reshape(-1, order="F")) for f0, x in zip(constants, xs, strict=True)
        ]
        return math.fsum(terms), math.fsum(abs(t) for t in terms)

    raw_objective, _ = dual_objective(mats, lam)
    r = residual(mats, lam)
    if repair is None:
        repair = _repair_operator(basis_list, rows[:n_equal])
    step = repair @ r
    lam[:n_equal] += step[c.size :]
    fixed = []
    for b, x in zip(basis_list, mats, strict=True):
        dx = np.asarray(b @ step[: c.size]).reshape(x.shape, order="F")
        fixed.append(x + 0.5 * (dx + dx.T))
    leftover = residual(fixed, lam)
    penalty_psd = 0.0
    min_eig = math.inf
    for x, d in zip(fixed, diag_bounds, strict=True):
        n = x.shape[0]
        root = np.sqrt(np.asarray(d, dtype=np.float64))
        finite = np.isfinite(root)
        scaled = x * np.where(finite, root, 1.0)[:, None] * np.where(finite, root, 1.0)[None, :]
        eig = np.linalg.eigvalsh(scaled)
        low = float(eig[0]) - 10.0 * n * _EPS * float(np.max(np.abs(eig)))
        min_eig = min(min_eig, float(eig[0]))
        if low < 0.0:
            penalty_psd += n * low if np.all(finite) else -math.inf
    value, magnitude = dual_objective(fixed, lam)
    bounds = np.asarray(var_bounds, dtype=np.float64)
    touched = leftover != 0.0
    penalty_res = float(np.sum(np.abs(leftover[touched]) * bounds[touched]))
    rounding = 8.0 * (rows.shape[0] + sum(x.size for x in fixed)) * _EPS * (magnitude + 1.0)
    certified = value + penalty_psd - penalty_res - rounding
    return DualCertificate(
        value=certified,
        dual_objective=raw_objective,
        residual_norm=float(np.linalg.norm(r)),
        min_eigenvalue=min_eig,
        penalty=raw_objective - certified,
    )


# --------------------------------------------------------------------------- one node


@dataclass(frozen=True)
class _NodeResult:
    certified: float
    primal: float
    solver: str
    status: str
    residual: float


def _solve_node(relax: _Relaxation, t: float, p: float, solver: str) -> _NodeResult:
    """Solve node t (``solver`` first, the other one if it fails) and certify it."""
    structure = relax.structure
    c = structure.coefficients(_objective_terms(t, p))
    relax.c.value = c
    order = [solver, "SCS" if solver == "CLARABEL" else "CLARABEL"]
    failures: list[str] = []
    for name in order:
        options: dict[str, Any] = {}
        if name == "SCS":
            options = {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 200_000}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "solution may be inaccurate": we certify
                relax.problem.solve(solver=name, **options)
        except cp.error.SolverError as exc:
            failures.append(f"{name}: {exc}")
            continue
        status = str(relax.problem.status)
        if status in ("infeasible", "infeasible_inaccurate"):
            raise DiqkdError(
                f"no quantum strategy meets these constraints at this NPA level ({name}: "
                f"{status}); a correlation table must be no-signalling and quantum — pass "
                "chsh= instead or smooth the table"
            )
        if status not in _OK or any(con.dual_value is None for con in relax.psd):
            failures.append(f"{name}: {status}")
            continue
        others = relax.problem.constraints[len(relax.psd) :]
        lam = np.concatenate(
            [np.atleast_1d(np.asarray(con.dual_value, dtype=np.float64)) for con in others]
        )
        lam[: relax.n_equal] *= -1.0  # CVXPY: c = Σ Bᵀ vec X − R_eqᵀ μ + R_inᵀ ν
        beta = _kind_bounds(t, p)
        cert = certify_dual(
            bases=[b.basis for b in structure.blocks],
            constants=[b.constant for b in structure.blocks],
            rows=relax.rows,
            rhs=np.concatenate([relax.fixed_rhs, np.asarray(relax.rhs.value, dtype=np.float64)]),
            n_equal=relax.n_equal,
            c=c,
            psd_duals=[np.asarray(con.dual_value, dtype=np.float64) for con in relax.psd],
            row_duals=lam,
            diag_bounds=structure.diag_bounds(beta),
            var_bounds=structure.var_bounds(beta),
            repair=relax.repair,
        )
        return _NodeResult(cert.value, float(relax.problem.value), name, status, cert.residual_norm)
    raise DiqkdError(f"every SDP solver failed on a BFF node ({'; '.join(failures)})")


_Task = tuple[str, str, int, str, bool, tuple[float, ...], float, float, str]


def _node_task(task: _Task) -> _NodeResult:
    """One node in a worker process (its relaxation is built once there and cached)."""
    level, mode, bob_inputs, symmetry, both, data, t, p, solver = task
    relax = _relaxation(level, mode, bob_inputs, symmetry, both)
    relax.rhs.value = np.asarray(data, dtype=np.float64)
    return _solve_node(relax, t, p, solver)


class _Pool:
    """A lazily started, reused pool of ``spawn`` worker processes (one size at a time)."""

    def __init__(self) -> None:
        self._executor: ProcessPoolExecutor | None = None
        self._size = 0

    def get(self, workers: int) -> ProcessPoolExecutor:
        if self._executor is None or self._size != workers:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
            context = multiprocessing.get_context("spawn")  # fork is unsafe with solver threads
            self._executor = ProcessPoolExecutor(max_workers=workers, mp_context=context)
            self._size = workers
        return self._executor


_POOL = _Pool()


# --------------------------------------------------------------------------- public API


@dataclass(frozen=True, kw_only=True)
class NumericalBound:
    """Result of :func:`numerical_entropy_bound`.

    Attributes
    ----------
    entropy
        Certified lower bound on H(A|X=0,E) in bits (H(Â|X=0,E) for the flipped key bit when
        ``flip_probability > 0``), clipped to [0, 1] (both clips keep it valid).
    certified_sum
        The unclipped certified value ``Σ_{i<m} c_i (1 + v_i) + 2p(1−p) c_m``.
    primal_value
        The same sum with the solvers' primal objective values — *not* certified (it
        estimates the relaxation from above); for diagnostics only.
    nodes
        Number m of Gauss–Radau nodes (m − 1 SDPs were solved).
    npa_level
        Key of :data:`NPA_LEVELS`.
    solver
        Solver(s) used, ``"CLARABEL"``, ``"SCS"``, or ``"CLARABEL+SCS"`` after a fallback.
    status
        ``"optimal"`` if every node reached the solver's tolerances, else
        ``"optimal_inaccurate"`` (harmless for ``entropy``, which is certified either way).
    seconds
        Wall time of the call.
    constraints
        What the relaxation was constrained by, in words.
    flip_probability
        Noisy-preprocessing flip probability p.
    t_nodes, weights
        The quadrature rule, m values each.
    node_certified, node_primal
        Per solved node i < m: certified lower bound on, and solver's value of, its SDP.
    dual_residual
        Largest dual residual norm of the solvers' points before repair.
    """

    entropy: float
    certified_sum: float
    primal_value: float
    nodes: int
    npa_level: str
    solver: str
    status: str
    seconds: float
    constraints: str
    flip_probability: float
    t_nodes: tuple[float, ...]
    weights: tuple[float, ...]
    node_certified: tuple[float, ...]
    node_primal: tuple[float, ...]
    dual_residual: float


def _check_common(flip_probability: float, nodes: int, npa_level: str, solver: str) -> None:
    if not (math.isfinite(flip_probability) and 0.0 <= flip_probability <= 0.5):
        raise DiqkdError(
            f"flip probability must lie in [0, 0.5], got {flip_probability} "
            "(p > 0.5 is 1 − p with Alice's bit relabelled)"
        )
    if isinstance(nodes, bool) or not isinstance(nodes, int) or not 2 <= nodes <= 40:
        raise DiqkdError(f"nodes must be an integer in [2, 40], got {nodes!r}")
    if npa_level not in NPA_LEVELS:
        raise DiqkdError(f"unknown NPA level {npa_level!r}; choose one of {sorted(NPA_LEVELS)}")
    if solver not in ("CLARABEL", "SCS"):
        raise DiqkdError(f"solver must be 'CLARABEL' or 'SCS', got {solver!r}")


def _check_table(correlations: ArrayLike, key_round: bool) -> NDArray[np.float64]:
    try:
        table = np.asarray(correlations, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DiqkdError(f"correlations must be a numeric array P[x, y, a, b]: {exc}") from exc
    if (
        table.ndim != 4
        or table.shape[0] != 2
        or table.shape[1] not in (2, 3)
        or table.shape[2:] != (2, 2)
    ):
        raise DiqkdError(
            f"correlations must have shape (2, 3, 2, 2) or (2, 2, 2, 2), indexed P[x, y, a, b]; "
            f"got {table.shape}"
        )
    if key_round and table.shape[1] != 3:
        raise DiqkdError("key_round=True needs Bob's key setting y = 2: shape (2, 3, 2, 2)")
    if not np.all(np.isfinite(table)):
        raise DiqkdError("correlations contain NaN or infinite entries")
    if np.min(table) < -1e-9:
        raise DiqkdError(f"correlations contain a negative probability ({np.min(table):.3g})")
    deviation = float(np.max(np.abs(table.sum(axis=(2, 3)) - 1.0)))
    if deviation > 1e-6:
        raise DiqkdError(
            f"each P(·,·|x,y) must sum to 1 (largest deviation {deviation:.3g}); "
            "normalise the table"
        )
    return table


def _table_data(
    table: NDArray[np.float64], key_round: bool, symmetrize: str
) -> tuple[str, NDArray[np.float64], str]:
    """Symmetry to use, constrained values (order of :func:`_data_functionals`), description."""
    corr = np.einsum("xyab,ab->xy", table, np.array([[1.0, -1.0], [-1.0, 1.0]]))
    symmetry = symmetrize
    if (
        symmetrize == "flip"
        and abs(corr[0, 0] - corr[0, 1]) <= 1e-12
        and abs(corr[1, 0] + corr[1, 1]) <= 1e-12
    ):
        symmetry = "full"  # already invariant under the Bob-input swap: an exact reduction
    if symmetry == "full":
        values = [0.5 * (corr[0, 0] + corr[0, 1]), 0.5 * (corr[1, 0] - corr[1, 1])]
    else:
        values = [corr[0, 0], corr[0, 1], corr[1, 0], corr[1, 1]]
    if key_round:
        values.append(corr[0, 2])
    described = "correlators E_xy (x,y∈{0,1})" + (", E_02" if key_round else "")
    if symmetry == "none":
        alice = table[:, 0].sum(axis=2)  # P(a|x), read off Bob's y = 0 column
        bob = table[0].sum(axis=1)  # P(b|y), read off Alice's x = 0 row
        values += [alice[x, 0] - alice[x, 1] for x in range(2)]
        values += [bob[y, 0] - bob[y, 1] for y in range(2 + int(key_round))]
        described += " and marginals"
    else:
        described += {"flip": ", outcome-symmetrised", "full": ", fully symmetrised"}[symmetry]
    return symmetry, np.array(values, dtype=np.float64), described


def numerical_entropy_bound(
    *,
    chsh: float | None = None,
    qber: float | None = None,
    correlations: ArrayLike | None = None,
    flip_probability: float = 0.0,
    key_round: bool = False,
    symmetrize: Symmetrize = "flip",
    nodes: int = 12,
    npa_level: NpaLevel = "2+ABZ",
    solver: SolverName = "CLARABEL",
    workers: int = 1,
) -> NumericalBound:
    """Certified BFF lower bound on H(A|X=0,E) (bits) for CHSH-based DI-QKD.

    Brown, Fawzi, Fawzi, Quantum 8, 1445 (2024) (module docstring: the inequality, its
    three relaxations and the certificate). Alice's key bit is her x = 0 outcome, flipped
    with probability ``flip_probability`` (noisy preprocessing). Give exactly one of:

    * ``chsh`` — constrain ``S = E₀₀ + E₀₁ + E₁₀ − E₁₁ ≥ chsh`` (Clauser et al., PRL 23, 880
      (1969)). With ``qber`` as well, Bob's key observable joins the relaxation with
      ``P(a ≠ b | 0, 2) ≤ qber``. That cannot raise the bound: Pironio et al.'s optimal
      attack (New J. Phys. 11, 045021 (2009)) is a Bell-diagonal state on ``Φ±`` with
      ``A₀ = σ_z``, whose ``σ_z`` outcomes Bob reproduces exactly, so it meets every QBER ≥ 0.
      Hence :func:`numerical_key_rate` constrains S only (Q enters through ``h(Q)``).
    * ``correlations`` — ``P[x, y, a, b]``, shape (2, 3, 2, 2) or (2, 2, 2, 2). The
      correlators ``E_xy`` (x, y ∈ {0, 1}) are constrained, plus ``E₀₂`` with ``key_round``.
      ``symmetrize="flip"`` (default) replaces the table by the average with its
      outcome-flipped copy (marginals ½; if ``E₀₀ = E₀₁`` and ``E₁₀ = −E₁₁`` it also uses the
      Bob-input swap, which is then exact); ``"full"`` averages over both symmetries (fast,
      keeps only ``E₀₀+E₀₁`` and ``E₁₀−E₁₁``); ``"none"`` keeps the marginals (one large SDP
      block, ≈10× slower). Averaging never raises the result and keeps it valid: the
      relaxation's value is a convex function of the constrained values (Boyd &
      Vandenberghe, Convex Optimization (2004), Sec. 5.6.1) and unchanged by the symmetry.

    Parameters
    ----------
    chsh
        Lower bound on the CHSH value, ``|chsh| ≤ 2√2``.
    qber
        Upper bound on the key-round QBER in [0, 0.5] (with ``chsh`` only).
    correlations
        Correlation table P(a, b | x, y) indexed ``[x, y, a, b]``.
    flip_probability
        p ∈ [0, 0.5].
    key_round
        With ``correlations``: also constrain ``E₀₂`` (Bob's key setting y = 2).
    symmetrize
        With ``correlations``: ``"flip"``, ``"full"`` or ``"none"`` (above).
    nodes
        Number m ∈ [2, 40] of Gauss–Radau nodes (m − 1 SDPs).
    npa_level
        A key of :data:`NPA_LEVELS`.
    solver
        ``"CLARABEL"`` (default) or ``"SCS"``; the other is tried if a node fails.
    workers
        Solve the nodes in this many worker processes (a pool started on first use and
        reused; each worker builds its own cached problem). 1 (default) solves in-process.
        On 2 cores, 2 workers take ≈0.45× the time per point once the pool is warm; the
        first call pays the pool's start-up (≈2 s), so use it for sweeps.

    Returns
    -------
    NumericalBound
        ``entropy`` is certified by :func:`certify_dual`.

    Raises
    ------
    DiqkdError
        For impossible inputs (``|S| > 2√2``, QBER or p out of range, malformed or
        non-quantum table, both or neither of ``chsh``/``correlations``) or if every solver
        fails on a node.
    """
    start = time.perf_counter()
    _check_common(flip_probability, nodes, npa_level, solver)
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 64:
        raise DiqkdError(f"workers must be an integer in [1, 64], got {workers!r}")
    if (chsh is None) == (correlations is None):
        raise DiqkdError("give exactly one of chsh= or correlations=")
    p = float(flip_probability)
    if chsh is not None:
        if not math.isfinite(chsh) or abs(chsh) > TSIRELSON_BOUND + 1e-9:
            raise DiqkdError(f"CHSH value must be finite with |S| ≤ 2√2 ≈ 2.8284, got {chsh}")
        if qber is not None and not (math.isfinite(qber) and 0.0 <= qber <= 0.5):
            raise DiqkdError(f"QBER must lie in [0, 0.5], got {qber}")
        values = [min(float(chsh), _CHSH_CAP)]
        described = f"CHSH ≥ {chsh:.6g}"
        if qber is not None:
            values.append(1.0 - 2.0 * float(qber))
            described += f", QBER(x=0,y=2) ≤ {qber:.6g}"
        key = (npa_level, "chsh", 2 if qber is None else 3, "full", p > 0.0)
        data = np.array(values)
    elif correlations is not None:
        if qber is not None:
            raise DiqkdError("qber= goes with chsh=; with a table use key_round=True")
        if symmetrize not in ("none", "flip", "full"):
            raise DiqkdError(f"symmetrize must be 'none', 'flip' or 'full', got {symmetrize!r}")
        table = _check_table(correlations, key_round)
        symmetry, data, described = _table_data(table, key_round, symmetrize)
        key = (npa_level, "table", 3 if key_round else 2, symmetry, p > 0.0)
    else:  # pragma: no cover - excluded by the exactly-one check above
        raise DiqkdError("give exactly one of chsh= or correlations=")
    t_nodes, weights = gauss_radau(nodes)
    if workers == 1:
        relax = _relaxation(*key)
        relax.rhs.value = data
        results = [_solve_node(relax, float(t), p, solver) for t in t_nodes[:-1]]
    else:
        rhs = tuple(float(v) for v in data)
        tasks = [(*key, rhs, float(t), p, solver) for t in t_nodes[:-1]]
        results = list(_POOL.get(workers).map(_node_task, tasks))
    coef = weights / (t_nodes * _LN2)
    last = 2.0 * p * (1.0 - p) * float(coef[-1])
    certified = (
        math.fsum(float(k) * (1.0 + r.certified) for k, r in zip(coef, results, strict=False))
        + last
    )
    primal = (
        math.fsum(float(k) * (1.0 + r.primal) for k, r in zip(coef, results, strict=False)) + last
    )
    used = sorted({r.solver for r in results}, key=lambda name: name != solver)
    return NumericalBound(
        entropy=min(1.0, max(0.0, certified)),
        certified_sum=certified,
        primal_value=primal,
        nodes=nodes,
        npa_level=npa_level,
        solver="+".join(used),
        status="optimal" if all(r.status == "optimal" for r in results) else "optimal_inaccurate",
        seconds=time.perf_counter() - start,
        constraints=described,
        flip_probability=p,
        t_nodes=tuple(float(x) for x in t_nodes),
        weights=tuple(float(x) for x in weights),
        node_certified=tuple(r.certified for r in results),
        node_primal=tuple(r.primal for r in results),
        dual_residual=max(r.residual for r in results),
    )


def numerical_key_rate(
    chsh: float,
    qber: float,
    *,
    flip_probability: float = 0.0,
    nodes: int = 12,
    npa_level: NpaLevel = "2+ABZ",
    solver: SolverName = "CLARABEL",
    workers: int = 1,
) -> float:
    """Asymptotic key rate ``r = H(Â|X=0,E) − h(p + Q − 2pQ)`` with the certified BFF entropy.

    Devetak–Winter rate for collective attacks with one-way error correction at the Shannon
    limit (Pironio et al., New J. Phys. 11, 045021 (2009), Eq. (12); noisy preprocessing:
    Ho et al., PRL 124, 230502 (2020)); H from :func:`numerical_entropy_bound` with the CHSH
    constraint alone (see there why the QBER cannot tighten it). May be negative.

    Parameters
    ----------
    chsh
        Observed CHSH value S, ``|S| ≤ 2√2``.
    qber
        Key-round QBER Q ∈ [0, 0.5].
    flip_probability, nodes, npa_level, solver, workers
        As in :func:`numerical_entropy_bound`.

    Returns
    -------
    float
        Secret bits per key round.
    """
    if not (math.isfinite(qber) and 0.0 <= qber <= 0.5):
        raise DiqkdError(f"QBER must lie in [0, 0.5], got {qber}")
    bound = numerical_entropy_bound(
        chsh=chsh,
        flip_probability=flip_probability,
        nodes=nodes,
        npa_level=npa_level,
        solver=solver,
    )
    p = float(flip_probability)
    return bound.entropy - binary_entropy(p + qber - 2.0 * p * qber)
