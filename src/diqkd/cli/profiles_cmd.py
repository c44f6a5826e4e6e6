"""``diqkd profiles list|show``: the shipped hardware profiles and their parameters."""

from __future__ import annotations

from typing import Any

import typer
from pydantic import BaseModel
from rich.table import Table

from diqkd.cli._common import console, emit_json
from diqkd.profiles import Profile, list_profiles, load_profile
from diqkd.profiles.schema import schema_markdown, schema_reference

__all__ = ["app"]

app = typer.Typer(help="List and show hardware profiles.", no_args_is_help=True)


@app.command("list")
def list_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """List the shipped profiles."""
    profiles = [load_profile(n) for n in list_profiles()]
    if as_json:
        emit_json(
            {
                "profiles": [
                    {"name": p.name, "scheme": p.heralding.scheme, "description": p.description}
                    for p in profiles
                ]
            }
        )
        return
    table = Table(title="shipped profiles")
    table.add_column("name")
    table.add_column("heralding")
    table.add_column("λ in fiber (nm)", justify="right")
    table.add_column("description")
    for p in profiles:
        table.add_row(p.name, p.heralding.scheme, f"{p.operating_wavelength_nm:g}", p.description)
    console.print(table)


def _rows(model: BaseModel, prefix: str = "") -> list[tuple[str, Any, str]]:
    rows: list[tuple[str, Any, str]] = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            rows.extend(_rows(value, f"{prefix}{name}."))
        elif name not in {"description", "sources"}:
            rows.append((f"{prefix}{name}", value, info.description or ""))
    return rows


@app.command("show")
def show_cmd(
    name: str = typer.Argument(..., help="Shipped profile name or a TOML file."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Show every parameter of a profile with its meaning."""
    prof: Profile = load_profile(name)
    if as_json:
        emit_json({"profile": prof.to_dict(), "content_hash": prof.content_hash()})
        return
    table = Table(title=f"profile {prof.name}", show_lines=False)
    table.add_column("key", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("meaning", overflow="fold")
    for key, value, doc in _rows(prof):
        table.add_row(key, str(value), doc)
    console.print(prof.description)
    console.print(table)
    console.print(f"[dim]sources: {prof.sources}[/dim]")
    console.print(f"[dim]content hash: {prof.content_hash()}[/dim]")


@app.command("schema")
def schema_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Print every profile key with its type, allowed range and meaning (Markdown)."""
    if as_json:
        emit_json(
            {
                "keys": [
                    {"key": k, "type": t, "allowed": a, "meaning": m}
                    for k, t, a, m in schema_reference()
                ]
            }
        )
        return
    typer.echo(schema_markdown(), nl=False)
