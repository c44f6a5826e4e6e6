"""Run blocking key-store calls off the event loop, and coalesce concurrent reservations.

The store is synchronous (SQLAlchemy) and every state change is a durable transaction. All
store calls of a KME process go through one :class:`StoreRunner`: a small thread pool (one
thread for SQLite, whose writers are serialised anyway), so the event loop keeps accepting TLS
connections and parsing requests while a transaction commits.

Concurrent ``enc_keys`` requests that ask for the same key size for the same master and slaves
are *coalesced*: while one reservation transaction runs, the requests that arrive queue up, and
the next transaction reserves all their keys at once and splits them. Each request still gets
its own fresh keys (the store hands out every key once); only the number of commits (and
``fsync``) per request falls. If a coalesced reservation fails for lack of keys, the requests of
that group are retried one by one, so that as many as possible are served.

**Reserving ahead** (``prefetch`` > 0): under sustained load a group's transaction reserves
more keys than its waiting requests need, and keeps the rest in memory as a *stock* from which
the next requests of that group are answered without any store call. The stock is sized to the
group's recent demand (the keys it asked for in the last :data:`HORIZON_S`, at most
``prefetch``) and topped up in the background whenever it is below that, at most
:data:`REFILL_MAX_KEYS` keys per transaction; at low load it is empty and every request has
its own (shared) transaction. A stocked key is reserved for its
master and slaves in the store, durably, and forwarded to the peer KME *before* any master gets
it, exactly like a key that was just handed out: what changes is only when the master is
answered. So a crash or a shutdown can never make a stocked key usable twice; it spends the
keys in stock (never reused, never delivered), at most ``prefetch`` per group — about
:data:`HORIZON_S` of demand. Every reservation the runner commits goes to ``on_reserved`` (the
KME-to-KME forwarder) as soon as it is committed.

The peer's acknowledgements of reservations (:meth:`StoreRunner.mark_synced_soon`) ride along
in the next reservation transaction instead of costing a commit of their own; when no
reservation is waiting they are written on their own. Marking synced is bookkeeping: if it is
lost (a crash), the outbox is sent again and the peer ignores what it already has.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from diqkd.kms.store import KeyStore, NotEnoughKey, Reservation, ServedKey

log = logging.getLogger(__name__)

__all__ = ["ACK_DELAY_S", "HORIZON_S", "REFILL_MAX_KEYS", "ReserveRequest", "StoreRunner"]

T = TypeVar("T")

Reserved = tuple[list[ServedKey], list[Reservation]]
Group = tuple[int, str, tuple[str, ...]]

#: The stock of a group holds about the keys it asked for in this many seconds.
HORIZON_S = 0.1
#: Most keys one transaction reserves ahead: the stock is topped up by many small
#: transactions rather than a few large ones, so that no single transaction (nor the
#: forwarding of its reservations, nor the peer's recording of them) holds the store, the
#: GIL or a core for long. Measured (benchmarks/bench_kms.py, 8 and 16 connections): p99
#: 13 and 23 ms with 128, against 19–20 and 31–33 ms with refills of up to the whole stock.
REFILL_MAX_KEYS = 128
#: Acknowledgements wait this long for a reservation transaction to ride along with.
ACK_DELAY_S = 0.5


@dataclass(frozen=True)
class ReserveRequest:
    """What one enc_keys call asks the store for."""

    number: int
    size_bits: int
    master_sae: str
    slave_saes: tuple[str, ...]

    @property
    def group(self) -> Group:
        """Requests with the same group may share one reservation transaction."""
        return (self.size_bits, self.master_sae, self.slave_saes)


@dataclass
class _Pending:
    request: ReserveRequest
    future: asyncio.Future[Reserved] = field(repr=False)


@dataclass
class _Stock:
    """Committed reservations of one group not yet handed out, and the group's demand."""

    keys: list[ServedKey] = field(default_factory=list, repr=False)
    reservations: list[Reservation] = field(default_factory=list, repr=False)
    target: int = 0
    window_start: float = 0.0
    window_keys: int = 0

    def take(self, n: int) -> Reserved:
        keys, self.keys = self.keys[:n], self.keys[n:]
        reservations, self.reservations = self.reservations[:n], self.reservations[n:]
        return keys, reservations


class StoreRunner:
    """Executes store calls on dedicated threads; coalesces reservations; reserves ahead.

    Parameters
    ----------
    store
        The site's key store (thread-safe).
    threads
        Worker threads for store calls (``1`` suits SQLite; ``0`` runs them on the event loop's
        thread, which saves the thread hand-offs but blocks the loop during a transaction).
    coalesce
        Whether concurrent reservations of the same group share one transaction.
    prefetch
        Most keys per group reserved ahead of demand (``0``: none; needs ``coalesce``).
    on_reserved
        Called on the event loop with every batch of reservations as soon as it is committed
        (before any of its keys is handed out).
    """

    def __init__(
        self,
        store: KeyStore,
        *,
        threads: int = 1,
        coalesce: bool = True,
        prefetch: int = 0,
        on_reserved: Callable[[Sequence[Reservation]], None] | None = None,
    ) -> None:
        self.store = store
        self._inline = threads == 0
        self._executor = ThreadPoolExecutor(
            max_workers=max(threads, 1), thread_name_prefix="kme-store"
        )
        self._coalesce = coalesce
        self._prefetch = prefetch if coalesce else 0
        self.on_reserved = on_reserved
        self._queue: list[_Pending] = []
        self._acks: list[str] = []
        self._refill: set[Group] = set()
        self._ack_timer: asyncio.TimerHandle | None = None
        self._stocks: dict[Group, _Stock] = {}
        self._draining = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(self, fn: Callable[..., T], /, *args: object, **kwargs: object) -> T:
        """Run ``fn(*args, **kwargs)`` on a store thread and await its result."""
        if self._inline:
            return fn(*args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def stocked(self, size_bits: int, master_sae: str, slave_saes: tuple[str, ...]) -> int:
        """Keys of this group reserved ahead and not yet handed out."""
        stock = self._stocks.get((size_bits, master_sae, slave_saes))
        return len(stock.keys) if stock is not None else 0

    async def reserve(self, request: ReserveRequest) -> Reserved:
        """Reserve fresh keys for one request (from the stock, or in a shared transaction).

        Raises
        ------
        NotEnoughKey
            If the store has too few free keys for this request.
        KeyStoreError
            On any other store failure.
        """
        if not self._coalesce:
            keys, reservations = await self.call(
                self.store.reserve,
                number=request.number,
                size_bits=request.size_bits,
                master_sae=request.master_sae,
                slave_saes=request.slave_saes,
            )
            self._committed(reservations)
            return keys, reservations
        loop = asyncio.get_running_loop()
        if self._prefetch:
            stock = self._note_demand(request)
            if len(stock.keys) >= request.number:
                taken = stock.take(request.number)
                if len(stock.keys) < stock.target:
                    self._refill.add(request.group)
                    self._kick(loop)
                return taken
        future: asyncio.Future[Reserved] = loop.create_future()
        self._queue.append(_Pending(request, future))
        self._kick(loop)
        return await future

    def _note_demand(self, request: ReserveRequest) -> _Stock:
        """Count the request in its group's demand; every :data:`HORIZON_S` the stock's target
        becomes the keys asked for per :data:`HORIZON_S` over the window just ended."""
        now = time.monotonic()
        stock = self._stocks.get(request.group)
        if stock is None:
            stock = self._stocks[request.group] = _Stock(window_start=now)
        elapsed = now - stock.window_start
        if elapsed >= HORIZON_S:
            per_horizon = stock.window_keys * HORIZON_S / elapsed
            stock.target = min(self._prefetch, int(per_horizon))
            stock.window_start = now
            stock.window_keys = 0
        stock.window_keys += request.number
        return stock

    def _committed(self, reservations: Sequence[Reservation]) -> None:
        if reservations and self.on_reserved is not None:
            try:
                self.on_reserved(reservations)
            except Exception:  # forwarding is retried from the store's outbox
                log.exception("handing committed reservations to the forwarder failed")

    def mark_synced_soon(self, key_ids: Sequence[str]) -> None:
        """Record that the peer acknowledged these reservations, in the next store transaction.

        Returns at once (call it on the event loop). The IDs are marked synced together with
        the next reservation transaction (no commit of their own), or on their own when none
        has come for :data:`ACK_DELAY_S`.
        """
        if not key_ids:
            return
        self._acks.extend(key_ids)
        if self._ack_timer is None:
            loop = asyncio.get_running_loop()
            self._ack_timer = loop.call_later(ACK_DELAY_S, self._flush_acks, loop)

    def _flush_acks(self, loop: asyncio.AbstractEventLoop) -> None:
        self._ack_timer = None
        if self._acks:
            self._kick(loop)

    def _kick(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._draining:
            self._draining = True
            task = loop.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue or self._acks or self._refill:
                if self._inline:
                    await asyncio.sleep(0)  # let the loop read the requests that are waiting
                batch, self._queue = self._queue, []
                acks, self._acks = self._acks, []
                refill, self._refill = self._refill, set()
                requests = [p.request for p in batch]
                extras = self._extras(requests, refill)
                try:
                    if self._inline:
                        outcomes, surplus = self._reserve_batch(requests, acks, extras)
                    else:
                        outcomes, surplus = await loop.run_in_executor(
                            self._executor, self._reserve_batch, requests, acks, extras
                        )
                except BaseException as exc:  # the executor itself failed
                    outcomes, surplus = [exc] * len(batch), {}
                committed = [r for o in outcomes if not isinstance(o, BaseException) for r in o[1]]
                for group, (keys, reservations) in surplus.items():
                    stock = self._stocks.setdefault(group, _Stock(window_start=time.monotonic()))
                    stock.keys.extend(keys)
                    stock.reservations.extend(reservations)
                    committed.extend(reservations)
                self._committed(committed)
                for pending, outcome in zip(batch, outcomes, strict=True):
                    if pending.future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        pending.future.set_exception(outcome)
                    else:
                        pending.future.set_result(outcome)
        finally:
            self._draining = False

    def _extras(self, requests: Sequence[ReserveRequest], refill: set[Group]) -> dict[Group, int]:
        """Keys to reserve ahead per group in this transaction (up to each stock's target)."""
        if not self._prefetch:
            return {}
        extras: dict[Group, int] = {}
        for group in {r.group for r in requests} | refill:
            stock = self._stocks.get(group)
            if stock is not None and stock.target > len(stock.keys):
                extras[group] = min(stock.target - len(stock.keys), REFILL_MAX_KEYS)
        return extras

    def _reserve_batch(
        self,
        requests: Sequence[ReserveRequest],
        acks: Sequence[str] = (),
        extras: dict[Group, int] | None = None,
    ) -> tuple[list[Reserved | BaseException], dict[Group, Reserved]]:
        """Runs on a store thread: one transaction per group, split among its requests.

        ``acks`` (reservations the peer acknowledged) are marked synced in the first group's
        transaction, or on their own if there is none or it fails. ``extras``: keys to reserve
        ahead per group (returned as the surplus; dropped first when keys run short).
        """
        extras = dict(extras or {})
        outcomes: list[Reserved | BaseException | None] = [None] * len(requests)
        surplus: dict[Group, Reserved] = {}
        groups: dict[Group, list[int]] = {g: [] for g in extras}
        for i, req in enumerate(requests):
            groups.setdefault(req.group, []).append(i)
        for group, members in groups.items():
            demand = sum(requests[i].number for i in members)
            ahead = extras.get(group, 0)
            try:
                try:
                    keys, reservations = self._reserve(group, demand + ahead, acks)
                except NotEnoughKey:
                    if not ahead or not demand:
                        raise
                    ahead = 0
                    keys, reservations = self._reserve(group, demand, acks)
                acks = ()
            except NotEnoughKey as exc:
                if len(members) <= 1:
                    for i in members:
                        outcomes[i] = exc
                    continue
                for i in members:
                    outcomes[i] = self._reserve_one(requests[i])
                continue
            except Exception as exc:
                for i in members:
                    outcomes[i] = exc
                if not members:
                    log.warning("reserving keys ahead failed: %s", type(exc).__name__)
                continue
            by_id = {r.key_id: r for r in reservations}
            start = 0
            for i in members:
                n = requests[i].number
                part = keys[start : start + n]
                start += n
                outcomes[i] = (part, [by_id[k.key_id] for k in part])
            if start < len(keys):
                rest = keys[start:]
                surplus[group] = (rest, [by_id[k.key_id] for k in rest])
        if acks:
            try:
                self.store.mark_reservations_synced(acks)
            except Exception:  # bookkeeping: the outbox is re-sent, harmlessly
                log.warning("could not mark %d reservations as synced", len(acks))
        done = [o if o is not None else RuntimeError("no outcome") for o in outcomes]
        return done, surplus

    def _reserve(self, group: Group, number: int, acks: Sequence[str]) -> Reserved:
        size_bits, master, slaves = group
        if acks:
            return self.store.reserve(
                number=number,
                size_bits=size_bits,
                master_sae=master,
                slave_saes=slaves,
                mark_synced=acks,
            )
        return self.store.reserve(
            number=number, size_bits=size_bits, master_sae=master, slave_saes=slaves
        )

    def _reserve_one(self, req: ReserveRequest) -> Reserved | BaseException:
        try:
            return self.store.reserve(
                number=req.number,
                size_bits=req.size_bits,
                master_sae=req.master_sae,
                slave_saes=req.slave_saes,
            )
        except Exception as exc:
            return exc

    def shutdown(self) -> None:
        """Wait for running store calls, write pending acknowledgements, stop the threads.

        Keys still in stock are abandoned: reserved (and forwarded) but handed to no master,
        they are spent and never reused.
        """
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        self._executor.shutdown(wait=True, cancel_futures=True)
        acks, self._acks = self._acks, []
        if acks:  # bookkeeping: if it fails, the next start re-sends these, harmlessly
            try:
                self.store.mark_reservations_synced(acks)
            except Exception:
                log.warning("could not mark %d reservations as synced", len(acks))
        left = sum(len(stock.keys) for stock in self._stocks.values())
        if left:
            log.info("%d key(s) reserved ahead were not handed out; they are spent", left)
        self._stocks.clear()
