"""``diqkd encrypt`` / ``diqkd decrypt``: protect a file with a QKD key from a KME.

Exit 0 on success, 1 when the KME refuses or cannot be reached or the file fails
authentication, 2 on bad input.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import typer

from diqkd.cli._common import console, emit_json, fail

__all__ = ["decrypt", "encrypt"]

_KME = typer.Option(..., "--kme", help="Base URL of this SAE's KME (https://host:port).")
_CERT = typer.Option(..., "--cert", help="This SAE's client certificate (PEM).")
_KEY = typer.Option(..., "--key", help="This SAE's private key (PEM).")
_CA = typer.Option(..., "--ca", help="CA bundle that verifies the KME (PEM).")


def _failure(message: str) -> typer.Exit:
    sys.stderr.write(f"error: {' '.join(message.split())}\n")
    return typer.Exit(1)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise fail(f"{path}: no such file") from None
    except OSError as exc:
        raise fail(f"{path}: cannot read ({exc.strerror or exc})") from None


def _write_atomic(path: Path, data: bytes) -> None:
    path = path.resolve()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cn_of(cert: Path) -> str:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        parsed = x509.load_pem_x509_certificate(_read(cert))
    except ValueError:
        raise fail(f"{cert}: not a PEM certificate") from None
    attrs = parsed.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs or not isinstance(attrs[0].value, str):
        raise fail(f"{cert}: the certificate has no subject CN; give --sae-id")
    return attrs[0].value


def _check_out(source: Path, target: Path) -> None:
    if not target.resolve().parent.is_dir():
        raise fail(f"{target}: the folder does not exist")
    if source.resolve() == target.resolve():
        raise fail("the output file must differ from the input file")


def encrypt(
    source: Path = typer.Argument(..., help="File to encrypt."),
    target: Path = typer.Argument(..., help="Encrypted file to write."),
    kme: str = _KME,
    cert: Path = _CERT,
    key: Path = _KEY,
    ca: Path = _CA,
    slave: str = typer.Option(..., "--slave", help="SAE ID of the receiver (slave SAE)."),
    otp: bool = typer.Option(
        False, "--otp", help="One-time pad (+ one-time MAC): uses as many key bits as the file."
    ),
    sae_id: str | None = typer.Option(
        None, "--sae-id", help="This SAE's ID (default: the CN of --cert)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Get a fresh key from the KME (enc_keys) and encrypt a file (AES-256-GCM or --otp)."""
    from diqkd.kms.client import ClientKey, KmeClient
    from diqkd.kms.crypt import GCM_KEY_BITS, encrypt_bytes, otp_key_plan
    from diqkd.kms.errors import KmeClientError

    plaintext = _read(source)
    _check_out(source, target)
    master = sae_id or _cn_of(cert)
    try:
        with KmeClient(kme, cert=cert, key=key, ca=ca) as client:
            keys: list[ClientKey] = []
            if otp:
                status = client.status(slave)
                number, size = otp_key_plan(
                    len(plaintext),
                    max_key_size=status.max_key_size,
                    min_key_size=status.min_key_size,
                )
                if number > 65535:
                    raise fail(f"{source}: too large for --otp ({number} keys would be needed)")
                while len(keys) < number:
                    batch = min(status.max_key_per_request, number - len(keys))
                    keys += client.enc_keys(slave, number=batch, size=size)
            else:
                keys = client.enc_keys(slave, number=1, size=GCM_KEY_BITS)
    except KmeClientError as exc:
        raise _failure(f"the KME refused or failed: {exc}") from None
    blob = encrypt_bytes(plaintext, keys=keys, master_sae=master, otp=otp)
    _write_atomic(target, blob)
    doc = {
        "in": str(source),
        "out": str(target),
        "mode": "otp" if otp else "aes-256-gcm",
        "master_SAE_ID": master,
        "slave_SAE_ID": slave,
        "key_IDs": [k.key_id for k in keys],
        "bytes": len(plaintext),
    }
    if as_json:
        emit_json(doc)
    else:
        ids = ", ".join(k.key_id for k in keys[:3]) + (" …" if len(keys) > 3 else "")
        console.print(f"encrypted {source} → {target} ({doc['mode']}, key {ids})")


def decrypt(
    source: Path = typer.Argument(..., help="Encrypted file."),
    target: Path = typer.Argument(..., help="Decrypted file to write (only if authentic)."),
    kme: str = _KME,
    cert: Path = _CERT,
    key: Path = _KEY,
    ca: Path = _CA,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Get the file's key by ID from the KME (dec_keys), verify and decrypt."""
    from diqkd.errors import VerificationFailed
    from diqkd.kms.client import ClientKey, KmeClient
    from diqkd.kms.crypt import decrypt_bytes, parse_header
    from diqkd.kms.errors import KmeClientError

    blob = _read(source)
    _check_out(source, target)
    header = parse_header(blob)
    try:
        with KmeClient(kme, cert=cert, key=key, ca=ca) as client:

            def fetch(master: str, ids: Sequence[str]) -> list[ClientKey]:
                if len(ids) == 1:
                    return client.dec_keys(master, ids)
                step = client.status(master).max_key_per_request
                out: list[ClientKey] = []
                for start in range(0, len(ids), step):
                    out += client.dec_keys(master, ids[start : start + step])
                return out

            plaintext = decrypt_bytes(blob, fetch_keys=fetch)
    except KmeClientError as exc:
        raise _failure(f"the KME refused or failed: {exc}") from None
    except VerificationFailed as exc:
        raise _failure(str(exc)) from None
    _write_atomic(target, plaintext)
    doc = {
        "in": str(source),
        "out": str(target),
        "mode": "otp" if header.mode == 2 else "aes-256-gcm",
        "master_SAE_ID": header.master_sae,
        "key_IDs": list(header.key_ids),
        "bytes": len(plaintext),
    }
    if as_json:
        emit_json(doc)
    else:
        console.print(f"decrypted {source} → {target} ({doc['mode']}, authentic)")
