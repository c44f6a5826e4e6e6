"""50 concurrent clients × 200 requests against two running KMEs: every key once, counts add up.

Each client is a master/slave pair of SAEs doing 50 rounds of four requests (200 in all):
``status`` at the master's KME and at the slave's, ``enc_keys`` at the master's KME, then
``dec_keys`` of that key at the slave's KME. Masters sit at both
sites (KME-A's SAEs for slaves at KME-B and the reverse), so both directions of the KME-to-KME
channel carry reservations at the same time.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from diqkd.kms.client import sae_ssl_context
from diqkd.kms.config import ServerConfig

from .conftest import KmePair, start_kme_pair, stop_kme_pair  # type: ignore[import-not-found]

KEYS = "/api/v1/keys"
CLIENTS = 50
REQUESTS = 200
SIZE = 256
PREFETCH = ServerConfig().prefetch_keys
# (master SAE, its KME, slave SAE); clients take these in turn
ROLES = [
    ("SAE-A", "KME-A", "SAE-B"),
    ("SAE-C", "KME-B", "SAE-A"),
    ("SAE-A2", "KME-A", "SAE-C"),
    ("SAE-D", "KME-B", "SAE-A2"),
]


async def _client(pair: KmePair, role: tuple[str, str, str]) -> list[tuple[str, str, str]]:
    """One master/slave pair of SAEs: enc_keys at the master's KME, dec_keys at the slave's."""
    master, kme, slave = role
    peer = "KME-B" if kme == "KME-A" else "KME-A"
    dep = pair.deployment
    master_ctx = sae_ssl_context(cert=dep.cert(master), key=dep.key(master), ca=dep.ca)
    slave_ctx = sae_ssl_context(cert=dep.cert(slave), key=dep.key(slave), ca=dep.ca)
    got: list[tuple[str, str, str]] = []
    async with (
        httpx.AsyncClient(base_url=pair.url(kme), verify=master_ctx, timeout=60) as m,
        httpx.AsyncClient(base_url=pair.url(peer), verify=slave_ctx, timeout=60) as s,
    ):
        for _ in range(REQUESTS // 4):
            response = await m.get(f"{KEYS}/{slave}/status")
            assert response.status_code == 200, response.text
            assert response.json()["master_SAE_ID"] == master
            response = await s.get(f"{KEYS}/{master}/status")
            assert response.status_code == 200, response.text
            response = await m.post(f"{KEYS}/{slave}/enc_keys", json={"size": SIZE})
            assert response.status_code == 200, response.text
            (key,) = response.json()["keys"]
            response = await s.get(f"{KEYS}/{master}/dec_keys", params={"key_ID": key["key_ID"]})
            assert response.status_code == 200, response.text
            assert response.json()["keys"] == [key]  # same ID, same bits at the slave
            got.append((key["key_ID"], key["key"], kme))
    return got


async def _run(pair: KmePair) -> list[tuple[str, str, str]]:
    results = await asyncio.gather(*(_client(pair, ROLES[i % len(ROLES)]) for i in range(CLIENTS)))
    return [key for client in results for key in client]


def _counts(pair: KmePair, site: str) -> dict[str, int]:
    store = pair.deployment.open_store(site)
    try:
        return {**store.counts(), "stored": store.stored_key_count(SIZE)}
    finally:
        store.close()


@pytest.fixture
def busy_pair(tmp_path: Path) -> Any:
    # 12 blocks of 65,536 bits: 1,536 keys of 256 bits per site, 1,250 are taken per site
    pair = start_kme_pair(tmp_path, blocks=12, n_bits=1 << 16)
    try:
        yield pair
    finally:
        stop_kme_pair(pair)


@pytest.mark.slow
def test_50_clients_200_requests_each(busy_pair: KmePair) -> None:
    pair = busy_pair
    before = {site: _counts(pair, site) for site in ("alice", "bob")}
    started = time.perf_counter()
    keys = asyncio.run(_run(pair))
    elapsed = time.perf_counter() - started
    assert len(keys) == CLIENTS * REQUESTS // 4
    ids = [k for k, _, _ in keys]
    assert len(set(ids)) == len(ids), "a key ID was delivered to two requests"
    assert len({bits for _, bits, _ in keys}) == len(keys), "key bits delivered twice"
    for site in ("alice", "bob"):  # forwarding runs in the background: wait for the outbox
        _wait_synced(pair, site)
    after = {site: _counts(pair, site) for site in ("alice", "bob")}
    for site, peer, kme in (("alice", "bob", "KME-A"), ("bob", "alice", "KME-B")):
        served = sum(1 for *_, k in keys if k == kme)
        allocated = after[site]["delivered_to_master"]
        # keys reserved ahead and not yet handed out: at most prefetch_keys per group (two
        # master/slave groups per site)
        ahead = allocated - served
        assert 0 <= ahead <= 2 * PREFETCH, (allocated, served)
        assert before[site]["stored"] - after[site]["stored"] == allocated
        assert before[site]["free_bits"] - after[site]["free_bits"] == allocated * SIZE
        assert after[site]["unsynced"] == 0
        # the peer recorded every reservation; each key served was fetched once (erased), the
        # keys reserved ahead wait there for a master that has not received them yet
        assert after[peer]["erased"] == served
        assert after[peer]["reserved"] == ahead
        assert after[peer]["delivered_to_slave"] == 0
    print(f"{4 * len(keys)} requests in {elapsed:.1f} s ({4 * len(keys) / elapsed:.0f}/s)")


def _wait_synced(pair: KmePair, site: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while _counts(pair, site)["unsynced"]:
        assert time.monotonic() < deadline, f"{site}'s reservations did not reach the peer"
        time.sleep(0.1)
