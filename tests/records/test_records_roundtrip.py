"""Property tests: valid records round-trip exactly through Parquet and CSV, metadata included."""

from __future__ import annotations

import itertools
import tempfile
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from hypothesis import given
from hypothesis import strategies as st

from diqkd.records import (
    COLUMNS,
    Records,
    RecordsMetadata,
    convert_records,
    iter_records,
    read_records,
    write_csv_records,
    write_records,
)

Columns = dict[str, npt.NDArray[Any]]

_texts = st.text(max_size=24)


@st.composite
def metadata(draw: st.DrawFn) -> RecordsMetadata:
    source = draw(st.sampled_from(["simulation", "experiment"]))
    p = draw(st.floats(0.0, 1.0))
    q = draw(st.floats(0.0, 1.0))
    r = draw(st.floats(0.0, 1.0 - q))
    stamp = draw(st.datetimes(timezones=st.just(UTC)))
    created = stamp.isoformat()
    if draw(st.booleans()):
        created = created.replace("+00:00", "Z")
    return RecordsMetadata(
        source=source,
        profile_name=draw(st.none() | _texts),
        profile_hash=draw(st.none() | st.text("0123456789abcdef", min_size=64, max_size=64)),
        distance_km=draw(st.none() | st.floats(0.0, 1e6)),
        seed=draw(st.none() | st.integers(0, 2**70)) if source == "simulation" else None,
        created_utc=created,
        input_probs_x=(p, 1.0 - p),
        input_probs_y=(q, r, 1.0 - q - r),
        notes=draw(_texts),
    )


@st.composite
def columns(draw: st.DrawFn, max_rows: int = 50) -> Columns:
    n = draw(st.integers(0, max_rows))
    bits = st.lists(st.integers(0, 1), min_size=n, max_size=n)
    rounds = draw(st.lists(st.integers(0, 2**64 - 1), min_size=n, max_size=n, unique=True))
    times = draw(
        st.lists(
            st.floats(0.0, 1e15, allow_nan=False, allow_infinity=False), min_size=n, max_size=n
        )
    )
    return {
        "round": np.array(sorted(rounds), dtype=np.uint64),
        "t_s": np.array(sorted(times), dtype=np.float64),
        "x": np.array(draw(bits), dtype=np.uint8),
        "y": np.array(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)), dtype=np.uint8),
        "a": np.array(draw(bits), dtype=np.uint8),
        "b": np.array(draw(bits), dtype=np.uint8),
    }


@st.composite
def chunked(draw: st.DrawFn) -> tuple[Columns, list[Columns]]:
    cols = draw(columns())
    n = len(cols["round"])
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=5)))
    edges = [0, *cuts, n]
    chunks = [{k: v[lo:hi] for k, v in cols.items()} for lo, hi in itertools.pairwise(edges)]
    return cols, chunks


def assert_exact(records: Records, expected: Columns) -> None:
    assert len(records) == len(expected["round"])
    for name, dtype in COLUMNS.items():
        got = getattr(records, name)
        assert got.dtype == dtype
        if name == "t_s":  # bit for bit, not just ==
            np.testing.assert_array_equal(got.view(np.uint64), expected[name].view(np.uint64))
        else:
            np.testing.assert_array_equal(got, expected[name])


@given(data=chunked(), meta=metadata(), batch_rows=st.integers(1, 64))
def test_parquet_round_trip_is_exact(
    data: tuple[Columns, list[Columns]], meta: RecordsMetadata, batch_rows: int
) -> None:
    cols, chunks = data
    n = len(cols["round"])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.parquet"
        assert write_records(path, chunks, meta) == n
        back = read_records(path)
        assert back.metadata == meta.model_copy(update={"n_rounds": n})
        assert_exact(back, cols)
        pieces = list(iter_records(path, batch_rows))
        assert all(len(c["round"]) <= batch_rows for _, c in pieces)
        joined = {
            k: np.concatenate([c[k] for _, c in pieces] or [np.empty(0, COLUMNS[k])])
            for k in COLUMNS
        }
        assert_exact(Records.from_columns(back.metadata, joined), cols)


@given(data=chunked(), meta=metadata(), batch_rows=st.integers(1, 64))
def test_csv_round_trip_is_exact(
    data: tuple[Columns, list[Columns]], meta: RecordsMetadata, batch_rows: int
) -> None:
    cols, chunks = data
    n = len(cols["round"])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.csv"
        assert write_csv_records(path, chunks, meta) == n
        back = read_records(path)
        assert back.metadata == meta.model_copy(update={"n_rounds": n})
        assert_exact(back, cols)
        pieces = list(iter_records(path, batch_rows))
        assert all(len(c["round"]) <= batch_rows for _, c in pieces)


@given(data=chunked(), meta=metadata())
def test_conversion_chain_is_exact(
    data: tuple[Columns, list[Columns]], meta: RecordsMetadata
) -> None:
    cols, chunks = data
    with tempfile.TemporaryDirectory() as tmp:
        first = Path(tmp) / "a.parquet"
        write_records(first, chunks, meta)
        convert_records(first, Path(tmp) / "b.csv")
        convert_records(Path(tmp) / "b.csv", Path(tmp) / "c.pq")
        back = read_records(Path(tmp) / "c.pq")
        assert back.metadata == read_records(first).metadata
        assert_exact(back, cols)
