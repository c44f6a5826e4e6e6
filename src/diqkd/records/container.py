"""``Records``: a validated, in-memory block of round records with its metadata."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from diqkd.records.schema import COLUMNS, RecordsMetadata
from diqkd.records.validate import BatchValidator, check_column_names

__all__ = ["Records", "concat_batches"]


@dataclass(frozen=True, kw_only=True, eq=False)
class Records:
    """Round records held in memory: metadata plus one read-only numpy array per column.

    Construction validates the columns exactly as a file reader would and casts them to the
    schema dtypes (:data:`~diqkd.records.COLUMNS`); the arrays are made read-only.

    Parameters
    ----------
    metadata : RecordsMetadata
        File-level metadata.
    round : ndarray of uint64, shape (n,)
        Attempt counter at each herald, strictly increasing (gaps are normal).
    t_s : ndarray of float64, shape (n,)
        Herald time, s since the start of the run; finite, ``>= 0``, non-decreasing.
    x : ndarray of uint8, shape (n,)
        Alice's input, in {0, 1}.
    y : ndarray of uint8, shape (n,)
        Bob's input, in {0, 1, 2}; ``y = 2`` is the key setting aligned with ``x = 0``.
    a, b : ndarray of uint8, shape (n,)
        Alice's and Bob's outcomes, in {0, 1}.

    Raises
    ------
    RecordsError
        If a column is missing the rules above (the message names row and column).
    """

    metadata: RecordsMetadata
    round: npt.NDArray[np.uint64]
    t_s: npt.NDArray[np.float64]
    x: npt.NDArray[np.uint8]
    y: npt.NDArray[np.uint8]
    a: npt.NDArray[np.uint8]
    b: npt.NDArray[np.uint8]
    _n: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        raw = {name: getattr(self, name) for name in COLUMNS}
        cast = BatchValidator(origin="Records").validate(raw)
        for name, arr in cast.items():
            if arr is raw[name] and arr.flags.writeable:
                arr = arr.copy()  # never freeze the caller's own array
            arr.flags.writeable = False
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "_n", int(cast["round"].shape[0]))

    @classmethod
    def from_columns(
        cls, metadata: RecordsMetadata, columns: Mapping[str, npt.ArrayLike]
    ) -> Records:
        """Build from a mapping with exactly the six column names."""
        check_column_names(list(columns), origin="Records")
        given: dict[str, Any] = {name: columns[name] for name in COLUMNS}
        return cls(metadata=metadata, **given)

    def __len__(self) -> int:
        return self._n

    def columns(self) -> dict[str, npt.NDArray[Any]]:
        """The six columns as a dict in file order (the read-only arrays, not copies)."""
        return {name: getattr(self, name) for name in COLUMNS}

    def __repr__(self) -> str:
        return (
            f"Records(n={self._n}, source={self.metadata.source!r}, "
            f"profile_name={self.metadata.profile_name!r})"
        )


def concat_batches(
    batches: Iterable[tuple[RecordsMetadata, Mapping[str, npt.NDArray[Any]]]],
    metadata_if_empty: Callable[[], RecordsMetadata],
) -> Records:
    """Join ``(metadata, columns)`` batches (as yielded by ``iter_records``) into one block.

    ``metadata_if_empty`` supplies the metadata when no batch is yielded (a file with no rows).
    """
    metadata: RecordsMetadata | None = None
    chunks: dict[str, list[npt.NDArray[Any]]] = {name: [] for name in COLUMNS}
    for batch_metadata, columns in batches:
        metadata = batch_metadata
        for name in COLUMNS:
            chunks[name].append(columns[name])
    if metadata is None:
        metadata = metadata_if_empty()
    merged = {
        name: np.concatenate(parts) if parts else np.empty(0, dtype=COLUMNS[name])
        for name, parts in chunks.items()
    }
    for arr in merged.values():
        arr.flags.writeable = False  # fresh arrays: Records may keep them without a copy
    return Records.from_columns(metadata, merged)
