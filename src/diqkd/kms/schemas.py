# ruff: noqa: N815  (field names are fixed by ETSI GS QKD 014)
"""ETSI GS QKD 014 V1.1.1 data formats (Status, Key request, Key container, Key IDs, Error).

Field names follow the specification exactly (``key_ID``, ``additional_slave_SAE_IDs``…).
Request models forbid unknown fields and take integers strictly (``"5"``, ``5.0`` and ``true``
are not numbers of keys), so a malformed request is a 400, never a guess. Range checks with
the messages the specification fixes live in :mod:`diqkd.kms.service`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

__all__ = [
    "ErrorBody",
    "Key",
    "KeyContainer",
    "KeyIDEntry",
    "KeyIDs",
    "KeyRequest",
    "ReservationBatch",
    "ReservationLookup",
    "ReservationsAccepted",
    "ReservationsFound",
    "Status",
]

_Extension = dict[str, Any]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Response(BaseModel):
    model_config = ConfigDict(frozen=True)


class Status(_Response):
    """Status of the keys between this KME and the slave SAE's KME (ETSI 014 §6.1)."""

    source_KME_ID: str = Field(description="KME ID of this KME")
    target_KME_ID: str = Field(description="KME ID of the KME the slave SAE is attached to")
    master_SAE_ID: str = Field(description="SAE ID of the caller")
    slave_SAE_ID: str = Field(description="SAE ID of the slave SAE in the request path")
    key_size: int = Field(description="default key size in bits")
    stored_key_count: int = Field(description="keys of key_size bits available to the caller")
    max_key_count: int = Field(description="most keys this KME stores")
    max_key_per_request: int = Field(description="most keys in one request")
    max_key_size: int = Field(description="largest key size in bits")
    min_key_size: int = Field(description="smallest key size in bits")
    max_SAE_ID_count: int = Field(description="most additional slave SAEs in one request")
    status_extension: _Extension | None = None


class KeyRequest(_Request):
    """Key request (ETSI 014 §6.2); every field optional."""

    number: StrictInt | None = Field(None, description="number of keys (default 1)")
    size: StrictInt | None = Field(None, description="key size in bits (default key_size)")
    additional_slave_SAE_IDs: list[StrictStr] | None = Field(
        None, description="further slave SAEs that may fetch the keys (multicast)"
    )
    extension_mandatory: list[_Extension] | None = Field(
        None, description="extensions the KME must support (none are supported)"
    )
    extension_optional: list[_Extension] | None = Field(
        None, description="extensions the KME may ignore (all are ignored)"
    )


class Key(_Response):
    """One key of a Key container: its UUID and its bits, base64 (RFC 4648)."""

    key_ID: str
    key: str
    key_ID_extension: _Extension | None = None
    key_extension: _Extension | None = None


class KeyContainer(_Response):
    """Key container (ETSI 014 §6.3)."""

    keys: list[Key]
    key_container_extension: _Extension | None = None


class KeyIDEntry(_Request):
    """One entry of a Key IDs request."""

    key_ID: StrictStr
    key_ID_extension: _Extension | None = None


class KeyIDs(_Request):
    """Key IDs (ETSI 014 §6.4): the keys a slave SAE asks for."""

    key_IDs: list[KeyIDEntry]
    key_IDs_extension: _Extension | None = None


class ErrorBody(_Response):
    """Error (ETSI 014 §6.5)."""

    message: str
    details: list[_Extension] | None = None


class ReservationBatch(_Request):
    """KME-to-KME: reservations made at the sending KME (no secrets)."""

    source_KME_ID: StrictStr
    reservations: list[_Extension]


class ReservationsAccepted(_Response):
    """KME-to-KME: acknowledgement of a :class:`ReservationBatch`."""

    accepted: int


class ReservationLookup(_Request):
    """KME-to-KME: the key IDs a slave SAE named that the asking KME does not know yet."""

    source_KME_ID: StrictStr
    key_IDs: list[StrictStr]


class ReservationsFound(_Response):
    """KME-to-KME: the asked KME's own reservations among the looked-up key IDs (no secrets)."""

    reservations: list[_Extension]
