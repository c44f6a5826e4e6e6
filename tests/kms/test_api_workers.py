"""A KME served by several worker processes (``server.workers = 2``) keeps every guarantee.

Real ``diqkd kme serve`` processes over real TLS: keys served by either worker are distinct and
reach the slave exactly once; ``kill -9`` of the KME's parent process takes its workers down
with it (a crash of the KME is a crash of all its processes), and after the restart the
accounting of the crash test holds with the stock of each worker.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from diqkd.kms.config import ServerConfig

from .conftest import (  # type: ignore[import-not-found]
    KmePair,
    fetch_all_once,
    start_kme_pair,
    stop_kme_pair,
)

KEYS = "/api/v1/keys"
WORKERS = 2
CLIENTS = 6
PREFETCH = ServerConfig().prefetch_keys


def _children(pid: int) -> list[int]:
    """PIDs of the live processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _load(pair: KmePair, per_client: int) -> list[tuple[str, str]]:
    """``CLIENTS`` threads, each with its own connection (spread over the workers)."""
    got: list[tuple[str, str]] = []
    lock = threading.Lock()
    errors: list[str] = []

    def run() -> None:
        http = pair.http("SAE-A", "KME-A")
        for _ in range(per_client):
            response = http.post(f"{KEYS}/SAE-B/enc_keys", json={"number": 2})
            if response.status_code != 200:
                errors.append(response.text)
                return
            with lock:
                got.extend((k["key_ID"], k["key"]) for k in response.json()["keys"])

    threads = [threading.Thread(target=run) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]
    return got


@pytest.fixture
def workers_pair(tmp_path: Path) -> Any:
    pair = start_kme_pair(tmp_path, blocks=4, n_bits=131_072, server={"workers": WORKERS})
    try:
        yield pair
    finally:
        stop_kme_pair(pair)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_two_workers_serve_distinct_keys_and_die_with_their_parent(workers_pair: KmePair) -> None:
    pair = workers_pair
    assert pair.a.process is not None
    parent = pair.a.process.pid
    workers = _children(parent)
    assert len(workers) >= WORKERS, workers  # (multiprocessing may add a helper process)

    initial = pair.counts("alice")
    keys = _load(pair, per_client=30)
    ids = [kid for kid, _ in keys]
    assert len(set(ids)) == len(ids) == CLIENTS * 30 * 2, "a key ID was handed out twice"
    assert len({bits for _, bits in keys}) == len(keys), "key bits handed out twice"
    assert all(len(base64.b64decode(b)) == 32 for _, b in keys)
    fetch_all_once(pair, keys)

    # kill -9 the KME (its parent process): the kernel takes the workers down with it
    pair.a.kill()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "a worker outlived its parent"
        time.sleep(0.05)
    assert os.getpid() != parent

    pair.a.start()  # the same port again: nothing of the old KME holds it
    more = _load(pair, per_client=10)
    assert not {kid for kid, _ in more} & set(ids), "a key came back after the restart"
    fetch_all_once(pair, more)

    deadline = time.monotonic() + 30
    while pair.counts("alice")["unsynced"]:
        assert time.monotonic() < deadline, "the outbox was not re-sent"
        time.sleep(0.1)
    alice, bob = pair.counts("alice"), pair.counts("bob")
    allocated = alice["delivered_to_master"]
    delivered = len(keys) + len(more)
    # every allocated key went to a master, or was reserved ahead by a worker (before or
    # after the kill; at most prefetch_keys per worker each time) — and B knows every one
    assert 0 <= allocated - delivered <= 2 * WORKERS * PREFETCH, (allocated, delivered)
    assert initial["free_bits"] - alice["free_bits"] == allocated * 256
    assert bob["erased"] == delivered
    assert bob["reserved"] == allocated - delivered
