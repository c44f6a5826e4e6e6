"""``diqkd simulate``: heralded round records (or cell counts) from the link model."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import typer
from numpy.typing import NDArray
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from diqkd.cli._common import console, emit_json, err_console, fail, fmt
from diqkd.physics import LinkPoint, link_point
from diqkd.physics.correlations import chsh_from_correlations, qber_from_correlations
from diqkd.physics.sampler import counts_from_rounds, sample_counts, sample_rounds
from diqkd.profiles import load_profile
from diqkd.records import RecordsMetadata, write_csv_records, write_records
from diqkd.rng import fresh_seed, make_rng

__all__ = ["simulate"]


def _probs(text: str | None, size: int, option: str) -> tuple[float, ...]:
    if text is None:
        return tuple([1.0 / size] * size)
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise fail(f"{option} takes {size} comma-separated probabilities, got {text!r}") from None
    if len(values) != size or any(not (0 <= v <= 1) for v in values):
        raise fail(f"{option} takes {size} probabilities in [0, 1], got {text!r}")
    if abs(sum(values) - 1.0) > 1e-9:
        raise fail(f"{option} probabilities must sum to 1, got {text!r}")
    return values


def simulate(
    profile: str = typer.Option("ustc-2026", "--profile", "-p", help="Profile name or TOML file."),
    distance_km: list[float] = typer.Option(
        [11.0], "--distance-km", "-d", help="Fiber length, km."
    ),
    events: int = typer.Option(100_000, "--events", "-n", min=1, help="Heralded events to draw."),
    seed: int | None = typer.Option(
        None, "--seed", min=0, help="Simulation seed (default: fresh entropy, recorded)."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Records file to write (.parquet, or .csv)."
    ),
    counts_only: bool = typer.Option(
        False, "--counts", help="Draw only the counts per (x,y,a,b) cell (fast, for long runs)."
    ),
    input_probs_x: str | None = typer.Option(None, help="p(x=0),p(x=1); default uniform."),
    input_probs_y: str | None = typer.Option(None, help="p(y=0),p(y=1),p(y=2); default uniform."),
    chunk_events: int = typer.Option(1 << 20, min=1, help="Events per chunk (memory bound)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output file."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Simulate heralded Bell-test rounds of a link and write them as round records."""
    if len(distance_km) != 1:
        raise fail("simulate takes one --distance-km")
    distance = distance_km[0]
    if not counts_only and out is None:
        raise fail("give --out FILE for the records (or --counts for counts only)")
    if out is not None and out.exists() and not force:
        raise fail(f"{str(out)!r} exists; choose another --out or pass --force")
    px, py = (
        _probs(input_probs_x, 2, "--input-probs-x"),
        _probs(input_probs_y, 3, "--input-probs-y"),
    )
    prof = load_profile(profile)
    lp = link_point(prof, distance)
    if seed is None:
        seed = fresh_seed()
    rng = make_rng(seed)
    started = time.perf_counter()
    if counts_only:
        counts = sample_counts(
            lp.correlations, n_events=events, rng=rng, input_probs_x=px, input_probs_y=py
        )
        duration_s = (lp.attempt_period_s / lp.herald_probability + lp.measurement_time_s) * (
            events / lp.duty_cycle
        )
    elif out is not None:
        meta = RecordsMetadata(
            source="simulation",
            profile_name=prof.name,
            profile_hash=prof.content_hash(),
            distance_km=distance,
            seed=seed,
            input_probs_x=(px[0], px[1]),
            input_probs_y=(py[0], py[1], py[2]),
            notes=f"diqkd simulate: model S={lp.chsh:.6f}, QBER={lp.qber:.6f}",
        )
        counts, duration_s = _write_records(
            out, lp, meta, rng, events, chunk_events=chunk_events, quiet=as_json, overwrite=force
        )
    elapsed = time.perf_counter() - started
    freq = counts / np.maximum(counts.sum(axis=(2, 3), keepdims=True), 1)
    summary = {
        "profile": prof.name,
        "distance_km": distance,
        "events": events,
        "seed": seed,
        "out": str(out) if out is not None else None,
        "counts": counts.tolist(),
        "chsh_observed": chsh_from_correlations(freq),
        "qber_observed": qber_from_correlations(freq),
        "chsh_model": lp.chsh,
        "qber_model": lp.qber,
        "simulated_duration_s": duration_s,
        "wall_time_s": elapsed,
    }
    if as_json:
        emit_json(summary)
        return
    table = Table(title=f"simulated {events:,} heralded events — {prof.name} at {distance:g} km")
    table.add_column("quantity")
    table.add_column("observed", justify="right")
    table.add_column("model", justify="right")
    table.add_row("CHSH S", f"{summary['chsh_observed']:.4f}", f"{lp.chsh:.4f}")
    table.add_row("QBER", f"{summary['qber_observed']:.4f}", f"{lp.qber:.4f}")
    table.add_row("link time (h)", fmt(duration_s / 3600), "")
    console.print(table)
    console.print(f"seed {seed}; {events / max(elapsed, 1e-9):,.0f} events/s")
    if out is not None:
        console.print(f"records written to {out}")


def _write_records(
    out: Path,
    lp: LinkPoint,
    meta: RecordsMetadata,
    rng: np.random.Generator,
    events: int,
    *,
    chunk_events: int,
    quiet: bool,
    overwrite: bool,
) -> tuple[NDArray[np.int64], float]:
    """Stream sampled chunks into a records file with a progress bar; return counts, end time."""
    px, py = meta.input_probs_x, meta.input_probs_y
    stream = sample_rounds(
        lp.correlations,
        n_events=events,
        rng=rng,
        herald_probability=lp.herald_probability,
        attempt_period_s=lp.attempt_period_s,
        measurement_time_s=lp.measurement_time_s,
        duty_cycle=lp.duty_cycle,
        input_probs_x=px,
        input_probs_y=py,
        chunk_events=chunk_events,
    )
    counts = np.zeros((2, 3, 2, 2), dtype=np.int64)
    last_t = [0.0]
    progress = Progress(
        TextColumn("simulating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=quiet or not err_console.is_terminal,
    )

    def batches() -> Iterator[dict[str, NDArray[np.generic]]]:
        task = progress.add_task("events", total=events)
        for chunk in stream:
            counts[...] += counts_from_rounds(chunk)
            if len(chunk):
                last_t[0] = float(chunk.t_s[-1])
            progress.advance(task, len(chunk))
            yield chunk.columns()

    writer = write_csv_records if out.suffix.lower() == ".csv" else write_records
    with progress:
        writer(out, batches(), meta, overwrite=overwrite)
    return counts, last_t[0]
