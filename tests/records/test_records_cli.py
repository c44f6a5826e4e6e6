"""``diqkd records validate|convert`` run on the sub-app with typer's CliRunner."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from typer.testing import CliRunner

from diqkd.cli.records_cmd import app
from diqkd.records import RecordsMetadata, read_records, write_records

runner = CliRunner()


def make_file(tmp_path: Path, meta: RecordsMetadata, make_batch: Callable[..., Any]) -> Path:
    path = tmp_path / "r.parquet"
    write_records(path, [make_batch(300)], meta)
    return path


def test_validate_human(
    tmp_path: Path, meta: RecordsMetadata, make_batch: Callable[..., Any]
) -> None:
    path = make_file(tmp_path, meta, make_batch)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.stdout and "300 rows" in result.stdout
    assert "ustc-2026" in result.stdout and "y=2" in result.stdout
    assert result.stderr == ""


def test_validate_json(
    tmp_path: Path, meta: RecordsMetadata, make_batch: Callable[..., Any]
) -> None:
    path = make_file(tmp_path, meta, make_batch)
    result = runner.invoke(app, ["validate", str(path), "--json", "--batch-rows", "7"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["valid"] is True and doc["n_rows"] == 300
    assert doc["metadata"]["source"] == "simulation"
    assert np.array(doc["counts_xy"]).sum() == 300
    assert np.array(doc["counts_xyab"]).shape == (2, 3, 2, 2)


def test_validate_error_is_one_line_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("round,t_s,x,y,a,b\n0,0.5,0,3,0,0\n")
    for extra in ([], ["--json"]):
        result = runner.invoke(app, ["validate", str(path), *extra])
        assert result.exit_code == 2
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1
        assert lines[0].startswith("error: ")
        assert "row 0 (line 2), column 'y': value 3 out of range {0,1,2}" in lines[0]
    missing = runner.invoke(app, ["validate", str(tmp_path / "nope.parquet")])
    assert missing.exit_code == 2 and "file not found" in missing.stderr


def test_convert_round_trip(
    tmp_path: Path, meta: RecordsMetadata, make_batch: Callable[..., Any]
) -> None:
    path = make_file(tmp_path, meta, make_batch)
    csv = tmp_path / "r.csv"
    back = tmp_path / "back.parquet"
    first = runner.invoke(app, ["convert", str(path), str(csv)])
    assert first.exit_code == 0, first.output
    assert "300 rows" in first.stdout
    second = runner.invoke(app, ["convert", str(csv), str(back), "--json"])
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout) == {"in": str(csv), "out": str(back), "rows": 300}
    original, returned = read_records(path), read_records(back)
    assert original.metadata == returned.metadata
    np.testing.assert_array_equal(original.t_s, returned.t_s)


def test_convert_refuses_to_overwrite(
    tmp_path: Path, meta: RecordsMetadata, make_batch: Callable[..., Any]
) -> None:
    path = make_file(tmp_path, meta, make_batch)
    out = tmp_path / "r.csv"
    out.write_text("keep me")
    result = runner.invoke(app, ["convert", str(path), str(out)])
    assert result.exit_code == 2 and "--force" in result.stderr
    assert out.read_text() == "keep me"
    forced = runner.invoke(app, ["convert", str(path), str(out), "--force"])
    assert forced.exit_code == 0, forced.output
    same = runner.invoke(app, ["convert", str(path), str(path)])
    assert same.exit_code == 2 and "same file" in same.stderr
    bad = runner.invoke(app, ["convert", str(path), str(tmp_path / "r.xlsx")])
    assert bad.exit_code == 2 and "supported formats" in bad.stderr
