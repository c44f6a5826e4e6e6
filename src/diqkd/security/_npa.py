"""Words, rows and symmetry-reduced moment matrices for the BFF relaxation (private helper).

Letters (Brown, Fawzi, Fawzi, Quantum 8, 1445 (2024) — BFF — Sec. 2.3 and Eq. (13)):

* ``E0, E1`` — Alice's key-measurement projectors ``A_{0|0}, A_{1|0}`` (``E_b² = E_b``,
  ``E₀E₁ = 0``; completeness ``E₀ + E₁ = 1`` is imposed as linear moment equalities);
* ``A1`` — Alice's ±1 observable for x = 1 (``A1² = 1``);
* ``B0, B1, B2`` — Bob's ±1 observables (``B² = 1``);
* ``Z0, Z1`` and adjoints ``Z0*, Z1*`` — Eve's operators ``Z_{a}`` of one quadrature node.

Operators of different parties commute. A word's reduced form lists Alice's letters, Bob's,
then Eve's; a word containing ``E₀E₁`` is zero (``None`` below).

The relaxation is the moment matrix ``Γ_{ij} = ⟨ψ|q_i* q_j|ψ⟩`` on *rows* ``q_i`` — words
or real linear combinations of words (Navascués, Pironio, Acín, New J. Phys. 10, 073013
(2008), Sec. III). All data are real and adjoint-invariant, so the real part of a feasible
complex moment matrix is feasible with the same value: a word and its adjoint share one
real variable.

**Symmetry.** The signed letter maps :data:`FLIP_ALL` (every outcome flipped, ``Z₀ ↔ Z₁``)
and :data:`SWAP_BOB` (Bob's inputs 0 ↔ 1 with Alice's x = 1 outcome flipped) leave the BFF
objective and the CHSH constraint invariant. Averaging a feasible moment vector over the
group keeps it feasible with the same value, and the averaged matrix is block diagonal in a
basis of group-projected rows, one block per character (Gatermann & Parrilo, J. Pure Appl.
Algebra 192, 95 (2004), Sec. 5; Tavakoli, Rosset, Renou, PRL 122, 070501 (2019) for NPA).

**Norm kinds.** Every word that can appear in a row is one of: no Eve letter (``‖u ψ‖ ≤ 1``),
``u Z_a*`` (kind ``"Y"``: ``‖u Z_a* ψ‖² ≤ ⟨Z_a Z_a*⟩``), ``u E_b Z_a`` (kind ``"XA"`` if
``b = a``, ``"XO"`` otherwise: ``‖u E_b Z_a ψ‖² ≤ ⟨Z_a* E_b Z_a⟩``), with ``u`` a product of
unitaries and projectors. The numerical module turns kinds into bounds per node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

__all__ = [
    "FLIP_ALL",
    "SWAP_BOB",
    "Block",
    "LetterMap",
    "MomentStructure",
    "Poly",
    "Word",
    "act",
    "adjoint",
    "build_structure",
    "canonical",
    "norm_kind",
    "reduce_word",
]

Word = tuple[str, ...]
Poly = Mapping[Word, float]
LetterMap = dict[str, tuple[int, str]]

_OBSERVABLES = frozenset({"A1", "B0", "B1", "B2"})
_PROJECTORS = frozenset({"E0", "E1"})

#: Outcome flip of Alice's and Bob's measurements with Eve's ``Z₀ ↔ Z₁``.
FLIP_ALL: LetterMap = {
    "E0": (1, "E1"),
    "E1": (1, "E0"),
    "A1": (-1, "A1"),
    "B0": (-1, "B0"),
    "B1": (-1, "B1"),
    "B2": (-1, "B2"),
    "Z0": (1, "Z1"),
    "Z1": (1, "Z0"),
    "Z0*": (1, "Z1*"),
    "Z1*": (1, "Z0*"),
}

#: Bob's inputs 0 ↔ 1 exchanged, Alice's x = 1 outcome flipped: CHSH is invariant.
SWAP_BOB: LetterMap = {"A1": (-1, "A1"), "B0": (1, "B1"), "B1": (1, "B0")}


def _party(letter: str) -> int:
    head = letter[0]
    if head in "EA":
        return 0
    if head == "B":
        return 1
    return 2


def _letter_adjoint(letter: str) -> str:
    if _party(letter) < 2:
        return letter
    return letter[:-1] if letter.endswith("*") else letter + "*"


def reduce_word(word: Sequence[str]) -> Word | None:
    """Normal form of ``word``, or ``None`` if it vanishes (contains ``E₀E₁``)."""
    parts: list[list[str]] = [[], [], []]
    for letter in word:
        party = _party(letter)
        bucket = parts[party]
        if party < 2 and bucket:
            top = bucket[-1]
            if top == letter:
                if letter in _OBSERVABLES:
                    bucket.pop()  # unitary involution: X·X = 1
                continue  # projector: E·E = E
            if letter in _PROJECTORS and top in _PROJECTORS:
                return None  # E₀E₁ = 0
        bucket.append(letter)
    return (*parts[0], *parts[1], *parts[2])


def adjoint(word: Sequence[str]) -> Word | None:
    """``w*``: letters reversed and adjoined, then reduced."""
    return reduce_word([_letter_adjoint(letter) for letter in reversed(word)])


def canonical(word: Sequence[str]) -> Word | None:
    """Representative of ``{w, w*}`` (the real relaxation's variable name), or ``None``."""
    w = reduce_word(word)
    if w is None:
        return None
    wa = adjoint(w)
    assert wa is not None  # the adjoint of a non-zero word is non-zero
    return w if (len(w), w) <= (len(wa), wa) else wa


def norm_kind(word: Word) -> str:
    """Which bound controls ``‖word · ψ‖²`` (module docstring); ``"inf"`` if none does."""
    eve = [c for c in word if _party(c) == 2]
    if not eve:
        return "1"
    if len(eve) > 1:
        return "inf"
    z = eve[0]
    if z.endswith("*"):
        return "Y"
    alice = [c for c in word if _party(c) == 0]
    if not alice or alice[-1] not in _PROJECTORS:
        return "inf"
    return "XA" if alice[-1][1] == z[1] else "XO"


def act(g: LetterMap, word: Sequence[str]) -> tuple[int, Word | None]:
    """Image ``(sign, word')`` of ``word`` under the signed letter map ``g``."""
    sign = 1
    letters: list[str] = []
    for letter in word:
        s, image = g.get(letter, (1, letter))
        sign *= s
        letters.append(image)
    return sign, reduce_word(letters)


def _compose(g: LetterMap, h: LetterMap, letters: Sequence[str]) -> LetterMap:
    out: LetterMap = {}
    for letter in letters:
        s1, l1 = h.get(letter, (1, letter))
        s2, l2 = g.get(l1, (1, l1))
        out[letter] = (s1 * s2, l2)
    return out


def _group(
    generators: Sequence[LetterMap], letters: Sequence[str]
) -> list[tuple[LetterMap, tuple[int, ...]]]:
    """Elements of the group generated by commuting involutions, with their bit coordinates."""
    identity: LetterMap = {letter: (1, letter) for letter in letters}
    elements: list[tuple[LetterMap, tuple[int, ...]]] = [(identity, (0,) * len(generators))]
    queue = [0]
    while queue:
        i = queue.pop()
        g_i, bits = elements[i]
        for j, gen in enumerate(generators):
            new = _compose(gen, g_i, letters)
            if all(new != e for e, _ in elements):
                nb = list(bits)
                nb[j] ^= 1
                elements.append((new, tuple(nb)))
                queue.append(len(elements) - 1)
    return elements


def _act_poly(g: LetterMap, poly: Poly) -> dict[Word, float]:
    out: dict[Word, float] = {}
    for word, coef in poly.items():
        s, image = act(g, word)
        if image is None:
            continue
        out[image] = out.get(image, 0.0) + s * coef
    return {w: c for w, c in out.items() if abs(c) > 1e-12}


def _key(poly: Mapping[Word, float]) -> tuple[tuple[Word, float], ...]:
    return tuple(sorted((w, round(c, 12)) for w, c in poly.items()))


@dataclass(frozen=True)
class Block:
    """One PSD block ``Γ_b(y) = F₀ + Σ_k y_k F_k``.

    Attributes
    ----------
    rows
        Each row as a combination of the input rows: ``{input row index: coefficient}``.
    basis
        Sparse ``(n², K)``; column k is ``vec(F_k)`` (column-major).
    constant
        ``vec(F₀)``.
    """

    rows: tuple[dict[int, float], ...]
    basis: sp.csc_matrix
    constant: NDArray[np.float64]

    @property
    def size(self) -> int:
        """Dimension n of the block."""
        return len(self.rows)


@dataclass(frozen=True)
class MomentStructure:
    """The symmetry-reduced relaxation on a list of rows.

    Attributes
    ----------
    rows
        The input rows (polynomials); ``row_kinds[i]`` lists ``(kind, |coef|)`` per word.
    row_kinds
        Norm kinds of each input row's words, for :meth:`diag_bounds`.
    words
        ``words[k]``: representative word of orbit variable ``y_k``.
    index
        Canonical word → ``(sign, k)``; ``k = -1`` for words that vanish by symmetry.
    var_kinds
        Per variable, pairs of kinds ``(κ₁, κ₂)`` with ``|y_k| ≤ √(β_κ₁ β_κ₂)`` by
        Cauchy–Schwarz on an entry ``⟨u* v⟩`` where it appears.
    blocks
        One PSD block per character of the symmetry group.
    """

    rows: tuple[dict[Word, float], ...]
    row_kinds: tuple[tuple[tuple[str, float], ...], ...]
    words: tuple[Word, ...]
    index: dict[Word, tuple[int, int]]
    var_kinds: tuple[frozenset[tuple[str, str]], ...]
    blocks: tuple[Block, ...]

    @property
    def n_vars(self) -> int:
        """Number K of moment variables."""
        return len(self.words)

    def coefficients(self, terms: Mapping[Word, float]) -> NDArray[np.float64]:
        """The functional ``Σ c_w ⟨w⟩`` as a vector over the moment variables.

        A word that is not a variable is expanded once by completeness,
        ``⟨w⟩ = ⟨w_A E₀ w_B w_E⟩ + ⟨w_A E₁ w_B w_E⟩`` (valid for every quantum strategy).
        Raises ``KeyError`` if that fails too.
        """
        out = np.zeros(self.n_vars)
        for word, coef in terms.items():
            w = canonical(word)
            if w is None:
                continue
            if w in self.index:
                self._add(out, w, coef)
                continue
            n_alice = sum(1 for c in word if _party(c) == 0)
            for e in ("E0", "E1"):
                expanded = canonical((*word[:n_alice], e, *word[n_alice:]))
                if expanded is None:
                    continue
                if expanded not in self.index:
                    raise KeyError(word)
                self._add(out, expanded, coef)
        return out

    def _add(self, out: NDArray[np.float64], word: Word, coef: float) -> None:
        sign, k = self.index[word]
        if k >= 0:
            out[k] += sign * coef

    def diag_bounds(self, beta: Mapping[str, float]) -> list[NDArray[np.float64]]:
        """Per block, bounds on Γ's diagonal: ``⟨q*q⟩ ≤ (Σ_u |c_u| √β_kind(u))²`` (triangle
        inequality on ``‖q ψ‖``), for the kind bounds ``beta``."""
        root = {
            i: sum(c * np.sqrt(beta[k]) for k, c in kinds) for i, kinds in enumerate(self.row_kinds)
        }
        return [
            np.array([sum(abs(d) * root[i] for i, d in row.items()) ** 2 for row in block.rows])
            for block in self.blocks
        ]

    def var_bounds(self, beta: Mapping[str, float]) -> NDArray[np.float64]:
        """Bounds on ``|y_k|`` from :attr:`var_kinds`."""
        return np.array(
            [min(np.sqrt(beta[a] * beta[b]) for a, b in kinds) for kinds in self.var_kinds]
        )


def build_structure(rows: Sequence[Poly], generators: Sequence[LetterMap]) -> MomentStructure:
    """Symmetry-reduced moment relaxation on the span of ``rows``.

    ``generators`` must be commuting signed involutions of the letters that map the set of
    rows onto itself up to sign and leave the problem invariant (module docstring); with no
    generators this is the plain moment matrix. The rows must be linearly independent for
    the relaxation to have an interior (not checked).
    """
    clean: list[dict[Word, float]] = []
    for row in rows:
        poly: dict[Word, float] = {}
        for word, coef in row.items():
            w = reduce_word(word)
            if w is None:
                raise ValueError(f"row word {word} vanishes")
            poly[w] = poly.get(w, 0.0) + coef
        clean.append(poly)
    kinds = tuple(tuple((norm_kind(w), abs(c)) for w, c in row.items()) for row in clean)
    for row, ks in zip(clean, kinds, strict=True):
        if any(k == "inf" for k, _ in ks):
            raise ValueError(f"row {row} has no norm bound")
    letters = sorted(
        {c for r in clean for w in r for c in w}
        | {_letter_adjoint(c) for r in clean for w in r for c in w}
    )
    group = _group(generators, letters)
    # locate images of rows: key -> (index, sign)
    lookup: dict[tuple[tuple[Word, float], ...], tuple[int, int]] = {}
    for i, row in enumerate(clean):
        lookup[_key(row)] = (i, 1)
        lookup[_key({w: -c for w, c in row.items()})] = (i, -1)
    characters = [
        [(-1) ** sum(b * s for b, s in zip(bits, pattern, strict=True)) for _, bits in group]
        for pattern in (
            [(k >> j) & 1 for j in range(len(generators))] for k in range(2 ** len(generators))
        )
    ]
    adapted: list[list[dict[int, float]]] = []
    for chi in characters:
        block_rows: list[dict[int, float]] = []
        seen: set[int] = set()
        for i, row in enumerate(clean):
            if i in seen:
                continue
            combo: dict[int, float] = {}
            for (g, _), x in zip(group, chi, strict=True):
                image = _act_poly(g, row)
                found = lookup.get(_key(image))
                if found is None:
                    raise ValueError(f"row set not invariant: {row} ↦ {image}")
                j, s = found
                seen.add(j)
                combo[j] = combo.get(j, 0.0) + x * s
            combo = {j: c for j, c in combo.items() if abs(c) > 1e-12}
            if combo:
                norm = float(np.sqrt(sum(c * c for c in combo.values())))
                block_rows.append({j: c / norm for j, c in combo.items()})
        adapted.append(block_rows)

    index: dict[Word, tuple[int, int]] = {}
    words: list[Word] = []
    var_kinds: list[set[tuple[str, str]]] = []

    def variable(word: Word) -> tuple[int, int] | None:
        """``(sign, k)`` of a word's moment, ``(s, -1)`` if it vanishes, None for identity."""
        w = canonical(word)
        if w is None:
            return (0, -1)
        if not w:
            return None
        found = index.get(w)
        if found is not None:
            return found
        orbit: dict[Word, int] = {}
        zero = False
        for g, _ in group:
            s, gw = act(g, w)
            cw = canonical(gw) if gw is not None else None
            if cw is None:
                continue
            if cw in orbit and orbit[cw] != s:
                zero = True
            orbit[cw] = s
        if zero:
            for cw in orbit:
                index[cw] = (0, -1)
            return (0, -1)
        k = len(words)
        words.append(w)
        var_kinds.append(set())
        for cw, s in orbit.items():
            index[cw] = (s, k)
        return index[w]

    raw: list[
        tuple[tuple[dict[int, float], ...], list[int], list[int], list[float], NDArray[np.float64]]
    ] = []
    for block_rows in adapted:
        polys = []
        for combo in block_rows:
            expanded: dict[Word, float] = {}
            for j, d in combo.items():
                for w, c in clean[j].items():
                    expanded[w] = expanded.get(w, 0.0) + d * c
            polys.append({w: c for w, c in expanded.items() if abs(c) > 1e-12})
        n = len(polys)
        r_idx: list[int] = []
        c_idx: list[int] = []
        vals: list[float] = []
        constant = np.zeros(n * n)
        for i in range(n):
            for j in range(i, n):
                acc: dict[int, float] = {}
                const = 0.0
                for u, cu in polys[i].items():
                    ua = adjoint(u)
                    assert ua is not None
                    for v, cv in polys[j].items():
                        found = variable(ua + v)
                        if found is None:
                            const += cu * cv
                            continue
                        s, k = found
                        if k >= 0:
                            acc[k] = acc.get(k, 0.0) + s * cu * cv
                            ku, kv = sorted((norm_kind(u), norm_kind(v)))
                            var_kinds[k].add((ku, kv))
                for pos in {i + n * j, j + n * i}:
                    constant[pos] = const
                    for k, val in acc.items():
                        if abs(val) > 1e-12:
                            r_idx.append(pos)
                            c_idx.append(k)
                            vals.append(val)
        raw.append((tuple(block_rows), r_idx, c_idx, vals, constant))
    n_vars = len(words)
    blocks = tuple(
        Block(
            rows=block_rows,
            basis=sp.csc_matrix(
                (
                    np.asarray(vals, dtype=np.float64),
                    (np.asarray(r_idx, dtype=np.int64), np.asarray(c_idx, dtype=np.int64)),
                ),
                shape=(len(block_rows) ** 2, n_vars),
            ),
            constant=constant,
        )
        for block_rows, r_idx, c_idx, vals, constant in raw
    )
    return MomentStructure(
        rows=tuple(clean),
        row_kinds=kinds,
        words=tuple(words),
        index=index,
        var_kinds=tuple(frozenset(k) for k in var_kinds),
        blocks=blocks,
    )
