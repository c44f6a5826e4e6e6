"""``diqkd rate``: asymptotic and finite-size key rates, for statistics or a designed link."""

from __future__ import annotations

import math
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.table import Table

from diqkd.cli._common import console, emit_json, fail, fmt
from diqkd.security import (
    TSIRELSON_BOUND,
    optimal_noisy_preprocessing_rate,
    pironio_rate,
    plob_bound,
)

__all__ = ["rate"]


class Method(StrEnum):
    """Asymptotic bound to use."""

    pironio = "pironio"
    noisy_preprocessing = "noisy-preprocessing"
    numerical = "numerical"


def _check_statistics(chsh: float, qber: float) -> None:
    if not math.isfinite(chsh) or chsh > TSIRELSON_BOUND + 1e-12:
        raise fail(f"--chsh must be a CHSH value <= 2√2 ≈ 2.8284, got {chsh}")
    if not math.isfinite(qber) or not 0.0 <= qber <= 0.5:
        raise fail(f"--qber must lie in [0, 0.5], got {qber}")


def asymptotic(chsh: float, qber: float, method: Method) -> dict[str, Any]:
    """Asymptotic rate per key round with the chosen bound (collective attacks)."""
    flip = 0.0
    if method is Method.pironio:
        rate = pironio_rate(chsh, qber)
        theorem = "Pironio et al., NJP 11, 045021 (2009), Eq. (12)"
    elif method is Method.noisy_preprocessing:
        rate, flip = optimal_noisy_preprocessing_rate(chsh, qber)
        theorem = "Ho et al., PRL 124, 230502 (2020), Eq. (3), flip probability optimised"
    else:
        from diqkd.security.numerical import numerical_key_rate

        # Any flip probability gives a valid rate; take the analytic optimum (Ho et al. 2020).
        _, flip = optimal_noisy_preprocessing_rate(chsh, qber)
        rate = numerical_key_rate(chsh, qber, flip_probability=flip)
        theorem = (
            "Brown, Fawzi, Fawzi, Quantum 8, 1445 (2024): Gauss–Radau quadrature, NPA level "
            "2+ABZ, value certified from a repaired dual-feasible point; noisy preprocessing "
            "with the flip probability of Ho et al. (2020)"
        )
    positive = max(rate, 0.0)
    return {
        "method": method.value,
        "asymptotic_rate": positive,
        # The asymptotic limit has no finite key length or ε; every round is a key round.
        "key_length_bits": None if rate > 0 else 0,
        "key_rate_per_round": positive,
        "epsilon_sound": None,
        "epsilon_complete": None,
        "test_fraction": 0.0,
        "raw_rate": rate,
        "flip_probability": flip,
        "theorem": theorem,
        "reason": "" if rate > 0 else "the statistics certify no key (rate <= 0)",
    }


def rate(
    chsh: float | None = typer.Option(None, "--chsh", help="CHSH value S (<= 2√2)."),
    qber: float | None = typer.Option(None, "--qber", help="QBER of the key rounds, [0, 0.5]."),
    method: Method = typer.Option(Method.noisy_preprocessing, "--method", help="Asymptotic bound."),
    rounds: int | None = typer.Option(
        None, "--rounds", min=1, help="Heralded events n: asks for a finite-size key length."
    ),
    epsilon_sound: float = typer.Option(1e-6, "--epsilon-sound", help="Soundness ε."),
    test_fraction: str = typer.Option("auto", "--test-fraction", help="γ in (0,1), or auto."),
    leak_ec: float | None = typer.Option(
        None, "--leak-ec", help="Error-correction leak in bits (default: estimate f·h(Q))."
    ),
    profile: str | None = typer.Option(
        None, "--profile", "-p", help="Evaluate a designed link (profile name or file)."
    ),
    distance_km: list[float] = typer.Option(
        [], "--distance-km", "-d", help="With --profile: total fiber length(s), km."
    ),
    events: int | None = typer.Option(
        None, "--events", min=1, help="With --profile: events per distance for finite size."
    ),
    plot: Path | None = typer.Option(None, "--plot", help="With --profile: plot rates."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Secret-key rate certified by a Bell test, asymptotic or finite-size."""
    if profile is not None:
        _rate_profile(profile, distance_km, events, epsilon_sound, plot, as_json)
        return
    if chsh is None or qber is None:
        raise fail("give --chsh and --qber (or --profile with --distance-km)")
    _check_statistics(chsh, qber)
    if rounds is None:
        doc = asymptotic(chsh, qber, method)
        doc.update(chsh=chsh, qber=qber)
        _emit(doc, as_json)
        return
    doc = _finite(chsh, qber, rounds, epsilon_sound, test_fraction, leak_ec)
    _emit(doc, as_json)


def _finite(
    chsh: float,
    qber: float,
    rounds: int,
    epsilon_sound: float,
    test_fraction: str,
    leak_ec: float | None,
) -> dict[str, Any]:
    from diqkd.security.finite import finite_size_certificate

    gamma: float | None = None
    if test_fraction != "auto":
        try:
            gamma = float(test_fraction)
        except ValueError:
            raise fail(
                f"--test-fraction takes a number in (0, 1) or 'auto', got {test_fraction!r}"
            ) from None
        if not 0.0 < gamma < 1.0:
            raise fail(f"--test-fraction must lie in (0, 1), got {gamma}")
    if not 0.0 < epsilon_sound < 1.0:
        raise fail(f"--epsilon-sound must lie in (0, 1), got {epsilon_sound}")
    if leak_ec is not None and (not math.isfinite(leak_ec) or leak_ec < 0):
        raise fail(f"--leak-ec must be a number of bits >= 0, got {leak_ec}")
    cert = finite_size_certificate(
        chsh=chsh,
        qber=qber,
        n_rounds=rounds,
        epsilon_sound=epsilon_sound,
        test_fraction=gamma,
        leak_ec_bits=leak_ec,
    )
    doc = cert.to_dict()
    doc["asymptotic_rate"] = cert.parameters.get("asymptotic_rate", float("nan"))
    return doc


def _emit(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(doc)
        return
    table = Table(title=f"key rate — {doc['method']}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for key in (
        "chsh",
        "qber",
        "asymptotic_rate",
        "key_length_bits",
        "key_rate_per_round",
        "test_fraction",
        "flip_probability",
        "epsilon_sound",
        "epsilon_complete",
    ):
        if key in doc:
            value = doc[key]
            table.add_row(key, fmt(value) if isinstance(value, float) else str(value))
    console.print(table)
    console.print(f"theorem: {doc.get('theorem', '')}")
    if doc.get("reason"):
        console.print(f"[yellow]no key: {doc['reason']}[/yellow]")


def _rate_profile(
    profile: str,
    distance_km: list[float],
    events: int | None,
    epsilon_sound: float,
    plot: Path | None,
    as_json: bool,
) -> None:
    from diqkd.physics import link_point, link_sweep
    from diqkd.plots import plot_rates
    from diqkd.profiles import load_profile

    prof = load_profile(profile)
    distances = distance_km or [11.0, 50.0, 100.0]
    for d in distances:
        if not np.isfinite(d) or d < 0:
            raise fail(f"--distance-km must be finite and >= 0, got {d}")
    rows = [_point(link_point(prof, d), events, epsilon_sound) for d in distances]
    if plot is not None:
        top = max(distances) if max(distances) > 0 else 1.0
        curve = [
            _point(lp, None, epsilon_sound) for lp in link_sweep(prof, np.linspace(0, top, 60))
        ]
        plot_rates(curve, rows, plot, title=f"diqkd rate — profile {prof.name}")
    if as_json:
        emit_json({"profile": prof.name, "events": events, "points": rows})
        return
    table = Table(title=f"key rates — {prof.name}")
    cols = ["km", "S", "QBER", "bits/event", "bits/s", "bits/try", "PLOB/try"]
    for col in cols:
        table.add_column(col, justify="right", no_wrap=True)
    for r in rows:
        table.add_row(
            fmt(r["distance_km"]),
            f"{r['chsh']:.4f}",
            f"{r['qber']:.4f}",
            f"{r['key_per_event']:.4f}",
            fmt(r["key_bits_per_s"], 3),
            fmt(r["key_bits_per_attempt"], 3),
            fmt(r["plob_bits_per_attempt"], 3),
        )
    console.print(table)
    kind = "finite-size" if events else "asymptotic (noisy preprocessing)"
    console.print(
        f"bits/event: {kind}. bits/try: per attempt (channel use), against the repeaterless "
        "PLOB bound −log₂(1−η) (Pirandola et al., Nat. Commun. 8, 15043 (2017))."
    )


def _point(lp: Any, events: int | None, epsilon_sound: float) -> dict[str, Any]:
    asym, _ = optimal_noisy_preprocessing_rate(lp.chsh, lp.qber)
    per_event = max(asym, 0.0)
    row: dict[str, Any] = {
        "distance_km": lp.distance_km,
        "chsh": lp.chsh,
        "qber": lp.qber,
        "asymptotic_rate": per_event,
        "herald_rate_hz": lp.herald_rate_hz,
        "herald_probability": lp.herald_probability,
    }
    if events is not None:
        from diqkd.security.finite import finite_size_certificate

        cert = finite_size_certificate(
            chsh=lp.chsh, qber=lp.qber, n_rounds=events, epsilon_sound=epsilon_sound
        )
        per_event = cert.key_rate_per_round
        row["key_length_bits"] = cert.key_length_bits
    row["key_per_event"] = per_event
    row["key_bits_per_s"] = per_event * lp.herald_rate_hz
    row["key_bits_per_attempt"] = per_event * lp.herald_probability
    row["plob_bits_per_attempt"] = plob_bound(lp.budget.fiber_transmission_total)
    return row
