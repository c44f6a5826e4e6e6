"""``benchmarks/qc_cycles.py``: the degree-2 cycles of a base graph and the weights of the
codewords they lift to, checked against hand-built graphs and against ``H`` itself."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import numpy as np

from diqkd.postproc._ldpc_qc import QcStructure, expand

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
qc_cycles = importlib.import_module("qc_cycles")


def ring(shifts: list[tuple[int, int]], z: int, extra: int = 0) -> QcStructure:
    """Rows ``0..L−1`` joined in a ring by degree-2 columns ``0..L−1`` (column ``i`` in rows
    ``i`` and ``i+1 mod L`` with shifts ``shifts[i]``), plus ``extra`` degree-1 columns."""
    length = len(shifts)
    edges: list[tuple[int, int, int]] = []
    for i, (sa, sb) in enumerate(shifts):
        edges += [(i, i, sa), ((i + 1) % length, i, sb)]
    edges += [(i % length, length + i, 0) for i in range(extra)]
    edges.sort()
    rows = np.array([r for r, _, _ in edges])
    row_ptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=length))])
    evb = np.array([c for _, c, _ in edges], dtype=np.int64)
    esh = np.array([s for _, _, s in edges], dtype=np.int64)
    return QcStructure(z, row_ptr.astype(np.int64), evb, esh)


def test_ring_weights_follow_the_shift_sum() -> None:
    z = 8
    # moves 1 + 2 + (−3) = 0: the ring lifts to Z copies of a weight-3 word
    (c,) = qc_cycles.degree_two_cycles(ring([(1, 0), (2, 0), (0, 3)], z, extra=2))
    assert (c.length, c.shift_sum, c.weight) == (3, 0, 3)
    # moves summing to 4: gcd(4, 8) = 4 lifted cycles of 3·8/4 = 6 variables
    (c,) = qc_cycles.degree_two_cycles(ring([(1, 0), (2, 0), (1, 0)], z))
    assert (c.length, c.shift_sum % z, c.weight) == (3, 4, 6)
    # an odd sum: one cycle through all L·Z variables
    (c,) = qc_cycles.degree_two_cycles(ring([(1, 0), (0, 0), (0, 0), (0, 0)], z))
    assert c.weight == 4 * z


def test_the_lightest_word_is_a_codeword_of_h() -> None:
    z = 8
    s = ring([(3, 1), (5, 0), (0, 7), (2, 2)], z, extra=3)
    (c,) = qc_cycles.degree_two_cycles(s)
    assert c.weight == c.length * z // math.gcd(c.shift_sum, z)
    check_ptr, check_var = expand(s)
    n = (int(s.evb.max()) + 1) * z
    h = np.zeros((check_ptr.size - 1, n), dtype=np.uint8)
    for r in range(h.shape[0]):
        h[r, check_var[check_ptr[r] : check_ptr[r + 1]]] = 1
    # walk the lifted cycle through variable (0, 0) over the degree-2 variables (< 4·Z)
    word = np.zeros(n, dtype=np.uint8)
    v: int | None = 0
    while v is not None:
        word[v] = 1
        ahead = [u for r in np.flatnonzero(h[:, v]) for u in np.flatnonzero(h[r, : 4 * z])]
        v = next((int(u) for u in ahead if not word[u]), None)
    assert int(word.sum()) == c.weight
    assert not (h.astype(int) @ word % 2).any()  # a codeword of H


def test_exact_summary_agrees_with_the_ring_and_counts_low_degrees() -> None:
    z = 8
    # the weight-3 ring (moves sum to 0) and two degree-1 columns
    text = qc_cycles.exact_summary(ring([(1, 0), (2, 0), (0, 3)], z, extra=2), cap=12)
    assert text == "girth 3; 3: 3; 2 columns of degree < 2"
    # an odd move sum: one cycle of 4·Z = 32 variables, beyond the cap
    text = qc_cycles.exact_summary(ring([(1, 0), (0, 0), (0, 0), (0, 0)], z), cap=12)
    assert text == "girth ≥12; ≥12: 4; 0 columns of degree < 2"
