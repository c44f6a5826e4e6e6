"""``diqkd reconcile``: formats, JSON contract, exit codes 0/1/2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import diqkd.cli.reconcile_cmd as reconcile_cmd
from diqkd.cli.main import run_cli
from diqkd.errors import VerificationFailed


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run_cli(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def keys(n: int, qber: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, n, dtype=np.uint8)
    return a, a ^ (rng.random(n) < qber).astype(np.uint8)


@pytest.mark.parametrize("fmt", ["packed", "npy", "text"])
def test_reconcile_formats(capsys: pytest.CaptureFixture[str], tmp_path: Path, fmt: str) -> None:
    a, b = keys(8 * 2500, 0.03, 4)
    paths = [tmp_path / f"{name}.{fmt}" for name in ("a", "b")]
    for path, bits in zip(paths, (a, b), strict=True):
        if fmt == "packed":
            path.write_bytes(np.packbits(bits).tobytes())
        elif fmt == "npy":
            with path.open("wb") as fh:
                np.save(fh, bits)
        else:
            path.write_text("".join(map(str, bits)) + "\n")
    code, out, err = run(
        capsys,
        "reconcile",
        "--alice",
        str(paths[0]),
        "--bob",
        str(paths[1]),
        "--format",
        fmt,
        "--seed",
        "3",
        "--json",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["success"] is True and doc["n_bits"] == a.size
    assert doc["method"] == "cascade"
    assert doc["leaked_bits"] == doc["sample_bits"] + doc["correction_bits"] + doc["tag_bits"]
    assert 1.0 <= doc["efficiency_correction"] < 1.3
    assert doc["qber"] == pytest.approx(0.03, abs=0.01)


def test_verification_failure_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = keys(20000, 0.02, 5)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)

    def tampered(*_: object, **__: object) -> None:
        raise VerificationFailed("verification tags differ")

    monkeypatch.setattr(reconcile_cmd, "verify_keys", tampered)
    code, out, _ = run(
        capsys,
        "reconcile",
        "--alice",
        str(tmp_path / "a.npy"),
        "--bob",
        str(tmp_path / "b.npy"),
        "--json",
    )
    assert code == 1
    assert json.loads(out)["success"] is False


@pytest.mark.parametrize(
    ("content_a", "content_b", "needle"),
    [
        ("0101", "011", "equally long"),
        ("", "", "empty"),
        ("01x1", "0101", "only '0' and '1'"),
    ],
)
def test_bad_input_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content_a: str, content_b: str, needle: str
) -> None:
    (tmp_path / "a.txt").write_text(content_a)
    (tmp_path / "b.txt").write_text(content_b)
    code, _, err = run(
        capsys, "reconcile", "--alice", str(tmp_path / "a.txt"), "--bob", str(tmp_path / "b.txt")
    )
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_missing_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(
        capsys, "reconcile", "--alice", str(tmp_path / "nope"), "--bob", str(tmp_path / "nope2")
    )
    assert code == 2 and "no such file" in err


def test_reconcile_with_qc_codes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    a, b = keys(100_000, 0.03, 9)
    for name, bits in (("a", a), ("b", b)):
        with (tmp_path / f"{name}.npy").open("wb") as fh:
            np.save(fh, bits)
    argv = ["reconcile", "--alice", str(tmp_path / "a.npy"), "--bob", str(tmp_path / "b.npy")]
    docs = {}
    for start in ("efficient", "fast"):
        code, out, err = run(
            capsys, *argv, "--method", "ldpc", "--ldpc-codes", "qc", "--ldpc-start", start,
            "--qber", "0.03", "--json",
        )  # fmt: skip
        assert code == 0, err
        doc = docs[start] = json.loads(out)
        assert doc["success"] is True and doc["method"] == "ldpc" and doc["ldpc_codes"] == "qc"
        assert doc["ldpc_start"] == start
    # the throughput point starts at f₀ ≥ 1.15 of h(0.03) (the report divides by h of the
    # frame's actual error rate); the efficient one below it, and leaks less
    assert 1.1 < docs["fast"]["efficiency_correction"] < 1.4
    assert docs["efficient"]["efficiency_correction"] < docs["fast"]["efficiency_correction"]
    code, _, err = run(capsys, *argv, "--method", "ldpc", "--ldpc-start", "slow", "--qber", "0.03")
    assert code == 2 and "slow" in err
    # too short for the QC codes: one readable line, exit 2
    short = tmp_path / "s.txt"
    short.write_text("01" * 5000)
    code, _, err = run(
        capsys, "reconcile", "--alice", str(short), "--bob", str(short), "--method", "ldpc",
        "--ldpc-codes", "qc", "--qber", "0.03",
    )  # fmt: skip
    assert code == 2 and "65536" in err and len(err.strip().splitlines()) == 1
