"""The classical channel: authenticated delivery, a public transcript, and an adversary's hook.

Alice and Bob share a pre-distributed key (each holds a :class:`~diqkd.postproc.KeyPool` built
from the same bytes). Every message between them is authenticated Wegman–Carter style
(Wegman, Carter, JCSS 22, 265 (1981)) with one-time Poly1305 keys drawn from the pools
(:class:`~diqkd.postproc.Authenticator`): either per message, or, for the many short messages of
interactive reconciliation, once per **batch** — both parties tag the whole batch as each saw it
(:meth:`Channel.batch`), and a batch that was altered anywhere fails the check before any of its
content is used for key (reconciliation output is only used after the batch tags verify).
Messages from the heralding station are not authenticated (the station is untrusted); the
parties check that they saw the same announcements instead.

A :class:`ChannelAdversary` sees every message (bytes and tag) and may pass, alter or drop it.
Everything delivered is recorded in the public :class:`Transcript` (no secret ever crosses).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from diqkd.errors import DiqkdError, ProtocolAbort, VerificationFailed
from diqkd.postproc.auth import Authenticator, KeyPool
from diqkd.protocol.messages import BatchTag, Message, decode

__all__ = ["Channel", "ChannelAdversary", "Party", "Transcript", "TranscriptEntry"]

Party = Literal["alice", "bob", "station"]


@runtime_checkable
class ChannelAdversary(Protocol):
    """Eve on the classical channel: reads everything, may alter or drop.

    ``intercept`` returns the ``(data, tag)`` to deliver (possibly changed), or ``None`` to drop
    the message. ``tag`` is ``None`` for unauthenticated (station or batched) messages.
    """

    def intercept(
        self, sender: Party, receiver: Party, kind: str, data: bytes, tag: bytes | None
    ) -> tuple[bytes, bytes | None] | None: ...


@dataclass(frozen=True)
class TranscriptEntry:
    """One delivered message: who, what kind, how long, and the SHA-256 of the bytes received."""

    index: int
    sender: Party
    receiver: Party
    kind: str
    n_bytes: int
    sha256: str
    authenticated: Literal["message", "batch", "none"]


@dataclass
class Transcript:
    """The public record of the session's classical communication."""

    entries: list[TranscriptEntry] = field(default_factory=list)
    _hash: hashlib._Hash = field(default_factory=lambda: hashlib.sha256(b"diqkd-transcript-v1"))

    def append(self, entry: TranscriptEntry) -> None:
        self.entries.append(entry)
        self._hash.update(
            f"{entry.index}|{entry.sender}|{entry.receiver}|{entry.kind}|{entry.sha256}".encode()
        )

    @property
    def digest(self) -> str:
        """Hex SHA-256 over all entries, in order."""
        return self._hash.hexdigest()

    @property
    def n_bytes(self) -> int:
        """Total bytes delivered."""
        return sum(e.n_bytes for e in self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def counts_by_kind(self) -> dict[str, int]:
        """Number of messages of each kind."""
        out: dict[str, int] = {}
        for e in self.entries:
            out[e.kind] = out.get(e.kind, 0) + 1
        return out


class _BatchView:
    """What one party sent and received during a batch, framed unambiguously."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.count = 0

    def add(self, sender: Party, data: bytes) -> None:
        self.data += struct.pack("<cQ", sender[0].encode(), len(data)) + data
        self.count += 1


class Channel:
    """Authenticated, recorded message delivery between Alice, Bob and the station.

    Parameters
    ----------
    alice_pool, bob_pool
        Each party's authentication key pool (built from the same pre-shared bytes).
    adversary
        Optional :class:`ChannelAdversary`.
    """

    def __init__(
        self,
        alice_pool: KeyPool,
        bob_pool: KeyPool,
        *,
        adversary: ChannelAdversary | None = None,
    ) -> None:
        self._auth: dict[Party, Authenticator] = {
            "alice": Authenticator(alice_pool),
            "bob": Authenticator(bob_pool),
        }
        self.adversary = adversary
        self.transcript = Transcript()
        self._batch: dict[Party, _BatchView] | None = None
        self.tampered = 0  # simulation ground truth: messages the adversary changed or dropped

    @property
    def epsilon_auth(self) -> float:
        """Forgery bound summed over every tag checked so far (both parties)."""
        return sum(a.epsilon_auth for a in self._auth.values())

    def auth_key_bytes_consumed(self, party: Literal["alice", "bob"]) -> int:
        """Bytes of authentication key this party's pool has given up."""
        return self._auth[party].pool.consumed_bytes

    def _authenticated(self, sender: Party, receiver: Party) -> bool:
        return sender != "station" and receiver != "station"

    def send(
        self, sender: Party, receiver: Party, message: Message, *, _batch_tag: bool = False
    ) -> Message:
        """Deliver ``message``; return what the receiver accepted (decoded, authenticated).

        Raises
        ------
        VerificationFailed
            If an authenticated message's tag does not verify at the receiver.
        ProtocolAbort
            If the message is dropped or arrives malformed.
        """
        if sender == receiver:
            raise DiqkdError("a party cannot send to itself")
        data = message.to_bytes()
        authed = self._authenticated(sender, receiver)
        in_batch = authed and (self._batch is not None or _batch_tag)
        tag: bytes | None = None
        if authed and not in_batch:
            tag = self._auth[sender].tag(data)
        if self._batch is not None and in_batch:
            self._batch[sender].add(sender, data)
        got_data, got_tag = data, tag
        if self.adversary is not None:
            result = self.adversary.intercept(sender, receiver, message.kind, data, tag)
            if result is None:
                self.tampered += 1
                raise ProtocolAbort(
                    f"{message.kind} from {sender} never reached {receiver} (dropped on the "
                    "channel): abort"
                )
            got_data, got_tag = result
            if got_data != data or got_tag != tag:
                self.tampered += 1
        if authed and not in_batch:
            if got_tag is None:
                raise VerificationFailed(
                    f"{message.kind} from {sender} arrived without its authentication tag: abort"
                )
            self._auth[receiver].check(got_data, got_tag)
        if self._batch is not None and in_batch:
            self._batch[receiver].add(sender, got_data)
        delivered = decode(got_data)
        self.transcript.append(
            TranscriptEntry(
                index=len(self.transcript),
                sender=sender,
                receiver=receiver,
                kind=delivered.kind,
                n_bytes=len(got_data),
                sha256=hashlib.sha256(got_data).hexdigest(),
                authenticated="batch" if in_batch else ("message" if authed else "none"),
            )
        )
        return delivered

    @contextmanager
    def batch(self, label: str) -> Iterator[None]:
        """Authenticate the messages sent inside the block once, as a whole, at its end.

        At exit Alice sends a :class:`BatchTag` over the batch as she saw it and Bob checks it
        against his view; then Bob does the same for Alice. Any alteration raises
        :class:`VerificationFailed` there.
        """
        if self._batch is not None:
            raise DiqkdError("batches do not nest")
        views: dict[Party, _BatchView] = {"alice": _BatchView(), "bob": _BatchView()}
        self._batch = views
        try:
            yield
        finally:
            self._batch = None
        pairs: tuple[tuple[Literal["alice", "bob"], Literal["alice", "bob"]], ...] = (
            ("alice", "bob"),
            ("bob", "alice"),
        )
        for sender, receiver in pairs:
            view = views[sender]
            tag = self._auth[sender].tag(bytes(view.data))
            msg = BatchTag(label=label, messages=view.count, tag=tag.hex())
            # The batch tag is itself the MAC: it is not tagged again (keys stay in step).
            got = self.send(sender, receiver, msg, _batch_tag=True)
            if not isinstance(got, BatchTag):
                raise ProtocolAbort("expected a batch tag")
            try:
                received_tag = bytes.fromhex(got.tag)
            except ValueError:
                raise VerificationFailed("batch tag is not hex: abort") from None
            self._auth[receiver].check(bytes(views[receiver].data), received_tag)
