"""Benchmark: seconds per (S, Q) point of the certified BFF entropy bound, ours versus peers.

* **Ours**: :func:`diqkd.security.numerical_entropy_bound` — each node's SDP built once per
  structural option (cached), DPP-parametrised, symmetry-reduced to 4 blocks, re-solved
  with new parameter values, and certified from repaired duals. Timed warm (the one-time
  build excluded; it is printed separately), over ``--points`` CHSH values.
* **Ours, workers=2**: the same with ``workers=2`` — the m − 1 nodes of a point split over
  the library's persistent 2-process pool (each worker builds its cached problem once; the
  pool's start-up is excluded and printed).
* **Peer, rebuilt**: the same relaxation (same rows, symmetry blocks, NPA level and nodes;
  the moment-matrix pattern computed once) written the straightforward way — a fresh
  ``cvxpy.Problem`` with the numbers baked in for every node of every point — reporting the
  primal value (no certificate).
* **Peer, textbook**: a fresh problem per node *and* the plain (unreduced) moment matrix on
  the same rows, as one would first write it; primal value only. Few points (it is slow).

All run in the same process on the same machine; the entropy each reports is printed so
that the rows can be seen to compute the same quantity. Q does not enter the SDP (see
:func:`~diqkd.security.numerical_entropy_bound`), only ``h(Q)`` in the rate.

Run (from the repository root)::

    python benchmarks/bench_numerical.py            # table
    python benchmarks/bench_numerical.py --json     # one JSON document
    python benchmarks/bench_numerical.py --points 8 --peer-points 2 --nodes 12
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import json
import math
import os
import platform
import statistics
import time
import warnings
from typing import Any

import cvxpy as cp
import numpy as np
from cvxpy.atoms.affine.reshape import reshape as cp_reshape

from diqkd.security._npa import FLIP_ALL, SWAP_BOB, build_structure
from diqkd.security.asymptotic import TSIRELSON_BOUND, binary_entropy, pironio_rate
from diqkd.security.numerical import (
    _completeness_rows,
    _data_functionals,
    _objective_terms,
    _rows,
    gauss_radau,
    numerical_entropy_bound,
)

LEVEL = "2+ABZ"


def depolarised_point(q: float) -> tuple[float, float]:
    """(S, Q) of a Werner state with QBER q: ``S = 2√2 (1 − 2q)``."""
    return TSIRELSON_BOUND * (1.0 - 2.0 * q), q


# --------------------------------------------------------------------------- peers


@functools.lru_cache(maxsize=2)
def peer_structure(symmetric: bool) -> tuple[Any, Any, Any, Any]:
    """The moment-matrix pattern (built once: the peers rebuild only the CVXPY problem)."""
    structure = build_structure(_rows(LEVEL, 2, False), [FLIP_ALL, SWAP_BOB] if symmetric else [])
    comp, comp_rhs = _completeness_rows(structure)
    (chsh,) = _data_functionals("chsh", 2, "full")
    return structure, comp, comp_rhs, structure.coefficients(chsh)


def peer_entropy(s: float, nodes: int, symmetric: bool) -> float:
    """BFF entropy the straightforward way: a new CVXPY problem for every node (primal)."""
    structure, comp, comp_rhs, chsh_row = peer_structure(symmetric)
    t_nodes, weights = gauss_radau(nodes)
    total = 0.0
    for t, w in zip(t_nodes[:-1], weights[:-1], strict=True):
        y = cp.Variable(structure.n_vars)
        constraints = []
        for block in structure.blocks:
            n = block.size
            gamma = cp_reshape(block.basis @ y + block.constant, (n, n), order="F")
            constraints.append(gamma >> 0)
        constraints.append(comp @ y == comp_rhs)
        constraints.append(chsh_row @ y >= min(s, TSIRELSON_BOUND - 1e-7))
        c = structure.coefficients(_objective_terms(float(t), 0.0))
        problem: Any = cp.Problem(cp.Minimize(c @ y), constraints)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            problem.solve(solver="CLARABEL")
        total += w / (t * math.log(2.0)) * (1.0 + float(problem.value))
    return total


# --------------------------------------------------------------------------- driver


def timed(fn: Any, *args: Any) -> tuple[float, float]:
    t0 = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - t0, float(value)


def run(points: int, peer_points: int, nodes: int) -> dict[str, Any]:
    qbers = np.linspace(0.0, 0.07, points)
    svals = [depolarised_point(float(q))[0] for q in qbers]
    peer_s = svals[:: max(1, points // max(1, peer_points))][:peer_points]

    t0 = time.perf_counter()
    numerical_entropy_bound(chsh=svals[0], nodes=nodes)  # builds and caches the problem
    build_s = time.perf_counter() - t0

    def ours(s: float) -> float:
        return numerical_entropy_bound(chsh=s, nodes=nodes).entropy

    rows: list[dict[str, Any]] = []
    ours_times, ours_vals = zip(*(timed(ours, s) for s in svals), strict=True)

    def ours_pool(s: float) -> float:
        return numerical_entropy_bound(chsh=s, nodes=nodes, workers=2).entropy

    t0 = time.perf_counter()
    ours_pool(svals[0])  # starts the 2-process pool; each worker builds its problem once
    pool_start_s = time.perf_counter() - t0
    par_times, par_vals = zip(*(timed(ours_pool, s) for s in svals), strict=True)

    rebuilt_times, rebuilt_vals = zip(
        *(timed(peer_entropy, s, nodes, True) for s in peer_s), strict=True
    )
    text_times, text_vals = zip(
        *(timed(peer_entropy, s, nodes, False) for s in peer_s), strict=True
    )

    ours_per_point = statistics.median(ours_times)
    for name, times, vals, s_list, certified in (
        ("ours (built once, DPP re-solve, certified)", ours_times, ours_vals, svals, True),
        ("ours, workers=2 (process pool)", par_times, par_vals, svals, True),
        ("peer: rebuilt per node, same blocks", rebuilt_times, rebuilt_vals, peer_s, False),
        ("peer: rebuilt per node, unreduced matrix", text_times, text_vals, peer_s, False),
    ):
        per_point = statistics.median(times)
        rows.append(
            {
                "implementation": name,
                "points": len(times),
                "seconds_per_point": per_point,
                "ratio_vs_ours": per_point / ours_per_point,
                "certified": certified,
                "entropy_first_point": vals[0],
                "chsh_first_point": s_list[0],
            }
        )
    return {
        "nodes": nodes,
        "npa_level": LEVEL,
        "build_seconds_once": build_s,
        "pool_start_seconds_once": pool_start_s,
        "machine": f"{platform.processor() or platform.machine()} / {os.cpu_count()} cpus",
        "cvxpy": importlib.metadata.version("cvxpy"),
        "points": [
            {
                "chsh": s,
                "qber": float(q),
                "entropy": v,
                "rate": v - binary_entropy(float(q)),
                "pironio_rate": pironio_rate(s, float(q)),
            }
            for s, q, v in zip(svals, qbers, ours_vals, strict=True)
        ],
        "rows": rows,
    }


def print_table(result: dict[str, Any]) -> None:
    header = ("implementation", "points", "s/point", "× ours", "certified", "H at S₀", "S₀")
    lines = [
        (
            r["implementation"],
            str(r["points"]),
            f"{r['seconds_per_point']:.3f}",
            f"{r['ratio_vs_ours']:.2f}",
            "yes" if r["certified"] else "no (primal)",
            f"{r['entropy_first_point']:.6f}",
            f"{r['chsh_first_point']:.4f}",
        )
        for r in result["rows"]
    ]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    print(
        f"BFF entropy bound, m = {result['nodes']} nodes, NPA {result['npa_level']}, "
        f"cvxpy {result['cvxpy']}, {result['machine']}; excluded one-time costs: build "
        f"{result['build_seconds_once']:.3f} s, "
        f"pool start {result['pool_start_seconds_once']:.2f} s"
    )
    for row in [header, *lines]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=8, help="(S, Q) points for ours")
    parser.add_argument("--peer-points", type=int, default=2, help="points for the peers")
    parser.add_argument("--nodes", type=int, default=12, help="Gauss–Radau nodes m")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    result = run(args.points, args.peer_points, args.nodes)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
