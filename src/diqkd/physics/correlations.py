"""From a two-qubit state and a measurement model to Bell-test statistics.

Measurement model: party P measures spin direction ``n`` (a unit Bloch vector) with a readout
that reports the wrong outcome with probability ``1 − F`` and a Gaussian angle jitter of RMS
``σ``; averaged, this is the two-outcome POVM ``M_o = (I + (−1)^o k n·σ⃗)/2`` with
``k = (2F − 1) exp(−σ²/2)`` (the average of a jittered unit vector is ``exp(−σ²/2) n`` for
small Gaussian in-plane rotations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "BellStatistics",
    "bell_statistics",
    "chsh_from_correlations",
    "correlation_matrix",
    "measurement_shrink",
    "optimal_settings",
    "qber_from_correlations",
]

_PAULI = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=np.complex128)
_PSI_PLUS = np.array([0, 1, 1, 0], dtype=np.complex128) / math.sqrt(2)


@dataclass(frozen=True, kw_only=True)
class BellStatistics:
    """Bell-test statistics of a state under a measurement model.

    Attributes
    ----------
    correlations
        ``P[x, y, a, b]`` = P(a, b | x, y), shape (2, 3, 2, 2); y = 2 is Bob's key setting.
    alice_settings, bob_settings
        Bloch directions, shapes (2, 3) and (3, 3).
    chsh
        ``S = E₀₀ + E₀₁ + E₁₀ − E₁₁`` from the table.
    qber
        ``P(a ≠ b | x = 0, y = 2)``.
    fidelity
        ``⟨Ψ+|ρ|Ψ+⟩``.
    """

    correlations: NDArray[np.float64]
    alice_settings: NDArray[np.float64]
    bob_settings: NDArray[np.float64]
    chsh: float
    qber: float
    fidelity: float


def measurement_shrink(readout_fidelity: float, angle_error_rad: float) -> float:
    """``k = (2F − 1)·exp(−σ²/2)``: how much the readout model shrinks each correlator."""
    return (2.0 * readout_fidelity - 1.0) * math.exp(-0.5 * angle_error_rad**2)


def correlation_matrix(
    rho: NDArray[np.complex128],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Bloch marginals ``a_i = Tr ρ σ_i⊗I``, ``b_j`` and correlations ``T_ij = Tr ρ σ_i⊗σ_j``.

    Horodecki, Horodecki, Horodecki, Phys. Lett. A 200, 340 (1995).
    """
    eye = np.eye(2, dtype=np.complex128)
    a = np.array([np.trace(rho @ np.kron(s, eye)).real for s in _PAULI])
    b = np.array([np.trace(rho @ np.kron(eye, s)).real for s in _PAULI])
    t = np.array([[np.trace(rho @ np.kron(si, sj)).real for sj in _PAULI] for si in _PAULI])
    return a, b, t


def optimal_settings(
    t: NDArray[np.float64], *, key_axis: NDArray[np.float64] | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """CHSH-optimal settings for correlation matrix ``T`` plus Bob's key setting.

    Alice measures ``a₀`` (x = 0, her key setting) and ``a₁`` ⊥ ``a₀``. Given Alice's pair, Bob's
    CHSH-optimal settings are ``b₀ ∝ Tᵀ(a₀ + a₁)`` and ``b₁ ∝ Tᵀ(a₀ − a₁)``, giving
    ``S = |Tᵀ(a₀+a₁)| + |Tᵀ(a₀−a₁)|``; his key setting (y = 2) is ``b₂ ∝ Tᵀa₀``, which maximises
    the key-round correlation (``a₀ᵀ T b₂ ≥ 0``, so key outcomes agree).

    * ``key_axis=None``: ``a₀ = u₁``, ``a₁ = u₂`` from ``T = U diag(t₁ ≥ t₂ ≥ t₃) Vᵀ``; then
      ``b₀,₁ = cos θ v₁ ± sin θ v₂`` with ``tan θ = t₂/t₁`` and S reaches the Horodecki maximum
      ``2√(t₁² + t₂²)`` (Horodecki, Horodecki, Horodecki, Phys. Lett. A 200, 340 (1995)).
    * ``key_axis=n``: ``a₀ = n`` (e.g. the atoms' readout basis ẑ) and ``a₁`` the direction ⊥ n
      with the largest ``|Tᵀa₁|``; S is then the best CHSH value with that key setting.
    """
    if key_axis is None:
        u, _, _ = np.linalg.svd(t)
        a0, a1 = u[:, 0], u[:, 1]
    else:
        a0 = np.asarray(key_axis, dtype=np.float64)
        a0 = a0 / np.linalg.norm(a0)
        projector = np.eye(3) - np.outer(a0, a0)
        u, _, _ = np.linalg.svd(projector @ t)
        a1 = projector @ u[:, 0]
        norm = np.linalg.norm(a1)
        a1 = (
            a1 / norm
            if norm > 1e-12
            else np.cross(a0, [1.0, 0.0, 0.0] if abs(a0[0]) < 0.9 else [0.0, 1.0, 0.0])
        )
        a1 = a1 / np.linalg.norm(a1)
    bob = np.stack([_unit(t.T @ (a0 + a1)), _unit(t.T @ (a0 - a1)), _unit(t.T @ a0)])
    return np.stack([a0, a1]), bob


def _unit(v: NDArray[np.float64]) -> NDArray[np.float64]:
    """``v/|v|``; any unit vector when ``v ≈ 0`` (no correlation to align with)."""
    norm = float(np.linalg.norm(v))
    if norm < 1e-15:
        return np.array([0.0, 0.0, 1.0])
    return v / norm


def chsh_from_correlations(p: NDArray[np.float64]) -> float:
    """``S = E₀₀ + E₀₁ + E₁₀ − E₁₁``, ``E_xy = Σ (−1)^{a+b} P(a,b|x,y)`` (Clauser et al. 1969)."""
    sign = np.array([[1.0, -1.0], [-1.0, 1.0]])
    e = np.einsum("xyab,ab->xy", p[:, :2], sign)
    return float(e[0, 0] + e[0, 1] + e[1, 0] - e[1, 1])


def qber_from_correlations(p: NDArray[np.float64]) -> float:
    """Key-round error rate ``P(a ≠ b | x = 0, y = 2)``."""
    return float(p[0, 2, 0, 1] + p[0, 2, 1, 0])


def bell_statistics(
    rho: NDArray[np.complex128],
    *,
    shrink_a: float,
    shrink_b: float,
    alice_settings: NDArray[np.float64] | None = None,
    bob_settings: NDArray[np.float64] | None = None,
    key_axis: NDArray[np.float64] | None = None,
) -> BellStatistics:
    """Correlation table, CHSH value, QBER and fidelity of ``rho``.

    ``P(a,b|x,y) = ¼[1 + (−1)^a k_A a_x·α⃗ + (−1)^b k_B b_y·β⃗ + (−1)^{a+b} k_A k_B a_xᵀ T b_y]``,
    the Born rule for the POVMs of the module docstring (Nielsen & Chuang, Eq. 2.164 applied to
    the Pauli expansion of ρ). Settings default to :func:`optimal_settings` of ρ (with Alice's
    key setting along ``key_axis`` if given).
    """
    a_vec, b_vec, t = correlation_matrix(rho)
    if alice_settings is None or bob_settings is None:
        alice_settings, bob_settings = optimal_settings(t, key_axis=key_axis)
    ma = shrink_a * alice_settings @ a_vec
    mb = shrink_b * bob_settings @ b_vec
    corr = shrink_a * shrink_b * alice_settings @ t @ bob_settings.T
    signs = np.array([1.0, -1.0])
    p = 0.25 * (
        1.0
        + signs[None, None, :, None] * ma[:, None, None, None]
        + signs[None, None, None, :] * mb[None, :, None, None]
        + np.outer(signs, signs)[None, None] * corr[:, :, None, None]
    )
    p = np.clip(p, 0.0, 1.0)
    p /= p.sum(axis=(2, 3), keepdims=True)
    fidelity = float(np.real(_PSI_PLUS.conj() @ rho @ _PSI_PLUS))
    return BellStatistics(
        correlations=p,
        alice_settings=alice_settings,
        bob_settings=bob_settings,
        chsh=chsh_from_correlations(p),
        qber=qber_from_correlations(p),
        fidelity=fidelity,
    )
