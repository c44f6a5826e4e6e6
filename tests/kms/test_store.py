"""The key store: lifecycle, idempotent import, all or nothing, validation (both databases)."""

from __future__ import annotations

import base64
import stat
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from diqkd.errors import DiqkdError, KeyStoreError
from diqkd.kms.store import (
    KeyNotAuthorized,
    KeyNotFound,
    KeyStore,
    NotEnoughKey,
    Reservation,
    ServedKey,
)
from diqkd.postproc.keys import KeyBlock

Blocks = Callable[..., list[KeyBlock]]


def _slice(block: KeyBlock, offset: int, size: int) -> bytes:
    return np.packbits(block.bits()[offset : offset + size]).tobytes()


def test_lifecycle_master_then_slave(
    make_store: Callable[..., KeyStore], make_blocks: Blocks
) -> None:
    alice, bob = make_store("alice"), make_store("bob")
    blocks = make_blocks(2, 3000, seed=1)
    assert alice.import_blocks(blocks) == 2
    assert bob.import_blocks(blocks) == 2
    assert alice.counts()["free_bits"] == 3000  # alice's halves: [0, 1500) of each block
    assert alice.stored_key_count(256) == 2 * (1500 // 256)

    keys, reservations = alice.reserve(
        number=3, size_bits=256, master_sae="SAE-A", slave_saes=["SAE-B"]
    )
    assert [k.size_bits for k in keys] == [256] * 3
    assert [r.key_id for r in reservations] == [k.key_id for k in keys]
    assert len({k.key_id for k in keys}) == 3
    for key, res in zip(keys, reservations, strict=True):
        assert str(uuid.UUID(key.key_id)) == key.key_id
        assert res.master_sae == "SAE-A"
        assert res.slave_saes == ("SAE-B",)
        assert res.offset_bits + res.size_bits <= 1500  # alice's half
        block = next(b for b in blocks if b.key_id == res.block_id)
        assert key.key == _slice(block, res.offset_bits, 256)
    assert alice.counts()["delivered_to_master"] == 3
    assert alice.counts()["free_bits"] == 3000 - 3 * 256

    bob.accept_reservations(reservations)
    assert bob.counts()["reserved"] == 3
    got = bob.fetch_for_slave(key_ids=[k.key_id for k in keys[::-1]], slave_sae="SAE-B")
    assert [g.key_id for g in got] == [k.key_id for k in keys[::-1]]  # request order
    assert [g.key for g in got] == [k.key for k in keys[::-1]]
    counts = bob.counts()
    assert counts["erased"] == 3 and counts["reserved"] == 0
    assert counts["peer_bits"] == 3000 - 3 * 256
    with pytest.raises(KeyNotFound, match="already delivered"):
        bob.fetch_for_slave(key_ids=[keys[0].key_id], slave_sae="SAE-B")


def test_bob_allocates_from_the_second_half(
    make_store: Callable[..., KeyStore], make_blocks: Blocks
) -> None:
    alice, bob = make_store("alice"), make_store("bob")
    [block] = make_blocks(1, 1001, seed=2)
    alice.import_blocks([block])
    bob.import_blocks([block])
    keys, res = bob.reserve(number=2, size_bits=200, master_sae="B", slave_saes=["A"])
    assert [r.offset_bits for r in res] == [500, 700]  # bob's half: [500, 1001)
    assert keys[0].key == _slice(block, 500, 200)
    alice.accept_reservations(res)
    assert alice.fetch_for_slave(key_ids=[keys[1].key_id], slave_sae="A")[0].key == keys[1].key
    # alice's own half is untouched by bob's keys
    _, a_res = alice.reserve(number=2, size_bits=250, master_sae="A", slave_saes=["B"])
    assert [r.offset_bits for r in a_res] == [0, 250]
    with pytest.raises(NotEnoughKey):
        alice.reserve(number=1, size_bits=1, master_sae="A", slave_saes=["B"])


def test_odd_sizes_and_padding(make_store: Callable[..., KeyStore], make_blocks: Blocks) -> None:
    alice = make_store("alice")
    [block] = make_blocks(1, 30_000, seed=3)  # several segments per half
    alice.import_blocks([block])
    keys, res = alice.reserve(number=3, size_bits=4093, master_sae="A", slave_saes=["B"])
    for key, r in zip(keys, res, strict=True):
        assert len(key.key) == (4093 + 7) // 8
        assert key.key[-1] & 0b111 == 0  # zero padding after the last bit
        assert key.key == _slice(block, r.offset_bits, 4093)


def test_import_is_idempotent_and_refuses_conflicts(
    make_store: Callable[..., KeyStore], make_blocks: Blocks
) -> None:
    store = make_store("alice")
    blocks = make_blocks(3, 512, seed=4)
    assert store.import_blocks(blocks[:2]) == 2
    assert store.import_blocks(blocks) == 1
    assert store.import_blocks(blocks + blocks) == 0
    assert store.import_blocks([]) == 0
    store.reserve(number=1, size_bits=64, master_sae="A", slave_saes=["B"])
    assert store.import_blocks(blocks) == 0  # importing again never resurrects bits
    assert store.counts()["free_bits"] == 3 * 256 - 64

    other = bytes(b ^ 0xFF for b in blocks[0].key)
    forged = KeyBlock(key_id=blocks[0].key_id, key=other, n_bits=512)
    fresh = make_blocks(1, 512, seed=5)
    with pytest.raises(KeyStoreError, match="different bits"):
        store.import_blocks([*fresh, forged])
    assert store.counts()["blocks"] == 3  # all or nothing: `fresh` was not added either
    shorter = KeyBlock(key_id=blocks[1].key_id, key=blocks[1].key[:32], n_bits=256)
    with pytest.raises(KeyStoreError, match="different bits or length"):
        store.import_blocks([shorter])
    with pytest.raises(KeyStoreError, match="different bits"):
        store.import_blocks([fresh[0], KeyBlock(key_id=fresh[0].key_id, key=other, n_bits=512)])
    odd = KeyBlock(key_id=fresh[0].key_id, key=fresh[0].key, n_bits=512, certificate={"x": {1j}})
    with pytest.raises(KeyStoreError, match="not JSON-serialisable"):
        store.import_blocks([odd])


def test_reserve_is_all_or_nothing(
    make_store: Callable[..., KeyStore], make_blocks: Blocks
) -> None:
    store = make_store("alice")
    store.import_blocks(make_blocks(2, 1024, seed=6))  # 2 x 512 free bits
    before = store.counts()
    with pytest.raises(NotEnoughKey, match="holds 4 free key"):
        store.reserve(number=5, size_bits=256, master_sae="A", slave_saes=["B"])
    assert store.counts() == before
    keys, _ = store.reserve(number=4, size_bits=256, master_sae="A", slave_saes=["B"])
    assert len(keys) == 4
    assert store.stored_key_count(1) == 0
    with pytest.raises(NotEnoughKey):
        store.reserve(number=1, size_bits=1, master_sae="A", slave_saes=["B"])


def test_keys_never_span_blocks(make_store: Callable[..., KeyStore], make_blocks: Blocks) -> None:
    store = make_store("alice")
    store.import_blocks(make_blocks(3, 600, seed=7))  # 300 free bits each
    assert store.stored_key_count(200) == 3
    _, res = store.reserve(number=3, size_bits=200, master_sae="A", slave_saes=["B"])
    assert len({r.block_id for r in res}) == 3
    assert store.stored_key_count(100) == 3  # the 100-bit tails remain usable
    with pytest.raises(NotEnoughKey):
        store.reserve(number=1, size_bits=101, master_sae="A", slave_saes=["B"])


def test_fetch_is_all_or_nothing(make_store: Callable[..., KeyStore], make_blocks: Blocks) -> None:
    alice, bob = make_store("alice"), make_store("bob")
    blocks = make_blocks(1, 4096, seed=8)
    alice.import_blocks(blocks)
    bob.import_blocks(blocks)
    keys, res = alice.reserve(number=2, size_bits=128, master_sae="A", slave_saes=["B"])
    other, other_res = alice.reserve(number=1, size_bits=128, master_sae="A", slave_saes=["C"])
    bob.accept_reservations(res + other_res)
    ids = [k.key_id for k in keys]
    with pytest.raises(KeyNotFound, match="unknown"):
        bob.fetch_for_slave(key_ids=[*ids, str(uuid.uuid4())], slave_sae="B")
    with pytest.raises(KeyNotAuthorized, match="not a slave SAE"):
        bob.fetch_for_slave(key_ids=[*ids, other[0].key_id], slave_sae="B")
    with pytest.raises(KeyNotFound, match="twice"):
        bob.fetch_for_slave(key_ids=[ids[0], ids[0]], slave_sae="B")
    assert bob.counts()["reserved"] == 3  # nothing was delivered by the failed calls
    assert [k.key for k in bob.fetch_for_slave(key_ids=ids, slave_sae="B")] == [k.key for k in keys]
    assert not issubclass(KeyNotAuthorized, KeyNotFound)  # the service answers 401 vs 400
    assert issubclass(KeyNotAuthorized, KeyStoreError)


def test_fetch_checks_the_master(make_store: Callable[..., KeyStore], make_blocks: Blocks) -> None:
    alice, bob = make_store("alice"), make_store("bob")
    blocks = make_blocks(1, 4096, seed=18)
    alice.import_blocks(blocks)
    bob.import_blocks(blocks)
    keys, res = alice.reserve(number=2, size_bits=128, master_sae="A", slave_saes=["B"])
    other, other_res = alice.reserve(number=1, size_bits=128, master_sae="A2", slave_saes=["B"])
    bob.accept_reservations(res + other_res)
    ids = [k.key_id for k in keys]
    with pytest.raises(KeyNotAuthorized, match="not reserved by master SAE 'A2'"):
        bob.fetch_for_slave(key_ids=ids, slave_sae="B", master_sae="A2")
    with pytest.raises(KeyNotAuthorized, match="master"):  # all or nothing
        bob.fetch_for_slave(key_ids=[*ids, other[0].key_id], slave_sae="B", master_sae="A")
    with pytest.raises(KeyStoreError, match="master_sae"):
        bob.fetch_for_slave(key_ids=ids, slave_sae="B", master_sae="")
    assert bob.counts()["reserved"] == 3  # nothing was delivered by the failed calls
    got = bob.fetch_for_slave(key_ids=ids, slave_sae="B", master_sae="A")
    assert [k.key for k in got] == [k.key for k in keys]
    # without master_sae (library use) the master is not checked
    assert bob.fetch_for_slave(key_ids=[other[0].key_id], slave_sae="B")[0].key == other[0].key


def test_multicast_erases_after_the_last_slave(
    make_store: Callable[..., KeyStore], make_blocks: Blocks
) -> None:
    alice, bob = make_store("alice"), make_store("bob")
    blocks = make_blocks(1, 2048, seed=9)
    alice.import_blocks(blocks)
    bob.import_blocks(blocks)
    [key], res = alice.reserve(
        number=1, size_bits=256, master_sae="A", slave_saes=["B1", "B2", "B1"]
    )
    assert res[0].slave_saes == ("B1", "B2")  # duplicates dropped, order kept
    bob.accept_reservations(res)
    assert bob.fetch_for_slave(key_ids=[key.key_id], slave_sae="B2")[0].key == key.key
    assert bob.counts()["delivered_to_slave"] == 1
    with pytest.raises(KeyNotFound, match="already delivered"):
        bob.fetch_for_slave(key_ids=[key.key_id], slave_sae="B2")
    assert bob.fetch_for_slave(key_ids=[key.key_id], slave_sae="B1")[0].key == key.key
    assert bob.counts()["erased"] == 1
    with pytest.raises(KeyNotFound):
        bob.fetch_for_slave(key_ids=[key.key_id], slave_sae="B1")


def test_master_site_does_not_serve_slaves(
    make_store: Callable[..., KeyStore], make_blocks: Blocks
) -> None:
    alice = make_store("alice")
    alice.import_blocks(make_blocks(1, 1024, seed=10))
    [key], _ = alice.reserve(number=1, size_bits=64, master_sae="A", slave_saes=["B"])
    with pytest.raises(KeyNotFound, match="peer KME"):
        alice.fetch_for_slave(key_ids=[key.key_id], slave_sae="B")


def test_accept_reservations_rules(
    make_store: Callable[..., KeyStore], make_blocks: Blocks
) -> None:
    alice, bob = make_store("alice"), make_store("bob")
    blocks = make_blocks(2, 1000, seed=11)
    alice.import_blocks(blocks)
    bob.import_blocks(blocks[:1])
    _, res = alice.reserve(number=2, size_bits=100, master_sae="A", slave_saes=["B"])
    bob.accept_reservations(res)
    bob.accept_reservations(res)  # idempotent
    assert bob.counts()["reserved"] == 2

    def make(**change: object) -> Reservation:
        fields = res[0].to_dict() | {"key_id": str(uuid.uuid4())} | change
        return Reservation.from_dict(fields)

    block_id = blocks[0].key_id
    with pytest.raises(KeyStoreError, match="outside the alice half"):
        bob.accept_reservations([make(offset_bits=450, size_bits=100)])
    with pytest.raises(KeyStoreError, match="overlaps key"):
        bob.accept_reservations([make(offset_bits=50, size_bits=10)])
    with pytest.raises(KeyStoreError, match="overlaps key"):  # within one batch
        bob.accept_reservations([make(offset_bits=300), make(offset_bits=350)])
    with pytest.raises(KeyStoreError, match="not stored at this site"):
        bob.accept_reservations([make(block_id=blocks[1].key_id)])
    with pytest.raises(KeyStoreError, match="other fields"):
        bob.accept_reservations([Reservation.from_dict(res[0].to_dict() | {"master_sae": "X"})])
    with pytest.raises(KeyStoreError, match="twice with different"):
        again = make(offset_bits=300)
        bob.accept_reservations([again, Reservation.from_dict(again.to_dict() | {"size_bits": 5})])
    good = make(offset_bits=300, block_id=block_id)
    with pytest.raises(KeyStoreError):  # all or nothing: `good` is not recorded either
        bob.accept_reservations([good, make(offset_bits=999)])
    assert bob.counts()["reserved"] == 2
    bob.accept_reservations([good])
    assert bob.counts()["reserved"] == 3


def test_accept_overlap_check_is_exact(
    make_store: Callable[..., KeyStore], make_blocks: Blocks
) -> None:
    # The bounded overlap check reads only the nearest key below the new ranges and the keys
    # that start inside them: every way of overlapping must still be refused.
    alice, bob = make_store("alice"), make_store("bob")
    blocks = make_blocks(1, 2000, seed=12)
    alice.import_blocks(blocks)
    bob.import_blocks(blocks)
    _, res = alice.reserve(number=1, size_bits=100, master_sae="A", slave_saes=["B"])

    def at(offset: int, size: int) -> Reservation:
        fields = res[0].to_dict() | {"key_id": str(uuid.uuid4())}
        return Reservation.from_dict(fields | {"offset_bits": offset, "size_bits": size})

    recorded = [at(100, 100), at(300, 50), at(600, 200)]  # out of order, with gaps
    bob.accept_reservations(recorded[1:])
    bob.accept_reservations(recorded[:1])
    refused = [
        [at(150, 10)],  # inside a key
        [at(90, 20)],  # reaches into a key from below
        [at(190, 20)],  # starts inside a key's tail
        [at(50, 500)],  # covers several keys
        [at(0, 10), at(340, 5)],  # the second one overlaps, far above the first
        [at(800, 10), at(799, 2)],  # overlaps a key below the lowest new offset... and a new one
        [at(0, 100), at(99, 2)],  # new ranges overlap each other
    ]
    for batch in refused:
        with pytest.raises(KeyStoreError, match="overlaps key"):
            bob.accept_reservations(batch)
    assert bob.counts()["reserved"] == 3
    fits = [at(0, 100), at(200, 100), at(350, 250), at(800, 200)]  # exactly the gaps
    bob.accept_reservations([*fits, *recorded])  # with a re-sent batch: idempotent
    assert bob.counts()["reserved"] == 7
    assert bob.counts()["peer_bits"] == 0


def test_outbox(make_store: Callable[..., KeyStore], make_blocks: Blocks) -> None:
    alice = make_store("alice")
    alice.import_blocks(make_blocks(1, 4096, seed=12))
    _, res1 = alice.reserve(number=2, size_bits=64, master_sae="A", slave_saes=["B"])
    _, res2 = alice.reserve(number=1, size_bits=64, master_sae="A", slave_saes=["C"])
    assert alice.pending_reservations() == res1 + res2
    assert alice.pending_reservations(limit=2) == res1
    alice.mark_reservations_synced([r.key_id for r in res1] + [str(uuid.uuid4())])
    assert alice.pending_reservations() == res2
    assert alice.counts()["unsynced"] == 1
    # acknowledgements ride along in a reservation's transaction
    _, res3 = alice.reserve(
        number=1, size_bits=64, master_sae="A", slave_saes=["C"], mark_synced=[res2[0].key_id]
    )
    assert alice.pending_reservations() == res3
    # ... and are not marked if that reservation fails
    with pytest.raises(NotEnoughKey):
        alice.reserve(
            number=99, size_bits=64, master_sae="A", slave_saes=["C"], mark_synced=[res3[0].key_id]
        )
    assert alice.pending_reservations() == res3


def test_reservation_round_trip_and_validation() -> None:
    res = Reservation(
        key_id=str(uuid.uuid4()),
        block_id=str(uuid.uuid4()),
        offset_bits=7,
        size_bits=256,
        master_sae="A",
        slave_saes=("B", "C"),
    )
    assert Reservation.from_dict(res.to_dict()) == res
    good = res.to_dict()
    bad: list[tuple[dict[str, object], str]] = [
        ({"key_id": "nope"}, "UUID"),
        ({"key_id": good["key_id"].upper()}, "canonical"),
        ({"offset_bits": -1}, "≥ 0"),
        ({"offset_bits": True}, "integer"),
        ({"size_bits": 0}, "positive"),
        ({"master_sae": ""}, "SAE ID"),
        ({"master_sae": "A\x00"}, "control characters"),
        ({"slave_saes": []}, "non-empty"),
        ({"slave_saes": "B"}, "list"),
        ({"slave_saes": ["B", "B"]}, "twice"),
        ({"extra": 1}, "unknown fields"),
    ]
    for change, match in bad:
        with pytest.raises(KeyStoreError, match=match):
            Reservation.from_dict(good | change)
    with pytest.raises(KeyStoreError, match="lacks block_id"):
        Reservation.from_dict({k: v for k, v in good.items() if k != "block_id"})
    with pytest.raises(KeyStoreError, match="JSON object"):
        Reservation.from_dict([])  # type: ignore[arg-type]


def test_argument_checks(make_store: Callable[..., KeyStore], make_blocks: Blocks) -> None:
    store = make_store("alice")
    store.import_blocks(make_blocks(1, 1024, seed=13))
    for kwargs, match in [
        ({"number": 0}, "number"),
        ({"size_bits": 0}, "size_bits"),
        ({"size_bits": True}, "size_bits"),
        ({"master_sae": ""}, "master_sae"),
        ({"slave_saes": []}, "at least one slave"),
        ({"slave_saes": "B"}, "not one string"),
    ]:
        args = {"number": 1, "size_bits": 8, "master_sae": "A", "slave_saes": ["B"]} | kwargs
        with pytest.raises(KeyStoreError, match=match):
            store.reserve(**args)  # type: ignore[arg-type]
    with pytest.raises(KeyStoreError, match="at least one key"):
        store.fetch_for_slave(key_ids=[], slave_sae="B")
    with pytest.raises(KeyStoreError, match="KeyBlock"):
        store.import_blocks(["nope"])  # type: ignore[list-item]
    with pytest.raises(KeyStoreError, match="site"):
        KeyStore("sqlite://", master_key=bytes(32), site="carol")  # type: ignore[arg-type]
    with pytest.raises(KeyStoreError, match="32 bytes"):
        KeyStore("sqlite://", master_key=b"short", site="alice")
    with pytest.raises(KeyStoreError, match="SQLite or PostgreSQL"):
        KeyStore("mysql://x/y", master_key=bytes(32), site="alice")
    with pytest.raises(KeyStoreError, match="psycopg"):
        KeyStore("postgresql+psycopg2://x/y", master_key=bytes(32), site="alice")
    with pytest.raises(KeyStoreError, match="not a SQLAlchemy URL"):
        KeyStore("::nonsense", master_key=bytes(32), site="alice")


def test_wrong_master_key_fails_clearly(
    store_url: str, make_store: Callable[..., KeyStore], make_blocks: Blocks
) -> None:
    make_store("alice").import_blocks(make_blocks(1, 512, seed=14))
    intruder = KeyStore(store_url, master_key=b"\x01" * 32, site="alice")
    try:
        for call in (
            intruder.counts,
            lambda: intruder.stored_key_count(8),
            lambda: intruder.reserve(number=1, size_bits=8, master_sae="A", slave_saes=["B"]),
        ):
            with pytest.raises(KeyStoreError, match="master key does not open") as info:
                call()
            assert "\x01" not in str(info.value)
        # The other site of the same database has its own master key.
        make_store("bob", key=b"\x02" * 32).import_blocks(make_blocks(1, 512, seed=15))
    finally:
        intruder.close()


def test_unmigrated_store_says_what_to_do(store_url: str, master_key: bytes) -> None:
    store = KeyStore(store_url, master_key=master_key, site="alice")
    try:
        with pytest.raises(KeyStoreError, match=r"migrate\(\)"):
            store.counts()
        store.migrate()
        store.migrate()  # idempotent
        assert store.counts()["blocks"] == 0
    finally:
        store.close()
    with pytest.raises(KeyStoreError, match="closed"):
        store.counts()


def test_unreachable_postgres_fails_clearly(master_key: bytes) -> None:
    store = KeyStore(
        "postgresql+psycopg://nobody:sesame@127.0.0.1:9/none?connect_timeout=2",
        master_key=master_key,
        site="alice",
    )
    with pytest.raises(KeyStoreError, match="cannot use the key store database") as info:
        store.migrate()
    assert "sesame" not in str(info.value)
    assert "***" in repr(store) and "sesame" not in repr(store)


def test_reprs_hide_secrets(make_store: Callable[..., KeyStore], make_blocks: Blocks) -> None:
    store = make_store("alice")
    store.import_blocks(make_blocks(1, 1024, seed=16))
    [key], [res] = store.reserve(number=1, size_bits=256, master_sae="A", slave_saes=["B"])
    assert "<secret>" in repr(key)
    assert key.key.hex() not in repr(key) and str(key.key) not in repr(key)
    assert key.key.hex() not in repr(res) + str(res.to_dict())
    assert isinstance(key, ServedKey)
    assert "site='alice'" in repr(store)
    assert issubclass(KeyStoreError, DiqkdError)


def test_open_default_creates_a_private_master_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_blocks: Blocks
) -> None:
    for var in ("DIQKD_MASTER_KEY", "DIQKD_MASTER_KEY_FILE", "XDG_DATA_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DIQKD_HOME", str(tmp_path / "home"))
    with KeyStore.open_default("bob") as store:
        assert store.import_blocks(make_blocks(1, 256, seed=17)) == 1
    key_file = tmp_path / "home" / "bob" / "master.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert (tmp_path / "home" / "bob" / "keystore.sqlite3").exists()
    with KeyStore.open_default("bob") as store:  # same key file: opens again
        assert store.counts()["blocks"] == 1

    # XDG_DATA_HOME, an explicit data_dir, and keys from the environment.
    monkeypatch.delenv("DIQKD_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    with KeyStore.open_default("alice") as store:
        assert store.counts()["blocks"] == 0
    assert (tmp_path / "xdg" / "diqkd" / "alice" / "master.key").exists()
    monkeypatch.setenv("DIQKD_MASTER_KEY", "ab" * 32)
    with KeyStore.open_default("alice", data_dir=tmp_path / "env") as store:
        assert store.counts()["blocks"] == 0
    assert not (tmp_path / "env" / "alice" / "master.key").exists()
    monkeypatch.setenv("DIQKD_MASTER_KEY", base64.b64encode(b"\xab" * 32).decode())
    with KeyStore.open_default("alice", data_dir=tmp_path / "env") as store:  # same key
        assert store.counts()["blocks"] == 0
    monkeypatch.setenv("DIQKD_MASTER_KEY", "not-a-key")
    with pytest.raises(KeyStoreError, match="DIQKD_MASTER_KEY is not 32 bytes"):
        KeyStore.open_default("alice", data_dir=tmp_path / "env")
    monkeypatch.delenv("DIQKD_MASTER_KEY")
    named = tmp_path / "named.key"
    named.write_text("cd" * 32 + "\n")
    monkeypatch.setenv("DIQKD_MASTER_KEY_FILE", str(named))
    with KeyStore.open_default("alice", data_dir=tmp_path / "named") as store:
        assert store.counts()["blocks"] == 0
    monkeypatch.setenv("DIQKD_MASTER_KEY_FILE", str(tmp_path / "missing.key"))
    with pytest.raises(KeyStoreError, match="cannot read the master key file"):
        KeyStore.open_default("alice", data_dir=tmp_path / "named")


def test_unfetched_reservations_expire(
    make_store: Callable[..., KeyStore], make_blocks: Blocks
) -> None:
    alice, bob = make_store("alice"), make_store("bob")
    blocks = make_blocks(1, 4096, seed=31)
    alice.import_blocks(blocks)
    bob.import_blocks(blocks)
    keys, res = alice.reserve(number=3, size_bits=256, master_sae="A", slave_saes=["B1", "B2"])
    bob.accept_reservations(res)
    bob.fetch_for_slave(key_ids=[keys[0].key_id], slave_sae="B1")  # one of two slaves
    bob.fetch_for_slave(key_ids=[keys[1].key_id], slave_sae="B1")
    bob.fetch_for_slave(key_ids=[keys[1].key_id], slave_sae="B2")  # both: erased already
    assert bob.expire_reservations(older_than_s=3600) == 0  # nothing that old
    assert bob.counts()["reserved"] == 1 and bob.counts()["delivered_to_slave"] == 1
    time.sleep(0.05)  # the store's clock has millisecond resolution
    assert bob.expire_reservations(older_than_s=0.01) == 2  # keys 0 (half fetched) and 2
    counts = bob.counts()
    assert (counts["erased"], counts["reserved"], counts["delivered_to_slave"]) == (3, 0, 0)
    assert counts["peer_bits"] == 2048 - 3 * 256  # expired keys do not return to the pool
    with pytest.raises(KeyNotFound, match="expired"):
        bob.fetch_for_slave(key_ids=[keys[2].key_id], slave_sae="B1")
    with pytest.raises(KeyNotFound, match="expired"):
        bob.fetch_for_slave(key_ids=[keys[0].key_id], slave_sae="B2")
    with pytest.raises(KeyNotFound, match="already delivered"):
        bob.fetch_for_slave(key_ids=[keys[0].key_id], slave_sae="B1")
    bob.accept_reservations(res)  # the peer sends them again: known IDs, no-op
    assert bob.counts()["erased"] == 3 and bob.counts()["reserved"] == 0
    assert bob.expire_reservations(older_than_s=0) == 0
    # the master's site holds no copy and nothing of its own expires
    assert alice.expire_reservations(older_than_s=0) == 0
    assert alice.counts()["delivered_to_master"] == 3


def test_expiry_works_in_batches_and_checks_its_arguments(
    make_store: Callable[..., KeyStore], make_blocks: Blocks
) -> None:
    alice, bob = make_store("alice"), make_store("bob")
    blocks = make_blocks(2, 4096, seed=32)
    alice.import_blocks(blocks)
    bob.import_blocks(blocks)
    _, res = alice.reserve(number=7, size_bits=128, master_sae="A", slave_saes=["B"])
    bob.accept_reservations(res)
    time.sleep(0.05)
    assert bob.expire_reservations(older_than_s=0.01, batch=3) == 7
    assert bob.counts()["erased"] == 7
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(KeyStoreError, match="older_than_s"):
            bob.expire_reservations(older_than_s=bad)
    for batch in (0, True):
        with pytest.raises(KeyStoreError, match="batch"):
            bob.expire_reservations(older_than_s=1.0, batch=batch)
