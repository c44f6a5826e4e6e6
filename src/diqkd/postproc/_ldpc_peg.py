"""Progressive Edge-Growth (PEG) Tanner-graph construction, compiled with numba.

Hu, Eleftheriou, Arnold, "Regular and irregular progressive edge-growth Tanner graphs",
IEEE Trans. Inf. Theory 51, 386 (2005), Algorithm PEG: variable nodes are processed in the
given order (Hu et al. use ascending degree; :mod:`~diqkd.postproc._ldpc_codes` passes a
pseudo-random order, see there); the first edge of a variable goes to a check of lowest current
degree; every further edge goes to a check at maximal distance from the variable in the current
graph (breadth-first search), the lowest-degree one among those, ties broken by a seeded
pseudo-random scan (splitmix64, Steele, Lea, Flood, OOPSLA 2014). Two deviations, for speed at
``n ~ 10⁶``: the search stops after :data:`PEG_MAX_DEPTH` check levels, or once
:data:`PEG_REACH_BUDGET` checks are reached, even within a level (then any unreached check counts
as "at maximal distance"); the first level (checks sharing a variable with the current
variable's checks) is always explored in full, so the graph has no 4-cycles (girth ≥ 6); the
lowest-degree selection uses a bucket queue. Because the
lowest-degree rule is applied to every edge, check degrees concentrate at ``⌊E/m⌋`` and
``⌈E/m⌉`` (``E`` edges; one more or less where the search reached every check and chose among
the farthest ones), a concentrated check distribution.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

__all__ = ["PEG_MAX_DEPTH", "PEG_REACH_BUDGET", "peg_graph"]

#: Check levels the PEG breadth-first search explores before choosing any unreached check.
PEG_MAX_DEPTH = 4
#: The search stops deepening once it has reached this many checks.
PEG_REACH_BUDGET = 1024


@njit(cache=True)
def _splitmix(state: np.uint64) -> tuple[np.uint64, np.uint64]:  # pragma: no cover - numba
    state = state + np.uint64(0x9E3779B97F4A7C15)
    z = state
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return state, z ^ (z >> np.uint64(31))


@njit(cache=True)
def _peg_kernel(  # pragma: no cover - numba
    var_deg: NDArray[np.int64],
    m: int,
    seed: np.uint64,
    max_depth: int,
    reach_budget: int,
    max_check_deg: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64], int]:
    n = var_deg.size
    var_ptr = np.zeros(n + 1, dtype=np.int64)
    for v in range(n):
        var_ptr[v + 1] = var_ptr[v] + var_deg[v]
    var_chk = np.full(var_ptr[n], -1, dtype=np.int64)
    chk_adj = np.full((m, max_check_deg), -1, dtype=np.int64)
    chk_deg = np.zeros(m, dtype=np.int64)
    # bucket queue of checks by degree: bucket d is order[bstart[d]:bstart[d+1]]
    state = seed
    order = np.arange(m)
    for i in range(m - 1, 0, -1):
        state, z = _splitmix(state)
        j = np.int64(z % np.uint64(i + 1))
        order[i], order[j] = order[j], order[i]
    pos = np.empty(m, dtype=np.int64)
    for i in range(m):
        pos[order[i]] = i
    bstart = np.full(max_check_deg + 2, m, dtype=np.int64)
    bstart[0] = 0
    chk_mark = np.zeros(m, dtype=np.int64)
    var_mark = np.zeros(n, dtype=np.int64)
    stamp = 0
    frontier = np.empty(m, dtype=np.int64)
    nxt = np.empty(m, dtype=np.int64)
    for v in range(n):
        for k in range(var_deg[v]):
            stamp += 1
            all_reached = False
            n_front = 0
            if k > 0:
                var_mark[v] = stamp
                reached = 0
                for t in range(k):
                    c = var_chk[var_ptr[v] + t]
                    chk_mark[c] = stamp
                    frontier[n_front] = c
                    n_front += 1
                    reached += 1
                depth = 0
                # level 0 (checks two edges away) is always explored in full: no 4-cycles
                while (
                    depth < max_depth
                    and n_front > 0
                    and (depth == 0 or reached < min(m, reach_budget))
                ):
                    n_next = 0
                    full = False
                    for i in range(n_front):
                        c = frontier[i]
                        for t in range(chk_deg[c]):
                            u = chk_adj[c, t]
                            if var_mark[u] == stamp:
                                continue
                            var_mark[u] = stamp
                            for s in range(var_ptr[u], var_ptr[u + 1]):
                                c2 = var_chk[s]
                                if c2 < 0 or chk_mark[c2] == stamp:
                                    continue
                                chk_mark[c2] = stamp
                                nxt[n_next] = c2
                                n_next += 1
                            if depth > 0 and reach_budget < m and reached + n_next >= reach_budget:
                                full = True
                                break
                        if full:
                            break
                    depth += 1
                    reached += n_next
                    if full:
                        break
                    if reached >= m and n_next > 0:
                        # Hu et al.: every check reached; choose among the last level
                        all_reached = True
                        frontier[:n_next] = nxt[:n_next]
                        n_front = n_next
                        break
                    frontier[:n_next] = nxt[:n_next]
                    n_front = n_next
            chosen = -1
            if all_reached:
                best = max_check_deg + 1
                ties = 0
                for i in range(n_front):
                    c = frontier[i]
                    if chk_deg[c] < best:
                        best = chk_deg[c]
                        chosen = c
                        ties = 1
                    elif chk_deg[c] == best:
                        ties += 1
                        state, z = _splitmix(state)
                        if z % np.uint64(ties) == 0:
                            chosen = c
            else:
                for d in range(max_check_deg):
                    size = bstart[d + 1] - bstart[d]
                    if size <= 0:
                        continue
                    state, z = _splitmix(state)
                    off = np.int64(z % np.uint64(size))
                    for i in range(size):
                        c = order[bstart[d] + (off + i) % size]
                        if k == 0 or chk_mark[c] != stamp:
                            chosen = c
                            break
                    if chosen >= 0:
                        break
            if chosen < 0:
                return var_ptr, var_chk, -1
            d = chk_deg[chosen]
            if d + 1 >= max_check_deg:
                return var_ptr, var_chk, -2
            # move `chosen` to the end of bucket d, then shrink bucket d by one
            last = bstart[d + 1] - 1
            other = order[last]
            p = pos[chosen]
            order[p], order[last] = other, chosen
            pos[other], pos[chosen] = p, last
            bstart[d + 1] -= 1
            chk_adj[chosen, d] = v
            chk_deg[chosen] = d + 1
            var_chk[var_ptr[v] + k] = chosen
    return var_ptr, var_chk, 0


def peg_graph(
    var_deg: NDArray[np.int64], m: int, seed: int, reach_budget: int = PEG_REACH_BUDGET
) -> tuple[NDArray[np.int64], NDArray[np.int64]] | None:
    """Build a PEG Tanner graph; ``(check_ptr, check_var)`` CSR arrays, or ``None`` on failure.

    Parameters
    ----------
    var_deg
        Degree of each variable node, in processing order, shape (n,).
    m
        Number of check nodes.
    seed
        Public seed of the tie-breaking scan, ``[0, 2⁶³)``.
    reach_budget
        Checks the breadth-first search may reach before it stops deepening.
    """
    n = int(var_deg.size)
    edges = int(var_deg.sum())
    max_check_deg = -(-edges // m) + 24
    var_ptr, var_chk, status = _peg_kernel(
        np.ascontiguousarray(var_deg, dtype=np.int64),
        m,
        np.uint64(seed ^ 0x1D8E4E27C47D124F),
        PEG_MAX_DEPTH,
        reach_budget,
        max_check_deg,
    )
    if status != 0:  # pragma: no cover - defensive, never seen
        return None
    cols = np.repeat(np.arange(n, dtype=np.int64), np.diff(var_ptr))
    order = np.lexsort((cols, var_chk))
    check_var = cols[order]
    check_ptr = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(np.bincount(var_chk, minlength=m), out=check_ptr[1:])
    return check_ptr, check_var
