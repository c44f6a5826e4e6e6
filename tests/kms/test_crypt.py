"""``diqkd encrypt`` / ``diqkd decrypt`` and the file format underneath them."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from diqkd.cli.main import run_cli
from diqkd.errors import VerificationFailed
from diqkd.kms.client import ClientKey
from diqkd.kms.crypt import (
    MODE_GCM,
    MODE_OTP,
    decrypt_bytes,
    encrypt_bytes,
    otp_key_plan,
    parse_header,
)
from diqkd.kms.errors import KmeError


def _keys(n: int, n_bytes: int) -> list[ClientKey]:
    return [ClientKey(str(uuid.uuid4()), secrets.token_bytes(n_bytes)) for _ in range(n)]


def _fetcher(keys: Sequence[ClientKey]) -> Any:
    by_id = {k.key_id: k for k in keys}

    def fetch(master: str, ids: Sequence[str]) -> list[ClientKey]:
        # (a tampered header may name another master: the tag check catches it)
        return [by_id[i] for i in ids if i in by_id]

    return fetch


@given(st.binary(max_size=2000))
def test_gcm_round_trip(data: bytes) -> None:
    keys = _keys(1, 32)
    blob = encrypt_bytes(data, keys=keys, master_sae="SAE-A")
    header = parse_header(blob)
    assert (header.mode, header.master_sae, header.key_ids) == (
        MODE_GCM,
        "SAE-A",
        (keys[0].key_id,),
    )
    assert decrypt_bytes(blob, fetch_keys=_fetcher(keys)) == data


@given(st.binary(max_size=3000), st.sampled_from([64, 256, 1024, 8192]))
def test_otp_round_trip(data: bytes, max_key_size: int) -> None:
    number, size = otp_key_plan(len(data), max_key_size=max_key_size, min_key_size=64)
    assert size % 8 == 0 and 64 <= size <= max_key_size
    assert number * size >= 8 * (len(data) + 32)
    keys = _keys(number, size // 8)
    blob = encrypt_bytes(data, keys=keys, master_sae="SAE-A", otp=True)
    assert parse_header(blob).mode == MODE_OTP
    assert decrypt_bytes(blob, fetch_keys=_fetcher(keys)) == data


@pytest.mark.parametrize("otp", [False, True])
def test_any_flipped_bit_fails_authentication(otp: bool) -> None:
    data = b"attack at dawn" * 5
    keys = _keys(1, 32 + len(data)) if otp else _keys(1, 32)
    blob = encrypt_bytes(data, keys=keys, master_sae="SAE-A", otp=otp)
    header_size = parse_header(blob).size
    for position in (header_size + 1, len(blob) - 1, len(blob) - 20, 9 + 2):
        tampered = bytearray(blob)
        tampered[position] ^= 0x01
        with pytest.raises((VerificationFailed, KmeError)):
            decrypt_bytes(bytes(tampered), fetch_keys=_fetcher(keys))


def test_wrong_key_fails_authentication() -> None:
    keys = _keys(1, 32)
    blob = encrypt_bytes(b"secret", keys=keys, master_sae="SAE-A")
    wrong = [ClientKey(keys[0].key_id, secrets.token_bytes(32))]
    with pytest.raises(VerificationFailed):
        decrypt_bytes(blob, fetch_keys=_fetcher(wrong))


@pytest.mark.parametrize("blob", [b"", b"DIQKDENC", b"NOTDIQKD" + bytes(40), b"DIQKDENC\x09\x01"])
def test_malformed_files_are_refused(blob: bytes) -> None:
    with pytest.raises(KmeError, match="not a diqkd encrypted file"):
        decrypt_bytes(blob, fetch_keys=_fetcher([]))


def test_keys_too_short_are_refused() -> None:
    with pytest.raises(KmeError):
        encrypt_bytes(b"x" * 100, keys=_keys(1, 32), master_sae="SAE-A", otp=True)
    with pytest.raises(KmeError):
        encrypt_bytes(b"x", keys=_keys(1, 16), master_sae="SAE-A")


def test_client_key_repr_hides_the_key() -> None:
    (key,) = _keys(1, 32)
    assert key.key.hex() not in repr(key) and "secret" in repr(key)


# ------------------------------------------------------------- through two running KMEs


def _sae_args(pair: Any, sae: str, kme: str) -> list[str]:
    dep = pair.deployment
    return [
        "--kme", pair.url(kme),
        "--cert", str(dep.cert(sae)),
        "--key", str(dep.key(sae)),
        "--ca", str(dep.ca),
    ]  # fmt: skip


@pytest.mark.parametrize("otp", [False, True])
def test_encrypt_decrypt_through_two_kmes(
    kme_pair: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], otp: bool
) -> None:
    source = tmp_path / "plain.bin"
    source.write_bytes(secrets.token_bytes(5000) if otp else b"hello QKD\n" * 1000)
    sealed = tmp_path / "sealed.dqk"
    opened = tmp_path / "opened.bin"
    argv = ["encrypt", *_sae_args(kme_pair, "SAE-A", "KME-A"), "--slave", "SAE-B"]
    argv += ["--otp"] if otp else []
    code = run_cli([*argv, str(source), str(sealed), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads(out)
    assert doc["mode"] == ("otp" if otp else "aes-256-gcm")
    assert doc["master_SAE_ID"] == "SAE-A"
    assert (len(doc["key_IDs"]) > 1) == otp
    assert source.read_bytes() not in sealed.read_bytes()
    code = run_cli(
        ["decrypt", *_sae_args(kme_pair, "SAE-B", "KME-B"), str(sealed), str(opened), "--json"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert opened.read_bytes() == source.read_bytes()
    # the key is gone after use: a second decryption fails (exit 1) and writes nothing
    again = tmp_path / "again.bin"
    code = run_cli(["decrypt", *_sae_args(kme_pair, "SAE-B", "KME-B"), str(sealed), str(again)])
    _, err = capsys.readouterr()
    assert code == 1 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert not again.exists()


def test_decrypt_tampered_file_fails_and_writes_nothing(
    kme_pair: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "plain.txt"
    source.write_text("pay 100 to Bob\n")
    sealed = tmp_path / "sealed.dqk"
    argv = ["encrypt", *_sae_args(kme_pair, "SAE-A", "KME-A"), "--slave", "SAE-B"]
    assert run_cli([*argv, str(source), str(sealed)]) == 0
    blob = bytearray(sealed.read_bytes())
    blob[-20] ^= 0x40
    sealed.write_bytes(bytes(blob))
    target = tmp_path / "opened.txt"
    code = run_cli(["decrypt", *_sae_args(kme_pair, "SAE-B", "KME-B"), str(sealed), str(target)])
    _, err = capsys.readouterr()
    assert code == 1
    assert "authentication failed" in err
    assert not target.exists()


def test_decrypt_by_another_sae_is_refused(
    kme_pair: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "plain.txt"
    source.write_text("for SAE-B only\n")
    sealed = tmp_path / "sealed.dqk"
    argv = ["encrypt", *_sae_args(kme_pair, "SAE-A", "KME-A"), "--slave", "SAE-B"]
    assert run_cli([*argv, str(source), str(sealed)]) == 0
    target = tmp_path / "opened.txt"
    code = run_cli(["decrypt", *_sae_args(kme_pair, "SAE-C", "KME-B"), str(sealed), str(target)])
    _, err = capsys.readouterr()
    assert code == 1 and "401" in err
    assert not target.exists()


def test_encrypt_bad_input_exits_2(
    kme_pair: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["encrypt", *_sae_args(kme_pair, "SAE-A", "KME-A"), "--slave", "SAE-B"]
    code = run_cli([*argv, str(tmp_path / "missing"), str(tmp_path / "out")])
    _, err = capsys.readouterr()
    assert code == 2 and "no such file" in err
    not_sealed = tmp_path / "plain.txt"
    not_sealed.write_text("plain")
    code = run_cli(
        ["decrypt", *_sae_args(kme_pair, "SAE-B", "KME-B"), str(not_sealed), str(tmp_path / "o")]
    )
    _, err = capsys.readouterr()
    assert code == 2 and "not a diqkd encrypted file" in err


def test_encrypt_unknown_slave_exits_1(
    kme_pair: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "plain.txt"
    source.write_text("x")
    argv = ["encrypt", *_sae_args(kme_pair, "SAE-A", "KME-A"), "--slave", "NOBODY"]
    code = run_cli([*argv, str(source), str(tmp_path / "out")])
    _, err = capsys.readouterr()
    assert code == 1 and "400" in err and "not known" in err
