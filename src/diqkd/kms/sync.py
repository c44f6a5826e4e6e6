"""The KME-to-KME channel: a reservation made here reaches the peer KME before the master
SAE gets its keys.

Design
------
``enc_keys`` at site A reserves keys in A's store. In the *same transaction* the store records
each reservation as *unsynced* (its outbox, :meth:`KeyStore.pending_reservations`). A then sends
the :class:`~diqkd.kms.store.Reservation` records (key ID, block ID, offset, size, master and
slave SAE IDs; no key bits) to B over mutually authenticated TLS (``POST
/api/v1/kme/reservations``; B accepts the call only from the peer certificate named in its
config). B records them (:meth:`KeyStore.accept_reservations`, idempotent) and answers 200;
only then does A answer the master SAE, and marks the reservations synced.

Why a crash cannot make a key usable twice
------------------------------------------
* Disjointness: A allocates only from its half of every block, B from the other half, so the
  two sites never carve the same bits as masters, whatever the channel does.
* At A the key bits leave the pool in the reservation transaction: after a crash they are gone
  (never served again as fresh), whether or not the master got its answer.
* At B a reserved key can be fetched only by the slave SAEs named in the reservation, each once,
  and B records only what A reserved (idempotent by key ID, the same fields or an error).
* A crash at A after its commit and before B's acknowledgement leaves the reservations unsynced
  in A's store; on restart (and after any failed send) A sends every unsynced reservation again.
  Sending twice is harmless (idempotent); losing the acknowledgement is harmless (resent).
* The master SAE is answered only after B acknowledged, so a slave never asks B for a key that
  B does not know yet. If the send fails, the master gets 503 and its keys stay reserved for it
  (and are still delivered to B later): they are wasted, never reused.

Sends are batched and pipelined: up to four batches are on the wire at once (one per pooled
connection); while all are busy, new reservations queue up and travel together in the next
batch. The peer records batches in any order (each is checked against what it already holds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from diqkd.kms.config import KmeConfig
from diqkd.kms.errors import PeerSyncError
from diqkd.kms.runner import StoreRunner
from diqkd.kms.store import Reservation

__all__ = ["RESERVATIONS_PATH", "PeerSync", "client_ssl_context"]

log = logging.getLogger(__name__)

#: The internal endpoint that receives reservations from the peer KME.
RESERVATIONS_PATH = "/api/v1/kme/reservations"

_MAX_BATCH = 2000
#: Batches on the wire at once: a new reservation does not wait for the previous batch's
#: round trip (the peer records batches in any order; each is idempotent).
_MAX_SENDERS = 4


def client_ssl_context(*, ca: str, cert: str, key: str) -> ssl.SSLContext:
    """A TLS ≥ 1.2 client context that verifies the server against ``ca`` and presents ``cert``."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


@dataclass
class _Item:
    reservations: Sequence[Reservation]
    future: asyncio.Future[None] = field(repr=False)


class PeerSync:
    """Sends this KME's reservations to the peer KME, batched, with retry of the outbox.

    Parameters
    ----------
    config
        This KME's configuration (peer URL, CA, timeout; this KME's certificate as client).
    runner
        Runs store calls (``pending_reservations`` and ``mark_reservations_synced``).
    retry_interval_s
        How often the outbox is re-sent while it holds unsynced reservations.
    """

    def __init__(
        self, config: KmeConfig, runner: StoreRunner, *, retry_interval_s: float = 2.0
    ) -> None:
        self._config = config
        self._runner = runner
        self._retry_interval_s = retry_interval_s
        self._client: httpx.AsyncClient | None = None
        self._queue: list[_Item] = []
        self._senders = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._retry_task: asyncio.Task[None] | None = None
        self._outbox_dirty = asyncio.Event()
        self._healthy = True

    async def start(self) -> None:
        """Open the mTLS client and start re-sending whatever the outbox holds."""
        peer = self._config.peer
        ctx = client_ssl_context(
            ca=str(peer.ca), cert=str(self._config.tls.cert), key=str(self._config.tls.key)
        )
        self._client = httpx.AsyncClient(
            base_url=peer.url,
            verify=ctx,
            timeout=httpx.Timeout(peer.timeout_s),
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=4),
        )
        self._outbox_dirty.set()  # a previous run may have left unsynced reservations
        self._retry_task = asyncio.get_running_loop().create_task(self._retry_loop())

    async def close(self) -> None:
        """Stop retrying and close the client."""
        if self._retry_task is not None:
            self._retry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry_task
        if self._client is not None:
            await self._client.aclose()

    @property
    def healthy(self) -> bool:
        """False after a failed send, until a send (or a probe of the retry loop) succeeds.

        While the peer is known to be down, ``enc_keys`` answers 503 before reserving anything,
        so that no key is spent on a request that cannot be confirmed.
        """
        return self._healthy

    async def push(self, reservations: Sequence[Reservation]) -> None:
        """Deliver reservations to the peer; returns once the peer has acknowledged them.

        Raises
        ------
        PeerSyncError
            If the peer cannot be reached or refuses them (they stay in the outbox and are
            re-sent in the background).
        """
        if not reservations:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.append(_Item(reservations, future))
        if self._senders < _MAX_SENDERS:  # else a busy sender takes it with its next batch
            self._senders += 1
            task = loop.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch: list[_Item] = []
                count = 0
                while self._queue and count < _MAX_BATCH:
                    item = self._queue.pop(0)
                    batch.append(item)
                    count += len(item.reservations)
                records = [r for item in batch for r in item.reservations]
                try:
                    await self._send(records)
                except BaseException as exc:  # every waiter must get an answer
                    self._healthy = False
                    self._outbox_dirty.set()
                    failure = (
                        exc
                        if isinstance(exc, PeerSyncError)
                        else PeerSyncError(f"sending reservations failed ({type(exc).__name__})")
                    )
                    for item in batch:
                        if not item.future.done():
                            item.future.set_exception(failure)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                self._healthy = True
                for item in batch:
                    if not item.future.done():
                        item.future.set_result(None)
                # Marking synced is bookkeeping: if it is lost, the batch is re-sent, harmlessly.
                # It rides along in the next reservation transaction (no commit of its own).
                self._runner.mark_synced_soon([r.key_id for r in records])
        finally:
            self._senders -= 1

    async def _send(self, records: Sequence[Reservation]) -> None:
        if self._client is None:
            raise PeerSyncError("the KME-to-KME channel is not started")
        body: dict[str, Any] = {
            "source_KME_ID": self._config.kme_id,
            "reservations": [r.to_dict() for r in records],
        }
        try:
            response = await self._client.post(RESERVATIONS_PATH, json=body)
        except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
            log.warning("peer KME %s unreachable: %s", self._config.peer.kme_id, type(exc).__name__)
            raise PeerSyncError(
                f"peer KME {self._config.peer.kme_id} is unreachable ({type(exc).__name__})"
            ) from None
        if response.status_code != 200:
            message = _error_message(response)
            log.warning(
                "peer KME %s refused reservations: %s %s",
                self._config.peer.kme_id,
                response.status_code,
                message,
            )
            raise PeerSyncError(
                f"peer KME {self._config.peer.kme_id} refused the reservations "
                f"({response.status_code}: {message})"
            )

    async def flush_outbox(self) -> int:
        """Send every unsynced reservation in the store (oldest first); returns how many."""
        sent = 0
        while True:
            pending = await self._runner.call(
                self._runner.store.pending_reservations, limit=_MAX_BATCH
            )
            if not pending:
                if not self._healthy:
                    await self._send([])  # probe: is the peer back?
                    self._healthy = True
                return sent
            await self._send(pending)
            self._healthy = True
            await self._runner.call(
                self._runner.store.mark_reservations_synced, [r.key_id for r in pending]
            )
            sent += len(pending)
            if len(pending) < _MAX_BATCH:
                return sent

    async def _retry_loop(self) -> None:
        while True:
            await self._outbox_dirty.wait()
            self._outbox_dirty.clear()
            try:
                sent = await self.flush_outbox()
                if sent:
                    log.info("re-sent %d unsynced reservations to the peer KME", sent)
            except PeerSyncError:
                self._healthy = False
                self._outbox_dirty.set()
            except Exception:
                log.exception("re-sending the outbox failed")
                self._outbox_dirty.set()
            await asyncio.sleep(self._retry_interval_s)


def _error_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return "no JSON body"
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])[:200]
    return "no message"
