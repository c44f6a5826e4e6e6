"""Cycles of degree-2 variables in a lifted (QC) code: measured exactly, and repaired.

Why. A variable of degree 2 joins two checks, so the degree-2 variables of ``H`` are the edges of
a graph on the checks, and a cycle of ``L`` of them is a codeword of weight ``L`` (each check of
the cycle sees two of its variables). In a ``Z``-lift a cycle of ``L`` degree-2 *base* columns
whose shifts add up to ``T`` lifts to cycles of ``L·Z/gcd(T, Z)`` variables (the voltage-graph
view of a lift: Gross, Tucker, *Topological Graph Theory*, Wiley 1987, Thm. 2.1.3; for QC codes
Fossorier, IEEE TIT 50, 1788 (2004), Thm. 2), and closed walks through several base cycles (the
abelian commutators) lift to cycles too. The shifts of format 1 were drawn against 4-cycles only,
and some codes kept cycles of 6 degree-2 variables (QBER 5 %, two of twelve codes) or 8 (2 %):
low-weight codewords, to which Bob's decoder converges now and then. Alice's decoding check
refuses such a word (:data:`~diqkd.postproc.ldpc.CHECK_MAX_SHARE`), but each refusal costs a
blind step and its leak: 108 and 67 refused words in 250 frames for those two 5 % codes, against
0–17 for the other ten (benchmarks/README.md).

What. :func:`two_cycles` finds, for every degree-2 base column ``v`` (base rows ``a``, ``b``), the
shortest cycle of degree-2 variables through lane 0 of ``v``'s lift (the lift is symmetric
under lane rotation, so lane 0 stands for all ``Z``): a breadth-first search on the lifted graph
of the degree-2 variables, without ``v``, from check ``(a, 0)`` to depth ``D = g − 2``; the cycle
is ``dist((a, 0), (b, s_a − s_b)) + 1`` if the search reaches that check, longer than ``g − 1``
otherwise (check ``(r, l)`` meets lane ``j`` of column ``v`` iff ``j = l + s_{r,v} mod Z``, so
``v``'s lane through ``(a, l)`` reaches ``(b, l + s_{a,v} − s_{b,v})``). With ``repair`` it
redraws, in one pass, the shift ``s_{a,v}`` of every column on a cycle shorter than ``g``: the
new lane ``l' = s_{a,v} − s_{b,v}`` is drawn uniformly among the lanes of row ``b`` that the
search did not reach (so every cycle through ``v`` then has at least ``g`` variables: the
girth after adding an edge ``(x, y)`` is ``min(g_old, dist(x, y) + 1)``) and that close no
lifted 4-cycle with another column ``w`` of both rows (``l' ≠ s_{a,w} − s_{b,w}``: Fossorier
2004, Thm. 2). A redraw only adds cycles through ``v``, all of at least ``g``, so after one pass
every degree-2 cycle has at least ``g`` variables, unless some column found no free lane (counted;
the construction then fails loudly). A code whose cycles are all long already is left bit for bit
as it was.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

__all__ = ["two_cycles"]

#: Candidate shifts a repair checks exactly per column, farthest first.
_TRIES = 16


@njit(cache=True)
def _search(  # pragma: no cover - numba
    src: int,
    depth: int,
    skip_col: int,
    skip_lane: int,
    z: int,
    esh: NDArray[np.int64],
    evb: NDArray[np.int64],
    edge_row: NDArray[np.int64],
    mate: NDArray[np.int64],
    two_ptr: NDArray[np.int64],
    two_edge: NDArray[np.int64],
    stamp: NDArray[np.int64],
    dist: NDArray[np.int64],
    queue: NDArray[np.int64],
    cur: int,
) -> None:
    """Breadth-first search of the lifted degree-2 graph from check ``src`` to ``depth``,
    marking ``stamp = cur`` and ``dist``; it skips column ``skip_col``'s variable lane
    ``skip_lane``, or the whole column if ``skip_lane < 0``."""
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
    where = np.full(nb, -1, dtype=np.int64)
    lanes = np.empty(z, dtype=np.int64)
    far = np.empty(z, dtype=np.int64)
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
        _search(
            a * z,
            depth,
            v,
            esh[ea],
            z,
            esh,
            evb,
            edge_row,
            mate,
            two_ptr,
            two_edge,
            stamp,
            dist,
            queue,
            cur,
        )
        target = b * z + (esh[ea] - esh[eb]) % z
        length = dist[target] + 1 if stamp[target] == cur else girth
        shortest[v] = length
        if not repair or length >= girth:
            continue
        # candidate lanes l' = s_a − s_b: farthest first from (a, 0) without all of v (a cycle
        # through one lane of v has dist + 1 variables), none closing a lifted 4-cycle
        cur += 1
        _search(
            a * z,
            depth,
            v,
            -1,
            z,
            esh,
            evb,
            edge_row,
            mate,
            two_ptr,
            two_edge,
            stamp,
            dist,
            queue,
            cur,
        )
        for e in range(row_ptr[b], row_ptr[b + 1]):
            where[evb[e]] = e
        n = 0
        for lane in range(z):
            ok = True
            for e in range(row_ptr[a], row_ptr[a + 1]):
                w = evb[e]
                if w != v and where[w] >= 0 and (esh[e] - esh[where[w]]) % z == lane:
                    ok = False
                    break
            if ok:
                node = b * z + lane
                lanes[n] = lane
                far[n] = dist[node] + 1 if stamp[node] == cur else girth
                n += 1
        for e in range(row_ptr[b], row_ptr[b + 1]):
            where[evb[e]] = -1
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
            _search(
                a * z,
                depth,
                v,
                esh[ea],
                z,
                esh,
                evb,
                edge_row,
                mate,
                two_ptr,
                two_edge,
                stamp,
                dist,
                queue,
                cur,
            )
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
    variables. Returns ``(shortest, repaired, stuck)``: the lengths (as measured before any
    later redraw, and ``girth`` for a redrawn column), how many columns were redrawn, and how
    many found no free lane (left as they were)."""
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
        esh if repair else esh.copy(),
        np.ascontiguousarray(col_deg, np.int64),
        int(z),
        int(girth),
        repair,
        pool,
        _TRIES,
    )


@njit(cache=True)
def _place_two(  # pragma: no cover - numba
    n_two: int, room: NDArray[np.int64], draws: NDArray[np.int64]
) -> NDArray[np.int64]:
    mb = room.size
    deg = np.zeros(mb, dtype=np.int64)
    adj = np.full((mb, max(1, room.max())), -1, dtype=np.int64)
    out = np.empty((n_two, 2), dtype=np.int64)
    dist = np.empty(mb, dtype=np.int64)
    queue = np.empty(mb, dtype=np.int64)
    k = 0
    for c in range(n_two):
        # first end: a row with room and the fewest degree-2 edges, ties by a public rotation
        rot = draws[k % draws.size] % mb
        k += 1
        a = -1
        for i in range(mb):
            r = (i + rot) % mb
            if deg[r] < room[r] and (a < 0 or deg[r] < deg[a]):
                a = r
        # second end: the farthest row from it in the degree-2 graph so far (unreachable
        # first), then the fewest edges, then the rotation
        dist[:] = mb + 1
        dist[a] = 0
        head = 0
        tail = 1
        queue[0] = a
        while head < tail:
            r = queue[head]
            head += 1
            for j in range(deg[r]):
                s = adj[r, j]
                if dist[s] > dist[r] + 1:
                    dist[s] = dist[r] + 1
                    queue[tail] = s
                    tail += 1
        rot = draws[k % draws.size] % mb
        k += 1
        b = -1
        for i in range(mb):
            r = (i + rot) % mb
            if r == a or deg[r] >= room[r]:
                continue
            if b < 0 or dist[r] > dist[b] or (dist[r] == dist[b] and deg[r] < deg[b]):
                b = r
        if a < 0 or b < 0:
            return out[:c]
        adj[a, deg[a]] = b
        deg[a] += 1
        adj[b, deg[b]] = a
        deg[b] += 1
        out[c, 0] = a
        out[c, 1] = b
    return out


def place_two(n_two: int, room: NDArray[np.int64], draws: NDArray[np.int64]) -> NDArray[np.int64]:
    """Base rows ``(a, b)`` of ``n_two`` degree-2 columns, placed one by one as progressive
    edge growth places a variable (Hu, Eleftheriou, Arnold, IEEE TIT 51, 386 (2005), Alg. 1, on
    the graph whose nodes are the base rows and whose edges are the degree-2 columns): one end
    on a row with the fewest such columns, the other on a row as far from it as the graph so
    far allows, so the base cycles of degree-2 columns are long, and with them the cycles their
    lift can close whatever the shifts (a closed walk ``C₁C₂C₁⁻¹C₂⁻¹`` round two base cycles
    that share a row lifts to a cycle of ``2(|C₁| + |C₂|)`` variables for any shifts: the
    voltages of an abelian group cancel). Row ``r`` takes at most ``room[r]`` columns; ties are
    broken by the public ``draws``. Raises if the rows have too little room."""
    room = np.ascontiguousarray(room, np.int64)
    if 2 * n_two > int(room.sum()):
        raise ValueError(
            f"{n_two} degree-2 columns need {2 * n_two} sockets, the rows have {int(room.sum())}"
        )
    out = _place_two(int(n_two), room, np.ascontiguousarray(draws, np.int64))
    if out.shape[0] < n_two:
        raise ValueError("the base rows have no room left for the degree-2 columns")
    return out
