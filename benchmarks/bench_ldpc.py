"""Benchmark: diqkd LDPC reconciliation versus the ``ldpc`` package's BP decoder, same run.

Per frame length n and QBER Q (frames with exactly Bernoulli(Q) errors, true QBER used):

* **efficiency** ``f = leaked_bits / (n·h(Q))`` (SCIENCE.md) of the full protocol
  (:func:`diqkd.postproc.ldpc.run_ldpc`: one syndrome at target f₀, then blind reveals),
  mean over frames, from the ledger;
* **FER one-shot**: frames whose *first* decoding (no reveals) fails — the frame error rate of
  the code at rate ``1 − m/n``; **FER final**: frames still unconverged or wrong at the end;
* **throughput** of the first decoding (Mbit/s of frame per wall second of decoding, one
  thread, JIT warm-up excluded), ours (layered sum-product, numba) and the peer's.

Peer: ``ldpc`` (Roffe et al., PyPI ``ldpc`` ≥ 2, C++ BP) ``BpDecoder`` with
``bp_method="product_sum"``, ``schedule="serial"`` (layered, like ours), the same ``H``, the
same frames and the same iteration cap, decoding the error pattern from ``H·y ⊕ s``. Install it
for the benchmark only (``pip install ldpc``); without it the peer columns are empty.

Run (from the repository root)::

    python benchmarks/bench_ldpc.py                  # table
    python benchmarks/bench_ldpc.py --json
    python benchmarks/bench_ldpc.py --n 10000 100000 --qber 0.01 0.03 0.05 --frames 20
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

import numpy as np

from diqkd.postproc._ldpc_codes import syndrome
from diqkd.postproc._ldpc_kernels import channel_llr, decode
from diqkd.postproc.ldpc import DEFAULT_EFFICIENCY, LdpcAlice, LdpcBob, run_ldpc
from diqkd.postproc.ledger import LeakLedger
from diqkd.postproc.reconcile import binary_entropy

MAX_ITERATIONS = 100


def _peer_decoder(code: Any, qber: float) -> Any:
    try:
        import scipy.sparse as sp
        from ldpc import BpDecoder
    except ImportError:
        return None
    h = sp.csr_matrix(
        (np.ones(code.n_edges, np.uint8), code.check_var, code.check_ptr), shape=(code.m, code.n)
    )
    return BpDecoder(
        h,
        error_rate=qber,
        max_iter=MAX_ITERATIONS,
        bp_method="product_sum",
        schedule="serial",
        input_vector_type="syndrome",
    )


def bench(
    n: int, qber: float, frames: int, f0: float, seed: int, with_peer: bool = True
) -> dict[str, Any]:
    rng = np.random.default_rng([seed, n, int(qber * 1e6)])
    leaks, one_shot_fail, final_fail = [], 0, 0
    t_ours = t_peer = 0.0
    peer_fail = 0
    peer_agree = 0
    peer = None
    for frame in range(frames + 1):  # frame 0: JIT and code-construction warm-up
        alice = rng.integers(0, 2, n, dtype=np.uint8)
        bob = alice ^ (rng.random(n) < qber).astype(np.uint8)
        a = LdpcAlice(alice, qber, efficiency=f0, code_seed=seed)
        code = a.code
        s = syndrome(code, alice)
        t0 = time.perf_counter()
        hard, ok, _, _ = decode(
            code.check_ptr, code.check_var, s, channel_llr(bob, qber), max_iterations=MAX_ITERATIONS
        )
        dt = time.perf_counter() - t0
        if peer is None:
            peer = (with_peer and _peer_decoder(code, qber)) or False
        if peer:
            target = syndrome(code, bob) ^ s
            t0 = time.perf_counter()
            err = peer.decode(target)
            dtp = time.perf_counter() - t0
            peer_ok = bool(peer.converge) and np.array_equal(bob ^ err.astype(np.uint8), alice)
        if frame == 0:
            continue
        t_ours += dt
        one_shot_fail += not (ok and np.array_equal(hard, alice))
        if peer:
            t_peer += dtp
            peer_fail += not peer_ok
            peer_agree += peer_ok == (ok and np.array_equal(hard, alice))
        ledger = LeakLedger()
        b = LdpcBob(bob, qber)
        run = run_ldpc(a, b, ledger)
        final_fail += not (run.converged and np.array_equal(b.corrected_key, alice))
        leaks.append(ledger.leaked_bits)
    h = binary_entropy(qber)
    ours_mbps = n * frames / t_ours / 1e6
    peer_mbps = n * frames / t_peer / 1e6 if peer else math.nan
    return {
        "n": n,
        "qber": qber,
        "frames": frames,
        "m": code.m,
        "f_code": code.m / (n * h),
        "f_mean": float(np.mean(leaks)) / (n * h),
        "fer_one_shot": one_shot_fail / frames,
        "fer_final": final_fail / frames,
        "ours_mbit_s": ours_mbps,
        "peer_fer": peer_fail / frames if peer else None,
        "peer_same_outcome": peer_agree / frames if peer else None,
        "peer_mbit_s": peer_mbps if peer else None,
        "speedup": ours_mbps / peer_mbps if peer else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--qber", type=float, nargs="+", default=[0.01, 0.02, 0.03, 0.05])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--f0", type=float, default=DEFAULT_EFFICIENCY)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-peer", action="store_true", help="skip the (slow) ldpc package")
    args = parser.parse_args()
    rows = [
        bench(n, q, args.frames, args.f0, args.seed, not args.no_peer)
        for n in args.n
        for q in args.qber
    ]
    if args.json:
        print(json.dumps({"f0": args.f0, "rows": rows}, indent=2))
        return
    head = (
        f"{'n':>7} {'QBER':>5} {'f_code':>6} {'f_mean':>6} {'FER1':>5} {'FERfin':>6} "
        f"{'ours Mb/s':>9} {'peer FER':>8} {'peer Mb/s':>9} {'ratio':>6}"
    )
    print(head)
    for r in rows:
        peer = (
            f"{r['peer_fer']:8.3f} {r['peer_mbit_s']:9.3f} {r['speedup']:6.2f}"
            if r["speedup"] is not None
            else f"{'-':>8} {'-':>9} {'-':>6}"
        )
        print(
            f"{r['n']:7d} {r['qber']:5.3f} {r['f_code']:6.3f} {r['f_mean']:6.3f} "
            f"{r['fer_one_shot']:5.2f} {r['fer_final']:6.2f} {r['ours_mbit_s']:9.3f} {peer}"
        )


if __name__ == "__main__":
    main()
