"""Diagnostic: the degree-2 cycles of a quasi-cyclic code's base graph, and the weights of the
codewords they lift to.

A degree-2 base column joins two base rows ``a`` and ``b`` with shifts ``s_a`` and ``s_b``:
variable ``(v, j)`` sits in check ``(a, j − s_a)`` and ``(b, j − s_b)``, so going from row
``a`` to row ``b`` through it moves a lane by ``s_a − s_b`` (mod ``Z``). A cycle of ``L``
degree-2 base columns whose moves sum to ``T`` (mod ``Z``) lifts to ``gcd(T, Z)`` disjoint
cycles of ``L·Z/gcd(T, Z)`` degree-2 variables, and each of them is a codeword: every check
on it holds two of its variables (Fossorier, IEEE TIT 50, 1788 (2004), Sec. III, for the
lifted cycle lengths; Tian et al., IEEE Trans. Commun. 52, 1242 (2004), for cycles of
degree-2 variables as low-weight codewords). ``T ≡ 0`` gives weight ``L`` itself; BP then
converges to such a word on some frames, and Alice's decoding check refuses it
(benchmarks/README.md, "Wrong words at 10 %").

The cycles listed are the fundamental cycles of a BFS spanning forest (one per column that
closes a cycle), not every cycle: combinations of them may be lighter, so the weights are an
upper bound on the lightest such codeword. The exact answer is printed beside them: the
shortest cycle of degree-2 variables through each degree-2 column
(:func:`diqkd.postproc._ldpc_lift.two_cycles`, a search of the lifted graph up to ``--cap``),
as a histogram, with the columns whose degree is below 2 (format 1 had some).

Run (from the repository root; the codes come from the cache when it holds them)::

    python benchmarks/qc_cycles.py --n 1000000 --qber 0.05 --f0 1.04 --seeds 201 202 203
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import deque
from pathlib import Path
from typing import NamedTuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from diqkd.postproc._ldpc_qc import QcStructure


class Cycle(NamedTuple):
    """One fundamental cycle of the degree-2 subgraph."""

    length: int  # degree-2 base columns on it, L
    shift_sum: int  # T mod Z
    weight: int  # L·Z/gcd(T, Z): the weight of each lifted cycle (a codeword)


def degree_two_cycles(s: QcStructure) -> list[Cycle]:
    """The fundamental cycles of the subgraph of base rows joined by degree-2 base columns,
    lightest first (module docstring)."""
    z = s.z
    rows = np.repeat(np.arange(s.mb), np.diff(s.row_ptr))
    degree = np.bincount(s.evb)
    ends: dict[int, list[tuple[int, int]]] = {}
    for e in np.flatnonzero(degree[s.evb] == 2):
        ends.setdefault(int(s.evb[e]), []).append((int(rows[e]), int(s.esh[e])))
    adjacent: dict[int, list[tuple[int, int, int]]] = {}
    for col, ((a, sa), (b, sb)) in ends.items():
        adjacent.setdefault(a, []).append((b, sa - sb, col))
        adjacent.setdefault(b, []).append((a, sb - sa, col))
    potential: dict[int, int] = {}
    depth: dict[int, int] = {}
    parent: dict[int, int] = {}
    used: set[int] = set()
    cycles: list[Cycle] = []
    for root in adjacent:
        if root in potential:
            continue
        potential[root], depth[root], parent[root] = 0, 0, root
        queue = deque([root])
        while queue:
            u = queue.popleft()
            for v, move, col in adjacent[u]:
                if col in used:
                    continue
                used.add(col)
                if v not in potential:
                    potential[v], depth[v], parent[v] = potential[u] + move, depth[u] + 1, u
                    queue.append(v)
                    continue
                t = (potential[u] + move - potential[v]) % z
                a, b, length = u, v, 1
                while a != b:  # up to the common ancestor
                    if depth[a] < depth[b]:
                        a, b = b, a
                    a, length = parent[a], length + 1
                cycles.append(Cycle(length, t, length * z // math.gcd(t, z)))
    return sorted(cycles, key=lambda c: (c.weight, c.length))


def main() -> None:
    from diqkd.postproc._ldpc_codes import build_code
    from diqkd.postproc.ldpc import _structure, choose_code

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--qber", type=float, required=True)
    parser.add_argument("--f0", type=float, default=None, help="default: the efficient start")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--show", type=int, default=5, help="lightest cycles to list")
    parser.add_argument("--cap", type=int, default=24, help="search depth of the exact girth")
    args = parser.parse_args()
    rung, _ = choose_code(args.n, args.qber, args.f0)
    print(f"n = {args.n}, QBER {args.qber}: rung {rung}")
    for seed in args.seeds:
        code = build_code(args.n, rung, seed, "qc")
        s = _structure(code)
        cycles = degree_two_cycles(s)
        two = int(np.count_nonzero(np.bincount(s.evb) == 2))
        light = ", ".join(
            f"{c.weight} (L={c.length}, T={c.shift_sum})" for c in cycles[: args.show]
        )
        print(
            f"seed {seed}: Z = {s.z}, {two} degree-2 base columns over {s.mb} base rows, "
            f"{len(cycles)} fundamental cycles; lightest codewords: {light}"
        )
        print(f"  exact: {exact_summary(s, args.cap)}")


def exact_summary(s: QcStructure, cap: int) -> str:
    """The exact shortest cycle of degree-2 variables through each degree-2 column, as
    ``girth g; length: columns, …`` (``≥cap`` for none shorter than ``cap``), and the columns
    of degree below 2."""
    from diqkd.postproc._ldpc_lift import two_cycles

    degree = np.bincount(s.evb)
    shortest, _, _ = two_cycles(s.row_ptr, s.evb, s.esh, degree, s.z, cap)
    two = shortest[degree == 2]
    if two.size == 0:
        return f"no degree-2 columns; {int(np.count_nonzero(degree < 2))} of degree < 2"
    lengths, counts = np.unique(two, return_counts=True)
    hist = ", ".join(
        f"{'≥' if int(n) == cap else ''}{int(n)}: {int(c)}"
        for n, c in zip(lengths, counts, strict=True)
    )
    low = int(np.count_nonzero(degree < 2))
    shown = f"≥{cap}" if int(two.min()) == cap else str(int(two.min()))
    return f"girth {shown}; {hist}; {low} columns of degree < 2"


if __name__ == "__main__":
    main()
