"""Validation of round-record batches: names, dtypes, ranges, finiteness and monotonicity.

Every reader and writer funnels its data through :class:`BatchValidator`, so a file written by
diqkd and a file read by diqkd obey exactly the same rules (listed in ``docs/records.md``).
Errors name the 0-based row of the file and the column; when one batch has several problems,
the one in the earliest row is reported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from diqkd.errors import RecordsError
from diqkd.records.schema import COLUMNS

__all__ = ["ALLOWED_VALUES", "BatchValidator", "check_column_names"]

ALLOWED_VALUES: Mapping[str, tuple[int, ...]] = MappingProxyType(
    {"x": (0, 1), "y": (0, 1, 2), "a": (0, 1), "b": (0, 1)}
)
"""Allowed values of the input and outcome columns (``y = 2`` is Bob's key setting)."""

_UINT64_LIMIT = 2.0**64
_FLOAT_EXACT_INT = 2**53

# (row, column position, message); the smallest tuple is the error reported.
_Problem = tuple[int, int, str]


def check_column_names(names: list[str] | tuple[str, ...], *, origin: str) -> None:
    """Raise if ``names`` are not exactly the six record columns (any order, no repeats)."""
    missing = [c for c in COLUMNS if c not in names]
    extra = [n for n in names if n not in COLUMNS]
    repeated = sorted({n for n in names if list(names).count(n) > 1})
    problems: list[str] = []
    if missing:
        problems.append(f"missing column(s) {', '.join(map(repr, missing))}")
    if extra:
        problems.append(f"unexpected column(s) {', '.join(map(repr, extra))}")
    if repeated:
        problems.append(f"repeated column(s) {', '.join(map(repr, repeated))}")
    if problems:
        raise RecordsError(
            f"{origin}: {'; '.join(problems)}; the columns must be exactly {', '.join(COLUMNS)}"
        )


def _first(mask: npt.NDArray[np.bool_]) -> int | None:
    if mask.size == 0 or not mask.any():
        return None
    return int(np.argmax(mask))


def _bad_dtype(name: str, arr: npt.NDArray[Any]) -> RecordsError:
    want = "numbers" if name == "t_s" else "integers"
    return RecordsError(
        f"column {name!r} has dtype {arr.dtype}; expected {want} convertible to "
        f"{COLUMNS[name]} without loss (convert it, e.g. np.asarray(values, "
        f"dtype=np.{COLUMNS[name]}))"
    )


def _as_int_column(
    name: str, arr: npt.NDArray[Any]
) -> tuple[npt.NDArray[Any] | None, tuple[int, str] | None]:
    """Cast an integer-valued column; return (cast array, None) or (None, (row, message))."""
    if name == "round":
        lo, hi, allowed = 0, 2**64 - 1, "[0, 2**64 - 1]"
    else:
        values = ALLOWED_VALUES[name]
        lo, hi, allowed = values[0], values[-1], "{" + ",".join(map(str, values)) + "}"
    kind = arr.dtype.kind
    if kind == "b" and name != "round":
        return arr.astype(COLUMNS[name]), None
    if kind == "f":
        i = _first(~np.isfinite(arr))
        if i is not None:
            return None, (i, f"{arr[i].item()!r} is not an integer")
        i = _first(arr != np.floor(arr))
        if i is not None:
            return None, (i, f"{arr[i].item()!r} is not an integer")
        bad = (arr < lo) | (arr >= _UINT64_LIMIT) if name == "round" else (arr < lo) | (arr > hi)
        i = _first(bad)
        if i is not None:
            return None, (i, f"value {arr[i].item()!r} out of range {allowed}")
        big = _first(np.abs(arr) > _FLOAT_EXACT_INT)
        if big is not None:
            return None, (
                big,
                f"{arr[big].item()!r} is a float above 2**53 and may have lost digits; "
                "store rounds as unsigned integers",
            )
        return arr.astype(COLUMNS[name]), None
    if kind in "iu":
        if name == "round":
            bad = arr < 0 if kind == "i" else np.zeros(arr.shape, dtype=bool)
        else:
            bad = (arr < lo) | (arr > hi)
        i = _first(bad)
        if i is not None:
            return None, (i, f"value {arr[i].item()} out of range {allowed}")
        return arr.astype(COLUMNS[name], copy=False), None
    raise _bad_dtype(name, arr)


def _as_time_column(
    arr: npt.NDArray[Any],
) -> tuple[npt.NDArray[np.float64] | None, tuple[int, str] | None]:
    kind = arr.dtype.kind
    if kind in "iu":
        i = _first(arr < 0)
        if i is not None:
            return None, (i, f"{arr[i].item()} is negative; herald times are >= 0 s")
        i = _first(arr > _FLOAT_EXACT_INT)
        if i is not None:
            return None, (i, f"{arr[i].item()} is above 2**53 and would lose digits as float64")
        return arr.astype(np.float64), None
    if kind != "f":
        raise _bad_dtype("t_s", arr)
    i = _first(~np.isfinite(arr))
    if i is not None:
        return None, (i, f"{arr[i].item()!r} is not a finite time; herald times must be finite")
    cast = arr.astype(np.float64, copy=False)
    if arr.dtype.itemsize > 8:
        i = _first(cast != arr)
        if i is not None:
            return None, (i, f"{arr[i]!r} does not fit a float64 without loss")
    i = _first(cast < 0.0)
    if i is not None:
        return None, (i, f"{cast[i].item()!r} is negative; herald times are >= 0 s")
    return cast, None


class BatchValidator:
    """Validate consecutive batches of one file, carrying ``round`` and ``t_s`` across them.

    Parameters
    ----------
    origin : str
        How to name the file in messages (its path, or ``"<batch>"``).
    row_note : callable, optional
        Maps a 0-based file row to extra text after ``row N`` in messages, e.g. the CSV
        reader's ``" (line 12)"``; called only when an error is raised.
    """

    def __init__(
        self, *, origin: str = "<batch>", row_note: Callable[[int], str] | None = None
    ) -> None:
        self.origin = origin
        self.row_note = row_note
        self.rows_seen = 0
        self.last_round: int | None = None
        self.last_t_s: float | None = None

    def validate(self, columns: Mapping[str, npt.ArrayLike]) -> dict[str, npt.NDArray[Any]]:
        """Check one batch and return its columns cast to the schema dtypes, in file order.

        The validator's state advances only when the batch is valid, so a caller may catch
        the error and go on with a corrected batch.

        Raises
        ------
        RecordsError
            Naming the 0-based file row and column of the first problem.
        """
        if not isinstance(columns, Mapping):
            raise RecordsError(
                f"{self.origin}: a batch must be a mapping of column name -> array, "
                f"got {type(columns).__name__}"
            )
        check_column_names(list(columns), origin=self.origin)
        arrays: dict[str, npt.NDArray[Any]] = {}
        for name in COLUMNS:
            try:
                arrays[name] = np.asarray(columns[name])
            except (ValueError, TypeError) as exc:
                raise RecordsError(
                    f"{self.origin}: column {name!r} is not a 1-D array of numbers ({exc})"
                ) from None
        n = self._check_shapes(arrays)
        problems: list[_Problem] = []
        cast: dict[str, npt.NDArray[Any]] = {}
        for pos, name in enumerate(COLUMNS):
            try:
                out, problem = (
                    _as_time_column(arrays[name])
                    if name == "t_s"
                    else _as_int_column(name, arrays[name])
                )
            except RecordsError as exc:
                raise RecordsError(f"{self.origin}: {exc}") from None
            if problem is not None:
                problems.append((problem[0], pos, problem[1]))
            elif out is not None:
                cast[name] = out
        if "round" in cast:
            problems.extend(self._round_problems(cast["round"]))
        if "t_s" in cast:
            problems.extend(self._time_problems(cast["t_s"]))
        if problems:
            row, pos, message = min(problems)
            raise self.row_error(self.rows_seen + row, list(COLUMNS)[pos], message)
        if n:
            self.last_round = int(cast["round"][-1])
            self.last_t_s = float(cast["t_s"][-1])
        self.rows_seen += n
        return cast

    def row_error(self, row: int, column: str, message: str) -> RecordsError:
        """The error for file row ``row`` (0-based) and ``column``, in the house format."""
        note = self.row_note(row) if self.row_note is not None else ""
        return RecordsError(f"{self.origin}: row {row}{note}, column {column!r}: {message}")

    def _check_shapes(self, arrays: Mapping[str, npt.NDArray[Any]]) -> int:
        for name, arr in arrays.items():
            if arr.ndim != 1:
                raise RecordsError(
                    f"{self.origin}: column {name!r} must be one-dimensional, got shape {arr.shape}"
                )
        lengths = {name: arr.shape[0] for name, arr in arrays.items()}
        n = int(lengths["round"])
        for name, length in lengths.items():
            if length != n:
                raise RecordsError(
                    f"{self.origin}: column {name!r} has {length} rows but column 'round' has "
                    f"{n}; all columns of a batch must have the same length"
                )
        return n

    def _round_problems(self, rounds: npt.NDArray[np.uint64]) -> list[_Problem]:
        out: list[_Problem] = []
        if rounds.size and self.last_round is not None and int(rounds[0]) <= self.last_round:
            out.append(
                (
                    0,
                    0,
                    f"{int(rounds[0])} is not greater than the previous round "
                    f"{self.last_round}; rounds must be strictly increasing",
                )
            )
        i = _first(rounds[1:] <= rounds[:-1])
        if i is not None:
            out.append(
                (
                    i + 1,
                    0,
                    f"{int(rounds[i + 1])} is not greater than the previous round "
                    f"{int(rounds[i])}; rounds must be strictly increasing",
                )
            )
        return out

    def _time_problems(self, times: npt.NDArray[np.float64]) -> list[_Problem]:
        out: list[_Problem] = []
        pos = list(COLUMNS).index("t_s")
        if times.size and self.last_t_s is not None and times[0] < self.last_t_s:
            out.append(
                (
                    0,
                    pos,
                    f"{times[0].item()!r} is less than the previous herald time "
                    f"{self.last_t_s!r}; t_s must be non-decreasing",
                )
            )
        i = _first(times[1:] < times[:-1])
        if i is not None:
            out.append(
                (
                    i + 1,
                    pos,
                    f"{times[i + 1].item()!r} is less than the previous herald time "
                    f"{times[i].item()!r}; t_s must be non-decreasing",
                )
            )
        return out
