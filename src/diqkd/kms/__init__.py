"""Key management: the durable key store and the ETSI GS QKD 014 key manager.

* :class:`KeyStore` (``diqkd.kms.store``): a site's durable key store (SQLite or PostgreSQL).
* :func:`create_app` / :func:`serve`: the ETSI GS QKD 014 V1.1.1 service over mutual TLS, with
  the KME-to-KME channel that carries reservations to the peer site.
* :class:`KmeClient`: a small client for SAEs; :func:`encrypt_bytes` / :func:`decrypt_bytes`:
  file encryption with QKD keys (AES-256-GCM or one-time pad).
* :func:`load_config` / :class:`KmeConfig`: the KME configuration; :func:`write_test_pki`: a
  test CA with KME and SAE certificates.

Names are imported on first use, so that ``import diqkd.kms.store`` does not load the web stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from diqkd.kms.app import create_app
    from diqkd.kms.client import ClientKey, KmeClient
    from diqkd.kms.config import KmeConfig, load_config
    from diqkd.kms.crypt import decrypt_bytes, encrypt_bytes
    from diqkd.kms.errors import KmeClientError, KmeConfigError, KmeError, PeerSyncError
    from diqkd.kms.pki import write_test_pki
    from diqkd.kms.server import serve
    from diqkd.kms.store import (
        KeyNotAuthorized,
        KeyNotFound,
        KeyStore,
        NotEnoughKey,
        Reservation,
        ServedKey,
    )

__all__ = [
    "ClientKey",
    "KeyNotAuthorized",
    "KeyNotFound",
    "KeyStore",
    "KmeClient",
    "KmeClientError",
    "KmeConfig",
    "KmeConfigError",
    "KmeError",
    "NotEnoughKey",
    "PeerSyncError",
    "Reservation",
    "ServedKey",
    "create_app",
    "decrypt_bytes",
    "encrypt_bytes",
    "load_config",
    "serve",
    "write_test_pki",
]

_WHERE = {
    "create_app": "app",
    "ClientKey": "client",
    "KmeClient": "client",
    "KmeConfig": "config",
    "load_config": "config",
    "decrypt_bytes": "crypt",
    "encrypt_bytes": "crypt",
    "KmeClientError": "errors",
    "KmeConfigError": "errors",
    "KmeError": "errors",
    "PeerSyncError": "errors",
    "write_test_pki": "pki",
    "serve": "server",
    "KeyNotAuthorized": "store",
    "KeyNotFound": "store",
    "KeyStore": "store",
    "NotEnoughKey": "store",
    "Reservation": "store",
    "ServedKey": "store",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'diqkd.kms' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"diqkd.kms.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
