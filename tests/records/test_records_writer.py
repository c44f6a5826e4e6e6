"""RecordsWriter: batch validation, atomic finish, n_rounds at close, flat memory."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from diqkd.errors import RecordsError
from diqkd.records import (
    COLUMNS,
    METADATA_KEY,
    Records,
    RecordsMetadata,
    RecordsWriter,
    read_metadata,
    read_records,
    write_records,
)

Batch = dict[str, Any]


def test_writer_writes_and_fills_n_rounds(
    tmp_path: Path, meta: RecordsMetadata, make_batch: Callable[..., Batch]
) -> None:
    path = tmp_path / "r.parquet"
    first = make_batch(10)
    second = make_batch(7, first_round=int(first["round"][-1]) + 1, t0_s=float(first["t_s"][-1]))
    with RecordsWriter(path, meta) as writer:
        writer.write(first)
        writer.write(make_batch(0))
        writer.write(second)
        assert writer.rows_written == 17
        assert not path.exists()  # only the temporary file exists while writing
    assert read_metadata(path) == meta.model_copy(update={"n_rounds": 17})
    records = read_records(path)
    assert len(records) == 17
    np.testing.assert_array_equal(records.round[:10], first["round"])
    assert list(pq.ParquetFile(path).schema_arrow.names) == list(COLUMNS)


def test_schema_and_layout(
    tmp_path: Path, meta: RecordsMetadata, make_batch: Callable[..., Batch]
) -> None:
    path = tmp_path / "r.parquet"
    with RecordsWriter(path, meta, row_group_rows=100) as writer:
        start = 0
        for _ in range(25):  # many small batches are gathered into full row groups
            batch = make_batch(10, first_round=start, t0_s=float(start))
            start = int(batch["round"][-1]) + 1
            writer.write(batch)
    pf = pq.ParquetFile(path)
    sizes = [pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)]
    assert sizes == [100, 100, 50]
    for name, dtype in COLUMNS.items():
        field = pf.schema_arrow.field(name)
        assert field.type == pa.from_numpy_dtype(dtype)
        assert not field.nullable
    assert METADATA_KEY in pf.metadata.metadata


def test_exception_inside_with_leaves_no_file(
    tmp_path: Path, meta: RecordsMetadata, make_batch: Callable[..., Batch]
) -> None:
    path = tmp_path / "r.parquet"
    with pytest.raises(KeyError), RecordsWriter(path, meta, row_group_rows=5) as writer:
        writer.write(make_batch(20))  # already flushed to the temporary file
        raise KeyError("simulated crash")
    assert list(tmp_path.iterdir()) == []


def test_invalid_batch_inside_with_leaves_no_file(
    tmp_path: Path, meta: RecordsMetadata, make_batch: Callable[..., Batch]
) -> None:
    path = tmp_path / "r.parquet"
    bad = make_batch(5, first_round=100, t0_s=100.0)
    bad["y"] = np.array([0, 1, 2, 3, 0], dtype=np.uint8)
    with pytest.raises(RecordsError, match=r"row 6, column 'y': value 3 out of range \{0,1,2\}"):
        write_records(path, [make_batch(3), bad], meta)
    assert list(tmp_path.iterdir()) == []


def test_writer_survives_a_rejected_batch(
    tmp_path: Path, meta: RecordsMetadata, make_batch: Callable[..., Batch]
) -> None:
    path = tmp_path / "r.parquet"
    good = make_batch(4)
    with RecordsWriter(path, meta) as writer:
        writer.write(good)
        with pytest.raises(RecordsError, match=r"row 4, column 'round': .* not greater"):
            writer.write(good)  # same rounds again
        writer.write(make_batch(3, first_round=int(good["round"][-1]) + 1, t0_s=10.0))
    assert len(read_records(path)) == 7


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (
            lambda b: b.update(x=np.array(["0"] * len(b["x"]))),
            r"column 'x' has dtype <U1; expected integers",
        ),
        (lambda b: b.update(y=b["y"].astype(object)), r"column 'y' has dtype object"),
        (lambda b: b.update(a=b["a"][:-1]), r"column 'a' has 4 rows but column 'round' has 5"),
        (lambda b: b.update(b=b["b"].reshape(5, 1)), r"column 'b' must be one-dimensional"),
        (lambda b: b.pop("t_s"), r"missing column\(s\) 't_s'"),
        (lambda b: b.update(extra=b["x"]), r"unexpected column\(s\) 'extra'"),
        (lambda b: b.update(round=-np.arange(5)), r"row 1, column 'round': value -1 out of range"),
        (
            lambda b: b.update(round=np.arange(5) + 0.5),
            r"row 0, column 'round': 0\.5 is not an integer",
        ),
        (lambda b: b.update(round=np.full(5, 2.0**60)), r"row 0, column 'round': .* above 2\*\*53"),
        (
            lambda b: b.update(t_s=np.array(["1"] * 5)),
            r"column 't_s' has dtype <U1; expected numbers",
        ),
        (
            lambda b: b.update(x=np.array([0, 1, 0, 1, 256])),
            r"row 4, column 'x': value 256 out of range",
        ),
    ],
)
def test_write_rejects_bad_batches(
    tmp_path: Path,
    meta: RecordsMetadata,
    make_batch: Callable[..., Batch],
    change: Callable[[Batch], Any],
    pattern: str,
) -> None:
    batch = make_batch(5)
    change(batch)
    with (
        RecordsWriter(tmp_path / "r.parquet", meta) as writer,
        pytest.raises(RecordsError, match=pattern),
    ):
        writer.write(batch)


def test_lossless_dtypes_are_accepted(tmp_path: Path, meta: RecordsMetadata) -> None:
    path = tmp_path / "r.parquet"
    batch = {
        "round": [3, 5, 9],  # Python ints
        "t_s": np.array([0, 1, 1], dtype=np.int32),
        "x": np.array([True, False, True]),
        "y": np.array([0.0, 2.0, 1.0]),  # integral floats
        "a": np.array([0, 1, 1], dtype=np.int64),
        "b": np.array([1, 1, 0], dtype=np.uint32),
    }
    write_records(path, [batch], meta)
    records = read_records(path)
    np.testing.assert_array_equal(records.y, [0, 2, 1])
    np.testing.assert_array_equal(records.t_s, [0.0, 1.0, 1.0])


def test_existing_file_needs_overwrite(
    tmp_path: Path, meta: RecordsMetadata, make_batch: Callable[..., Batch]
) -> None:
    path = tmp_path / "r.parquet"
    write_records(path, [make_batch(3)], meta)
    with pytest.raises(RecordsError, match=r"file exists; pass overwrite=True"):
        RecordsWriter(path, meta)
    assert write_records(path, [make_batch(5)], meta, overwrite=True) == 5
    assert len(read_records(path)) == 5


def test_bad_writer_arguments(tmp_path: Path, meta: RecordsMetadata) -> None:
    with pytest.raises(RecordsError, match=r"name the file \*\.parquet or \*\.pq"):
        RecordsWriter(tmp_path / "r.csv", meta)
    with pytest.raises(RecordsError, match=r"folder .* does not exist"):
        RecordsWriter(tmp_path / "no" / "r.parquet", meta)
    with pytest.raises(RecordsError, match=r"row_group_rows must be >= 1"):
        RecordsWriter(tmp_path / "r.parquet", meta, row_group_rows=0)
    with pytest.raises(RecordsError, match=r"metadata must be a RecordsMetadata"):
        RecordsWriter(tmp_path / "r.parquet", {"source": "simulation"})  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_n_rounds_given_must_match(
    tmp_path: Path, meta: RecordsMetadata, make_batch: Callable[..., Batch]
) -> None:
    path = tmp_path / "r.parquet"
    with pytest.raises(RecordsError, match=r"metadata says n_rounds=4 but 3 rows were written"):
        write_records(path, [make_batch(3)], meta.model_copy(update={"n_rounds": 4}))
    assert list(tmp_path.iterdir()) == []
    write_records(path, [make_batch(3)], meta.model_copy(update={"n_rounds": 3}))
    assert read_metadata(path).n_rounds == 3


def test_closed_writer_refuses_more(
    tmp_path: Path, meta: RecordsMetadata, make_batch: Callable[..., Batch]
) -> None:
    writer = RecordsWriter(tmp_path / "r.parquet", meta)
    writer.write(make_batch(2))
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(RecordsError, match="the writer is closed"):
        writer.write(make_batch(2))


def test_without_add_key_value_metadata_n_rounds_stays_none(
    tmp_path: Path,
    meta: RecordsMetadata,
    make_batch: Callable[..., Batch],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pyarrow < 17 has no ParquetWriter.add_key_value_metadata: files stay valid."""
    monkeypatch.delattr(pq.ParquetWriter, "add_key_value_metadata")
    path = tmp_path / "r.parquet"
    write_records(path, [make_batch(6)], meta)
    assert read_metadata(path) == meta
    assert len(read_records(path)) == 6


def test_records_container(meta: RecordsMetadata, make_batch: Callable[..., Batch]) -> None:
    batch = make_batch(6)
    records = Records.from_columns(meta, batch)
    assert len(records) == 6
    assert not records.x.flags.writeable
    assert batch["x"].flags.writeable  # the caller's array is not frozen
    with pytest.raises(ValueError, match="read-only"):
        records.x[0] = 1
    assert set(records.columns()) == set(COLUMNS)
    assert "n=6" in repr(records)
    bad = dict(batch, y=np.full(6, 5))
    with pytest.raises(RecordsError, match=r"Records: row 0, column 'y': value 5"):
        Records.from_columns(meta, bad)


def test_memory_stays_flat(tmp_path: Path, meta: RecordsMetadata) -> None:
    """5e6 rows in 1e5-row batches: the writer never holds more than ~a row group."""
    n_batches, rows = 50, 100_000
    full_bytes = n_batches * rows * sum(d.itemsize for d in COLUMNS.values())  # 100 MB
    arrow_peak = 0
    rng = np.random.default_rng(1)

    def batches() -> Iterator[Batch]:
        nonlocal arrow_peak
        for i in range(n_batches):
            start = i * rows
            yield {
                "round": np.arange(start, start + rows, dtype=np.uint64),
                "t_s": np.arange(start, start + rows, dtype=np.float64) * 1e-6,
                "x": rng.integers(0, 2, rows, dtype=np.uint8),
                "y": rng.integers(0, 3, rows, dtype=np.uint8),
                "a": rng.integers(0, 2, rows, dtype=np.uint8),
                "b": rng.integers(0, 2, rows, dtype=np.uint8),
            }
            arrow_peak = max(arrow_peak, pa.total_allocated_bytes())

    tracemalloc.start()
    try:
        n = write_records(tmp_path / "big.parquet", batches(), meta)
        _, numpy_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == n_batches * rows
    assert numpy_peak < full_bytes / 5, numpy_peak
    assert arrow_peak < full_bytes / 5, arrow_peak
    assert read_metadata(tmp_path / "big.parquet").n_rounds == n
