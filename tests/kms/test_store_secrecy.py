"""The key store at rest: only sealed bits in the database, and consumed bits really gone."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from diqkd.errors import KeyStoreError
from diqkd.kms._store_crypto import SEGMENT_BITS, Sealer
from diqkd.kms.store import KeyStore
from diqkd.postproc.keys import KeyBlock

Blocks = Callable[..., list[KeyBlock]]
#: Erased bits and ciphertext of the first segment of bob's copy of the block.
_BOB_SEGMENT_0 = text(
    "SELECT s.erased_bits, s.sealed FROM kms_segments s "
    "JOIN kms_blocks b ON b.id = s.block_pk WHERE b.site = 'bob' AND s.idx = 0"
)


def _segments(url: str, block_id: str) -> dict[int, tuple[int, int, int, bytes | None]]:
    """idx -> (n_bits, erased_bits, version, sealed), read straight from the database."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT s.idx, s.n_bits, s.erased_bits, s.version, s.sealed "
                    "FROM kms_segments s JOIN kms_blocks b ON b.id = s.block_pk "
                    "WHERE b.block_id = :bid AND b.site = 'alice' ORDER BY s.idx"
                ),
                {"bid": block_id},
            ).all()
    finally:
        engine.dispose()
    return {r[0]: (r[1], r[2], r[3], None if r[4] is None else bytes(r[4])) for r in rows}


def _raw_files(url: str) -> bytes:
    path = Path(url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def _windows(data: bytes, width: int = 12) -> list[bytes]:
    return [data[i : i + width] for i in range(0, len(data) - width + 1, width)]


def test_no_plaintext_at_rest(
    store_url: str, master_key: bytes, make_store: Callable[..., KeyStore], make_blocks: Blocks
) -> None:
    store = make_store("alice")
    blocks = make_blocks(2, 5 * SEGMENT_BITS + 100, seed=21)
    store.import_blocks(blocks)
    store.close()
    if store_url.startswith("sqlite"):
        raw = _raw_files(store_url)
        assert len(raw) > sum(len(b.key) for b in blocks)
    else:
        raw = b"".join(
            s for b in blocks for *_, s in _segments(store_url, b.key_id).values() if s is not None
        )
    for block in blocks:
        leaks = [w for w in _windows(block.key) if w in raw]
        assert not leaks, f"{len(leaks)} plaintext windows of {block.key_id} in the database"
    # The sealed segments do open, with the right place as associated data, and hold the bits.
    sealer = Sealer(master_key, "alice")
    segs = _segments(store_url, blocks[0].key_id)
    plain = b"".join(
        sealer.open(sealed, block_id=blocks[0].key_id, index=i, n_bits=n, version=v)
        for i, (n, _, v, sealed) in sorted(segs.items())
        if sealed is not None
    )
    assert plain == blocks[0].key
    n, _, v, sealed = segs[1]
    assert sealed is not None
    with pytest.raises(KeyStoreError, match="does not authenticate"):
        sealer.open(sealed, block_id=blocks[0].key_id, index=0, n_bits=n, version=v)
    with pytest.raises(KeyStoreError, match="does not authenticate"):
        sealer.open(sealed, block_id=blocks[0].key_id, index=1, n_bits=n, version=v + 1)
    with pytest.raises(KeyStoreError, match="does not authenticate"):
        Sealer(bytes(32), "alice").open(
            sealed, block_id=blocks[0].key_id, index=1, n_bits=n, version=v
        )


def test_consumed_bits_are_erased(
    store_url: str, master_key: bytes, make_store: Callable[..., KeyStore], make_blocks: Blocks
) -> None:
    alice = make_store("alice")
    [block] = make_blocks(1, 6 * SEGMENT_BITS, seed=22)  # alice's half: segments 0, 1, 2
    alice.import_blocks([block])
    before = _segments(store_url, block.key_id)
    size = SEGMENT_BITS + 1000  # the first key takes segment 0 whole and part of segment 1
    keys, _ = alice.reserve(number=1, size_bits=size, master_sae="A", slave_saes=["B"])
    after = _segments(store_url, block.key_id)

    assert after[0][3] is None and after[0][1] == SEGMENT_BITS  # fully consumed: no ciphertext
    assert after[1][1] == 1000 and after[1][2] == before[1][2] + 1  # re-sealed, version bumped
    assert after[2] == before[2]  # untouched
    sealer = Sealer(master_key, "alice")
    n, _, v, sealed = after[1]
    assert sealed is not None and sealed != before[1][3]
    seg1 = np.unpackbits(
        np.frombuffer(
            sealer.open(sealed, block_id=block.key_id, index=1, n_bits=n, version=v), np.uint8
        )
    )
    bits = block.bits()
    assert not seg1[:1000].any()  # the consumed bits are zeros now
    np.testing.assert_array_equal(seg1[1000:], bits[SEGMENT_BITS + 1000 : 2 * SEGMENT_BITS])
    assert keys[0].key == np.packbits(bits[:size]).tobytes()

    alice.close()
    if store_url.startswith("sqlite"):
        # Not even the superseded sealings survive in the database files (secure_delete, WAL
        # truncated at close): with the master key they would decrypt to the consumed bits.
        raw = _raw_files(store_url)
        for old in (before[0][3], before[1][3]):
            assert old is not None
            assert not [w for w in _windows(old, 16) if w in raw]


def test_slave_side_erases_after_delivery(
    store_url: str, master_key: bytes, make_store: Callable[..., KeyStore], make_blocks: Blocks
) -> None:
    alice, bob = make_store("alice"), make_store("bob", key=bytes(range(32)))
    [block] = make_blocks(1, 2 * SEGMENT_BITS, seed=23)
    alice.import_blocks([block])
    bob.import_blocks([block])
    keys, res = alice.reserve(
        number=2, size_bits=SEGMENT_BITS // 2, master_sae="A", slave_saes=["B"]
    )
    bob.accept_reservations(res)
    bob.fetch_for_slave(key_ids=[keys[0].key_id], slave_sae="B")
    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            erased, sealed = conn.execute(_BOB_SEGMENT_0).one()
            assert erased == SEGMENT_BITS // 2 and sealed is not None
            bob.fetch_for_slave(key_ids=[keys[1].key_id], slave_sae="B")
            erased, sealed = conn.execute(_BOB_SEGMENT_0).one()
    finally:
        engine.dispose()
    assert erased == SEGMENT_BITS and sealed is None  # alice's half at bob: all delivered, gone
    assert bob.counts()["erased"] == 2


def test_expired_reservations_are_erased_at_rest(
    store_url: str, master_key: bytes, make_store: Callable[..., KeyStore], make_blocks: Blocks
) -> None:
    alice, bob = make_store("alice"), make_store("bob", key=bytes(range(32)))
    [block] = make_blocks(1, 2 * SEGMENT_BITS, seed=24)
    alice.import_blocks([block])
    bob.import_blocks([block])
    _, res = alice.reserve(number=2, size_bits=SEGMENT_BITS // 2, master_sae="A", slave_saes=["B"])
    bob.accept_reservations(res)
    time.sleep(0.05)
    assert bob.expire_reservations(older_than_s=0.01) == 2
    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            erased, sealed = conn.execute(_BOB_SEGMENT_0).one()
    finally:
        engine.dispose()
    assert erased == SEGMENT_BITS and sealed is None  # no slave fetched them: gone all the same
