"""The command line: JSON contracts, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from diqkd import __version__
from diqkd.cli.main import expand_variadic, run_cli


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run_cli(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.strip() == f"diqkd {__version__}"


def test_link_json_contract(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "link", "--profile", "ustc-2026", "--distance-km", "11", "50", "100", "--json"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["profile"] == "ustc-2026"
    assert [p["distance_km"] for p in doc["points"]] == [11.0, 50.0, 100.0]
    for point in doc["points"]:
        for key in (
            "distance_km",
            "herald_probability",
            "attempt_rate_hz",
            "herald_rate_hz",
            "fidelity",
            "chsh",
            "qber",
        ):
            assert isinstance(point[key], float)
    assert doc["points"][0]["qber"] < doc["points"][2]["qber"]


def test_link_human_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "link", "-d", "11,100")
    assert code == 0
    assert "fidelity" in out and "QBER" in out and "ustc-2026" in out


def test_link_plot(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "link.png"
    code, _, err = run(capsys, "link", "--distance-km", "11", "100", "--plot", str(target))
    assert code == 0, err
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["link", "--profile", "nope"], "unknown profile 'nope'"),
        (["link", "--distance-km", "-5"], "--distance-km"),
        (["link", "--distance-km", "abc"], "--distance-km"),
        (["link", "--plot", "out.txt"], ".png"),
        (["link", "--bogus"], "--bogus"),
        (["profiles", "show", "nope"], "unknown profile"),
        (["nosuchcommand"], "nosuchcommand"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert needle in lines[0]
    assert "Traceback" not in err


def test_bad_profile_file_names_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    src = Path(__file__).resolve().parents[2] / "src/diqkd/profiles/data/ustc-2026.toml"
    bad = tmp_path / "bad.toml"
    bad.write_text(src.read_text().replace("readout_fidelity = 0.998", "readout_fidelity = 1.5"))
    code, _, err = run(capsys, "link", "--profile", str(bad))
    assert code == 2
    assert "atom.readout_fidelity = 1.5 is out of range; allowed: 0.5 <= value <= 1" in err


def test_profiles_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "profiles", "list", "--json")
    assert code == 0
    names = {p["name"] for p in json.loads(out)["profiles"]}
    assert {"ustc-2026", "generic-spi", "generic-two-photon"} <= names
    code, out, _ = run(capsys, "profiles", "show", "ustc-2026", "--json")
    assert code == 0
    assert json.loads(out)["profile"]["heralding"]["scheme"] == "spi"
    code, out, _ = run(capsys, "profiles", "show", "generic-two-photon")
    assert code == 0 and "photon_indistinguishability" in out
    code, out, _ = run(capsys, "profiles", "schema")
    assert code == 0 and "`atom.readout_fidelity`" in out


def test_expand_variadic() -> None:
    assert expand_variadic(["link", "--distance-km", "11", "50", "--json"]) == [
        "link",
        "--distance-km",
        "11",
        "--distance-km",
        "50",
        "--json",
    ]
    assert expand_variadic(["--distance-km=1,2"]) == ["--distance-km", "1", "--distance-km", "2"]
    assert expand_variadic(["--distance-km", "1e2", "-3"]) == [
        "--distance-km",
        "1e2",
        "--distance-km",
        "-3",
    ]


def test_console_script_exit_codes(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("diqkd")
    if not exe.exists():
        pytest.skip("console script not installed in this environment")
    ok = subprocess.run([str(exe), "link", "--json", "-d", "11"], capture_output=True, text=True)
    assert ok.returncode == 0 and json.loads(ok.stdout)["points"][0]["distance_km"] == 11.0
    bad = subprocess.run([str(exe), "link", "-p", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
