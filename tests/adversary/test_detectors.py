"""Predictable-input flags: the Tsirelson check and the records-level input-randomness test."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from diqkd.adversary import (
    TSIRELSON_WIN_PROBABILITY,
    input_randomness_of_records,
    input_randomness_test,
    tsirelson_check,
)
from diqkd.cli.main import run_cli
from diqkd.errors import DiqkdError
from diqkd.physics import protocol_input_probs
from diqkd.records import read_records

GAMMA = 0.08
ALPHA = 1e-3  # significance of the randomness test; a seeded honest sample passes w.p. 1 − α


def chsh_inputs(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    test = rng.random(n) < GAMMA
    x = np.where(test, rng.integers(0, 2, n), 0).astype(np.uint8)
    y = np.where(test, rng.integers(0, 2, n), 2).astype(np.uint8)
    return x, y


def test_tsirelson_constant() -> None:
    assert pytest.approx(math.cos(math.pi / 8) ** 2) == TSIRELSON_WIN_PROBABILITY


def test_tsirelson_flags_super_quantum_scores() -> None:
    m = 20_000
    assert tsirelson_check(m, m).flagged  # S = 4
    check = tsirelson_check(int(0.95 * m), m)  # S = 3.6
    assert check.flagged and check.p_value < 1e-100
    assert "Tsirelson" in check.reason()


def test_tsirelson_threshold_is_the_hoeffding_bound() -> None:
    m, eps = 10_000, 1e-9
    check = tsirelson_check(0, m, epsilon=eps)
    assert check.max_wins == pytest.approx(
        m * TSIRELSON_WIN_PROBABILITY + math.sqrt(m * math.log(1 / eps) / 2)
    )
    just_above = math.floor(check.max_wins) + 1
    assert tsirelson_check(just_above, m, epsilon=eps).flagged
    assert not tsirelson_check(math.floor(check.max_wins), m, epsilon=eps).flagged


def test_tsirelson_quiet_on_quantum_devices() -> None:
    """Seeded games at exactly ω_Q (the worst honest case) are not flagged; ε bounds the rate."""
    rng = np.random.default_rng(11)
    m = 50_000
    for _ in range(20):
        wins = int(rng.binomial(m, TSIRELSON_WIN_PROBABILITY))
        assert not tsirelson_check(wins, m).flagged
    assert not tsirelson_check(0, 0).flagged


def test_tsirelson_rejects_bad_counts() -> None:
    with pytest.raises(DiqkdError):
        tsirelson_check(5, 4)
    with pytest.raises(DiqkdError):
        tsirelson_check(1, 4, epsilon=0.0)


def test_randomness_passes_good_inputs() -> None:
    x, y = chsh_inputs(200_000, np.random.default_rng(3))
    report = input_randomness_test(x, y, input_probs_xy=protocol_input_probs(GAMMA))
    assert report.passed(ALPHA)
    assert report.impossible_inputs == 0
    assert report.frequency_dof == 4  # five cells of positive probability
    assert report.serial_dof == 24


def test_randomness_catches_bias() -> None:
    rng = np.random.default_rng(4)
    n = 200_000
    test = rng.random(n) < GAMMA
    x = np.where(test, rng.random(n) < 0.6, 0).astype(np.uint8)  # x = 1 with 60 %
    y = np.where(test, rng.integers(0, 2, n), 2).astype(np.uint8)
    report = input_randomness_test(x, y, input_probs_xy=protocol_input_probs(GAMMA))
    assert not report.passed(ALPHA)
    assert report.frequency_p_value < 1e-6


def test_randomness_catches_serial_correlation() -> None:
    """Each input repeated once: right frequencies, wrong pairs."""
    x, y = chsh_inputs(100_000, np.random.default_rng(5))
    x2, y2 = np.repeat(x, 2), np.repeat(y, 2)
    report = input_randomness_test(x2, y2, input_probs_xy=protocol_input_probs(GAMMA))
    assert report.frequency_p_value > ALPHA
    assert report.serial_p_value < 1e-6
    assert not report.passed(ALPHA)


def test_randomness_impossible_inputs() -> None:
    x, y = chsh_inputs(10_000, np.random.default_rng(6))
    x[0], y[0] = 1, 2  # x = 1 in a key round has probability 0 in the CHSH protocol
    report = input_randomness_test(x, y, input_probs_xy=protocol_input_probs(GAMMA))
    assert report.impossible_inputs == 1 and report.p_value == 0.0


def test_randomness_on_records_metadata() -> None:
    rng = np.random.default_rng(7)
    n = 60_000
    x = rng.integers(0, 2, n).astype(np.uint8)
    y = rng.integers(0, 3, n).astype(np.uint8)
    meta = SimpleNamespace(
        input_probs_xy=None, input_probs_x=(0.5, 0.5), input_probs_y=(1 / 3,) * 3
    )
    report = input_randomness_of_records(SimpleNamespace(x=x, y=y, metadata=meta))
    assert report.passed(ALPHA)
    assert report.to_dict()["rounds"] == n


def test_randomness_rejects_bad_input() -> None:
    with pytest.raises(DiqkdError):
        input_randomness_test([0, 1], [0], input_probs_xy=protocol_input_probs(GAMMA))
    with pytest.raises(DiqkdError):
        input_randomness_test([0], [3], input_probs_xy=protocol_input_probs(GAMMA))
    with pytest.raises(DiqkdError):
        input_randomness_test([0], [0], input_probs_xy=np.ones((2, 3)))


def test_randomness_on_a_records_file(tmp_path: Path) -> None:
    """Works on a real records file (``diqkd simulate`` output: x, y independent, uniform)."""
    path = tmp_path / "run.parquet"
    assert run_cli(["simulate", "--events", "30000", "--seed", "3", "--out", str(path)]) == 0
    report = input_randomness_of_records(read_records(path))
    assert report.rounds == 30_000 and report.frequency_dof == 5 and report.serial_dof == 35
    assert report.passed(ALPHA)
