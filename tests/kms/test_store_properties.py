"""Property-based tests of the key store against a model of the half-block allocation rule."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from diqkd.kms._store_crypto import SEGMENT_BITS
from diqkd.kms.store import KeyStore, NotEnoughKey, Reservation
from diqkd.postproc.keys import KeyBlock

_SETTINGS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _reset(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for table in ("kms_keys", "kms_segments", "kms_blocks"):
                conn.execute(text(f"DELETE FROM {table}"))
    finally:
        engine.dispose()


@_SETTINGS
@given(
    sizes=st.lists(st.integers(1, 3 * SEGMENT_BITS), min_size=1, max_size=4),
    requests=st.lists(
        st.tuples(st.integers(1, 4), st.integers(1, 2 * SEGMENT_BITS)), min_size=1, max_size=6
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_reserve_follows_the_model_and_the_peer_gets_the_same_keys(
    store_url: str,
    make_store: Callable[..., KeyStore],
    sizes: list[int],
    requests: list[tuple[int, int]],
    seed: int,
) -> None:
    _check_model(store_url, make_store, sizes, requests, seed)


@_SETTINGS
@given(
    sizes=st.lists(st.integers(1, 3 * SEGMENT_BITS // 16).map(lambda n: 16 * n), max_size=4),
    requests=st.lists(
        st.tuples(st.integers(1, 4), st.integers(1, 2 * SEGMENT_BITS // 8).map(lambda n: 8 * n)),
        min_size=1,
        max_size=6,
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_whole_byte_keys_follow_the_model(
    store_url: str,
    make_store: Callable[..., KeyStore],
    sizes: list[int],
    requests: list[tuple[int, int]],
    seed: int,
) -> None:
    # ETSI key sizes are whole bytes: the store slices and zeroes bytes then (a fast path);
    # both halves of these blocks start on a byte, so every key takes that path at both sites.
    _check_model(store_url, make_store, [*sizes, 2 * SEGMENT_BITS + 1024], requests, seed)


def _check_model(
    store_url: str,
    make_store: Callable[..., KeyStore],
    sizes: list[int],
    requests: list[tuple[int, int]],
    seed: int,
) -> None:
    alice, bob = make_store("alice"), make_store("bob")
    _reset(store_url)
    rng = np.random.default_rng(seed)
    blocks = [KeyBlock.from_bits(rng.integers(0, 2, n, dtype=np.uint8)) for n in sizes]
    assert alice.import_blocks(blocks) == len(blocks)
    bob.import_blocks(blocks)
    cursor = [0] * len(blocks)  # model: alice's next free bit in each block
    for number, size in requests:
        free_keys = sum((b.n_bits // 2 - c) // size for b, c in zip(blocks, cursor, strict=True))
        assert alice.stored_key_count(size) == free_keys
        if free_keys < number:
            with pytest.raises(NotEnoughKey):
                alice.reserve(number=number, size_bits=size, master_sae="A", slave_saes=["B"])
            continue
        keys, res = alice.reserve(number=number, size_bits=size, master_sae="A", slave_saes=["B"])
        expected = []
        for i, b in enumerate(blocks):  # first fit, oldest block first
            while len(expected) < number and b.n_bits // 2 - cursor[i] >= size:
                expected.append((b.key_id, cursor[i]))
                cursor[i] += size
        assert [(r.block_id, r.offset_bits) for r in res] == expected
        bits = {b.key_id: b.bits() for b in blocks}
        for key, r in zip(keys, res, strict=True):
            assert key.size_bits == size and len(key.key) == (size + 7) // 8
            want = bits[r.block_id][r.offset_bits : r.offset_bits + size]
            assert key.key == np.packbits(want).tobytes()
        bob.accept_reservations(res)
        got = bob.fetch_for_slave(key_ids=[k.key_id for k in keys], slave_sae="B")
        assert [g.key for g in got] == [k.key for k in keys]
    counts = alice.counts()
    assert counts["free_bits"] == sum(
        b.n_bits // 2 - c for b, c in zip(blocks, cursor, strict=True)
    )
    assert bob.counts()["erased"] == counts["delivered_to_master"]


_sae = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=40
)


@settings(max_examples=60, deadline=None)
@given(
    offset=st.integers(0, 2**40),
    size=st.integers(1, 2**20),
    master=_sae,
    slaves=st.lists(_sae, min_size=1, max_size=5, unique=True),
)
def test_reservation_round_trips(offset: int, size: int, master: str, slaves: list[str]) -> None:
    res = Reservation(
        key_id=str(uuid.uuid4()),
        block_id=str(uuid.uuid4()),
        offset_bits=offset,
        size_bits=size,
        master_sae=master,
        slave_saes=tuple(slaves),
    )
    assert Reservation.from_dict(res.to_dict()) == res
