"""``benchmarks/fer_pool.py``: FER evidence from many runs is pooled only where it is the same
experiment, and the same frames are never counted twice."""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
fer_pool = importlib.import_module("fer_pool")  # a failed import fails the tests


def _run(tmp: Path, name: str, seed: int, frames: int, **over: Any) -> str:
    row = {
        "n": 1_000_000, "qber": 0.03, "f0": 1.038, "frames": frames, "f_mean": 1.044,
        "f_max": 1.05, "failed_frames": [], "check_refused_words": 0, "iterations_mean": 140.0,
    } | over.pop("row", {})  # fmt: skip
    doc = {
        "f0": None, "max_iterations": 150, "patience": 12, "reveal_fraction": 0.01,
        "seed": seed, "code_family": "pegforest-bsc26j-v12", "wire_version": 2,
        "git_commit": "c0ffee", "git_dirty": False,
    } | over | {"rows": [row]}  # fmt: skip
    path = tmp / name
    path.write_text(json.dumps(doc))
    return str(path)


def test_same_seed_counts_once_and_other_settings_do_not_mix(tmp_path: Path) -> None:
    files = [
        _run(tmp_path, "a.json", 1, 100),
        _run(tmp_path, "b.json", 1, 120, row={"failed_frames": [{"frame": 7}]}),
        _run(tmp_path, "c.json", 2, 50),
        _run(tmp_path, "d.json", 3, 80, row={"f0": 1.03}),  # another first-syndrome target
        _run(tmp_path, "e.json", 4, 80, patience=20),  # another stall rule
    ]
    cells = fer_pool.pool(fer_pool.load(files), same_commit=False)
    assert len(cells) == 3
    main = next(c for c in cells if c["f0"] == 1.038 and c["patience"] == 12)
    # seed 1: the 120-frame run replaces the 100-frame one (same frames), seed 2 adds 50
    assert main["frames"] == 170 and main["failures"] == 1 and main["seeds"] == [1, 2]
    assert len(main["duplicates"]) == 1
    assert main["fer_upper95"] == pytest.approx(fer_pool.fer_upper(1, 170))


def test_runs_without_provenance_or_from_a_dirty_tree_are_refused(tmp_path: Path) -> None:
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"f0": None, "rows": []}))
    with pytest.raises(SystemExit, match="cannot be pooled"):
        fer_pool.load([str(bare)])
    with pytest.raises(SystemExit, match="uncommitted"):
        fer_pool.load([_run(tmp_path, "dirty.json", 1, 10, git_dirty=True)])
    junk = tmp_path / "junk.json"
    junk.write_text("not json")
    with pytest.raises(SystemExit, match="not a bench_ldpc"):
        fer_pool.load([str(junk)])


def test_frames_needed_for_a_bound_of_one_in_a_thousand() -> None:
    # no failure in N frames: the 95 % bound is 1 − 0.05^{1/N}, ≤ 10⁻³ from N = 2995
    exact = math.ceil(math.log(0.05) / math.log(1 - 1e-3))
    assert fer_pool.fer_upper(0, exact) <= 1e-3 < fer_pool.fer_upper(0, exact - 1)
    args = type("A", (), {"target": 1e-3})()
    needed = int(fer_pool.need({"frames": 1000, "failures": 0}, args)[1:])
    assert needed == exact - 1000
    # one failure: more frames (the bound with k = 1 is the 95 % quantile of Beta(2, N − 1))
    one = int(fer_pool.need({"frames": 1000, "failures": 1}, args)[1:])
    assert fer_pool.fer_upper(1, 1000 + one) <= 1e-3 < fer_pool.fer_upper(1, 999 + one)


def test_cells_of_a_format_this_release_does_not_build_are_marked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from diqkd.postproc._ldpc_codes import family_format

    files = [
        _run(tmp_path, "now.json", 1, 100, code_family=family_format("qc")),
        _run(tmp_path, "old.json", 1, 100, code_family="qc-bsc26j-v1"),  # format 1, replaced
    ]
    cells = fer_pool.pool(fer_pool.load(files), same_commit=False)
    assert sorted((c["code_family"], c["current"]) for c in cells) == [
        ("qc-bsc26j-v1", False),
        (family_format("qc"), True),
    ]
    monkeypatch.setattr(sys, "argv", ["fer_pool.py", *files])
    fer_pool.main()
    lines = capsys.readouterr().out.splitlines()[1:]
    assert [line.endswith("(not built now)") for line in lines].count(True) == 1
    assert any(line.endswith("qc-bsc26j-v1 (not built now)") for line in lines)
    monkeypatch.setattr(sys, "argv", ["fer_pool.py", "--current", *files])
    fer_pool.main()
    [line] = capsys.readouterr().out.splitlines()[1:]
    assert line.endswith(family_format("qc"))
