"""Cycles of degree-2 variables in a lifted (QC) code: measured exactly, and repaired.

Why. A variable of degree 2 joins two checks, so the degree-2 variables of ``H`` are the edges of
a graph on the checks, and a cycle of ``L`` of them is a codeword of weight ``L`` (each check of
the cycle sees two of its variables). In a ``Z``-lift a cycle of ``L`` degree-2 *base* columns
whose shifts add up to ``T`` lifts to cycles of ``L·Z/gcd(T, Z)`` variables (the voltage-graph
view of a lift: Gross, Tucker, *Topological Graph Theory*, Wiley 1987, Thm. 2.1.3; for QC codes
Fossorier, IEEE TIT 50, 1788 (2004), Thm. 2), and closed walks through several base cycles (the
abelian commutators) lift to cycles too. The shifts of format 1 were drawn against 4-cycles only,
and codes kept cycles of 6–11 degree-2 variables (QBER 5 %, four of twelve codes) or 5–8 (2 %,
every code): low-weight codewords, to which Bob's decoder converges now and then. Alice's
decoding check refuses such a word (:data:`~diqkd.postproc.ldpc.CHECK_MAX_SHARE`), but each
refusal costs a blind step and its leak (benchmarks/README.md).

What. :func:`two_cycles` finds, for every degree-2 base column ``v`` (base rows ``a``, ``b``), the
shortest cycle of degree-2 variables through lane ``s_a`` of ``v``'s lift (the lift is symmetric
under lane rotation, so one lane stands for all ``Z``; check ``(r, l)`` meets lane ``j`` of
column ``v`` iff ``j = l + s_{r,v} mod Z``, so that lane joins ``(a, 0)`` and ``(b, s_a − s_b)``):
a breadth-first search of the lifted graph of degree-2 variables without that one variable,
from ``(a, 0)`` to depth ``g − 2``; the cycle has ``dist + 1`` variables if the search reaches
``(b, s_a − s_b)``, ``g`` or more otherwise. The search may use ``v``'s other lanes, so cycles
through several lanes of one column are counted too (the commutators below).

With ``repair`` it redraws, in one pass over the columns, the shift ``s_{a,v}`` of each column
on a cycle shorter than ``g``. Candidates ``l' = s_{a,v} − s_{b,v}`` are the lanes of row ``b``
ordered by their distance from ``(a, 0)`` in the graph without all of ``v`` (a cycle through one
lane of ``v`` then has ``dist + 1`` variables: the girth after adding an edge ``(x, y)`` is
``min(g_old, dist(x, y) + 1)``), farthest first, ties in a public random order, leaving out the
lanes that close a lifted 4-cycle with another column ``w`` of both rows (``l' = s_{a,w} −
s_{b,w}``: Fossorier 2004, Thm. 2); the first few are measured exactly and the longest kept.
A redraw changes only cycles through ``v``, so once a column passes, later redraws cannot
shorten its cycles below ``g``. Some cycles no shift can open: a closed walk ``C₁C₂C₁⁻¹C₂⁻¹``
round two base cycles that share a row has zero voltage in the abelian group ``Z_Z`` whatever
the shifts, and lifts to a cycle of ``2(|C₁| + |C₂|)`` variables. Such a column keeps its
longest candidate and is counted as ``stuck``; a code whose cycles are all long already is left
bit for bit as it was.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

__all__ = ["two_cycles"]

#: Candidate shifts a repair checks exactly per column, farthest first.
_TRIES = 4


@njit(cache=True)
def _search(  # pragma: no cover - numba
    src: int,
    depth: int,
    skip_col: int,
    skip_lane: int,
    z: int,
    graph: tuple[NDArray[np.int64], ...],
    work: tuple[NDArray[np.int64], ...],
    cur: int,
) -> None:
    """Breadth-first search of the lifted degree-2 graph from check ``src`` to ``depth``,
    marking ``stamp = cur`` and ``dist``; it skips column ``skip_col``'s variable lane
    ``skip_lane``, or the whole column if ``skip_lane < 0``. ``graph`` is ``(esh, evb, edge_row,
    mate, two_ptr, two_edge)``, ``work`` is ``(stamp, dist, queue)``."""
    esh, evb, edge_row, mate, two_ptr, two_edge = graph
    stamp, dist, queue = work
    stamp[src] = cur
    dist[src] = 0
    head = 0
    tail = 1
    queue[0] = src
    while head < tail:
        node = queue[head]
        head += 1
        d = dist[node]
        if d >= depth:
            continue
        r = node // z
        lane = node - r * z
        for k in range(two_ptr[r], two_ptr[r + 1]):
            e = two_edge[k]
            if evb[e] == skip_col and (skip_lane < 0 or (lane + esh[e]) % z == skip_lane):
                continue
            f = mate[e]
            nxt = edge_row[f] * z + (lane + esh[e] - esh[f]) % z
            if stamp[nxt] != cur:
                stamp[nxt] = cur
                dist[nxt] = d + 1
                queue[tail] = nxt
                tail += 1


@njit(cache=True)
def _two_cycles(  # pragma: no cover - numba
    row_ptr: NDArray[np.int64],
    evb: NDArray[np.int64],
    esh: NDArray[np.int64],
    col_deg: NDArray[np.int64],
    z: int,
    girth: int,
    repair: bool,
    draws: NDArray[np.int64],
    tries: int,
) -> tuple[NDArray[np.int64], int, int]:
    mb = row_ptr.size - 1
    nb = col_deg.size
    n_edges = evb.size
    edge_row = np.empty(n_edges, dtype=np.int64)
    for r in range(mb):
        for e in range(row_ptr[r], row_ptr[r + 1]):
            edge_row[e] = r
    # the two edges of each degree-2 column, in row order
    first = np.full(nb, -1, dtype=np.int64)
    mate = np.full(n_edges, -1, dtype=np.int64)
    for e in range(n_edges):
        v = evb[e]
        if col_deg[v] == 2:
            if first[v] < 0:
                first[v] = e
            else:
                mate[e] = first[v]
                mate[first[v]] = e
    # per row, its edges of degree-2 columns
    two_ptr = np.zeros(mb + 1, dtype=np.int64)
    for e in range(n_edges):
        if mate[e] >= 0:
            two_ptr[edge_row[e] + 1] += 1
    for r in range(mb):
        two_ptr[r + 1] += two_ptr[r]
    two_edge = np.empty(two_ptr[mb], dtype=np.int64)
    fill = two_ptr[:-1].copy()
    for e in range(n_edges):
        if mate[e] >= 0:
            two_edge[fill[edge_row[e]]] = e
            fill[edge_row[e]] += 1
    depth = girth - 2
    stamp = np.zeros(mb * z, dtype=np.int64)
    dist = np.zeros(mb * z, dtype=np.int64)
    queue = np.empty(mb * z, dtype=np.int64)
    graph = (esh, evb, edge_row, mate, two_ptr, two_edge)
    work = (stamp, dist, queue)
    where = np.full(nb, -1, dtype=np.int64)
    lanes = np.empty(z, dtype=np.int64)
    far = np.empty(z, dtype=np.int64)
    closes = np.zeros(z, dtype=np.bool_)  # lanes that would close a lifted 4-cycle
    shortest = np.full(nb, 0, dtype=np.int64)  # 0: not a degree-2 column
    repaired = 0
    stuck = 0
    cur = 0
    for v in range(nb):
        ea = first[v]
        if ea < 0:
            continue
        eb = mate[ea]
        a = edge_row[ea]
        b = edge_row[eb]
        # the shortest cycle through v's variable lane s_a (it joins (a, 0) and (b, s_a − s_b))
        cur += 1
        _search(a * z, depth, v, esh[ea], z, graph, work, cur)
        target = b * z + (esh[ea] - esh[eb]) % z
        length = dist[target] + 1 if stamp[target] == cur else girth
        shortest[v] = length
        if not repair or length >= girth:
            continue
        # candidate lanes l' = s_a − s_b: farthest first from (a, 0) without all of v (a cycle
        # through one lane of v has dist + 1 variables), none closing a lifted 4-cycle
        cur += 1
        _search(a * z, depth, v, -1, z, graph, work, cur)
        for e in range(row_ptr[b], row_ptr[b + 1]):
            where[evb[e]] = e
        closes[:] = False
        for e in range(row_ptr[a], row_ptr[a + 1]):
            w = evb[e]
            if w != v and where[w] >= 0:
                closes[(esh[e] - esh[where[w]]) % z] = True
        for e in range(row_ptr[b], row_ptr[b + 1]):
            where[evb[e]] = -1
        n = 0
        for lane in range(z):
            if not closes[lane]:
                node = b * z + lane
                lanes[n] = lane
                far[n] = dist[node] + 1 if stamp[node] == cur else girth
                n += 1
        # a public rotation, then farthest first (stable), so ties are drawn at random
        rot = draws[repaired % draws.size] % max(n, 1)
        order = np.argsort(-np.roll(far[:n], -rot), kind="mergesort")
        old = esh[ea]
        best_len = length
        best_sh = old
        for t in range(min(tries, n)):
            i = (order[t] + rot) % n
            if far[i] <= best_len:
                break
            esh[ea] = (lanes[i] + esh[eb]) % z
            # exact: the cycles through two or more lanes of v are seen too
            cur += 1
            _search(a * z, depth, v, esh[ea], z, graph, work, cur)
            target = b * z + lanes[i]
            got = dist[target] + 1 if stamp[target] == cur else girth
            if got > best_len:
                best_len = got
                best_sh = esh[ea]
            if got >= girth:
                break
        esh[ea] = best_sh
        shortest[v] = best_len
        if best_sh != old:
            repaired += 1
        if best_len < girth:
            stuck += 1
    return shortest, repaired, stuck


def two_cycles(
    row_ptr: NDArray[np.int64],
    evb: NDArray[np.int64],
    esh: NDArray[np.int64],
    col_deg: NDArray[np.int64],
    z: int,
    girth: int,
    draws: NDArray[np.int64] | None = None,
) -> tuple[NDArray[np.int64], int, int]:
    """Shortest cycle of degree-2 variables through each degree-2 base column (module
    docstring), counted in variables, ``girth`` standing for "``girth`` or more"; ``0`` for the
    other columns. With ``draws`` (non-negative public random integers, one used per redraw)
    the shifts ``esh`` are repaired in place so that every such cycle has at least ``girth``
    variables where a shift can do it. Returns ``(shortest, repaired, stuck)``: the lengths
    (for a redrawn column, the one its new shift gives, as measured when it was drawn), how many
    columns got a new shift, and how many still have a cycle shorter than ``girth`` (each keeps
    the longest its candidates gave)."""
    if girth < 3:
        raise ValueError(f"the girth bound must be at least 3, got {girth}")
    repair = draws is not None
    if repair and (esh.dtype != np.int64 or not esh.flags.c_contiguous or not esh.flags.writeable):
        raise ValueError("repairing needs the shifts as a writeable contiguous int64 array")
    pool = np.zeros(1, dtype=np.int64) if draws is None else np.ascontiguousarray(draws, np.int64)
    if pool.size == 0 or (pool < 0).any():
        raise ValueError("the draws must be a non-empty array of non-negative integers")
    return _two_cycles(
        np.ascontiguousarray(row_ptr, np.int64),
        np.ascontiguousarray(evb, np.int64),
        esh if repair else np.array(esh, dtype=np.int64),  # a writeable copy: numba types it so
        np.ascontiguousarray(col_deg, np.int64),
        int(z),
        int(girth),
        repair,
        pool,
        _TRIES,
    )
