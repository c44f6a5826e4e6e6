"""Typed, frozen messages of the DI-QKD session and their canonical wire form.

Everything that crosses between Alice, Bob and the heralding station is one of these messages
(reconciliation messages travel inside :class:`Reconciliation`, in the canonical form of
:mod:`diqkd.postproc.messages`). None carries a secret: the protocol's secrets (raw outputs,
flips, corrected keys, final keys) never leave their owner's role.

Wire form (one canonical encoding per message, so a MAC over the bytes authenticates it)::

    b"DQKD" | version u8 (=1) | kind u8 | fields_len u32 | fields | blob_len u64 | blob

``fields`` is canonical JSON (sorted keys, no spaces, UTF-8) of the scalar fields; ``blob`` holds
the one array payload of the message, if any (bits packed MSB first, ``numpy.packbits``; rounds
as little-endian u64). Malformed bytes raise :class:`~diqkd.errors.ProtocolAbort`.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from diqkd.errors import ProtocolAbort

__all__ = [
    "Abort",
    "AnnouncedInputs",
    "BatchTag",
    "EstimationResult",
    "Hello",
    "HeraldAnnouncement",
    "Message",
    "PrivacyAmplification",
    "Reconciliation",
    "RoundTypes",
    "Verification",
    "decode",
    "pack_bits",
    "unpack_bits",
]

_MAGIC = b"DQKD"
_VERSION = 1
_HEADER = struct.Struct("<4sBBI")
_BLOB_LEN = struct.Struct("<Q")


def pack_bits(bits: NDArray[np.uint8] | NDArray[np.bool_]) -> bytes:
    """Bits (0/1) packed MSB first, zero padded."""
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()


def unpack_bits(blob: bytes, n_bits: int, what: str) -> NDArray[np.uint8]:
    """Inverse of :func:`pack_bits`; checks the length and the zero padding."""
    if len(blob) != (n_bits + 7) // 8:
        raise ProtocolAbort(f"{what}: {len(blob)} bytes cannot hold exactly {n_bits} bits")
    bits = np.unpackbits(np.frombuffer(blob, dtype=np.uint8))
    if bits[n_bits:].any():
        raise ProtocolAbort(f"{what}: non-zero padding bits")
    return bits[:n_bits].copy()


@dataclass(frozen=True)
class Message:
    """Base class: scalar fields go to canonical JSON, :meth:`blob` carries the array payload."""

    KIND: ClassVar[int] = 0

    @property
    def kind(self) -> str:
        """Short name of the message type."""
        return type(self).__name__

    def blob(self) -> bytes:
        return b""

    def _scalars(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}

    def to_bytes(self) -> bytes:
        """The canonical encoding."""
        body = json.dumps(
            self._scalars(), sort_keys=True, separators=(",", ":"), allow_nan=False
        ).encode("utf-8")
        blob = self.blob()
        return (
            _HEADER.pack(_MAGIC, _VERSION, self.KIND, len(body))
            + body
            + _BLOB_LEN.pack(len(blob))
            + blob
        )

    #: Field name -> accepted JSON type(s), checked on decoding.
    _FIELDS: ClassVar[dict[str, type | tuple[type, ...]]] = {}

    @classmethod
    def _from_parts(cls, values: dict[str, Any], blob: bytes) -> Message:
        _require(values, cls._FIELDS, cls.__name__)
        if blob:
            raise ProtocolAbort(f"{cls.__name__} carries no payload, got {len(blob)} bytes")
        return cls(**values)

    def digest(self) -> str:
        """Hex SHA-256 of the canonical bytes (used to check both sides saw the same data)."""
        return hashlib.sha256(self.to_bytes()).hexdigest()


def _require(values: dict[str, Any], names: dict[str, type | tuple[type, ...]], kind: str) -> None:
    if set(values) != set(names):
        raise ProtocolAbort(f"{kind}: fields {sorted(values)} do not match {sorted(names)}")
    for name, typ in names.items():
        value = values[name]
        if isinstance(value, bool) and typ is not bool:
            raise ProtocolAbort(f"{kind}: field {name} has the wrong type")
        if not isinstance(value, typ):
            raise ProtocolAbort(f"{kind}: field {name} has the wrong type")


@dataclass(frozen=True)
class Hello(Message):
    """Alice opens the session: its ID and the digest of the agreed protocol parameters."""

    KIND: ClassVar[int] = 1
    session_id: str
    parameters_digest: str

    _FIELDS: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "session_id": str,
        "parameters_digest": str,
    }


@dataclass(frozen=True, eq=False)
class HeraldAnnouncement(Message):
    """The heralding station's announcement of one chunk of heralded attempts."""

    KIND: ClassVar[int] = 2
    chunk: int
    n_events: int
    rounds: NDArray[np.uint64] | None = None

    def blob(self) -> bytes:
        if self.rounds is None:
            return b""
        return np.ascontiguousarray(self.rounds, dtype="<u8").tobytes()

    def _scalars(self) -> dict[str, Any]:
        return {"chunk": self.chunk, "n_events": self.n_events}

    @classmethod
    def _from_parts(cls, values: dict[str, Any], blob: bytes) -> Message:
        _require(values, {"chunk": int, "n_events": int}, cls.__name__)
        if len(blob) != 8 * values["n_events"]:
            raise ProtocolAbort("HeraldAnnouncement: payload length does not match n_events")
        rounds = np.frombuffer(blob, dtype="<u8").astype(np.uint64)
        return cls(chunk=values["chunk"], n_events=values["n_events"], rounds=rounds)


@dataclass(frozen=True, eq=False)
class _BitsMessage(Message):
    """A message whose payload is one bit vector of ``n_bits`` bits."""

    n_bits: int
    bits: NDArray[np.uint8] | None = None

    def blob(self) -> bytes:
        return b"" if self.bits is None else pack_bits(self.bits)

    def _extra(self) -> dict[str, Any]:
        return {}

    def _scalars(self) -> dict[str, Any]:
        return {"n_bits": self.n_bits, **self._extra()}

    _EXTRA: ClassVar[dict[str, type | tuple[type, ...]]] = {}

    @classmethod
    def _from_parts(cls, values: dict[str, Any], blob: bytes) -> Message:
        _require(values, {"n_bits": int, **cls._EXTRA}, cls.__name__)
        bits = unpack_bits(blob, values["n_bits"], cls.__name__)
        return cls(**values, bits=bits)


@dataclass(frozen=True, eq=False)
class RoundTypes(_BitsMessage):
    """Which rounds of a chunk are test rounds (bit 1) and the herald digest the sender saw."""

    KIND: ClassVar[int] = 3
    chunk: int = 0
    herald_digest: str = ""
    _EXTRA: ClassVar[dict[str, type | tuple[type, ...]]] = {"chunk": int, "herald_digest": str}

    def _extra(self) -> dict[str, Any]:
        return {"chunk": self.chunk, "herald_digest": self.herald_digest}


@dataclass(frozen=True, eq=False)
class AnnouncedInputs(_BitsMessage):
    """Alice's inputs ``x`` on the test rounds, in round order (and rounds she discards)."""

    KIND: ClassVar[int] = 4
    n_discarded: int = 0
    _EXTRA: ClassVar[dict[str, type | tuple[type, ...]]] = {"n_discarded": int}

    def _extra(self) -> dict[str, Any]:
        return {"n_discarded": self.n_discarded}


@dataclass(frozen=True, eq=False)
class Discards(_BitsMessage):
    """Records mode: Alice marks the rounds she discards (``x = 1`` in a non-test round)."""

    KIND: ClassVar[int] = 12


@dataclass(frozen=True)
class Reconciliation(Message):
    """One reconciliation message (canonical bytes of :mod:`diqkd.postproc.messages`)."""

    KIND: ClassVar[int] = 5
    frame: str
    payload: bytes = b""

    def blob(self) -> bytes:
        return self.payload

    def _scalars(self) -> dict[str, Any]:
        return {"frame": self.frame}

    @classmethod
    def _from_parts(cls, values: dict[str, Any], blob: bytes) -> Message:
        _require(values, {"frame": str}, cls.__name__)
        return cls(frame=values["frame"], payload=bytes(blob))


@dataclass(frozen=True)
class BatchTag(Message):
    """A Wegman–Carter tag over a whole batch of messages, as the sender saw the batch."""

    KIND: ClassVar[int] = 6
    label: str
    messages: int
    tag: str

    _FIELDS: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "label": str,
        "messages": int,
        "tag": str,
    }


@dataclass(frozen=True)
class Verification(Message):
    """Alice's verification hash key ``h`` (fresh, public) and her tag of the corrected string."""

    KIND: ClassVar[int] = 7
    hash_key: str
    tag: str
    tag_bits: int

    _FIELDS: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "hash_key": str,
        "tag": str,
        "tag_bits": int,
    }


@dataclass(frozen=True)
class EstimationResult(Message):
    """Bob's parameter estimation: the statistic, the counts and whether the test passed."""

    KIND: ClassVar[int] = 8
    accept: bool
    statistic: float
    test_rounds: int
    wins: int
    key_rounds: int
    key_errors: int
    reason: str

    _FIELDS: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "accept": bool,
        "statistic": float,
        "test_rounds": int,
        "wins": int,
        "key_rounds": int,
        "key_errors": int,
        "reason": str,
    }


@dataclass(frozen=True, eq=False)
class PrivacyAmplification(_BitsMessage):
    """Alice's Toeplitz seed (``n + ℓ − 1`` bits, from her private randomness) and ℓ."""

    KIND: ClassVar[int] = 9
    output_bits: int = 0
    key_id: str = ""
    _EXTRA: ClassVar[dict[str, type | tuple[type, ...]]] = {"output_bits": int, "key_id": str}

    def _extra(self) -> dict[str, Any]:
        return {"output_bits": self.output_bits, "key_id": self.key_id}


@dataclass(frozen=True)
class Abort(Message):
    """One party aborts and says why (no secret in the reason)."""

    KIND: ClassVar[int] = 10
    reason: str

    _FIELDS: ClassVar[dict[str, type | tuple[type, ...]]] = {"reason": str}


@dataclass(frozen=True)
class Done(Message):
    """A party confirms the session ended with a key (carries the key ID only)."""

    KIND: ClassVar[int] = 11
    key_id: str

    _FIELDS: ClassVar[dict[str, type | tuple[type, ...]]] = {"key_id": str}


_KINDS: dict[int, type[Message]] = {
    cls.KIND: cls
    for cls in (
        Hello,
        HeraldAnnouncement,
        RoundTypes,
        AnnouncedInputs,
        Reconciliation,
        BatchTag,
        Verification,
        EstimationResult,
        PrivacyAmplification,
        Abort,
        Done,
        Discards,
    )
}


def decode(data: bytes) -> Message:
    """Decode canonical bytes; raise :class:`ProtocolAbort` on anything malformed."""
    if not isinstance(data, bytes | bytearray):
        raise ProtocolAbort("a message must arrive as bytes")
    raw = bytes(data)
    if len(raw) < _HEADER.size + _BLOB_LEN.size:
        raise ProtocolAbort("message too short: not a diqkd protocol message")
    magic, version, kind, body_len = _HEADER.unpack_from(raw, 0)
    if magic != _MAGIC or version != _VERSION:
        raise ProtocolAbort("not a diqkd protocol message (bad magic or version)")
    cls = _KINDS.get(kind)
    if cls is None:
        raise ProtocolAbort(f"unknown message kind {kind}")
    start = _HEADER.size
    end = start + body_len
    if end + _BLOB_LEN.size > len(raw):
        raise ProtocolAbort(f"{cls.__name__}: truncated message")
    (blob_len,) = _BLOB_LEN.unpack_from(raw, end)
    blob_start = end + _BLOB_LEN.size
    if blob_start + blob_len != len(raw):
        raise ProtocolAbort(f"{cls.__name__}: payload length does not match the message")
    try:
        values = json.loads(raw[start:end].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ProtocolAbort(f"{cls.__name__}: fields are not valid JSON") from None
    if not isinstance(values, dict):
        raise ProtocolAbort(f"{cls.__name__}: fields must be a JSON object")
    try:
        message = cls._from_parts(values, raw[blob_start:])
    except TypeError:
        raise ProtocolAbort(f"{cls.__name__}: malformed fields") from None
    if message.to_bytes() != raw:
        raise ProtocolAbort(f"{cls.__name__}: not in canonical form")
    return message
