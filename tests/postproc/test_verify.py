"""Verification hash (GHASH over GF(2¹²⁸)): known answers, field arithmetic, raising API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from diqkd.errors import DiqkdError, VerificationFailed
from diqkd.postproc._gf128 import (
    blocks_from_bytes,
    gf128_mul_ref,
    ghash_blocks,
    ghash_blocks_ref,
    mul_tables,
)
from diqkd.postproc.verify import (
    epsilon_ec,
    ghash,
    new_verification_key,
    verification_tag,
    verify_keys,
)

_REPO = Path(__file__).resolve().parents[2]
VECTOR_DIRS = (_REPO / "tests" / "data" / "vectors", _REPO.parent / "shared" / "vectors")

#: The multiplicative identity in GCM's representation: coefficient of x⁰ = MSB of byte 0.
ONE = 1 << 127
u128 = st.integers(0, 2**128 - 1)


def vector_file(name: str) -> Path:
    """A known-answer file from the repository copy or the shared folder; never skipped."""
    for folder in VECTOR_DIRS:
        if (folder / name).is_file():
            return folder / name
    pytest.fail(f"known-answer file {name} not found in {[str(d) for d in VECTOR_DIRS]}")


def _unpack(hex_string: str) -> np.ndarray:
    return np.unpackbits(np.frombuffer(bytes.fromhex(hex_string), dtype=np.uint8))


def test_ghash_known_answers() -> None:
    """18 GHASH_H(A, C) values derived from NIST CAVP gcmEncryptExtIV128 (see the vector README).

    Convention mapping: GCM stores a field element bit-reflected — the MSB of byte 0 is the
    coefficient of x⁰ and the LSB of byte 15 that of x¹²⁷, reduced by x¹²⁸ + x⁷ + x² + x + 1
    (SP 800-38D §6.3). :mod:`diqkd.postproc._gf128` keeps exactly that representation
    (``int.from_bytes(block, "big")``: coefficient k is int bit 127 − k), so the vectors apply
    without any bit reversal. Our verification tag is GHASH with A = ε and C = the key packed
    MSB-first (``numpy.packbits``) with its length in *bits*; for the vectors with empty A the
    tag of ``unpackbits(C)`` under key ``H`` must therefore equal GHASH as well.
    """
    data = json.loads(vector_file("ghash_from_nist_gcm.json").read_text())
    assert len(data["vectors"]) == 18
    checked_tags = 0
    for vec in data["vectors"]:
        h, a, c = (bytes.fromhex(vec[k]) for k in ("H", "A", "C"))
        assert ghash(h, a, c).hex() == vec["GHASH"]
        if not a:
            assert verification_tag(_unpack(vec["C"]), h).hex() == vec["GHASH"]
            assert verification_tag(_unpack(vec["C"]), h, tag_bits=64).hex() == vec["GHASH"][:16]
            verify_keys(bytes.fromhex(vec["GHASH"]), _unpack(vec["C"]), h)
            checked_tags += 1
    assert checked_tags == 6


@given(x=u128, y=u128, z=u128)
def test_reference_field_axioms(x: int, y: int, z: int) -> None:
    assert gf128_mul_ref(x, y) == gf128_mul_ref(y, x)
    assert gf128_mul_ref(x, y ^ z) == gf128_mul_ref(x, y) ^ gf128_mul_ref(x, z)
    assert gf128_mul_ref(x, ONE) == x
    assert gf128_mul_ref(gf128_mul_ref(x, y), z) == gf128_mul_ref(x, gf128_mul_ref(y, z))


@given(h=u128, blocks=st.lists(u128, min_size=0, max_size=12), y0=u128)
def test_table_kernel_matches_reference(h: int, blocks: list[int], y0: int) -> None:
    """Shoup-table Horner kernel (numba) == bitwise SP 800-38D Algorithm 1 (pure Python)."""
    arr = np.array([[b >> 64, b & (2**64 - 1)] for b in blocks], dtype=np.uint64).reshape(-1, 2)
    assert ghash_blocks(mul_tables(h), arr, y0) == ghash_blocks_ref(h, blocks, y0)


def test_blocks_from_bytes_pads_and_splits() -> None:
    blocks = blocks_from_bytes(bytes(range(1, 18)))
    assert blocks.shape == (2, 2)
    assert int(blocks[0, 0]) == 0x0102030405060708 and int(blocks[1, 0]) == 0x11 << 56
    assert blocks_from_bytes(b"").shape == (0, 2)


@given(n=st.integers(0, 700), seed=st.integers(0, 2**32 - 1))
def test_tag_is_ghash_of_the_packed_bits(n: int, seed: int) -> None:
    """Any bit length: blocks = packbits(bits) zero-padded, length block = (0, n bits)."""
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, n, dtype=np.uint8)
    h = rng.integers(0, 2**63, 2).tolist()
    key = (h[0] << 64 | h[1]).to_bytes(16, "big")
    padded = np.packbits(bits).tobytes()
    padded += bytes(-len(padded) % 16)
    blocks = [int.from_bytes(padded[i : i + 16], "big") for i in range(0, len(padded), 16)]
    expected = ghash_blocks_ref(int.from_bytes(key, "big"), [*blocks, n])
    assert verification_tag(bits, key) == expected.to_bytes(16, "big")


def test_round_trip_and_tampering() -> None:
    rng = np.random.default_rng(7)
    key_bits = rng.integers(0, 2, 100_003, dtype=np.uint8)
    for key in (new_verification_key(), new_verification_key(padded=True)):
        for t in (128, 96, 64):
            tag = verification_tag(key_bits, key, tag_bits=t)
            assert len(tag) == t // 8
            verify_keys(tag, key_bits.copy(), key, tag_bits=t)  # returns only by not raising
            flipped = key_bits.copy()
            flipped[54_321] ^= 1
            with pytest.raises(VerificationFailed, match="differ"):
                verify_keys(tag, flipped, key, tag_bits=t)
            bad_tag = bytes([tag[0] ^ 1]) + tag[1:]
            with pytest.raises(VerificationFailed):
                verify_keys(bad_tag, key_bits, key, tag_bits=t)
    # a shortened tag never lowers the bar: the expected length is fixed by tag_bits
    key = new_verification_key()
    tag = verification_tag(key_bits, key)
    with pytest.raises(VerificationFailed, match="bytes"):
        verify_keys(tag[:8], key_bits, key)
    with pytest.raises(VerificationFailed, match="bytes"):
        verify_keys(b"", key_bits, key)


def test_length_is_bound_into_the_tag() -> None:
    """[1, 0] and [1, 0, 0] pack to the same bytes; the bit-length block separates them."""
    key = new_verification_key()
    short = np.array([1, 0], dtype=np.uint8)
    long = np.array([1, 0, 0], dtype=np.uint8)
    assert verification_tag(short, key) != verification_tag(long, key)
    with pytest.raises(VerificationFailed):
        verify_keys(verification_tag(short, key), long, key)


def test_pad_masks_the_tag() -> None:
    bits = np.ones(300, dtype=np.uint8)
    h = new_verification_key()
    pad = bytes(range(16))
    plain = verification_tag(bits, h)
    masked = verification_tag(bits, h + pad)
    assert bytes(a ^ b for a, b in zip(plain, pad, strict=True)) == masked


def test_epsilon_ec() -> None:
    assert epsilon_ec(0) == 1 / 2**128
    assert epsilon_ec(128) == 2 / 2**128
    assert epsilon_ec(129) == 3 / 2**128
    assert epsilon_ec(10**6, tag_bits=64) == (7813 + 1) / 2**64
    assert epsilon_ec(10**8) == pytest.approx(781_251 / 2**128)
    for bad in (63, 65, 136, 0):
        with pytest.raises(DiqkdError, match="tag_bits"):
            epsilon_ec(100, tag_bits=bad)
    with pytest.raises(DiqkdError):
        epsilon_ec(-1)


def test_malformed_arguments() -> None:
    bits = np.zeros(10, dtype=np.uint8)
    with pytest.raises(DiqkdError, match="16 bytes"):
        verification_tag(bits, b"short")
    with pytest.raises(DiqkdError, match="bytes"):
        verification_tag(bits, "0" * 16)  # type: ignore[arg-type]
    with pytest.raises(DiqkdError, match="0 and 1"):
        verification_tag(np.full(4, 3, np.uint8), bytes(16))
    with pytest.raises(DiqkdError, match="dtype"):
        verification_tag(bits.astype(np.int32), bytes(16))
    with pytest.raises(DiqkdError, match="tag_bits"):
        verification_tag(bits, bytes(16), tag_bits=32)
    with pytest.raises(DiqkdError, match="alice_tag"):
        verify_keys("x", bits, bytes(16))  # type: ignore[arg-type]
    with pytest.raises(DiqkdError, match="subkey"):
        ghash(b"1", b"", b"")
    assert verification_tag(bits.astype(bool), bytes(range(16))) == verification_tag(
        bits, bytes(range(16))
    )
