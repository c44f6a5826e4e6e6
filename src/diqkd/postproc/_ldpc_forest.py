"""Random Tanner graphs whose degree-2 part is a forest ("forest" construction), with numba.

The graph is a sample of the standard irregular ensemble (the configuration model: variable and
check "sockets" matched by a uniformly random permutation; Richardson, Urbanke, *Modern Coding
Theory*, CUP 2008, Sec. 3.3), with two changes:

* **Degree-2 variables form a forest.** Each degree-2 variable joins two checks that are not
  yet connected through other degree-2 variables (union–find; the checks are drawn uniformly
  among those with free sockets). A cycle of degree-2 variables is a codeword of their weight,
  so in a plain random graph the few short ones set an error floor: measured at ``n = 10⁶``,
  rung 37 (QBER 3 %), one frame of four converged to a wrong word 4 bits away, all on
  degree-2 variables. PEG (:mod:`~diqkd.postproc._ldpc_peg`) keeps this part cycle-free for
  the same reason (it places the degree-2 variables first). If the forest cannot take every
  degree-2 variable (``n₂ ≥ M``, or the draw budget runs out), the rest join the random part,
  or, with ``girth`` (the ensembles of the global search, whose ``n₂`` is up to ≈ 1.6·M), each
  is placed between two checks at least ``girth − 1`` degree-2 steps apart (a breadth-first
  search from the first check), so every cycle of degree-2 variables it closes has weight ≥
  ``girth``. Measured on a test graph (``M = 1.6·10⁵``, ``n₂ = 1.5·M``): the shortest such
  cycle found from 400 sampled checks was 7 without and 12 with ``girth = 12``; ``girth = 16``
  took minutes (balls of ≈ 10⁴ checks per variable) and its radius had to shrink to reach 14.
* **No multi-edges.** The other sockets are matched by a Fisher–Yates shuffle (Knuth, TAOCP
  Vol. 2, Algorithm 3.4.2P) and dealt to the checks in order; a variable that would sit twice
  on one check is swapped with a random other socket, the swap kept only if it leaves both
  checks simple. Degrees are exactly the ones asked for. Checks are concentrated (``⌊E/M⌋`` or
  ``⌈E/M⌉`` sockets, the extra ones on checks drawn at random) unless their degrees are given
  (the spread check sides of :data:`~diqkd.postproc._ldpc_codes.FOREST_RUNGS`); then the forest
  draws each check in proportion to its free sockets, as a uniformly random socket would be.

All draws come from splitmix64 (Steele, Lea, Flood, OOPSLA 2014) seeded with the public seed, so
both parties build the same graph bit for bit, independently of numpy's or numba's own RNGs.

Why not PEG at large ``n``: PEG maximises the local girth, but with its lowest-degree check rule
and a bounded search it builds a structured graph that decodes well above the ensemble's
threshold. Measured one-shot on the mother codes alone (no specials; 400 iterations; 2–6 frames
per point; ``f = M/(N·h(Q))``), this construction against PEG with the same degrees:

* ``n = 10⁶``: rung 60 (Table I rate 0.5, density-evolution ``f* = 1.018`` for the built
  ensemble) decodes at ``f = 1.02`` (PEG: 1.05; half the frames at 1.04); rung 56 (rate 0.6
  table, ``f* = 1.053``) at 1.05 (PEG: 1.06); rung 47 (``f* = 1.047``) half the frames at 1.04
  (PEG: none); rung 37 (``f* = 1.041``) the same as PEG (1.045–1.05).
* ``n = 10⁵``: frames decoded at ``f`` = 1.03 / 1.05 / 1.07: rung 61: 5/6, 6/6, 6/6 (PEG 1/6,
  4/6, 6/6); rung 57: 3/6, 5/6, 6/6 (PEG 0/6, 4/6, 6/6); rung 38: 0/6, 2/6, 4/6 (PEG 0/6, 0/6,
  2/6).
* ``n = 10⁴``: mixed (rung 61 better, rung 38 worse, and one frame converged to a wrong word 16
  bits away: short cycles through degree-3 variables, which PEG's girth avoids).

**Short cycles.** The graph has 4-cycles (≈ 5·10⁴ at ``n = 10⁵``, rung 30, and ≈ 4·10⁴ at
``10⁶``, rung 37; PEG has none), and they cost frames: the protocol at ``n = 10⁵`` (3000 frames
per cell) gave ``f = 1.068`` at QBER 3 % with no failure (PEG: 1.072), but ``f = 1.092`` at 2 %
with one frame that converged to a wrong word (PEG: 1.093, no failure). Verification rejects
such a frame; the frame error rate then is ≈ 3·10⁻⁴, above what 3000 frames can bound by
10⁻³. So the construction is used from
:data:`~diqkd.postproc._ldpc_codes.FOREST_MIN_KEY_BITS` = 10⁶ key bits, where its gain is
largest, until a 4-cycle-removing pass is added and its error floor measured.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

from diqkd.errors import ReconciliationError
from diqkd.postproc._ldpc_peg import _splitmix

__all__ = ["BALL_MAX", "FOREST_DRAWS_PER_NODE", "forest_graph"]

#: Largest breadth-first ball (checks) when placing a degree-2 variable beyond the forest.
BALL_MAX = 4096
#: Draw budget of the forest: this many draws per degree-2 variable and check, in all.
FOREST_DRAWS_PER_NODE = 64


@njit(cache=True)
def _below(state: np.uint64, bound: int) -> tuple[np.uint64, np.int64]:  # pragma: no cover
    """A draw in ``[0, bound)`` (modulo bias ≤ bound/2⁶⁴, negligible)."""
    state, z = _splitmix(state)
    return state, np.int64(z % np.uint64(bound))


@njit(cache=True)
def _root(
    parent: NDArray[np.int64], a: int | np.int64
) -> int | np.int64:  # pragma: no cover - numba
    while parent[a] != a:
        parent[a] = parent[parent[a]]  # path halving
        a = parent[a]
    return a


@njit(cache=True)
def _on_check(
    slot_var: NDArray[np.int64],
    lo: int | np.int64,
    hi: int | np.int64,
    skip: int | np.int64,
    v: int | np.int64,
) -> bool:  # pragma: no cover - numba
    for i in range(lo, hi):  # noqa: SIM110 - a plain loop for numba
        if i != skip and slot_var[i] == v:
            return True
    return False


@njit(cache=True)
def _long_cycles(  # pragma: no cover - numba
    var_deg: NDArray[np.int64],
    m: int,
    girth: int,
    state: np.uint64,
    cap: NDArray[np.int64],
    top: int,
    ball_max: int,
    out_c: NDArray[np.int64],
    out_v: NDArray[np.int64],
    k: int,
    in_forest: NDArray[np.bool_],
) -> tuple[int, np.uint64]:
    """Place the degree-2 variables the forest did not take so that each closes only cycles of
    at least ``girth`` degree-2 variables (a cycle of degree-2 variables is a codeword of that
    weight): a check ``a`` is drawn (in proportion to its free sockets), the checks within
    ``girth − 2`` degree-2 steps of it are marked (breadth-first search, stopped once
    ``ball_max`` checks are marked: the guarantee is then the last level it completed, so a
    dense degree-2 graph gets shorter cycles rather than minutes of search), and the partner
    ``b`` is drawn among the unmarked ones; after 64 failed draws the radius shrinks by one for the
    rest (never below 1: no two variables on the same pair of checks). A variable still not
    placed after ``64·girth`` rounds is left to the random part. Mutates ``cap``, ``out_c``,
    ``out_v`` and ``in_forest``.
    """
    n = var_deg.size
    # adjacency of the degree-2 graph on the checks, as placed so far
    deg2 = np.zeros(m, dtype=np.int64)
    for i in range(0, k, 2):
        deg2[out_c[i]] += 1
        deg2[out_c[i + 1]] += 1
    ptr = np.zeros(m + 1, dtype=np.int64)
    for c in range(m):
        ptr[c + 1] = ptr[c] + deg2[c] + cap[c]  # room for every free socket
    adj = np.empty(ptr[m], dtype=np.int64)
    fill = ptr[:m].copy()
    for i in range(0, k, 2):
        a, b = out_c[i], out_c[i + 1]
        adj[fill[a]] = b
        fill[a] += 1
        adj[fill[b]] = a
        fill[b] += 1
    mark = np.zeros(m, dtype=np.int64)  # BFS stamp per check
    dist = np.zeros(m, dtype=np.int64)
    queue = np.empty(m, dtype=np.int64)
    stamp = 0
    radius = girth - 2
    for v in range(n):
        if var_deg[v] != 2 or in_forest[v]:
            continue
        placed = False
        rounds = 0
        while not placed and rounds < 64 * girth:
            rounds += 1
            # a: any check with a free socket, in proportion to its free sockets
            while True:
                state, a = _below(state, m)
                if cap[a] == 0:
                    continue
                state, u = _below(state, top)
                if u < cap[a]:
                    break
            stamp += 1
            mark[a] = stamp
            dist[a] = 0
            head, tail = 0, 1
            queue[0] = a
            while head < tail:
                c = queue[head]
                head += 1
                if dist[c] >= radius or tail >= ball_max:
                    break  # BFS order: every check nearer than dist[c] is marked
                for j in range(ptr[c], fill[c]):
                    e = adj[j]
                    if mark[e] != stamp:
                        mark[e] = stamp
                        dist[e] = dist[c] + 1
                        queue[tail] = e
                        tail += 1
            for _ in range(64):
                state, b = _below(state, m)
                if mark[b] == stamp or cap[b] == 0:
                    continue
                state, w = _below(state, top)
                if w >= cap[b]:
                    continue
                cap[a] -= 1
                cap[b] -= 1
                adj[fill[a]] = b
                fill[a] += 1
                adj[fill[b]] = a
                fill[b] += 1
                out_c[k], out_v[k] = a, v
                out_c[k + 1], out_v[k + 1] = b, v
                k += 2
                in_forest[v] = True
                placed = True
                break
            if not placed and radius > 1:
                radius -= 1
    return k, state


@njit(cache=True)
def _forest_kernel(  # pragma: no cover - numba
    var_deg: NDArray[np.int64],
    m: int,
    seed: np.uint64,
    draws_per_node: int,
    check_deg: NDArray[np.int64],
    girth: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64], int]:
    n = var_deg.size
    edges = 0
    for v in range(n):
        edges += var_deg[v]
    state = seed
    spread = check_deg.size == m
    if spread:  # the check degrees asked for
        cap = check_deg.copy()
        top = 1
        for c in range(m):
            top = max(top, int(cap[c]))
    else:  # concentrated: ⌊E/M⌋ everywhere, +1 on `extra` checks drawn at random
        cap = np.full(m, edges // m, dtype=np.int64)
        top = edges // m + 1
        perm = np.arange(m)
        for i in range(edges % m):
            state, j = _below(state, m - i)
            j += i
            perm[i], perm[j] = perm[j], perm[i]
            cap[perm[i]] += 1
    out_c = np.empty(edges, dtype=np.int64)
    out_v = np.empty(edges, dtype=np.int64)
    k = 0
    # degree-2 variables: a forest on the checks (union–find), within the draw budget
    parent = np.arange(m)
    in_forest = np.zeros(n, dtype=np.bool_)
    n_two = 0
    for v in range(n):
        n_two += var_deg[v] == 2
    budget = draws_per_node * (n_two + m)
    for v in range(n):
        if var_deg[v] != 2 or budget <= 0:
            continue
        while budget > 0:
            budget -= 1
            state, a = _below(state, m)
            state, b = _below(state, m)
            if a == b or cap[a] == 0 or cap[b] == 0:
                continue
            if spread:  # each check in proportion to its free sockets (rejection)
                state, u = _below(state, top)
                state, w = _below(state, top)
                if u >= cap[a] or w >= cap[b]:
                    continue
            ra, rb = _root(parent, a), _root(parent, b)
            if ra == rb:
                continue
            parent[ra] = rb
            cap[a] -= 1
            cap[b] -= 1
            out_c[k], out_v[k] = a, v
            out_c[k + 1], out_v[k + 1] = b, v
            k += 2
            in_forest[v] = True
            break
    if girth > 0:  # the degree-2 variables the forest could not take: long cycles only
        k, state = _long_cycles(
            var_deg, m, girth, state, cap, top, BALL_MAX, out_c, out_v, k, in_forest
        )
    # the other sockets: shuffled and dealt to the checks' free sockets in check order
    total = edges - k
    slot_var = np.empty(total, dtype=np.int64)
    s = 0
    for v in range(n):
        if not in_forest[v]:
            for _ in range(var_deg[v]):
                slot_var[s] = v
                s += 1
    for i in range(total - 1, 0, -1):
        state, j = _below(state, i + 1)
        slot_var[i], slot_var[j] = slot_var[j], slot_var[i]
    slot_start = np.zeros(m + 1, dtype=np.int64)
    for c in range(m):
        slot_start[c + 1] = slot_start[c] + cap[c]
    owner = np.empty(total, dtype=np.int64)
    for c in range(m):
        owner[slot_start[c] : slot_start[c + 1]] = c
    failed = 0
    for c in range(m):
        lo, hi = slot_start[c], slot_start[c + 1]
        for i in range(lo, hi):
            tries = 0
            while _on_check(slot_var, lo, i, -1, slot_var[i]):
                tries += 1
                if tries > 10_000:  # pragma: no cover - defensive, never seen
                    failed += 1
                    break
                state, j = _below(state, total)
                d = owner[j]
                if d == c:
                    continue
                vi, vj = slot_var[i], slot_var[j]
                # both checks must stay simple: vj not on c (but for slot i), vi not on d
                if _on_check(slot_var, lo, hi, i, vj):
                    continue
                if _on_check(slot_var, slot_start[d], slot_start[d + 1], j, vi):
                    continue
                slot_var[i], slot_var[j] = vj, vi
    for i in range(total):  # after every check: a swap may change an earlier check's slot
        out_c[k + i], out_v[k + i] = owner[i], slot_var[i]
    return out_c, out_v, failed


def forest_graph(
    var_deg: NDArray[np.int64],
    m: int,
    seed: int,
    check_deg: NDArray[np.int64] | None = None,
    girth: int = 0,
) -> tuple[NDArray[np.int64], NDArray[np.int64]] | None:
    """Build a forest-construction Tanner graph; ``(check_ptr, check_var)`` CSR arrays (each
    check's variables ascending), or ``None`` if a multi-edge could not be removed.

    Parameters
    ----------
    var_deg
        Degree of each variable node, shape (n,); every degree must be ≤ ``m``.
    m
        Number of check nodes.
    seed
        Public seed, ``[0, 2⁶³)``.
    check_deg
        Degree of each check node, shape (m,), summing to ``Σ var_deg``; ``None``: concentrated
        (``⌊E/M⌋`` or ``⌈E/M⌉``). With given degrees the forest draws each check in proportion
        to its free sockets, as the configuration model does (rejection sampling); the
        concentrated graphs keep uniform draws (their free-socket counts differ by at most one)
        and stay bit-identical to those of cache format 7.
    girth
        If positive, the degree-2 variables the forest cannot take (``n₂ ≥ M``) are placed so
        that every cycle they close has at least ``girth`` degree-2 variables (as far as the
        graph allows; :func:`_long_cycles`) instead of joining the random part.

    Raises
    ------
    ReconciliationError
        If ``check_deg`` has the wrong shape or sum, or a degree below 1.
    """
    var_deg = np.ascontiguousarray(var_deg, dtype=np.int64)
    if check_deg is None:
        checks = np.empty(0, dtype=np.int64)
    else:
        checks = np.ascontiguousarray(check_deg, dtype=np.int64)
        if checks.shape != (m,) or int(checks.sum()) != int(var_deg.sum()) or checks.min() < 1:
            raise ReconciliationError(
                f"check degrees must be {m} positive numbers summing to the "
                f"{int(var_deg.sum())} edges"
            )
    out_c, out_v, failed = _forest_kernel(
        var_deg, m, np.uint64(seed ^ 0x5F0E57A11C0DE5ED), FOREST_DRAWS_PER_NODE, checks, girth
    )
    if failed:  # pragma: no cover - defensive, never seen
        return None
    order = np.lexsort((out_v, out_c))
    check_var = out_v[order]
    check_ptr = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(np.bincount(out_c, minlength=m), out=check_ptr[1:])
    return check_ptr, check_var
