"""Numba kernels of Cascade, and the pure-numpy / pure-Python references they must match.

Two backends with identical outputs, bit for bit (tested):

* ``"numba"`` — compiled kernels (``cache=True``, no ``fastmath``), the default;
* ``"numpy"`` — vectorised numpy for the parity computations, and the *same* Python source
  of the state-update kernels run uncompiled (``py_func`` semantics) for Bob's bookkeeping.

What they compute
-----------------
**Public per-pass shuffles.** Pass ``p`` of a Cascade run shuffles the frame with the
Durstenfeld form of the Fisher–Yates shuffle (Knuth, TAOCP vol. 2, 3rd ed., Algorithm 3.4.2 P)
driven by the SplitMix64 generator (Steele, Lea, Flood, OOPSLA 2014, "Fast splittable
pseudorandom number generators"): step ``t = 0 … n−2`` swaps position ``i = n−1−t`` with
``j = ⌊u_t·(i+1)⌋``, ``u_t = (z_t ≫ 11)·2⁻⁵³``, ``z_t = mix64(s_p + (t+1)·γ)`` with
``γ = 0x9E3779B97F4A7C15`` and the pass state ``s_p = seed + (p+1)·0xD1B54A32D192ED03 mod 2⁶⁴``.
The shuffle is public and need not be cryptographic: both parties derive it from the public
seed, and Cascade only needs it to scatter each earlier block's bits over the later blocks.
(``j`` is clamped to ``i``; float rounding can give ``i+1`` for ``u`` within 2⁻⁵³ of 1.)

**Parities over shuffled blocks.** ``prefix[i] = key[perm[0]] ⊕ … ⊕ key[perm[i−1]]`` (Alice,
whose key never changes, answers any range parity in O(1) as ``prefix[e] ⊕ prefix[s]``) and
the parity of each top-level block ``[b·k, min((b+1)·k, n))`` of the shuffled key (Bob).

**Bob's bookkeeping** (``apply_split``, ``flip_bits``, ``plan_round``): for every opened
pass Bob keeps the partition of the shuffled frame into the *frontier* blocks — the smallest
blocks whose parity Alice has disclosed (top-level blocks and the halves announced during
binary searches). ``node_of_bit[p, j]`` is the frontier block of pass ``p`` that holds bit
``j``; ``node_a``/``node_b`` are Alice's and Bob's current parity of each frontier block. A
block whose two parities differ holds an odd number of errors and is searched from where it
stands, which is the sub-block reuse of Martinez-Mateo et al., QIC 15, 453 (2015)
("Cascade opt. (4)"): a bit corrected in one pass toggles exactly one frontier block in every
other pass (the cascade effect), and the search restarts from that block, never re-asking a
disclosed parity. ``plan_round`` picks the searches of one round trip: odd blocks smallest
first (Brassard, Salvail 1993: the smallest odd block is corrected first), each admitted
unless it shares a bit with a block already admitted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numba import njit
from numpy.typing import NDArray

from diqkd.postproc.messages import ReconciliationError

__all__ = [
    "Backend",
    "Kernels",
    "block_parities_numba",
    "block_parities_numpy",
    "get_kernels",
    "label_blocks_numba",
    "label_blocks_numpy",
    "pass_permutation",
    "pass_state",
    "permutation_numba",
    "permutation_numpy",
    "prefix_parity_numba",
    "prefix_parity_numpy",
]

Backend = Literal["numba", "numpy"]

_MASK64 = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
_PASS_STRIDE = 0xD1B54A32D192ED03
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_U_GAMMA = np.uint64(_GAMMA)
_U_M1 = np.uint64(_M1)
_U_M2 = np.uint64(_M2)
_TWO_M53 = 2.0**-53


def pass_state(shuffle_seed: int, pass_index: int) -> int:
    """SplitMix64 start state of pass ``p``: ``seed + (p+1)·0xD1B54A32D192ED03 mod 2⁶⁴``."""
    return (int(shuffle_seed) + (int(pass_index) + 1) * _PASS_STRIDE) & _MASK64


# --------------------------------------------------------------------------- shuffles


@njit(cache=True, nogil=True)
def _permutation_kernel(n: int, state: np.uint64) -> NDArray[np.int32]:
    perm = np.arange(n).astype(np.int32)
    z0 = state
    for t in range(n - 1):
        i = n - 1 - t
        z0 = z0 + _U_GAMMA
        z = z0
        z = (z ^ (z >> np.uint64(30))) * _U_M1
        z = (z ^ (z >> np.uint64(27))) * _U_M2
        z = z ^ (z >> np.uint64(31))
        u = float(z >> np.uint64(11)) * _TWO_M53
        j = int(u * (i + 1))
        if j > i:
            j = i
        tmp = perm[i]
        perm[i] = perm[j]
        perm[j] = tmp
    return perm


def permutation_numba(n: int, state: int) -> NDArray[np.int32]:
    """Public shuffle of ``range(n)`` from SplitMix64 state ``state`` (compiled)."""
    return _permutation_kernel(int(n), np.uint64(state))


def permutation_numpy(n: int, state: int) -> NDArray[np.int32]:
    """Reference of :func:`permutation_numba`: numpy SplitMix64 stream, Python swap loop."""
    perm = np.arange(n, dtype=np.int32)
    if n < 2:
        return perm
    counters = np.arange(1, n, dtype=np.uint64)
    z = np.uint64(state) + counters * np.uint64(_GAMMA)  # wraps mod 2⁶⁴ (array arithmetic)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_M1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_M2)
    z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) * _TWO_M53
    i = np.arange(n - 1, 0, -1, dtype=np.int64)
    j = np.minimum((u * (i + 1).astype(np.float64)).astype(np.int64), i)
    for ii, jj in zip(i.tolist(), j.tolist(), strict=True):
        perm[ii], perm[jj] = perm[jj], perm[ii]
    return perm


def pass_permutation(n: int, shuffle_seed: int, pass_index: int) -> NDArray[np.int32]:
    """The public shuffle of pass ``pass_index``: position → original bit index (compiled)."""
    return permutation_numba(n, pass_state(shuffle_seed, pass_index))


# --------------------------------------------------------------------------- parities


@njit(cache=True, nogil=True)
def _prefix_kernel(bits: NDArray[np.uint8], perm: NDArray[np.int32]) -> NDArray[np.uint8]:
    n = perm.shape[0]
    out = np.empty(n + 1, dtype=np.uint8)
    acc = np.uint8(0)
    out[0] = acc
    for i in range(n):
        acc ^= bits[perm[i]]
        out[i + 1] = acc
    return out


def prefix_parity_numba(bits: NDArray[np.uint8], perm: NDArray[np.int32]) -> NDArray[np.uint8]:
    """Prefix parities of the shuffled key, shape (n + 1,): ``out[i] = ⊕ bits[perm[:i]]``."""
    return _prefix_kernel(bits, perm)


def prefix_parity_numpy(bits: NDArray[np.uint8], perm: NDArray[np.int32]) -> NDArray[np.uint8]:
    """Reference of :func:`prefix_parity_numba` (``numpy.bitwise_xor.accumulate``)."""
    out = np.zeros(perm.size + 1, dtype=np.uint8)
    if perm.size:
        out[1:] = np.bitwise_xor.accumulate(bits[perm])
    return out


@njit(cache=True, nogil=True)
def _block_kernel(bits: NDArray[np.uint8], perm: NDArray[np.int32], k: int) -> NDArray[np.uint8]:
    n = perm.shape[0]
    n_blocks = (n + k - 1) // k
    out = np.empty(n_blocks, dtype=np.uint8)
    for b in range(n_blocks):
        start = b * k
        end = min(start + k, n)
        acc = np.uint8(0)
        for i in range(start, end):
            acc ^= bits[perm[i]]
        out[b] = acc
    return out


def block_parities_numba(
    bits: NDArray[np.uint8], perm: NDArray[np.int32], block_size: int
) -> NDArray[np.uint8]:
    """Parity of each block ``[b·k, min((b+1)·k, n))`` of ``bits[perm]``, shape (⌈n/k⌉,)."""
    return _block_kernel(bits, perm, int(block_size))


def block_parities_numpy(
    bits: NDArray[np.uint8], perm: NDArray[np.int32], block_size: int
) -> NDArray[np.uint8]:
    """Reference of :func:`block_parities_numba` (``numpy.bitwise_xor.reduceat``)."""
    starts = np.arange(0, perm.size, int(block_size))
    return np.bitwise_xor.reduceat(bits[perm], starts).astype(np.uint8)


@njit(cache=True, nogil=True)
def _label_kernel(labels: NDArray[np.int32], perm: NDArray[np.int32], k: int, base: int) -> None:
    n = perm.shape[0]
    label = base
    left = k
    for i in range(n):
        labels[perm[i]] = label
        left -= 1
        if left == 0:
            label += 1
            left = k


def label_blocks_numba(
    labels: NDArray[np.int32], perm: NDArray[np.int32], block_size: int, base: int
) -> None:
    """In place: ``labels[perm[i]] = base + i // k`` (the top-level block of each bit)."""
    _label_kernel(labels, perm, int(block_size), int(base))


def label_blocks_numpy(
    labels: NDArray[np.int32], perm: NDArray[np.int32], block_size: int, base: int
) -> None:
    """Reference of :func:`label_blocks_numba` (one numpy scatter)."""
    labels[perm] = (base + np.arange(perm.size, dtype=np.int64) // int(block_size)).astype(np.int32)


# --------------------------------------------------------------------------- Bob's bookkeeping
# Plain Python sources, compiled below; the "numpy" backend runs them uncompiled.


def _apply_split_py(
    pending: NDArray[np.int64],
    alice_left: NDArray[np.uint8],
    bits: NDArray[np.uint8],
    perms: NDArray[np.int32],
    node_of_bit: NDArray[np.int32],
    n_open: int,
    node_pass: NDArray[np.int32],
    node_start: NDArray[np.int64],
    node_end: NDArray[np.int64],
    node_a: NDArray[np.uint8],
    node_b: NDArray[np.uint8],
    n_nodes: int,
) -> tuple[int, NDArray[np.int64], int]:
    """Split each requested block at its midpoint given Alice's left-half parity.

    The left half keeps the block's id, the right half gets a new one (only the right half's
    bits are relabelled; Bob's right parity is summed there and the left one inferred). An odd
    half of one bit is corrected at once; every correction toggles Bob's parity of the bit's
    frontier block in each opened pass. Returns the new node count, the candidate blocks (odd
    blocks to search next; may hold duplicates and blocks that turned even) and the number of
    corrected bits.
    """
    n_req = pending.shape[0]
    cand = np.empty(n_req * (2 + 2 * n_open) + 1, dtype=np.int64)
    n_cand = 0
    flips = 0
    for r in range(n_req):
        c = pending[r]
        q = node_pass[c]
        s = node_start[c]
        e = node_end[c]
        m = s + (e - s + 1) // 2
        new = n_nodes
        n_nodes += 1
        b_right = 0
        for i in range(m, e):
            j = perms[q, i]
            b_right ^= bits[j]
            node_of_bit[q, j] = new
        a_left = alice_left[r]
        node_pass[new] = q
        node_start[new] = m
        node_end[new] = e
        node_a[new] = node_a[c] ^ a_left
        node_b[new] = b_right
        node_end[c] = m
        node_a[c] = a_left
        node_b[c] = node_b[c] ^ b_right
        for child in (c, new):
            if node_a[child] == node_b[child]:
                continue
            if node_end[child] - node_start[child] > 1:
                cand[n_cand] = child
                n_cand += 1
                continue
            # An odd single bit: Bob's bit is wrong. Correct it and cascade.
            jj = perms[q, node_start[child]]
            bits[jj] ^= 1
            flips += 1
            for p in range(n_open):
                nd = node_of_bit[p, jj]
                node_b[nd] ^= 1
                if node_a[nd] != node_b[nd] and node_end[nd] - node_start[nd] > 1:
                    cand[n_cand] = nd
                    n_cand += 1
    return n_nodes, cand[:n_cand], flips


def _flip_bits_py(
    flip: NDArray[np.int64],
    bits: NDArray[np.uint8],
    node_of_bit: NDArray[np.int32],
    n_open: int,
    node_start: NDArray[np.int64],
    node_end: NDArray[np.int64],
    node_a: NDArray[np.uint8],
    node_b: NDArray[np.uint8],
) -> NDArray[np.int64]:
    """Correct the bits ``flip`` and return the frontier blocks that turned odd (cascade)."""
    cand = np.empty(flip.shape[0] * n_open + 1, dtype=np.int64)
    n_cand = 0
    for t in range(flip.shape[0]):
        jj = flip[t]
        bits[jj] ^= 1
        for p in range(n_open):
            nd = node_of_bit[p, jj]
            node_b[nd] ^= 1
            if node_a[nd] != node_b[nd] and node_end[nd] - node_start[nd] > 1:
                cand[n_cand] = nd
                n_cand += 1
    return cand[:n_cand]


def _plan_round_py(
    cand: NDArray[np.int64],
    node_pass: NDArray[np.int32],
    node_start: NDArray[np.int64],
    node_end: NDArray[np.int64],
    node_a: NDArray[np.uint8],
    node_b: NDArray[np.uint8],
    perms: NDArray[np.int32],
    node_of_bit: NDArray[np.int32],
    n_open: int,
    mark: NDArray[np.uint8],
    big: int,
    limit: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Choose this round's searches among the candidate blocks; return (now, later).

    Keeps the distinct candidates that are still odd and longer than one bit, orders them
    smallest first (ties: lower pass, then lower start), and chooses greedily every block that
    shares no bit with a block already chosen — blocks of one pass never do — so that no two
    searches of a round can chase the same error. A block longer than ``big`` is chosen only
    when it comes first (long blocks are not scanned for overlaps); at most ``limit`` blocks
    are chosen (``limit = 1``: the sequential smallest-first order). The rest wait.
    """
    odd = np.empty(cand.shape[0], dtype=np.int64)
    k = 0
    for i in range(cand.shape[0]):
        nd = cand[i]
        if mark[nd] == 0 and node_a[nd] != node_b[nd] and node_end[nd] - node_start[nd] > 1:
            mark[nd] = 1
            odd[k] = nd
            k += 1
    odd = odd[:k]
    for i in range(k):
        mark[odd[i]] = 0
    # Smallest first; ties by pass, then start (a stable sort on each key, last key first).
    order = np.argsort(node_start[odd], kind="mergesort")
    order = order[np.argsort(node_pass[odd][order], kind="mergesort")]
    order = order[np.argsort((node_end[odd] - node_start[odd])[order], kind="mergesort")]
    odd = odd[order]
    chosen = np.zeros(k, dtype=np.uint8)
    used = np.zeros(n_open, dtype=np.int64)
    n_chosen = 0
    for r in range(k):
        nd = odd[r]
        p = node_pass[nd]
        s = node_start[nd]
        e = node_end[nd]
        if n_chosen > 0 and (e - s > big or n_chosen >= limit):
            continue
        clash = False
        for q in range(n_open):
            if q == p or used[q] == 0:
                continue
            for i in range(s, e):
                if mark[node_of_bit[q, perms[p, i]]] != 0:
                    clash = True
                    break
            if clash:
                break
        if clash:
            continue
        chosen[r] = 1
        mark[nd] = 1
        used[p] += 1
        n_chosen += 1
    now = np.empty(n_chosen, dtype=np.int64)
    later = np.empty(k - n_chosen, dtype=np.int64)
    a = 0
    b = 0
    for r in range(k):
        if chosen[r] != 0:
            mark[odd[r]] = 0
            now[a] = odd[r]
            a += 1
        else:
            later[b] = odd[r]
            b += 1
    return now, later


_apply_split_nb = njit(cache=True, nogil=True)(_apply_split_py)
_plan_round_nb = njit(cache=True, nogil=True)(_plan_round_py)
_flip_bits_nb = njit(cache=True, nogil=True)(_flip_bits_py)


@dataclass(frozen=True)
class Kernels:
    """One backend's set of Cascade kernels (see the module docstring)."""

    name: Backend
    permutation: Callable[[int, int], NDArray[np.int32]]
    prefix_parity: Callable[[NDArray[np.uint8], NDArray[np.int32]], NDArray[np.uint8]]
    block_parities: Callable[[NDArray[np.uint8], NDArray[np.int32], int], NDArray[np.uint8]]
    label_blocks: Callable[[NDArray[np.int32], NDArray[np.int32], int, int], None]
    apply_split: Callable[..., tuple[int, NDArray[np.int64], int]]
    flip_bits: Callable[..., NDArray[np.int64]]
    plan_round: Callable[..., tuple[NDArray[np.int64], NDArray[np.int64]]]


_KERNELS: dict[str, Kernels] = {
    "numba": Kernels(
        "numba",
        permutation_numba,
        prefix_parity_numba,
        block_parities_numba,
        label_blocks_numba,
        _apply_split_nb,
        _flip_bits_nb,
        _plan_round_nb,
    ),
    "numpy": Kernels(
        "numpy",
        permutation_numpy,
        prefix_parity_numpy,
        block_parities_numpy,
        label_blocks_numpy,
        _apply_split_py,
        _flip_bits_py,
        _plan_round_py,
    ),
}


def get_kernels(backend: Backend) -> Kernels:
    """The kernels of ``backend`` (``"numba"`` or ``"numpy"``)."""
    try:
        return _KERNELS[backend]
    except (KeyError, TypeError):
        raise ReconciliationError(
            f"unknown Cascade backend {backend!r}: use 'numba' or 'numpy'"
        ) from None
