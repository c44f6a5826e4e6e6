"""Typed, frozen messages of information reconciliation and their canonical wire form.

The two parties of reconciliation never touch each other's arrays: everything that crosses
between them is one of the messages below, recorded in a :class:`~diqkd.postproc.ledger.LeakLedger`
(and, in the protocol layer, authenticated and routed through the channel, where an adversary
can read or tamper with it). Alice holds the reference key; Bob corrects his key towards hers.

Leak convention
---------------
Each message says how many bits of information about **Alice's key** crossing the channel
discloses (:attr:`ReconciliationMessage.disclosed_bits`), following the Cascade literature
(Brassard, Salvail, EUROCRYPT 1993, LNCS 765, 410; Martinez-Mateo, Pacher, Peev, Ciurana,
Martin, QIC 15, 453 (2015), arXiv:1407.3257): every parity Alice announces counts one
bit, every key bit she reveals counts one bit, every syndrome bit counts one bit. Bob's
requests carry only public indices (block ranges, sample positions) and disclose 0 bits of
Alice's key. They do tell Eve *where* Bob found odd relative parities, i.e. something about the
error pattern ``A ⊕ B``; when the noise is independent of Alice's key (the model behind every
reconciliation efficiency figure) that is no information about Alice's key. Bob never sends his
own parities in this one-way-parity variant: he computes them locally and compares.

Counting each announced parity as one full bit is an upper bound (a parity may be partly
predictable), so the ledger total is a safe ``leak_EC`` for privacy amplification.

Wire form
---------
``to_bytes()`` gives one canonical encoding per message (little-endian, fixed widths)::

    version (u8 = 2) | kind (u8) | payload

Bit vectors are packed eight to a byte with :func:`numpy.packbits` (``bitorder="little"``) and
the padding bits must be zero; index vectors are ``u32`` (so frames hold fewer than 2³² bits);
trailing bytes are rejected. ``decode_message(m.to_bytes()) == m`` for every message, and each
valid byte string decodes to exactly one message (a canonical form, so a MAC over the bytes
authenticates the message). Malformed bytes raise :class:`~diqkd.errors.ProtocolAbort`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from diqkd.errors import ProtocolAbort, ReconciliationError

__all__ = [
    "MAX_FRAME_BITS",
    "WIRE_VERSION",
    "CascadeStart",
    "Done",
    "ParityReply",
    "ParityRequest",
    "ReconciliationError",
    "ReconciliationMessage",
    "RevealReply",
    "RevealRequest",
    "Sender",
    "SyndromeMessage",
    "decode_message",
]

#: Version byte that starts every encoded message.
WIRE_VERSION = 2
#: Largest frame (in bits) whose positions fit the ``u32`` index fields of the wire form.
MAX_FRAME_BITS = 2**32 - 1
#: Largest number of Cascade passes a :class:`CascadeStart` may announce.
MAX_PASSES = 64

Sender = Literal["alice", "bob"]


def _readonly(array: NDArray[Any]) -> NDArray[Any]:
    if array.base is not None or array.flags.writeable or not array.flags.c_contiguous:
        array = array.copy()
    array.flags.writeable = False
    return array


def _bits_field(values: ArrayLike, what: str) -> NDArray[np.uint8]:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ReconciliationError(f"{what} must be a 1-D vector of bits, got shape {array.shape}")
    if array.size == 0:
        return _readonly(np.zeros(0, dtype=np.uint8))
    if array.dtype.kind not in "biu":
        raise ReconciliationError(f"{what} must hold integers 0/1, got dtype {array.dtype}")
    if array.dtype.kind != "b" and (array.max() > 1 or array.min() < 0):
        raise ReconciliationError(f"{what} must hold only 0 and 1")
    if array.size > MAX_FRAME_BITS:
        raise ReconciliationError(f"{what} is too long ({array.size} > {MAX_FRAME_BITS})")
    return _readonly(array.astype(np.uint8, copy=array.dtype != np.uint8))


def _index_field(values: ArrayLike, what: str, *, upper: int = MAX_FRAME_BITS) -> NDArray[np.int64]:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ReconciliationError(f"{what} must be a 1-D vector of indices, got {array.shape}")
    if array.size == 0:
        return _readonly(np.zeros(0, dtype=np.int64))
    if array.dtype.kind not in "iu":
        raise ReconciliationError(f"{what} must hold integers, got dtype {array.dtype}")
    if array.min() < 0 or array.max() > upper:
        raise ReconciliationError(f"{what} must lie in [0, {upper}]")
    return _readonly(array.astype(np.int64, copy=array.dtype != np.int64))


def _pack_bits(bits: NDArray[np.uint8]) -> bytes:
    return struct.pack("<I", bits.size) + np.packbits(bits, bitorder="little").tobytes()


def _pack_u32(values: NDArray[np.int64]) -> bytes:
    return values.astype("<u4").tobytes()


class _Reader:
    """Cursor over an encoded message; every malformation raises :class:`ProtocolAbort`."""

    def __init__(self, data: bytes, kind: str) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._kind = kind

    def take(self, n: int) -> memoryview:
        if n < 0 or self._pos + n > len(self._data):
            raise ProtocolAbort(f"truncated {self._kind} message: drop it and abort the session")
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def u16(self) -> int:
        return int(struct.unpack("<H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack("<I", self.take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack("<Q", self.take(8))[0])

    def u32_array(self, count: int) -> NDArray[np.int64]:
        raw = np.frombuffer(self.take(4 * count), dtype="<u4")
        return raw.astype(np.int64)

    def bits(self) -> NDArray[np.uint8]:
        count = self.u32()
        packed = np.frombuffer(self.take((count + 7) // 8), dtype=np.uint8)
        bits = np.unpackbits(packed, count=None, bitorder="little")
        if np.any(bits[count:]):
            raise ProtocolAbort(f"{self._kind} message has non-zero padding bits (not canonical)")
        return bits[:count]

    def finish(self) -> None:
        if self._pos != len(self._data):
            raise ProtocolAbort(f"{self._kind} message has trailing bytes (not canonical)")


@dataclass(frozen=True, eq=False)
class ReconciliationMessage:
    """Base of every reconciliation message: frozen, canonical bytes, a disclosed-bit count.

    Equality and hashing are by canonical bytes. Array fields are read-only copies.
    """

    KIND: ClassVar[int] = 0
    SENDER: ClassVar[Sender] = "bob"

    @property
    def disclosed_bits(self) -> int:
        """Bits of information about Alice's key that crossing the channel discloses."""
        return 0

    @property
    def kind(self) -> str:
        """The message's type name (``"ParityReply"``, ...)."""
        return type(self).__name__

    def _payload(self) -> bytes:
        return b""

    def to_bytes(self) -> bytes:
        """Canonical encoding: ``version | kind | payload`` (see the module docstring)."""
        return bytes((WIRE_VERSION, self.KIND)) + self._payload()

    @classmethod
    def _decode_payload(cls, reader: _Reader) -> Self:
        raise NotImplementedError

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Decode ``data``; raise :class:`ProtocolAbort` if it is not a valid ``cls``."""
        message = decode_message(data)
        if not isinstance(message, cls):
            raise ProtocolAbort(
                f"expected a {cls.__name__} message, got {message.kind}: abort the session"
            )
        return message

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ReconciliationMessage):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash(self.to_bytes())


@dataclass(frozen=True, eq=False)
class CascadeStart(ReconciliationMessage):
    """Bob → Alice: start Cascade; send the parities of every top-level block of every pass.

    Parameters
    ----------
    n_bits
        Frame length both parties must hold (Alice aborts if hers differs).
    shuffle_seed
        Public 64-bit seed of the per-pass shuffles (see
        :func:`diqkd.postproc._cascade_kernels.pass_permutation`). Not secret.
    block_sizes
        Top-level block size of each pass, each in ``[1, n_bits]``.

    Alice answers with one :class:`ParityReply` holding, pass after pass, the parity of each
    block ``[b·k, min((b+1)·k, n))`` of the shuffled key. Cascade discloses every top-level
    parity of every pass whatever happens, so asking for them up front costs no extra leak
    and saves one round trip per pass.
    """

    KIND: ClassVar[int] = 1
    SENDER: ClassVar[Sender] = "bob"
    n_bits: int
    shuffle_seed: int
    block_sizes: tuple[int, ...]

    def __post_init__(self) -> None:
        n = int(self.n_bits)
        if not 1 <= n <= MAX_FRAME_BITS:
            raise ReconciliationError(f"n_bits must be in [1, {MAX_FRAME_BITS}], got {n}")
        seed = int(self.shuffle_seed)
        if not 0 <= seed < 2**64:
            raise ReconciliationError("shuffle_seed must be an unsigned 64-bit integer")
        sizes = tuple(int(k) for k in self.block_sizes)
        if not 1 <= len(sizes) <= MAX_PASSES:
            raise ReconciliationError(f"need 1 to {MAX_PASSES} passes, got {len(sizes)}")
        if any(not 1 <= k <= n for k in sizes):
            raise ReconciliationError(f"every block size must lie in [1, n_bits = {n}]")
        object.__setattr__(self, "n_bits", n)
        object.__setattr__(self, "shuffle_seed", seed)
        object.__setattr__(self, "block_sizes", sizes)

    @property
    def n_top_level_blocks(self) -> int:
        """Number of parities Alice's reply must hold (all passes together)."""
        return sum(-(-self.n_bits // k) for k in self.block_sizes)

    def _payload(self) -> bytes:
        head = struct.pack("<QQH", self.n_bits, self.shuffle_seed, len(self.block_sizes))
        return head + struct.pack(f"<{len(self.block_sizes)}I", *self.block_sizes)

    @classmethod
    def _decode_payload(cls, reader: _Reader) -> Self:
        n_bits, seed, n_passes = reader.u64(), reader.u64(), reader.u16()
        sizes = tuple(int(k) for k in reader.u32_array(n_passes))
        return cls(n_bits=n_bits, shuffle_seed=seed, block_sizes=sizes)


@dataclass(frozen=True, eq=False)
class ParityRequest(ReconciliationMessage):
    """Bob → Alice: the parities of sub-blocks ``[starts[i], ends[i])`` of pass ``passes[i]``.

    Positions are in the shuffled order of that pass. One request carries every binary-search
    question of one round (all passes, all blocks), so a round trip advances every search by
    one level. Discloses nothing about Alice's key (indices only).
    """

    KIND: ClassVar[int] = 2
    SENDER: ClassVar[Sender] = "bob"
    passes: NDArray[np.int64]
    starts: NDArray[np.int64]
    ends: NDArray[np.int64]

    def __post_init__(self) -> None:
        passes = _index_field(self.passes, "passes", upper=MAX_PASSES - 1)
        starts = _index_field(self.starts, "starts")
        ends = _index_field(self.ends, "ends")
        if not passes.size == starts.size == ends.size:
            raise ReconciliationError("passes, starts and ends must have the same length")
        if passes.size == 0:
            raise ReconciliationError("a ParityRequest must ask for at least one parity")
        if (starts >= ends).any():
            raise ReconciliationError("every requested range needs start < end")
        object.__setattr__(self, "passes", passes)
        object.__setattr__(self, "starts", starts)
        object.__setattr__(self, "ends", ends)

    @property
    def n_requested(self) -> int:
        """Number of parities asked for."""
        return int(self.starts.size)

    def _payload(self) -> bytes:
        return (
            struct.pack("<I", self.starts.size)
            + self.passes.astype("<u2").tobytes()
            + _pack_u32(self.starts)
            + _pack_u32(self.ends)
        )

    @classmethod
    def _decode_payload(cls, reader: _Reader) -> Self:
        count = reader.u32()
        passes = np.frombuffer(reader.take(2 * count), dtype="<u2").astype(np.int64)
        starts = reader.u32_array(count)
        ends = reader.u32_array(count)
        try:
            return cls(passes=passes, starts=starts, ends=ends)
        except ReconciliationError as exc:
            raise ProtocolAbort(f"malformed ParityRequest: {exc}") from exc


@dataclass(frozen=True, eq=False)
class ParityReply(ReconciliationMessage):
    """Alice → Bob: the parities asked for, in request order; discloses one bit per parity."""

    KIND: ClassVar[int] = 3
    SENDER: ClassVar[Sender] = "alice"
    parities: NDArray[np.uint8]

    def __post_init__(self) -> None:
        object.__setattr__(self, "parities", _bits_field(self.parities, "parities"))

    @property
    def disclosed_bits(self) -> int:
        return int(self.parities.size)

    def _payload(self) -> bytes:
        return _pack_bits(self.parities)

    @classmethod
    def _decode_payload(cls, reader: _Reader) -> Self:
        return cls(parities=reader.bits())


@dataclass(frozen=True, eq=False)
class RevealRequest(ReconciliationMessage):
    """Bob → Alice: reveal the key bits at ``indices`` (for parameter estimation).

    The positions are public (drawn from a public seed); both parties then discard them.
    Discloses nothing about Alice's key by itself.
    """

    KIND: ClassVar[int] = 4
    SENDER: ClassVar[Sender] = "bob"
    indices: NDArray[np.int64]

    def __post_init__(self) -> None:
        indices = _index_field(self.indices, "indices", upper=MAX_FRAME_BITS - 1)
        if indices.size > 1 and (indices[1:] <= indices[:-1]).any():
            raise ReconciliationError("indices must be strictly increasing (sorted, distinct)")
        object.__setattr__(self, "indices", indices)

    def _payload(self) -> bytes:
        return struct.pack("<I", self.indices.size) + _pack_u32(self.indices)

    @classmethod
    def _decode_payload(cls, reader: _Reader) -> Self:
        indices = reader.u32_array(reader.u32())
        try:
            return cls(indices=indices)
        except ReconciliationError as exc:
            raise ProtocolAbort(f"malformed RevealRequest: {exc}") from exc


@dataclass(frozen=True, eq=False)
class RevealReply(ReconciliationMessage):
    """Alice → Bob: the revealed key bits, in request order; discloses one bit per bit."""

    KIND: ClassVar[int] = 5
    SENDER: ClassVar[Sender] = "alice"
    bits: NDArray[np.uint8]

    def __post_init__(self) -> None:
        object.__setattr__(self, "bits", _bits_field(self.bits, "bits"))

    @property
    def disclosed_bits(self) -> int:
        return int(self.bits.size)

    def _payload(self) -> bytes:
        return _pack_bits(self.bits)

    @classmethod
    def _decode_payload(cls, reader: _Reader) -> Self:
        return cls(bits=reader.bits())


@dataclass(frozen=True, eq=False)
class SyndromeMessage(ReconciliationMessage):
    """Alice → Bob: the syndrome of her key under a named code (one-way LDPC reconciliation).

    Discloses one bit per syndrome bit (Elkouss, Martinez-Mateo, Martin, QIC 11, 226 (2011))
    and one per bit of the optional decoding check (:func:`~diqkd.postproc.verify.check_tag`
    of her key under ``check_key``, a random 16-byte ``h`` that tells nothing about the key).
    ``code_id`` names the (public) parity-check matrix, at most 255 UTF-8 bytes.
    Wire payload: ``len(code_id) (u8) | code_id | len(check_tag) (u8) | [check_key (16) |
    check_tag] | syndrome bits``.
    """

    KIND: ClassVar[int] = 6
    SENDER: ClassVar[Sender] = "alice"
    code_id: str
    syndrome: NDArray[np.uint8] = field(default_factory=lambda: np.zeros(0, np.uint8))
    check_key: bytes = b""
    check_tag: bytes = b""

    def __post_init__(self) -> None:
        if len(str(self.code_id).encode("utf-8")) > 255:
            raise ReconciliationError("code_id must encode to at most 255 UTF-8 bytes")
        object.__setattr__(self, "code_id", str(self.code_id))
        object.__setattr__(self, "syndrome", _bits_field(self.syndrome, "syndrome"))
        for name in ("check_key", "check_tag"):
            value = getattr(self, name)
            if not isinstance(value, bytes | bytearray):
                raise ReconciliationError(f"{name} must be bytes, got {type(value).__name__}")
            object.__setattr__(self, name, bytes(value))
        if (self.check_tag and len(self.check_key) != 16) or len(self.check_tag) > 16:
            raise ReconciliationError("a check tag has 1 to 16 bytes and a 16-byte check_key")
        if not self.check_tag and self.check_key:
            raise ReconciliationError("check_key without check_tag")

    @property
    def disclosed_bits(self) -> int:
        return int(self.syndrome.size) + 8 * len(self.check_tag)

    def _payload(self) -> bytes:
        name = self.code_id.encode("utf-8")
        check = struct.pack("<B", len(self.check_tag))
        if self.check_tag:
            check += self.check_key + self.check_tag
        return struct.pack("<B", len(name)) + name + check + _pack_bits(self.syndrome)

    @classmethod
    def _decode_payload(cls, reader: _Reader) -> Self:
        length = reader.take(1)[0]
        try:
            code_id = bytes(reader.take(length)).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolAbort("SyndromeMessage code_id is not valid UTF-8") from exc
        tag_length = reader.take(1)[0]
        key = bytes(reader.take(16)) if tag_length else b""
        tag = bytes(reader.take(tag_length))
        return cls(code_id=code_id, syndrome=reader.bits(), check_key=key, check_tag=tag)


@dataclass(frozen=True, eq=False)
class Done(ReconciliationMessage):
    """Bob → Alice: reconciliation is over; no further requests follow. Discloses nothing."""

    KIND: ClassVar[int] = 7
    SENDER: ClassVar[Sender] = "bob"

    @classmethod
    def _decode_payload(cls, reader: _Reader) -> Self:
        return cls()


_KINDS: dict[int, type[ReconciliationMessage]] = {
    kind.KIND: kind
    for kind in (
        CascadeStart,
        ParityRequest,
        ParityReply,
        RevealRequest,
        RevealReply,
        SyndromeMessage,
        Done,
    )
}


def decode_message(data: bytes) -> ReconciliationMessage:
    """Decode one canonical message (any kind); malformed bytes raise :class:`ProtocolAbort`.

    Parameters
    ----------
    data
        Bytes produced by :meth:`ReconciliationMessage.to_bytes`.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProtocolAbort(f"a message must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < 2:
        raise ProtocolAbort("message shorter than its 2-byte header: abort the session")
    if data[0] != WIRE_VERSION:
        raise ProtocolAbort(f"unknown wire version {data[0]} (this build speaks {WIRE_VERSION})")
    cls = _KINDS.get(data[1])
    if cls is None:
        raise ProtocolAbort(f"unknown message kind {data[1]}: abort the session")
    reader = _Reader(data[2:], cls.__name__)
    try:
        message = cls._decode_payload(reader)
    except ReconciliationError as exc:
        raise ProtocolAbort(f"malformed {cls.__name__}: {exc}") from exc
    reader.finish()
    return message
