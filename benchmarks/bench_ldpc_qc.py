"""Prototype: a quasi-cyclic lift of a rung's ensemble, decoded in the ratio domain, beside the
package's coloured decoder on the rung's forest code, same run.

Not part of the package: this measured whether a quasi-cyclic (QC) code family would pay
(benchmarks/README.md, "Toward 5 Mbit/s per core"); the package's family is now
:mod:`diqkd.postproc._ldpc_qc` (measured with ``bench_ldpc.py --family qc``). Kept as the
record of that comparison: the mother codes one-shot, and the time per edge-iteration of the
prototype kernel beside the coloured one on the same frame. The package's codes are random graphs
(configuration model with a degree-2 forest); every edge of a layered sweep then gathers and
scatters a posterior at a random address, which bounds the coloured kernel at ≈ 4.5–5.7 ns
per edge-iteration at 10⁶ on this machine. A QC code is a *base graph* of ``Mb × Nb`` blocks,
each edge of which is a ``Z × Z`` cyclic permutation (shift ``s``): check ``(c, l)`` meets
variable ``(v, (l + s) mod Z)`` (Fossorier, IEEE TIT 50, 1788 (2004); the lifting of
protographs, Thorpe, IPN PR 42-154 (2003)). A layer of ``Z`` checks then reads each of its
variable blocks as two contiguous runs, and the lanes are the ``Z`` checks of a base row.

Construction here: the rung's variable-degree sequence sampled every ``Z``-th (sorted), check
degrees concentrated, sockets paired at random (configuration model) and repeated pairs
repaired by swaps (so no multi-edge and no degree loss), shifts uniform on ``[0, Z)``.

Kernel: layered sum-product with messages as likelihood ratios ``ρ = e^L``: a variable's
extrinsic ratio is ``P/ρ_cv``, its ``tanh(L/2) = (ρ − 1)/(ρ + 1)``; the check's products of
the others' ``tanh`` by a forward and a backward pass (no division by a possibly zero term);
the new message ``ρ = (1 + t)/(1 − t)`` (the tanh rule, Ryan, Lin, *Channel Codes*, CUP 2009,
Eq. (5.18)); ``P ← q·ρ``. Float32, ``fastmath`` (reassociation allowed: a prototype).

Printed: one-shot decodings (mother code, no puncturing, frames of i.i.d. errors at the QBER
that gives each ``f = (M/N)/h(Q)``) of both codes, iterations or failure; and the time per
edge-iteration of both kernels on the same frame for a fixed number of iterations, as a
ratio. Run (codes are built or loaded from ``$DIQKD_LDPC_CACHE_DIR``)::

    python benchmarks/bench_ldpc_qc.py --f 1.145 1.098 1.064 1.040 1.030 --frames 2
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numba as nb
import numpy as np
from scipy.optimize import brentq

from diqkd.postproc._ldpc_codes import build_code
from diqkd.postproc._ldpc_kernels import LayeredDecoder, _NoAliasCompiler, bsc_llr, prepare_layout
from diqkd.postproc.reconcile import binary_entropy

ONE = np.float32(1.0)
ZERO = np.float32(0.0)
TINY = np.float32(1e-30)


def base_graph(var_degrees: Any, m: int, z: int, rng: np.random.Generator) -> tuple[int, int, Any]:
    """``(Mb, Nb, pairs)``: base rows, base columns, and the ``(row, column)`` edges."""
    vd = np.sort(np.asarray(var_degrees))[::-1][::z].copy()
    mb = round(m / z)
    e = int(vd.sum())
    cd = np.full(mb, e // mb)
    cd[: e - int(cd.sum())] += 1
    vs = np.repeat(np.arange(vd.size), vd)
    cs = np.repeat(np.arange(mb), cd)
    rng.shuffle(vs)
    for _ in range(500):  # swap the variable end of each repeated pair with a random edge
        key = cs.astype(np.int64) * vd.size + vs
        _, first = np.unique(key, return_index=True)
        dup = np.ones(key.size, bool)
        dup[first] = False
        bad = np.flatnonzero(dup)
        if bad.size == 0:
            break
        other = rng.integers(0, key.size, bad.size)
        vs[bad], vs[other] = vs[other].copy(), vs[bad].copy()
    else:
        raise RuntimeError("could not remove the repeated pairs of the base graph")
    return mb, int(vd.size), np.stack([cs, vs], 1)


def lift(mb: int, pairs: Any, z: int, rng: np.random.Generator) -> tuple[Any, Any, Any]:
    """Row pointer, variable block and shift of every base edge, rows in order."""
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    row_ptr = np.zeros(mb + 1, np.int64)
    np.add.at(row_ptr, pairs[:, 0] + 1, 1)
    return np.cumsum(row_ptr), pairs[:, 1].astype(np.int64), rng.integers(0, z, len(pairs))


@nb.njit(fastmath=True, error_model="numpy", pipeline_class=_NoAliasCompiler)
def qc_iterate(  # pragma: no cover - numba
    z: int, row_ptr: Any, evb: Any, esh: Any, big_r: Any, r: Any, ssign: Any,
    q: Any, dl: Any, fw: Any, n_it: int, tmax: Any, pmin: Any, pmax: Any,
) -> None:  # fmt: skip
    """``n_it`` layered sweeps, in place on the posterior ratios ``big_r[Nb, Z]``."""
    mb = row_ptr.size - 1
    g = np.empty(z, np.float32)
    for _ in range(n_it):
        for cb in range(mb):
            a = row_ptr[cb]
            d = row_ptr[cb + 1] - a
            for j in range(d):
                rv = big_r[evb[a + j]]
                s = esh[a + j]
                re = r[a + j]
                qj = q[j]
                dj = dl[j]
                hi = rv[s:]
                lo = rv[:s]
                qa = qj[: z - s]
                qb = qj[z - s :]
                ra = re[: z - s]
                rb = re[z - s :]
                for k in range(z - s):
                    qa[k] = hi[k] / ra[k]
                for k in range(s):
                    qb[k] = lo[k] / rb[k]
                for k in range(z):
                    x = qj[k]
                    dj[k] = (x - ONE) / (x + ONE)
            sg = ssign[cb]
            for k in range(z):
                g[k] = sg[k]
            for j in range(d):  # forward products: fw[j] = sign · t_0 ⋯ t_{j−1}
                fj = fw[j]
                dj = dl[j]
                for k in range(z):
                    fj[k] = g[k]
                    t = g[k] * dj[k]
                    g[k] = t if abs(t) > TINY else ZERO
            for k in range(z):
                g[k] = ONE
            for j in range(d - 1, -1, -1):  # backward, and the new messages
                re = r[a + j]
                fj = fw[j]
                dj = dl[j]
                qj = q[j]
                for k in range(z):
                    x = fj[k] * g[k]
                    t = g[k] * dj[k]
                    g[k] = t if abs(t) > TINY else ZERO
                    x = min(max(x, -tmax), tmax)
                    rn = (ONE + x) / (ONE - x)
                    re[k] = rn
                    qj[k] = min(max(qj[k] * rn, pmin), pmax)
            for j in range(d):
                rv = big_r[evb[a + j]]
                s = esh[a + j]
                qj = q[j]
                hi = rv[s:]
                lo = rv[:s]
                qa = qj[: z - s]
                qb = qj[z - s :]
                for k in range(z - s):
                    hi[k] = qa[k]
                for k in range(s):
                    lo[k] = qb[k]


def qc_syndrome(z: int, row_ptr: Any, evb: Any, esh: Any, x: Any) -> Any:
    """``H·x`` of the lifted code, shape (Mb, Z)."""
    syn = np.zeros((row_ptr.size - 1, z), np.uint8)
    for cb in range(row_ptr.size - 1):
        for e in range(row_ptr[cb], row_ptr[cb + 1]):
            syn[cb] ^= np.roll(x[evb[e]], -esh[e])
    return syn


class QcDecoder:
    """The lifted code's decoding state: posterior ratios, messages and lane buffers."""

    def __init__(self, z: int, row_ptr: Any, evb: Any, esh: Any, syn: Any, llr: Any) -> None:
        self.z, self.row_ptr, self.evb, self.esh, self.syn = z, row_ptr, evb, esh, syn
        self.big_r = np.exp(np.clip(llr, -40, 40)).astype(np.float32)
        self.r = np.ones((evb.size, z), np.float32)
        self.ssign = (1 - 2 * syn.astype(np.float32)).astype(np.float32)
        dmax = int(np.diff(row_ptr).max())
        self.bufs = [np.empty((dmax, z), np.float32) for _ in range(3)]

    def sweep(self, n_it: int) -> None:
        qc_iterate(
            self.z, self.row_ptr, self.evb, self.esh, self.big_r, self.r, self.ssign,
            *self.bufs, n_it, np.float32(1 - 2.0**-20), np.float32(1e-30), np.float32(1e30),
        )  # fmt: skip

    def ok(self) -> bool:
        hard = (self.big_r < 1).astype(np.uint8)
        return bool(
            np.array_equal(qc_syndrome(self.z, self.row_ptr, self.evb, self.esh, hard), self.syn)
        )


def qber_for(f: float, ratio: float) -> float:
    """The QBER at which a code with ``M/N = ratio`` works at efficiency ``f``."""
    return float(brentq(lambda q: ratio / binary_entropy(q) - f, 1e-4, 0.5 - 1e-9))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rung", type=int, default=37, help="the 3 %% rung at 10⁶")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--z", type=int, default=512)
    parser.add_argument("--f", type=float, nargs="+", default=[1.098, 1.064, 1.040])
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--max-iterations", type=int, default=300)
    parser.add_argument("--timing-iterations", type=int, default=30)
    args = parser.parse_args()
    code = build_code(1_000_000, args.rung, args.seed)
    rng = np.random.default_rng(args.seed)
    var_deg = np.bincount(code.check_var, minlength=code.n)
    mb, nb_, pairs = base_graph(var_deg, code.m, args.z, rng)
    row_ptr, evb, esh = lift(mb, pairs, args.z, rng)
    z = args.z
    print(
        f"forest code: N={code.n} M={code.m} E={code.n_edges}; QC lift Z={z}: "
        f"N={nb_ * z} M={mb * z} E={evb.size * z}, smallest column degree "
        f"{np.bincount(pairs[:, 1]).min()}"
    )
    layout = prepare_layout(code.check_ptr, code.check_var)
    print("one-shot decodings of the mother codes: iterations per frame (— failed)")
    for f in args.f:
        cols = []
        for which in ("qc", "forest"):
            ratio = mb / nb_ if which == "qc" else code.m / code.n
            q = qber_for(f, ratio)
            its = []
            for _ in range(args.frames):
                llr_abs = np.float32(bsc_llr(q))
                if which == "qc":
                    x = rng.integers(0, 2, (nb_, z)).astype(np.uint8)
                    y = x ^ (rng.random((nb_, z)) < q).astype(np.uint8)
                    dec = QcDecoder(z, row_ptr, evb, esh, qc_syndrome(z, row_ptr, evb, esh, x),
                                    np.where(y == 0, llr_abs, -llr_abs))  # fmt: skip
                    done = "—"
                    for it in range(1, args.max_iterations + 1):
                        dec.sweep(1)
                        if it % 2 == 0 and dec.ok():
                            done = str(it)
                            break
                else:
                    xf = rng.integers(0, 2, code.n).astype(np.uint8)
                    yf = xf ^ (rng.random(code.n) < q).astype(np.uint8)
                    lay = LayeredDecoder(code.check_ptr, code.check_var, code.syndrome(xf),
                                         np.where(yf == 0, llr_abs, -llr_abs).astype(np.float32),
                                         layout=layout)  # fmt: skip
                    done = str(lay.iterations) if lay.run(args.max_iterations, 10**6) else "—"
                its.append(done)
            cols.append(f"Q {q:.4f}: {' '.join(its):<12}")
        print(f"{f:6.3f}   QC {cols[0]}   forest {cols[1]}", flush=True)
    n_it = args.timing_iterations
    q = qber_for(1.2, mb / nb_) + 0.02  # above the threshold: nobody converges, no skipping
    llr_abs = np.float32(bsc_llr(q))
    for rep in range(3):
        y = (rng.random((nb_, z)) < q).astype(np.uint8)
        dec = QcDecoder(z, row_ptr, evb, esh, np.zeros((mb, z), np.uint8),
                        np.where(y == 0, llr_abs, -llr_abs))  # fmt: skip
        dec.sweep(1)  # compile
        t = time.perf_counter()
        dec.sweep(n_it)
        t_qc = (time.perf_counter() - t) / n_it / (evb.size * z)
        yf = rng.random(code.n) < q
        prior = np.where(yf, -llr_abs, llr_abs).astype(np.float32)
        zeros = np.zeros(code.m, np.uint8)
        lay = LayeredDecoder(code.check_ptr, code.check_var, zeros, prior, layout=layout)
        lay.run(1, 10**6)
        t = time.perf_counter()
        lay.run(n_it, 10**6)
        t_f = (time.perf_counter() - t) / max(lay.iterations - 1, 1) / code.n_edges
        print(
            f"per edge-iteration ({n_it} iterations, repeat {rep + 1}): QC ratio domain "
            f"{t_qc * 1e9:.2f} ns, coloured on the forest code {t_f * 1e9:.2f} ns: "
            f"{t_f / t_qc:.2f}×"
        )
    mbps = 1.0 / (30 * evb.size * z * t_qc)  # 10⁶ key bits per frame: Mbit/s = frames/µs·…
    print(f"QC at 30 iterations per frame: {mbps:.2f} Mbit/s of key (10⁶ bits per frame)")


if __name__ == "__main__":
    main()
