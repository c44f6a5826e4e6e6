"""Unfetched peer reservations expire: the service's background loop and its configuration."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from diqkd.kms.app import expire_reservations_loop
from diqkd.kms.config import StoreConfig
from diqkd.kms.runner import StoreRunner
from diqkd.kms.store import KeyStore
from diqkd.postproc.keys import KeyBlock

from .conftest import start_kme_pair, stop_kme_pair  # type: ignore[import-not-found]

KEYS = "/api/v1/keys"


async def _run_loop(runner: StoreRunner, ttl_s: float, seconds: float) -> None:
    task = asyncio.create_task(expire_reservations_loop(runner, ttl_s))
    await asyncio.sleep(seconds)
    assert not task.done()  # the loop runs until cancelled
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_the_loop_erases_old_reservations(
    make_store: Callable[..., KeyStore], make_blocks: Callable[..., list[KeyBlock]]
) -> None:
    alice, bob = make_store("alice"), make_store("bob")
    blocks = make_blocks(1, 4096, seed=41)
    alice.import_blocks(blocks)
    bob.import_blocks(blocks)
    _, res = alice.reserve(number=4, size_bits=256, master_sae="A", slave_saes=["B"])
    bob.accept_reservations(res)
    time.sleep(0.05)
    runner = StoreRunner(bob, threads=1)
    try:
        asyncio.run(_run_loop(runner, 0.01, 0.5))  # the first pass runs at once
    finally:
        runner.shutdown()
    assert bob.counts()["erased"] == 4 and bob.counts()["reserved"] == 0


class _BrokenStore:
    """A store whose expiry always fails, as a database that is away would."""

    def __init__(self) -> None:
        self.calls = 0

    def expire_reservations(self, *, older_than_s: float) -> int:
        self.calls += 1
        raise ConnectionError("database at 10.0.0.7 is away (secret detail)")


def test_a_failed_pass_is_logged_by_class_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = _BrokenStore()
    runner = StoreRunner(store, threads=0)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="diqkd.kms.app"):
        asyncio.run(_run_loop(runner, 0.01, 0.2))
    runner.shutdown()
    assert store.calls == 1  # one pass; the next comes after the 1 s floor of the interval
    assert "reservation expiry failed (ConnectionError)" in caplog.text
    assert "10.0.0.7" not in caplog.text


def test_reservation_ttl_setting() -> None:
    assert StoreConfig().reservation_ttl_s == 86_400.0
    assert StoreConfig(reservation_ttl_s=0).reservation_ttl_s == 0.0  # never
    for bad in (-1.0, float("inf"), float("nan")):
        with pytest.raises(ValidationError, match="reservation_ttl_s"):
            StoreConfig(reservation_ttl_s=bad)


def test_a_served_kme_expires_what_its_slave_never_fetched(tmp_path: Path) -> None:
    """End to end: two `diqkd kme serve` processes, KME-B with a one-second TTL."""
    pair = start_kme_pair(tmp_path, blocks=1, n_bits=65_536, store_options={"reservation_ttl_s": 1})
    try:
        master = pair.http("SAE-A", "KME-A")
        response = master.post(f"{KEYS}/SAE-B/enc_keys", json={"number": 2})
        assert response.status_code == 200, response.text
        ids = [k["key_ID"] for k in response.json()["keys"]]
        deadline = time.monotonic() + 30
        while pair.counts("bob")["erased"] < 2:  # synced, then erased a second or two later
            assert time.monotonic() < deadline, "KME-B never expired the unfetched keys"
            time.sleep(0.2)
        assert pair.counts("bob")["reserved"] == 0
        slave = pair.http("SAE-B", "KME-B")
        late = slave.post(f"{KEYS}/SAE-A/dec_keys", json={"key_IDs": [{"key_ID": ids[0]}]})
        assert late.status_code == 400, late.text  # gone, as a key already fetched would be
    finally:
        stop_kme_pair(pair)
