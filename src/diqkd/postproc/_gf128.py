"""Arithmetic in GF(2¹²⁸) in the bit-reflected representation of GCM, and the GHASH kernel.

Representation (NIST SP 800-38D, §6.3): a 16-byte block ``b₀ … b₁₅`` is the polynomial
``Σ_k c_k x^k`` whose coefficient ``c_0`` is the *most* significant bit of ``b₀`` and ``c_127``
the least significant bit of ``b₁₅``, reduced modulo ``x¹²⁸ + x⁷ + x² + x + 1``. As a Python
int (``int.from_bytes(block, "big")``) coefficient ``c_k`` is bit ``127 − k``; in the kernels a
block is two ``uint64`` words ``(hi, lo)`` = bytes 0–7 and 8–15 read big-endian.

* :func:`gf128_mul_ref` is SP 800-38D Algorithm 1 ("right-shift" multiplication), bit by bit,
  on Python ints: slow, obviously correct, the reference.
* :func:`mul_tables` precomputes, for a fixed ``H``, the 16 × 256 products
  ``(v · x^{8k}) · H`` (byte value ``v`` at byte position ``k``) — V. Shoup, "On fast and
  provably secure message authentication based on universal hashing", CRYPTO 1996, and the
  8-bit-table method of D. McGrew and J. Viega, "The Galois/Counter Mode of Operation (GCM)",
  2005, §4.1 — so ``Y·H`` is 16 table look-ups and XORs (64 KiB table, no reduction step).
* :func:`ghash_blocks` runs Horner's rule ``Y ← (Y ⊕ Bᵢ)·H`` over an array of blocks (numba);
  :func:`ghash_blocks_ref` is the pure-Python reference it must match.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

__all__ = [
    "R_POLY",
    "blocks_from_bytes",
    "gf128_mul_ref",
    "ghash_blocks",
    "ghash_blocks_ref",
    "mul_tables",
]

#: The reduction constant of SP 800-38D Algorithm 1: ``11100001 ‖ 0¹²⁰``.
R_POLY = 0xE1 << 120
_MASK64 = (1 << 64) - 1


def gf128_mul_ref(x: int, y: int) -> int:
    """``x · y`` in GF(2¹²⁸), GCM representation (SP 800-38D, Algorithm 1), ints < 2¹²⁸."""
    z = 0
    v = y
    for i in range(128):
        if (x >> (127 - i)) & 1:
            z ^= v
        v = (v >> 1) ^ R_POLY if v & 1 else v >> 1
    return z


def ghash_blocks_ref(h: int, blocks: list[int], y: int = 0) -> int:
    """Horner's rule ``Y ← (Y ⊕ Bᵢ)·H`` with :func:`gf128_mul_ref` (reference)."""
    for block in blocks:
        y = gf128_mul_ref(y ^ block, h)
    return y


def _powers_of_x_times_h(h: int) -> list[int]:
    """``x^j · H`` for ``j = 0 … 127`` (multiplying by ``x`` is one Algorithm-1 shift step)."""
    out = [h]
    v = h
    for _ in range(127):
        v = (v >> 1) ^ R_POLY if v & 1 else v >> 1
        out.append(v)
    return out


@njit(cache=True, nogil=True)
def _fill_tables(powers: NDArray[np.uint64], table: NDArray[np.uint64]) -> None:
    for k in range(16):
        for bit in range(8):
            value = 0x80 >> bit
            table[k, value, 0] = powers[8 * k + bit, 0]
            table[k, value, 1] = powers[8 * k + bit, 1]
        for v in range(1, 256):
            low = v & -v
            if low != v:
                table[k, v, 0] = table[k, v ^ low, 0] ^ table[k, low, 0]
                table[k, v, 1] = table[k, v ^ low, 1] ^ table[k, low, 1]


def mul_tables(h: int) -> NDArray[np.uint64]:
    """Shoup's 8-bit tables for multiplication by ``H``: shape (16, 256, 2), uint64 (hi, lo).

    ``table[k, v]`` is ``(v · x^{8k}) · H`` where byte value ``v`` sits at byte position ``k``
    (its most significant bit is the coefficient of ``x^{8k}``). Then
    ``Y · H = ⊕_k table[k, byte_k(Y)]`` by linearity.
    """
    powers = np.array([(p >> 64, p & _MASK64) for p in _powers_of_x_times_h(h)], dtype=np.uint64)
    table = np.zeros((16, 256, 2), dtype=np.uint64)
    _fill_tables(powers, table)
    return table


_SHIFTS = np.array([56, 48, 40, 32, 24, 16, 8, 0], dtype=np.uint64)


@njit(cache=True, nogil=True)
def _ghash_kernel(
    table: NDArray[np.uint64],
    blocks: NDArray[np.uint64],
    shifts: NDArray[np.uint64],
    y_hi: np.uint64,
    y_lo: np.uint64,
) -> tuple[np.uint64, np.uint64]:
    mask = np.uint64(0xFF)
    hi = y_hi
    lo = y_lo
    for i in range(blocks.shape[0]):
        hi ^= blocks[i, 0]
        lo ^= blocks[i, 1]
        r_hi = np.uint64(0)
        r_lo = np.uint64(0)
        for k in range(8):
            b = (hi >> shifts[k]) & mask
            r_hi ^= table[k, b, 0]
            r_lo ^= table[k, b, 1]
        for k in range(8):
            b = (lo >> shifts[k]) & mask
            r_hi ^= table[8 + k, b, 0]
            r_lo ^= table[8 + k, b, 1]
        hi = r_hi
        lo = r_lo
    return hi, lo


def ghash_blocks(table: NDArray[np.uint64], blocks: NDArray[np.uint64], y: int = 0) -> int:
    """Horner's rule over ``blocks`` (shape (k, 2), uint64 (hi, lo)) with the tables of ``H``.

    Numba kernel; :func:`ghash_blocks_ref` is the reference it must match.

    Returns
    -------
    int
        The accumulator ``Y`` after the last block, as a 128-bit int (big-endian block value).
    """
    hi, lo = _ghash_kernel(
        table,
        np.ascontiguousarray(blocks, dtype=np.uint64),
        _SHIFTS,
        np.uint64(y >> 64),
        np.uint64(y & _MASK64),
    )
    return (int(hi) << 64) | int(lo)


def blocks_from_bytes(data: bytes | bytearray | NDArray[np.uint8]) -> NDArray[np.uint64]:
    """Zero-pad ``data`` to whole 16-byte blocks and return them as (k, 2) uint64 (hi, lo)."""
    raw = data if isinstance(data, np.ndarray) else np.frombuffer(data, dtype=np.uint8)
    k = (raw.shape[0] + 15) // 16
    padded = np.zeros(16 * k, dtype=np.uint8)
    padded[: raw.shape[0]] = raw
    return padded.view(">u8").astype(np.uint64).reshape(k, 2)
