"""``diqkd run`` (the main job) and ``diqkd distill``: the full DI-QKD protocol, end to end.

``run`` simulates a link from a hardware profile and runs the protocol on it; ``distill`` runs
the same protocol on a records file from a lab (or from ``run --save-records``). Both print a
summary and store the keys: in both sites' key stores (``diqkd kme``; SQLite in the data
directory by default) and, with ``--keys-out``, in a pair of keys files. An abort stores and
writes nothing and exits with code 1.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from diqkd.cli._common import console, emit_json, err_console, fail, fmt
from diqkd.errors import DiqkdError
from diqkd.postproc import write_keys
from diqkd.protocol import SessionResult, distill_records, simulate_session
from diqkd.protocol.design import RECONCILIATION_METHODS

__all__ = ["distill", "run"]

_KEY_STORE_HELP = "Do not store the keys in the sites' key stores (see 'diqkd kme')."
_AUTH_KEY_HELP = "Pre-shared authentication key file (raw bytes); default: a fresh one."


def _read_auth_key(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise fail(f"{path}: cannot read the authentication key ({exc.strerror})") from None
    if not data:
        raise fail(f"{path}: the authentication key file is empty")
    return data


def _store_keys(result: SessionResult, keys_out: Path | None, use_store: bool) -> dict[str, Any]:
    """Write keys files and import the blocks into both sites' stores; return where."""
    where: dict[str, Any] = {}
    if keys_out is not None:
        stem = str(keys_out)
        a = write_keys(f"{stem}.alice.json", result.alice_keys, side="alice")
        b = write_keys(f"{stem}.bob.json", result.bob_keys, side="bob")
        where["keys_files"] = [str(a), str(b)]
    if use_store:
        from diqkd.kms.store import KeyStore, default_data_dir

        stored = {}
        for site, blocks in (("alice", result.alice_keys), ("bob", result.bob_keys)):
            store = KeyStore.open_default(site)  # type: ignore[arg-type]
            try:
                store.import_blocks(blocks)
            finally:
                store.close()
            stored[site] = str(default_data_dir() / site)
        where["key_stores"] = stored
    return where


def _num(value: float | None) -> str:
    return "—" if value is None else fmt(value)


def _report(result: SessionResult, title: str, extra: dict[str, Any], as_json: bool) -> None:
    summary = result.summary()
    summary.update(extra)
    if as_json:
        emit_json(summary)
    else:
        table = Table(title=title, show_header=False)
        table.add_column("quantity")
        table.add_column("value", justify="right")
        rows = [
            ("events (rounds)", f"{summary['events']:,}"),
            ("test rounds", f"{summary['test_rounds']:,} (γ = {_num(summary['test_fraction'])})"),
            ("CHSH S (observed)", _num(summary["chsh"])),
            ("QBER (observed, key rounds)", _num(summary["qber"])),
            ("EC leak", f"{summary['leaked_bits']:,} bits ({summary['reconciliation']})"),
            ("certified key", f"{summary['key_bits']:,} bits"),
            ("bits per event", _num(summary["key_rate_per_event"])),
            ("ε_sound", _num(summary["epsilon_sound"])),
            ("randomness", summary["randomness"]),
            ("time", f"{summary['timings_s'].get('total', 0.0):.2f} s"),
        ]
        if "key_stores" in summary:
            for site, path in summary["key_stores"].items():
                rows.append((f"key store ({site})", str(path)))
        if "keys_files" in summary:
            rows.append(("keys files", "\n".join(summary["keys_files"])))
        if "records_file" in summary:
            rows.append(("records file", str(summary["records_file"])))
        for name, value in rows:
            table.add_row(name, value)
        console.print(table)
        if result.randomness != "os-csprng":
            err_console.print(
                "note: seeded simulation randomness (--seed): these keys are reproducible "
                "simulation artefacts, not secret keys"
            )
    if result.aborted:
        err_console.print(f"aborted: {result.abort_reason}", highlight=False)
        raise typer.Exit(1)


def run(
    profile: str = typer.Option("ustc-2026", "--profile", "-p", help="Profile name or TOML file."),
    distance_km: float = typer.Option(11.0, "--distance-km", "-d", help="Fiber length, km."),
    events: int = typer.Option(
        1_200_000, "--events", "-n", min=1, help="Heralded events (rounds) of the block."
    ),
    seed: int | None = typer.Option(
        None,
        "--seed",
        min=0,
        help="Reproducible simulation (every party's randomness seeded: keys are not secret).",
    ),
    epsilon_sound: float = typer.Option(1e-6, "--epsilon-sound", help="Soundness ε."),
    reconciliation: str = typer.Option(
        "auto",
        "--reconciliation",
        help="auto, cascade, ldpc, ldpc-qc (QC codes, faster) or ldpc-fast (f≈1.15, fastest).",
    ),
    keys_out: Path | None = typer.Option(
        None, "--keys-out", help="Also write keys files PREFIX.alice.json and PREFIX.bob.json."
    ),
    no_store: bool = typer.Option(False, "--no-store", help=_KEY_STORE_HELP),
    save_records: Path | None = typer.Option(
        None, "--save-records", help="Write the run's round records (Parquet) for 'distill'."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing records file."),
    auth_key_file: Path | None = typer.Option(None, "--auth-key", help=_AUTH_KEY_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Simulate a DI-QKD link and run the full protocol on it: Bell test to stored key."""
    if not 0.0 < epsilon_sound < 1.0:
        raise fail(f"--epsilon-sound must lie in (0, 1), got {epsilon_sound}")
    if reconciliation not in RECONCILIATION_METHODS:
        raise fail(
            f"--reconciliation must be one of {', '.join(RECONCILIATION_METHODS)}, "
            f"got {reconciliation!r}"
        )
    if save_records is not None and save_records.suffix.lower() not in (".parquet", ".pq"):
        raise fail("--save-records writes Parquet: name the file *.parquet")
    progress = Progress(
        TextColumn("[bold]acquiring"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=as_json or not err_console.is_terminal,
    )
    auth_key = _read_auth_key(auth_key_file)
    start = time.perf_counter()
    with progress:
        task = progress.add_task("events", total=events)
        result, link = simulate_session(
            profile,
            distance_km=distance_km,
            events=events,
            seed=seed,
            epsilon_sound=epsilon_sound,
            reconciliation=reconciliation,
            save_records=save_records,
            overwrite=force,
            auth_key=auth_key,
            progress=lambda done: progress.update(task, completed=done),
        )
    extra: dict[str, Any] = {
        "profile": profile,
        "distance_km": distance_km,
        "predicted_chsh": link.chsh,
        "predicted_qber": link.qber,
        "wall_time_s": time.perf_counter() - start,
    }
    if save_records is not None:
        extra["records_file"] = str(save_records)
    if not result.aborted:
        extra.update(_store_keys(result, keys_out, not no_store))
    _report(result, f"diqkd run — {profile} at {distance_km:g} km", extra, as_json)


def distill(
    records: Path = typer.Option(..., "--records", "-r", help="Records file (.parquet or .csv)."),
    epsilon_sound: float = typer.Option(1e-6, "--epsilon-sound", help="Soundness ε."),
    test_fraction: float | None = typer.Option(
        None, "--test-fraction", help="γ the data were taken with (checked against metadata)."
    ),
    expected_chsh: float | None = typer.Option(
        None, "--expected-chsh", help="Honest S the thresholds are set for (fixed in advance)."
    ),
    expected_qber: float | None = typer.Option(
        None, "--expected-qber", help="Honest QBER the thresholds are set for."
    ),
    seed: int | None = typer.Option(
        None, "--seed", min=0, help="Seeded party randomness (simulation studies only)."
    ),
    reconciliation: str = typer.Option(
        "auto",
        "--reconciliation",
        help="auto, cascade, ldpc, ldpc-qc (QC codes, faster) or ldpc-fast (f≈1.15, fastest).",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Write keys files OUT.alice.json and OUT.bob.json."
    ),
    no_store: bool = typer.Option(False, "--no-store", help=_KEY_STORE_HELP),
    auth_key_file: Path | None = typer.Option(None, "--auth-key", help=_AUTH_KEY_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Distil secret keys from a records file with the full DI-QKD protocol."""
    if not 0.0 < epsilon_sound < 1.0:
        raise fail(f"--epsilon-sound must lie in (0, 1), got {epsilon_sound}")
    if test_fraction is not None and not 0.0 < test_fraction < 1.0:
        raise fail(f"--test-fraction must lie in (0, 1), got {test_fraction}")
    if (expected_chsh is None) != (expected_qber is None):
        raise fail("give both --expected-chsh and --expected-qber, or neither")
    if reconciliation not in RECONCILIATION_METHODS:
        raise fail(
            f"--reconciliation must be one of {', '.join(RECONCILIATION_METHODS)}, "
            f"got {reconciliation!r}"
        )
    if not records.exists():
        raise fail(f"{records}: no such records file")
    start = time.perf_counter()
    try:
        result, _params = distill_records(
            records,
            epsilon_sound=epsilon_sound,
            expected_chsh=expected_chsh,
            expected_qber=expected_qber,
            test_fraction=test_fraction,
            seed=seed,
            reconciliation=reconciliation,
            auth_key=_read_auth_key(auth_key_file),
        )
    except DiqkdError as exc:
        raise fail(f"{records}: {exc}" if str(records) not in str(exc) else str(exc)) from None
    extra: dict[str, Any] = {
        "records_file": str(records),
        "wall_time_s": time.perf_counter() - start,
    }
    if not result.aborted:
        extra.update(_store_keys(result, out, not no_store))
    _report(result, f"diqkd distill — {records.name}", extra, as_json)
