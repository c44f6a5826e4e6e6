"""Benchmark: optimised Cascade (diqkd) versus the original Cascade, measured in the same run.

Figures of merit, per frame length n ∈ {10⁴, 10⁵} and QBER Q ∈ {1, 2, 3, 5, 8 %}:

* **efficiency** ``f = leaked_bits / (n·h(Q))`` with ``Q`` the true QBER of each frame
  (SCIENCE.md; Martinez-Mateo et al., QIC 15, 453 (2015), Eq. (1)), mean ± standard error;
* **frame error rate** (FER): frames where Bob's key still differs after Cascade, *before*
  verification (a verification hash catches them later);
* **round trips** per frame and **throughput** (Mbit/s of reconciled key per wall second, both
  parties run in this one process, one thread, first frame excluded as warm-up).

Ours: :func:`diqkd.postproc.cascade.run_cascade` with :class:`CascadeAlice`/:class:`CascadeBob`
("Cascade opt. (8)" block sizes, 14 passes, sub-block reuse, all searches of a round batched
into one round trip, numba kernels).

Peer (no installable Python Cascade package exists on PyPI: ``cascade-python`` is not
published, ``cascade`` is an IMAP tool, ``qkdpy``'s ``cascade`` compares both keys directly):
the **original Cascade** (Brassard, Salvail, EUROCRYPT 1993: 4 passes, ``k₁ = ⌈0.73/Q⌉``,
doubling) implemented naively *in the same framework* — the same messages, the same
:class:`CascadeAlice` answering, the same ledger — one parity question per round trip, each
BINARY search started from the top of its block, the cascade effect re-searching whole
top-level blocks of earlier passes, no cache of disclosed parities (textbook form). Two more
columns, for context: our engine with the original block schedule (separates schedule from
engine), and our engine run sequentially (``batched=False``: one search at a time, smallest
odd block first — the order the literature simulates; less leak, many more round trips).

Run (from the repository root)::

    python benchmarks/bench_cascade.py                       # table
    python benchmarks/bench_cascade.py --json                # one JSON document
    python benchmarks/bench_cascade.py --frames 100 20 --peer-frames 30 3
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Generator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from diqkd.postproc._cascade_kernels import pass_permutation
from diqkd.postproc.cascade import (
    CascadeAlice,
    CascadeBob,
    original_block_sizes,
    run_cascade,
)
from diqkd.postproc.ledger import LeakLedger
from diqkd.postproc.messages import (
    CascadeStart,
    Done,
    ParityReply,
    ParityRequest,
    ReconciliationMessage,
)
from diqkd.postproc.reconcile import efficiency


class NaiveOriginalBob:
    """Bob of the original Cascade, naive: one parity per round trip, no parity cache."""

    def __init__(self, key_bits: NDArray[np.uint8], qber: float, shuffle_seed: int) -> None:
        self.bits = np.array(key_bits, dtype=np.uint8, copy=True)
        n = self.bits.size
        self.sizes = original_block_sizes(qber, n)
        self.start = CascadeStart(n_bits=n, shuffle_seed=shuffle_seed, block_sizes=self.sizes)
        self._protocol = self._run()

    def first_message(self) -> ReconciliationMessage:
        return next(self._protocol)

    def handle(self, message: ReconciliationMessage) -> ReconciliationMessage:
        return self._protocol.send(message)

    @property
    def corrected_key(self) -> NDArray[np.uint8]:
        return self.bits

    def _run(self) -> Generator[ReconciliationMessage, ReconciliationMessage, None]:
        n, sizes, bits = self.bits.size, self.sizes, self.bits
        reply = yield self.start
        if not isinstance(reply, ParityReply):
            raise TypeError(f"expected a ParityReply, got {reply.kind}")
        top, offset = [], 0
        for k in sizes:
            count = -(-n // k)
            top.append(reply.parities[offset : offset + count])
            offset += count
        perms = [pass_permutation(n, self.start.shuffle_seed, p) for p in range(len(sizes))]
        position = [np.argsort(perm) for perm in perms]
        for i in range(len(sizes)):
            k = sizes[i]
            queue = [
                (i, b)
                for b in range(len(top[i]))
                if int(bits[perms[i][b * k : (b + 1) * k]].sum()) % 2 != top[i][b]
            ]
            while queue:
                p, b = queue.pop()
                kp = sizes[p]
                s, e = b * kp, min((b + 1) * kp, n)
                if int(bits[perms[p][s:e]].sum()) % 2 == top[p][b]:
                    continue
                while e - s > 1:  # BINARY: ask for the first half, infer the second
                    m = s + (e - s + 1) // 2
                    answer = yield ParityRequest(
                        passes=np.array([p]), starts=np.array([s]), ends=np.array([m])
                    )
                    if not isinstance(answer, ParityReply):
                        raise TypeError(f"expected a ParityReply, got {answer.kind}")
                    if int(bits[perms[p][s:m]].sum()) % 2 != answer.parities[0]:
                        e = m
                    else:
                        s = m
                j = perms[p][s]
                bits[j] ^= 1
                for q in range(i + 1):  # cascade: re-check this bit's block in other passes
                    if q != p:
                        queue.append((q, int(position[q][j]) // sizes[q]))
        yield Done()


def _frame(n: int, qber: float, seed: int) -> tuple[NDArray[np.uint8], NDArray[np.uint8], float]:
    rng = np.random.default_rng(seed)
    alice = rng.integers(0, 2, n, dtype=np.uint8)
    noise = (rng.random(n) < qber).astype(np.uint8)
    return alice, alice ^ noise, float(noise.mean())


def _measure(kind: str, n: int, qber: float, frames: int, seed: int) -> dict[str, Any]:
    fs: list[float] = []
    rounds: list[int] = []
    failures = 0
    elapsed = 0.0
    for t in range(frames + 1):  # frame 0 warms up (numba load), not counted
        alice_key, bob_key, q_true = _frame(n, qber, seed + t)
        start = time.perf_counter()
        alice = CascadeAlice(alice_key)
        bob: CascadeBob | NaiveOriginalBob
        if kind == "ours":
            bob = CascadeBob(bob_key, qber, shuffle_seed=seed + t)
        elif kind == "ours-sequential":
            bob = CascadeBob(bob_key, qber, shuffle_seed=seed + t, batched=False)
        elif kind == "ours-original-schedule":
            sizes = original_block_sizes(qber, n)
            bob = CascadeBob(bob_key, qber, shuffle_seed=seed + t, block_sizes=sizes)
        else:
            bob = NaiveOriginalBob(bob_key, qber, shuffle_seed=seed + t)
        ledger = LeakLedger()
        run = run_cascade(alice, bob, ledger)
        stop = time.perf_counter()
        if t == 0:
            continue
        elapsed += stop - start
        fs.append(efficiency(ledger.leaked_bits, n, q_true))
        rounds.append(run.rounds)
        failures += not np.array_equal(bob.corrected_key, alice_key)
    return {
        "frames": frames,
        "f_mean": statistics.fmean(fs),
        "f_sem": statistics.stdev(fs) / math.sqrt(frames) if frames > 1 else float("nan"),
        "fer": failures / frames,
        "frame_errors": failures,
        "rounds_mean": statistics.fmean(rounds),
        "mbit_per_s": n * frames / elapsed / 1e6,
    }


def _throughput(n: int, qber: float, repeats: int, seed: int) -> dict[str, Any]:
    times = []
    for t in range(repeats + 1):
        alice_key, bob_key, _ = _frame(n, qber, seed + t)
        start = time.perf_counter()
        bob = CascadeBob(bob_key, qber, shuffle_seed=seed + t)
        run_cascade(CascadeAlice(alice_key), bob, LeakLedger())
        if t:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"n": n, "qber": qber, "seconds": median, "mbit_per_s": n / median / 1e6}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--qbers", type=float, nargs="+", default=[0.01, 0.02, 0.03, 0.05, 0.08])
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 20], help="per size")
    parser.add_argument("--peer-frames", type=int, nargs="+", default=[30, 3], help="per size")
    parser.add_argument("--throughput-sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2015)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)

    rows = []
    for index, n in enumerate(args.sizes):
        frames = args.frames[min(index, len(args.frames) - 1)]
        peer_frames = args.peer_frames[min(index, len(args.peer_frames) - 1)]
        for qber in args.qbers:
            seed = args.seed + 1000 * index + int(qber * 1e4)
            ours = _measure("ours", n, qber, frames, seed)
            engine = _measure("ours-original-schedule", n, qber, frames, seed)
            sequential = _measure("ours-sequential", n, qber, peer_frames, seed)
            peer = _measure("peer", n, qber, peer_frames, seed)
            rows.append(
                {
                    "n": n,
                    "qber": qber,
                    "ours": ours,
                    "ours_original_schedule": engine,
                    "ours_sequential": sequential,
                    "peer_original_naive": peer,
                    "f_ratio_peer_over_ours": peer["f_mean"] / ours["f_mean"],
                    "speed_ratio_ours_over_peer": ours["mbit_per_s"] / peer["mbit_per_s"],
                    "rounds_ratio_peer_over_ours": peer["rounds_mean"] / ours["rounds_mean"],
                }
            )
            if not args.json:
                print(_format_row(rows[-1]), flush=True)
    speed = [_throughput(n, 0.03, args.repeats, args.seed) for n in args.throughput_sizes]
    if args.json:
        print(json.dumps({"rows": rows, "throughput": speed}, indent=2))
    else:
        for item in speed:
            print(
                f"throughput n={item['n']:.0e} Q=3%: {item['seconds']:.3f} s per frame, "
                f"{item['mbit_per_s']:.2f} Mbit/s (median of {args.repeats})"
            )
    return 0


def _format_row(row: dict[str, Any]) -> str:
    ours, engine, peer = row["ours"], row["ours_original_schedule"], row["peer_original_naive"]
    seq = row["ours_sequential"]
    return (
        f"n={row['n']:>6} Q={row['qber']:.2f} | ours f={ours['f_mean']:.3f}±{ours['f_sem']:.3f} "
        f"FER={ours['frame_errors']}/{ours['frames']} rounds={ours['rounds_mean']:.0f} "
        f"{ours['mbit_per_s']:.2f} Mbit/s | engine+orig f={engine['f_mean']:.3f} "
        f"FER={engine['frame_errors']}/{engine['frames']} rounds={engine['rounds_mean']:.0f} | "
        f"sequential f={seq['f_mean']:.3f} rounds={seq['rounds_mean']:.0f} | "
        f"peer f={peer['f_mean']:.3f}"
        f"±{peer['f_sem']:.3f} FER={peer['frame_errors']}/{peer['frames']} "
        f"rounds={peer['rounds_mean']:.0f} {peer['mbit_per_s']:.3f} Mbit/s | "
        f"f peer/ours={row['f_ratio_peer_over_ours']:.3f} "
        f"speed ours/peer={row['speed_ratio_ours_over_peer']:.1f}"
    )


if __name__ == "__main__":
    sys.exit(main())
