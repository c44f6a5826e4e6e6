"""``diqkd kme serve|status|pki``: run an ETSI GS QKD 014 key manager and its test PKI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from diqkd.cli._common import console, emit_json, fail

__all__ = ["app"]

app = typer.Typer(
    help="Key manager (ETSI GS QKD 014 over mutual TLS): serve, status, test PKI.",
    no_args_is_help=True,
)


@app.command("serve")
def serve_cmd(
    config: Path = typer.Option(..., "--config", help="KME config file (TOML)."),
    port: int | None = typer.Option(
        None, "--port", min=0, max=65535, help="Override listen.port (0: any free port)."
    ),
    ready_file: Path | None = typer.Option(
        None, "--ready-file", help="Write the bound port here once connections are accepted."
    ),
) -> None:
    """Serve the KME's ETSI 014 API over mutual TLS until interrupted (SIGINT/SIGTERM)."""
    from diqkd.kms.config import load_config
    from diqkd.kms.server import serve

    serve(load_config(config), port=port, ready_file=ready_file)


@app.command("status")
def status_cmd(
    config: Path = typer.Option(..., "--config", help="KME config file (TOML)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Print the KME store's key counts (reads the store; the server need not run)."""
    from diqkd.kms.config import load_config
    from diqkd.kms.server import open_store

    cfg = load_config(config)
    store = open_store(cfg)
    try:
        counts = dict(store.counts())
        stored = store.stored_key_count(cfg.limits.key_size)
    finally:
        store.close()
    doc: dict[str, Any] = {
        "kme_id": cfg.kme_id,
        "site": cfg.site,
        "peer_kme_id": cfg.peer.kme_id,
        "key_size": cfg.limits.key_size,
        "stored_key_count": stored,
        "counts": counts,
    }
    if as_json:
        emit_json(doc)
        return
    table = Table(title=f"KME {cfg.kme_id} (site {cfg.site}, peer {cfg.peer.kme_id})")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row(f"keys of {cfg.limits.key_size} bits available", str(stored))
    for name, value in counts.items():
        table.add_row(name, str(value))
    console.print(table)


def _names(values: list[str], flag: str) -> list[str]:
    out = [v.strip() for value in values for v in value.split(",") if v.strip()]
    if not out and flag == "--kme":
        raise fail("give at least one --kme NAME")
    return out


@app.command("pki")
def pki_cmd(
    out: Path = typer.Option(..., "--out", help="Output folder."),
    kme: list[str] = typer.Option(
        ..., "--kme", help="KME name (repeat, or comma-separated); configs for the first two."
    ),
    sae: list[str] = typer.Option(
        [], "--sae", help="SAE name, or NAME@KME (repeat, or comma-separated)."
    ),
    port_base: int = typer.Option(8443, "--port-base", help="Port of the first KME."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Write a test CA, KME and SAE certificates (EC P-256) and two ready KME configs."""
    from diqkd.kms.pki import write_test_pki

    result = write_test_pki(
        out, kmes=_names(kme, "--kme"), saes=_names(sae, "--sae"), port_base=port_base
    )
    doc = {
        "out": str(out),
        "ca": str(result.ca_cert),
        "certificates": {
            name: {"cert": str(c), "key": str(k)} for name, (c, k) in result.certificates.items()
        },
        "configs": {name: str(p) for name, p in result.configs.items()},
        "sae_kme": result.sae_kme,
    }
    if as_json:
        emit_json(doc)
        return
    table = Table(title=f"test PKI in {out}")
    table.add_column("name")
    table.add_column("certificate")
    table.add_column("key (0600)")
    for name, (c, k) in result.certificates.items():
        table.add_row(name, c.name, k.name)
    console.print(table)
    for name, path in result.configs.items():
        console.print(f"config of {name}: {path}  (diqkd kme serve --config {path})")
