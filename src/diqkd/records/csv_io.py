"""CSV import and export of round records (for data from other tools; Parquet is the main format).

Format (``docs/records.md``): optional leading metadata lines ``# key = value`` (values in
JSON or TOML syntax: quoted strings, numbers, ``[0.5, 0.5]``), then a header line with exactly
the six column names (any order), then one line per round with comma-separated values.
"""

from __future__ import annotations

import json
import os
import shutil
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pcsv

from diqkd.errors import RecordsError
from diqkd.records.container import Records, concat_batches
from diqkd.records.csv_parse import parse_string_columns
from diqkd.records.parquet_io import prepare_target, temporary_path
from diqkd.records.schema import (
    COLUMNS,
    RecordsMetadata,
    check_schema_version,
    metadata_from_mapping,
)
from diqkd.records.validate import BatchValidator, check_column_names

__all__ = ["iter_csv_records", "read_csv_metadata", "read_csv_records", "write_csv_records"]

_BOM = "\ufeff"
_N = len(COLUMNS)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _parse_value(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        raise RecordsError(
            f"{where}: cannot parse the value {text!r}; write strings in double quotes, "
            'e.g. source = "experiment"'
        ) from None
    if isinstance(value, (datetime, date, time)):
        return text  # keep a TOML date-time exactly as written
    return value


class _Head:
    """What precedes the data: metadata lines, the header, and where the data starts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.metadata: dict[str, Any] = {}
        self._key_lines: dict[str, int] = {}
        self.names: list[str] = []
        self.data_offset = 0
        self.data_line = 1  # 1-based line number of the first data line
        self._scan()

    def _scan(self) -> None:
        origin = str(self.path)
        lineno = 0
        with self.path.open("rb") as fh:
            for raw in iter(fh.readline, b""):
                lineno += 1
                self.data_offset += len(raw)
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    line = "\x00"
                if any(ord(c) < 32 and c not in "\t\r\n" for c in line):
                    raise RecordsError(
                        f"{origin}: line {lineno} is not UTF-8 text (binary data); is this a "
                        "records CSV file?"
                    )
                if lineno == 1:
                    line = line.removeprefix(_BOM)
                stripped = line.strip()
                if not stripped:
                    continue
                if stripped.startswith("#"):
                    self._metadata_line(stripped, lineno)
                    continue
                names = [n.strip().strip('"').strip() for n in stripped.split(",")]
                self._check_metadata_keys()
                check_column_names(names, origin=f"{origin}: header line {lineno}")
                self.names = names
                self.data_line = lineno + 1
                return
        raise RecordsError(
            f"{origin}: no header line; a records CSV needs a line '{','.join(COLUMNS)}' "
            "before the data"
        )

    def _metadata_line(self, line: str, lineno: int) -> None:
        where = f"{self.path}: line {lineno}"
        body = line[1:].strip()
        if not body:
            return
        key, sep, value = body.partition("=")
        key = key.strip()
        if not sep or not key:
            raise RecordsError(
                f"{where}: comment lines before the header must be metadata 'key = value', "
                f"got {line!r}"
            )
        if key in self.metadata:
            raise RecordsError(f"{where}: metadata key {key!r} is given twice")
        self.metadata[key] = _parse_value(value.strip(), where)
        self._key_lines[key] = lineno

    def _check_metadata_keys(self) -> None:
        """Unknown keys are errors, but a newer schema version is reported first."""
        if "schema_version" in self.metadata:
            check_schema_version(
                self.metadata["schema_version"],
                origin=f"{self.path}: line {self._key_lines['schema_version']}",
            )
        for key, lineno in self._key_lines.items():
            if key not in RecordsMetadata.model_fields:
                known = ", ".join(RecordsMetadata.model_fields)
                raise RecordsError(
                    f"{self.path}: line {lineno}: unknown metadata key {key!r} "
                    f"(known keys: {known})"
                )

    def line_of_row(self, row: int) -> int:
        """1-based line number of data row ``row`` (blank lines are skipped, as pyarrow does)."""
        with self.path.open("rb") as fh:
            fh.seek(self.data_offset)
            seen = -1
            for lineno, raw in enumerate(fh, start=self.data_line):
                if raw.strip(b"\r\n"):
                    seen += 1
                    if seen == row:
                        return lineno
        return self.data_line + row

    def first_bad_line(self) -> tuple[int, int, int, str] | None:
        """(row, line, field count, text) of the first data line without six fields."""
        with self.path.open("rb") as fh:
            fh.seek(self.data_offset)
            row = -1
            for lineno, raw in enumerate(fh, start=self.data_line):
                text = raw.strip(b"\r\n")
                if not text:
                    continue
                row += 1
                count = text.count(b",") + 1
                if count != _N:
                    return row, lineno, count, text.decode("utf-8", "replace")
        return None


def _default_metadata(path: Path, header: dict[str, Any]) -> RecordsMetadata:
    data = dict(header)
    data.setdefault("source", "experiment")
    if "created_utc" not in data:
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        data["created_utc"] = mtime.isoformat(timespec="seconds")
    return metadata_from_mapping(data, origin=f"{path} (metadata lines)")


def _open_head(path: str | os.PathLike[str]) -> _Head:
    target = Path(path)
    if not target.exists():
        raise RecordsError(f"{target}: file not found; check the path")
    if target.is_dir():
        raise RecordsError(f"{target}: is a directory, not a records file")
    return _Head(target)


def _resolve_metadata(head: _Head, metadata: RecordsMetadata | None) -> RecordsMetadata:
    if metadata is None:
        return _default_metadata(head.path, head.metadata)
    if head.metadata:
        raise RecordsError(
            f"{head.path}: the file has its own metadata lines and metadata was also passed; "
            "remove the '# key = value' lines or do not pass metadata"
        )
    if not isinstance(metadata, RecordsMetadata):
        raise RecordsError(f"metadata must be a RecordsMetadata, got {type(metadata)}")
    return metadata


def read_csv_metadata(
    path: str | os.PathLike[str], metadata: RecordsMetadata | None = None
) -> RecordsMetadata:
    """The metadata of a CSV records file (its ``# key = value`` lines, or the defaults)."""
    return _resolve_metadata(_open_head(path), metadata)


def iter_csv_records(
    path: str | os.PathLike[str],
    *,
    metadata: RecordsMetadata | None = None,
    batch_rows: int = 1 << 20,
) -> Iterator[tuple[RecordsMetadata, dict[str, npt.NDArray[Any]]]]:
    """Yield ``(metadata, columns)`` for each validated batch of at most ``batch_rows`` rows.

    Parameters
    ----------
    path : str or PathLike
        The CSV file.
    metadata : RecordsMetadata, optional
        Metadata for a file without ``# key = value`` lines. Without either, the metadata is
        ``source="experiment"``, ``created_utc`` = the file's modification time, the rest
        default.
    batch_rows : int
        Largest batch yielded.

    Raises
    ------
    RecordsError
        Naming row (0-based data row), line and column of the first problem.
    """
    head = _open_head(path)
    meta = _resolve_metadata(head, metadata)
    validator = BatchValidator(
        origin=str(head.path), row_note=lambda r: f" (line {head.line_of_row(r)})"
    )
    size = head.path.stat().st_size
    if size > head.data_offset:
        yield from _iter_body(head, meta, validator, batch_rows)
    if meta.n_rounds is not None and meta.n_rounds != validator.rows_seen:
        raise RecordsError(
            f"{head.path}: the metadata says n_rounds = {meta.n_rounds} but the file has "
            f"{validator.rows_seen} data rows; the file is truncated or was edited"
        )


def _iter_body(
    head: _Head, meta: RecordsMetadata, validator: BatchValidator, batch_rows: int
) -> Iterator[tuple[RecordsMetadata, dict[str, npt.NDArray[Any]]]]:
    bad_rows: list[str] = []

    def on_invalid_row(row: Any) -> str:
        bad_rows.append(str(row.text))
        return "skip"  # located and reported below, after the rows before it are checked

    block = max(1 << 16, min(batch_rows * 40, 1 << 26))
    source = pa.OSFile(str(head.path))
    try:
        source.seek(head.data_offset)
        reader = None
        while True:
            try:
                if reader is None:
                    reader = pcsv.open_csv(
                        source,
                        read_options=pcsv.ReadOptions(
                            column_names=head.names, block_size=block, use_threads=False
                        ),
                        parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid_row),
                        convert_options=pcsv.ConvertOptions(
                            column_types=dict.fromkeys(head.names, pa.string()),
                            strings_can_be_null=False,
                            quoted_strings_can_be_null=False,
                        ),
                    )
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except (OSError, pa.ArrowException) as exc:
                raise RecordsError(
                    f"{head.path}: cannot parse the CSV after row {validator.rows_seen} "
                    f"({_one_line(exc)})"
                ) from exc
            bad = head.first_bad_line() if bad_rows else None
            if bad is not None and bad[0] - validator.rows_seen < batch.num_rows:
                batch = batch.slice(0, bad[0] - validator.rows_seen)
            else:
                bad = None
            for start in range(0, batch.num_rows, batch_rows):
                piece = batch.slice(start, batch_rows)
                columns = parse_string_columns(
                    {name: piece.column(name) for name in COLUMNS}, validator
                )
                yield meta, columns
            if bad is not None:
                raise _field_count_error(head, bad)
        if bad_rows:  # defensive: a skipped row that was not located above
            found = head.first_bad_line()
            if found is not None:
                raise _field_count_error(head, found)
    finally:
        source.close()


def _field_count_error(head: _Head, bad: tuple[int, int, int, str]) -> RecordsError:
    row, line, count, text = bad
    return RecordsError(
        f"{head.path}: row {row} (line {line}): expected {_N} comma-separated values, "
        f"found {count} ({text!r}); the line is truncated or a value is missing"
    )


def read_csv_records(
    path: str | os.PathLike[str], metadata: RecordsMetadata | None = None
) -> Records:
    """Read a whole CSV records file into memory (see :func:`iter_csv_records`)."""
    return concat_batches(
        iter_csv_records(path, metadata=metadata), lambda: read_csv_metadata(path, metadata)
    )


def _header_lines(metadata: RecordsMetadata) -> str:
    lines = []
    for key, value in metadata.model_dump(mode="json").items():
        if value is not None:
            lines.append(f"# {key} = {json.dumps(value)}\n")
    lines.append(",".join(COLUMNS) + "\n")
    return "".join(lines)


def write_csv_records(
    path: str | os.PathLike[str],
    batches: Iterable[Mapping[str, npt.ArrayLike]],
    metadata: RecordsMetadata,
    *,
    overwrite: bool = False,
) -> int:
    """Write round records as CSV (metadata lines, header, one line per round); return rows.

    Values round-trip exactly (floats are written in shortest round-trip form). Memory stays
    flat: the body is written to ``<path>.body.tmp`` and joined to the header (which needs
    ``n_rounds``) at the end. Nothing is left at ``path`` on failure.

    Raises
    ------
    RecordsError
        If a batch is invalid, the file exists (without ``overwrite``) or cannot be written,
        or ``metadata.n_rounds`` is given and differs from the rows written.
    """
    target = prepare_target(path, overwrite=overwrite)
    if not isinstance(metadata, RecordsMetadata):
        raise RecordsError(f"metadata must be a RecordsMetadata, got {type(metadata)}")
    body = target.with_name(target.name + ".body.tmp")
    tmp = temporary_path(target)
    validator = BatchValidator(origin=str(target))
    schema = pa.schema([pa.field(n, pa.from_numpy_dtype(d)) for n, d in COLUMNS.items()])
    options = pcsv.WriteOptions(include_header=False, quoting_style="none")
    try:
        with pcsv.CSVWriter(str(body), schema, write_options=options) as writer:
            for batch in batches:
                cast = validator.validate(batch)
                writer.write_table(pa.table(cast, schema=schema))
        n = validator.rows_seen
        if metadata.n_rounds is not None and metadata.n_rounds != n:
            raise RecordsError(
                f"{target}: metadata says n_rounds={metadata.n_rounds} but {n} rows were "
                "written; leave n_rounds as None and the writer fills it in"
            )
        final = metadata.model_copy(update={"n_rounds": n})
        with tmp.open("w", encoding="utf-8", newline="\n") as out, body.open("rb") as src:
            out.write(_header_lines(final))
            out.flush()
            shutil.copyfileobj(src, out.buffer)
        os.replace(tmp, target)
    except (OSError, pa.ArrowException) as exc:
        raise RecordsError(f"{target}: writing the CSV failed ({_one_line(exc)})") from exc
    finally:
        body.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    return n
