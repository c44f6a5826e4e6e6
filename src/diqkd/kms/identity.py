"""Who is calling: the verified client certificate of the TLS connection, mapped to an ID.

ETSI GS QKD 014 requires mutual TLS and that the KME learns the caller's SAE ID from its client
certificate, never from the request. uvicorn does not put the peer certificate in the ASGI
scope, so :func:`identity_protocol` derives a per-connection HTTP protocol class that reads the
certificate from the transport's ``ssl_object`` once, when the TLS handshake has completed and
the certificate chain has been verified against the configured CA (``ssl.CERT_REQUIRED``), and
hands it to every request of that connection through the scope's ``state``. A server that
implements the ASGI TLS extension (``scope["extensions"]["tls"]["client_cert_chain"]``) is
understood too.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from diqkd.kms.config import KmeConfig

__all__ = [
    "PEER_STATE_KEY",
    "SAE_STATE_KEY",
    "CallerIdentity",
    "Registry",
    "identity_from_der",
    "identity_from_scope",
    "identity_protocol",
]

#: Key under which the per-connection identity travels in ``scope["state"]``.
PEER_STATE_KEY = "diqkd.peer_identity"
#: Key under which the authentication middleware leaves the caller's SAE ID.
SAE_STATE_KEY = "diqkd.sae_id"


@dataclass(frozen=True, slots=True)
class CallerIdentity:
    """The verified certificate of a caller: subject common name and SHA-256 fingerprint."""

    cn: str | None
    fingerprint: str


def identity_from_der(der: bytes, cn: str | None = None) -> CallerIdentity:
    """Identity of a DER certificate (the CN is parsed from it when not given)."""
    fingerprint = "sha256:" + hashlib.sha256(der).hexdigest()
    if cn is None:
        try:
            cert = x509.load_der_x509_certificate(der)
            attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            value = attrs[0].value if attrs else None
            cn = value if isinstance(value, str) else None
        except ValueError:
            cn = None
    return CallerIdentity(cn=cn, fingerprint=fingerprint)


def _cn_from_peercert(info: Mapping[str, Any] | None) -> str | None:
    if not info:
        return None
    for rdn in info.get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return None


def _identity_from_transport(transport: asyncio.BaseTransport) -> CallerIdentity | None:
    ssl_object = transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    return identity_from_der(der, _cn_from_peercert(ssl_object.getpeercert()))


def identity_from_scope(scope: Mapping[str, Any]) -> CallerIdentity | None:
    """The caller's verified certificate identity, or ``None`` when there is none.

    Reads the per-connection value set by :func:`identity_protocol`, else the ASGI TLS
    extension's ``client_cert_chain`` (PEM; first entry is the client's certificate).
    """
    state = scope.get("state")
    if isinstance(state, Mapping):
        found = state.get(PEER_STATE_KEY)
        if isinstance(found, CallerIdentity):
            return found
    extensions = scope.get("extensions")
    tls = extensions.get("tls") if isinstance(extensions, Mapping) else None
    if isinstance(tls, Mapping):
        chain = tls.get("client_cert_chain")
        if chain and isinstance(chain[0], str) and tls.get("client_cert_error") is None:
            try:
                der = ssl.PEM_cert_to_DER_cert(chain[0])
            except ValueError:
                return None
            return identity_from_der(der)
    return None


def identity_protocol(base: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    """A subclass of a uvicorn HTTP protocol that attaches the client certificate identity.

    The identity is computed once per connection in ``connection_made`` (after the handshake,
    which with ``CERT_REQUIRED`` has verified the chain) and put into a per-connection copy of
    the application state, which uvicorn copies into every request scope's ``state``. On server
    shutdown, idle connections are aborted rather than closed with a TLS close_notify exchange.
    """

    class _IdentityProtocol(base):  # type: ignore[valid-type,misc]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            identity = _identity_from_transport(transport)
            state: dict[str, Any] = dict(getattr(self, "app_state", {}))
            state[PEER_STATE_KEY] = identity
            self.app_state = state

        def shutdown(self) -> None:
            # An idle keep-alive connection (e.g. the peer KME's pooled client) is dropped at
            # once: a TLS close_notify exchange would wait for a peer that is not reading.
            cycle = getattr(self, "cycle", None)
            transport = getattr(self, "transport", None)
            if transport is not None and (cycle is None or cycle.response_complete):
                transport.abort()
                return
            super().shutdown()

    _IdentityProtocol.__name__ = f"Identity{base.__name__}"
    _IdentityProtocol.__qualname__ = _IdentityProtocol.__name__
    return _IdentityProtocol


class Registry:
    """The SAE registry of a config, indexed by certificate CN and fingerprint."""

    def __init__(self, config: KmeConfig) -> None:
        self._config = config
        self._by_fp = {e.fingerprint: e for e in config.sae if e.fingerprint is not None}
        self._by_cn = {e.cn: e for e in config.sae if e.cn is not None and e.fingerprint is None}
        self._kme_of = {e.id: e.kme for e in config.sae}

    def sae_of(self, identity: CallerIdentity | None) -> str | None:
        """SAE ID of a verified certificate, ``None`` if no registry entry matches it.

        An entry matches when every identity it configures matches: its fingerprint (if set)
        and its CN (if set).
        """
        if identity is None:
            return None
        entry = self._by_fp.get(identity.fingerprint)
        if entry is not None:
            return entry.id if entry.cn is None or entry.cn == identity.cn else None
        if identity.cn is None:
            return None
        entry = self._by_cn.get(identity.cn)
        return None if entry is None else entry.id

    def is_peer(self, identity: CallerIdentity | None) -> bool:
        """Whether a verified certificate is the peer KME's (fingerprint or CN, as configured)."""
        if identity is None:
            return False
        peer = self._config.peer
        if peer.fingerprint is not None and identity.fingerprint != peer.fingerprint:
            return False
        return peer.cn is None or identity.cn == peer.cn

    def kme_of(self, sae_id: str) -> str | None:
        """KME ID an SAE is attached to (``None`` if the SAE is unknown)."""
        return self._kme_of.get(sae_id)
