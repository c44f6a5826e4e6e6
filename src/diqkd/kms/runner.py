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

The peer's acknowledgements of reservations (:meth:`StoreRunner.mark_synced_soon`) ride along
in the next reservation transaction instead of costing a commit of their own; when no
reservation is waiting they are written on their own. Marking synced is bookkeeping: if it is
lost (a crash), the outbox is sent again and the peer ignores what it already has.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from diqkd.kms.store import KeyStore, NotEnoughKey, Reservation, ServedKey

log = logging.getLogger(__name__)

__all__ = ["ReserveRequest", "StoreRunner"]

T = TypeVar("T")

Reserved = tuple[list[ServedKey], list[Reservation]]


@dataclass(frozen=True)
class ReserveRequest:
    """What one enc_keys call asks the store for."""

    number: int
    size_bits: int
    master_sae: str
    slave_saes: tuple[str, ...]

    @property
    def group(self) -> tuple[int, str, tuple[str, ...]]:
        """Requests with the same group may share one reservation transaction."""
        return (self.size_bits, self.master_sae, self.slave_saes)


@dataclass
class _Pending:
    request: ReserveRequest
    future: asyncio.Future[Reserved] = field(repr=False)


class StoreRunner:
    """Executes store calls on dedicated threads; coalesces reservations.

    Parameters
    ----------
    store
        The site's key store (thread-safe).
    threads
        Worker threads for store calls (``1`` suits SQLite; ``0`` runs them on the event loop's
        thread, which saves the thread hand-offs but blocks the loop during a transaction).
    coalesce
        Whether concurrent reservations of the same group share one transaction.
    """

    def __init__(self, store: KeyStore, *, threads: int = 1, coalesce: bool = True) -> None:
        self.store = store
        self._inline = threads == 0
        self._executor = ThreadPoolExecutor(
            max_workers=max(threads, 1), thread_name_prefix="kme-store"
        )
        self._coalesce = coalesce
        self._queue: list[_Pending] = []
        self._acks: list[str] = []
        self._draining = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(self, fn: Callable[..., T], /, *args: object, **kwargs: object) -> T:
        """Run ``fn(*args, **kwargs)`` on a store thread and await its result."""
        if self._inline:
            return fn(*args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def reserve(self, request: ReserveRequest) -> Reserved:
        """Reserve fresh keys for one request (possibly in a transaction shared with others).

        Raises
        ------
        NotEnoughKey
            If the store has too few free keys for this request.
        KeyStoreError
            On any other store failure.
        """
        if not self._coalesce:
            return await self.call(
                self.store.reserve,
                number=request.number,
                size_bits=request.size_bits,
                master_sae=request.master_sae,
                slave_saes=request.slave_saes,
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Reserved] = loop.create_future()
        self._queue.append(_Pending(request, future))
        self._kick(loop)
        return await future

    def mark_synced_soon(self, key_ids: Sequence[str]) -> None:
        """Record that the peer acknowledged these reservations, in the next store transaction.

        Returns at once (call it on the event loop). The IDs are marked synced together with
        the next reservation (no commit of their own), or on their own when none is waiting.
        """
        if not key_ids:
            return
        self._acks.extend(key_ids)
        self._kick(asyncio.get_running_loop())

    def _kick(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._draining:
            self._draining = True
            task = loop.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue or self._acks:
                if self._inline:
                    await asyncio.sleep(0)  # let the loop read the requests that are waiting
                batch, self._queue = self._queue, []
                acks, self._acks = self._acks, []
                try:
                    requests = [p.request for p in batch]
                    if self._inline:
                        outcomes = self._reserve_batch(requests, acks)
                    else:
                        outcomes = await loop.run_in_executor(
                            self._executor, self._reserve_batch, requests, acks
                        )
                except BaseException as exc:  # the executor itself failed
                    outcomes = [exc] * len(batch)
                for pending, outcome in zip(batch, outcomes, strict=True):
                    if pending.future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        pending.future.set_exception(outcome)
                    else:
                        pending.future.set_result(outcome)
        finally:
            self._draining = False

    def _reserve_batch(
        self, requests: Sequence[ReserveRequest], acks: Sequence[str] = ()
    ) -> list[Reserved | BaseException]:
        """Runs on a store thread: one transaction per group, split among its requests.

        ``acks`` (reservations the peer acknowledged) are marked synced in the first group's
        transaction, or on their own if there is none or it fails.
        """
        outcomes: list[Reserved | BaseException | None] = [None] * len(requests)
        groups: dict[tuple[int, str, tuple[str, ...]], list[int]] = {}
        for i, req in enumerate(requests):
            groups.setdefault(req.group, []).append(i)
        for (size_bits, master, slaves), members in groups.items():
            total = sum(requests[i].number for i in members)
            try:
                if acks:
                    keys, reservations = self.store.reserve(
                        number=total,
                        size_bits=size_bits,
                        master_sae=master,
                        slave_saes=slaves,
                        mark_synced=acks,
                    )
                    acks = ()
                else:
                    keys, reservations = self.store.reserve(
                        number=total, size_bits=size_bits, master_sae=master, slave_saes=slaves
                    )
            except NotEnoughKey as exc:
                if len(members) == 1:
                    outcomes[members[0]] = exc
                    continue
                for i in members:
                    outcomes[i] = self._reserve_one(requests[i])
                continue
            except Exception as exc:
                for i in members:
                    outcomes[i] = exc
                continue
            by_id = {r.key_id: r for r in reservations}
            start = 0
            for i in members:
                n = requests[i].number
                part = keys[start : start + n]
                start += n
                outcomes[i] = (part, [by_id[k.key_id] for k in part])
        if acks:
            try:
                self.store.mark_reservations_synced(acks)
            except Exception:  # bookkeeping: the outbox is re-sent, harmlessly
                log.warning("could not mark %d reservations as synced", len(acks))
        return [o if o is not None else RuntimeError("no outcome") for o in outcomes]

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
        """Wait for running store calls and stop the threads."""
        self._executor.shutdown(wait=True, cancel_futures=True)
