"""``diqkd kme status`` and ``diqkd kme serve`` errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from diqkd.cli.main import run_cli


def test_kme_status_json(
    kme_pair: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIQKD_HOME", str(kme_pair.deployment.data_dir))
    config = kme_pair.deployment.configs["KME-A"]
    code = run_cli(["kme", "status", "--config", str(config), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["kme_id"], doc["site"], doc["peer_kme_id"]) == ("KME-A", "alice", "KME-B")
    assert doc["key_size"] == 256 and doc["stored_key_count"] > 0
    assert doc["counts"]["blocks"] == 8
    code = run_cli(["kme", "status", "--config", str(config)])
    out, _ = capsys.readouterr()
    assert code == 0 and "KME-A" in out


def test_kme_serve_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "kme.toml"
    bad.write_text('kme_id = "KME-A"\nsite = "alice"\ncolour = "red"\n')
    code = run_cli(["kme", "serve", "--config", str(bad)])
    _, err = capsys.readouterr()
    assert code == 2 and err.startswith("error: ") and "colour" in err
    code = run_cli(["kme", "serve", "--config", str(tmp_path / "missing.toml")])
    _, err = capsys.readouterr()
    assert code == 2 and "does not exist" in err


def test_kme_serve_unreadable_tls_files_exit_2(
    kme_pair: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = kme_pair.deployment.configs["KME-A"].read_text()
    config = tmp_path / "kme.toml"
    config.write_text(text.replace('cert = "KME-A.crt"', 'cert = "nowhere.crt"'))
    code = run_cli(["kme", "serve", "--config", str(config)])
    _, err = capsys.readouterr()
    assert code == 2 and "tls.cert" in err
