"""Cycles of degree-2 variables in QC lifts: the search against a brute-force one on the explicit
lifted graph, the repair, the placement of degree-2 columns, and the configuration pairing."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diqkd.postproc._ldpc_lift import two_cycles
from diqkd.postproc._ldpc_qc import _base_pairs, qc_graph


def random_base(
    seed: int, nb: int, mb: int, z: int, twos: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(row_ptr, evb, esh, col_deg)`` of a random base graph with uniform shifts: a share
    ``twos`` of degree-2 columns, the rest of degree 3, paired without repeated pairs."""
    rng = np.random.default_rng(seed)
    deg = np.where(rng.random(nb) < twos, 2, 3).astype(np.int64)
    e = int(deg.sum())
    chk = np.full(mb, e // mb, dtype=np.int64)
    chk[: e - int(chk.sum())] += 1
    pairs = _base_pairs(deg, chk, rng)
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    row_ptr = np.zeros(mb + 1, dtype=np.int64)
    np.cumsum(chk, out=row_ptr[1:])
    esh = np.asarray(rng.integers(0, z, size=int(pairs.shape[0])), dtype=np.int64)
    return row_ptr, np.ascontiguousarray(pairs[:, 1]), esh, deg


def brute_shortest(
    row_ptr: np.ndarray, evb: np.ndarray, esh: np.ndarray, deg: np.ndarray, z: int, cap: int
) -> np.ndarray:
    """The shortest cycle through lane ``s_a`` of each degree-2 column, by a plain search on the
    explicitly built lifted graph of degree-2 variables, without that one variable."""
    rows = np.repeat(np.arange(row_ptr.size - 1), np.diff(row_ptr))
    ends: dict[int, list[tuple[int, int]]] = {}
    for e, v in enumerate(evb):
        if deg[v] == 2:
            ends.setdefault(int(v), []).append((int(rows[e]), int(esh[e])))
    adj: dict[tuple[int, int], list[tuple[tuple[int, int], tuple[int, int]]]] = {}
    for v, ((a, sa), (b, sb)) in ends.items():
        for j in range(z):  # variable lane j meets check lane l where j = l + s
            x, y = (a, (j - sa) % z), (b, (j - sb) % z)
            adj.setdefault(x, []).append((y, (v, j)))
            adj.setdefault(y, []).append((x, (v, j)))
    out = np.zeros(deg.size, dtype=np.int64)
    for v, ((a, sa), (b, sb)) in ends.items():
        src, dst, skip = (a, 0), (b, (sa - sb) % z), (v, sa % z)
        dist = {src: 0}
        queue = deque([src])
        while queue:
            node = queue.popleft()
            for nxt, label in adj.get(node, []):
                if label != skip and nxt not in dist:
                    dist[nxt] = dist[node] + 1
                    queue.append(nxt)
        out[v] = min(dist[dst] + 1, cap) if dst in dist else cap
    return out


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    z=st.sampled_from([4, 8, 12, 16]),
    twos=st.floats(0.3, 0.9),
    cap=st.integers(3, 14),
)
def test_search_equals_a_brute_force_search_of_the_lift(
    seed: int, z: int, twos: float, cap: int
) -> None:
    row_ptr, evb, esh, deg = random_base(seed, nb=24, mb=8, z=z, twos=twos)
    got, repaired, stuck = two_cycles(row_ptr, evb, esh, deg, z, cap)
    np.testing.assert_array_equal(got, brute_shortest(row_ptr, evb, esh, deg, z, cap))
    assert (repaired, stuck) == (0, 0)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), girth=st.integers(4, 10))
def test_repair_lengthens_every_short_cycle_and_touches_only_degree_two_shifts(
    seed: int, girth: int
) -> None:
    z = 32
    row_ptr, evb, esh, deg = random_base(seed, nb=40, mb=12, z=z, twos=0.6)
    before = esh.copy()
    draws = np.random.default_rng(seed).integers(0, 2**62, 64)
    _, repaired, stuck = two_cycles(row_ptr, evb, esh, deg, z, girth, draws)
    after = brute_shortest(row_ptr, evb, esh, deg, z, girth)
    short = after[deg == 2] < girth
    assert int(short.sum()) <= stuck * 2 * girth  # only through the columns that found no lane
    if stuck == 0:
        assert not short.any()
    changed = np.flatnonzero(esh != before)
    assert changed.size == repaired
    assert np.all(deg[evb[changed]] == 2)
    again = before.copy()
    two_cycles(row_ptr, evb, again, deg, z, girth, draws)
    np.testing.assert_array_equal(again, esh)  # deterministic from the draws


def test_a_code_without_short_cycles_is_left_as_it_was() -> None:
    z = 64
    row_ptr, evb, esh, deg = random_base(3, nb=30, mb=12, z=z, twos=0.5)
    shortest, _, _ = two_cycles(row_ptr, evb, esh, deg, z, 40)
    bound = int(shortest[deg == 2].min())
    keep = esh.copy()
    _, repaired, stuck = two_cycles(row_ptr, evb, esh, deg, z, bound, np.arange(8))
    assert (repaired, stuck) == (0, 0)
    np.testing.assert_array_equal(esh, keep)


def test_bad_arguments_raise() -> None:
    row_ptr, evb, esh, deg = random_base(1, nb=12, mb=4, z=8, twos=0.5)
    with pytest.raises(ValueError, match="at least 3"):
        two_cycles(row_ptr, evb, esh, deg, 8, 2)
    with pytest.raises(ValueError, match="non-negative"):
        two_cycles(row_ptr, evb, esh, deg, 8, 6, np.array([-1]))
    with pytest.raises(ValueError, match="writeable contiguous int64"):
        two_cycles(row_ptr, evb, esh.astype(np.int32), deg, 8, 6, np.arange(4))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), nb=st.integers(8, 80), mb=st.integers(4, 30))
def test_pairing_keeps_every_degree_and_repeats_no_pair(seed: int, nb: int, mb: int) -> None:
    rng = np.random.default_rng(seed)
    deg = rng.integers(2, max(2, min(mb // 2, 9)) + 1, nb).astype(np.int64)  # far below mb
    e = int(deg.sum())
    chk = np.full(mb, e // mb, dtype=np.int64)
    chk[: e - int(chk.sum())] += 1
    pairs = _base_pairs(deg, chk, rng)
    np.testing.assert_array_equal(np.bincount(pairs[:, 1], minlength=nb), deg)
    np.testing.assert_array_equal(np.bincount(pairs[:, 0], minlength=mb), chk)
    assert np.unique(pairs[:, 0] * nb + pairs[:, 1]).size == e


def test_constructed_lift_meets_the_bound_and_keeps_the_degrees() -> None:
    rng = np.random.default_rng(11)
    nb, mb, z, girth = 64, 24, 32, 10
    var = rng.choice([2, 2, 3, 5], nb).astype(np.int64)
    e = int(var.sum())
    chk = np.full(mb, e // mb, dtype=np.int64)
    chk[: e - int(chk.sum())] += 1
    _, _, s = qc_graph(var, chk, z, rng, girth)
    np.testing.assert_array_equal(np.bincount(s.evb, minlength=nb), var)
    got = brute_shortest(s.row_ptr, s.evb, s.esh, var, z, girth)
    assert got[var == 2].min() >= girth


def test_measuring_takes_read_only_shifts() -> None:
    row_ptr, evb, esh, deg = random_base(2, nb=16, mb=6, z=8, twos=0.6)
    expected = brute_shortest(row_ptr, evb, esh, deg, 8, 10)
    esh.flags.writeable = False  # as in a QcStructure
    got, _, _ = two_cycles(row_ptr, evb, esh, deg, 8, 10)
    np.testing.assert_array_equal(got, expected)
