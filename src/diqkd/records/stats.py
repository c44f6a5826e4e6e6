"""Counts and file statistics of round records, computed in one streaming pass."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from diqkd.records.container import Records
from diqkd.records.files import DEFAULT_BATCH_ROWS, iter_records, read_metadata
from diqkd.records.schema import RecordsMetadata

__all__ = ["RecordsSummary", "SummaryAccumulator", "summary"]


@dataclass(frozen=True, kw_only=True, eq=False)
class RecordsSummary:
    """What a records file holds, in numbers.

    Attributes
    ----------
    metadata : RecordsMetadata
        The file's metadata.
    n_rows : int
        Number of heralded rounds (rows).
    counts_xyab : ndarray of int64, shape (2, 3, 2, 2)
        ``counts_xyab[x, y, a, b]``: rows with those inputs and outcomes.
    first_round, last_round : int or None
        Attempt counter of the first and last herald (``None`` without rows).
    first_t_s, last_t_s : float or None
        Herald time of the first and last row, s.
    """

    metadata: RecordsMetadata
    n_rows: int
    counts_xyab: npt.NDArray[np.int64] = field(repr=False)
    first_round: int | None
    last_round: int | None
    first_t_s: float | None
    last_t_s: float | None

    @property
    def counts_xy(self) -> npt.NDArray[np.int64]:
        """Rows per input pair, ``counts_xy[x, y]``, shape (2, 3)."""
        out: npt.NDArray[np.int64] = self.counts_xyab.sum(axis=(2, 3))
        return out

    @property
    def duration_s(self) -> float:
        """Time from the first to the last herald, s (0 with fewer than two rows)."""
        if self.first_t_s is None or self.last_t_s is None:
            return 0.0
        return self.last_t_s - self.first_t_s

    @property
    def heralds_per_attempt(self) -> float | None:
        """Rows divided by the attempts they span (``last_round - first_round + 1``)."""
        if self.first_round is None or self.last_round is None:
            return None
        return self.n_rows / (self.last_round - self.first_round + 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (used by ``diqkd records validate --json``)."""
        return {
            "n_rows": self.n_rows,
            "metadata": self.metadata.model_dump(mode="json"),
            "counts_xy": self.counts_xy.tolist(),
            "counts_xyab": self.counts_xyab.tolist(),
            "first_round": self.first_round,
            "last_round": self.last_round,
            "first_t_s": self.first_t_s,
            "last_t_s": self.last_t_s,
            "duration_s": self.duration_s,
            "heralds_per_attempt": self.heralds_per_attempt,
        }


class SummaryAccumulator:
    """Build a :class:`RecordsSummary` from validated batches, one at a time."""

    def __init__(self, metadata: RecordsMetadata) -> None:
        self.metadata = metadata
        self._counts = np.zeros(24, dtype=np.int64)
        self._n = 0
        self._first: tuple[int, float] | None = None
        self._last: tuple[int, float] | None = None

    def add(self, columns: Mapping[str, npt.NDArray[Any]]) -> None:
        """Count one validated batch (columns already cast to the schema dtypes)."""
        n = int(columns["round"].shape[0])
        if n == 0:
            return
        code = (
            columns["x"].astype(np.intp) * 12
            + columns["y"].astype(np.intp) * 4
            + columns["a"].astype(np.intp) * 2
            + columns["b"].astype(np.intp)
        )
        self._counts += np.bincount(code, minlength=24)
        if self._first is None:
            self._first = (int(columns["round"][0]), float(columns["t_s"][0]))
        self._last = (int(columns["round"][-1]), float(columns["t_s"][-1]))
        self._n += n

    def result(self) -> RecordsSummary:
        """The summary of everything added so far."""
        return RecordsSummary(
            metadata=self.metadata,
            n_rows=self._n,
            counts_xyab=self._counts.reshape(2, 3, 2, 2).copy(),
            first_round=None if self._first is None else self._first[0],
            last_round=None if self._last is None else self._last[0],
            first_t_s=None if self._first is None else self._first[1],
            last_t_s=None if self._last is None else self._last[1],
        )


def summary(
    records_or_path: Records | str | os.PathLike[str], *, batch_rows: int = DEFAULT_BATCH_ROWS
) -> RecordsSummary:
    """Counts per (x, y, a, b) and first/last round and time of records or of a file.

    A file is read in batches (memory stays flat) and fully validated on the way.

    Raises
    ------
    RecordsError
        If the file is invalid (see :func:`~diqkd.records.iter_records`).
    """
    if isinstance(records_or_path, Records):
        acc = SummaryAccumulator(records_or_path.metadata)
        acc.add(records_or_path.columns())
        return acc.result()
    acc = SummaryAccumulator(read_metadata(records_or_path))
    for _, columns in iter_records(records_or_path, batch_rows):
        acc.add(columns)
    return acc.result()
