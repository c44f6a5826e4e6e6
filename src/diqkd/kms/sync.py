"""The KME-to-KME channel: a reservation made here reaches the peer KME before the peer
serves the key to a slave SAE.

Design
------
``enc_keys`` at site A reserves keys in A's store. In the *same transaction* the store records
each reservation as *unsynced* (its outbox, :meth:`KeyStore.pending_reservations`). Once that
transaction is committed, A answers the master SAE and, at the same time, *forwards* the
:class:`~diqkd.kms.store.Reservation` records (key ID, block ID, offset, size, master and slave
SAE IDs; no key bits) to B over mutually authenticated TLS (``POST /api/v1/kme/reservations``;
B accepts the call only from the peer certificate named in its config). B records them
(:meth:`KeyStore.accept_reservations`, idempotent); A marks them synced when B acknowledges.

A slave SAE may reach B before the forwarded records do. B then *pulls*: for the key IDs of a
``dec_keys`` call that it does not know, it asks A (``POST /api/v1/kme/reservations/lookup``,
the same mutual TLS, B checking that the answering server presents the peer certificate named
in its config), records what A returns exactly as if A had pushed it, and serves the keys. So
a key is served at B only after A's reservation reached B over the authenticated channel,
by push or by pull.

Why a crash cannot make a key usable twice
------------------------------------------
* Disjointness: A allocates only from its half of every block, B from the other half, so the
  two sites never carve the same bits as masters, whatever the channel does.
* At A the key bits leave the pool in the reservation transaction, which is committed before
  the master is answered: after a crash they are gone (never served again as fresh), whether or
  not the master got its answer.
* At B a reserved key can be fetched only by the slave SAEs named in the reservation, each once,
  and B records only what A reserved (idempotent by key ID, the same fields or an error;
  records that arrive by push and by pull are the same records).
* A crash at A after its commit and before B's acknowledgement leaves the reservations unsynced
  in A's store; on restart (and after any failed send) A sends every unsynced reservation again,
  and B's pull finds them in A's store too. Sending twice is harmless (idempotent); losing the
  acknowledgement is harmless (resent).
* A crash at B loses nothing: what B acknowledged is committed; what it did not is still
  unsynced at A.

So the only effect of a crash or a lost message is *delay*: a slave that asks B while A is
down and the push has not arrived gets "not found" and asks again later. While the peer is
known to be unreachable (a send failed and no later contact succeeded), ``enc_keys`` answers
503 before reserving, so few keys are handed to masters whose slaves cannot fetch them yet.

Sends are batched: one sender waits :data:`_GATHER_S` for reservations to gather, sends them in
one call, and while that call is on the wire every newly committed reservation queues up for
the next one. The peer records batches in any order (each is checked against what it already
holds).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Sequence

from diqkd.errors import KeyStoreError
from diqkd.kms._peer_http import PeerHttp
from diqkd.kms.config import KmeConfig
from diqkd.kms.errors import PeerSyncError
from diqkd.kms.identity import Registry
from diqkd.kms.runner import StoreRunner
from diqkd.kms.store import Reservation

__all__ = ["LOOKUP_PATH", "RESERVATIONS_PATH", "PeerSync", "client_ssl_context"]

log = logging.getLogger(__name__)

#: The internal endpoint that receives reservations from the peer KME.
RESERVATIONS_PATH = "/api/v1/kme/reservations"

_MAX_BATCH = 2000
#: Batches on the wire at once. One keeps the batches large (the peer's CPU per reservation
#: falls with the batch size); the master never waits for a batch, and a slave that is faster
#: than the forward pulls.
_MAX_SENDERS = 1
#: A sender waits this long before its first batch, so that the reservations of several
#: transactions travel together (fewer calls; a slave that is faster pulls).
_GATHER_S = 0.05
#: The path of the pull: the peer asks for reservations of key IDs it does not know yet.
LOOKUP_PATH = RESERVATIONS_PATH + "/lookup"


def client_ssl_context(*, ca: str, cert: str, key: str) -> ssl.SSLContext:
    """A TLS ≥ 1.2 client context that verifies the server against ``ca`` and presents ``cert``."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


class PeerSync:
    """Forwards this KME's reservations to the peer KME, batched, with retry of the outbox,
    and pulls the peer's reservations that a slave SAE names before they arrived.

    Parameters
    ----------
    config
        This KME's configuration (peer URL, CA, identity, timeout, retry interval; this KME's
        certificate as client).
    runner
        Runs store calls (``pending_reservations`` and ``mark_reservations_synced``).
    """

    def __init__(self, config: KmeConfig, runner: StoreRunner) -> None:
        self._config = config
        self._runner = runner
        self._retry_interval_s = config.peer.retry_interval_s
        self._registry = Registry(config)
        self._client: PeerHttp | None = None
        self._queue: list[Reservation] = []
        self._senders = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._retry_task: asyncio.Task[None] | None = None
        self._outbox_dirty = asyncio.Event()
        self._wake = asyncio.Event()
        self._healthy = True

    async def start(self) -> None:
        """Open the mTLS client and start re-sending whatever the outbox holds."""
        peer = self._config.peer
        ctx = client_ssl_context(
            ca=str(peer.ca), cert=str(self._config.tls.cert), key=str(self._config.tls.key)
        )
        self._client = PeerHttp(
            peer.url,
            ctx,
            timeout_s=peer.timeout_s,
            peer_name=peer.kme_id,
            is_peer=self._registry.is_peer,
        )
        self._outbox_dirty.set()  # a previous run may have left unsynced reservations
        self._retry_task = asyncio.get_running_loop().create_task(self._retry_loop())

    async def close(self) -> None:
        """Send what is queued (for at most ``peer.timeout_s``), stop, and close the client.

        Whatever does not reach the peer stays unsynced in the store and is re-sent by the next
        start (or pulled by the peer).
        """
        if self._retry_task is not None:
            self._retry_task.cancel()
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*self._tasks, return_exceptions=True),
                    self._config.peer.timeout_s,
                )
        tasks = [t for t in (self._retry_task, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.close()

    @property
    def healthy(self) -> bool:
        """False after a failed send, until a send, a probe or a call from the peer succeeds.

        While the peer is known to be down, ``enc_keys`` answers 503 before reserving anything,
        so that few keys are handed to masters whose slaves cannot fetch them yet.
        """
        return self._healthy

    def peer_seen(self) -> None:
        """The peer just called this KME over the authenticated channel: it is up again.

        Wakes the retry loop so that the outbox is re-sent (and ``healthy`` restored) now
        rather than after the rest of the retry interval.
        """
        if not self._healthy:
            self._outbox_dirty.set()
            self._wake.set()

    def forward(self, reservations: Sequence[Reservation]) -> None:
        """Queue committed reservations for the peer; returns at once (call on the event loop).

        A batch that cannot be delivered stays unsynced in the store, where the retry loop
        (and the peer's pull) finds it.
        """
        if not reservations:
            return
        self._queue.extend(reservations)
        if self._senders < _MAX_SENDERS:  # else a busy sender takes them with its next batch
            self._senders += 1
            task = asyncio.get_running_loop().create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        try:
            await asyncio.sleep(_GATHER_S)  # let reservations committed meanwhile join the batch
            while self._queue:
                records = self._queue[:_MAX_BATCH]
                del self._queue[:_MAX_BATCH]
                try:
                    await self._send(records)
                except PeerSyncError:
                    # The records stay unsynced in the store: the retry loop sends them again.
                    self._healthy = False
                    self._outbox_dirty.set()
                    continue
                except Exception:
                    log.exception("forwarding reservations to the peer KME failed")
                    self._healthy = False
                    self._outbox_dirty.set()
                    continue
                self._healthy = True
                # Marking synced is bookkeeping: if it is lost, the batch is re-sent, harmlessly.
                # It rides along in the next reservation transaction (no commit of its own).
                self._runner.mark_synced_soon([r.key_id for r in records])
        finally:
            self._senders -= 1

    async def lookup(self, key_ids: Sequence[str]) -> list[Reservation]:
        """Ask the peer for its reservations of ``key_ids`` (those it made; others are absent).

        The answering server must present the peer KME's certificate (``peer.cn`` /
        ``peer.fingerprint``), since the records it returns let slave SAEs fetch keys here.

        Raises
        ------
        PeerSyncError
            If the peer cannot be reached, is not the configured peer, or answers badly.
        """
        if self._client is None:
            raise PeerSyncError("the KME-to-KME channel is not started")
        body = {"source_KME_ID": self._config.kme_id, "key_IDs": list(key_ids)}
        peer_id = self._config.peer.kme_id
        response = await self._client.post(LOOKUP_PATH, json.dumps(body).encode())
        if response.status != 200:
            raise PeerSyncError(
                f"peer KME {peer_id} refused the lookup "
                f"({response.status}: {_error_message(response.body)})"
            )
        try:
            data = json.loads(response.body)
            records = data["reservations"]
            if not isinstance(records, list):
                raise TypeError
            found = [Reservation.from_dict(r) for r in records]
        except (ValueError, KeyError, TypeError, KeyStoreError) as exc:
            raise PeerSyncError(
                f"peer KME {peer_id} answered the lookup with a malformed body "
                f"({type(exc).__name__})"
            ) from None
        asked = set(key_ids)
        stray = [r.key_id for r in found if r.key_id not in asked]
        if stray:
            raise PeerSyncError(f"peer KME {peer_id} answered the lookup with keys not asked for")
        self._healthy = True
        return found

    async def _send(self, records: Sequence[Reservation]) -> None:
        if self._client is None:
            raise PeerSyncError("the KME-to-KME channel is not started")
        body = {
            "source_KME_ID": self._config.kme_id,
            "reservations": [r.to_dict() for r in records],
        }
        try:
            response = await self._client.post(RESERVATIONS_PATH, json.dumps(body).encode())
        except PeerSyncError as exc:
            log.warning("%s", exc)
            raise
        if response.status != 200:
            message = _error_message(response.body)
            log.warning(
                "peer KME %s refused reservations: %s %s",
                self._config.peer.kme_id,
                response.status,
                message,
            )
            raise PeerSyncError(
                f"peer KME {self._config.peer.kme_id} refused the reservations "
                f"({response.status}: {message})"
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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._retry_interval_s)
            self._wake.clear()


def _error_message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return "no JSON body"
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])[:200]
    return "no message"
