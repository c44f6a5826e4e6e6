"""Distilled key blocks and the keys file: what the protocol hands to the key manager.

A :class:`KeyBlock` is one block of final (privacy-amplified) key with a UUID that both sides
share, the key bits packed most significant bit first (``numpy.packbits`` order), and a JSON
summary of the security certificate it rests on. The protocol writes one list of blocks per
side; the key manager (``diqkd.kms``) stores and serves them.

Keys file (``docs/keys.md``): one JSON document, written atomically (temporary file, ``fsync``,
rename) with mode 0600, so a crash or an abort never leaves a partial key file::

    {"format": "diqkd-keys", "version": 1, "side": "alice",
     "blocks": [{"key_id": "…uuid…", "n_bits": 123, "key_b64": "…",
                 "created_utc": "2026-11-27T17:00:00Z", "certificate": {…}}]}
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray

from diqkd.errors import DiqkdError

__all__ = ["KEYS_FORMAT", "KEYS_VERSION", "KeyBlock", "read_keys", "write_keys"]

KEYS_FORMAT: Final = "diqkd-keys"
KEYS_VERSION: Final = 1

Side = Literal["alice", "bob"]


def _now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, kw_only=True, repr=False)
class KeyBlock:
    """One block of distilled secret key.

    Attributes
    ----------
    key_id
        Canonical lower-case UUID string, identical on Alice's and Bob's side.
    key
        The key bits packed MSB first; the last byte is zero-padded when ``n_bits % 8 != 0``.
    n_bits
        Number of key bits (``≥ 1``).
    certificate
        JSON-ready summary of the certificate the block rests on (ε's, method, statistics).
    created_utc
        ISO-8601 UTC timestamp of distillation.

    The ``repr`` never shows key material.
    """

    key_id: str
    key: bytes
    n_bits: int
    certificate: Mapping[str, Any] = field(default_factory=dict)
    created_utc: str = field(default_factory=_now_utc)

    def __post_init__(self) -> None:
        try:
            canonical = str(uuid.UUID(self.key_id))
        except (ValueError, TypeError, AttributeError):
            raise DiqkdError(f"key_id must be a UUID string, got {self.key_id!r}") from None
        if canonical != self.key_id:
            raise DiqkdError(f"key_id must be a canonical lower-case UUID, got {self.key_id!r}")
        if not isinstance(self.key, bytes):
            raise DiqkdError("key must be bytes (bits packed MSB first)")
        if isinstance(self.n_bits, bool) or not isinstance(self.n_bits, int) or self.n_bits < 1:
            raise DiqkdError(f"n_bits must be a positive integer, got {self.n_bits!r}")
        if len(self.key) != (self.n_bits + 7) // 8:
            raise DiqkdError(
                f"key holds {len(self.key)} bytes, but n_bits={self.n_bits} needs "
                f"{(self.n_bits + 7) // 8}"
            )
        pad = (-self.n_bits) % 8
        if pad and self.key[-1] & ((1 << pad) - 1):
            raise DiqkdError("the padding bits after n_bits must be zero")

    @classmethod
    def from_bits(
        cls,
        bits: NDArray[np.uint8],
        *,
        certificate: Mapping[str, Any] | None = None,
        key_id: str | None = None,
    ) -> KeyBlock:
        """Pack a 0/1 array into a block (a fresh random UUID unless ``key_id`` is given)."""
        arr = np.asarray(bits)
        if arr.ndim != 1 or arr.size == 0:
            raise DiqkdError("key bits must be a non-empty one-dimensional array")
        return cls(
            key_id=key_id if key_id is not None else str(uuid.uuid4()),
            key=np.packbits(arr.astype(np.uint8, copy=False)).tobytes(),
            n_bits=int(arr.size),
            certificate=dict(certificate or {}),
        )

    def bits(self) -> NDArray[np.uint8]:
        """The key as a 0/1 uint8 array of length ``n_bits`` (a fresh copy)."""
        raw = np.frombuffer(self.key, dtype=np.uint8)
        return np.unpackbits(raw)[: self.n_bits].copy()

    def __repr__(self) -> str:
        return f"KeyBlock(key_id={self.key_id!r}, n_bits={self.n_bits}, key=<secret>)"

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-ready form (the key base64-encoded): for the keys file only."""
        return {
            "key_id": self.key_id,
            "n_bits": self.n_bits,
            "key_b64": base64.b64encode(self.key).decode("ascii"),
            "created_utc": self.created_utc,
            "certificate": dict(self.certificate),
        }

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any], *, origin: str = "<keys>") -> KeyBlock:
        """Inverse of :meth:`to_json_dict`; raises :class:`DiqkdError` naming the bad field."""
        if not isinstance(data, Mapping):
            raise DiqkdError(f"{origin}: a key block must be a JSON object")
        missing = {"key_id", "n_bits", "key_b64"} - set(data)
        if missing:
            raise DiqkdError(f"{origin}: key block lacks {', '.join(sorted(missing))}")
        try:
            key = base64.b64decode(str(data["key_b64"]), validate=True)
        except (binascii.Error, ValueError):
            raise DiqkdError(f"{origin}: key_b64 is not valid base64") from None
        cert = data.get("certificate", {})
        if not isinstance(cert, Mapping):
            raise DiqkdError(f"{origin}: certificate must be a JSON object")
        try:
            return cls(
                key_id=str(data["key_id"]),
                key=key,
                n_bits=data["n_bits"],
                certificate=dict(cert),
                created_utc=str(data.get("created_utc", _now_utc())),
            )
        except DiqkdError as exc:
            raise DiqkdError(f"{origin}: {exc}") from None


def write_keys(path: str | os.PathLike[str], blocks: Sequence[KeyBlock], *, side: Side) -> Path:
    """Write ``blocks`` to a keys file atomically, readable by the owner only (mode 0600).

    The file appears complete or not at all: it is written to a temporary file in the same
    directory, flushed to disk and renamed over ``path``.
    """
    if side not in ("alice", "bob"):
        raise DiqkdError(f"side must be 'alice' or 'bob', got {side!r}")
    target = Path(path)
    doc = {
        "format": KEYS_FORMAT,
        "version": KEYS_VERSION,
        "side": side,
        "blocks": [b.to_json_dict() for b in blocks],
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def read_keys(path: str | os.PathLike[str]) -> tuple[Side, list[KeyBlock]]:
    """Read a keys file written by :func:`write_keys`; returns ``(side, blocks)``.

    Raises
    ------
    DiqkdError
        If the file is missing, not JSON, of another format or version, or a block is bad.
    """
    source = Path(path)
    try:
        doc = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DiqkdError(f"{source}: no such keys file") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DiqkdError(f"{source}: not a readable keys file ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != KEYS_FORMAT:
        raise DiqkdError(f"{source}: not a diqkd keys file (format must be {KEYS_FORMAT!r})")
    if doc.get("version") != KEYS_VERSION:
        raise DiqkdError(
            f"{source}: keys file version {doc.get('version')!r} is not supported "
            f"(this diqkd reads version {KEYS_VERSION})"
        )
    side = doc.get("side")
    if side not in ("alice", "bob"):
        raise DiqkdError(f"{source}: side must be 'alice' or 'bob', got {side!r}")
    raw_blocks = doc.get("blocks")
    if not isinstance(raw_blocks, list):
        raise DiqkdError(f"{source}: 'blocks' must be a list")
    blocks = [
        KeyBlock.from_json_dict(b, origin=f"{source}: block {i}") for i, b in enumerate(raw_blocks)
    ]
    return side, blocks
