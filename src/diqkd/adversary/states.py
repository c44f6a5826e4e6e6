"""Eve's quantum side: what her attacks do to the heralded atom–atom state, and what she holds.

Every attack of :mod:`diqkd.adversary` that acts on the quantum part is described the same way:
Eve ends each round with a classical result ``g`` (her measurement outcome), and given ``g``
the two atoms are in a (sub-normalised) state ``σ_g`` with ``Σ_g σ_g = ρ_AB``. The devices then
sample ``g ~ w_g = Tr σ_g`` and the outputs from the Bell table of ``σ_g / w_g`` (each table is
quantum, hence no-signalling), so the simulation reproduces the joint law
``P(a, b, g | x, y)`` exactly while the protocol only ever sees ``(a, b)``. Eve's ``g`` is the
simulation's ground truth of what she learned.

* :func:`intercept_resend_branches` — Eve measures the photon of one node between the node and
  the middle station. With single-photon-interference heralding the photon number is entangled
  with the atom (``√α|↑,1⟩ + √(1−α)|↓,0⟩``, Cabrillo et al., PRA 59, 1025 (1999)), so counting
  photons and resending projects that atom onto its ``|↑⟩/|↓⟩`` basis: the measure-and-prepare
  channel ``ρ ↦ Σ_e (Π_e ⊗ 1) ρ (Π_e ⊗ 1)`` (an entanglement-breaking channel, Horodecki, Shor,
  Ruskai, Rev. Math. Phys. 15, 629 (2003)), after which the state is separable and
  ``S ≤ 2``.
* :func:`rank2_attack_state` and :func:`purification_branches` — the optimal collective attack
  on the CHSH protocol (Pironio et al., NJP 11, 045021 (2009), Sec. 3): a Bell-diagonal state
  of rank two, ``ρ = (1+R)/2 |Ψ+⟩⟨Ψ+| + (1−R)/2 |Ψ−⟩⟨Ψ−|`` with ``R = √((S/2)² − 1)``, whose
  purification Eve holds; she measures it to guess Alice's key bit (the Helstrom measurement,
  Helstrom, *Quantum Detection and Estimation Theory* (1976), Ch. IV).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from diqkd.errors import ModelError

__all__ = [
    "Branches",
    "intercept_resend_branches",
    "purification_branches",
    "rank2_attack_state",
]

_PAULI = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=np.complex128)
_EYE2 = np.eye(2, dtype=np.complex128)
_Z = np.array([0.0, 0.0, 1.0])


@dataclass(frozen=True, eq=False)
class Branches:
    """Eve's outcomes and the normalised two-atom state given each.

    Attributes
    ----------
    weights
        ``w_g = Tr σ_g``, shape (k,), sums to 1.
    states
        ``σ_g / w_g``, shape (k, 4, 4) (basis ``|↑↑⟩, |↑↓⟩, |↓↑⟩, |↓↓⟩``).
    guesses
        Eve's guess of Alice's key-setting outcome for each ``g``, shape (k,), 0/1.
    """

    weights: NDArray[np.float64]
    states: NDArray[np.complex128]
    guesses: NDArray[np.uint8]

    @property
    def average_state(self) -> NDArray[np.complex128]:
        """``ρ_AB = Σ_g σ_g``."""
        out: NDArray[np.complex128] = np.einsum("g,gij->ij", self.weights, self.states)
        return out


def _projectors(axis: NDArray[np.float64]) -> tuple[NDArray[np.complex128], ...]:
    """``Π_± = (1 ± n·σ⃗)/2`` along the unit Bloch vector ``n``."""
    n = np.asarray(axis, dtype=np.float64)
    norm = float(np.linalg.norm(n))
    if n.shape != (3,) or not math.isfinite(norm) or norm < 1e-12:
        raise ModelError(f"a measurement axis is a non-zero 3-vector, got {axis!r}")
    ns = np.einsum("i,ijk->jk", n / norm, _PAULI)
    return (0.5 * (_EYE2 + ns), 0.5 * (_EYE2 - ns))


def _check_state(rho: NDArray[np.complex128]) -> NDArray[np.complex128]:
    r = np.asarray(rho, dtype=np.complex128)
    if r.shape != (4, 4):
        raise ModelError(f"a two-qubit density matrix is 4×4, got {r.shape}")
    if abs(np.trace(r).real - 1.0) > 1e-9 or not np.allclose(r, r.conj().T, atol=1e-12):
        raise ModelError("the state must be Hermitian with unit trace")
    return r


def _guesses(
    states: NDArray[np.complex128], key_axis: NDArray[np.float64] | None
) -> NDArray[np.uint8]:
    """Eve's best guess of Alice's ideal key outcome per branch: ``argmax_a Tr[(Π_a ⊗ 1) σ_g]``."""
    pi0 = _projectors(_Z if key_axis is None else np.asarray(key_axis))[0]
    p0 = np.array([float(np.trace(np.kron(pi0, _EYE2) @ s).real) for s in states])
    return (p0 < 0.5).astype(np.uint8)


def intercept_resend_branches(
    rho: NDArray[np.complex128],
    *,
    node: str = "alice",
    axis: NDArray[np.float64] | None = None,
    key_axis: NDArray[np.float64] | None = None,
) -> Branches:
    """Intercept-resend on one node's photon: Eve's result and the atoms' state given it.

    Eve's projective measurement of the photon (photon number, which for single-photon-
    interference heralding is the atom's ``σ_z``; ``axis`` generalises it) followed by a resend
    acts on the heralded state as the measure-and-prepare channel on that node's qubit,
    ``σ_e = (Π_e ⊗ 1) ρ (Π_e ⊗ 1)`` (node ``"alice"``; ``1 ⊗ Π_e`` for ``"bob"``),
    ``Π_e = (1 + (−1)^e n·σ⃗)/2``. Each ``σ_e`` is a product state, so the mixture is separable
    and cannot violate CHSH (Werner, PRA 40, 4277 (1989)). This is the most favourable case for
    Eve (ideal detection, placed at the node): photon loss after her would only blur her record.

    Parameters
    ----------
    rho
        Heralded two-atom state, 4×4 (e.g. :attr:`diqkd.physics.LinkPoint.state`).
    node
        ``"alice"`` or ``"bob"``: whose photon is intercepted.
    axis
        Bloch direction Eve measures; default ``ẑ`` (photon number).
    key_axis
        Alice's key measurement direction (default ``ẑ``, the readout basis), for Eve's guess.

    Returns
    -------
    Branches
        ``g = e``; Eve's guess of Alice's key outcome is the likelier outcome given ``e``.
    """
    r = _check_state(rho)
    pi = _projectors(_Z if axis is None else np.asarray(axis))
    if node == "alice":
        ops = [np.kron(p, _EYE2) for p in pi]
    elif node == "bob":
        ops = [np.kron(_EYE2, p) for p in pi]
    else:
        raise ModelError(f"node must be 'alice' or 'bob', got {node!r}")
    sub = [op @ r @ op for op in ops]
    weights = np.array([float(np.trace(s).real) for s in sub])
    states = np.stack([s / max(w, 1e-300) for s, w in zip(sub, weights, strict=True)])
    return Branches(
        weights=weights / weights.sum(), states=states, guesses=_guesses(states, key_axis)
    )


def rank2_attack_state(chsh: float) -> NDArray[np.complex128]:
    """Pironio et al.'s optimal collective attack state for a target CHSH value.

    ``ρ = (1+R)/2 |Ψ+⟩⟨Ψ+| + (1−R)/2 |Ψ−⟩⟨Ψ−|``, ``R = √((S/2)² − 1)`` (Pironio, Acín, Brunner,
    Gisin, Massar, Scarani, NJP 11, 045021 (2009), Eq. (11) in the Ψ± frame of this project's
    link model): correlation matrix ``diag(R, R, −1)``, so with Alice's key setting ``σ_z`` the
    key outcomes are perfectly anti-correlated (Bob's key setting ``−σ_z``: equal bits) and the
    CHSH-optimal settings give ``S = 2√(1 + R²)`` (Horodecki, Horodecki, Horodecki, Phys.
    Lett. A 200, 340 (1995)).

    Parameters
    ----------
    chsh
        Target ``S ∈ [2, 2√2]`` with ideal measurements.
    """
    s = float(chsh)
    if not 2.0 <= s <= 2.0 * math.sqrt(2.0) + 1e-12:
        raise ModelError(f"the rank-2 attack reaches S in [2, 2√2], not {s}")
    r = math.sqrt(max((s / 2.0) ** 2 - 1.0, 0.0))
    r = min(r, 1.0)
    psi_p = np.array([0, 1, 1, 0], dtype=np.complex128) / math.sqrt(2.0)
    psi_m = np.array([0, 1, -1, 0], dtype=np.complex128) / math.sqrt(2.0)
    rho: NDArray[np.complex128] = 0.5 * (1 + r) * np.outer(psi_p, psi_p.conj()) + 0.5 * (
        1 - r
    ) * np.outer(psi_m, psi_m.conj())
    return rho


def purification_branches(
    rho: NDArray[np.complex128], *, key_axis: NDArray[np.float64] | None = None
) -> Branches:
    """Eve holds the purification of ``ρ_AB`` and measures it to guess Alice's key outcome.

    Purification ``|Ψ⟩ = Σ_i √λ_i |i⟩_AB |i⟩_E`` over the eigenbasis of ``ρ_AB`` (Nielsen &
    Chuang, Thm. 2.44). Given Alice's projective key measurement ``Π_a`` (along ``key_axis``),
    Eve's conditional states are ``ρ_E^a = Tr_AB[(Π_a ⊗ 1 ⊗ 1)|Ψ⟩⟨Ψ|]``; she measures the
    Helstrom POVM ``{E_0, E_1}``, ``E_0`` the projector onto the non-negative part of
    ``ρ_E^0 − ρ_E^1``, which maximises her probability of guessing ``a``:
    ``P_guess = ½(1 + ‖ρ_E^0 − ρ_E^1‖₁)`` (Helstrom 1976, Ch. IV). For the rank-2 state this is
    ``½(1 + √(1 − R²))``. The atoms' state given her outcome ``g`` is
    ``σ_g = Tr_E[(1 ⊗ E_g)|Ψ⟩⟨Ψ|]``.

    Parameters
    ----------
    rho
        ``ρ_AB``, 4×4.
    key_axis
        Bloch direction of Alice's key measurement; default ``ẑ``.
    """
    r = _check_state(rho)
    evals, evecs = np.linalg.eigh(r)
    keep = evals > 1e-12
    lam, vecs = evals[keep], evecs[:, keep]
    k = int(lam.size)
    # |Ψ⟩ as a 4×k matrix M with Ψ[ab, e] = √λ_e v_e[ab].
    psi = vecs * np.sqrt(lam)[None, :]
    pi = _projectors(_Z if key_axis is None else np.asarray(key_axis))
    rho_e = []
    for p in pi:
        m = np.kron(p, _EYE2) @ psi
        rho_e.append(m.T @ m.conj())  # ρ_E[e, e'] = Σ_ab M[ab,e] M*[ab,e']
    diff = rho_e[0] - rho_e[1]
    d_vals, d_vecs = np.linalg.eigh(0.5 * (diff + diff.conj().T))
    pos = d_vecs[:, d_vals > 0]
    e0 = pos @ pos.conj().T
    povm = [e0, np.eye(k, dtype=np.complex128) - e0]
    sub = []
    for e in povm:
        # σ = Tr_E[(1 ⊗ E)|Ψ⟩⟨Ψ|] = M Eᵀ M†
        sub.append(psi @ e.T @ psi.conj().T)
    weights = np.array([float(np.trace(s).real) for s in sub])
    states = np.stack([s / max(w, 1e-300) for s, w in zip(sub, weights, strict=True)])
    return Branches(
        weights=weights / weights.sum(), states=states, guesses=_guesses(states, key_axis)
    )
