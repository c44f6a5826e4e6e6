"""Crash safety: ``kill -9`` a KME under load, restart it, account for every key.

Claims checked (docs/kms.md, "Why a crash cannot make a key usable twice"):

* no key ID and no key bits are ever handed to two enc_keys requests, before or after the crash;
* every key a master received is fetchable by its slave at the peer KME exactly once;
* no key is lost: at the master's site every allocated key is either delivered to a master SAE
  that got the answer, or was reserved for a request that was in flight when the KME died
  (at most one per client connection) or reserved ahead of demand (at most
  ``server.prefetch_keys`` for the one master/slave group), and the free bits are exactly the
  rest; every allocated key is known to the peer KME, so none can be allocated twice;
* the outbox: reservations that did not reach the peer before a crash (of either KME) are
  re-sent after the restart, so the peer's ledger catches up;
* while the peer is down, ``enc_keys`` answers 503 without reserving (no key is spent).
"""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from diqkd.kms.client import sae_ssl_context
from diqkd.kms.config import ServerConfig

from .conftest import (  # type: ignore[import-not-found]
    KmePair,
    fetch_all_once,
    start_kme_pair,
    stop_kme_pair,
)

KEYS = "/api/v1/keys"
CLIENTS = 8
PREFETCH = ServerConfig().prefetch_keys


class _Load:
    """``CLIENTS`` threads asking KME-A for one key each, back to back, until told to stop."""

    def __init__(self, pair: KmePair) -> None:
        dep = pair.deployment
        self.ctx = sae_ssl_context(cert=dep.cert("SAE-A"), key=dep.key("SAE-A"), ca=dep.ca)
        self.url = pair.url("KME-A")
        self.delivered: list[tuple[str, str]] = []
        self.other_status: list[int] = []
        self.failures = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(CLIENTS)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, verify=self.ctx, timeout=10) as http:
            while not self.stop.is_set():
                try:
                    response = http.post(f"{KEYS}/SAE-B/enc_keys", json={"number": 1})
                except httpx.HTTPError:
                    with self.lock:
                        self.failures += 1
                    time.sleep(0.01)
                    continue
                with self.lock:
                    if response.status_code == 200:
                        for key in response.json()["keys"]:
                            self.delivered.append((key["key_ID"], key["key"]))
                    else:
                        self.other_status.append(response.status_code)

    def __enter__(self) -> _Load:
        for t in self.threads:
            t.start()
        return self

    def wait_for(self, n: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.delivered) < n:
            assert time.monotonic() < deadline, f"only {len(self.delivered)} keys delivered"
            time.sleep(0.01)

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)


def _wait_synced(pair: KmePair, site: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while pair.counts(site)["unsynced"]:
        assert time.monotonic() < deadline, "the outbox was not re-sent"
        time.sleep(0.1)


@pytest.fixture
def crash_pair(tmp_path: Path) -> Any:
    # 4 blocks of 131,072 bits: 1,024 keys of 256 bits in alice's halves
    pair = start_kme_pair(tmp_path, blocks=4, n_bits=131_072)
    try:
        yield pair
    finally:
        stop_kme_pair(pair)


def test_kill_9_master_kme_under_load(crash_pair: KmePair) -> None:
    pair = crash_pair
    initial = pair.counts("alice")
    bits_per_key = 256
    with _Load(pair) as load:
        load.wait_for(150)
        pair.a.kill()  # kill -9, in the middle of reservations
        time.sleep(0.3)
        load.stop.set()
    delivered_before = list(load.delivered)
    pair.a.start()  # restart: the outbox is re-sent in the background
    _wait_synced(pair, "alice")

    # keep going after the restart: fresh keys only
    with _Load(pair) as load:
        load.wait_for(len(delivered_before) + 100)
    delivered = delivered_before + load.delivered
    ids = [kid for kid, _ in delivered]
    assert len(set(ids)) == len(ids), "a key ID was handed out twice"
    assert len({bits for _, bits in delivered}) == len(delivered), "key bits handed out twice"
    assert all(len(base64.b64decode(b)) == bits_per_key // 8 for _, b in delivered)

    _wait_synced(pair, "alice")
    after = pair.counts("alice")
    allocated = after["delivered_to_master"]
    in_flight = allocated - len(delivered)
    # every allocated key reached its master, except those of requests cut by the kill and
    # those reserved ahead (at most prefetch_keys for this one master/slave group)
    assert 0 <= in_flight <= CLIENTS + PREFETCH, (allocated, len(delivered))
    # and the free bits are exactly what was not allocated: nothing lost, nothing reused
    assert after["free_bits"] == initial["free_bits"] - allocated * bits_per_key
    # the peer knows every allocated key (its ledger caught up through the outbox)
    bob = pair.counts("bob")
    assert bob["reserved"] == allocated
    assert bob["peer_bits"] == initial["free_bits"] - allocated * bits_per_key
    # every key a master got is fetchable by its slave exactly once
    fetch_all_once(pair, delivered)


def test_kill_9_peer_kme_outbox_catches_up(crash_pair: KmePair) -> None:
    pair = crash_pair
    with _Load(pair) as load:
        load.wait_for(100)
        pair.b.kill()  # the peer dies: A cannot confirm reservations any more
        time.sleep(1.0)
        stuck = pair.counts("alice")["unsynced"]
        refused = len(load.other_status)
        time.sleep(0.5)
        # while the peer is known to be down, A refuses before reserving: no key is spent
        assert pair.counts("alice")["unsynced"] == stuck
        assert len(load.other_status) > refused
        load.stop.set()
    assert set(load.other_status) <= {503}  # A refuses to reserve while its peer is down
    assert load.other_status, "A answered while its peer was dead"
    assert stuck >= 1  # the reservations of the refused requests wait in the outbox
    pair.b.start()
    _wait_synced(pair, "alice")
    bob = pair.counts("bob")
    alice = pair.counts("alice")
    assert bob["reserved"] == alice["delivered_to_master"]
    fetch_all_once(pair, load.delivered)


def test_slave_pulls_a_reservation_whose_forwarding_was_lost(tmp_path: Path) -> None:
    """A key handed to a master while its peer was down reaches the peer by the peer's pull.

    KME-A re-sends its outbox only every 300 s here, so after KME-B comes back the only way
    for B to learn the reservation in time is to ask A when the slave names the key.
    """
    pair = start_kme_pair(tmp_path, blocks=2, n_bits=65_536, peer_options={"retry_interval_s": 300})
    try:
        pair.b.kill()
        master = pair.http("SAE-A", "KME-A")
        response = master.post(f"{KEYS}/SAE-B/enc_keys", json={"number": 2})
        assert response.status_code == 200, response.text  # A did not know B was down yet
        keys = [(k["key_ID"], k["key"]) for k in response.json()["keys"]]
        deadline = time.monotonic() + 30
        while master.post(f"{KEYS}/SAE-B/enc_keys", json={}).status_code != 503:
            assert time.monotonic() < deadline, "A never noticed that its peer is down"
            time.sleep(0.05)
        assert pair.counts("alice")["unsynced"] >= 2
        pair.b.start()
        assert pair.counts("bob")["reserved"] == 0  # B knows nothing of A's reservations
        # the slave asks B: B pulls the reservation from A and serves the same key, once
        fetch_all_once(pair, keys)
        # and the pull told A that its peer is back: A reserves again without waiting 300 s
        deadline = time.monotonic() + 10
        while master.post(f"{KEYS}/SAE-B/enc_keys", json={}).status_code != 200:
            assert time.monotonic() < deadline, "A stayed unavailable after its peer called"
            time.sleep(0.05)
    finally:
        stop_kme_pair(pair)
