"""Tests of the round-record and count samplers (diqkd.physics.sampler).

Statistical tests are seeded, and their tolerances are derived: ``K = 5`` standard deviations
of the estimator under the model (binomial or CLT), which a correct sampler exceeds with
probability about 5.7e-7 per two-sided check; with the seeds fixed, each check is one
deterministic draw from that distribution.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import chi2_contingency

from diqkd.errors import ModelError, RecordsError
from diqkd.physics._sampler_kernels import (
    CDF_LENGTH,
    sample_chunk_numba,
    sample_chunk_numpy,
)
from diqkd.physics.sampler import (
    RoundChunk,
    _cdf_table,
    _joint_table,
    counts_from_rounds,
    sample_counts,
    sample_rounds,
    sample_rounds_array,
)

K_SIGMA = 5.0
COLUMNS = ("round", "t_s", "x", "y", "a", "b")
DTYPES = {"round": np.uint64, "t_s": np.float64, "x": np.uint8, "y": np.uint8}
DTYPES |= {"a": np.uint8, "b": np.uint8}


def bell_table(seed: int, *, zero_cells: bool = True) -> np.ndarray:
    """A generic table P[x, y, a, b] (Dirichlet rows), with two impossible outcomes if asked."""
    rng = np.random.default_rng(seed)
    table = rng.dirichlet(np.ones(4), size=(2, 3)).reshape(2, 3, 2, 2)
    if zero_cells:
        table[0, 2, 0, 1] = 0.0  # a key-round error that never happens
        table[1, 1, 1, 0] = 0.0
        table /= table.sum(axis=(2, 3), keepdims=True)
    return table


UNIFORM = np.full((2, 3, 2, 2), 0.25)
HERALD: dict[str, Any] = {
    "herald_probability": 0.02,
    "attempt_period_s": 2e-6,
    "measurement_time_s": 3e-5,
    "duty_cycle": 0.4,
}


def assert_same_records(r1: RoundChunk, r2: RoundChunk) -> None:
    for name in COLUMNS:
        c1, c2 = r1.columns()[name], r2.columns()[name]
        assert c1.dtype == c2.dtype == DTYPES[name], name
        np.testing.assert_array_equal(c1, c2, err_msg=name, strict=True)


# --------------------------------------------------------------------- backends agree


@pytest.mark.parametrize(
    ("seed", "table", "herald", "extra"),
    [
        (0, UNIFORM, HERALD, {}),
        (1, bell_table(1), HERALD, {"input_probs_x": [0.9, 0.1], "input_probs_y": [0.1, 0, 0.9]}),
        (2, bell_table(2), {"herald_probability": 1.0, "attempt_period_s": 1e-6}, {}),
        (
            3,
            bell_table(3, zero_cells=False),
            {"herald_probability": 3e-7, "attempt_period_s": 5e-9, "measurement_time_s": 1e-3},
            {"start_round": 12_345_678_901, "start_time_s": 1.7e9},
        ),
        (4, bell_table(4), {**HERALD, "duty_cycle": 1.0}, {"chunk_events": 999}),
    ],
)
def test_numba_matches_numpy_reference_bit_for_bit(
    seed: int, table: np.ndarray, herald: dict[str, Any], extra: dict[str, Any]
) -> None:
    kwargs = {"n_events": 20_000, **herald, **extra}
    fast = sample_rounds_array(table, rng=np.random.default_rng(seed), backend="numba", **kwargs)
    ref = sample_rounds_array(table, rng=np.random.default_rng(seed), backend="numpy", **kwargs)
    assert len(fast) == 20_000
    assert_same_records(fast, ref)


def test_kernels_known_answers_on_handmade_uniforms() -> None:
    # Joint law: only cells 0 (p=.25), 2 (p=.25) and 23 (p=.5); cdf boundaries at .25, .5, 1.
    joint = np.zeros(24)
    joint[[0, 2, 23]] = [0.25, 0.25, 0.5]
    cdf = _cdf_table(joint)
    assert cdf.shape == (CDF_LENGTH,)
    # U on a boundary moves to the next cell (cdf[j] <= U counts); V = 0 gives K = 1;
    # p = 1/2: K = ceil(log(1 - V)/log(1/2)), so 1 - V = 0.4 gives ceil(1.32) = 2.
    uniforms = np.array([[0.0, 0.0], [0.2499, 0.5], [0.25, 0.6], [0.5, 0.6], [0.999, 0.875]])
    kwargs: dict[str, Any] = {
        "log_q": math.log1p(-0.5),
        "start_round": 10,
        "attempts_before": 0,
        "heralds_before": 0,
        "start_time_s": 0.0,
        "attempt_period_s": 1.0,
        "measurement_time_s": 0.0,
        "duty_cycle": 1.0,
    }
    for kernel in (sample_chunk_numba, sample_chunk_numpy):
        (rounds, t_s, x, y, a, b), attempts, overflow = kernel(uniforms, cdf, **kwargs)
        cell = ((x.astype(int) * 3 + y) * 2 + a) * 2 + b
        np.testing.assert_array_equal(cell, [0, 0, 2, 23, 23])
        # K = 1, 1, 2, 2, 3  →  attempts 1, 2, 4, 6, 9  →  rounds start_round + attempts - 1.
        np.testing.assert_array_equal(rounds, [10, 11, 13, 15, 18])
        np.testing.assert_array_equal(t_s, [1.0, 2.0, 4.0, 6.0, 9.0])
        assert attempts == 9
        assert not overflow


# --------------------------------------------------------------------- streaming


def test_output_does_not_depend_on_chunk_size() -> None:
    one = sample_rounds_array(bell_table(5), n_events=5_000, rng=np.random.default_rng(7), **HERALD)
    for chunk in (1, 7, 2_000):
        other = sample_rounds_array(
            bell_table(5),
            n_events=5_000,
            rng=np.random.default_rng(7),
            chunk_events=chunk,
            **HERALD,
        )
        assert_same_records(one, other)


def test_stream_continues_across_chunks() -> None:
    chunks = list(
        sample_rounds(
            UNIFORM, n_events=2_500, rng=np.random.default_rng(8), chunk_events=1_000, **HERALD
        )
    )
    assert [len(c) for c in chunks] == [1_000, 1_000, 500]
    for prev, nxt in itertools.pairwise(chunks):
        assert nxt.round[0] > prev.round[-1]
        assert nxt.t_s[0] >= prev.t_s[-1]
        # The gap across a boundary is one inter-herald interval: K·T + M (wall time / duty).
        gap_attempts = int(nxt.round[0]) - int(prev.round[-1])
        expected = (gap_attempts * HERALD["attempt_period_s"] + HERALD["measurement_time_s"]) / 0.4
        assert nxt.t_s[0] - prev.t_s[-1] == pytest.approx(expected, rel=1e-9)


def test_certain_herald_gives_consecutive_rounds_and_exact_times() -> None:
    n, period, dead, duty = 1_000, 1e-6, 5e-6, 0.25
    rec = sample_rounds_array(
        UNIFORM,
        n_events=n,
        rng=np.random.default_rng(9),
        herald_probability=1.0,
        attempt_period_s=period,
        measurement_time_s=dead,
        duty_cycle=duty,
        start_round=100,
        start_time_s=2.0,
    )
    i = np.arange(n, dtype=np.float64)
    np.testing.assert_array_equal(rec.round, 100 + np.arange(n, dtype=np.uint64))
    np.testing.assert_array_equal(rec.t_s, 2.0 + ((i + 1) * period + i * dead) / duty)


def test_two_uniforms_per_event_are_consumed() -> None:
    rng, twin = np.random.default_rng(10), np.random.default_rng(10)
    sample_rounds_array(UNIFORM, n_events=1_234, rng=rng, chunk_events=500, **HERALD)
    twin.random(2 * 1_234)
    assert rng.random() == twin.random()


def test_no_events_gives_empty_records() -> None:
    assert list(sample_rounds(UNIFORM, n_events=0, rng=np.random.default_rng(0), **HERALD)) == []
    rec = sample_rounds_array(UNIFORM, n_events=0, rng=np.random.default_rng(0), **HERALD)
    assert len(rec) == 0
    assert {k: v.dtype for k, v in rec.columns().items()} == DTYPES


def test_round_chunk_columns_and_frozen() -> None:
    rec = sample_rounds_array(UNIFORM, n_events=10, rng=np.random.default_rng(0), **HERALD)
    assert tuple(rec.columns()) == COLUMNS
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.x = rec.y  # type: ignore[misc]
    with pytest.raises(RecordsError, match="equal lengths"):
        RoundChunk(round=rec.round, t_s=rec.t_s, x=rec.x[:5], y=rec.y, a=rec.a, b=rec.b)


# --------------------------------------------------------------------- statistics


def test_per_round_statistics_match_the_model() -> None:
    n = 1_000_000
    table = bell_table(11)
    px, py = np.array([0.3, 0.7]), np.array([0.25, 0.25, 0.5])
    p, period, dead, duty = 0.02, 2e-6, 3e-5, 0.4
    rec = sample_rounds_array(
        table,
        n_events=n,
        rng=np.random.default_rng(12),
        input_probs_x=px,
        input_probs_y=py,
        herald_probability=p,
        attempt_period_s=period,
        measurement_time_s=dead,
        duty_cycle=duty,
    )
    counts = counts_from_rounds(rec).astype(np.float64)

    # Conditional outcome law: given N_xy, N_xyab ~ Binomial(N_xy, P(a,b|x,y)).
    n_xy = counts.sum(axis=(2, 3), keepdims=True)
    sigma = np.sqrt(table * (1 - table) / n_xy)
    assert np.all(np.abs(counts / n_xy - table) <= K_SIGMA * sigma)  # σ = 0 cells: exact 0
    # Input frequencies: N_x ~ Binomial(n, p(x)), N_y ~ Binomial(n, p(y)).
    for freq, prob in ((counts.sum(axis=(1, 2, 3)), px), (counts.sum(axis=(0, 2, 3)), py)):
        assert np.all(np.abs(freq / n - prob) <= K_SIGMA * np.sqrt(prob * (1 - prob) / n))

    # Attempts per herald K ~ Geometric(p): mean 1/p, variance (1 − p)/p²; CLT for the mean.
    k = np.diff(rec.round.astype(np.int64), prepend=-1)
    assert abs(k.mean() - 1 / p) <= K_SIGMA * math.sqrt((1 - p) / p**2 / n)
    # Its shape: P(K = 1) = p and P(K > m) = (1 − p)^m at m ≈ 1/p, each a binomial fraction.
    m = round(1 / p)
    for frac, q in (((k == 1).mean(), p), ((k > m).mean(), (1 - p) ** m)):
        assert abs(frac - q) <= K_SIGMA * math.sqrt(q * (1 - q) / n)

    # Inter-herald wall time (K·T + M)/d: mean (T/p + M)/d, sd T·sqrt(1 − p)/(p·d).
    dt = np.diff(rec.t_s)
    expected = (period / p + dead) / duty
    assert abs(dt.mean() - expected) <= K_SIGMA * period * math.sqrt(1 - p) / (
        p * duty
    ) / math.sqrt(n - 1)
    # The first herald has no dead time before it.
    assert rec.t_s[0] == pytest.approx(k[0] * period / duty, rel=1e-12)


def test_count_sampler_agrees_with_per_round_sampler() -> None:
    n = 1_000_000
    table = bell_table(13)
    px, py = np.array([0.5, 0.5]), np.array([0.2, 0.3, 0.5])
    inputs: dict[str, Any] = {"input_probs_x": px, "input_probs_y": py}
    direct = sample_counts(table, n_events=n, rng=np.random.default_rng(14), **inputs)
    rounds = sample_rounds_array(
        table, n_events=n, rng=np.random.default_rng(15), **HERALD, **inputs
    )
    via_rounds = counts_from_rounds(rounds)
    assert direct.dtype == np.int64
    assert direct.shape == (2, 3, 2, 2)
    assert int(direct.sum()) == n == int(via_rounds.sum())
    # Zero-probability cells are never drawn by either sampler.
    assert np.all(direct[table == 0] == 0)
    assert np.all(via_rounds[table == 0] == 0)

    # Two-sample homogeneity test on the 24 cells (impossible cells dropped: their expected
    # count is 0). Under H0 (same law) the p-value is uniform on [0, 1], so a threshold of
    # 1e-4 raises a false alarm for 1 seed in 10⁴; the seeds are fixed, so this is one draw.
    both = np.stack([direct.ravel(), via_rounds.ravel()])
    both = both[:, both.sum(axis=0) > 0]
    assert chi2_contingency(both).pvalue > 1e-4

    # Each (x, y) marginal N_xy ~ Binomial(n, p(x)p(y)).
    q = np.outer(px, py)
    n_xy = direct.sum(axis=(2, 3))
    assert np.all(np.abs(n_xy - n * q) <= K_SIGMA * np.sqrt(n * q * (1 - q)))


def test_count_sampler_handles_huge_runs() -> None:
    table = bell_table(16)
    joint = _joint_table(table, None, None).reshape(2, 3, 2, 2)
    for n in (10**12, 10**15):
        counts = sample_counts(table, n_events=n, rng=np.random.default_rng(17))
        assert int(counts.sum()) == n
        assert np.all(counts[joint == 0] == 0)
        # Per cell N_c ~ Binomial(n, p_c).
        assert np.all(np.abs(counts - n * joint) <= K_SIGMA * np.sqrt(n * joint * (1 - joint)))
    assert not sample_counts(table, n_events=0, rng=np.random.default_rng(0)).any()


# --------------------------------------------------------------------- counts from records


def test_counts_from_rounds_accepts_chunks_and_mappings() -> None:
    stream = list(
        sample_rounds(
            bell_table(18),
            n_events=3_000,
            rng=np.random.default_rng(19),
            chunk_events=1_000,
            **HERALD,
        )
    )
    total = sum(counts_from_rounds(c) for c in stream)
    brute = np.zeros((2, 3, 2, 2), dtype=np.int64)
    for c in stream:
        np.add.at(brute, (c.x, c.y, c.a, c.b), 1)
    np.testing.assert_array_equal(total, brute)
    columns = {"x": [0, 1, 1], "y": [2, 0, 2], "a": [1, 0, 0], "b": [0, 0, 0], "other": [9, 9, 9]}
    counts = counts_from_rounds(columns)
    assert counts.dtype == np.int64
    assert counts[0, 2, 1, 0] == counts[1, 0, 0, 0] == counts[1, 2, 0, 0] == 1
    assert counts.sum() == 3


@pytest.mark.parametrize(
    ("columns", "match"),
    [
        ({"x": [0], "y": [0], "a": [0]}, "lack column 'b'"),
        ({"x": [0], "y": [3], "a": [0], "b": [0]}, "'y' must hold values in 0..2"),
        ({"x": [-1], "y": [0], "a": [0], "b": [0]}, "'x' must hold values in 0..1"),
        ({"x": [0.0], "y": [0], "a": [0], "b": [0]}, "'x' must be a 1-D integer array"),
        ({"x": [0, 1], "y": [0], "a": [0], "b": [0]}, "equal lengths"),
    ],
)
def test_counts_from_rounds_rejects_bad_records(columns: dict[str, list[Any]], match: str) -> None:
    with pytest.raises(RecordsError, match=match):
        counts_from_rounds(columns)


# --------------------------------------------------------------------- validation


def _with(table_edit: tuple[tuple[int, ...], float]) -> np.ndarray:
    table = UNIFORM.copy()
    table[table_edit[0]] = table_edit[1]
    return table


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"correlations": np.full((2, 2, 2, 2), 0.25)}, r"correlations must have shape"),
        ({"correlations": _with(((0, 1, 0, 0), -0.1))}, r"must be >= 0.*\(0, 1, 0, 0\)"),
        ({"correlations": _with(((1, 2, 1, 1), 0.35))}, r"sum to 1.*\(x, y\) = \(1, 2\)"),
        ({"correlations": _with(((0, 0, 0, 0), math.nan))}, r"correlations must be finite"),
        ({"correlations": _with(((0, 0, 0, 0), math.inf))}, r"correlations must be finite"),
        ({"correlations": "not a table"}, r"correlations must be an array of real numbers"),
        ({"input_probs_x": [1.0]}, r"input_probs_x must have shape \(2,\)"),
        ({"input_probs_y": [0.5, 0.6, -0.1]}, r"input_probs_y must be >= 0"),
        ({"input_probs_y": [0.5, 0.2, 0.2]}, r"input_probs_y must sum to 1"),
        ({"herald_probability": 0.0}, r"herald_probability must lie in \(0, 1\]"),
        ({"herald_probability": 1.5}, r"herald_probability must lie in \(0, 1\]"),
        ({"herald_probability": math.nan}, r"herald_probability must be finite"),
        ({"herald_probability": 1e-300}, r"herald_probability .* too small"),
        ({"attempt_period_s": 0.0}, r"attempt_period_s must be > 0"),
        ({"attempt_period_s": math.inf}, r"attempt_period_s must be finite"),
        ({"measurement_time_s": -1e-6}, r"measurement_time_s must be >= 0"),
        ({"duty_cycle": 0.0}, r"duty_cycle must lie in \(0, 1\]"),
        ({"duty_cycle": 1.01}, r"duty_cycle must lie in \(0, 1\]"),
        ({"n_events": -1}, r"n_events must be >= 0"),
        ({"n_events": 1e6}, r"n_events must be an integer.*int\(1e6\)"),
        ({"n_events": True}, r"n_events must be an integer, not a bool"),
        ({"chunk_events": 0}, r"chunk_events must be >= 1"),
        ({"start_round": -1}, r"start_round must be >= 0"),
        ({"start_round": 2**64}, r"start_round must fit in 64 bits"),
        ({"start_time_s": math.nan}, r"start_time_s must be finite"),
        ({"backend": "cuda"}, r"backend must be 'numba' or 'numpy'"),
    ],
)
def test_sample_rounds_rejects_bad_input_when_called(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {
        "correlations": UNIFORM,
        "n_events": 10,
        "rng": np.random.default_rng(0),
    }
    args |= HERALD | kwargs
    with pytest.raises(ModelError, match=match):
        sample_rounds(**args)  # raises at the call, before any chunk is pulled


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"correlations": _with(((0, 0, 1, 1), 0.3))}, r"sum to 1"),
        ({"input_probs_x": [0.5, math.nan]}, r"input_probs_x must be finite"),
        ({"n_events": 2**63}, r"n_events must be < 2\*\*63"),
        ({"n_events": -5}, r"n_events must be >= 0"),
    ],
)
def test_sample_counts_rejects_bad_input(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"correlations": UNIFORM, "n_events": 10} | kwargs
    with pytest.raises(ModelError, match=match):
        sample_counts(rng=np.random.default_rng(0), **args)


def test_round_off_is_tolerated_and_renormalised() -> None:
    table = UNIFORM.copy()
    table[0, 0] = [[0.5 + 1e-13, -1e-13], [0.25, 0.25]]  # tiny negative: clipped to 0
    table[1, 1] *= 1 + 5e-10  # row sums to 1 + 5e-10: renormalised
    joint = _joint_table(table, None, None)
    assert np.all(joint >= 0)
    assert math.isclose(joint.sum(), 1.0, rel_tol=1e-15)
    rec = sample_rounds_array(table, n_events=2_000, rng=np.random.default_rng(0), **HERALD)
    assert not np.any((rec.x == 0) & (rec.y == 0) & (rec.a == 0) & (rec.b == 1))


def test_attempt_counter_overflow_is_an_error() -> None:
    with pytest.raises(ModelError, match="overflowed"):
        sample_rounds_array(
            UNIFORM,
            n_events=10,
            rng=np.random.default_rng(0),
            herald_probability=1.0,
            attempt_period_s=1e-6,
            start_round=2**64 - 5,
        )


# --------------------------------------------------------------------- properties


_prob = st.floats(0.0, 1.0, allow_subnormal=False)


def _normalise(weights: list[float], n: int) -> np.ndarray:
    w = np.array(weights, dtype=np.float64).reshape(-1, n)
    w[w.sum(axis=1) == 0] = 1.0
    out: np.ndarray = (w / w.sum(axis=1, keepdims=True)).ravel()
    return out


@given(
    table=st.lists(_prob, min_size=24, max_size=24),
    px=st.lists(_prob, min_size=2, max_size=2),
    py=st.lists(_prob, min_size=3, max_size=3),
    p=st.floats(1e-6, 1.0),
    duty=st.floats(0.01, 1.0),
    dead_s=st.floats(0.0, 1e-3),
    n=st.integers(0, 60),
    chunk=st.integers(1, 17),
    start_round=st.integers(0, 2**40),
    start_time_s=st.floats(0.0, 1e6),
    seed=st.integers(0, 2**32),
)
def test_records_are_well_formed(
    table: list[float],
    px: list[float],
    py: list[float],
    p: float,
    duty: float,
    dead_s: float,
    n: int,
    chunk: int,
    start_round: int,
    start_time_s: float,
    seed: int,
) -> None:
    P = _normalise(table, 4).reshape(2, 3, 2, 2)
    kwargs: dict[str, Any] = {
        "n_events": n,
        "herald_probability": p,
        "attempt_period_s": 1e-6,
        "measurement_time_s": dead_s,
        "duty_cycle": duty,
        "input_probs_x": _normalise(px, 2),
        "input_probs_y": _normalise(py, 3),
        "chunk_events": chunk,
        "start_round": start_round,
        "start_time_s": start_time_s,
    }
    rec = sample_rounds_array(P, rng=np.random.default_rng(seed), **kwargs)
    ref = sample_rounds_array(P, rng=np.random.default_rng(seed), backend="numpy", **kwargs)
    assert_same_records(rec, ref)
    assert len(rec) == n
    assert np.all(rec.x < 2) and np.all(rec.y < 3) and np.all(rec.a < 2) and np.all(rec.b < 2)
    joint = _joint_table(P, kwargs["input_probs_x"], kwargs["input_probs_y"])
    assert np.all(counts_from_rounds(rec).ravel()[joint == 0] == 0)
    assert np.all(np.diff(rec.round.astype(np.int64)) > 0)
    assert np.all(np.diff(rec.t_s) >= 0)
    if n:
        assert int(rec.round[0]) >= start_round
        assert rec.t_s[0] >= start_time_s
