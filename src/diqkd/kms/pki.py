"""A test PKI for KMEs and SAEs: one CA, server/client certificates, two ready KME configs.

``diqkd kme pki --out DIR --kme KME-A --kme KME-B --sae SAE-A --sae SAE-B`` writes::

    DIR/ca.crt  ca.key                         the test CA (EC P-256, self-signed)
    DIR/<kme>.crt  <kme>.key                   per KME: server and client certificate
                                               (SAN localhost, 127.0.0.1; EKU server+client)
    DIR/<sae>.crt  <sae>.key                   per SAE: client certificate
    DIR/<kme>.toml                             for the first two KMEs: a KME config each

Private keys are unencrypted PEM (PKCS #8) with mode 0600. SAEs are attached to the two KMEs
alternately (the first SAE to the first KME) unless written ``NAME@KME``. This is a *test* PKI:
for production use your own CA and keep its key offline.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from diqkd.kms.errors import KmeConfigError

__all__ = ["PkiResult", "kme_config_toml", "write_test_pki"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_VALID_DAYS = 825


@dataclass(frozen=True)
class PkiResult:
    """What :func:`write_test_pki` wrote (paths only, never key material)."""

    ca_cert: Path
    certificates: dict[str, tuple[Path, Path]]
    configs: dict[str, Path]
    sae_kme: dict[str, str]


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "diqkd test PKI"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _issue(
    cn: str,
    *,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    server: bool,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _new_key()
    now = dt.datetime.now(dt.UTC)
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if server:
        usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
    return key, builder.sign(ca_key, hashes.SHA256())


def _make_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _new_key()
    now = dt.datetime.now(dt.UTC)
    name = _name("diqkd test CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _q(text: str) -> str:
    """A TOML basic string (JSON escapes are valid TOML escapes)."""
    return json.dumps(text)


def kme_config_toml(
    *,
    kme: str,
    site: str,
    port: int,
    peer: str,
    peer_port: int,
    sae_kme: dict[str, str],
    data_dir: str | None = None,
    limits: dict[str, int] | None = None,
    log_level: str = "warning",
    server: dict[str, int] | None = None,
    peer_options: dict[str, float] | None = None,
    store_options: dict[str, float] | None = None,
) -> str:
    """Text of a KME config for a certificate folder written by :func:`write_test_pki`.

    Paths are relative to that folder; ``sae_kme`` maps SAE IDs (= certificate CNs) to the KME
    they are attached to; ``limits`` overrides entries of ``[limits]``, ``server`` adds entries
    to ``[server]``, ``peer_options`` to ``[peer]`` (e.g. ``retry_interval_s``), ``store_options``
    to ``[store]`` (e.g. ``reservation_ttl_s``).
    """
    lim = {
        "key_size": 256,
        "max_key_per_request": 128,
        "min_key_size": 64,
        "max_key_size": 8192,
        "max_SAE_ID_count": 4,
    }
    lim.update(limits or {})
    lines = [
        "# KME config written by 'diqkd kme pki' (test PKI). Serve with:",
        f"#   diqkd kme serve --config {kme}.toml",
        f"kme_id = {_q(kme)}",
        f"site = {_q(site)}",
        "",
        "[listen]",
        'host = "127.0.0.1"',
        f"port = {port}",
        "",
        "[tls]",
        f"cert = {_q(kme + '.crt')}",
        f"key = {_q(kme + '.key')}",
        'ca = "ca.crt"',
        "",
        "[store]",
        "# Empty url: the site's default SQLite store (<data dir>/<site>/keystore.sqlite3, the",
        "# store that 'diqkd run' fills), with its default master key. The data dir is",
        "# data_dir, else $DIQKD_HOME, else the user's data directory.",
        'url = ""',
    ]
    if data_dir is not None:
        lines.append(f"data_dir = {_q(data_dir)}")
    lines += [f"{name} = {value}" for name, value in (store_options or {}).items()]
    lines += [
        "",
        "[peer]",
        f"kme_id = {_q(peer)}",
        f'url = "https://127.0.0.1:{peer_port}"',
        'ca = "ca.crt"',
        f"cn = {_q(peer)}",
        *(f"{name} = {value}" for name, value in (peer_options or {}).items()),
        "",
        "[limits]",
        *(f"{name} = {value}" for name, value in lim.items()),
        "",
        "[server]",
        f"log_level = {_q(log_level)}",
        *(f"{name} = {value}" for name, value in (server or {}).items()),
    ]
    for sae, attached in sae_kme.items():
        lines += ["", "[[sae]]", f"id = {_q(sae)}", f"kme = {_q(attached)}", f"cn = {_q(sae)}"]
    return "\n".join(lines) + "\n"


def write_test_pki(
    out: Path,
    *,
    kmes: Sequence[str],
    saes: Sequence[str],
    port_base: int = 8443,
) -> PkiResult:
    """Write a test CA, certificates for ``kmes`` and ``saes``, and two KME configs.

    Parameters
    ----------
    out
        Output folder (created; existing files of the same names are replaced).
    kmes
        KME names (certificate CNs and KME IDs); configs are written for the first two.
    saes
        SAE names, optionally ``NAME@KME`` to choose the KME the SAE is attached to.
    port_base
        Listening port of the first KME; the second gets ``port_base + 1``.

    Raises
    ------
    KmeConfigError
        If a name is malformed, repeated, or an SAE names an unknown KME.
    """
    if not kmes:
        raise KmeConfigError("give at least one --kme NAME")
    if not 1 <= port_base <= 65534:
        raise KmeConfigError(f"--port-base must lie in 1..65534, got {port_base}")
    sae_kme: dict[str, str] = {}
    for i, spec in enumerate(saes):
        name, _, kme = spec.partition("@")
        if not kme:
            kme = kmes[i % min(len(kmes), 2)]
        sae_kme[name] = kme
    for name in [*kmes, *sae_kme]:
        if not _NAME.match(name):
            raise KmeConfigError(
                f"name {name!r} must be 1-64 letters, digits, '.', '_' or '-' (first: letter "
                "or digit)"
            )
    if len({*kmes, *sae_kme}) != len(kmes) + len(sae_kme) or len(sae_kme) != len(saes):
        raise KmeConfigError("KME and SAE names must all differ")
    for name, kme in sae_kme.items():
        if kme not in kmes:
            raise KmeConfigError(f"SAE {name!r} names KME {kme!r}, which is not among --kme")
    out.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _make_ca()
    _write_key(out / "ca.key", ca_key)
    _write_cert(out / "ca.crt", ca_cert)
    certificates: dict[str, tuple[Path, Path]] = {}
    for name in kmes:
        key, cert = _issue(name, ca_key=ca_key, ca_cert=ca_cert, server=True)
        certificates[name] = (out / f"{name}.crt", out / f"{name}.key")
        _write_cert(out / f"{name}.crt", cert)
        _write_key(out / f"{name}.key", key)
    for name in sae_kme:
        key, cert = _issue(name, ca_key=ca_key, ca_cert=ca_cert, server=False)
        certificates[name] = (out / f"{name}.crt", out / f"{name}.key")
        _write_cert(out / f"{name}.crt", cert)
        _write_key(out / f"{name}.key", key)
    configs: dict[str, Path] = {}
    if len(kmes) >= 2:
        pair = list(kmes[:2])
        for i, (site, kme) in enumerate(zip(("alice", "bob"), pair, strict=True)):
            peer = pair[1 - i]
            attached = {s: k for s, k in sae_kme.items() if k in pair}
            path = out / f"{kme}.toml"
            path.write_text(
                kme_config_toml(
                    kme=kme,
                    site=site,
                    port=port_base + i,
                    peer=peer,
                    peer_port=port_base + 1 - i,
                    sae_kme=attached,
                ),
                encoding="utf-8",
            )
            configs[kme] = path
    return PkiResult(
        ca_cert=out / "ca.crt", certificates=certificates, configs=configs, sae_kme=sae_kme
    )
