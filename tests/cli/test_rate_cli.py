"""``diqkd rate``: asymptotic JSON contract, per-distance rates, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diqkd.cli.main import run_cli
from diqkd.security import optimal_noisy_preprocessing_rate, pironio_rate


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run_cli(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_asymptotic_methods(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "rate", "--chsh", "2.7", "--qber", "0.03", "--method", "pironio", "--json"
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["method"] == "pironio"
    assert doc["asymptotic_rate"] == pytest.approx(pironio_rate(2.7, 0.03))
    code, out, _ = run(capsys, "rate", "--chsh", "2.7", "--qber", "0.03", "--json")
    doc = json.loads(out)
    assert doc["method"] == "noisy-preprocessing"
    assert doc["asymptotic_rate"] == pytest.approx(optimal_noisy_preprocessing_rate(2.7, 0.03)[0])


def test_no_key_is_zero_with_reason_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "rate", "--chsh", "2.0", "--qber", "0.1", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["asymptotic_rate"] == 0.0 and doc["reason"]
    assert doc["key_length_bits"] == 0


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["rate", "--chsh", "2.9", "--qber", "0.01"], "2√2"),
        (["rate", "--chsh", "2.5", "--qber", "0.6"], "[0, 0.5]"),
        (["rate", "--chsh", "2.5", "--qber", "-0.1"], "[0, 0.5]"),
        (["rate", "--chsh", "2.5"], "--qber"),
        (["rate", "--chsh", "2.5", "--qber", "0.02", "--rounds", "0"], "--rounds"),
        (["rate", "--chsh", "2.5", "--qber", "0.02", "--method", "magic"], "--method"),
    ],
)
def test_impossible_inputs_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and needle in err


def test_profile_rates_and_plot(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "rate.png"
    code, out, err = run(
        capsys, "rate", "--profile", "ustc-2026", "-d", "11", "100", "--plot", str(target), "--json"
    )
    assert code == 0, err
    doc = json.loads(out)
    near, far = doc["points"]
    assert near["key_per_event"] > far["key_per_event"] > 0
    assert near["plob_bits_per_attempt"] > near["key_bits_per_attempt"]
    assert near["key_bits_per_s"] == pytest.approx(near["key_per_event"] * near["herald_rate_hz"])
    assert target.read_bytes()[:4] == b"\x89PNG"


def test_finite_size_json_contract(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "rate", "--chsh", "2.6713", "--qber", "0.0307", "--rounds", "1200000", "--json"
    )
    assert code == 0, err
    doc = json.loads(out)
    for key in (
        "method",
        "asymptotic_rate",
        "key_length_bits",
        "key_rate_per_round",
        "epsilon_sound",
        "epsilon_complete",
        "test_fraction",
    ):
        assert key in doc
    assert doc["epsilon_sound"] <= 1e-6
    assert doc["key_rate_per_round"] >= 0.112  # the seed's finite-size number
    assert doc["key_length_bits"] == int(doc["key_rate_per_round"] * 1200000 + 0.5)


def test_finite_size_nothing_certified(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "rate", "--chsh", "2.6", "--qber", "0.04", "--rounds", "1000", "--json"
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["key_length_bits"] == 0 and doc["reason"]


def test_finite_size_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["rate", "--chsh", "2.6", "--qber", "0.04", "--rounds", "1000"]
    for extra, needle in (
        (["--test-fraction", "1.5"], "--test-fraction"),
        (["--test-fraction", "x"], "--test-fraction"),
        (["--epsilon-sound", "0"], "--epsilon-sound"),
        (["--leak-ec", "-5"], "--leak-ec"),
    ):
        code, _, err = run(capsys, *base, *extra)
        assert code == 2 and needle in err


def test_numerical_method_matches_analytic(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "rate", "--chsh", "2.6", "--qber", "0.04", "--method", "numerical", "--json"
    )
    assert code == 0
    doc = json.loads(out)
    analytic = optimal_noisy_preprocessing_rate(2.6, 0.04)[0]
    # Certified from the dual, hence a lower bound; BFF is tight for CHSH (≤ 1e-3 here).
    assert analytic - 1e-3 <= doc["asymptotic_rate"] <= analytic + 1e-6


def test_profile_finite_size_rates(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "rate", "-p", "ustc-2026", "-d", "11", "100", "--events", "1200000", "--json"
    )
    assert code == 0, err
    near, far = json.loads(out)["points"]
    assert near["key_per_event"] >= 0.112 and near["key_length_bits"] > 0
    assert far["key_length_bits"] == 0  # 1.2e6 events at 100 km certify nothing
    assert near["key_per_event"] < near["asymptotic_rate"]
