"""``diqkd attack``: strategies list, JSON contract, exit codes 0 (attack ran) and 2 (bad input)."""

from __future__ import annotations

import json

import pytest

from diqkd.cli.main import run_cli

EVENTS = "300000"  # the honest link certifies key from 3 × 10⁵ events (design refuses fewer)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run_cli(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "attack", "--list", "--json")
    assert code == 0
    names = [s["name"] for s in json.loads(out)["strategies"]]
    assert "entangling" in names and "side-channel" in names and "mitm" in names
    code, out, _ = run(capsys, "attack", "--list")
    assert code == 0 and "intercept-resend" in out


def test_abort_is_a_successful_attack_run(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "attack", "--strategy", "mitm", "--events", EVENTS, "--seed", "2", "--json"
    )
    assert code == 0, err
    doc = json.loads(out)
    for key in ("strategy", "chsh", "qber", "aborted", "key_bits", "eve_information_bits"):
        assert key in doc
    assert doc["strategy"] == "mitm" and doc["aborted"] is True and doc["key_bits"] == 0
    assert doc["chsh"] is None  # aborted before the Bell test: null, never NaN


def test_side_channel_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "attack",
        "--strategy",
        "side-channel",
        "--events",
        EVENTS,
        "--distance-km",
        "11",
        "--profile",
        "ustc-2026",
        "--json",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["outside_model"] is True and doc["aborted"] is False
    assert doc["key_bits"] > 0 and doc["eve_information_bits"] == doc["key_bits"]


def test_human_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "attack", "--strategy", "mitm-drop", "--events", EVENTS)
    assert code == 0
    assert "mitm-drop" in out and "aborted" in out


@pytest.mark.parametrize(
    "argv",
    [
        ("attack",),
        ("attack", "--strategy", "tempest"),
        ("attack", "--strategy", "mitm", "--events", "0"),
        ("attack", "--strategy", "mitm", "--seed", "-3"),
        ("attack", "--strategy", "mitm", "--distance-km", "-5"),
        ("attack", "--strategy", "mitm", "--profile", "no-such-profile"),
        ("attack", "--strategy", "mitm", "--events", "1000"),  # certifies no key: refused
    ],
)
def test_bad_input_exits_2(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1
