"""``diqkd run`` and ``diqkd distill``: JSON contract, stores and files, exit codes 0/1/2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diqkd.cli.main import run_cli
from diqkd.postproc import read_keys
from diqkd.protocol.roles import Bob

EVENTS = "300000"
JSON_KEYS = {
    "events",
    "chsh",
    "qber",
    "aborted",
    "abort_reason",
    "key_bits",
    "key_rate_per_event",
    "epsilon_sound",
}


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DIQKD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DIQKD_MASTER_KEY", raising=False)
    monkeypatch.delenv("DIQKD_MASTER_KEY_FILE", raising=False)
    return tmp_path / "home"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run_cli(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_json_keys_files_and_records(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    prefix = tmp_path / "keys"
    records = tmp_path / "run.parquet"
    code, out, err = cli(
        capsys,
        "run", "--events", EVENTS, "--seed", "4", "--json", "--no-store",
        "--keys-out", str(prefix), "--save-records", str(records),
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc) >= JSON_KEYS
    assert doc["aborted"] is False and doc["abort_reason"] is None
    assert doc["events"] == int(EVENTS) and doc["key_bits"] > 0
    assert doc["key_rate_per_event"] == pytest.approx(doc["key_bits"] / doc["events"])
    assert doc["randomness"] == "seeded-simulation"
    side_a, blocks_a = read_keys(f"{prefix}.alice.json")
    side_b, blocks_b = read_keys(f"{prefix}.bob.json")
    assert (side_a, side_b) == ("alice", "bob")
    assert blocks_a == blocks_b and blocks_a[0].n_bits == doc["key_bits"]
    assert "key_stores" not in doc

    code, out, err = cli(
        capsys, "distill", "--records", str(records), "--seed", "4", "--json", "--no-store",
        "--out", str(tmp_path / "again"),
    )  # fmt: skip
    assert code == 0, err
    again = json.loads(out)
    for key in ("chsh", "qber", "key_bits", "statistic", "leaked_bits"):
        assert again[key] == doc[key], key
    (again_block,) = read_keys(f"{tmp_path / 'again'}.alice.json")[1]
    assert (again_block.key_id, again_block.key) == (blocks_a[0].key_id, blocks_a[0].key)


def test_run_stores_keys_in_both_sites(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    code, out, err = cli(capsys, "run", "--events", EVENTS, "--seed", "2", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc["key_stores"]) == {"alice", "bob"}
    from diqkd.kms.store import KeyStore

    for site in ("alice", "bob"):
        store = KeyStore.open_default(site)  # type: ignore[arg-type]
        try:
            assert sum(store.counts().values()) > 0
        finally:
            store.close()


def test_run_abort_exits_1_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    original = Bob.finish_reconciliation

    def corrupt(self: Bob) -> None:
        original(self)
        self._corrected[3] ^= 1  # type: ignore[index]

    monkeypatch.setattr(Bob, "finish_reconciliation", corrupt)
    prefix = tmp_path / "keys"
    code, out, err = cli(
        capsys, "run", "--events", EVENTS, "--seed", "1", "--json", "--keys-out", str(prefix)
    )
    assert code == 1
    doc = json.loads(out)
    assert doc["aborted"] is True and doc["key_bits"] == 0
    assert "verification failed" in doc["abort_reason"]
    assert "aborted:" in err
    assert not list(tmp_path.glob("keys*"))
    assert not home.exists() or not any(home.rglob("*.sqlite*"))


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["run", "--epsilon-sound", "2"], "--epsilon-sound"),
        (["run", "--reconciliation", "magic"], "--reconciliation"),
        (["run", "--events", "300000", "--distance-km", "400"], "no key can be certified"),
        (["run", "--save-records", "x.csv"], "Parquet"),
        (["distill", "--records", "/nonexistent.parquet"], "no such records file"),
        (["distill", "--records", "x.parquet", "--expected-chsh", "2.7"], "both"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], match: str
) -> None:
    code, out, err = cli(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.startswith("error:") and match in err and err.count("\n") == 1


def test_distill_bad_and_mismatched_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    code, _, err = cli(capsys, "distill", "--records", str(bad))
    assert code == 2 and err.startswith("error:") and err.count("\n") == 1
    records = tmp_path / "r.parquet"
    assert cli(capsys, "run", "--events", EVENTS, "--seed", "6", "--no-store",
               "--save-records", str(records), "--json")[0] == 0  # fmt: skip
    code, _, err = cli(capsys, "distill", "--records", str(records), "--test-fraction", "0.5")
    assert code == 2 and "disagrees" in err


def test_too_short_authentication_key_aborts_cleanly(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    psk = tmp_path / "psk.bin"
    psk.write_bytes(bytes(64))
    code, out, _err = cli(
        capsys, "run", "--events", EVENTS, "--seed", "1", "--json", "--no-store",
        "--auth-key", str(psk), "--keys-out", str(tmp_path / "k"),
    )  # fmt: skip
    assert code == 1
    assert "key pool exhausted" in json.loads(out)["abort_reason"]
    assert not list(tmp_path.glob("k.*"))
