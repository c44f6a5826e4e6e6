"""The public API of diqkd.records is pinned; the schema constants are as documented."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import diqkd.records as records
from diqkd.errors import RecordsError
from diqkd.records import (
    COLUMNS,
    SCHEMA_VERSION,
    Records,
    RecordsMetadata,
    read_metadata,
    records_format,
    summary,
    write_records,
)


def test_public_api_is_pinned() -> None:
    assert records.__all__ == [
        "COLUMNS",
        "METADATA_KEY",
        "SCHEMA_VERSION",
        "Records",
        "RecordsMetadata",
        "RecordsSummary",
        "RecordsWriter",
        "convert_records",
        "iter_records",
        "read_csv_records",
        "read_metadata",
        "read_records",
        "records_format",
        "summary",
        "write_csv_records",
        "write_records",
    ]
    for name in records.__all__:
        assert getattr(records, name) is not None


def test_schema_constants() -> None:
    assert SCHEMA_VERSION == 1
    assert records.METADATA_KEY == b"diqkd"
    assert list(COLUMNS) == ["round", "t_s", "x", "y", "a", "b"]
    assert [str(d) for d in COLUMNS.values()] == [
        "uint64",
        "float64",
        "uint8",
        "uint8",
        "uint8",
        "uint8",
    ]
    with pytest.raises(TypeError):
        COLUMNS["z"] = np.dtype(np.uint8)  # type: ignore[index]


def test_metadata_defaults_and_freezing() -> None:
    meta = RecordsMetadata(source="experiment")
    assert meta.schema_version == 1
    assert meta.input_probs_x == (0.5, 0.5)
    assert meta.input_probs_y == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert meta.notes == "" and meta.n_rounds is None and meta.seed is None
    assert meta.created_utc.endswith("+00:00")
    with pytest.raises(ValueError, match="frozen"):
        meta.notes = "changed"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("fields", "pattern"),
    [
        ({"source": "lab"}, "source"),
        ({"source": "experiment", "seed": 3}, "only meaningful for source='simulation'"),
        ({"source": "simulation", "seed": -1}, "seed"),
        ({"source": "experiment", "profile_hash": "ABC"}, "profile_hash"),
        ({"source": "experiment", "distance_km": float("nan")}, "distance_km"),
        ({"source": "experiment", "created_utc": "yesterday"}, "not an ISO-8601 timestamp"),
        ({"source": "experiment", "created_utc": "2026-01-31T12:00:00"}, "not in UTC"),
        ({"source": "experiment", "input_probs_y": (0.5, 0.5)}, "input_probs_y"),
        ({"source": "experiment", "input_probs_x": (1.5, -0.5)}, r"must lie in \[0, 1\]"),
        ({"source": "experiment", "schema_version": 2}, "newer diqkd"),
        ({"source": "experiment", "colour": "blue"}, "colour"),
    ],
)
def test_metadata_rejects(fields: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        RecordsMetadata(**fields)


def test_records_format() -> None:
    assert records_format("a.parquet") == "parquet"
    assert records_format("a.PQ") == "parquet"
    assert records_format(Path("x/a.csv")) == "csv"
    with pytest.raises(RecordsError, match=r"unsupported records format '\.json'"):
        records_format("a.json")
    with pytest.raises(RecordsError, match=r"'\(no suffix\)'"):
        records_format("a")


def test_summary(tmp_path: Path, meta: RecordsMetadata, make_batch: Callable[..., Any]) -> None:
    batch = make_batch(500)
    path = tmp_path / "r.parquet"
    write_records(path, [batch], meta)
    from_file = summary(path, batch_rows=64)
    from_memory = summary(Records.from_columns(meta, batch))
    assert from_file.n_rows == from_memory.n_rows == 500
    np.testing.assert_array_equal(from_file.counts_xyab, from_memory.counts_xyab)
    expected = np.zeros((2, 3, 2, 2), dtype=np.int64)
    np.add.at(expected, (batch["x"], batch["y"], batch["a"], batch["b"]), 1)
    np.testing.assert_array_equal(from_file.counts_xyab, expected)
    np.testing.assert_array_equal(from_file.counts_xy, expected.sum(axis=(2, 3)))
    assert from_file.first_round == int(batch["round"][0])
    assert from_file.last_t_s == float(batch["t_s"][-1])
    span = int(batch["round"][-1]) - int(batch["round"][0]) + 1
    assert from_file.heralds_per_attempt == pytest.approx(500 / span)
    doc = from_file.to_dict()
    assert doc["n_rows"] == 500 and doc["metadata"]["n_rounds"] == 500


def test_summary_of_empty_file(tmp_path: Path, meta: RecordsMetadata) -> None:
    path = tmp_path / "empty.parquet"
    write_records(path, [], meta)
    result = summary(path)
    assert result.n_rows == 0 and result.first_round is None and result.duration_s == 0.0
    assert result.heralds_per_attempt is None
    assert read_metadata(path).n_rounds == 0
