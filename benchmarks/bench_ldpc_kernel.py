"""Benchmark: the LDPC decoder kernel alone, former serial kernel versus the coloured one.

One frame per (n, QBER): Alice's first message of the real protocol (:class:`LdpcAlice`: code
rung and puncturing chosen for ``--code-qber``, i.e. the code the protocol would use) and
Bob's priors as :class:`LdpcBob` sets them (``±log((1−Q)/Q)`` on key bits, 0 on punctured
symbols, ``±KNOWN_LLR`` on shortened ones), with errors drawn at ``--qber``. Both kernels run
the same problem for ``--iterations`` sweeps from a cold start with ``patience`` = the
iteration count (no stall stop; a frame that converges earlier stops early, which the table
shows as ``it < --iterations``: pick a ``--qber`` at or above the code's threshold to time
every sweep).

Columns: ``ns/e·it`` = wall time / (iterations × edges), best of ``--repeat`` runs (the JIT is
warmed first); ``prepare`` = :func:`prepare_layout` (colouring and layout, once per code),
best of the repeats; ``ratio`` = serial / coloured time per edge-iteration.

* **serial**: :func:`~diqkd.postproc._ldpc_kernels.layered_numba_serial`, the former kernel
  (checks in index order, one at a time, CSR edges);
* **coloured**: :class:`~diqkd.postproc._ldpc_kernels.LayeredDecoder` with a prepared layout
  (what the protocol runs).

Run (from the repository root; codes are cached on disk under ``--cache-dir``)::

    python benchmarks/bench_ldpc_kernel.py --n 100000 1000000
    python benchmarks/bench_ldpc_kernel.py --n 1000000 --qber 0.035 --iterations 20 --json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from diqkd.postproc._ldpc_codes import CACHE_ENV
from diqkd.postproc._ldpc_kernels import (
    KNOWN_LLR,
    LayeredDecoder,
    bsc_llr,
    layered_numba_serial,
    prepare_layout,
)
from diqkd.postproc.ldpc import LdpcAlice


def frame(n: int, qber: float, code_qber: float, seed: int) -> tuple[Any, Any, Any, int]:
    """``(code, full syndrome, prior, punctured)`` of Bob's first decoding in the protocol."""
    rng = np.random.default_rng([seed, n, int(qber * 1e6)])
    alice_key = rng.integers(0, 2, n, dtype=np.uint8)
    bob_key = alice_key ^ (rng.random(n) < qber).astype(np.uint8)
    alice = LdpcAlice(alice_key, code_qber, code_seed=seed)
    message = alice.first_message()
    code, punctured = alice.code, alice.punctured
    keep = np.ones(code.m, dtype=bool)
    keep[code.anchors[:punctured]] = False
    full = np.zeros(code.m, dtype=np.uint8)
    full[keep] = message.syndrome
    prior = np.full(code.n, KNOWN_LLR, dtype=np.float32)
    prior[code.key_positions] = (1.0 - 2.0 * bob_key.astype(np.float32)) * np.float32(
        bsc_llr(code_qber)
    )
    prior[code.specials[:punctured]] = 0.0
    return code, full, prior, punctured


def bench(
    n: int, qber: float, code_qber: float, iterations: int, repeat: int, seed: int
) -> dict[str, Any]:
    code, syn, prior, punctured = frame(n, qber, code_qber, seed)
    edges = code.n_edges
    t_prep = []
    for _ in range(max(repeat, 1)):
        t0 = time.perf_counter()
        layout = prepare_layout(code.check_ptr, code.check_var)
        t_prep.append(time.perf_counter() - t0)
    serial: list[float] = []
    colored: list[float] = []
    it_serial = it_colored = 0
    ok_serial = ok_colored = False
    for rep in range(repeat + 1):  # rep 0: JIT warm-up
        post = prior.copy()
        r = np.zeros(edges, dtype=np.float32)
        t0 = time.perf_counter()
        it_serial, ok_serial = layered_numba_serial(
            code.check_ptr, code.check_var, syn, post, r, iterations, iterations
        )
        dt = time.perf_counter() - t0
        if rep:
            serial.append(dt / (max(it_serial, 1) * edges))
        dec = LayeredDecoder(code.check_ptr, code.check_var, syn, prior, layout=layout)
        t0 = time.perf_counter()
        ok_colored = dec.run(iterations, iterations)
        dt = time.perf_counter() - t0
        it_colored = dec.iterations
        if rep:
            colored.append(dt / (max(it_colored, 1) * edges))
    return {
        "n": n,
        "qber": qber,
        "code_qber": code_qber,
        "rung": code.rung,
        "punctured": punctured,
        "m": code.m,
        "edges": edges,
        "colors": layout.n_colors,
        "blocks": int(layout.block_first.size),
        "prepare_s": min(t_prep),
        "serial_iterations": it_serial,
        "serial_converged": ok_serial,
        "serial_ns_per_edge_it": min(serial) * 1e9,
        "colored_iterations": it_colored,
        "colored_converged": ok_colored,
        "colored_ns_per_edge_it": min(colored) * 1e9,
        "ratio": min(serial) / min(colored),
        "colored_mbit_s_per_it": n / (min(colored) * edges) / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--qber", type=float, default=0.03, help="the frame's error rate")
    parser.add_argument("--code-qber", type=float, default=0.03, help="code choice and priors")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--cache-dir", default=os.environ.get(CACHE_ENV) or str(Path.home() / ".cache/diqkd/ldpc")
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ[CACHE_ENV] = args.cache_dir
    rows = []
    head = (
        f"{'n':>8} {'QBER':>5} {'k':>3} {'M':>7} {'edges':>8} {'colors':>6} {'prepare s':>9} "
        f"{'serial ns/e·it':>14} {'it':>3} {'coloured ns/e·it':>16} {'it':>3} {'ratio':>6}"
    )
    if not args.json:
        print(head, flush=True)
    for n in args.n:
        r = bench(n, args.qber, args.code_qber, args.iterations, args.repeat, args.seed)
        rows.append(r)
        if not args.json:
            print(
                f"{r['n']:8d} {r['qber']:5.3f} {r['rung']:3d} {r['m']:7d} {r['edges']:8d} "
                f"{r['colors']:6d} "
                f"{r['prepare_s']:9.3f} {r['serial_ns_per_edge_it']:14.2f} "
                f"{r['serial_iterations']:3d} {r['colored_ns_per_edge_it']:16.2f} "
                f"{r['colored_iterations']:3d} {r['ratio']:6.2f}",
                flush=True,
            )
    if args.json:
        print(json.dumps({"iterations": args.iterations, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
