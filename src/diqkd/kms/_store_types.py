"""The key store's value types and errors (re-exported by :mod:`diqkd.kms.store`)."""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from diqkd.errors import KeyStoreError

Site = Literal["alice", "bob"]
SITES: Final = ("alice", "bob")


def canonical_uuid(value: object, what: str) -> str:
    try:
        canonical = str(uuid.UUID(str(value)))
    except (ValueError, TypeError):
        raise KeyStoreError(f"{what} must be a UUID string, got {value!r}") from None
    if canonical != value:
        raise KeyStoreError(f"{what} must be a canonical lower-case UUID, got {value!r}")
    return canonical


def positive_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise KeyStoreError(f"{what} must be a positive integer, got {value!r}")
    return value


def sae_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 1024:
        raise KeyStoreError(f"{what} must be a non-empty SAE ID string (at most 1024 characters)")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise KeyStoreError(f"{what} must not contain control characters or lone surrogates")
    return value


class KeyNotFound(KeyStoreError):
    """A key ID is unknown, already delivered to this caller, erased, or not served here."""


class KeyUnknown(KeyNotFound):
    """Some key IDs are not recorded at this site at all (``key_ids``: those IDs).

    At a slave's site this may only mean that the master site's reservation has not arrived
    yet; the KME then asks the peer KME for it (:mod:`diqkd.kms.sync`).
    """

    def __init__(self, message: str, key_ids: tuple[str, ...]) -> None:
        super().__init__(message)
        self.key_ids = key_ids


class KeyNotAuthorized(KeyStoreError):
    """The caller is not named as a slave SAE of the key (the service answers 401)."""


class NotEnoughKey(KeyStoreError):
    """Not enough free key bits at this site for the request (the service answers 503/400)."""


@dataclass(frozen=True, repr=False)
class ServedKey:
    """One key handed to an SAE.

    Attributes
    ----------
    key_id
        Canonical lower-case UUID string of the key (not of the block it came from).
    key
        ``size_bits`` key bits packed MSB first; the last byte is zero-padded when
        ``size_bits % 8 != 0``.
    size_bits
        Key length in bits.

    The ``repr`` never shows key material.
    """

    key_id: str
    key: bytes
    size_bits: int

    def __repr__(self) -> str:
        return f"ServedKey(key_id={self.key_id!r}, size_bits={self.size_bits}, key=<secret>)"


@dataclass(frozen=True)
class Reservation:
    """A key reserved at one site, as sent to the peer site's KME (holds no secret).

    Attributes
    ----------
    key_id
        Canonical lower-case UUID string of the key.
    block_id
        UUID of the block the key was carved from (the same at both sites).
    offset_bits
        Offset of the key's first bit in the block.
    size_bits
        Key length in bits.
    master_sae
        SAE ID of the master SAE that received the key.
    slave_saes
        SAE IDs allowed to fetch the key at the peer site (at least one).
    """

    key_id: str
    block_id: str
    offset_bits: int
    size_bits: int
    master_sae: str
    slave_saes: tuple[str, ...]

    def __post_init__(self) -> None:
        canonical_uuid(self.key_id, "key_id")
        canonical_uuid(self.block_id, "block_id")
        if isinstance(self.offset_bits, bool) or not isinstance(self.offset_bits, int):
            raise KeyStoreError(f"offset_bits must be an integer, got {self.offset_bits!r}")
        if self.offset_bits < 0:
            raise KeyStoreError(f"offset_bits must be ≥ 0, got {self.offset_bits}")
        positive_int(self.size_bits, "size_bits")
        sae_id(self.master_sae, "master_sae")
        if not isinstance(self.slave_saes, tuple) or not self.slave_saes:
            raise KeyStoreError("slave_saes must be a non-empty tuple of SAE IDs")
        for sae in self.slave_saes:
            sae_id(sae, "each slave SAE")
        if len(set(self.slave_saes)) != len(self.slave_saes):
            raise KeyStoreError("slave_saes names an SAE twice")

    @classmethod
    def checked(
        cls,
        *,
        key_id: str,
        block_id: str,
        offset_bits: int,
        size_bits: int,
        master_sae: str,
        slave_saes: tuple[str, ...],
    ) -> Reservation:
        """A reservation from values the store has already checked (no second validation).

        For the store's own reservations only: a canonical uuid4 key ID it made, a stored
        block's ID, and SAE IDs that :meth:`KeyStore.reserve` validated.
        """
        obj = object.__new__(cls)
        object.__setattr__(obj, "key_id", key_id)
        object.__setattr__(obj, "block_id", block_id)
        object.__setattr__(obj, "offset_bits", offset_bits)
        object.__setattr__(obj, "size_bits", size_bits)
        object.__setattr__(obj, "master_sae", master_sae)
        object.__setattr__(obj, "slave_saes", slave_saes)
        return obj

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the KME-to-KME channel)."""
        return {
            "key_id": self.key_id,
            "block_id": self.block_id,
            "offset_bits": self.offset_bits,
            "size_bits": self.size_bits,
            "master_sae": self.master_sae,
            "slave_saes": list(self.slave_saes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reservation:
        """Inverse of :meth:`to_dict`; raises :class:`KeyStoreError` naming the bad field."""
        if not isinstance(data, Mapping):
            raise KeyStoreError("a reservation must be a JSON object")
        fields = ("key_id", "block_id", "offset_bits", "size_bits", "master_sae", "slave_saes")
        missing = [f for f in fields if f not in data]
        if missing:
            raise KeyStoreError(f"reservation lacks {', '.join(missing)}")
        extra = sorted(set(data) - set(fields))
        if extra:
            raise KeyStoreError(f"reservation has unknown fields {', '.join(map(str, extra))}")
        slaves = data["slave_saes"]
        if not isinstance(slaves, list | tuple):
            raise KeyStoreError("reservation slave_saes must be a list of SAE IDs")
        return cls(
            key_id=data["key_id"],
            block_id=data["block_id"],
            offset_bits=data["offset_bits"],
            size_bits=data["size_bits"],
            master_sae=data["master_sae"],
            slave_saes=tuple(slaves),
        )
