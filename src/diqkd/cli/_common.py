"""Conventions shared by every diqkd command: JSON output, rich tables, clear errors."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import numpy as np
from rich.console import Console

from diqkd.errors import DiqkdError

__all__ = ["console", "emit_json", "err_console", "fail", "fmt"]

console = Console()
err_console = Console(stderr=True)


def _default(obj: object) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def emit_json(document: dict[str, Any]) -> None:
    """Print one JSON document on stdout (no rich markup, no colour)."""
    sys.stdout.write(json.dumps(document, default=_default, allow_nan=False) + "\n")
    sys.stdout.flush()


def fail(message: str) -> DiqkdError:
    """An error for bad user input; the entry point prints it as one line and exits 2."""
    return DiqkdError(message)


def fmt(value: float, digits: int = 4) -> str:
    """Compact human formatting: fixed for moderate values, scientific for tiny/huge ones."""
    if value == 0 or not math.isfinite(value):
        return str(value)
    if 1e-3 <= abs(value) < 1e5:
        return f"{value:.{digits}g}"
    return f"{value:.{max(digits - 1, 1)}e}"
