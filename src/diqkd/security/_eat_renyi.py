"""Single-round Rényi entropies of the CHSH protocol (private helpers of :mod:`.finite`).

Everything here is a *lower bound* on a single-round quantity that the Rényi entropy
accumulation of :mod:`diqkd.security.finite` needs; the derivation is in ``docs/finite-size.md``.

Notation: ``ω`` is the CHSH winning probability (``S = 8ω − 4``), ``p`` Alice's noisy-preprocessing
flip probability, ``α > 1`` the Rényi order, ``H_α`` the sandwiched Rényi conditional entropy
``H_α(A|E) = −D_α(ρ_AE ‖ 1_A ⊗ ρ_E)`` (Müller-Lennert et al. 2013; Wilde, Winter, Yang 2014),
with the marginal ``ρ_E`` in the second argument (the quantity of the chain rule of
Dupuis, Fawzi, Renner, CMP 379, 867 (2020), Corollary 3.5).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "OMEGA_MAX",
    "OMEGA_MIN",
    "bell_diagonal_key_entropy",
    "flip_renyi_entropy",
    "key_renyi_entropy",
    "max_chsh_bell_diagonal",
    "single_round_rate",
]

#: Quantum range of the CHSH winning probability, ``(2 ∓ √2)/4`` (Tsirelson 1980).
OMEGA_MIN = (2.0 - math.sqrt(2.0)) / 4.0
OMEGA_MAX = (2.0 + math.sqrt(2.0)) / 4.0

FloatArray = NDArray[np.float64]


def flip_renyi_entropy(p: float, alpha: float) -> float:
    """``H_α`` of a private bit flip with probability p: ``log₂((1−p)^α + p^α) / (1−α)``.

    ``H_α(Ã|E) ≥ H_α(Ã|E A) =`` this value for any device (data processing), so it is the
    entropy floor used when no Bell violation is certified (``ω ≤ 3/4``).
    """
    return -math.log2((1.0 - p) ** alpha + p**alpha) / (alpha - 1.0)


def key_renyi_entropy(omega: FloatArray, p: float, alpha: float) -> FloatArray:
    """Sandwiched Rényi entropy ``H_α(Ã|E)`` of Alice's noisy key bit under the rank-2 attack.

    Eve's optimal collective attack for a CHSH value ``S`` in the vN case (Pironio et al.,
    NJP 11, 045021 (2009), Sec. 4; Ho et al., PRL 124, 230502 (2020)) is the rank-2
    Bell-diagonal state with eigenvalues ``(1 ± R)/2``, ``R = √((S/2)² − 1)``, Alice's key
    measurement aligned with σ_z. Eve then holds one of two pure states with overlap ``R``;
    after Alice's flip with probability p her conditional states are
    ``ρ_E^ã = ½[(1−p)|e_ã⟩⟨e_ã| + p|e_{1−ã}⟩⟨e_{1−ã}|]`` and
    ``H_α(Ã|E) = −log₂ Σ_ã Tr[(ρ_E^{(1−α)/2α} ρ_E^ã ρ_E^{(1−α)/2α})^α] / (α − 1)``,
    evaluated here in closed form (2×2 matrices in the eigenbasis of ``ρ_E``).

    That this family is the minimiser among all Bell-diagonal states and measurement angles
    with CHSH value ≥ S is checked numerically (``tests/security/test_finite.py``, against
    :func:`bell_diagonal_key_entropy`); Hahn, Philip, Tan, Brown (arXiv:2507.07365) solve the
    Rényi problem analytically. The returned value is floored at :func:`flip_renyi_entropy`
    and equals that floor for ``ω ≤ 3/4`` (no violation).
    """
    w = np.asarray(omega, dtype=np.float64)
    s = np.clip(8.0 * w - 4.0, 2.0, 2.0 * math.sqrt(2.0))
    r = np.sqrt(np.clip(s * s / 4.0 - 1.0, 0.0, 1.0))
    cp = (1.0 + r) / 2.0
    cm = (1.0 - r) / 2.0
    beta = (1.0 - alpha) / (2.0 * alpha)
    pos = cm > 1e-300
    safe_cm = np.where(pos, cm, 1.0)
    a11 = 0.5 * cp ** (2.0 * beta + 1.0)
    a22 = np.where(pos, 0.5 * safe_cm ** (2.0 * beta + 1.0), 0.0)
    a12 = np.where(pos, 0.5 * (1.0 - 2.0 * p) * np.sqrt(cp * safe_cm) * (cp * safe_cm) ** beta, 0.0)
    tr = a11 + a22
    det = a11 * a22 - a12 * a12
    disc = np.sqrt(np.clip(tr * tr / 4.0 - det, 0.0, None))
    e1 = tr / 2.0 + disc
    e2 = np.clip(tr / 2.0 - disc, 0.0, None)
    q = 2.0 * (e1**alpha + e2**alpha)
    h = -np.log2(q) / (alpha - 1.0)
    floor = flip_renyi_entropy(p, alpha)
    out: FloatArray = np.where(8.0 * w - 4.0 <= 2.0, floor, np.maximum(h, floor))
    return out


def single_round_rate(
    *,
    test_fraction: float,
    flip_probability: float,
    alpha: float,
    score_win: float,
    score_lose: float,
    grid: int = 2001,
) -> tuple[float, float]:
    """Lower bound on the single-round f-weighted Rényi entropy ``r_α`` (bits), and the worst ω.

    ``r_α = inf_ω −log₂[(1−γ) 2^{−(α−1) h_α(ω)} + γ (ω 2^{(α−1)s_w} + (1−ω) 2^{(α−1)s_l})]/(α−1)``
    where ``h_α`` is :func:`key_renyi_entropy` (key rounds, score 0) and ``s_w > s_l`` are the
    scores of a won / lost test round (see ``docs/finite-size.md`` for the derivation).
    The bracket is decreasing in ``h_α`` (increasing in ω) and the test part increases with ω,
    so on each grid cell ``[ω_j, ω_{j+1}]`` it is bounded by its value with ``h_α(ω_j)`` and
    ``ω_{j+1}``: the minimum over cells is a rigorous lower bound, not a sample.
    """
    if not score_win >= score_lose:
        raise ValueError("single_round_rate needs score_win >= score_lose")
    g = test_fraction
    am1 = alpha - 1.0
    # Quadratic spacing towards ω_max, where h_α has a square-root singularity (H → 1 at
    # Tsirelson's bound), keeps the cell bound tight everywhere.
    t = np.linspace(1.0, 0.0, grid)
    ws = OMEGA_MAX - (OMEGA_MAX - OMEGA_MIN) * t * t
    h = key_renyi_entropy(ws[:-1], flip_probability, alpha)
    w_hi = ws[1:]
    # log2 of each bracket term, combined stably (exponents can be large).
    t_key = math.log2(1.0 - g) - am1 * h
    t_win = math.log2(g) + np.log2(w_hi) + am1 * score_win
    t_lose = math.log2(g) + np.log2(np.clip(1.0 - w_hi, 1e-300, None)) + am1 * score_lose
    stacked = np.stack([t_key, t_win, t_lose]) * math.log(2.0)
    top = np.max(stacked, axis=0)
    log2_bracket = (top + np.log(np.sum(np.exp(stacked - top), axis=0))) / math.log(2.0)
    values = -log2_bracket / am1
    i = int(np.argmin(values))
    return float(values[i]), float(ws[i])


# --- the full Bell-diagonal family, used to check the rank-2 reduction -------------------------

_S2 = 1.0 / math.sqrt(2.0)
_BELL = np.array(
    [[_S2, 0, 0, _S2], [_S2, 0, 0, -_S2], [0, _S2, _S2, 0], [0, _S2, -_S2, 0]], dtype=np.float64
)
# Correlation vectors (t_x, t_y, t_z) of Φ+, Φ−, Ψ+, Ψ−.
_TV = np.array([[1, -1, 1], [-1, 1, 1], [1, 1, -1], [-1, -1, -1]], dtype=np.float64)
_X = np.array([[0.0, 1.0], [1.0, 0.0]])
_Z = np.array([[1.0, 0.0], [0.0, -1.0]])


def max_chsh_bell_diagonal(lam: FloatArray, theta: float) -> float:
    """Largest CHSH value of a Bell-diagonal state when Alice's A₀ is fixed at angle θ (x–z plane).

    With ``c = T a₀`` and ``u ⊥ v`` Bob's combined directions, ``S = 2√(max_φ F(φ))`` with
    ``F(φ) = (c·u)² + |T v|²``, a quadratic form whose maximum is the top eigenvalue of
    ``[[c_x² + t_z², c_x c_z], [c_x c_z, c_z² + t_x²]]``; θ = 0 gives Horodecki's
    ``2√(t_x² + t_z²)``.
    """
    tx, _, tz = np.asarray(lam) @ _TV
    cx, cz = tx * math.sin(theta), tz * math.cos(theta)
    m = np.array([[cx * cx + tz * tz, cx * cz], [cx * cz, cz * cz + tx * tx]])
    return 2.0 * math.sqrt(max(float(np.linalg.eigvalsh(m)[-1]), 0.0))


def bell_diagonal_key_entropy(lam: FloatArray, theta: float, p: float, alpha: float) -> float:
    """``H_α(Ã|E)`` for a Bell-diagonal state (eigenvalues ``lam``), A₀ at angle θ, flip p.

    Eve holds the purification ``Σ_k √λ_k |Φ_k⟩|k⟩``; a direct numerical evaluation (4×4
    matrices) used to cross-check :func:`key_renyi_entropy`.
    """
    lam = np.clip(np.asarray(lam, dtype=np.float64), 0.0, None)
    lam = lam / lam.sum()
    keep = lam > 1e-14
    obs = math.sin(theta) * _X + math.cos(theta) * _Z
    sl = np.sqrt(lam)
    states = []
    for a in (0, 1):
        proj = np.kron((np.eye(2) + (-1) ** a * obs) / 2.0, np.eye(2))
        m = _BELL @ proj @ _BELL.T
        states.append(np.outer(sl, sl) * m.T)
    d = lam[keep] ** ((1.0 - alpha) / (2.0 * alpha))
    total = 0.0
    for a in (0, 1):
        rho = (1.0 - p) * states[a] + p * states[1 - a]
        sub = rho[np.ix_(keep, keep)]
        ev = np.clip(np.linalg.eigvalsh(d[:, None] * sub * d[None, :]), 0.0, None)
        total += float(np.sum(ev**alpha))
    return -math.log2(total) / (alpha - 1.0)
