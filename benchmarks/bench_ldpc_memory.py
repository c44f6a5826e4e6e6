"""Benchmark: the memory traffic of layered BP alone, beside the decoder, on the same code.

Why: the throughput target of issue #4 (5 Mbit/s per core at ``n = 10⁶``, QBER 3 %) asks for
0.2 s per frame. Every layered belief-propagation decoder, whatever its arithmetic, must per
edge and iteration read the variable's posterior and the edge's message and write both back
(Hocevar, IEEE SiPS 2004: ``q = post − R_old``, ``post = q + R_new``). This script times
exactly that traffic and nothing else (one addition per element), so that a kernel can be
compared with the floor its memory access pattern sets on this machine.

Rows (one frame's code: :class:`LdpcAlice`'s rung for ``--qber`` at ``n``, seed ``--seed``):

* **touch**: for each edge in the coloured decoder's order (``prepare_layout(…).var``, what
  :class:`~diqkd.postproc._ldpc_kernels.LayeredDecoder` walks), ``post[v, :] += msg[e, :]``
  and ``msg[e, :] = post[v, :]`` over ``lanes`` frames side by side (frame-major rows:
  ``lanes`` = 1 is one frame; more lanes is inter-frame batching, as in Le Gal, Jego,
  IEEE TPDS 27, 2016, where the posterior rows become contiguous and the gathers go away);
  element types ``float32`` (the decoder's), ``int16``, ``int8`` (quantised decoders);
* **touch, sequential**: the same loop with ``v = e mod N`` (the cost of the random order);
* **decoder**: the coloured kernel itself on the same code (one frame, float32, cold start,
  ``--decoder-iterations`` sweeps), for the ratio.

Columns: ``ns/e·f·it`` = wall time / (edges × lanes × sweeps), best of ``--repeat``;
``Mb/s at I`` = ``n`` / (edges × ``I`` × that time), the key rate one core could decode at
``I`` iterations per frame (``--iterations``; 213 is what the protocol averaged at ``n = 10⁶``,
QBER 3 %, benchmarks/README.md) if this traffic were all it did; ``decoder/touch`` = the
decoder's time per edge-iteration over the float32 one-lane touch time. **Stream bound**: the
same traffic (``4 × itemsize`` bytes per edge-frame-iteration: posterior and message, read and
written) at the stream copy bandwidth of this machine (``numpy.copyto`` of 400 MB, read and
write counted); no decoder that stores one message per edge can beat it, and the touch rows
show how far plain compiled loops stay above it (random rows, no prefetch).

Run (from the repository root; the code is cached on disk under ``--cache-dir``)::

    python benchmarks/bench_ldpc_memory.py --n 1000000 --qber 0.03
    python benchmarks/bench_ldpc_memory.py --n 100000 --lanes 1 16 --json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from bench_ldpc_kernel import frame  # sibling script (its directory is on sys.path)
from diqkd.postproc._ldpc_codes import CACHE_ENV
from diqkd.postproc._ldpc_kernels import LayeredDecoder, _NoAliasCompiler, prepare_layout


@njit(cache=True, pipeline_class=_NoAliasCompiler)  # as the decoder: post and msg distinct
def _touch(var: Any, post: Any, msg: Any, lanes: int, sweeps: int) -> None:  # pragma: no cover
    for _ in range(sweeps):
        for e in range(var.size):
            row = var[e] * lanes
            col = e * lanes
            pv = post[row : row + lanes]  # slice views: unit-stride vectors (_ldpc_kernels)
            mv = msg[col : col + lanes]
            for j in range(lanes):
                t = pv[j] + mv[j]
                pv[j] = t
                mv[j] = t


def _best(fn: Any, repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def copy_bandwidth(repeat: int) -> float:
    """GB/s of ``numpy.copyto`` on 400 MB (read + write counted)."""
    a = np.ones(100_000_000, dtype=np.float32)
    b = np.empty_like(a)
    np.copyto(b, a)
    return 2 * a.nbytes / _best(lambda: np.copyto(b, a), repeat) / 1e9


def touch_time(var: Any, n_var: int, dtype: Any, lanes: int, sweeps: int, repeat: int) -> float:
    """Seconds per edge-lane-sweep of :func:`_touch` (best of ``repeat``)."""
    post = np.zeros(n_var * lanes, dtype=dtype)
    msg = np.zeros(var.size * lanes, dtype=dtype)
    _touch(var[:8], post, msg, lanes, 1)  # JIT for this dtype
    dt = _best(lambda: _touch(var, post, msg, lanes, sweeps), repeat)
    return dt / float(var.size * lanes * sweeps)


def decoder_time(n: int, qber: float, seed: int, sweeps: int, repeat: int) -> tuple[Any, float]:
    """``(code, seconds per edge-iteration)`` of the coloured kernel on one protocol frame
    (Bob's first decoding, as :mod:`bench_ldpc_kernel` sets it up)."""
    code, full, prior, _ = frame(n, qber, qber, seed)
    layout = prepare_layout(code.check_ptr, code.check_var)
    best = math.inf
    for _ in range(repeat + 1):  # the first run also compiles
        dec = LayeredDecoder(code.check_ptr, code.check_var, full, prior, layout=layout)
        t0 = time.perf_counter()
        dec.run(sweeps, sweeps)
        dt = time.perf_counter() - t0
        best = min(best, dt / (max(dec.iterations, 1) * code.n_edges))
    return code, best


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--qber", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lanes", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--types", nargs="+", default=["float32", "int16", "int8"])
    parser.add_argument("--sweeps", type=int, default=2, help="touch sweeps per timing")
    parser.add_argument("--decoder-iterations", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=213, help="I of the Mb/s column")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--cache-dir", default=os.environ.get(CACHE_ENV) or str(Path.home() / ".cache/diqkd/ldpc")
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ[CACHE_ENV] = args.cache_dir

    code, t_dec = decoder_time(args.n, args.qber, args.seed, args.decoder_iterations, args.repeat)
    var = np.ascontiguousarray(prepare_layout(code.check_ptr, code.check_var).var)
    seq = (np.arange(var.size, dtype=np.int64) % code.n).astype(np.int32)
    edges = int(var.size)

    def mbps(t: float) -> float:
        return float(args.n / (edges * args.iterations * t) / 1e6)

    rows: list[dict[str, Any]] = []
    t_ref = None
    for order, idx in (("layout", var), ("sequential", seq)):
        for name in args.types:
            for lanes in args.lanes:
                t = touch_time(idx, code.n, np.dtype(name), lanes, args.sweeps, args.repeat)
                if order == "layout" and name == "float32" and lanes == 1:
                    t_ref = t
                rows.append(
                    {"order": order, "type": name, "lanes": lanes, "ns": t * 1e9, "mbit_s": mbps(t)}
                )
    bw = copy_bandwidth(args.repeat)
    ratio = t_dec / t_ref if t_ref else None
    result = {
        "n": args.n,
        "qber": args.qber,
        "edges": edges,
        "iterations": args.iterations,
        "copy_gb_s": bw,
        "decoder_ns": t_dec * 1e9,
        "decoder_mbit_s": mbps(t_dec),
        "decoder_over_touch": ratio,
        "stream_bound_mbit_s": {
            name: mbps(4 * np.dtype(name).itemsize / (bw * 1e9)) for name in args.types
        },
        "touch": rows,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"n = {args.n}, QBER {args.qber}: code with {edges} edges; stream copy {bw:.1f} GB/s; "
        f"Mb/s columns at I = {args.iterations} iterations per frame"
    )
    for name in args.types:
        t = 4 * np.dtype(name).itemsize / (bw * 1e9)
        print(f"stream bound, {name:>7}: {t * 1e9:.3f} ns/e·f·it, {mbps(t):.2f} Mb/s at I")
    print(f"{'what':<22} {'type':>7} {'lanes':>5} {'ns/e·f·it':>10} {'Mb/s at I':>10}")
    for r in rows:
        print(
            f"{'touch, ' + r['order']:<22} {r['type']:>7} {r['lanes']:5d} {r['ns']:10.3f} "
            f"{r['mbit_s']:10.2f}"
        )
    print(
        f"{'decoder (coloured)':<22} {'float32':>7} {1:5d} {t_dec * 1e9:10.3f} {mbps(t_dec):10.2f}"
    )
    if ratio is not None:
        print(f"decoder/touch (float32, one lane, layout order): {ratio:.1f}×")


if __name__ == "__main__":
    main()
