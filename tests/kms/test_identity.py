"""Caller identity: from the verified certificate only, mapped through the SAE registry."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest

from diqkd.kms.config import parse_config
from diqkd.kms.identity import (
    PEER_STATE_KEY,
    CallerIdentity,
    Registry,
    identity_from_der,
    identity_from_scope,
)
from diqkd.kms.pki import write_test_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pki")
    write_test_pki(out, kmes=["KME-A", "KME-B"], saes=["SAE-A@KME-A", "SAE-B@KME-B"])
    return out


def _der(pki: Path, name: str) -> bytes:
    return ssl.PEM_cert_to_DER_cert((pki / f"{name}.crt").read_text())


def test_identity_from_der(pki: Path) -> None:
    identity = identity_from_der(_der(pki, "SAE-A"))
    assert identity.cn == "SAE-A"
    assert identity.fingerprint.startswith("sha256:") and len(identity.fingerprint) == 71


def test_identity_from_scope_state_and_tls_extension(pki: Path) -> None:
    mine = CallerIdentity(cn="SAE-A", fingerprint="sha256:" + "0" * 64)
    assert identity_from_scope({"state": {PEER_STATE_KEY: mine}}) is mine
    pem = (pki / "SAE-B.crt").read_text()
    scope: dict[str, Any] = {
        "extensions": {"tls": {"client_cert_chain": [pem], "client_cert_error": None}}
    }
    found = identity_from_scope(scope)
    assert found is not None and found.cn == "SAE-B"
    scope["extensions"]["tls"]["client_cert_error"] = "bad"
    assert identity_from_scope(scope) is None
    assert identity_from_scope({}) is None
    # a header or a body claiming an identity is never read
    assert identity_from_scope({"headers": [(b"x-sae-id", b"SAE-A")]}) is None


def _config(sae: list[dict[str, Any]], peer: dict[str, Any] | None = None) -> Any:
    return parse_config(
        {
            "kme_id": "KME-A",
            "site": "alice",
            "tls": {"cert": "a", "key": "a", "ca": "c"},
            "peer": peer
            or {"kme_id": "KME-B", "url": "https://127.0.0.1:1", "ca": "c", "cn": "KME-B"},
            "sae": sae,
        }
    )


def test_registry_matches_every_configured_identity(pki: Path) -> None:
    sae_a = identity_from_der(_der(pki, "SAE-A"))
    sae_b = identity_from_der(_der(pki, "SAE-B"))
    registry = Registry(
        _config(
            [
                {"id": "A", "kme": "KME-A", "cn": "SAE-A"},
                {"id": "B", "kme": "KME-B", "cn": "SAE-B", "fingerprint": sae_b.fingerprint},
            ]
        )
    )
    assert registry.sae_of(sae_a) == "A"
    assert registry.sae_of(sae_b) == "B"
    # same CN, other certificate: the pinned fingerprint refuses it
    impostor = CallerIdentity(cn="SAE-B", fingerprint="sha256:" + "1" * 64)
    assert registry.sae_of(impostor) is None
    assert registry.sae_of(CallerIdentity(cn="nobody", fingerprint="sha256:" + "2" * 64)) is None
    assert registry.sae_of(None) is None
    assert registry.kme_of("B") == "KME-B" and registry.kme_of("Z") is None


def test_peer_identity(pki: Path) -> None:
    kme_b = identity_from_der(_der(pki, "KME-B"))
    assert Registry(_config([])).is_peer(kme_b)
    assert not Registry(_config([])).is_peer(identity_from_der(_der(pki, "SAE-B")))
    pinned = {
        "kme_id": "KME-B",
        "url": "https://127.0.0.1:1",
        "ca": "c",
        "fingerprint": "sha256:" + "3" * 64,
    }
    assert not Registry(_config([], pinned)).is_peer(kme_b)
    assert not Registry(_config([])).is_peer(None)
