"""``diqkd attack``: run an attack strategy through the real protocol and report what Eve learns.

An attack that makes the protocol abort is a successful *run* of the attack (exit 0); bad input
exits 2 with one line on stderr. Keys produced under attack are simulation artefacts and are
never stored.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from diqkd.adversary import DEFAULT_EVENTS, list_strategies, run_attack
from diqkd.cli._common import console, emit_json, fail, fmt

__all__ = ["attack"]

_ROWS = (
    "strategy",
    "chsh",
    "qber",
    "aborted",
    "abort_reason",
    "key_bits",
    "eve_information_bits",
    "eve_information_upper_bits",
    "certificate_information_bits",
    "eve_key_agreement",
    "eve_raw_key_agreement",
    "ground_truth_chsh",
    "ground_truth_qber",
    "outside_model",
    "events",
    "seed",
)


def _list(as_json: bool) -> None:
    strategies = list_strategies()
    if as_json:
        emit_json(
            {
                "strategies": [
                    {"name": s.name, "summary": s.summary, "outside_model": s.outside_model}
                    for s in strategies
                ]
            }
        )
        return
    table = Table(title="attack strategies")
    table.add_column("name")
    table.add_column("what it shows")
    table.add_column("outside DI model")
    for s in strategies:
        table.add_row(s.name, s.summary, "yes" if s.outside_model else "")
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return fmt(value)
    return str(value)


def attack(
    strategy: str | None = typer.Option(
        None, "--strategy", "-s", help="Strategy name (see --list)."
    ),
    list_: bool = typer.Option(False, "--list", help="List the strategies and exit."),
    events: int = typer.Option(
        DEFAULT_EVENTS, "--events", "-n", min=1, help="Heralded events of the attacked block."
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Simulation seed (same seed, same run)."),
    distance_km: list[float] = typer.Option(
        [11.0], "--distance-km", "-d", help="Fiber length the honest parties expect, km."
    ),
    profile: str = typer.Option("ustc-2026", "--profile", "-p", help="Profile name or TOML file."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Run an attack on a simulated DI-QKD session: S, QBER, abort, key bits, Eve's information.

    Exit 0 when the attack ran (whether or not the protocol aborted), 2 on bad input.
    """
    if list_:
        _list(as_json)
        return
    if strategy is None:
        raise fail("give --strategy NAME (or --list to see the strategies)")
    names = [s.name for s in list_strategies()]
    if strategy not in names:
        raise fail(f"unknown strategy {strategy!r}; choose one of: {', '.join(names)}")
    if len(distance_km) != 1:
        raise fail("attack takes one --distance-km")
    report = run_attack(
        strategy, events=events, seed=seed, distance_km=distance_km[0], profile=profile
    )
    doc = report.to_dict()
    if as_json:
        emit_json(doc)
        return
    table = Table(title=f"attack — {strategy}", show_header=False)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for key in _ROWS:
        if key in doc:
            table.add_row(key, _cell(doc[key]))
    flag = doc.get("tsirelson_flag")
    if isinstance(flag, dict):
        table.add_row("tsirelson_flag", _cell(flag.get("flagged")))
    console.print(table)
    console.print(report.notes)
