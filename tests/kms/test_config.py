"""The KME config: frozen, unknown keys refused, every error names the key."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from diqkd.kms.config import (
    KmeConfig,
    load_config,
    normalise_fingerprint,
    parse_config,
    read_master_key,
)
from diqkd.kms.errors import KmeConfigError


def _base() -> dict[str, Any]:
    return {
        "kme_id": "KME-A",
        "site": "alice",
        "tls": {"cert": "a.crt", "key": "a.key", "ca": "ca.crt"},
        "peer": {"kme_id": "KME-B", "url": "https://127.0.0.1:8444", "ca": "ca.crt", "cn": "KME-B"},
        "sae": [
            {"id": "SAE-A", "kme": "KME-A", "cn": "SAE-A"},
            {"id": "SAE-B", "kme": "KME-B", "fingerprint": "AB:" * 31 + "CD"},
        ],
    }


def test_minimal_config_and_defaults(tmp_path: Path) -> None:
    config = parse_config(_base(), base_dir=tmp_path)
    assert config.limits.key_size == 256
    assert config.limits.max_key_per_request == 128
    assert config.limits.min_key_size == 64
    assert config.limits.max_SAE_ID_count == 4
    assert config.tls.cert == tmp_path / "a.crt"
    assert config.sae_by_id("SAE-B").fingerprint == "sha256:" + "ab" * 31 + "cd"  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        config.kme_id = "other"  # type: ignore[misc]


def _with(path: str, value: Any) -> dict[str, Any]:
    data = _base()
    node = data
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return data


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (_with("colour", "red"), "unknown key 'colour'"),
        (_with("limits.key_sise", 8), "unknown key 'limits.key_sise'"),
        (_with("site", "carol"), "site"),
        (_with("listen.port", 70000), "listen.port"),
        (_with("peer.url", "http://x"), "peer.url"),
        (_with("peer.kme_id", "KME-A"), "must differ"),
        (_with("limits.key_size", 250), "multiple of 8"),
        (_with("limits.min_key_size", 512), "min_key_size <= key_size"),
        (_with("sae", [{"id": "S", "kme": "KME-Z", "cn": "S"}]), "neither this KME"),
        (_with("sae", [{"id": "S", "kme": "KME-A"}]), "cn or fingerprint"),
        (_with("sae", [{"id": "S", "kme": "KME-A", "fingerprint": "xyz"}]), "fingerprint"),
        (
            _with(
                "sae",
                [{"id": "S", "kme": "KME-A", "cn": "S"}, {"id": "S", "kme": "KME-B", "cn": "T"}],
            ),
            "appears twice",
        ),
        (
            _with(
                "sae",
                [{"id": "S", "kme": "KME-A", "cn": "X"}, {"id": "T", "kme": "KME-B", "cn": "X"}],
            ),
            "not unique",
        ),
        (_with("sae", [{"id": "", "kme": "KME-A", "cn": "X"}]), "sae"),
    ],
)
def test_bad_configs_name_the_key(data: dict[str, Any], match: str) -> None:
    with pytest.raises(KmeConfigError, match=match):
        parse_config(data)


def test_missing_key_is_named() -> None:
    data = _base()
    del data["tls"]
    with pytest.raises(KmeConfigError, match="missing key 'tls'"):
        parse_config(data)


def test_load_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(KmeConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("kme_id = ")
    with pytest.raises(KmeConfigError, match="not valid TOML"):
        load_config(bad)


def test_master_key_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = secrets.token_bytes(32)
    raw = tmp_path / "raw.key"
    raw.write_bytes(key)
    hexed = tmp_path / "hex.key"
    hexed.write_text(key.hex() + "\n")
    for path in (raw, hexed):
        config = parse_config(_with("store", {"master_key_file": str(path)}))
        assert read_master_key(config.store) == key
    monkeypatch.setenv("KME_TEST_MK", key.hex())
    config = parse_config(_with("store", {"master_key_env": "KME_TEST_MK"}))
    assert read_master_key(config.store) == key
    monkeypatch.setenv("KME_TEST_MK", "too short")
    with pytest.raises(KmeConfigError, match="KME_TEST_MK") as info:
        read_master_key(config.store)
    assert "too short" not in str(info.value)
    monkeypatch.delenv("KME_TEST_MK")
    with pytest.raises(KmeConfigError, match="not set"):
        read_master_key(config.store)
    assert read_master_key(KmeConfig.model_validate(_base()).store) is None
    with pytest.raises(KmeConfigError, match="not both"):
        parse_config(_with("store", {"master_key_env": "X", "master_key_file": "y"}))


def test_fingerprint_forms() -> None:
    canonical = "sha256:" + "0f" * 32
    assert normalise_fingerprint("0F" * 32) == canonical
    assert normalise_fingerprint(":".join(["0f"] * 32)) == canonical
    assert normalise_fingerprint("SHA256:" + "0f" * 32) == canonical
    with pytest.raises(ValueError):
        normalise_fingerprint("0f" * 31)
