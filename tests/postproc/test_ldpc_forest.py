"""The forest construction: exact degrees, simple graph, cycle-free degree-2 part, repeatable."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import diqkd.postproc._ldpc_codes as codes
from diqkd.errors import ReconciliationError
from diqkd.postproc._ldpc_codes import (
    ELKOUSS_2009,
    FAMILY,
    FOREST_RUNGS,
    build_code,
    check_degrees,
    ladder,
    rung_degrees,
    variable_degrees,
)
from diqkd.postproc._ldpc_forest import forest_graph


def _edges(ptr: NDArray[np.int64], var: NDArray[np.int64]) -> tuple[NDArray[np.int64], ...]:
    rows = np.repeat(np.arange(ptr.size - 1, dtype=np.int64), np.diff(ptr))
    return rows, var.astype(np.int64)


def _degree_two_cycles(ptr: NDArray[np.int64], var: NDArray[np.int64], n: int) -> int:
    """Independent cycles among the degree-2 variables (edges − vertices + components)."""
    rows, cols = _edges(ptr, var)
    deg = np.bincount(cols, minlength=n)
    two = deg[cols] == 2
    order = np.argsort(cols[two], kind="stable")
    checks = rows[two][order].reshape(-1, 2)  # the two checks of each degree-2 variable
    parent = list(range(ptr.size - 1))

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    cycles = 0
    for a, b in checks.tolist():
        ra, rb = root(a), root(b)
        if ra == rb:
            cycles += 1
        else:
            parent[ra] = rb
    return cycles


def _degree_two_girth(ptr: NDArray[np.int64], var: NDArray[np.int64], n: int) -> int:
    """Shortest cycle of degree-2 variables (its weight as a codeword), by BFS from every
    check of the degree-2 graph (exact); a large number if there is none."""
    rows, cols = _edges(ptr, var)
    deg = np.bincount(cols, minlength=n)
    two = deg[cols] == 2
    order = np.argsort(cols[two], kind="stable")
    pairs = rows[two][order].reshape(-1, 2)
    adj: list[list[tuple[int, int]]] = [[] for _ in range(ptr.size - 1)]
    for e, (a, b) in enumerate(pairs.tolist()):
        adj[a].append((b, e))
        adj[b].append((a, e))
    best = 10**9
    for s in range(ptr.size - 1):
        dist, via, queue = {s: 0}, {s: -1}, [s]
        for u in queue:
            if 2 * dist[u] + 1 >= best:
                break
            for w, e in adj[u]:
                if e == via[u]:
                    continue
                if w in dist:
                    best = min(best, dist[u] + dist[w] + 1)
                else:
                    dist[w], via[w] = dist[u] + 1, e
                    queue.append(w)
    return best


def _check_graph(
    var_deg: NDArray[np.int64],
    m: int,
    seed: int,
    check_deg: NDArray[np.int64] | None = None,
    girth: int = 0,
) -> NDArray[np.int64]:
    graph = forest_graph(var_deg, m, seed, check_deg, girth)
    assert graph is not None
    ptr, var = graph
    n = var_deg.size
    rows, cols = _edges(ptr, var)
    assert np.array_equal(np.bincount(cols, minlength=n), var_deg)  # degrees exactly
    cdeg = np.diff(ptr)
    if check_deg is None:
        assert cdeg.max() - cdeg.min() <= 1  # concentrated checks
    else:
        assert np.array_equal(cdeg, check_deg)  # the degrees asked for
    assert np.unique(rows * n + cols).size == rows.size  # no multi-edge
    for c in range(m):  # each check's variables ascending
        assert np.all(np.diff(var[ptr[c] : ptr[c + 1]]) > 0)
    return ptr


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(20, 80),
    ratio=st.floats(1.5, 6.0),
    two_share=st.floats(0.0, 0.6),
    seed=st.integers(0, 2**63 - 1),
)
def test_property_degrees_exact_graph_simple(
    m: int, ratio: float, two_share: float, seed: int
) -> None:
    # code-like shapes (n > M, degrees ≤ M/2); in tiny or saturated graphs (M = 4 with
    # degree-4 variables) the random repair may find no simple graph and returns None,
    # which the construction reports; it is used from 10⁵ key bits
    rng = np.random.default_rng(seed % 2**32)
    n = int(ratio * m)
    two = int(two_share * n)
    high = rng.integers(3, min(m // 2, 12) + 1, n - two)
    _check_graph(np.concatenate([np.full(two, 2), high]).astype(np.int64), m, seed)


def test_degree_two_part_is_a_forest_when_it_fits() -> None:
    n, m = 30_000, 6_000
    var_deg = variable_degrees(n, m, FAMILY[0.8], FAMILY[0.8].cap_two)
    n_two = int(np.count_nonzero(var_deg == 2))
    assert n_two < m  # the design keeps n₂ ≤ M
    ptr = _check_graph(var_deg, m, 7)
    assert _degree_two_cycles(ptr, forest_graph(var_deg, m, 7)[1], n) == 0  # type: ignore[index]


def test_more_degree_two_nodes_than_checks_still_build() -> None:
    # n₂ ≥ M: a forest holds at most M − 1 of them, the rest join the random part
    m = 500
    var_deg = np.concatenate([np.full(800, 2), np.full(700, 4)]).astype(np.int64)
    graph = forest_graph(var_deg, m, 3)
    assert graph is not None
    ptr, var = graph
    _check_graph(var_deg, m, 3)
    assert _degree_two_cycles(ptr, var, var_deg.size) >= 800 - (m - 1)


@pytest.mark.parametrize("girth", [6, 8])
def test_extra_degree_two_nodes_close_only_long_cycles(girth: int) -> None:
    # n₂ = 1.5·M: the forest takes M − 1, the rest are placed at degree-2 distance ≥ girth − 1
    m = 1500
    var_deg = np.concatenate([np.full(2250, 2), np.full(1500, 3), np.full(600, 9)])
    var_deg = var_deg.astype(np.int64)
    ptr = _check_graph(var_deg, m, 5, girth=girth)  # exact degrees, simple, sorted
    graph = forest_graph(var_deg, m, 5, None, girth)
    assert graph is not None
    assert _degree_two_cycles(ptr, graph[1], var_deg.size) == 2250 - (m - 1)  # all in cycles
    assert _degree_two_girth(ptr, graph[1], var_deg.size) >= girth
    plain = forest_graph(var_deg, m, 5)  # without: the extras join the random part
    assert plain is not None
    assert _degree_two_girth(plain[0], plain[1], var_deg.size) < girth
    again = forest_graph(var_deg, m, 5, None, girth)  # a pure function of its arguments
    assert again is not None and np.array_equal(again[1], graph[1])


def test_same_seed_same_graph_other_seed_other_graph() -> None:
    var_deg = variable_degrees(5000, 1200, FAMILY[0.75])
    a, b, c = (forest_graph(var_deg, 1200, s) for s in (11, 11, 12))
    assert a is not None and b is not None and c is not None
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize("rung", [40, 56])  # concentrated checks; Table I 0.6's spread ρ
def test_long_keys_get_the_forest_construction(monkeypatch: pytest.MonkeyPatch, rung: int) -> None:
    # from FOREST_MIN_KEY_BITS the mother code is a forest graph, below it PEG (girth ≥ 6)
    monkeypatch.setattr(codes, "FOREST_MIN_KEY_BITS", 20_000)
    monkeypatch.delenv(codes.CACHE_ENV, raising=False)  # build, never load a cached code
    build_code.cache_clear()
    try:
        long_code = build_code(20_000, rung, 5)
        short_code = build_code(19_999, rung, 5)
    finally:
        build_code.cache_clear()
    m, _, rate = ladder(20_000, rung)
    assert rate == FOREST_RUNGS[rung][0] and long_code.rate == rate
    var_deg, checks = rung_degrees(20_000, rung, rate, FOREST_RUNGS[rung][1])
    assert (checks is not None) == (rung == 56)
    # the code's degrees are a permutation of var_deg (degree-2 first, the rest shuffled)
    graph = forest_graph(
        np.bincount(long_code.check_var, minlength=long_code.n).astype(np.int64), m, 5, checks
    )
    assert graph is not None
    assert np.array_equal(graph[0], long_code.check_ptr)
    assert np.array_equal(graph[1], long_code.check_var)
    assert np.array_equal(np.sort(np.bincount(long_code.check_var)), np.sort(var_deg))
    assert not np.array_equal(
        forest_graph(
            np.bincount(short_code.check_var, minlength=short_code.n).astype(np.int64),
            short_code.m,
            5,
        )[1],  # type: ignore[index]
        short_code.check_var,
    )


@settings(max_examples=60, deadline=None)
@given(
    table=st.sampled_from(sorted(ELKOUSS_2009)),
    m=st.integers(10, 5000),
    mean=st.floats(2.5, 60.0),
)
@example(table=0.5, m=10, mean=40.0)  # more residue than checks of the most common degree
@example(table=0.85, m=10, mean=55.0)  # more residue than checks (found by hypothesis)
def test_property_check_degrees_keep_sum_and_shape(table: float, m: int, mean: float) -> None:
    edges = int(mean * m)
    degs = check_degrees(m, edges, ELKOUSS_2009[table].rho)
    assert degs.shape == (m,) and int(degs.sum()) == edges
    assert degs.min() >= 2 and np.all(np.diff(degs) >= 0)


def test_check_degrees_follow_the_table_shape() -> None:
    # Table I rate 0.6: checks of degree 10, 13, 18, 19 (node fractions 21/38/45/6 % of the
    # ones above 10⁻³ of the edges); at its own mean check degree the shape is unchanged
    rho = ELKOUSS_2009[0.6].rho
    kept = {d: w for d, w in rho.items() if w >= 1e-3}
    nodes = {d: w / d for d, w in kept.items()}
    mean = sum(nodes.values()) ** -1 * sum(kept.values())
    m = 100_000
    degs = check_degrees(m, round(mean * m), rho)
    values, counts = np.unique(degs, return_counts=True)
    assert set(values.tolist()) <= {9, 10, 11, 12, 13, 14, 17, 18, 19, 20}
    total = sum(nodes.values())
    for d in (10, 13, 18):
        assert counts[values == d][0] / m == pytest.approx(nodes[d] / total, abs=0.01)


def test_spread_checks_exact_simple_and_a_forest() -> None:
    n, m = 40_000, 16_000  # rate 0.6: n₂ ≈ 0.81·M
    var_deg = variable_degrees(n, m, FAMILY[0.6], FAMILY[0.6].cap_two)
    check_deg = check_degrees(m, int(var_deg.sum()), ELKOUSS_2009[0.6].rho)
    assert check_deg.max() - check_deg.min() > 5
    ptr = _check_graph(var_deg, m, 9, check_deg)
    graph = forest_graph(var_deg, m, 9, check_deg)
    assert graph is not None
    assert _degree_two_cycles(ptr, graph[1], n) == 0
    # the degree-2 variables sit on checks in proportion to their sockets, as in the
    # configuration model: the mean degree of their checks is the edge-weighted mean
    rows, cols = _edges(*graph)
    on_two = np.diff(ptr)[rows[var_deg[cols] == 2]]
    edge_mean = float((check_deg.astype(float) ** 2).sum() / check_deg.sum())
    assert on_two.mean() == pytest.approx(edge_mean, rel=0.02)


def test_bad_check_degrees_are_refused() -> None:
    var_deg = np.full(100, 3, dtype=np.int64)
    zero = np.concatenate([[0, 20], np.full(28, 10)])  # the right sum, a degree-0 check
    for bad in (np.full(30, 11), np.full(31, 10), zero):
        with pytest.raises(ReconciliationError, match="check degrees"):
            forest_graph(var_deg, 30, 1, bad.astype(np.int64))
