"""CSV import/export: metadata lines, header, and errors naming row, line and column."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from diqkd.errors import RecordsError
from diqkd.records import (
    RecordsMetadata,
    iter_records,
    read_csv_records,
    read_metadata,
    read_records,
    write_csv_records,
)

Batch = dict[str, Any]

HEADER = "round,t_s,x,y,a,b\n"
ROWS = [
    "0,0.5,0,2,1,1\n",
    "3,0.75,1,0,0,1\n",
    "4,0.75,0,1,1,0\n",
    "9,1.25,1,2,0,0\n",
    "12,2.0,0,0,1,1\n",
]


def csv_file(tmp_path: Path, text: str, name: str = "r.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def expect(path: Path, pattern: str) -> RecordsError:
    with pytest.raises(RecordsError, match=pattern) as info:
        read_records(path)
    assert "\n" not in str(info.value)
    return info.value


def test_plain_csv_without_metadata(tmp_path: Path) -> None:
    path = csv_file(tmp_path, HEADER + "".join(ROWS))
    records = read_records(path)
    assert len(records) == 5
    np.testing.assert_array_equal(records.round, [0, 3, 4, 9, 12])
    np.testing.assert_array_equal(records.y, [2, 0, 1, 2, 0])
    meta = records.metadata
    assert meta.source == "experiment"
    assert meta.profile_name is None and meta.seed is None and meta.n_rounds is None
    mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")
    assert meta.created_utc == mtime


def test_metadata_lines_json_and_toml_values(tmp_path: Path) -> None:
    text = (
        "\ufeff# schema_version = 1\n"
        "#\n"
        "# source = 'simulation'\n"  # TOML literal string
        "# seed = 42\n"
        "# distance_km = 1.5e1\n"
        '# profile_name = "ustc-2026"\n'
        "# created_utc = 2026-01-31T12:00:00Z\n"  # TOML date-time, kept as written
        "# input_probs_y = [0.25, 0.25, 0.5]\n"
        '# notes = "line one\\nline two"\n'
        "\n" + '"round","t_s","x","y","a","b"\r\n' + "".join(r.replace("\n", "\r\n") for r in ROWS)
    )
    records = read_records(csv_file(tmp_path, text))
    meta = records.metadata
    assert meta.source == "simulation" and meta.seed == 42 and meta.distance_km == 15.0
    assert meta.created_utc == "2026-01-31T12:00:00Z"
    assert meta.input_probs_y == (0.25, 0.25, 0.5)
    assert meta.notes == "line one\nline two"
    assert len(records) == 5


def test_columns_in_any_order(tmp_path: Path) -> None:
    text = "b,a,y,x,t_s,round\n1,1,2,0,0.5,0\n0,1,0,1,0.75,3\n"
    records = read_records(csv_file(tmp_path, text))
    np.testing.assert_array_equal(records.round, [0, 3])
    np.testing.assert_array_equal(records.b, [1, 0])
    np.testing.assert_array_equal(records.t_s, [0.5, 0.75])


def test_passing_metadata(tmp_path: Path, meta: RecordsMetadata) -> None:
    path = csv_file(tmp_path, HEADER + "".join(ROWS))
    assert read_csv_records(path, meta).metadata == meta
    with_lines = csv_file(tmp_path, '# source = "experiment"\n' + HEADER + ROWS[0], "m.csv")
    with pytest.raises(
        RecordsError, match=r"has its own metadata lines and metadata was also passed"
    ):
        read_csv_records(with_lines, meta)


def test_header_only_file(tmp_path: Path) -> None:
    path = csv_file(tmp_path, '# source = "experiment"\n# n_rounds = 0\n' + HEADER)
    records = read_records(path)
    assert len(records) == 0 and records.metadata.n_rounds == 0


def test_written_csv_looks_as_documented(tmp_path: Path, meta: RecordsMetadata) -> None:
    batch = {
        "round": [0, 3],
        "t_s": [0.1 + 0.2, 0.5],
        "x": [0, 1],
        "y": [2, 0],
        "a": [1, 0],
        "b": [1, 1],
    }
    path = tmp_path / "out.csv"
    assert write_csv_records(path, [batch], meta) == 2
    lines = path.read_text().splitlines()
    assert lines[0] == "# schema_version = 1"
    assert '# source = "simulation"' in lines
    assert "# n_rounds = 2" in lines
    assert "# input_probs_x = [0.5, 0.5]" in lines
    assert lines[-3:] == ["round,t_s,x,y,a,b", "0,0.30000000000000004,0,2,1,1", "3,0.5,1,0,0,1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_csv_writer_failure_leaves_no_file(
    tmp_path: Path, meta: RecordsMetadata, make_batch: Callable[..., Batch]
) -> None:
    bad = make_batch(4)
    bad["a"] = np.array([0, 1, 2, 0])
    with pytest.raises(RecordsError, match=r"row 2, column 'a': value 2 out of range"):
        write_csv_records(tmp_path / "out.csv", [bad], meta)
    with pytest.raises(RecordsError, match=r"metadata says n_rounds=9 but 4 rows"):
        write_csv_records(
            tmp_path / "out.csv", [make_batch(4)], meta.model_copy(update={"n_rounds": 9})
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("row", "replacement", "pattern"),
    [
        (2, "4,0.75,0,1,1\n", r"row 2 \(line 4\): expected 6 comma-separated values, found 5"),
        (4, "12,2.0,0,0,1,1,7\n", r"row 4 \(line 6\): expected 6 comma-separated values, found 7"),
        (3, "9,1.25,1,3,0,0\n", r"row 3 \(line 5\), column 'y': value 3 out of range \{0,1,2\}"),
        (1, "3,0.75,1,0,2,1\n", r"row 1 \(line 3\), column 'a': value 2 out of range \{0,1\}"),
        (1, "3,nan,1,0,0,1\n", r"row 1 \(line 3\), column 't_s': nan is not a finite time"),
        (1, "3,abc,1,0,0,1\n", r"row 1 \(line 3\), column 't_s': 'abc' is not a number"),
        (1, "3,,1,0,0,1\n", r"row 1 \(line 3\), column 't_s': empty value"),
        (1, "3,0.75,1.0,0,0,1\n", r"row 1 \(line 3\), column 'x': '1\.0' is not an integer"),
        (1, "3,0.75,0x1,0,0,1\n", r"row 1 \(line 3\), column 'x': '0x1' is not an integer"),
        (1, "3,0.75, 1,0,0,1\n", r"row 1 \(line 3\), column 'x': ' 1' is not an integer"),
        (1, "3,0.75,1,99999999999999999999999,0,1\n", r"column 'y': value 9+ out of range"),
        (1, "-3,0.75,1,0,0,1\n", r"row 1 \(line 3\), column 'round': value -3 out of range"),
        (
            1,
            "18446744073709551616,0.75,1,0,0,1\n",
            r"column 'round': value 18446744073709551616 out",
        ),
        (
            2,
            "3,0.75,0,1,1,0\n",
            r"row 2 \(line 4\), column 'round': 3 is not greater than the previous round 3",
        ),
        (4, "12,1.0,0,0,1,1\n", r"row 4 \(line 6\), column 't_s': 1\.0 is less than the previous"),
    ],
)
def test_bad_csv_rows(tmp_path: Path, row: int, replacement: str, pattern: str) -> None:
    rows = list(ROWS)
    rows[row] = replacement
    expect(csv_file(tmp_path, HEADER + "".join(rows)), pattern)


def test_earliest_bad_row_wins(tmp_path: Path) -> None:
    rows = list(ROWS)
    rows[1] = "3,0.75,1,5,0,1\n"  # range problem (checked after parsing)
    rows[3] = "9,xyz,1,2,0,0\n"  # parse problem, later row
    expect(csv_file(tmp_path, HEADER + "".join(rows)), r"row 1 \(line 3\), column 'y': value 5")


def test_line_numbers_skip_blank_lines_and_metadata(tmp_path: Path) -> None:
    text = '# source = "experiment"\n\n' + HEADER + ROWS[0] + "\n" + ROWS[1] + "3,0.9,1,0,0,1\n"
    expect(csv_file(tmp_path, text), r"row 2 \(line 7\), column 'round'")


def test_truncated_csv(
    tmp_path: Path, meta: RecordsMetadata, make_batch: Callable[..., Batch]
) -> None:
    good = tmp_path / "good.csv"
    write_csv_records(good, [make_batch(50)], meta)
    data = good.read_bytes()
    cut = tmp_path / "cut.csv"
    cut.write_bytes(data[: data.rindex(b",")])  # last line loses its last field
    expect(cut, r"row 49 \(line \d+\): expected 6 comma-separated values, found 5")
    whole_lines = tmp_path / "lines.csv"
    whole_lines.write_bytes(data[: data.rindex(b"\n", 0, len(data) - 1) + 1])  # one line lost
    expect(whole_lines, r"the metadata says n_rounds = 50 but the file has 49 data rows")


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("round,t_s,x,y,a\n0,0.5,0,0,0\n", r"header line 1: missing column\(s\) 'b'"),
        ("round,t_s,x,y,a,b,c\n", r"header line 1: unexpected column\(s\) 'c'"),
        ("round,t_s,x,y,a,a\n", r"missing column\(s\) 'b'; repeated column\(s\) 'a'"),
        ('# source = "experiment"\n', r"no header line"),
        ("", r"no header line"),
        (
            '# colour = "blue"\n' + HEADER,
            r"line 1: unknown metadata key 'colour' \(known keys: schema_version",
        ),
        (
            "# this is a note\n" + HEADER,
            r"line 1: comment lines before the header must be metadata",
        ),
        ("# seed = 1\n# seed = 2\n" + HEADER, r"line 2: metadata key 'seed' is given twice"),
        (
            "# source = experiment\n" + HEADER,
            r"line 1: cannot parse the value 'experiment'; write strings in double quotes",
        ),
        ("# schema_version = 9\n# future = 1\n" + HEADER, r"newer diqkd .* upgrade"),
        ("# distance_km = -1\n" + HEADER, r"distance_km: .*greater than or equal to 0"),
        ("# seed = 5\n" + HEADER, r"a seed is only meaningful for source='simulation'"),
        ('# created_utc = "2026-01-31T12:00:00+02:00"\n' + HEADER, r"is not in UTC"),
        ("# input_probs_x = [0.5, 0.6]\n" + HEADER, r"probabilities must sum to 1"),
    ],
)
def test_bad_csv_head(tmp_path: Path, text: str, pattern: str) -> None:
    expect(csv_file(tmp_path, text), pattern)


def test_binary_garbage_csv(tmp_path: Path) -> None:
    path = tmp_path / "g.csv"
    path.write_bytes(bytes(range(256)) * 4)
    expect(path, r"line 1 is not UTF-8 text \(binary data\)")
    path.write_bytes(b"\xff\xfe garbage")
    expect(path, r"line 1 is not UTF-8 text")


def test_read_metadata_of_csv(tmp_path: Path) -> None:
    path = csv_file(tmp_path, '# source = "simulation"\n# seed = 3\n' + HEADER + ROWS[0])
    meta = read_metadata(path)
    assert meta.source == "simulation" and meta.seed == 3


def test_bad_field_count_after_an_earlier_bad_value(tmp_path: Path) -> None:
    rows = list(ROWS)
    rows[1] = "3,abc,1,0,0,1\n"
    rows[2] = "4,0.75,0,1,1\n"
    expect(csv_file(tmp_path, HEADER + "".join(rows)), r"row 1 \(line 3\), column 't_s': 'abc'")


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (lambda line: line[: line.rindex(",")], r"row 15000 \(line 15013\): expected 6 .* found 5"),
        (
            lambda line: line[: line.rindex(",")] + ",2",
            r"row 15000 \(line 15013\), column 'b': value 2",
        ),
    ],
)
def test_errors_deep_in_a_large_csv(
    tmp_path: Path,
    meta: RecordsMetadata,
    make_batch: Callable[..., Batch],
    edit: Callable[[str], str],
    pattern: str,
) -> None:
    good = tmp_path / "good.csv"
    write_csv_records(good, [make_batch(20_000)], meta)
    lines = good.read_text().splitlines()
    first_data = lines.index("round,t_s,x,y,a,b") + 1
    assert first_data + 15000 + 1 == 15013  # 1-based line of data row 15000
    lines[first_data + 15000] = edit(lines[first_data + 15000])
    bad = csv_file(tmp_path, "\n".join(lines) + "\n", "bad.csv")
    for batch_rows in (1000, 1 << 20):
        with pytest.raises(RecordsError, match=pattern):
            for _ in iter_records(bad, batch_rows):
                pass
