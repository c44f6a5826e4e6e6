"""``diqkd kme pki``: the test CA, certificates, keys (0600) and two ready KME configs."""

from __future__ import annotations

import ipaddress
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from diqkd.cli.main import run_cli
from diqkd.kms.config import load_config
from diqkd.kms.errors import KmeConfigError
from diqkd.kms.pki import write_test_pki
from diqkd.kms.server import server_ssl_context


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_pki_cli_writes_ca_certs_keys_and_configs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pki"
    code = run_cli(
        [
            "kme", "pki", "--out", str(out), "--kme", "KME-A", "--kme", "KME-B",
            "--sae", "SAE-1", "--sae", "SAE-2,SAE-3@KME-A", "--json",
        ]
    )  # fmt: skip
    text, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads(text)
    assert doc["sae_kme"] == {"SAE-1": "KME-A", "SAE-2": "KME-B", "SAE-3": "KME-A"}
    ca = _cert(out / "ca.crt")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for name in ("KME-A", "KME-B", "SAE-1", "SAE-2", "SAE-3"):
        cert = _cert(out / f"{name}.crt")
        cert.verify_directly_issued_by(ca)
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
        assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
        key_mode = stat.S_IMODE((out / f"{name}.key").stat().st_mode)
        assert key_mode == 0o600
        assert b"PRIVATE KEY" in (out / f"{name}.key").read_bytes()
    assert stat.S_IMODE((out / "ca.key").stat().st_mode) == 0o600
    kme = _cert(out / "KME-A.crt")
    san = kme.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    assert (
        ExtendedKeyUsageOID.SERVER_AUTH
        in kme.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    )
    # two configs, each other's peer, loadable, TLS files usable
    a, b = load_config(out / "KME-A.toml"), load_config(out / "KME-B.toml")
    assert (a.site, b.site) == ("alice", "bob")
    assert (a.peer.kme_id, b.peer.kme_id) == ("KME-B", "KME-A")
    assert a.peer.url.endswith(f":{b.listen.port}") and b.peer.url.endswith(f":{a.listen.port}")
    assert {s.id for s in a.sae} == {"SAE-1", "SAE-2", "SAE-3"}
    assert a.sae_by_id("SAE-2") is not None and a.sae_by_id("SAE-2").kme == "KME-B"  # type: ignore[union-attr]
    server_ssl_context(a)
    server_ssl_context(b)


def test_pki_secrets_never_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["kme", "pki", "--out", str(tmp_path), "--kme", "K1,K2", "--sae", "S1"]) == 0
    text, _ = capsys.readouterr()
    assert "PRIVATE" not in text


@pytest.mark.parametrize(
    ("kmes", "saes", "match"),
    [
        ([], [], "at least one"),
        (["A B"], [], "must be"),
        (["K1", "K2"], ["K1"], "differ"),
        (["K1", "K2"], ["S1@K9"], "not among"),
        (["K1", "K2"], ["S1", "S1"], "differ"),
    ],
)
def test_pki_bad_names(tmp_path: Path, kmes: list[str], saes: list[str], match: str) -> None:
    with pytest.raises(KmeConfigError, match=match):
        write_test_pki(tmp_path, kmes=kmes, saes=saes)


def test_pki_cli_bad_name_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli(["kme", "pki", "--out", str(tmp_path), "--kme", "bad name"])
    _, err = capsys.readouterr()
    assert code == 2 and err.startswith("error: ")
