"""``diqkd records validate|convert``: check round-record files and convert CSV <-> Parquet.

Thin commands over :mod:`diqkd.records`. Every :class:`~diqkd.errors.DiqkdError` becomes one
line ``error: <message>`` on stderr and exit code 2, also when this sub-app runs on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from diqkd.cli._common import console, emit_json, err_console, fmt
from diqkd.errors import DiqkdError
from diqkd.records import convert_records, iter_records, read_metadata
from diqkd.records.stats import RecordsSummary, SummaryAccumulator

__all__ = ["app"]

app = typer.Typer(
    help="Validate round-record files and convert them between Parquet and CSV.",
    no_args_is_help=True,
)

_T = TypeVar("_T")


def _exit_on_error(exc: DiqkdError) -> NoReturn:
    typer.echo(f"error: {' '.join(str(exc).split())}", err=True)
    raise typer.Exit(2)


def _guarded(work: Callable[[], _T]) -> _T:
    try:
        return work()
    except DiqkdError as exc:
        _exit_on_error(exc)


def _scan(path: Path, batch_rows: int, quiet: bool) -> RecordsSummary:
    """Read the whole file batch by batch (validating it) and summarise it."""
    acc = SummaryAccumulator(read_metadata(path))
    progress = Progress(
        TextColumn("validating"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        transient=True,
        disable=quiet or not err_console.is_terminal,
    )
    with progress:
        task = progress.add_task("rows", total=acc.metadata.n_rounds)
        for _, columns in iter_records(path, batch_rows):
            acc.add(columns)
            progress.advance(task, int(columns["round"].shape[0]))
    return acc.result()


def _metadata_table(result: RecordsSummary) -> Table:
    table = Table(title="metadata")
    table.add_column("key")
    table.add_column("value")
    for key, value in result.metadata.model_dump(mode="json").items():
        if value is None:
            text = "—"
        elif isinstance(value, list):
            text = ", ".join(fmt(float(p)) for p in value)
        else:
            text = str(value)
        table.add_row(key, text)
    return table


def _counts_table(result: RecordsSummary) -> Table:
    table = Table(title="rounds per input pair", caption="y = 2 is Bob's key setting")
    table.add_column("x \\ y")
    for y in range(3):
        table.add_column(f"y={y}", justify="right")
    counts = result.counts_xy
    for x in range(2):
        table.add_row(f"x={x}", *(f"{int(c):,}" for c in counts[x]))
    return table


@app.command("validate")
def validate_cmd(
    file: Path = typer.Argument(..., help="Records file (.parquet, .pq or .csv)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
    batch_rows: int = typer.Option(1 << 20, min=1, help="Rows read per batch (memory bound)."),
) -> None:
    """Read a whole records file batch by batch and check every rule; exit 0 if valid."""
    result = _guarded(lambda: _scan(file, batch_rows, quiet=as_json))
    if as_json:
        doc: dict[str, Any] = {"file": str(file), "valid": True, **result.to_dict()}
        emit_json(doc)
        return
    console.print(f"[bold green]valid[/bold green]: {file} — {result.n_rows:,} rows")
    if result.first_round is not None and result.first_t_s is not None:
        per_attempt = result.heralds_per_attempt or 0.0
        console.print(
            f"rounds {result.first_round}…{result.last_round} "
            f"({fmt(per_attempt)} heralds per attempt), "
            f"t_s {fmt(result.first_t_s)}…{fmt(result.last_t_s or 0.0)} s"
        )
    console.print(_metadata_table(result))
    console.print(_counts_table(result))


@app.command("convert")
def convert_cmd(
    source: Path = typer.Argument(..., help="Input records file (.parquet, .pq or .csv)."),
    target: Path = typer.Argument(..., help="Output file; its suffix picks the format."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output file."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Convert a records file between Parquet and CSV, validating every row on the way."""
    rows = _guarded(lambda: convert_records(source, target, overwrite=force))
    if as_json:
        emit_json({"in": str(source), "out": str(target), "rows": rows})
        return
    console.print(f"converted {rows:,} rows: {source} → {target}")
