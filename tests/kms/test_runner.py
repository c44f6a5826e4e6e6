"""Coalesced reservations: alike concurrent requests share a transaction, each gets its own keys."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from diqkd.kms.runner import ReserveRequest, StoreRunner
from diqkd.kms.store import NotEnoughKey, Reservation, ServedKey


class _CountingStore:
    """Hands out ``available`` keys; records each reserve call (a stand-in for a transaction)."""

    def __init__(self, available: int) -> None:
        self.available = available
        self.calls: list[int] = []
        self.lock = threading.Lock()

        self.synced: list[str] = []
        self.separate_marks = 0

    def reserve(
        self,
        *,
        number: int,
        size_bits: int,
        master_sae: str,
        slave_saes: Sequence[str],
        mark_synced: Sequence[str] = (),
    ) -> tuple[list[ServedKey], list[Reservation]]:
        time.sleep(0.02)  # a transaction takes a while: requests queue up meanwhile
        with self.lock:
            self.calls.append(number)
            if number > self.available:
                raise NotEnoughKey(f"{self.available} left")
            self.available -= number
            self.synced.extend(mark_synced)
        keys, reservations = [], []
        for _ in range(number):
            kid = str(uuid.uuid4())
            keys.append(ServedKey(key_id=kid, key=bytes(size_bits // 8), size_bits=size_bits))
            reservations.append(
                Reservation(
                    key_id=kid,
                    block_id=str(uuid.uuid4()),
                    offset_bits=0,
                    size_bits=size_bits,
                    master_sae=master_sae,
                    slave_saes=tuple(slave_saes),
                )
            )
        return keys, reservations

    def mark_reservations_synced(self, key_ids: Sequence[str]) -> None:
        with self.lock:
            self.separate_marks += 1
            self.synced.extend(key_ids)


async def _many(runner: StoreRunner, requests: list[ReserveRequest]) -> list[Any]:
    return await asyncio.gather(*(runner.reserve(r) for r in requests), return_exceptions=True)


def test_alike_requests_share_transactions_and_get_distinct_keys() -> None:
    store = _CountingStore(available=1000)
    runner = StoreRunner(store, threads=1)  # type: ignore[arg-type]
    requests = [ReserveRequest(2, 256, "SAE-A", ("SAE-B",)) for _ in range(40)]
    try:
        results = asyncio.run(_many(runner, requests))
    finally:
        runner.shutdown()
    ids = [k.key_id for keys, _ in results for k in keys]
    assert len(ids) == len(set(ids)) == 80
    for keys, reservations in results:
        assert [r.key_id for r in reservations] == [k.key_id for k in keys]
    assert len(store.calls) < 40  # coalesced
    assert sum(store.calls) == 80


def test_different_groups_are_not_mixed() -> None:
    store = _CountingStore(available=1000)
    runner = StoreRunner(store, threads=1)  # type: ignore[arg-type]
    requests = [ReserveRequest(1, 256 if i % 2 else 512, "SAE-A", ("SAE-B",)) for i in range(10)]
    try:
        results = asyncio.run(_many(runner, requests))
    finally:
        runner.shutdown()
    for request, (keys, reservations) in zip(requests, results, strict=True):
        assert all(k.size_bits == request.size_bits for k in keys)
        assert all(r.slave_saes == ("SAE-B",) for r in reservations)


@pytest.mark.parametrize("threads", [0, 1])
def test_shortage_serves_as_many_as_possible(threads: int) -> None:
    store = _CountingStore(available=5)
    runner = StoreRunner(store, threads=threads)  # type: ignore[arg-type]
    requests = [ReserveRequest(1, 256, "SAE-A", ("SAE-B",)) for _ in range(8)]
    try:
        results = asyncio.run(_many(runner, requests))
    finally:
        runner.shutdown()
    served = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, NotEnoughKey)]
    assert len(served) == 5 and len(refused) == 3
    assert store.available == 0


@pytest.mark.parametrize("threads", [0, 1])
def test_acknowledgements_ride_along_or_are_written_alone(threads: int) -> None:
    store = _CountingStore(available=3)
    runner = StoreRunner(store, threads=threads)  # type: ignore[arg-type]
    request = ReserveRequest(1, 256, "SAE-A", ("SAE-B",))

    async def scenario() -> None:
        first = asyncio.ensure_future(runner.reserve(request))
        await asyncio.sleep(0)
        runner.mark_synced_soon(["k1", "k2"])  # queued behind a running reservation
        await first
        await runner.reserve(request)  # carries k1, k2 (or they went alone just before)
        runner.mark_synced_soon(["k3"])  # nothing else waits: written on its own
        for _ in range(100):
            if "k3" in store.synced:
                break
            await asyncio.sleep(0.01)
        runner.mark_synced_soon(["k4"])
        with pytest.raises(NotEnoughKey):  # fails: k4 must still be written
            await runner.reserve(ReserveRequest(5, 256, "SAE-A", ("SAE-B",)))
        for _ in range(100):
            if "k4" in store.synced:
                break
            await asyncio.sleep(0.01)

    try:
        asyncio.run(scenario())
    finally:
        runner.shutdown()
    assert sorted(store.synced) == ["k1", "k2", "k3", "k4"]
    assert store.separate_marks <= 3


def test_reserving_ahead_serves_from_stock_after_forwarding() -> None:
    """Under sustained load a group's keys come from a stock of committed reservations.

    Every key a request gets was handed to ``on_reserved`` (the forwarder) before the request
    got it; keys stay distinct; far fewer transactions than requests; the stock never exceeds
    ``prefetch``; at shutdown the stock is dropped (spent).
    """
    store = _CountingStore(available=100_000)
    forwarded: set[str] = set()
    runner = StoreRunner(
        store,  # type: ignore[arg-type]
        threads=1,
        prefetch=64,
        on_reserved=lambda rs: forwarded.update(r.key_id for r in rs),
    )
    request = ReserveRequest(1, 256, "SAE-A", ("SAE-B",))
    got: list[str] = []

    async def client(stop: float) -> None:
        while time.monotonic() < stop:
            keys, reservations = await runner.reserve(request)
            assert [k.key_id for k in keys] == [r.key_id for r in reservations]
            assert all(k.key_id in forwarded for k in keys), "handed out before forwarding"
            got.extend(k.key_id for k in keys)
            assert runner.stocked(256, "SAE-A", ("SAE-B",)) <= 64

    async def scenario() -> None:
        stop = time.monotonic() + 1.0
        await asyncio.gather(*(client(stop) for _ in range(8)))

    try:
        asyncio.run(scenario())
    finally:
        runner.shutdown()
    assert len(got) == len(set(got)) > 200
    # each transaction takes 20 ms: without the stock ≤ 50 transactions could serve ≤ 400
    # requests of 8 clients one key each; with it most requests need none
    assert len(store.calls) < len(got) / 4, (len(store.calls), len(got))
    assert max(store.calls) <= 8 + 64
    assert runner.stocked(256, "SAE-A", ("SAE-B",)) == 0  # dropped at shutdown
    assert len(forwarded) == sum(store.calls)  # every committed key was forwarded


def test_no_stock_without_prefetch() -> None:
    store = _CountingStore(available=1000)
    runner = StoreRunner(store, threads=1, prefetch=0)  # type: ignore[arg-type]
    requests = [ReserveRequest(1, 256, "SAE-A", ("SAE-B",)) for _ in range(30)]
    try:
        results = asyncio.run(_many(runner, requests))
    finally:
        runner.shutdown()
    assert sum(store.calls) == 30  # nothing reserved beyond the requests
    assert len({k.key_id for keys, _ in results for k in keys}) == 30
