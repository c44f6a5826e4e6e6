"""The leak ledger: the single source of truth for what post-processing disclosed.

Every reconciliation message that crosses between the parties is recorded here, and the
ledger's :attr:`LeakLedger.leaked_bits` is the sum of their
:attr:`~diqkd.postproc.messages.ReconciliationMessage.disclosed_bits` plus any verification
tags added with :meth:`LeakLedger.add_tag`. Privacy amplification subtracts this number
(``leak_EC`` plus the verification tag length) from the certified entropy; no other code path
may count disclosed bits. See ``docs/postprocessing.md`` ("Reconciliation").

The ledger also keeps a running SHA-256 over the canonical bytes of everything recorded
(:meth:`LeakLedger.transcript_digest`), so two runs can be compared message for message without
storing the messages.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from diqkd.postproc.messages import (
    ReconciliationError,
    ReconciliationMessage,
    decode_message,
)

__all__ = ["LeakLedger", "LedgerEntry"]


@dataclass(frozen=True)
class LedgerEntry:
    """One recorded item: a message that crossed, or a verification tag.

    Attributes
    ----------
    sender
        ``"alice"``, ``"bob"``, or ``"tag"`` for an :meth:`LeakLedger.add_tag` entry.
    kind
        Message type name (``"ParityReply"``, ...) or the tag's label.
    disclosed_bits
        Bits of information about Alice's key it disclosed.
    wire_bytes
        Length of its canonical encoding in bytes (0 for tags).
    """

    sender: str
    kind: str
    disclosed_bits: int
    wire_bytes: int


class LeakLedger:
    """Records every reconciliation message that crosses and sums the disclosed bits.

    Examples
    --------
    >>> from diqkd.postproc.messages import ParityReply
    >>> ledger = LeakLedger()
    >>> _ = ledger.record(ParityReply(parities=[1, 0, 1]))
    >>> ledger.add_tag(64)
    >>> ledger.leaked_bits
    67
    """

    def __init__(self) -> None:
        self._entries: list[LedgerEntry] = []
        self._leaked_bits = 0
        self._messages = 0
        self._hash = hashlib.sha256(b"diqkd-leak-ledger-v1")

    def cross(
        self, message: ReconciliationMessage, *, through_bytes: bool = False
    ) -> ReconciliationMessage:
        """Record ``message`` and return what the receiver gets.

        With ``through_bytes`` the receiver gets ``decode_message(message.to_bytes())``, so only
        canonical bytes cross (as on the real channel); otherwise the message object itself.
        The one routing step shared by the reconciliation drivers.
        """
        self.record(message)
        return decode_message(message.to_bytes()) if through_bytes else message

    def record(self, message: ReconciliationMessage) -> LedgerEntry:
        """Record ``message`` as having crossed the channel; return its entry.

        Parameters
        ----------
        message
            The message exactly as it crossed (its sender is ``message.SENDER``).
        """
        if not isinstance(message, ReconciliationMessage):
            raise ReconciliationError(
                f"only reconciliation messages can be recorded, got {type(message).__name__}"
            )
        data = message.to_bytes()
        entry = LedgerEntry(
            sender=message.SENDER,
            kind=message.kind,
            disclosed_bits=message.disclosed_bits,
            wire_bytes=len(data),
        )
        self._append(entry, data)
        self._messages += 1
        return entry

    def add_tag(self, bits: int, *, label: str = "verification tag") -> None:
        """Count ``bits`` disclosed by a verification tag (or any other announced hash).

        Parameters
        ----------
        bits
            Tag length in bits, a non-negative integer.
        label
            What the tag is, for :meth:`bits_by_kind`.
        """
        if isinstance(bits, bool) or not isinstance(bits, int) or bits < 0:
            raise ReconciliationError(f"a tag length must be a non-negative int, got {bits!r}")
        self._append(LedgerEntry("tag", str(label), bits, 0), str(label).encode("utf-8"))

    def _append(self, entry: LedgerEntry, data: bytes) -> None:
        header = f"{entry.sender}|{entry.kind}|".encode()
        self._hash.update(struct.pack("<QQ", len(header), len(data)) + header + data)
        self._entries.append(entry)
        self._leaked_bits += entry.disclosed_bits

    @property
    def leaked_bits(self) -> int:
        """Total bits disclosed about Alice's key: every message and tag recorded so far."""
        return self._leaked_bits

    @property
    def messages(self) -> int:
        """Number of messages recorded (tags excluded)."""
        return self._messages

    @property
    def wire_bytes(self) -> int:
        """Total canonical bytes of the recorded messages (communication cost)."""
        return sum(entry.wire_bytes for entry in self._entries)

    @property
    def entries(self) -> tuple[LedgerEntry, ...]:
        """Everything recorded, in order."""
        return tuple(self._entries)

    def bits_by_kind(self) -> dict[str, int]:
        """Disclosed bits grouped by message kind (or tag label)."""
        totals: dict[str, int] = {}
        for entry in self._entries:
            totals[entry.kind] = totals.get(entry.kind, 0) + entry.disclosed_bits
        return totals

    def transcript_digest(self) -> str:
        """Hex SHA-256 over the sender, kind and canonical bytes of everything recorded."""
        return self._hash.copy().hexdigest()

    def __repr__(self) -> str:
        return f"LeakLedger(leaked_bits={self._leaked_bits}, messages={self._messages})"
