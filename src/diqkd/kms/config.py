"""The key manager's configuration: one frozen, validated TOML file per KME.

Example (``diqkd kme pki`` writes two of these, ready to use)::

    kme_id = "KME-A"
    site = "alice"                     # which half of the shared key blocks this KME allocates

    [listen]
    host = "127.0.0.1"
    port = 8443

    [tls]                              # this KME's certificate, key and the CA it trusts for SAEs
    cert = "kme-a.crt"
    key = "kme-a.key"
    ca = "ca.crt"

    [store]
    url = ""                           # empty: the site's default SQLite store
    data_dir = ""                      # empty: $DIQKD_HOME or the user's data directory
    master_key_file = "master-a.key"   # or master_key_env = "DIQKD_KME_A_MASTER_KEY"

    [peer]                             # the KME at the other site (KME-to-KME channel, mTLS)
    kme_id = "KME-B"
    url = "https://127.0.0.1:8444"
    ca = "ca.crt"
    cn = "KME-B"                       # subject CN (or fingerprint) of the peer's certificate

    [limits]
    key_size = 256

    [[sae]]
    id = "SAE-A"
    kme = "KME-A"                      # the KME the SAE is attached to
    cn = "SAE-A"                       # or fingerprint = "sha256:…"

Relative paths are read relative to the config file. Unknown keys are errors; every error
names the offending key.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from diqkd.kms.errors import KmeConfigError

__all__ = [
    "KmeConfig",
    "Limits",
    "ListenConfig",
    "PeerConfig",
    "SaeEntry",
    "ServerConfig",
    "StoreConfig",
    "TlsConfig",
    "load_config",
    "normalise_fingerprint",
    "parse_config",
    "read_master_key",
]

_FINGERPRINT = re.compile(r"^(sha256:)?([0-9a-f]{2}:?){31}[0-9a-f]{2}$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")


def normalise_fingerprint(text: str) -> str:
    """Canonical form ``sha256:<64 lower-case hex>`` of a SHA-256 certificate fingerprint.

    Accepts upper or lower case, with or without colons and the ``sha256:`` prefix.
    """
    value = text.strip().lower()
    if not _FINGERPRINT.match(value):
        raise ValueError(
            f"fingerprint {text!r} is not a SHA-256 fingerprint (64 hex digits, colons allowed, "
            "optional 'sha256:' prefix)"
        )
    return "sha256:" + value.removeprefix("sha256:").replace(":", "")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _check_id(value: str, what: str) -> str:
    if not _ID.match(value):
        raise ValueError(
            f"{what} {value!r} must be 1-128 characters of letters, digits and . _ : @ -, "
            "starting with a letter or digit"
        )
    return value


class ListenConfig(_Frozen):
    """Where the ETSI 014 service listens."""

    host: str = "127.0.0.1"
    port: int = Field(8443, ge=0, le=65535, description="TCP port (0: any free port)")


class TlsConfig(_Frozen):
    """This KME's TLS identity and the CA that signs its SAEs' (and peer's) certificates."""

    cert: Path = Field(description="PEM certificate (chain) of this KME")
    key: Path = Field(description="PEM private key of this KME")
    ca: Path = Field(description="PEM bundle of CAs trusted for client certificates")


class StoreConfig(_Frozen):
    """Where the keys live and how they are protected at rest."""

    url: str = Field("", description="SQLAlchemy URL; empty: the site's default SQLite store")
    data_dir: Path | None = Field(None, description="data directory of the default store")
    master_key_file: Path | None = Field(None, description="file holding the 32-byte master key")
    master_key_env: str | None = Field(None, description="environment variable with the key")
    reservation_ttl_s: float = Field(
        86_400.0,
        ge=0,
        allow_inf_nan=False,
        description=(
            "erase the peer's reservations that a slave SAE has not fetched after this many "
            "seconds (0: never)"
        ),
    )

    @model_validator(mode="after")
    def _one_source(self) -> StoreConfig:
        if self.master_key_file is not None and self.master_key_env is not None:
            raise ValueError("store: give master_key_file or master_key_env, not both")
        return self


class PeerConfig(_Frozen):
    """The KME at the other site, reached over the mutually authenticated KME-to-KME channel."""

    kme_id: str = Field(description="KME ID of the peer")
    url: str = Field(description="https:// base URL of the peer KME")
    ca: Path = Field(description="PEM CA bundle that verifies the peer's server certificate")
    cn: str | None = Field(None, description="subject CN of the peer's certificate")
    fingerprint: str | None = Field(None, description="SHA-256 fingerprint of its certificate")
    timeout_s: float = Field(5.0, gt=0, le=300, description="timeout of one sync call")
    retry_interval_s: float = Field(
        2.0, gt=0, le=3600, description="pause between re-sends of unsynced reservations"
    )

    @field_validator("kme_id")
    @classmethod
    def _kme_id(cls, value: str) -> str:
        return _check_id(value, "peer.kme_id")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError(f"peer.url must start with https:// (got {value!r})")
        return value.rstrip("/")

    @field_validator("fingerprint")
    @classmethod
    def _fp(cls, value: str | None) -> str | None:
        return None if value is None else normalise_fingerprint(value)

    @model_validator(mode="after")
    def _identity(self) -> PeerConfig:
        if self.cn is None and self.fingerprint is None:
            raise ValueError("peer: give cn or fingerprint of the peer KME's certificate")
        return self


class Limits(_Frozen):
    """What Status advertises and enc_keys enforces (sizes in bits)."""

    key_size: int = Field(256, ge=8, description="default key size in bits")
    max_key_count: int = Field(100_000, ge=1, description="most keys the KME stores")
    max_key_per_request: int = Field(128, ge=1, le=100_000, description="most keys per request")
    max_key_size: int = Field(8192, ge=8, description="largest key size in bits")
    min_key_size: int = Field(64, ge=8, description="smallest key size in bits")
    max_SAE_ID_count: int = Field(  # noqa: N815 (the ETSI 014 name)
        4, ge=0, le=1000, description="most additional slave SAEs"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Limits:
        for name in ("key_size", "max_key_size", "min_key_size"):
            if getattr(self, name) % 8:
                raise ValueError(f"limits.{name} must be a multiple of 8 bits")
        if not self.min_key_size <= self.key_size <= self.max_key_size:
            raise ValueError(
                "limits: need min_key_size <= key_size <= max_key_size, got "
                f"{self.min_key_size}, {self.key_size}, {self.max_key_size}"
            )
        return self


class SaeEntry(_Frozen):
    """One SAE of the registry: its ID, the KME it is attached to, its certificate identity."""

    id: str = Field(description="SAE ID")
    kme: str = Field(description="KME ID the SAE is attached to")
    cn: str | None = Field(None, description="subject CN of the SAE's client certificate")
    fingerprint: str | None = Field(None, description="SHA-256 fingerprint of its certificate")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _check_id(value, "sae.id")

    @field_validator("fingerprint")
    @classmethod
    def _fp(cls, value: str | None) -> str | None:
        return None if value is None else normalise_fingerprint(value)

    @model_validator(mode="after")
    def _identity(self) -> SaeEntry:
        if self.cn is None and self.fingerprint is None:
            raise ValueError(f"sae {self.id!r}: give cn or fingerprint of its client certificate")
        return self


class ServerConfig(_Frozen):
    """How the service runs."""

    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "warning"
    access_log: bool = False
    backlog: int = Field(2048, ge=16)
    timeout_keep_alive_s: int = Field(30, ge=1, le=3600)
    prefetch_keys: int = Field(
        512,
        ge=0,
        le=100_000,
        description="most keys per (size, master, slaves) reserved ahead under load (0: none)",
    )
    store_threads: int = Field(
        1, ge=0, le=32, description="threads for store calls (0: on the event loop)"
    )
    graceful_shutdown_s: int = Field(
        5, ge=1, le=600, description="how long a stop waits for open connections"
    )


class KmeConfig(_Frozen):
    """The whole configuration of one KME."""

    kme_id: str = Field(description="this KME's ID (source_KME_ID in Status)")
    site: Literal["alice", "bob"] = Field(description="which site's store this KME serves")
    listen: ListenConfig = ListenConfig()
    tls: TlsConfig
    store: StoreConfig = StoreConfig()
    peer: PeerConfig
    limits: Limits = Limits()
    server: ServerConfig = ServerConfig()
    sae: tuple[SaeEntry, ...] = Field(default=(), description="the SAE registry")

    @field_validator("kme_id")
    @classmethod
    def _kme_id(cls, value: str) -> str:
        return _check_id(value, "kme_id")

    @model_validator(mode="after")
    def _registry(self) -> KmeConfig:
        if self.peer.kme_id == self.kme_id:
            raise ValueError(f"peer.kme_id must differ from kme_id ({self.kme_id!r})")
        seen_ids: set[str] = set()
        seen_cn: dict[str, str] = {}
        seen_fp: dict[str, str] = {}
        for entry in self.sae:
            if entry.id in seen_ids:
                raise ValueError(f"sae: SAE ID {entry.id!r} appears twice")
            seen_ids.add(entry.id)
            if entry.kme not in (self.kme_id, self.peer.kme_id):
                raise ValueError(
                    f"sae {entry.id!r}: kme {entry.kme!r} is neither this KME ({self.kme_id!r}) "
                    f"nor its peer ({self.peer.kme_id!r})"
                )
            if entry.cn is not None:
                if entry.cn in seen_cn or entry.cn == self.peer.cn:
                    raise ValueError(f"sae {entry.id!r}: certificate CN {entry.cn!r} is not unique")
                seen_cn[entry.cn] = entry.id
            if entry.fingerprint is not None:
                if entry.fingerprint in seen_fp or entry.fingerprint == self.peer.fingerprint:
                    raise ValueError(f"sae {entry.id!r}: certificate fingerprint is not unique")
                seen_fp[entry.fingerprint] = entry.id
        return self

    def sae_by_id(self, sae_id: str) -> SaeEntry | None:
        """The registry entry of ``sae_id`` (``None`` if unknown)."""
        for entry in self.sae:
            if entry.id == sae_id:
                return entry
        return None


def load_config(path: str | os.PathLike[str]) -> KmeConfig:
    """Read and validate a KME config file; relative paths are resolved against its folder.

    Raises
    ------
    KmeConfigError
        If the file is missing or not TOML, or a key is unknown, missing or out of range.
    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KmeConfigError(f"KME config {str(source)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KmeConfigError(f"KME config {str(source)!r} cannot be read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise KmeConfigError(f"KME config {str(source)!r}: not valid TOML ({exc})") from None
    return parse_config(data, base_dir=source.resolve().parent, origin=str(source))


def parse_config(
    data: Mapping[str, Any], *, base_dir: Path | None = None, origin: str = "<config>"
) -> KmeConfig:
    """Validate plain data as a :class:`KmeConfig` (paths resolved against ``base_dir``)."""
    try:
        config = KmeConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise KmeConfigError(f"KME config {origin}: {_describe(exc)}") from None
    if base_dir is None:
        return config
    return _resolve_paths(config, base_dir)


def _resolve_paths(config: KmeConfig, base: Path) -> KmeConfig:
    def fix(p: Path | None) -> Path | None:
        return None if p is None else (p if p.is_absolute() else base / p)

    tls = config.tls.model_copy(
        update={"cert": fix(config.tls.cert), "key": fix(config.tls.key), "ca": fix(config.tls.ca)}
    )
    store = config.store.model_copy(
        update={
            "data_dir": fix(config.store.data_dir),
            "master_key_file": fix(config.store.master_key_file),
        }
    )
    peer = config.peer.model_copy(update={"ca": fix(config.peer.ca)})
    return config.model_copy(update={"tls": tls, "store": store, "peer": peer})


def read_master_key(store: StoreConfig) -> bytes | None:
    """The 32-byte master key from the configured file or environment variable.

    The file holds 32 raw bytes, or 64 hex digits, or base64 of 32 bytes; the variable holds
    hex or base64. Returns ``None`` when no source is configured (the store's default applies).

    Raises
    ------
    KmeConfigError
        If the source is missing or does not hold exactly 32 bytes (the key is never printed).
    """
    if store.master_key_file is not None:
        try:
            raw = store.master_key_file.read_bytes()
        except OSError as exc:
            raise KmeConfigError(
                f"store.master_key_file {str(store.master_key_file)!r} cannot be read: "
                f"{exc.strerror or exc}"
            ) from None
        key = raw if len(raw) == 32 else _decode_text_key(raw.strip())
        if key is None:
            raise KmeConfigError(
                f"store.master_key_file {str(store.master_key_file)!r} must hold 32 raw bytes, "
                "64 hex digits or base64 of 32 bytes"
            )
        return key
    if store.master_key_env is not None:
        value = os.environ.get(store.master_key_env)
        if not value:
            raise KmeConfigError(
                f"store.master_key_env: environment variable {store.master_key_env!r} is not set"
            )
        key = _decode_text_key(value.strip().encode("ascii", "replace"))
        if key is None:
            raise KmeConfigError(
                f"store.master_key_env: {store.master_key_env!r} must hold 64 hex digits or "
                "base64 of 32 bytes"
            )
        return key
    return None


def _decode_text_key(text: bytes) -> bytes | None:
    try:
        key = bytes.fromhex(text.decode("ascii"))
        if len(key) == 32:
            return key
    except (ValueError, UnicodeDecodeError):
        pass
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if len(key) == 32 else None


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        kind = err["type"]
        if kind == "extra_forbidden":
            lines.append(f"unknown key {key!r}")
        elif kind == "missing":
            lines.append(f"missing key {key!r}")
        elif kind == "value_error":
            msg = str(err["msg"]).removeprefix("Value error, ")
            lines.append(msg if key == "(top level)" else f"{key}: {msg}")
        else:
            lines.append(f"{key}: {err['msg']} (got {err.get('input')!r})")
    return "; ".join(lines)
