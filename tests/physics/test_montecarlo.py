"""Monte-Carlo records reproduce the model's S and QBER within derived statistical bounds."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from diqkd.physics import (
    chsh_from_correlations,
    counts_from_rounds,
    link_point,
    qber_from_correlations,
    sample_counts,
    sample_rounds,
)
from diqkd.profiles import load_profile
from diqkd.records import RecordsMetadata, RecordsWriter, read_records

K_SIGMA = 5.0  # two-sided false-alarm probability ≈ 6e-7 per check


def chsh_sigma(p: np.ndarray, n_xy: np.ndarray) -> float:
    """σ of the plug-in CHSH estimate: Var Ê_xy = (1 − E_xy²)/n_xy, independent across (x, y)."""
    sign = np.array([[1.0, -1.0], [-1.0, 1.0]])
    e = np.einsum("xyab,ab->xy", p[:, :2], sign)
    return math.sqrt(float(np.sum((1.0 - e**2) / n_xy[:, :2])))


@pytest.mark.parametrize(
    ("profile", "distance_km"), [("ustc-2026", 11.0), ("generic-two-photon", 30.0)]
)
def test_records_reproduce_model_statistics(
    tmp_path: Path, profile: str, distance_km: float
) -> None:
    prof = load_profile(profile)
    lp = link_point(prof, distance_km)
    n = 600_000
    path = tmp_path / "run.parquet"
    meta = RecordsMetadata(
        source="simulation", profile_name=prof.name, distance_km=distance_km, seed=11
    )
    stream = sample_rounds(
        lp.correlations,
        n_events=n,
        rng=np.random.default_rng(11),
        herald_probability=lp.herald_probability,
        attempt_period_s=lp.attempt_period_s,
        measurement_time_s=lp.measurement_time_s,
        duty_cycle=lp.duty_cycle,
        chunk_events=100_000,
    )
    with RecordsWriter(path, meta) as writer:
        for chunk in stream:
            writer.write(chunk.columns())
    records = read_records(path)
    assert len(records) == n
    counts = counts_from_rounds(records.columns())
    n_xy = counts.sum(axis=(2, 3)).astype(float)
    freq = counts / n_xy[:, :, None, None]

    s_hat = chsh_from_correlations(freq)
    assert abs(s_hat - lp.chsh) < K_SIGMA * chsh_sigma(lp.correlations, n_xy)

    q_hat = qber_from_correlations(freq)
    q_sigma = math.sqrt(lp.qber * (1 - lp.qber) / n_xy[0, 2])
    assert abs(q_hat - lp.qber) < K_SIGMA * q_sigma

    # Herald times: mean spacing (T_att/p + T_meas)/d, σ of the mean from the geometric law.
    t = records.t_s
    gaps = np.diff(t)
    p = lp.herald_probability
    mean_gap = (lp.attempt_period_s / p + lp.measurement_time_s) / lp.duty_cycle
    gap_sigma = lp.attempt_period_s * math.sqrt(1 - p) / p / lp.duty_cycle / math.sqrt(len(gaps))
    assert abs(gaps.mean() - mean_gap) < K_SIGMA * gap_sigma


def test_counts_sampler_matches_model_statistics() -> None:
    lp = link_point(load_profile("ustc-2026"), 11.0)
    n = 10**9
    counts = sample_counts(lp.correlations, n_events=n, rng=np.random.default_rng(5))
    n_xy = counts.sum(axis=(2, 3)).astype(float)
    freq = counts / n_xy[:, :, None, None]
    assert abs(chsh_from_correlations(freq) - lp.chsh) < K_SIGMA * chsh_sigma(lp.correlations, n_xy)
    q_sigma = math.sqrt(lp.qber * (1 - lp.qber) / n_xy[0, 2])
    assert abs(qber_from_correlations(freq) - lp.qber) < K_SIGMA * q_sigma
