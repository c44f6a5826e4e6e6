"""Throughput of the DI-QKD samplers against the naive numpy approach, on one core.

Usage::

    python benchmarks/bench_sampling.py [--events N] [--repeats R] [--json]

Rows (events per second, best of ``R`` repeats, numba compiled and warmed up first):

* per-round records: :func:`diqkd.physics.sampler.sample_rounds` (numba kernel) against the
  obvious numpy code a user would write: ``rng.choice(24, size=n, p=joint)`` for the joint
  cell, ``rng.geometric(p, size=n)`` + ``cumsum`` for the herald rounds and times, and the
  decode to ``x, y, a, b``, chunked like ours so both keep memory flat. Target >= 1e7 events/s.
* the same against our pure-numpy reference backend (no target; shows what numba buys).
* counts: :func:`diqkd.physics.sampler.sample_counts` (one multinomial draw) against per-round
  sampling followed by ``bincount``. Target >= 1e8 events/s.

Both sides of a row run in the same process, so the ratio is meaningful on any machine; the
absolute figures are for the machine printed in the header.
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")  # one core: before numba is imported
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any, Literal  # noqa: E402

import numpy as np  # noqa: E402

from diqkd.physics.sampler import (  # noqa: E402
    _joint_table,
    counts_from_rounds,
    sample_counts,
    sample_rounds,
)

#: Herald process of the benchmark (a 10 km-class link: p ~ 1e-4 per attempt, 1 µs attempts).
HERALD: dict[str, Any] = {
    "herald_probability": 1e-4,
    "attempt_period_s": 1e-6,
    "measurement_time_s": 5e-5,
    "duty_cycle": 0.8,
}
CHUNK_EVENTS = 1 << 20
TARGET_ROUNDS_EPS = 1e7
TARGET_COUNTS_EPS = 1e8


def chsh_table(visibility: float = 0.9) -> np.ndarray:
    """``P(a,b|x,y) = (1 + (−1)^(a⊕b) V cos(α_x − β_y))/4``: a noisy Ψ+-like Bell table.

    Alice's angles α = (0, π/2), Bob's β = (π/4, −π/4, 0), so that ``S = 2√2·V`` (Clauser et
    al., PRL 23, 880 (1969)) and y = 2 is aligned with x = 0 for the key.
    """
    alpha = np.array([0.0, math.pi / 2])
    beta = np.array([math.pi / 4, -math.pi / 4, 0.0])
    corr = visibility * np.cos(alpha[:, None] - beta[None, :])
    sign = np.array([[1.0, -1.0], [-1.0, 1.0]])
    table: np.ndarray = (1.0 + corr[:, :, None, None] * sign) / 4.0
    return table


def naive_rounds(table: np.ndarray, n: int, rng: np.random.Generator) -> None:
    """The straightforward numpy sampler (the peer), chunked like ours."""
    joint = _joint_table(table, None, None)
    p = HERALD["herald_probability"]
    period, dead, duty = (
        HERALD[k] for k in ("attempt_period_s", "measurement_time_s", "duty_cycle")
    )
    attempts = 0
    done = 0
    while done < n:
        m = min(CHUNK_EVENTS, n - done)
        cell = rng.choice(24, size=m, p=joint)
        cum = attempts + np.cumsum(rng.geometric(p, size=m))
        rounds = (cum - 1).astype(np.uint64)
        t_s = (cum * period + np.arange(done, done + m) * dead) / duty
        b = (cell & 1).astype(np.uint8)
        a = ((cell >> 1) & 1).astype(np.uint8)
        x = (cell >= 12).astype(np.uint8)
        y = ((cell >> 2) % 3).astype(np.uint8)
        attempts = int(cum[-1])
        done += m
        del rounds, t_s, a, b, x, y


def naive_counts(table: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Counts the naive way: per-round cells, then ``bincount`` (the peer of sample_counts)."""
    joint = _joint_table(table, None, None)
    counts = np.zeros(24, dtype=np.int64)
    done = 0
    while done < n:
        m = min(CHUNK_EVENTS, n - done)
        counts += np.bincount(rng.choice(24, size=m, p=joint), minlength=24)
        done += m
    return counts


def ours_rounds(
    table: np.ndarray, n: int, rng: np.random.Generator, backend: Literal["numba", "numpy"]
) -> None:
    for _chunk in sample_rounds(
        table,
        n_events=n,
        rng=rng,
        chunk_events=CHUNK_EVENTS,
        backend=backend,
        **HERALD,
    ):
        pass


def best_rate(fn: Callable[[int], object], n: int, repeats: int) -> float:
    """Best events/s of ``fn(n)`` over ``repeats`` runs."""
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(n)
        best = min(best, time.perf_counter() - t0)
    return n / best


def run(n_events: int, repeats: int) -> dict[str, Any]:
    table = chsh_table()
    rng = np.random.default_rng(20260101)
    # Warm-up: compile (or load from cache) the kernel and touch every code path.
    ours_rounds(table, 10_000, rng, "numba")
    counts_from_rounds(next(iter(sample_rounds(table, n_events=100, rng=rng, **HERALD))))
    sample_counts(table, n_events=10, rng=rng)

    rows: list[tuple[str, float, float, float | None]] = []
    numba_eps = best_rate(lambda n: ours_rounds(table, n, rng, "numba"), n_events, repeats)
    numpy_eps = best_rate(lambda n: ours_rounds(table, n, rng, "numpy"), n_events, repeats)
    naive_eps = best_rate(lambda n: naive_rounds(table, n, rng), n_events, repeats)
    rows.append(("per-round records (numba)", numba_eps, naive_eps, TARGET_ROUNDS_EPS))
    rows.append(("per-round records (numpy reference)", numpy_eps, naive_eps, None))
    counts_eps = best_rate(
        lambda n: sample_counts(table, n_events=n, rng=rng), n_events, max(repeats, 20)
    )
    naive_counts_eps = best_rate(lambda n: naive_counts(table, n, rng), n_events, repeats)
    rows.append(("counts (multinomial)", counts_eps, naive_counts_eps, TARGET_COUNTS_EPS))
    return {
        "events": n_events,
        "repeats": repeats,
        "machine": f"{platform.processor() or platform.machine()} / {platform.system()}",
        "numpy": np.__version__,
        "threads": os.environ["NUMBA_NUM_THREADS"],
        "rows": [
            {
                "benchmark": name,
                "ours_events_per_s": ours,
                "peer_events_per_s": peer,
                "ratio": ours / peer,
                "target_events_per_s": target,
                "met": None if target is None else ours >= target,
            }
            for name, ours, peer, target in rows
        ],
    }


def print_table(result: dict[str, Any]) -> None:
    header = ("benchmark", "ours (ev/s)", "peer (ev/s)", "ratio", "target (ev/s)", "met")
    lines = [
        (
            r["benchmark"],
            f"{r['ours_events_per_s']:.3g}",
            f"{r['peer_events_per_s']:.3g}",
            f"{r['ratio']:.1f}x",
            "-" if r["target_events_per_s"] is None else f">= {r['target_events_per_s']:.0e}",
            "-" if r["met"] is None else ("yes" if r["met"] else "NO"),
        )
        for r in result["rows"]
    ]
    title = (
        f"diqkd samplers, {result['events']:.3g} events, best of {result['repeats']}, "
        f"1 thread, numpy {result['numpy']}, {result['machine']}"
    )
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text fallback
        widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
        print(title)
        for row in [header, *lines]:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        return
    table = Table(title=title)
    for name in header:
        table.add_column(name, justify="left" if name == "benchmark" else "right")
    for row in lines:
        table.add_row(*row)
    Console(width=None if sys.stdout.isatty() else 110).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="events per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (best kept)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.events < 1 or args.repeats < 1:
        parser.error("--events and --repeats must be >= 1")
    result = run(args.events, args.repeats)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
