"""Every malformed input gives a RecordsError that names what is wrong (row and column)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from diqkd.errors import DiqkdError, RecordsError
from diqkd.records import (
    METADATA_KEY,
    RecordsMetadata,
    iter_records,
    read_metadata,
    read_records,
    write_records,
)

Batch = dict[str, Any]

# --------------------------------------------------------------------------- broken Parquet


def raw_parquet(path: Path, columns: dict[str, Any], metadata: bytes | None) -> Path:
    """Write ``columns`` with plain pyarrow, bypassing every diqkd check."""
    table = pa.table(columns)
    if metadata is not None:
        table = table.replace_schema_metadata({METADATA_KEY: metadata})
    pq.write_table(table, path)
    return path


def meta_json(meta: RecordsMetadata, **changes: Any) -> bytes:
    data = meta.model_dump(mode="json")
    data.update(changes)
    return json.dumps(data).encode()


def expect(path: Path, pattern: str) -> RecordsError:
    with pytest.raises(RecordsError, match=pattern) as info:
        read_records(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    return info.value


def mutate(batch: Batch, name: str, row: int, value: Any) -> Batch:
    out = {k: np.array(v) for k, v in batch.items()}
    if isinstance(value, float) and out[name].dtype.kind != "f":
        out[name] = out[name].astype(np.float64)
    out[name][row] = value
    return out


@pytest.mark.parametrize(
    ("column", "row", "value", "pattern"),
    [
        ("y", 17, 3, r"row 17, column 'y': value 3 out of range \{0,1,2\}"),
        ("a", 4, 2, r"row 4, column 'a': value 2 out of range \{0,1\}"),
        ("x", 9, 7, r"row 9, column 'x': value 7 out of range \{0,1\}"),
        ("b", 0, 2, r"row 0, column 'b': value 2 out of range \{0,1\}"),
        ("x", 3, 0.5, r"row 3, column 'x': 0\.5 is not an integer"),
        ("t_s", 6, float("nan"), r"row 6, column 't_s': nan is not a finite time"),
        ("t_s", 6, float("inf"), r"row 6, column 't_s': inf is not a finite time"),
        ("t_s", 0, -1.0, r"row 0, column 't_s': -1\.0 is negative"),
        ("t_s", 8, 0.0, r"row 8, column 't_s': 0\.0 is less than the previous herald time"),
    ],
)
def test_bad_values_in_a_parquet_file(
    tmp_path: Path,
    meta: RecordsMetadata,
    make_batch: Callable[..., Batch],
    column: str,
    row: int,
    value: Any,
    pattern: str,
) -> None:
    batch = mutate(make_batch(30), column, row, value)
    expect(raw_parquet(tmp_path / "bad.parquet", batch, meta_json(meta)), pattern)


def test_duplicate_round_is_named(tmp_path: Path, meta: RecordsMetadata) -> None:
    batch = {
        "round": np.array([1, 4, 7, 9, 12, 12, 20], dtype=np.uint64),
        "t_s": np.linspace(0, 1, 7),
        **{k: np.zeros(7, dtype=np.uint8) for k in "xyab"},
    }
    expect(
        raw_parquet(tmp_path / "dup.parquet", batch, meta_json(meta)),
        r"row 5, column 'round': 12 is not greater than the previous round 12",
    )


@pytest.mark.parametrize("batch_rows", [1, 2, 3, 5, 7])
def test_monotonicity_is_checked_across_batches(
    tmp_path: Path, meta: RecordsMetadata, batch_rows: int
) -> None:
    batch = {
        "round": np.array([1, 4, 7, 9, 12, 11, 20], dtype=np.uint64),
        "t_s": np.linspace(0, 1, 7),
        **{k: np.zeros(7, dtype=np.uint8) for k in "xyab"},
    }
    path = raw_parquet(tmp_path / "dec.parquet", batch, meta_json(meta))
    with pytest.raises(
        RecordsError, match=r"row 5, column 'round': 11 is not greater than the previous round 12"
    ):
        list(iter_records(path, batch_rows))


def test_wrong_column_type_in_a_parquet_file(
    tmp_path: Path, meta: RecordsMetadata, make_batch: Callable[..., Batch]
) -> None:
    batch: dict[str, Any] = make_batch(5)
    batch["x"] = pa.array(["0", "1", "0", "1", "0"])
    expect(
        raw_parquet(tmp_path / "s.parquet", batch, meta_json(meta)),
        r"column 'x' has type string in the file; expected uint8",
    )


def test_null_in_a_parquet_file(
    tmp_path: Path, meta: RecordsMetadata, make_batch: Callable[..., Batch]
) -> None:
    batch: dict[str, Any] = make_batch(5)
    batch["a"] = pa.array([0, 1, None, 1, 0], type=pa.uint8())
    expect(
        raw_parquet(tmp_path / "n.parquet", batch, meta_json(meta)),
        r"row 2, column 'a': missing value \(null\)",
    )


def test_integer_types_that_fit_are_accepted(
    tmp_path: Path, meta: RecordsMetadata, make_batch: Callable[..., Batch]
) -> None:
    batch = {
        k: np.asarray(v).astype(np.int64) if k != "t_s" else v for k, v in make_batch(9).items()
    }
    path = raw_parquet(tmp_path / "i64.parquet", batch, meta_json(meta))
    records = read_records(path)
    assert records.x.dtype == np.uint8 and records.round.dtype == np.uint64
    np.testing.assert_array_equal(records.y, batch["y"])


def test_missing_column(
    tmp_path: Path, meta: RecordsMetadata, make_batch: Callable[..., Batch]
) -> None:
    batch = make_batch(5)
    del batch["b"]
    expect(raw_parquet(tmp_path / "m.parquet", batch, meta_json(meta)), r"missing column\(s\) 'b'")


def test_extra_column(
    tmp_path: Path, meta: RecordsMetadata, make_batch: Callable[..., Batch]
) -> None:
    batch = make_batch(5)
    batch["c"] = np.zeros(5, dtype=np.uint8)
    expect(
        raw_parquet(tmp_path / "e.parquet", batch, meta_json(meta)), r"unexpected column\(s\) 'c'"
    )


def test_truncated_parquet(
    tmp_path: Path, meta: RecordsMetadata, make_batch: Callable[..., Batch]
) -> None:
    good = tmp_path / "good.parquet"
    write_records(good, [make_batch(1000)], meta)
    data = good.read_bytes()
    for cut in (1, 8, len(data) // 2, len(data) - 4):
        bad = tmp_path / f"cut{cut}.parquet"
        bad.write_bytes(data[:-cut])
        err = expect(
            bad, r"not a readable Parquet file; it is truncated, corrupt or another format"
        )
        assert isinstance(err.__cause__, (OSError, pa.ArrowException))


def test_corrupted_page_is_caught_by_checksum(
    tmp_path: Path, meta: RecordsMetadata, make_batch: Callable[..., Batch]
) -> None:
    good = tmp_path / "good.parquet"
    write_records(good, [make_batch(2000)], meta)
    data = bytearray(good.read_bytes())
    data[200] ^= 0xFF  # inside the first data page
    bad = tmp_path / "flip.parquet"
    bad.write_bytes(bytes(data))
    expect(bad, r"corrupt")


@pytest.mark.parametrize("content", [b"", b"PAR1", b"hello, this is not parquet\n" * 10])
def test_garbage_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "garbage.parquet"
    path.write_bytes(content)
    expect(path, r"not a readable Parquet file")


def test_file_not_found(tmp_path: Path) -> None:
    for name in ("none.parquet", "none.csv"):
        expect(tmp_path / name, r"file not found; check the path")


def test_directory(tmp_path: Path) -> None:
    folder = tmp_path / "d.parquet"
    folder.mkdir()
    expect(folder, r"is a directory")


def test_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "r.txt"
    path.write_text("round,t_s,x,y,a,b\n")
    with pytest.raises(
        RecordsError, match=r"supported formats are Parquet \(\.parquet, \.pq\) and CSV"
    ):
        read_records(path)


def test_metadata_missing(tmp_path: Path, make_batch: Callable[..., Batch]) -> None:
    expect(
        raw_parquet(tmp_path / "nometa.parquet", make_batch(3), None),
        r"no diqkd records metadata \(key 'diqkd'\)",
    )


@pytest.mark.parametrize(
    ("payload", "pattern"),
    [
        (b"{not json", r"not valid JSON"),
        (b"[1, 2]", r"not a JSON object"),
        (b'{"schema_version": 1}', r"metadata key 'source' is required"),
    ],
)
def test_metadata_malformed(
    tmp_path: Path, make_batch: Callable[..., Batch], payload: bytes, pattern: str
) -> None:
    expect(raw_parquet(tmp_path / "bad.parquet", make_batch(3), payload), pattern)


def test_newer_schema_version(
    tmp_path: Path, meta: RecordsMetadata, make_batch: Callable[..., Batch]
) -> None:
    payload = meta_json(meta, schema_version=2, brand_new_key=1)
    err = expect(
        raw_parquet(tmp_path / "v2.parquet", make_batch(3), payload),
        r"schema_version 2 was written by a newer diqkd",
    )
    assert "upgrade" in str(err)
    with pytest.raises(RecordsError, match="newer diqkd"):
        read_metadata(tmp_path / "v2.parquet")


def test_unknown_metadata_key(
    tmp_path: Path, meta: RecordsMetadata, make_batch: Callable[..., Batch]
) -> None:
    payload = meta_json(meta, color="blue")
    expect(
        raw_parquet(tmp_path / "k.parquet", make_batch(3), payload),
        r"unknown metadata key 'color' \(known keys: schema_version, source",
    )


def test_invalid_metadata_value(
    tmp_path: Path, meta: RecordsMetadata, make_batch: Callable[..., Batch]
) -> None:
    payload = meta_json(meta, distance_km=-3.0)
    expect(raw_parquet(tmp_path / "d.parquet", make_batch(3), payload), r"distance_km: .*-3\.0")


def test_n_rounds_disagreeing_with_the_footer(
    tmp_path: Path, meta: RecordsMetadata, make_batch: Callable[..., Batch]
) -> None:
    payload = meta_json(meta, n_rounds=4)
    expect(
        raw_parquet(tmp_path / "n.parquet", make_batch(3), payload),
        r"metadata says n_rounds=4 but the file holds 3 rows",
    )


def test_errors_are_in_the_diqkd_tree() -> None:
    assert issubclass(RecordsError, DiqkdError)
    assert issubclass(RecordsError, ValueError)


@given(
    n=st.integers(1, 40),
    data=st.data(),
    column=st.sampled_from(["x", "y", "a", "b", "t_s"]),
    suffix=st.sampled_from([".parquet", ".csv"]),
)
def test_any_bad_cell_is_located(n: int, data: st.DataObject, column: str, suffix: str) -> None:
    """One bad cell anywhere in a valid file: the error names exactly its row and column."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    batch: Batch = {
        "round": np.cumsum(rng.integers(1, 9, n)).astype(np.uint64),
        "t_s": np.cumsum(rng.exponential(1.0, n)),
        **{k: rng.integers(0, 3 if k == "y" else 2, n, dtype=np.uint8) for k in "xyab"},
    }
    row = data.draw(st.integers(0, n - 1))
    meta = RecordsMetadata(source="experiment", created_utc="2026-01-01T00:00:00Z")
    if column == "t_s":
        batch = mutate(batch, "t_s", row, data.draw(st.sampled_from([np.nan, np.inf, -np.inf])))
    else:
        batch = mutate(batch, column, row, data.draw(st.integers(3, 255)))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"bad{suffix}"
        if suffix == ".parquet":
            raw_parquet(path, batch, meta_json(meta))
        else:
            lines = [",".join(batch) + "\n"]
            lines += [",".join(repr(batch[k][i].item()) for k in batch) + "\n" for i in range(n)]
            path.write_text("".join(lines))
        batch_rows = data.draw(st.integers(1, 50))
        with pytest.raises(
            RecordsError, match=rf"row {row}( \(line {row + 2}\))?, column '{column}'"
        ):
            for _ in iter_records(path, batch_rows):
                pass
