"""Paired frames: the same frames reconciled from several first-syndrome targets ``f₀``.

In a blind session a frame's leak is set by where it decodes on the grid of blind steps
``f₀ + 0.01·t``; a first syndrome below the frame's own threshold costs a failed decoding
attempt (iterations), not leak. This runs each frame once per start, on the same code and
frames (``bench_ldpc.run_frame``), and prints per frame f, iterations and Bob's seconds for
each start, then the means and the mean paired difference of f against the first start,
with its standard error. ``d`` as a start means the protocol's default
(:func:`diqkd.postproc.ldpc.default_efficiency`). Used for ``ldpc.FOREST_START_TARGET``
(benchmarks/README.md, "Where the first syndrome starts"). Run::

    python benchmarks/bench_ldpc_start.py --qber 0.03 --seed 2 --frames 16 --starts 1.03 1.035 1.04
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from bench_ldpc import frame_stream, run_frame
from diqkd.postproc.reconcile import binary_entropy


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--qber", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=2, help="code seed and frame stream")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--starts", nargs="+", default=["d", "1.04"], help="f₀ values, d: default")
    args = parser.parse_args()
    starts = [None if s == "d" else float(s) for s in args.starts]
    n, q = args.n, args.qber
    h = binary_entropy(q)
    rows = []
    for frame, alice, bob in frame_stream(n, q, args.seed, args.frames):  # bench_ldpc.py's
        if frame == 0:  # its JIT warm-up frame
            continue
        row = []
        for f0 in starts:
            res = run_frame(alice, bob, q, f0, args.seed)
            if not res["final_ok"]:
                print(f"frame {frame}, start {f0}: not reconciled")
            row.append((res["leak"] / (n * h), res["iterations"], res["t_bob"]))
        rows.append(row)
        cells = "   ".join(f"f {f:.4f} it {it:4d} {t:5.2f} s" for f, it, t in row)
        print(f"frame {frame:3d}: {cells}", flush=True)
    arr = np.array(rows)  # frames × starts × (f, iterations, seconds)
    for i, label in enumerate(args.starts):
        diff = arr[:, i, 0] - arr[:, 0, 0]
        sem = diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else math.nan
        print(
            f"start {label}: f {arr[:, i, 0].mean():.4f}, iterations {arr[:, i, 1].mean():.1f},"
            f" Bob {arr[:, i, 2].mean():.2f} s per frame; f − f(start {args.starts[0]}) ="
            f" {diff.mean():+.4f} ± {sem:.4f}"
        )


if __name__ == "__main__":
    main()
