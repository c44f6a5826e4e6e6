"""The key store under concurrency and crashes: no key or bit handed out twice, none lost.

Threads share one store or open their own; processes open the same database; one process is
killed with SIGKILL in the middle of its load. Both databases.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import create_engine, text

from diqkd.kms.store import KeyNotFound, KeyStore, NotEnoughKey, Reservation, ServedKey
from diqkd.postproc.keys import KeyBlock

Blocks = Callable[..., list[KeyBlock]]

# A reserving client in its own process: prints each reservation (and the key, hex: test data
# only) as one JSON line as soon as reserve() has returned.
WORKER = r"""
import json, os, sys
from diqkd.kms.store import KeyStore, NotEnoughKey
url, site, calls, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
store = KeyStore(url, master_key=bytes.fromhex(os.environ["STORE_TEST_KEY"]), site=site)
store.counts()
print(json.dumps({"ready": True}), flush=True)
i = 0
while calls == 0 or i < calls:
    try:
        keys, res = store.reserve(
            number=1 + i % 3, size_bits=size, master_sae="A", slave_saes=["B"]
        )
    except NotEnoughKey:
        print(json.dumps({"short": True}), flush=True)
    else:
        for k, r in zip(keys, res):
            print(json.dumps(r.to_dict() | {"key": k.key.hex()}), flush=True)
    i += 1
"""


def _check_keys(
    blocks: list[KeyBlock], keys: list[ServedKey], res: list[Reservation]
) -> Counter[str]:
    """No key ID twice, no bit twice, and each key is exactly its bits; bits used per block."""
    assert len({k.key_id for k in keys}) == len(keys)
    by_id = {b.key_id: b.bits() for b in blocks}
    used: dict[str, np.ndarray[Any, np.dtype[np.uint8]]] = {
        b.key_id: np.zeros(b.n_bits, np.uint8) for b in blocks
    }
    for key, r in zip(keys, res, strict=True):
        assert key.key_id == r.key_id
        span = slice(r.offset_bits, r.offset_bits + r.size_bits)
        used[r.block_id][span] += 1
        assert key.key == np.packbits(by_id[r.block_id][span]).tobytes()
    assert all(u.max(initial=0) <= 1 for u in used.values()), "a bit was handed out twice"
    return Counter({bid: int(u.sum()) for bid, u in used.items()})


def test_threads_never_share_a_key(
    make_store: Callable[..., KeyStore], make_blocks: Blocks
) -> None:
    shared = make_store("alice")
    own = [make_store("alice") for _ in range(4)]  # half the threads open their own store
    blocks = make_blocks(4, 2 * 3000, seed=31)  # 4 x 3000 free bits; demand exceeds it
    shared.import_blocks(blocks)
    keys: list[ServedKey] = []
    res: list[Reservation] = []
    shorts: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def client(t: int) -> None:
        store = shared if t % 2 else own[t // 2]
        start.wait()
        for i in range(30):
            try:
                k, r = store.reserve(
                    number=1 + (i + t) % 3, size_bits=64 + 8 * t, master_sae="A", slave_saes=["B"]
                )
            except NotEnoughKey:
                with lock:
                    shorts.append(t)
                continue
            with lock:
                keys.extend(k)
                res.extend(r)

    threads = [threading.Thread(target=client, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    used = _check_keys(blocks, keys, res)
    assert shorts, "the load should have run the store dry"
    counts = shared.counts()
    assert counts["delivered_to_master"] == len(keys)
    assert counts["free_bits"] + sum(used.values()) == 4 * 3000
    assert counts["unsynced"] == len(keys)


def test_concurrent_slaves_get_each_key_once(
    make_store: Callable[..., KeyStore], make_blocks: Blocks
) -> None:
    alice, bob = make_store("alice"), make_store("bob")
    blocks = make_blocks(2, 8192, seed=32)
    alice.import_blocks(blocks)
    bob.import_blocks(blocks)
    keys, res = alice.reserve(number=40, size_bits=128, master_sae="A", slave_saes=["B"])
    bob.accept_reservations(res)
    got: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def slave(t: int) -> None:
        start.wait()
        for i in range(t % 5, 40, 2):  # threads ask for overlapping keys, in varying order
            try:
                [k] = bob.fetch_for_slave(key_ids=[keys[i].key_id], slave_sae="B")
            except KeyNotFound:
                continue
            assert k.key == keys[i].key
            with lock:
                got.append(k.key_id)

    threads = [threading.Thread(target=slave, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(got) == len(set(got)) == 40
    assert bob.counts()["erased"] == 40


def _spawn(url: str, key: bytes, calls: int, size: int) -> subprocess.Popen[str]:
    env = os.environ | {"STORE_TEST_KEY": key.hex()}
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, url, "alice", str(calls), str(size)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def _parse(lines: list[str]) -> tuple[list[ServedKey], list[Reservation]]:
    keys, res = [], []
    for line in lines:
        doc = json.loads(line)
        if "key" in doc:
            key_hex = doc.pop("key")
            r = Reservation.from_dict(doc)
            res.append(r)
            keys.append(
                ServedKey(key_id=r.key_id, key=bytes.fromhex(key_hex), size_bits=r.size_bits)
            )
    return keys, res


def _stored_keys(url: str) -> dict[str, tuple[str, int, int, str]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT k.key_id, b.block_id, k.offset_bits, k.size_bits, k.state "
                    "FROM kms_keys k JOIN kms_blocks b ON b.id = k.block_pk "
                    "WHERE k.site = 'alice'"
                )
            ).all()
    finally:
        engine.dispose()
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


def test_processes_never_share_a_key(
    store_url: str, master_key: bytes, make_store: Callable[..., KeyStore], make_blocks: Blocks
) -> None:
    store = make_store("alice")
    blocks = make_blocks(3, 2 * 2048, seed=33)
    store.import_blocks(blocks)
    procs = [_spawn(store_url, master_key, 25, 64) for _ in range(2)]
    outputs = [p.communicate(timeout=120)[0].splitlines() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    keys, res = _parse([line for out in outputs for line in out])
    used = _check_keys(blocks, keys, res)
    stored = _stored_keys(store_url)
    assert set(stored) == {k.key_id for k in keys}
    assert store.counts()["free_bits"] + sum(used.values()) == 3 * 2048


def test_kill_9_loses_and_duplicates_nothing(
    store_url: str, master_key: bytes, make_store: Callable[..., KeyStore], make_blocks: Blocks
) -> None:
    store = make_store("alice")
    blocks = make_blocks(4, 2 * 40_000, seed=34)
    store.import_blocks(blocks)
    store.close()
    proc = _spawn(store_url, master_key, 0, 96)
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline()) == {"ready": True}
    time.sleep(1.0)  # let it reserve under load, then kill it without warning
    os.kill(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    printed_keys, printed = _parse(out.splitlines()[:-1])  # the last line may be cut short
    assert len(printed) > 5, "the worker should have reserved keys before it was killed"

    # Reopen: every answered key is recorded as delivered, each bit is in at most one key, and
    # every bit not in a key is still available (none lost).
    reopened = make_store("alice")
    stored = _stored_keys(store_url)
    for r in printed:
        assert stored[r.key_id] == (r.block_id, r.offset_bits, r.size_bits, "delivered_to_master")
    assert len(stored) - len(printed) <= 3 + 3  # committed but not (fully) printed: last calls
    all_res = [
        Reservation(
            key_id=kid,
            block_id=bid,
            offset_bits=off,
            size_bits=size,
            master_sae="A",
            slave_saes=("B",),
        )
        for kid, (bid, off, size, _) in stored.items()
    ]
    used = Counter[str]()
    end: dict[str, int] = {}
    for r in sorted(all_res, key=lambda r: (r.block_id, r.offset_bits)):
        assert r.offset_bits >= end.get(r.block_id, 0), "two stored keys overlap"
        end[r.block_id] = r.offset_bits + r.size_bits
        used[r.block_id] += r.size_bits
    counts = reopened.counts()
    assert counts["delivered_to_master"] == len(stored)
    assert counts["free_bits"] + sum(used.values()) == 4 * 40_000
    printed_ids = {k.key_id for k in printed_keys}
    _check_keys(blocks, printed_keys, printed)
    # Fresh keys after the restart never repeat an old one.
    more, more_res = reopened.reserve(number=20, size_bits=96, master_sae="A", slave_saes=["B"])
    assert not {k.key_id for k in more} & set(stored)
    occupied = {(r.block_id, o) for r in all_res for o in range(r.offset_bits, r.offset_bits + 96)}
    assert not any((r.block_id, r.offset_bits) in occupied for r in more_res)
    assert printed_ids <= set(stored)


def test_concurrent_migrate_and_import(
    store_url: str, master_key: bytes, make_blocks: Blocks
) -> None:
    stores = [KeyStore(store_url, master_key=master_key, site="bob") for _ in range(4)]
    blocks = make_blocks(3, 4096, seed=35)
    added: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(stores))

    def run(store: KeyStore) -> None:
        start.wait()
        try:
            store.migrate()
            added.append(store.import_blocks(blocks))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors
        assert sum(added) == 3
        assert stores[0].counts()["blocks"] == 3
    finally:
        for s in stores:
            s.close()
