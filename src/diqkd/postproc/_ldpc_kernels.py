"""Layered belief-propagation syndrome decoder: numba kernel beside the numpy reference.

The decoding problem (Slepian–Wolf coding with side information; Liveris, Xiong, Georghiades,
IEEE Commun. Lett. 6, 440 (2002)): Alice announces ``s = H·x``; Bob holds ``y = x ⊕ e`` with
``e`` i.i.d. Bernoulli(Q) and looks for the most likely ``x``. Sum-product belief propagation
(Kschischang, Frey, Loeliger, IEEE TIT 47, 498 (2001)) with

* prior log-likelihood ratios ``Lᵥ = (1 − 2yᵥ)·log((1 − Q)/Q)`` (positive: ``xᵥ = 0`` more
  likely); known symbols (shortened, revealed) get ``±``:data:`KNOWN_LLR`, punctured ones 0;
* check-to-variable messages in the ``φ`` form of the sum-product rule (Gallager 1963;
  Ryan, Lin, *Channel Codes*, CUP 2009, Eq. (5.19)), the syndrome bit flipping the sign:
  ``R_cv = (−1)^{s_c} ∏_{v'≠v} sign(q_{v'c}) · φ(Σ_{v'≠v} φ(|q_{v'c}|))``,
  ``φ(x) = −log tanh(x/2)`` (self-inverse);
* the **layered** schedule (Hocevar, IEEE SiPS 2004, 107; Mansour, Shanbhag, IEEE TVLSI 11,
  976 (2003)): checks are processed in turn and each updates the posteriors at once
  (``q = post − R_old``, ``post = q + R_new``), which converges in about half the iterations of
  flooding.

Arithmetic: float32 throughout. ``φ`` is a table indexed by the float32 bit pattern of its
argument (:data:`PHI_BINS_PER_OCTAVE` bins per octave on ``[2⁻¹⁶, 2⁶)``, the value at each bin's
centre; below: ``φ(2⁻¹⁶) ≈ 11.8``, the message cap; above: 0). The relative bin width
``2⁻⁸`` bounds the table error by ``|φ'(x)|·x·2⁻⁹ = x/sinh(x)·2⁻⁹ ≤ 0.002``.

Early termination: while sweeping, each check's parity is recomputed from the hard decisions
just after its update; when a sweep ends with every check satisfied at its own update time the
full syndrome ``H·x̂ = s`` is checked exactly (so a returned "converged" is exact). A decoding
also stops when the number of unsatisfied checks has not reached a new minimum for
``patience`` iterations (a stalled frame: more information is needed, blind step). The state
(``post``, ``R``) is kept by the caller, so a decoding can resume after more bits are revealed
("warm start"), instead of starting over.

Skipped layers (a form of "forced convergence", Zimmermann, Fettweis, ISTC 2004): a check
whose incoming ``|q|`` are all ``≥`` :data:`SKIP_LLR` (above the message cap, so the hard
decisions equal the signs of ``q``) and that is satisfied keeps its old messages in this
sweep; its update could only reinforce decisions that are already confident. This is a
schedule choice (a layer not updated in one sweep), applied identically by both decoders, and
the final syndrome check stays exact.

Coloured schedule (:func:`prepare_layout`, :func:`layered_numba`). The layered schedule is
serial by nature, but two checks that share no variable commute: updating them one after the
other or side by side gives the same ``post`` and ``R``, to the bit (each reads and writes
only its own edges' messages and its own variables). The checks are therefore coloured
greedily (first fit, checks in index order: the greedy colouring of Welsh, Powell, Comput. J.
10, 85 (1967), without their degree ordering; no two checks of one colour share a variable),
ordered colour by colour and, within a colour, by degree, and cut into *blocks* of at most
:data:`BLOCK_WIDTH` checks of one colour and one degree. A sweep
processes the blocks in turn, the checks of a block side by side: this is exactly serial
layered decoding in the order ``layout.order`` (any order of the checks is a valid layered
schedule; Hocevar 2004 processes whole block rows of non-overlapping checks at once for the
same reason). Each block's edges are stored structure-of-arrays, ``[position in check][lane]``,
so that every inner loop runs over the lanes with unit stride: LLVM vectorises them
(AVX-512 / AVX2: gathers of ``post`` and of the ``φ`` table, vector arithmetic, a scatter of
``post``; the kernel is compiled with ``noalias`` array arguments so that the loop vectoriser
may reorder the gathered loads against the lane buffers' stores). The lane loops index
*slice views* (``r[o : o + w]``, then ``rs[j]``), never ``r[o + j]``: numba wraps a possibly
negative index ``o + j`` around the array end, and LLVM then turns the unit-stride access into
a gather or a scalar loop; with the views the lane loads and stores are contiguous vectors
(2026-12-07: ≈ 2× per edge-iteration at ``n = 10⁶``, same results bit for bit). Per lane the
arithmetic is
the serial kernel's, in the same order (sum of ``φ`` in edge order, no fast-math), so the
result does not depend on the block width. A skipped check inside a block keeps its messages
and posteriors (the lane's writes store the old values back). The colouring and layout are a
property of the code: prepare them once (:func:`prepare_layout`, ≈ 0.2 s at ``n = 10⁶``) and
pass ``layout=`` for every frame. The former one-check-at-a-time kernel in index order is kept
as :func:`layered_numba_serial` (benchmark baseline, ``benchmarks/bench_ldpc_kernel.py``).

Where the time goes (measured with ``benchmarks/bench_ldpc_kernel.py`` on one core of a
shared AVX-512 machine, 2026-11-28, before the slice views above): the coloured kernel
took ≈ 3.5 ns per edge-iteration at ``n = 10⁵`` and ≈ 5 ns at ``n = 10⁶``, the serial one
≈ 5.5–9.5 and ≈ 8–13 (so 1.5–2×). With the slice views (2026-12-07, the other core busy):
4.5 ns against the former 6.6 at ``n = 10⁵``, 4.6–5.7 against 9.4–10.0 at ``n = 10⁶``. Per
edge it moves four gathered or scattered elements (``post`` in and out, two φ look-ups),
which the hardware gathers and scatters serve at about one element per cycle; with ``post``
laid out in order instead of at random the same kernel still takes ≈ 3 ns, so the random
access to ``post`` (4 MB at ``n = 10⁶``, more than the L2 cache) costs the other ≈ 2 ns. The
memory traffic alone (read and write ``post`` and ``r`` per edge, one addition, in
``layout.var`` order: ``benchmarks/bench_ldpc_memory.py``) takes ≈ 4–4.5 ns per edge at
``n = 10⁶``, so the kernel runs at 1.1–1.3× its own traffic; decoding several frames side by
side (frame-major rows) does not lower it while the rows are visited in random order.

:func:`layered_numpy` is the reference: the same operations in the same order (``layout.order``)
with numpy, one check at a time (each check vectorised over its edges, sums accumulated in
edge order with ``cumsum``); it agrees with the numba kernel bit for bit (tested).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numba import njit, types
from numba.core.compiler import CompilerBase, DefaultPassBuilder
from numba.extending import intrinsic
from numpy.typing import NDArray

from diqkd.errors import ReconciliationError

__all__ = [
    "BLOCK_WIDTH",
    "KNOWN_LLR",
    "PHI_BINS_PER_OCTAVE",
    "PHI_TABLE",
    "SKIP_LLR",
    "Backend",
    "DecoderLayout",
    "LayeredDecoder",
    "bsc_llr",
    "layered_numba",
    "layered_numba_serial",
    "layered_numpy",
    "phi",
    "prepare_layout",
]

Backend = Literal["numba", "numpy"]

#: Prior LLR magnitude of a symbol whose value Bob knows (shortened or revealed).
KNOWN_LLR = 100.0
#: A check whose incoming messages all have ``|q| ≥`` this and that is satisfied is skipped.
SKIP_LLR = 12.0
#: Bins per octave of the φ table (a shift of the float32 bit pattern by 23 − 8 bits).
PHI_BINS_PER_OCTAVE = 256
_SHIFT = 15
_LO = (127 - 16) << 8  # bin index of 2⁻¹⁶
_HI = (127 + 6) << 8  # bin index of 2⁶


def _phi_exact(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """``φ(x) = −log tanh(x/2) = log1p(2/expm1(x))`` (Ryan, Lin 2009, Eq. (5.19))."""
    out: NDArray[np.float64] = np.log1p(2.0 / np.expm1(x))
    return out


def _make_table() -> NDArray[np.float32]:
    idx = np.arange(_LO, _HI + 1, dtype=np.int64)
    exponent = (idx >> 8) - 127
    centre = np.ldexp(1.0 + ((idx & 255) + 0.5) / 256.0, exponent.astype(np.int32))
    table = _phi_exact(centre).astype(np.float32)
    table[-1] = 0.0
    table.flags.writeable = False
    return table


#: ``φ`` on bins of the float32 bit pattern (module docstring).
PHI_TABLE: NDArray[np.float32] = _make_table()


def phi(x: NDArray[np.float32]) -> NDArray[np.float32]:
    """Table ``φ`` of float32 ``x ≥ 0`` (what both decoders compute)."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.int32) >> _SHIFT
    out: NDArray[np.float32] = PHI_TABLE[np.clip(bits - _LO, 0, _HI - _LO)]
    return out


def bsc_llr(qber: float) -> float:
    """``log((1 − Q)/Q)``, the LLR magnitude of a BSC(Q) observation."""
    if not 0.0 < qber < 0.5:
        raise ReconciliationError(f"decoding needs a QBER in (0, 0.5), got {qber}")
    return math.log((1.0 - qber) / qber)


@njit(cache=True)
def _syndrome_ok(  # pragma: no cover - numba
    check_ptr: NDArray[np.int64],
    check_var: NDArray[np.int32],
    syndrome: NDArray[np.uint8],
    post: NDArray[np.float32],
) -> bool:
    for c in range(syndrome.size):
        acc = syndrome[c]
        for e in range(check_ptr[c], check_ptr[c + 1]):
            if post[check_var[e]] < 0:
                acc ^= 1
        if acc:
            return False
    return True


@njit(cache=True)
def _layered_kernel_serial(  # pragma: no cover - numba
    check_ptr: NDArray[np.int64],
    check_var: NDArray[np.int32],
    syndrome: NDArray[np.uint8],
    post: NDArray[np.float32],
    r: NDArray[np.float32],
    max_iterations: int,
    patience: int,
    table: NDArray[np.float32],
    skip_llr: float,
) -> tuple[int, bool]:
    m = syndrome.size
    if _syndrome_ok(check_ptr, check_var, syndrome, post):
        return 0, True
    max_deg = 0
    for c in range(m):
        max_deg = max(max_deg, check_ptr[c + 1] - check_ptr[c])
    qbuf = np.empty(max_deg, dtype=np.float32)
    pbuf = np.empty(max_deg, dtype=np.float32)
    abuf = np.empty(max_deg, dtype=np.float32)
    ibuf = abuf.view(np.int32)
    top = np.int32(table.size - 1)
    skip = np.float32(skip_llr)
    best = m + 1
    since = 0
    for it in range(max_iterations):
        unsat = 0
        for c in range(m):
            start = check_ptr[c]
            deg = check_ptr[c + 1] - start
            neg = np.int32(syndrome[c])
            low = np.float32(np.inf)
            for k in range(deg):
                q = post[check_var[start + k]] - r[start + k]
                qbuf[k] = q
                a = abs(q)
                abuf[k] = a
                low = min(low, a)
                neg ^= np.int32(q < 0)
            if low >= skip and neg == 0:
                continue  # confident and satisfied: skip this layer (module docstring)
            total = np.float32(0.0)
            for k in range(deg):
                p = table[min(max((ibuf[k] >> 15) - 28416, 0), top)]
                pbuf[k] = p
                total += p
            for k in range(deg):
                abuf[k] = total - pbuf[k]
            par = np.int32(syndrome[c])
            for k in range(deg):
                mag = table[min(max((ibuf[k] >> 15) - 28416, 0), top)]
                q = qbuf[k]
                rv = -mag if (neg ^ np.int32(q < 0)) else mag
                r[start + k] = rv
                pv = q + rv
                post[check_var[start + k]] = pv
                par ^= np.int32(pv < 0)
            unsat += int(par)
        if unsat == 0 and _syndrome_ok(check_ptr, check_var, syndrome, post):
            return it + 1, True
        if unsat < best:
            best = unsat
            since = 0
        else:
            since += 1
            if since >= patience:
                return it + 1, False
    return max_iterations, False


def layered_numba_serial(
    check_ptr: NDArray[np.int64],
    check_var: NDArray[np.int32],
    syndrome: NDArray[np.uint8],
    post: NDArray[np.float32],
    r: NDArray[np.float32],
    max_iterations: int,
    patience: int,
) -> tuple[int, bool]:
    """The former kernel: checks in index order, one at a time (benchmark baseline).

    Same update rule, stopping rules and skip rule as :func:`layered_numba`; only the check
    order (``0, 1, …, M − 1``) and the scalar one-check-at-a-time loop differ.
    """
    it, ok = _layered_kernel_serial(
        check_ptr, check_var, syndrome, post, r, max_iterations, patience, PHI_TABLE, SKIP_LLR
    )
    return int(it), bool(ok)


# --------------------------------------------------------------------------------------------
# Coloured schedule: layout


#: Lanes per block of the coloured layout (checks updated side by side).
BLOCK_WIDTH = 64


@dataclass(frozen=True, eq=False)
class DecoderLayout:
    """Per-code schedule and edge layout of the coloured layered decoder (immutable).

    Built by :func:`prepare_layout` once per code and shared by every frame decoded with it.
    Every array is read-only.

    Attributes
    ----------
    n_checks, n_edges
        ``M`` and the number of edges of ``H``.
    order
        The checks in processing order, shape (M,): colour by colour, within a colour by
        degree, then by index.
    edge
        For each layout slot the CSR edge it holds, shape (E,).
    var
        The variable of each layout slot (``check_var[edge]``), shape (E,).
    block_start
        First slot of each block, shape (B + 1,); block ``b`` holds ``block_deg[b]`` rows of
        ``block_width[b]`` slots (``[position in check][lane]``).
    block_first
        Position in :attr:`order` of each block's first lane, shape (B,); lane ``l`` of block
        ``b`` is check ``order[block_first[b] + l]``.
    block_deg, block_width
        Degree of the block's checks and its number of lanes, shape (B,).
    n_colors
        Colours used (greedy colouring of the check conflict graph).
    """

    n_checks: int
    n_edges: int
    order: NDArray[np.int64]
    edge: NDArray[np.int64]
    var: NDArray[np.int32]
    block_start: NDArray[np.int64]
    block_first: NDArray[np.int64]
    block_deg: NDArray[np.int32]
    block_width: NDArray[np.int32]
    n_colors: int

    @property
    def max_width(self) -> int:
        """Widest block (lanes)."""
        return int(self.block_width.max(initial=1))

    @property
    def max_degree(self) -> int:
        """Largest check degree."""
        return int(self.block_deg.max(initial=1))

    def matches(self, check_ptr: NDArray[np.int64], check_var: NDArray[np.int32]) -> bool:
        """Whether this layout was prepared for ``H = (check_ptr, check_var)`` (exact test)."""
        if check_ptr.size != self.n_checks + 1 or check_var.size != self.n_edges:
            return False
        lanes = np.diff(self.block_first, append=self.n_checks)
        degrees = np.repeat(self.block_deg, lanes)
        return bool(
            np.array_equal(np.diff(check_ptr)[self.order], degrees)
            and np.array_equal(check_var[self.edge], self.var)
        )


@njit(cache=True)
def _greedy_colors(  # pragma: no cover - numba
    check_ptr: NDArray[np.int64], check_var: NDArray[np.int32], n: int
) -> NDArray[np.int32]:
    """First-fit colours of the checks in index order; ``used[v]``: bit set of the colours of
    the checks already coloured that contain ``v`` (grown by doubling when full)."""
    m = check_ptr.size - 1
    words = 2
    used = np.zeros((n, words), dtype=np.uint64)
    forbid = np.zeros(words, dtype=np.uint64)
    color = np.empty(m, dtype=np.int32)
    full = ~np.uint64(0)
    one = np.uint64(1)
    for c in range(m):
        k = -1
        while k < 0:
            forbid[:] = 0
            for e in range(check_ptr[c], check_ptr[c + 1]):
                v = check_var[e]
                for w in range(words):
                    forbid[w] |= used[v, w]
            for w in range(words):
                if forbid[w] != full:
                    free = ~forbid[w]
                    b = 0
                    while (free >> np.uint64(b)) & one == 0:
                        b += 1
                    k = 64 * w + b
                    break
            if k < 0:
                grown = np.zeros((n, 2 * words), dtype=np.uint64)
                grown[:, :words] = used
                used = grown
                words *= 2
                forbid = np.zeros(words, dtype=np.uint64)
        bit = one << np.uint64(k % 64)
        for e in range(check_ptr[c], check_ptr[c + 1]):
            used[check_var[e], k // 64] |= bit
        color[c] = k
    return color


@njit(cache=True)
def _fill_layout(  # pragma: no cover - numba
    check_ptr: NDArray[np.int64],
    check_var: NDArray[np.int32],
    order: NDArray[np.int64],
    block_start: NDArray[np.int64],
    block_first: NDArray[np.int64],
    block_deg: NDArray[np.int32],
    block_width: NDArray[np.int32],
    edge: NDArray[np.int64],
    var: NDArray[np.int32],
) -> None:
    for b in range(block_first.size):
        w = block_width[b]
        for j in range(w):
            e0 = check_ptr[order[block_first[b] + j]]
            for k in range(block_deg[b]):
                slot = block_start[b] + k * w + j
                edge[slot] = e0 + k
                var[slot] = check_var[e0 + k]


def _frozen(a: NDArray[Any]) -> NDArray[Any]:
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return a


def prepare_layout(
    check_ptr: NDArray[np.int64], check_var: NDArray[np.int32], block_width: int = BLOCK_WIDTH
) -> DecoderLayout:
    """Colour the checks of ``H`` and lay its edges out for :func:`layered_numba`.

    Greedy (first-fit) colouring of the check conflict graph (two checks conflict when they
    share a variable) in check-index order (Welsh, Powell, Comput. J. 10, 85 (1967), without
    their degree ordering); checks of one colour can be updated side by side, as the
    non-overlapping rows of one layer in Hocevar 2004. Within a colour the checks are
    sorted by degree (then index) and cut into blocks of at most ``block_width`` checks of one
    degree, stored ``[position in check][lane]`` so that the kernel's loops over the lanes
    touch contiguous memory.

    Parameters
    ----------
    check_ptr, check_var
        ``H`` in CSR form.
    block_width
        Lanes per block (≥ 1).

    Returns
    -------
    DecoderLayout
        Immutable; reuse it for every frame of the code (``layout=`` of
        :class:`LayeredDecoder`, :func:`layered_numba`, :func:`layered_numpy`).
    """
    if block_width < 1:
        raise ReconciliationError(f"block_width must be ≥ 1, got {block_width}")
    ptr = np.ascontiguousarray(check_ptr, dtype=np.int64)
    cv = np.ascontiguousarray(check_var, dtype=np.int32)
    m = ptr.size - 1
    n = int(cv.max()) + 1 if cv.size else 0
    deg = np.diff(ptr)
    color = _greedy_colors(ptr, cv, n)
    order = np.lexsort((deg, color)).astype(np.int64)  # colour, then degree, then index
    key = color[order].astype(np.int64) * (int(deg.max(initial=0)) + 1) + deg[order]
    group_start = np.flatnonzero(np.diff(key, prepend=-1)) if m else np.zeros(0, np.int64)
    group_end = np.append(group_start[1:], m)
    firsts: list[NDArray[np.int64]] = []
    for g0, g1 in zip(group_start.tolist(), group_end.tolist(), strict=True):
        firsts.append(np.arange(g0, g1, block_width, dtype=np.int64))
    block_first = np.concatenate(firsts) if firsts else np.zeros(0, np.int64)
    block_width_arr = np.diff(block_first, append=m).astype(np.int32)  # ≤ block_width
    block_deg = deg[order[block_first]].astype(np.int32)
    block_start = np.zeros(block_first.size + 1, dtype=np.int64)
    np.cumsum(block_deg.astype(np.int64) * block_width_arr, out=block_start[1:])
    edge = np.empty(cv.size, dtype=np.int64)
    var = np.empty(cv.size, dtype=np.int32)
    _fill_layout(ptr, cv, order, block_start, block_first, block_deg, block_width_arr, edge, var)
    return DecoderLayout(
        n_checks=m,
        n_edges=int(cv.size),
        order=_frozen(order),
        edge=_frozen(edge),
        var=_frozen(var),
        block_start=_frozen(block_start),
        block_first=_frozen(block_first),
        block_deg=_frozen(block_deg),
        block_width=_frozen(block_width_arr),
        n_colors=int(color.max(initial=-1)) + 1,
    )


# --------------------------------------------------------------------------------------------
# Coloured schedule: kernel


class _NoAliasCompiler(CompilerBase):
    """numba's nopython pipeline with ``noalias`` on every array argument.

    Without it LLVM cannot prove that the gathered/scattered ``post`` and the lane buffers are
    distinct and does not vectorise the lane loops. Every array passed to a kernel compiled
    with it must be distinct memory (no views of one another).
    """

    def define_pipelines(self) -> list[Any]:
        self.state.flags.noalias = True
        pipeline: Any = DefaultPassBuilder.define_nopython_pipeline(self.state)  # type: ignore[no-untyped-call]
        return [pipeline]


def _f32_bits_typer(typingctx: Any, x: Any) -> Any:  # pragma: no cover - numba
    """The bit pattern of a float32 as an int32 (a bit cast, vectorisable)."""
    sig = types.int32(types.float32)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], context.get_value_type(types.int32))

    return sig, codegen


_f32_bits: Any = intrinsic(_f32_bits_typer)


@njit(cache=True, pipeline_class=_NoAliasCompiler)
def _colored_kernel(  # pragma: no cover - numba
    check_ptr: NDArray[np.int64],
    check_var: NDArray[np.int32],
    syndrome: NDArray[np.uint8],
    lvar: NDArray[np.int32],
    block_start: NDArray[np.int64],
    block_first: NDArray[np.int64],
    block_deg: NDArray[np.int32],
    block_width: NDArray[np.int32],
    syn: NDArray[np.int32],
    post: NDArray[np.float32],
    r: NDArray[np.float32],
    max_iterations: int,
    patience: int,
    table: NDArray[np.float32],
    skip_llr: float,
    qbuf: NDArray[np.float32],
    obuf: NDArray[np.float32],
    pbuf: NDArray[np.float32],
    low: NDArray[np.float32],
    neg: NDArray[np.int32],
    tot: NDArray[np.float32],
    par: NDArray[np.int32],
    act: NDArray[np.int32],
) -> tuple[int, bool]:
    m = syndrome.size
    if _syndrome_ok(check_ptr, check_var, syndrome, post):
        return 0, True
    top = np.int32(table.size - 1)
    skip = np.float32(skip_llr)
    zero = np.float32(0.0)
    inf = np.float32(np.inf)
    best = m + 1
    since = 0
    for it in range(max_iterations):
        unsat = 0
        for b in range(block_first.size):
            s0 = block_start[b]
            d = block_deg[b]
            w = block_width[b]
            f0 = block_first[b]
            sy = syn[f0 : f0 + w]
            for j in range(w):
                low[j] = inf
                neg[j] = sy[j]
            for k in range(d):
                o = s0 + k * w
                ob = k * w
                lv = lvar[o : o + w]
                rs = r[o : o + w]
                ov = obuf[ob : ob + w]
                qv = qbuf[ob : ob + w]
                for j in range(w):
                    pv = post[lv[j]]
                    q = pv - rs[j]
                    ov[j] = pv
                    qv[j] = q
                    low[j] = min(low[j], abs(q))
                    neg[j] ^= np.int32(q < zero)
            n_act = 0
            for j in range(w):
                a = int(not (low[j] >= skip and neg[j] == 0))
                act[j] = a
                n_act += a
            if n_act == 0:
                continue  # every check confident and satisfied: skip (module docstring)
            for j in range(w):
                tot[j] = zero
                par[j] = sy[j]
            for k in range(d):
                ob = k * w
                qv = qbuf[ob : ob + w]
                pw = pbuf[ob : ob + w]
                for j in range(w):
                    p = table[min(max((_f32_bits(abs(qv[j])) >> 15) - 28416, 0), top)]
                    pw[j] = p
                    tot[j] += p
            for k in range(d):
                o = s0 + k * w
                ob = k * w
                lv = lvar[o : o + w]
                rs = r[o : o + w]
                ov = obuf[ob : ob + w]
                qv = qbuf[ob : ob + w]
                pw = pbuf[ob : ob + w]
                for j in range(w):
                    x = tot[j] - pw[j]
                    mag = table[min(max((_f32_bits(x) >> 15) - 28416, 0), top)]
                    q = qv[j]
                    rv = -mag if (neg[j] ^ np.int32(q < zero)) != 0 else mag
                    pv = q + rv
                    keep = act[j] == 0
                    rs[j] = rs[j] if keep else rv
                    post[lv[j]] = ov[j] if keep else pv
                    par[j] ^= np.int32(pv < zero)
            for j in range(w):
                unsat += par[j] & act[j]
        if unsat == 0 and _syndrome_ok(check_ptr, check_var, syndrome, post):
            return it + 1, True
        if unsat < best:
            best = unsat
            since = 0
        else:
            since += 1
            if since >= patience:
                return it + 1, False
    return max_iterations, False


class _Workspace:
    """Lane buffers of the coloured kernel for one layout (one decoding at a time)."""

    def __init__(self, layout: DecoderLayout) -> None:
        cap = layout.max_width * layout.max_degree
        w = layout.max_width
        self.qbuf = np.empty(cap, dtype=np.float32)
        self.obuf = np.empty(cap, dtype=np.float32)
        self.pbuf = np.empty(cap, dtype=np.float32)
        self.low = np.empty(w, dtype=np.float32)
        self.neg = np.empty(w, dtype=np.int32)
        self.tot = np.empty(w, dtype=np.float32)
        self.par = np.empty(w, dtype=np.int32)
        self.act = np.empty(w, dtype=np.int32)


def _run_colored(
    check_ptr: NDArray[np.int64],
    check_var: NDArray[np.int32],
    syndrome: NDArray[np.uint8],
    layout: DecoderLayout,
    syn: NDArray[np.int32],
    post: NDArray[np.float32],
    r_layout: NDArray[np.float32],
    max_iterations: int,
    patience: int,
    work: _Workspace,
) -> tuple[int, bool]:
    it, ok = _colored_kernel(
        check_ptr, check_var, syndrome, layout.var, layout.block_start, layout.block_first,
        layout.block_deg, layout.block_width, syn, post, r_layout, max_iterations, patience,
        PHI_TABLE, SKIP_LLR, work.qbuf, work.obuf, work.pbuf, work.low, work.neg, work.tot,
        work.par, work.act,
    )  # fmt: skip
    return int(it), bool(ok)


def _layout_for(
    check_ptr: NDArray[np.int64], check_var: NDArray[np.int32], layout: DecoderLayout | None
) -> DecoderLayout:
    if layout is None:
        return prepare_layout(check_ptr, check_var)
    # exact test: the kernel indexes the posteriors by ``layout.var`` without bounds checks,
    # so a layout of another code of the same shape must not pass (O(E), ≈ 10 ms at 10⁶)
    if not layout.matches(check_ptr, check_var):
        raise ReconciliationError("the layout was prepared for another code")
    return layout


def layered_numba(
    check_ptr: NDArray[np.int64],
    check_var: NDArray[np.int32],
    syndrome: NDArray[np.uint8],
    post: NDArray[np.float32],
    r: NDArray[np.float32],
    max_iterations: int,
    patience: int,
    layout: DecoderLayout | None = None,
) -> tuple[int, bool]:
    """Run coloured layered sum-product in place on ``post`` and ``r``; ``(iterations, ok)``.

    ``r`` is indexed by CSR edge (it is permuted to the layout and back around the run; the
    decoder class keeps it in layout order instead). ``layout``: from :func:`prepare_layout`
    (prepared here when omitted).
    """
    lay = _layout_for(check_ptr, check_var, layout)
    ptr = np.ascontiguousarray(check_ptr, dtype=np.int64)
    cv = np.ascontiguousarray(check_var, dtype=np.int32)
    syn8 = np.ascontiguousarray(syndrome, dtype=np.uint8)
    r_layout = np.ascontiguousarray(r[lay.edge], dtype=np.float32)
    it, ok = _run_colored(
        ptr, cv, syn8, lay, syn8[lay.order].astype(np.int32), post, r_layout,
        max_iterations, patience, _Workspace(lay),
    )  # fmt: skip
    r[lay.edge] = r_layout
    return it, ok


def _syndrome_ok_numpy(
    check_ptr: NDArray[np.int64],
    check_var: NDArray[np.int32],
    syndrome: NDArray[np.uint8],
    post: NDArray[np.float32],
) -> bool:
    rows = np.repeat(np.arange(syndrome.size), np.diff(check_ptr))
    neg = (post[check_var] < 0).astype(np.int64)
    parity = np.bincount(rows, weights=neg, minlength=syndrome.size).astype(np.int64) & 1
    return bool(np.array_equal(parity.astype(np.uint8), syndrome))


def layered_numpy(
    check_ptr: NDArray[np.int64],
    check_var: NDArray[np.int32],
    syndrome: NDArray[np.uint8],
    post: NDArray[np.float32],
    r: NDArray[np.float32],
    max_iterations: int,
    patience: int,
    layout: DecoderLayout | None = None,
) -> tuple[int, bool]:
    """Reference for :func:`layered_numba`: one check at a time in ``layout.order`` (slow)."""
    order = _layout_for(check_ptr, check_var, layout).order.tolist()
    m = syndrome.size
    if _syndrome_ok_numpy(check_ptr, check_var, syndrome, post):
        return 0, True
    best, since = m + 1, 0
    for it in range(max_iterations):
        unsat = 0
        for c in order:
            sl = slice(check_ptr[c], check_ptr[c + 1])
            v = check_var[sl]
            q = post[v] - r[sl]
            neg: int = (int(syndrome[c]) + int(np.count_nonzero(q < 0))) & 1
            if np.abs(q).min() >= np.float32(SKIP_LLR) and neg == 0:
                continue
            p = phi(np.abs(q))
            total = np.cumsum(p, dtype=np.float32)[-1]
            mag = phi(total - p)
            flip = (q < 0) ^ bool(neg)
            rv = np.where(flip, -mag, mag).astype(np.float32)
            r[sl] = rv
            pv = q + rv
            post[v] = pv
            unsat += (int(syndrome[c]) + int(np.count_nonzero(pv < 0))) & 1
        if unsat == 0 and _syndrome_ok_numpy(check_ptr, check_var, syndrome, post):
            return it + 1, True
        if unsat < best:
            best, since = unsat, 0
        else:
            since += 1
            if since >= patience:
                return it + 1, False
    return max_iterations, False


class LayeredDecoder:
    """A decoding in progress: the posteriors and check messages of one frame.

    Parameters
    ----------
    check_ptr, check_var
        ``H`` in CSR form (:class:`~diqkd.postproc._ldpc_codes.MotherCode`).
    syndrome
        The full syndrome, shape (M,), 0/1.
    prior
        Prior LLRs, shape (N,).
    backend
        ``"numba"`` (default) or ``"numpy"`` (reference, slow); both follow ``layout.order``.
    layout
        :func:`prepare_layout` of this ``H`` (prepare it once per code and reuse it); prepared
        here when omitted; checked with :meth:`DecoderLayout.matches` (exact).
    """

    def __init__(
        self,
        check_ptr: NDArray[np.int64],
        check_var: NDArray[np.int32],
        syndrome: NDArray[np.uint8],
        prior: NDArray[np.floating],
        backend: Backend = "numba",
        layout: DecoderLayout | None = None,
    ) -> None:
        if backend not in ("numba", "numpy"):
            raise ReconciliationError(f"unknown backend {backend!r}: use 'numba' or 'numpy'")
        if syndrome.shape != (check_ptr.size - 1,) or prior.ndim != 1:
            raise ReconciliationError("syndrome or prior does not match the code's dimensions")
        if check_var.size and prior.size <= int(check_var.max()):
            raise ReconciliationError("prior is shorter than the code")
        self._ptr = np.ascontiguousarray(check_ptr, dtype=np.int64)
        self._var = np.ascontiguousarray(check_var, dtype=np.int32)
        self._syn = np.ascontiguousarray(syndrome, dtype=np.uint8)
        self.layout = _layout_for(self._ptr, self._var, layout)
        self._syn_lanes = self._syn[self.layout.order].astype(np.int32)
        self.post = np.array(prior, dtype=np.float32)
        self._r = np.zeros(self._var.size, dtype=np.float32)  # layout order
        self._backend = backend
        self._work: _Workspace | None = None
        self.iterations = 0

    @property
    def r(self) -> NDArray[np.float32]:
        """Check-to-variable messages by CSR edge, shape (E,) (a copy)."""
        out = np.empty_like(self._r)
        out[self.layout.edge] = self._r
        return out

    def set_known(self, positions: NDArray[np.int64], values: NDArray[np.uint8]) -> None:
        """Make symbols known (revealed): their posterior moves by the prior change."""
        old = self.post[positions] - self._messages_into(positions)
        new = (1.0 - 2.0 * values.astype(np.float32)) * np.float32(KNOWN_LLR)
        self.post[positions] += (new - old).astype(np.float32)

    def _messages_into(self, positions: NDArray[np.int64]) -> NDArray[np.float32]:
        var = self.layout.var
        want = np.zeros(self.post.size, dtype=bool)
        want[positions] = True
        sel = want[var]
        sums = np.bincount(var[sel], weights=self._r[sel], minlength=self.post.size)
        out: NDArray[np.float32] = sums[positions].astype(np.float32)
        return out

    def run(self, max_iterations: int, patience: int) -> bool:
        """Iterate (at most ``max_iterations``); whether ``H·x̂ = s`` holds exactly."""
        if max_iterations < 1 or patience < 1:
            raise ReconciliationError("max_iterations and patience must be ≥ 1")
        if self._backend == "numba":
            if self._work is None:
                self._work = _Workspace(self.layout)
            it, ok = _run_colored(
                self._ptr, self._var, self._syn, self.layout, self._syn_lanes, self.post,
                self._r, int(max_iterations), int(patience), self._work,
            )  # fmt: skip
        else:
            r = self.r
            it, ok = layered_numpy(
                self._ptr, self._var, self._syn, self.post, r, int(max_iterations),
                int(patience), self.layout,
            )  # fmt: skip
            self._r = r[self.layout.edge]
        self.iterations += it
        return ok

    def hard(self) -> NDArray[np.uint8]:
        """Hard decisions ``x̂ = [post < 0]``, shape (N,)."""
        return (self.post < 0).astype(np.uint8)

    def unsatisfied(self) -> NDArray[np.int64]:
        """Checks whose parity of the hard decisions differs from the syndrome, ascending."""
        neg = np.concatenate([[0], np.cumsum(self.hard()[self._var], dtype=np.int64)])
        parity = (neg[self._ptr[1:]] - neg[self._ptr[:-1]]) & 1
        return np.flatnonzero(parity != self._syn).astype(np.int64)

    def restart(self) -> None:
        """Forget the messages: posteriors back to the priors (revealed values kept known)."""
        self.post[:] = self._priors()
        self._r[:] = 0.0

    def _priors(self) -> NDArray[np.float32]:
        var = self.layout.var
        summed = np.bincount(var, weights=self._r, minlength=self.post.size)
        out: NDArray[np.float32] = self.post - summed.astype(np.float32)
        return out

    def pin(
        self,
        candidates: NDArray[np.int64],
        llr: float,
        max_iterations: int,
        patience: int,
        margin: float = 0.0,
        accept: Callable[[NDArray[np.uint8]], bool] | None = None,
    ) -> bool:
        """Escape a trapping set by backtracking, keeping the likeliest word found if it is
        clearly the likeliest, or the first word ``accept`` takes.

        For each candidate in turn, its posterior is pushed by ``llr`` against its hard decision
        and BP resumes from the stalled state; after each trial the state (posteriors and
        messages) is restored. With ``accept`` (a check of the hard decisions, e.g. Alice's
        :func:`~diqkd.postproc.verify.check_tag`) the first trial that satisfies the syndrome
        and ``accept`` is kept (``True``). Without it, of the trials that satisfy the syndrome,
        the word with the least channel cost ``Σ_v |L_v|·[x̂_v ≠ sign L_v]`` (``L`` the priors:
        the maximum-likelihood choice among them, as in Chase's list decoding, IEEE TIT 18, 170
        (1972)) is kept, but only if every other word found costs at least ``margin`` more.
        Otherwise, or if no trial converges, ``False`` and the state as it was (more
        information must decide).
        Why: a stall on a path of degree-2 variables between two unsatisfied checks can be
        closed either way round a cycle. Measured at 10⁶, QBER 1 %: the first trial that
        converged gave a word 10 bits off, and the true word, found by another trial, had
        exactly the same cost (5 of the 10 bits were channel errors). The flip-and-restart idea
        is that of Kang, Huang, Lin, Abdel-Ghaffar, "An iterative decoding algorithm with
        backtracking to lower the error-floors of LDPC codes", IEEE Trans. Commun. 59, 64
        (2011). Every trial's iterations count in :attr:`iterations`.
        """
        post, r = self.post.copy(), self._r.copy()
        prior = self._priors()
        weight, sign = np.abs(prior), prior < 0
        # every word found by (cost, packed word); the state only of the cheapest so far (the
        # messages are ≈ 28 MB at 10⁶, one copy per trial would not fit 24 trials comfortably)
        found: list[tuple[float, bytes]] = []
        best: tuple[NDArray[np.float32], NDArray[np.float32]] | None = None
        for v in np.asarray(candidates, dtype=np.int64):
            self.post[v] -= np.float32(llr) * (np.float32(1.0) if self.post[v] >= 0 else -1)
            if self.run(max_iterations, patience):
                hard = self.post < 0
                if accept is not None:
                    if accept(hard.view(np.uint8)):
                        return True
                else:
                    cost = float(weight[hard != sign].sum())
                    if best is None or cost < min(c for c, _ in found):
                        best = (self.post.copy(), self._r.copy())
                    found.append((cost, np.packbits(hard).tobytes()))
            self.post[:] = post
            self._r[:] = r
        if best is None:
            return False
        best_cost, best_word = min(found, key=lambda t: t[0])
        rivals = [c for c, word in found if word != best_word]
        if rivals and min(rivals) - best_cost < margin:
            return False
        self.post[:] = best[0]
        self._r[:] = best[1]
        return True
