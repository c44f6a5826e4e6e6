"""Helpers for the round-record tests: valid metadata and valid random batches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from diqkd.records import RecordsMetadata

Batch = dict[str, npt.NDArray[Any]]


def random_batch(
    rng: np.random.Generator, n: int, *, first_round: int = 0, t0_s: float = 0.0
) -> Batch:
    """``n`` valid rows with rounds from ``first_round`` and times from ``t0_s``."""
    steps = np.cumsum(rng.integers(1, 5, size=n, dtype=np.uint64), dtype=np.uint64)
    rounds = np.uint64(first_round) + (steps - steps[0] if n else steps)
    times = t0_s + np.cumsum(rng.exponential(1e-3, size=n))
    return {
        "round": rounds,
        "t_s": times.astype(np.float64),
        "x": rng.integers(0, 2, size=n, dtype=np.uint8),
        "y": rng.integers(0, 3, size=n, dtype=np.uint8),
        "a": rng.integers(0, 2, size=n, dtype=np.uint8),
        "b": rng.integers(0, 2, size=n, dtype=np.uint8),
    }


@pytest.fixture
def meta() -> RecordsMetadata:
    return RecordsMetadata(
        source="simulation",
        profile_name="ustc-2026",
        profile_hash="ab" * 32,
        distance_km=12.5,
        seed=7,
        created_utc="2026-01-31T12:00:00Z",
        notes="test run",
    )


@pytest.fixture
def make_batch() -> Callable[..., Batch]:
    rng = np.random.default_rng(20260131)

    def make(n: int = 20, *, first_round: int = 0, t0_s: float = 0.0) -> Batch:
        return random_batch(rng, n, first_round=first_round, t0_s=t0_s)

    return make
