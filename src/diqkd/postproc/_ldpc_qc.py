"""Quasi-cyclic (QC) LDPC codes and their ratio-domain layered decoder: the throughput family.

Why a second family. The package's default codes (:mod:`~diqkd.postproc._ldpc_forest`, PEG)
are random graphs: every edge of a layered sweep gathers and scatters a posterior at a random
address, which bounds their decoder at ≈ 4.5–5.7 ns per edge-iteration at ``n = 10⁶`` on a
2-core AVX-512 machine (:mod:`~diqkd.postproc._ldpc_kernels`). A QC code keeps the ensemble
and makes the memory access regular, so that the same sum-product runs 4–7× faster per
edge-iteration (benchmarks/README.md, "Toward 5 Mbit/s per core").

Construction (:func:`qc_graph`)
-------------------------------
A QC code is a *base graph* of ``Mb × Nb`` blocks; each base edge ``(cb, vb)`` is a ``Z × Z``
cyclic permutation with shift ``s``: check ``cb·Z + l`` meets variable ``vb·Z + (l + s) mod Z``
(the lifting of a protograph: Thorpe, IPN Progress Report 42-154 (2003); QC codes from
circulant permutation matrices: Fossorier, IEEE TIT 50, 1788 (2004)). The base graph follows the
rung's ensemble: ``Nb`` variable degrees from the rung's ``λ`` (node fractions as
:func:`~diqkd.postproc._ldpc_codes.variable_degrees`), check degrees concentrated (or Table I's
spread ``ρ``, as the rung says), sockets paired at random (configuration model) and every
repeated pair repaired by swapping its variable end with a random socket, one swap at a time
(so every column keeps its degree exactly: dropping repeated pairs instead left degree-1
columns and an error floor, measured 2026-12-07).
Shifts are drawn uniformly, then redrawn (a bounded number of passes) wherever they close a
4-cycle of the lifted graph: base edges ``(c₁,v₁), (c₁,v₂), (c₂,v₂), (c₂,v₁)`` close one iff
``s₁₁ − s₁₂ + s₂₂ − s₂₁ ≡ 0 (mod Z)`` (Fossorier 2004, Theorem 2); then the shifts of degree-2
columns on a lifted cycle of fewer than :data:`~diqkd.postproc._ldpc_codes.QC_GIRTH_TWO` degree-2
variables are redrawn (:func:`~diqkd.postproc._ldpc_lift.two_cycles`).

Why format 2 (measured 2026-12-07 at ``n = 10⁶``, seeds 201–212). Format 1 paired all sockets
at random and swapped the repeated pairs as a vector: where the two index sets of a swap
overlapped it copied some sockets and dropped others, so some columns changed degree, and 26
of the 72 codes of the rungs for QBER 1, 2, 3, 5, 8 and 10 % had a column of degree 1 (``Z``
variables that paths of degree-2 variables join into light codewords). Its random base graph
also put the degree-2 columns on short base cycles: lifted cycles of 5–8 degree-2 variables in
every code at 2 % and in four of twelve at 5 % (6, 6, 9, 11). Both show in the FER runs: the
codes with them needed most of the rescues of Alice's decoding check (5 %: 108 and 67 refused
words in 250 frames for seeds 201 and 206, 0–17 for the others) and failed the frames that
failed at 2 % (seeds 202 and 205: three and one columns of degree 1).
Format 2 keeps every degree exactly and repairs the shifts. Its shortest cycle of degree-2
variables (seeds 201, 202, 205/206) is 16–23 at the 8–10 % rungs, 12–16 at 5 %, and 8–14 at
the dense rungs (``n₂ ≈ 1.6–1.8·Mb``, QBER ≤ 3 %), because the commutator
``C₁C₂C₁⁻¹C₂⁻¹`` of two short base cycles that share a row lifts to a cycle of ``2(|C₁| + |C₂|)``
variables whatever the shifts (the voltages of an abelian group cancel), and no redraw of
shifts can open it. Placing the degree-2 columns on the base rows first, by progressive edge
growth (lowest load, then the farthest row), removed those (girth 15–18 there) but cost
efficiency: at QBER 2 % (seeds 201, 202, the same 75–100 frames) f = 1.054/1.052 against
1.048/1.044 for format 2 as it is, 1.047/1.045 without the repair, and 1.048/1.046 with a
placement that draws sockets at random and only keeps base cycles of 4 or more; the repair
kept the refused words at 1 in 200 frames (4 in 200 without it).
Everything is drawn from a public seed, so both parties rebuild the code bit for bit.

Decoder (:func:`qc_layered_numba`, :func:`qc_layered_numpy`, :class:`QcDecoder`)
----------------------------------------------------------------------------------
Layered sum-product (Hocevar, IEEE SiPS 2004) with one *base row* per layer: its ``Z`` checks
share no variable (each base edge is a permutation), so they are updated side by side, as the
lanes of vector instructions, and every base edge reads its variable block as two contiguous
runs (``[s, Z)`` then ``[0, s)``). Posteriors are likelihood *ratios* ``P = e^L`` (``L`` the
LLR, positive for 0) and check-to-variable messages are kept as ``m = tanh(L_cv/2)``, which
needs no ``φ`` table, no transcendental function and two divisions per edge:

* the extrinsic ratio is ``q = P/ρ_cv`` with ``ρ_cv = (1 + m)/(1 − m)``, so its
  ``t = tanh(L_q/2) = (q − 1)/(q + 1) = (P(1 − m) − (1 + m))/(P(1 − m) + (1 + m))``;
* ``x = tanh(L_cv/2) = (−1)^{s_c} ∏_{v'≠v} t_{v'}`` (the tanh rule, Ryan, Lin, *Channel
  Codes*, CUP 2009, Eq. (5.18)), the products of the others by a forward and a backward pass
  (no division by a possibly zero factor), clipped to ``±(1 − 2⁻²⁰)`` (``|L_cv| ≤ 14.6``, the
  message cap);
* ``P ← q·(1 + x)/(1 − x) = P(1 − m)(1 + x)/((1 + m)(1 − x))``, clipped to
  ``[10⁻³⁰, 10³⁰]`` (``|L| ≤ 69``); ``m ← x``.

The ratio must stay the product of the prior and the messages: once ``P`` is clipped, a later
change of one message moves it by that message's whole ratio from the clipped value, and a
high-degree variable whose ``|L|`` was far above 69 can flip on a few changed messages. That
happened: at ``n = 10⁵``, QBER 2 % (seed 4, frame 17), near convergence with 97 % of the
messages at the cap, one sweep took the frame from 13 wrong bits to 2678 and the next to 41 409,
a fixed point no blind step left (f = 2.96, not converged). Two rules keep the invariant:

* **message caps by degree** (:func:`message_caps`): a message into a variable of degree
  ``d`` has ``|L_cv| ≤ min(14.56, (68 − B)/d)``, ``B`` the largest prior magnitude of an unknown
  symbol (``log((1 − Q)/Q)`` ≤ 6.9 at the QBER floor 10⁻³), so a free symbol never reaches the
  clip (degree 2: 14.56; 10: 6.1; 40: 1.5 nats per check, which still sum to 61);
* **known symbols** (shortened, revealed: ``|L| ≥ 69``, :func:`ratios`) sit exactly at the clip,
  and the kernel leaves a ratio that is at the clip where it is.

With them the same frame decodes at once in 27 iterations.

A factor below ``10⁻³⁰`` in the running products is flushed to 0 (no subnormals). Float32 and
no fast-math, so the numba kernel and the numpy reference agree bit for bit (tested).

Early termination and the stall rule are those of the package's other decoder: each check's
parity is recomputed from the new hard decisions (``P < 1``) just after its update; a sweep that
ends with all of them satisfied is confirmed by the exact syndrome; an attempt stops when the
count of unsatisfied checks has not reached a new minimum for ``patience`` iterations.
:class:`QcDecoder` offers the protocol the other decoder's view (posteriors as LLRs, ``post``,
:class:`~diqkd.postproc._ldpc_kernels.LayeredDecoder`) and keeps its state in whichever form was
used last: ratios after a run, LLRs once ``post`` is read or written; each converts to the other
only when asked (:func:`ratios`: ``P = e^L``, a known symbol, ``|L| ≥ 69``, exactly at the clip;
:func:`llrs`: ``log P``, a known symbol keeping its LLR), so a frame that decodes at once pays
for one conversion. It keeps the priors themselves (for :meth:`QcDecoder.restart` and the cost
of :meth:`~QcDecoder.pin`'s words), since a known symbol's ratio does not hold its messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit
from numpy.typing import NDArray

from diqkd.errors import ReconciliationError
from diqkd.postproc._ldpc_kernels import KNOWN_LLR, Backend, LayeredDecoder, _NoAliasCompiler
from diqkd.postproc._ldpc_lift import two_cycles

__all__ = [
    "QC_MAX_LIFT",
    "QC_MIN_KEY_BITS",
    "QcDecoder",
    "QcStructure",
    "lift_size",
    "llrs",
    "qc_graph",
    "qc_layered_numba",
    "qc_layered_numpy",
    "qc_structure",
    "ratios",
]

#: Largest lift ``Z`` (a power of two; 512 at ``n_key ≥ 2¹⁹``).
QC_MAX_LIFT = 512
#: Smallest key for the QC family: ``Z ≥ 64`` and ``Nb ≥ 1024`` base columns.
QC_MIN_KEY_BITS = 65_536
#: Passes of shift redrawing against lifted 4-cycles.
_SHIFT_PASSES = 8
#: Message cap in the tanh domain, the posterior clip, the flush threshold.
_TMAX = np.float32(1.0 - 2.0**-20)
#: ``|L|`` a free symbol's posterior stays below (the ratio clip is at ``ln 10³⁰ = 69.08``).
_LLR_FREE = 68.0
_PMIN = np.float32(1e-30)
_PMAX = np.float32(1e30)
_TINY = np.float32(1e-30)
_LLR_CLIP = np.float32(69.0)
_BELOW_ONE = np.float32(1.0 - 2.0**-24)


def lift_size(n_key: int) -> int:
    """``Z = 2^⌊log₂(n_key/1024)⌋``, at most :data:`QC_MAX_LIFT` (``Nb`` ≥ 1024 base columns)."""
    if n_key < QC_MIN_KEY_BITS:
        raise ReconciliationError(
            f"QC codes need at least {QC_MIN_KEY_BITS} key bits per frame, got {n_key}"
        )
    return int(min(QC_MAX_LIFT, 2 ** int(np.floor(np.log2(n_key / 1024)))))


@dataclass(frozen=True, eq=False)
class QcStructure:
    """The base graph of a lifted code: base row ``cb``'s edges are ``row_ptr[cb]`` to
    ``row_ptr[cb + 1]``, each with its variable block ``evb`` and shift ``esh``."""

    z: int
    row_ptr: NDArray[np.int64]
    evb: NDArray[np.int64]
    esh: NDArray[np.int64]

    @property
    def mb(self) -> int:
        """Base rows ``Mb``."""
        return int(self.row_ptr.size - 1)


def _base_pairs(
    var_degrees: NDArray[np.int64],
    check_degrees: NDArray[np.int64],
    rng: np.random.Generator,
) -> NDArray[np.int64]:
    """Configuration-model pairing of the base sockets, repeated pairs repaired by swaps:
    ``(row, column)`` per edge."""
    nb = var_degrees.size
    vs = np.repeat(np.arange(nb, dtype=np.int64), var_degrees)
    cs = np.repeat(np.arange(check_degrees.size, dtype=np.int64), check_degrees)
    rng.shuffle(vs)
    for _ in range(1000):
        key = cs * nb + vs
        _, first = np.unique(key, return_index=True)
        dup = np.ones(key.size, dtype=bool)
        dup[first] = False
        bad = np.flatnonzero(dup)
        if bad.size == 0:
            return np.stack([cs, vs], axis=1)
        for i, j in zip(bad, rng.integers(0, key.size, bad.size), strict=True):
            # one swap at a time: a vectorised swap whose two index sets overlap copies some
            # sockets and drops others (format 1 did, and left columns of degree 1)
            vs[i], vs[j] = vs[j], vs[i]
    raise ReconciliationError(  # pragma: no cover - defensive: degrees far below the rows
        "could not remove the repeated pairs of the QC base graph: try another seed"
    )


@njit(cache=True)
def _redraw_four_cycles(  # pragma: no cover - numba
    row_ptr: NDArray[np.int64],
    evb: NDArray[np.int64],
    esh: NDArray[np.int64],
    nb: int,
    z: int,
    fresh: NDArray[np.int64],
) -> int:
    """One pass: for every base edge that closes a lifted 4-cycle, take the next value of
    ``fresh`` as its shift. Returns how many edges closed one."""
    mb = row_ptr.size - 1
    col_ptr = np.zeros(nb + 1, dtype=np.int64)
    for e in range(evb.size):
        col_ptr[evb[e] + 1] += 1
    for v in range(nb):
        col_ptr[v + 1] += col_ptr[v]
    col_edge = np.empty(evb.size, dtype=np.int64)
    col_row = np.empty(evb.size, dtype=np.int64)
    fill = col_ptr[:-1].copy()
    for c in range(mb):
        for e in range(row_ptr[c], row_ptr[c + 1]):
            v = evb[e]
            col_edge[fill[v]] = e
            col_row[fill[v]] = c
            fill[v] += 1
    where = np.full(nb, -1, dtype=np.int64)  # edge of the current row at each column
    bad = 0
    k = 0
    for c1 in range(mb):
        for e in range(row_ptr[c1], row_ptr[c1 + 1]):
            where[evb[e]] = e
        for e11 in range(row_ptr[c1], row_ptr[c1 + 1]):
            v1 = evb[e11]
            closed = False
            for i in range(col_ptr[v1], col_ptr[v1 + 1]):  # rows c2 through column v1
                c2 = col_row[i]
                if c2 == c1:
                    continue
                e21 = col_edge[i]
                for e22 in range(row_ptr[c2], row_ptr[c2 + 1]):
                    v2 = evb[e22]
                    e12 = where[v2]
                    if v2 == v1 or e12 < 0:
                        continue
                    if (esh[e11] - esh[e12] + esh[e22] - esh[e21]) % z == 0:
                        closed = True
                        break
                if closed:
                    break
            if closed:
                bad += 1
                esh[e11] = fresh[k % fresh.size]
                k += 1
        for e in range(row_ptr[c1], row_ptr[c1 + 1]):
            where[evb[e]] = -1
    return bad


def qc_graph(
    var_degrees: NDArray[np.int64],
    check_degrees: NDArray[np.int64],
    z: int,
    rng: np.random.Generator,
    two_girth: int = 0,
) -> tuple[NDArray[np.int64], NDArray[np.int32], QcStructure]:
    """A lifted code: ``(check_ptr, check_var, structure)`` of ``H`` (``Mb·Z × Nb·Z``, CSR with
    ascending rows) from base variable and check degrees (module docstring). With
    ``two_girth``, the shifts of degree-2 columns on shorter cycles of degree-2 variables are
    then redrawn (:func:`~diqkd.postproc._ldpc_lift.two_cycles`; code format 2)."""
    if var_degrees.sum() != check_degrees.sum():
        raise ReconciliationError("base variable and check degrees have different sums")
    if int(check_degrees.max()) > var_degrees.size:
        raise ReconciliationError("a base check has more edges than there are base columns")
    mb = check_degrees.size
    row_ptr = np.zeros(mb + 1, dtype=np.int64)
    np.cumsum(check_degrees, out=row_ptr[1:])
    pairs = _base_pairs(var_degrees, check_degrees, rng)
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    evb = np.ascontiguousarray(pairs[:, 1])
    esh = rng.integers(0, z, evb.size).astype(np.int64)
    for _ in range(_SHIFT_PASSES):
        fresh = rng.integers(0, z, 4096).astype(np.int64)
        if _redraw_four_cycles(row_ptr, evb, esh, var_degrees.size, z, fresh) == 0:
            break
    if two_girth:
        draws = rng.integers(0, 2**62, max(1, int(np.count_nonzero(var_degrees == 2))))
        two_cycles(row_ptr, evb, esh, var_degrees, z, two_girth, draws)
    structure = QcStructure(z, *(_readonly(a) for a in (row_ptr, evb, esh)))
    check_ptr, check_var = expand(structure)
    return check_ptr, check_var, structure


def _readonly(a: NDArray[Any]) -> NDArray[Any]:
    out = np.ascontiguousarray(a, dtype=np.int64)
    out.flags.writeable = False
    return out


def expand(s: QcStructure) -> tuple[NDArray[np.int64], NDArray[np.int32]]:
    """``H`` in CSR form (rows ascending) from a base graph and its shifts."""
    z = s.z
    deg = np.diff(s.row_ptr)
    check_ptr = np.zeros(s.mb * z + 1, dtype=np.int64)
    np.cumsum(np.repeat(deg, z), out=check_ptr[1:])
    check_var = np.empty(int(check_ptr[-1]), dtype=np.int32)
    lanes = np.arange(z, dtype=np.int64)[:, None]
    for cb in range(s.mb):
        a, b = int(s.row_ptr[cb]), int(s.row_ptr[cb + 1])
        block = s.evb[a:b] * z + (lanes + s.esh[a:b]) % z  # (Z, d)
        block.sort(axis=1)
        check_var[check_ptr[cb * z] : check_ptr[(cb + 1) * z]] = block.ravel()
    return check_ptr, check_var


def qc_structure(
    check_ptr: NDArray[np.int64], check_var: NDArray[np.int32], z: int, n: int
) -> QcStructure:
    """The base graph of a lifted ``H`` (the inverse of :func:`expand`), checked exactly:
    a code that is not a ``Z``-lift raises (the kernel does not bounds-check)."""
    m = check_ptr.size - 1
    if z < 1 or m % z or n % z:
        raise ReconciliationError(f"a code of {m} checks and {n} symbols is not a {z}-lift")
    rows = check_ptr[0:m:z]
    deg = check_ptr[1 : m + 1 : z] - rows
    row_ptr = np.zeros(m // z + 1, dtype=np.int64)
    np.cumsum(deg, out=row_ptr[1:])
    first = np.concatenate([check_var[a : a + d] for a, d in zip(rows, deg, strict=True)])
    evb = first.astype(np.int64) // z
    esh = first.astype(np.int64) % z
    s = QcStructure(z, *(_readonly(a) for a in (row_ptr, evb, esh)))
    if evb.size and evb.max() >= n // z:
        raise ReconciliationError("the base graph names a column beyond the code")
    ptr2, var2 = expand(s)
    if not (np.array_equal(ptr2, check_ptr) and np.array_equal(var2, check_var)):
        raise ReconciliationError(f"the code is not a {z}-lift of its first rows")
    return s


# --------------------------------------------------------------------------------------------
# Kernel


@njit(cache=True)
def _qc_syndrome_ok(  # pragma: no cover - numba
    z: int,
    row_ptr: NDArray[np.int64],
    evb: NDArray[np.int64],
    esh: NDArray[np.int64],
    syn: NDArray[np.int32],
    big_p: NDArray[np.float32],
    par: NDArray[np.int32],
) -> bool:
    one = np.float32(1.0)
    for cb in range(row_ptr.size - 1):
        sy = syn[cb]
        for k in range(z):
            par[k] = sy[k]
        for e in range(row_ptr[cb], row_ptr[cb + 1]):
            pv = big_p[evb[e]]
            s = esh[e]
            hi = pv[s:]
            lo = pv[:s]
            pa = par[: z - s]
            pb = par[z - s :]
            for k in range(z - s):
                pa[k] ^= np.int32(hi[k] < one)
            for k in range(s):
                pb[k] ^= np.int32(lo[k] < one)
        for k in range(z):
            if par[k]:
                return False
    return True


@njit(cache=True, error_model="numpy", pipeline_class=_NoAliasCompiler)
def _forward_run(  # pragma: no cover - numba
    p: NDArray[np.float32],
    m: NDArray[np.float32],
    t: NDArray[np.float32],
    fw: NDArray[np.float32],
    g: NDArray[np.float32],
) -> None:
    """Lanes of one run of a base edge: ``t = tanh`` of the extrinsic LLR, then the forward
    product ``fw = g``, ``g ← g·t`` (flushed below 10⁻³⁰)."""
    one = np.float32(1.0)
    zero = np.float32(0.0)
    tiny = np.float32(1e-30)
    for k in range(p.size):
        mk = m[k]
        u = p[k] * (one - mk)
        v = one + mk
        tk = (u - v) / (u + v)
        t[k] = tk
        fw[k] = g[k]
        x = g[k] * tk
        g[k] = x if abs(x) > tiny else zero


@njit(cache=True, error_model="numpy", pipeline_class=_NoAliasCompiler)
def _backward_run(  # pragma: no cover - numba
    p: NDArray[np.float32],
    m: NDArray[np.float32],
    t: NDArray[np.float32],
    fw: NDArray[np.float32],
    g: NDArray[np.float32],
    par: NDArray[np.int32],
    cap: np.float32,
) -> None:
    """Lanes of one run of a base edge: the new message ``x = fw·g`` (clipped to ``±cap``), the
    backward product ``g ← g·t``, the new posterior ratio in place (a known symbol's, at the
    clip, stays) and the check's parity."""
    one = np.float32(1.0)
    zero = np.float32(0.0)
    tiny = np.float32(1e-30)
    pmin = np.float32(1e-30)
    pmax = np.float32(1e30)
    for k in range(p.size):
        x = fw[k] * g[k]
        y = g[k] * t[k]
        g[k] = y if abs(y) > tiny else zero
        x = min(max(x, -cap), cap)
        mk = m[k]
        pk = p[k]
        pn = pk * (one - mk) * (one + x) / ((one + mk) * (one - x))
        pn = min(max(pn, pmin), pmax)
        pn = pk if pk >= pmax else pn  # two selects: an ``or`` here stops the vectoriser
        pn = pk if pk <= pmin else pn
        p[k] = pn
        m[k] = x
        par[k] ^= np.int32(pn < one)


@njit(cache=True, error_model="numpy", pipeline_class=_NoAliasCompiler)
def _qc_kernel(  # pragma: no cover - numba
    z: int,
    row_ptr: NDArray[np.int64],
    evb: NDArray[np.int64],
    esh: NDArray[np.int64],
    syn: NDArray[np.int32],
    ssign: NDArray[np.float32],
    big_p: NDArray[np.float32],
    msg: NDArray[np.float32],
    ecap: NDArray[np.float32],
    max_iterations: int,
    patience: int,
    tq: NDArray[np.float32],
    fw: NDArray[np.float32],
    g: NDArray[np.float32],
    par: NDArray[np.int32],
) -> tuple[int, bool]:
    mb = row_ptr.size - 1
    if _qc_syndrome_ok(z, row_ptr, evb, esh, syn, big_p, par):
        return 0, True
    one = np.float32(1.0)
    best = mb * z + 1
    since = 0
    for it in range(max_iterations):
        unsat = 0
        for cb in range(mb):
            a = row_ptr[cb]
            d = row_ptr[cb + 1] - a
            sg = ssign[cb]
            for k in range(z):
                g[k] = sg[k]
            # lanes [0, Z − s) of a base edge read its block's [s, Z), lanes [Z − s, Z) its
            # [0, s): two contiguous runs (the block is not touched twice in one base row)
            for j in range(d):
                pv = big_p[evb[a + j]]
                s = esh[a + j]
                w = z - s
                mj, tj, fj = msg[a + j], tq[j], fw[j]
                _forward_run(pv[s:], mj[:w], tj[:w], fj[:w], g[:w])
                _forward_run(pv[:s], mj[w:], tj[w:], fj[w:], g[w:])
            sy = syn[cb]
            for k in range(z):
                g[k] = one
                par[k] = sy[k]
            for j in range(d - 1, -1, -1):
                pv = big_p[evb[a + j]]
                s = esh[a + j]
                w = z - s
                mj, tj, fj = msg[a + j], tq[j], fw[j]
                cap = ecap[a + j]
                _backward_run(pv[s:], mj[:w], tj[:w], fj[:w], g[:w], par[:w], cap)
                _backward_run(pv[:s], mj[w:], tj[w:], fj[w:], g[w:], par[w:], cap)
            for k in range(z):
                unsat += par[k]
        if unsat == 0 and _qc_syndrome_ok(z, row_ptr, evb, esh, syn, big_p, par):
            return it + 1, True
        if unsat < best:
            best = unsat
            since = 0
        else:
            since += 1
            if since >= patience:
                return it + 1, False
    return max_iterations, False


class _QcWork:
    """Lane buffers of the QC kernel (one decoding at a time)."""

    def __init__(self, s: QcStructure) -> None:
        dmax = int(np.diff(s.row_ptr).max(initial=1))
        self.tq = np.empty((dmax, s.z), dtype=np.float32)
        self.fw = np.empty((dmax, s.z), dtype=np.float32)
        self.g = np.empty(s.z, dtype=np.float32)
        self.par = np.empty(s.z, dtype=np.int32)


def _check_state(
    s: QcStructure,
    syn: NDArray[np.int32],
    big_p: NDArray[np.float32],
    msg: NDArray[np.float32],
    caps: NDArray[np.float32],
) -> None:
    nb = int(s.evb.max(initial=-1)) + 1
    if (
        syn.shape != (s.mb, s.z)
        or big_p.ndim != 2
        or big_p.shape[1] != s.z
        or big_p.shape[0] < nb
        or msg.shape != (s.evb.size, s.z)
        or caps.shape != (s.evb.size,)
        or caps.dtype != np.float32
    ):
        raise ReconciliationError("QC decoder arrays do not match the code's base graph")


def message_caps(s: QcStructure, prior_bound: float) -> NDArray[np.float32]:
    """Per base edge, the largest ``tanh(|L_cv|/2)`` its messages may take:
    ``|L_cv| ≤ min(14.56, (68 − prior_bound)/d_v)`` with ``d_v`` the degree of the edge's
    variable block, so that a free symbol (``|prior| ≤ prior_bound``) never reaches the ratio
    clip, where ``P`` would stop being its prior times its messages (module docstring)."""
    if not 0.0 <= prior_bound < _LLR_FREE:
        raise ReconciliationError(
            f"prior LLRs of unknown symbols must be below {_LLR_FREE} in magnitude, "
            f"got {prior_bound}"
        )
    degree = np.bincount(s.evb)[s.evb].astype(np.float64)
    llr = np.minimum(_llr(np.array([_TMAX]))[0], (_LLR_FREE - prior_bound) / degree)
    caps: NDArray[np.float32] = np.tanh(llr / 2.0).astype(np.float32)
    # float32 rounding must not raise the cap above its LLR
    too_big = _llr(caps) > llr
    caps[too_big] = np.nextafter(caps[too_big], np.float32(0.0))
    return caps


def qc_layered_numba(
    s: QcStructure,
    syn: NDArray[np.int32],
    big_p: NDArray[np.float32],
    msg: NDArray[np.float32],
    max_iterations: int,
    patience: int,
    caps: NDArray[np.float32],
    work: _QcWork | None = None,
) -> tuple[int, bool]:
    """Ratio-domain layered sum-product, in place on ``big_p[Nb, Z]`` (posterior ratios) and
    ``msg[Eb, Z]`` (check-to-variable messages as ``tanh(L/2)``); ``syn[Mb, Z]`` 0/1;
    ``caps`` from :func:`message_caps`. ``(iterations, ok)``."""
    _check_state(s, syn, big_p, msg, caps)
    w = _QcWork(s) if work is None else work
    ssign = (1 - 2 * syn).astype(np.float32)
    it, ok = _qc_kernel(
        s.z, s.row_ptr, s.evb, s.esh, syn, ssign, big_p, msg, caps, int(max_iterations),
        int(patience), w.tq, w.fw, w.g, w.par,
    )  # fmt: skip
    return int(it), bool(ok)


def _qc_ok_numpy(s: QcStructure, syn: NDArray[np.int32], big_p: NDArray[np.float32]) -> bool:
    for cb in range(s.mb):
        par = syn[cb].copy()
        for e in range(int(s.row_ptr[cb]), int(s.row_ptr[cb + 1])):
            par ^= np.roll(big_p[s.evb[e]], -int(s.esh[e])) < 1
        if par.any():
            return False
    return True


def qc_layered_numpy(
    s: QcStructure,
    syn: NDArray[np.int32],
    big_p: NDArray[np.float32],
    msg: NDArray[np.float32],
    max_iterations: int,
    patience: int,
    caps: NDArray[np.float32],
) -> tuple[int, bool]:
    """Reference for :func:`qc_layered_numba`: the same operations in the same order, one base
    row at a time, vectorised over its ``Z`` lanes with numpy (bit for bit the same)."""
    _check_state(s, syn, big_p, msg, caps)
    if _qc_ok_numpy(s, syn, big_p):
        return 0, True
    one, zero = np.float32(1.0), np.float32(0.0)
    best, since = s.mb * s.z + 1, 0
    for it in range(max_iterations):
        unsat = 0
        for cb in range(s.mb):
            edges = range(int(s.row_ptr[cb]), int(s.row_ptr[cb + 1]))
            ps = [np.roll(big_p[s.evb[e]], -int(s.esh[e])) for e in edges]
            ms = [msg[e] for e in edges]
            ts = []
            for p, m in zip(ps, ms, strict=True):
                u, v = p * (one - m), one + m
                ts.append((u - v) / (u + v))
            g = (1 - 2 * syn[cb]).astype(np.float32)
            fws = []
            for t in ts:
                fws.append(g)
                g = g * t
                g = np.where(np.abs(g) > _TINY, g, zero)
            g = np.ones(s.z, dtype=np.float32)
            par = syn[cb].copy()
            for j in range(len(ps) - 1, -1, -1):
                x = fws[j] * g
                g = g * ts[j]
                g = np.where(np.abs(g) > _TINY, g, zero)
                cap = caps[edges[j]]
                x = np.minimum(np.maximum(x, -cap), cap)
                m, p = ms[j], ps[j]
                pn = p * (one - m) * (one + x) / ((one + m) * (one - x))
                pn = np.minimum(np.maximum(pn, _PMIN), _PMAX)
                pn = np.where((p >= _PMAX) | (p <= _PMIN), p, pn)
                ps[j] = pn
                msg[edges[j]] = x
                par ^= pn < one
            unsat += int(par.sum())
            for j, e in enumerate(edges):
                big_p[s.evb[e]] = np.roll(ps[j], int(s.esh[e]))
        if unsat == 0 and _qc_ok_numpy(s, syn, big_p):
            return it + 1, True
        if unsat < best:
            best, since = unsat, 0
        else:
            since += 1
            if since >= patience:
                return it + 1, False
    return max_iterations, False


def _llr(t: NDArray[np.float32]) -> NDArray[np.float64]:
    """``L = 2·atanh(t) = log((1 + t)/(1 − t))`` of messages kept as ``t = tanh(L/2)``."""
    x = t.astype(np.float64)
    out: NDArray[np.float64] = np.log1p(x) - np.log1p(-x)
    return out


def ratios(post: NDArray[np.floating]) -> NDArray[np.float32]:
    """Posterior ratios ``e^L`` for the kernel: ``|L| ≥ 69`` (a known symbol) at the clip
    ``10^{±30}`` exactly, where the kernel keeps it; the LLRs' hard decisions kept (``P < 1``
    exactly where ``L < 0``: ``exp`` of a tiny negative LLR rounds to 1)."""
    post = np.asarray(post, dtype=np.float32)
    p: NDArray[np.float32] = np.exp(np.clip(post, -_LLR_CLIP, _LLR_CLIP))
    p[(post < 0) & (p >= 1)] = _BELOW_ONE  # boolean masks, not np.where: 10× faster here
    p[post >= _LLR_CLIP] = _PMAX
    p[post <= -_LLR_CLIP] = _PMIN
    return p


def llrs(big_p: NDArray[np.float32], old: NDArray[np.float32]) -> NDArray[np.float32]:
    """The LLRs of posterior ratios after a run: ``log P``, except where the symbol was known
    (``|old| ≥ 69``: its ratio stayed at the clip), which keeps its old LLR."""
    out: NDArray[np.float32] = np.log(big_p.ravel())
    known = np.abs(old) >= _LLR_CLIP
    out[known] = old[known]
    return out


class QcDecoder(LayeredDecoder):
    """A decoding in progress on a QC code: :class:`~diqkd.postproc._ldpc_kernels.LayeredDecoder`'s
    interface (``post`` as LLRs, :meth:`run`, :meth:`set_known`, :meth:`pin`, …) over the
    ratio-domain kernel (module docstring).

    Parameters
    ----------
    structure
        The code's base graph (:func:`qc_structure`); ``H`` is its :func:`expand`.
    check_ptr, check_var
        ``H`` in CSR form (for the syndrome checks of the protocol's escape).
    syndrome
        The full syndrome, shape (``Mb·Z``,), 0/1.
    prior
        Prior LLRs, shape (``Nb·Z``,).
    backend
        ``"numba"`` (default) or ``"numpy"`` (reference, slow).
    """

    def __init__(
        self,
        structure: QcStructure,
        check_ptr: NDArray[np.int64],
        check_var: NDArray[np.int32],
        syndrome: NDArray[np.uint8],
        prior: NDArray[np.floating],
        backend: Backend = "numba",
    ) -> None:
        if backend not in ("numba", "numpy"):
            raise ReconciliationError(f"unknown backend {backend!r}: use 'numba' or 'numpy'")
        s = structure
        if syndrome.shape != (s.mb * s.z,) or prior.ndim != 1 or prior.size % s.z:
            raise ReconciliationError("syndrome or prior does not match the code's dimensions")
        if s.evb.size and prior.size // s.z <= int(s.evb.max()):
            raise ReconciliationError("prior is shorter than the code")
        self.structure = s
        self._ptr = np.ascontiguousarray(check_ptr, dtype=np.int64)
        self._var = np.ascontiguousarray(check_var, dtype=np.int32)
        self._syn = np.ascontiguousarray(syndrome, dtype=np.uint8)
        self._syn_rows = self._syn.reshape(s.mb, s.z).astype(np.int32)
        self._r = np.zeros((s.evb.size, s.z), dtype=np.float32)  # tanh(L_cv/2)
        # the priors, kept exactly: a posterior at the clip no longer holds its messages' sum
        self._prior = np.array(prior, dtype=np.float32)
        free = np.abs(self._prior) < _LLR_CLIP
        self._caps = message_caps(s, float(np.abs(self._prior[free]).max(initial=0.0)))
        self._backend = backend
        self._qc_work: _QcWork | None = None
        self.iterations = 0
        # the state lives in one of two forms: the kernel's ratios (after a run) or the
        # protocol's LLRs (after any access to ``post``, which may be written in place); each
        # is converted only when the other side asks for it (≈ 7 ms each way at 10⁶)
        self._llrs: NDArray[np.float32] | None = self._prior.copy()
        self._p: NDArray[np.float32] | None = None
        self._old = self._prior  # the LLRs the ratios were made from

    @property
    def post(self) -> NDArray[np.float32]:
        """Posterior LLRs, shape (``Nb·Z``,): writable, as the other decoder's attribute."""
        if self._llrs is None:
            assert self._p is not None
            self._llrs = llrs(self._p, self._old)
        self._p = None  # the caller may write into the LLRs: the ratios follow them
        return self._llrs

    @post.setter
    def post(self, value: NDArray[np.float32]) -> None:
        self._llrs = np.array(value, dtype=np.float32)
        self._p = None

    @property
    def r(self) -> NDArray[np.float32]:
        """Check-to-variable messages as LLRs, shape (``Eb``, ``Z``) (a copy)."""
        out: NDArray[np.float32] = _llr(self._r).astype(np.float32)
        return out

    def set_known(self, positions: NDArray[np.int64], values: NDArray[np.uint8]) -> None:
        """Make symbols known (revealed): their posterior moves by the prior change."""
        new = (1.0 - 2.0 * values.astype(np.float32)) * np.float32(KNOWN_LLR)
        self.post[positions] += (new - self._prior[positions]).astype(np.float32)
        self._prior[positions] = new

    def run(self, max_iterations: int, patience: int) -> bool:
        """Iterate (at most ``max_iterations``); whether ``H·x̂ = s`` holds exactly."""
        if max_iterations < 1 or patience < 1:
            raise ReconciliationError("max_iterations and patience must be ≥ 1")
        s = self.structure
        if self._p is None:
            assert self._llrs is not None
            self._old = self._llrs
            self._p = ratios(self._llrs).reshape(-1, s.z)
            self._llrs = None
        if self._backend == "numba":
            if self._qc_work is None:
                self._qc_work = _QcWork(s)
            it, ok = qc_layered_numba(
                s, self._syn_rows, self._p, self._r, max_iterations, patience, self._caps,
                self._qc_work,
            )  # fmt: skip
        else:
            it, ok = qc_layered_numpy(
                s, self._syn_rows, self._p, self._r, max_iterations, patience, self._caps
            )
        self.iterations += it
        return ok

    def hard(self) -> NDArray[np.uint8]:
        """Hard decisions ``x̂ = [post < 0]`` (from the ratios when they are current)."""
        if self._p is not None:
            return (self._p.ravel() < 1).astype(np.uint8)
        return super().hard()

    def restart(self) -> None:
        """Forget the messages: posteriors back to the priors (revealed values kept known)."""
        self.post = self._prior
        self._r[:] = 0.0

    def _priors(self) -> NDArray[np.float32]:
        return self._prior.copy()
