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

:func:`layered_numpy` is the reference: the same operations in the same order with numpy
(each check vectorised over its edges, sums accumulated in edge order with ``cumsum``); it
agrees with the numba kernel bit for bit (tested).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numba import njit
from numpy.typing import NDArray

from diqkd.errors import ReconciliationError

__all__ = [
    "KNOWN_LLR",
    "PHI_BINS_PER_OCTAVE",
    "PHI_TABLE",
    "SKIP_LLR",
    "Backend",
    "LayeredDecoder",
    "bsc_llr",
    "layered_numba",
    "layered_numpy",
    "phi",
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
def _layered_kernel(  # pragma: no cover - numba
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


def layered_numba(
    check_ptr: NDArray[np.int64],
    check_var: NDArray[np.int32],
    syndrome: NDArray[np.uint8],
    post: NDArray[np.float32],
    r: NDArray[np.float32],
    max_iterations: int,
    patience: int,
) -> tuple[int, bool]:
    """Run layered sum-product in place on ``post`` and ``r``; ``(iterations, converged)``."""
    it, ok = _layered_kernel(
        check_ptr, check_var, syndrome, post, r, max_iterations, patience, PHI_TABLE, SKIP_LLR
    )
    return int(it), bool(ok)


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
) -> tuple[int, bool]:
    """Reference for :func:`layered_numba`: same operations, numpy per check (slow)."""
    m = syndrome.size
    if _syndrome_ok_numpy(check_ptr, check_var, syndrome, post):
        return 0, True
    best, since = m + 1, 0
    for it in range(max_iterations):
        unsat = 0
        for c in range(m):
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
        ``"numba"`` (default) or ``"numpy"`` (reference, slow).
    """

    def __init__(
        self,
        check_ptr: NDArray[np.int64],
        check_var: NDArray[np.int32],
        syndrome: NDArray[np.uint8],
        prior: NDArray[np.floating],
        backend: Backend = "numba",
    ) -> None:
        if backend not in ("numba", "numpy"):
            raise ReconciliationError(f"unknown backend {backend!r}: use 'numba' or 'numpy'")
        if syndrome.shape != (check_ptr.size - 1,) or prior.ndim != 1:
            raise ReconciliationError("syndrome or prior does not match the code's dimensions")
        if check_var.size and prior.size <= int(check_var.max()):
            raise ReconciliationError("prior is shorter than the code")
        self._ptr = check_ptr
        self._var = np.ascontiguousarray(check_var, dtype=np.int32)
        self._syn = np.ascontiguousarray(syndrome, dtype=np.uint8)
        self.post = np.array(prior, dtype=np.float32)
        self.r = np.zeros(self._var.size, dtype=np.float32)
        self._run = layered_numba if backend == "numba" else layered_numpy
        self.iterations = 0

    def set_known(self, positions: NDArray[np.int64], values: NDArray[np.uint8]) -> None:
        """Make symbols known (revealed): their posterior moves by the prior change."""
        old = self.post[positions] - self._messages_into(positions)
        new = (1.0 - 2.0 * values.astype(np.float32)) * np.float32(KNOWN_LLR)
        self.post[positions] += (new - old).astype(np.float32)

    def _messages_into(self, positions: NDArray[np.int64]) -> NDArray[np.float32]:
        want = np.zeros(self.post.size, dtype=bool)
        want[positions] = True
        sel = want[self._var]
        sums = np.bincount(self._var[sel], weights=self.r[sel], minlength=self.post.size)
        out: NDArray[np.float32] = sums[positions].astype(np.float32)
        return out

    def run(self, max_iterations: int, patience: int) -> bool:
        """Iterate (at most ``max_iterations``); whether ``H·x̂ = s`` holds exactly."""
        if max_iterations < 1 or patience < 1:
            raise ReconciliationError("max_iterations and patience must be ≥ 1")
        it, ok = self._run(
            self._ptr, self._var, self._syn, self.post, self.r, int(max_iterations), int(patience)
        )
        self.iterations += it
        return ok

    def hard(self) -> NDArray[np.uint8]:
        """Hard decisions ``x̂ = [post < 0]``, shape (N,)."""
        return (self.post < 0).astype(np.uint8)
