"""Turn the text columns of one CSV batch into validated numpy columns, naming bad cells.

pyarrow reads every CSV column as text; this module checks the integer columns for plain
decimal digits (so ``0x1``, ``1.0`` or `` 1`` are not silently accepted), casts the text with
pyarrow, and hands the numbers to :class:`~diqkd.records.validate.BatchValidator`. Failing
cells are located by bisection, so the error names the first bad row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from diqkd.records.schema import COLUMNS
from diqkd.records.validate import ALLOWED_VALUES, BatchValidator

__all__ = ["parse_string_columns"]

_INT_RE = r"^-?[0-9]+$"
_SMALL_VALUES = pa.array(["0", "1", "2"])

# (row within the batch, column position, message)
_Problem = tuple[int, int, str]


def _first_false(mask: Any) -> int | None:
    values = mask.to_numpy(zero_copy_only=False)
    if values.all():
        return None
    return int(np.argmin(values))


def _first_failing_cast(text: Any, to: pa.DataType) -> int:
    """Index of the first element whose cast fails (binary search; one is known to fail)."""
    lo, hi = 0, len(text)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            pc.cast(text.slice(lo, mid - lo), to)
        except pa.ArrowInvalid:
            hi = mid
        else:
            lo = mid
    return lo


def _range_text(name: str) -> str:
    if name == "round":
        return "[0, 2**64 - 1]"
    return "{" + ",".join(map(str, ALLOWED_VALUES[name])) + "}"


def _parse_time(text: Any) -> tuple[npt.NDArray[Any] | None, tuple[int, str] | None]:
    # pyarrow's float parser takes decimal and scientific notation (and inf/nan, which the
    # validator refuses as non-finite) but no hex, no spaces, no separators.
    try:
        arr: npt.NDArray[Any] = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        i = _first_failing_cast(text, pa.float64())
        cell = text[i].as_py()
        return None, (i, "empty value" if cell == "" else f"{cell!r} is not a number")
    return arr, None


def _parse(name: str, text: Any) -> tuple[npt.NDArray[Any] | None, tuple[int, str] | None]:
    """Numbers of one text column, or the first cell that is not a number of the right kind."""
    if name == "t_s":
        return _parse_time(text)
    # Fast paths for the common case; anything unusual takes the careful path below.
    if name != "round" and _first_false(pc.is_in(text, value_set=_SMALL_VALUES)) is None:
        return pc.cast(text, pa.uint8()).to_numpy(zero_copy_only=False), None
    digits_only = name == "round" and _first_false(pc.ascii_is_decimal(text)) is None
    if not digits_only:
        i = _first_false(pc.match_substring_regex(text, _INT_RE))
        if i is not None:
            cell = text[i].as_py()
            return None, (i, "empty value" if cell == "" else f"{cell!r} is not an integer")
    if name == "round":
        i = _first_false(pc.invert(pc.starts_with(text, "-")))
        if i is not None:
            return None, (i, f"value {text[i].as_py()} out of range {_range_text(name)}")
    to = pa.uint64() if name == "round" else pa.int64()
    try:
        numbers = pc.cast(text, to)
    except pa.ArrowInvalid:
        i = _first_failing_cast(text, to)
        return None, (i, f"value {text[i].as_py()} out of range {_range_text(name)}")
    arr: npt.NDArray[Any] = numbers.to_numpy(zero_copy_only=False)
    return arr, None


def parse_string_columns(
    text_columns: Mapping[str, Any], validator: BatchValidator
) -> dict[str, npt.NDArray[Any]]:
    """Parse and validate one batch of text columns (pyarrow string arrays, equal length).

    Raises
    ------
    RecordsError
        For the earliest bad row: a cell that is not a number of the column's kind, or any
        rule of :class:`BatchValidator`.
    """
    problems: list[_Problem] = []
    numbers: dict[str, npt.NDArray[Any]] = {}
    for pos, name in enumerate(COLUMNS):
        arr, problem = _parse(name, text_columns[name])
        if problem is not None:
            problems.append((problem[0], pos, problem[1]))
        elif arr is not None:
            numbers[name] = arr
    if not problems:
        return validator.validate(numbers)
    row, pos, message = min(problems)
    # Rows before the first unparsable cell parse cleanly; a rule they break comes first.
    prefix: dict[str, npt.NDArray[Any]] = {}
    for name in COLUMNS:
        head, _ = _parse(name, text_columns[name].slice(0, row))
        prefix[name] = head if head is not None else np.empty(0, dtype=COLUMNS[name])
    validator.validate(prefix)
    raise validator.row_error(validator.rows_seen, list(COLUMNS)[pos], message)
