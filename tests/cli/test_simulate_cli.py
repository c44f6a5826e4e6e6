"""``diqkd simulate``: records, counts, reproducibility, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from diqkd.cli.main import run_cli
from diqkd.records import read_records


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run_cli(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_simulate_writes_valid_reproducible_records(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, suffix: str
) -> None:
    first, second = tmp_path / f"a{suffix}", tmp_path / f"b{suffix}"
    for target in (first, second):
        code, out, err = run(
            capsys, "simulate", "-d", "11", "-n", "5000", "--seed", "3", "-o", str(target), "--json"
        )
        assert code == 0, err
    doc = json.loads(out)
    assert doc["events"] == 5000 and doc["seed"] == 3
    assert int(np.sum(doc["counts"])) == 5000
    a, b = read_records(first), read_records(second)
    assert len(a) == 5000
    assert a.metadata.seed == 3 and a.metadata.source == "simulation"
    assert a.metadata.profile_name == "ustc-2026" and a.metadata.distance_km == 11.0
    for name in ("round", "t_s", "x", "y", "a", "b"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert doc["simulated_duration_s"] == pytest.approx(float(a.t_s[-1]))
    code, out, _ = run(capsys, "records", "validate", str(first), "--json")
    assert code == 0 and json.loads(out)["valid"] is True


def test_simulate_records_seed_when_not_given(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "r.parquet"
    code, out, _ = run(capsys, "simulate", "-n", "100", "-o", str(target), "--json")
    assert code == 0
    assert read_records(target).metadata.seed == json.loads(out)["seed"]


def test_simulate_counts_only(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "simulate", "--counts", "-n", "1000000000", "--seed", "1", "--json")
    assert code == 0
    doc = json.loads(out)
    assert int(np.sum(doc["counts"])) == 10**9
    assert doc["out"] is None
    assert doc["chsh_observed"] == pytest.approx(doc["chsh_model"], abs=5e-3)


def test_simulate_input_distribution(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "r.parquet"
    code, _, err = run(
        capsys,
        "simulate",
        "-n",
        "2000",
        "--seed",
        "2",
        "-o",
        str(target),
        "--input-probs-y",
        "0.1,0.1,0.8",
    )
    assert code == 0, err
    rec = read_records(target)
    assert rec.metadata.input_probs_y == (0.1, 0.1, 0.8)
    assert np.mean(rec.y == 2) > 0.7


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["simulate", "-n", "10"], "--out"),
        (["simulate", "-n", "10", "--counts", "-d", "1", "2"], "one --distance-km"),
        (["simulate", "-n", "0", "--counts"], "--events"),
        (["simulate", "--counts", "--input-probs-y", "0.5,0.5"], "3 probabilities"),
        (["simulate", "--counts", "--input-probs-x", "0.7,0.7"], "sum to 1"),
        (["simulate", "-n", "10", "-o", "r.txt"], "r.txt"),
    ],
)
def test_simulate_bad_input(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    needle: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert needle in err
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_simulate_refuses_to_overwrite(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "r.parquet"
    target.write_bytes(b"precious")
    code, _, err = run(capsys, "simulate", "-n", "10", "-o", str(target))
    assert code == 2 and "--force" in err
    assert target.read_bytes() == b"precious"
    code, _, _ = run(capsys, "simulate", "-n", "10", "-o", str(target), "--force")
    assert code == 0 and len(read_records(target)) == 10
