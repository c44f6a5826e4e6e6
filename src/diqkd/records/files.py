"""Format-independent entry points: read, iterate and convert records files by suffix.

``.parquet`` / ``.pq`` are Parquet (the main format), ``.csv`` is CSV; suffixes are matched
case-insensitively and anything else is refused with the list of supported formats.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy.typing as npt

from diqkd.errors import RecordsError
from diqkd.records.container import Records, concat_batches
from diqkd.records.csv_io import iter_csv_records, read_csv_metadata, write_csv_records
from diqkd.records.parquet_io import (
    PARQUET_SUFFIXES,
    iter_parquet_records,
    read_parquet_metadata,
    write_records,
)
from diqkd.records.schema import RecordsMetadata

__all__ = ["convert_records", "iter_records", "read_metadata", "read_records", "records_format"]

DEFAULT_BATCH_ROWS = 1 << 20


def records_format(path: str | os.PathLike[str]) -> Literal["parquet", "csv"]:
    """``"parquet"`` or ``"csv"`` from the file name's suffix.

    Raises
    ------
    RecordsError
        If the suffix is none of ``.parquet``, ``.pq``, ``.csv``.
    """
    suffix = Path(path).suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix == ".csv":
        return "csv"
    raise RecordsError(
        f"{path}: unsupported records format {suffix or '(no suffix)'!r}; supported formats "
        "are Parquet (.parquet, .pq) and CSV (.csv)"
    )


def read_metadata(path: str | os.PathLike[str]) -> RecordsMetadata:
    """The metadata of a records file, without reading the rows."""
    if records_format(path) == "parquet":
        return read_parquet_metadata(path)
    return read_csv_metadata(path)


def iter_records(
    path: str | os.PathLike[str], batch_rows: int = DEFAULT_BATCH_ROWS
) -> Iterator[tuple[RecordsMetadata, dict[str, npt.NDArray[Any]]]]:
    """Yield ``(metadata, columns)`` batch by batch, validating each batch as it goes.

    Memory stays flat, so this is the way through files larger than memory. ``round`` and
    ``t_s`` are checked across batch boundaries too. A file with no rows yields nothing (use
    :func:`read_metadata` for its metadata).

    Parameters
    ----------
    path : str or PathLike
        A ``.parquet``/``.pq`` or ``.csv`` records file.
    batch_rows : int
        Largest number of rows per batch, ``>= 1``.

    Yields
    ------
    metadata : RecordsMetadata
        The file's metadata (the same object each time).
    columns : dict of str to ndarray
        The six columns in file order, cast to :data:`~diqkd.records.COLUMNS` dtypes; the
        arrays may be read-only.

    Raises
    ------
    RecordsError
        If the file is missing, unreadable, of an unsupported format, or breaks a rule (the
        message names the 0-based row and the column).
    """
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        raise RecordsError(f"batch_rows must be an integer >= 1, got {batch_rows!r}")
    if records_format(path) == "parquet":
        return iter_parquet_records(path, batch_rows)
    return iter_csv_records(path, batch_rows=batch_rows)


def read_records(path: str | os.PathLike[str]) -> Records:
    """Read and validate a whole records file (Parquet or CSV, by suffix) into memory.

    Raises
    ------
    RecordsError
        As :func:`iter_records`.
    """
    return concat_batches(iter_records(path), lambda: read_metadata(path))


def convert_records(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> int:
    """Convert a records file between Parquet and CSV (by suffix), streaming; return rows.

    The metadata is carried over unchanged (``n_rounds`` is filled in if it was missing).

    Raises
    ------
    RecordsError
        If the input is invalid anywhere (nothing is left at ``target``), the output exists
        without ``overwrite``, or a format is unsupported.
    """
    out_format = records_format(target)
    if Path(source).resolve() == Path(target).resolve():
        raise RecordsError(f"{target}: input and output are the same file; choose another name")
    metadata = read_metadata(source)
    batches = (columns for _, columns in iter_records(source, batch_rows))
    if out_format == "parquet":
        return write_records(target, batches, metadata, overwrite=overwrite)
    return write_csv_records(target, batches, metadata, overwrite=overwrite)
