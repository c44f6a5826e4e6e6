"""``diqkd link``: predictions of the link model over distance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from rich.table import Table

from diqkd.cli._common import console, emit_json, fail, fmt
from diqkd.physics import link_point, link_sweep
from diqkd.plots import plot_link
from diqkd.profiles import load_profile
from diqkd.security import optimal_noisy_preprocessing_rate

__all__ = ["link"]

DEFAULT_PROFILE = "ustc-2026"


def link(
    profile: str = typer.Option(
        DEFAULT_PROFILE, "--profile", "-p", help="Shipped profile name or a TOML file."
    ),
    distance_km: list[float] = typer.Option(
        [11.0, 50.0, 100.0],
        "--distance-km",
        "-d",
        help="Total fiber length(s) in km: --distance-km 11 50 100.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
    plot: Path | None = typer.Option(
        None, "--plot", help="Write a plot of S, QBER, fidelity and rate vs distance."
    ),
) -> None:
    """Herald rate, fidelity, CHSH value and QBER of a link at each distance."""
    prof = load_profile(profile)
    for d in distance_km:
        if not np.isfinite(d) or d < 0:
            raise fail(f"--distance-km must be finite and >= 0, got {d}")
    points = [link_point(prof, d) for d in distance_km]
    rows = []
    for lp in points:
        row = lp.summary()
        rate, flip = optimal_noisy_preprocessing_rate(lp.chsh, lp.qber)
        row["asymptotic_key_per_event"] = max(rate, 0.0)
        row["noisy_preprocessing_flip"] = flip
        rows.append(row)
    if plot is not None:
        top = max(distance_km)
        grid = np.linspace(0.0, top if top > 0 else 1.0, 80)
        curve = [p.summary() for p in link_sweep(prof, grid)]
        plot_link(curve, rows, plot, title=f"diqkd link — profile {prof.name}")
    if as_json:
        emit_json(
            {
                "profile": prof.name,
                "profile_hash": prof.content_hash(),
                "scheme": prof.heralding.scheme,
                "points": rows,
                "plot": str(plot) if plot is not None else None,
            }
        )
        return
    table = Table(title=f"link model — {prof.name} ({prof.heralding.scheme} heralding)")
    for col in ("km", "p(herald)", "tries/s", "events/s", "fidelity", "S", "QBER", "key/ev*"):
        table.add_column(col, justify="right", no_wrap=True)
    for row in rows:
        table.add_row(
            fmt(row["distance_km"]),
            fmt(row["herald_probability"], 3),
            f"{row['attempt_rate_hz']:.0f}",
            fmt(row["herald_rate_hz"], 3),
            f"{row['fidelity']:.4f}",
            f"{row['chsh']:.4f}",
            f"{row['qber']:.4f}",
            f"{row['asymptotic_key_per_event']:.3f}",
        )
    console.print(table)
    console.print(
        "p(herald) per attempt; tries/s = attempts per second while running; events/s = "
        "heralded events per wall-clock second (duty cycle included).\n"
        "* asymptotic key bits per event, noisy preprocessing (Ho et al., PRL 124, 230502 "
        "(2020)), collective attacks; finite-size: `diqkd rate --profile P --events N`."
    )
    if plot is not None:
        console.print(f"plot written to {plot}")
