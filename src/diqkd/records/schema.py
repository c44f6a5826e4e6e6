"""The round-record schema: column names and dtypes, and the file-level metadata model.

One row is one heralded event of a DI-QKD experiment (one entangled pair announced by the
heralding station): the attempt counter ``round`` at the herald, the herald time ``t_s``, the
inputs ``x`` (Alice) and ``y`` (Bob), and the outcomes ``a`` and ``b``. ``y = 2`` is Bob's key
setting, aligned with Alice's ``x = 0`` (Arnon-Friedman et al. 2018, Nat. Commun. 9, 459,
protocol 1; Nadlinger et al. 2022, Nature 607, 682). The full description, the versioning
policy and the on-disk layouts are in ``docs/records.md``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from diqkd.errors import RecordsError

__all__ = [
    "COLUMNS",
    "METADATA_KEY",
    "SCHEMA_VERSION",
    "RecordsMetadata",
    "check_schema_version",
    "metadata_from_json",
    "metadata_from_mapping",
]

SCHEMA_VERSION: Final = 1
"""The newest record-schema version this diqkd reads and the version it writes."""

METADATA_KEY: Final = b"diqkd"
"""Key of the JSON metadata document in a Parquet file's key-value metadata."""

COLUMNS: Final[Mapping[str, np.dtype[Any]]] = MappingProxyType(
    {
        "round": np.dtype(np.uint64),
        "t_s": np.dtype(np.float64),
        "x": np.dtype(np.uint8),
        "y": np.dtype(np.uint8),
        "a": np.dtype(np.uint8),
        "b": np.dtype(np.uint8),
    }
)
"""Column name -> numpy dtype, in file order (read-only)."""

_PROB_TOLERANCE = 1e-9


def _now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class RecordsMetadata(BaseModel):
    """File-level metadata of a round-record file (frozen; unknown keys are errors).

    Parameters
    ----------
    schema_version : int
        Record-schema version the file follows; ``1 <= schema_version <= SCHEMA_VERSION``.
    source : {"simulation", "experiment"}
        Where the records come from. The protocol treats both alike.
    profile_name : str or None
        Name of the hardware profile the link ran with (or was simulated with).
    profile_hash : str or None
        Lower-case hex SHA-256 of the profile (``Profile.content_hash()``), 64 characters.
    distance_km : float or None
        Total fiber length between the nodes, km, ``>= 0``.
    seed : int or None
        Seed of the simulation RNG (``>= 0``); only allowed when ``source == "simulation"``.
    created_utc : str
        ISO-8601 timestamp with a UTC offset (``Z`` or ``+00:00``) of when the records were
        taken. Defaults to now.
    n_rounds : int or None
        Number of rows in the file. The Parquet writer fills it in when it closes the file;
        readers check it against the rows actually present.
    input_probs_x : tuple of 2 floats
        Probabilities of Alice's inputs ``x = 0, 1``; sum to 1. Default uniform.
    input_probs_y : tuple of 3 floats
        Probabilities of Bob's inputs ``y = 0, 1, 2``; sum to 1. Default uniform.
    input_probs_xy : 2 × 3 nested tuple of floats or None
        Joint input law ``p(x, y)`` when the inputs were not chosen independently (the CHSH
        protocol: test rounds with probability γ and ``x, y`` uniform in {0, 1}, key rounds
        ``x = 0, y = 2``). When given, ``input_probs_x`` and ``input_probs_y`` are its marginals
        (filled in if omitted).
    notes : str
        Free text.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    schema_version: int = Field(SCHEMA_VERSION, description="Record-schema version.")
    source: Literal["simulation", "experiment"] = Field(description="Where the records come from.")
    profile_name: str | None = Field(None, description="Hardware profile name.")
    profile_hash: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$", description="Hex SHA-256 of the profile."
    )
    distance_km: float | None = Field(None, ge=0.0, description="Total fiber length, km.")
    seed: int | None = Field(None, ge=0, description="Simulation seed (simulations only).")
    created_utc: str = Field(default_factory=_now_utc, description="ISO-8601 UTC timestamp.")
    n_rounds: int | None = Field(None, ge=0, description="Rows in the file.")
    input_probs_x: tuple[float, float] = Field((0.5, 0.5), description="Probabilities of x = 0, 1.")
    input_probs_y: tuple[float, float, float] = Field(
        (1 / 3, 1 / 3, 1 / 3), description="Probabilities of y = 0, 1, 2."
    )
    input_probs_xy: tuple[tuple[float, float, float], tuple[float, float, float]] | None = Field(
        None, description="Joint law p(x, y), rows x = 0, 1; columns y = 0, 1, 2."
    )
    notes: str = Field("", description="Free text.")

    @model_validator(mode="before")
    @classmethod
    def _fill_marginals(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("input_probs_xy") is not None:
            try:
                table = np.asarray(data["input_probs_xy"], dtype=np.float64)
            except (TypeError, ValueError):
                return data  # the field validator reports it
            if table.shape == (2, 3):
                data = dict(data)
                if data.get("input_probs_x") is None:
                    data["input_probs_x"] = tuple(float(v) for v in table.sum(axis=1))
                if data.get("input_probs_y") is None:
                    data["input_probs_y"] = tuple(float(v) for v in table.sum(axis=0))
        return data

    @field_validator("input_probs_xy")
    @classmethod
    def _check_joint(
        cls, value: tuple[tuple[float, ...], ...] | None
    ) -> tuple[tuple[float, ...], ...] | None:
        if value is None:
            return value
        flat = [p for row in value for p in row]
        if any(not 0.0 <= p <= 1.0 for p in flat):
            raise ValueError(f"probabilities must lie in [0, 1], got {value}")
        if not math.isclose(math.fsum(flat), 1.0, rel_tol=0.0, abs_tol=_PROB_TOLERANCE):
            raise ValueError(f"the joint input law must sum to 1, got {math.fsum(flat)}")
        return value

    @field_validator("schema_version")
    @classmethod
    def _check_version(cls, value: int) -> int:
        check_schema_version(value)
        return value

    @field_validator("created_utc")
    @classmethod
    def _check_created(cls, value: str) -> str:
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an ISO-8601 timestamp; write e.g. '2026-01-31T12:00:00Z'"
            ) from None
        offset = stamp.utcoffset()
        if offset is None or offset.total_seconds() != 0:
            raise ValueError(f"{value!r} is not in UTC; end it with 'Z' or '+00:00'")
        return value

    @field_validator("input_probs_x", "input_probs_y")
    @classmethod
    def _check_probs(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0.0 <= p <= 1.0 for p in value):
            raise ValueError(f"probabilities must lie in [0, 1], got {list(value)}")
        if not math.isclose(math.fsum(value), 1.0, rel_tol=0.0, abs_tol=_PROB_TOLERANCE):
            raise ValueError(f"probabilities must sum to 1, got {list(value)}")
        return value

    @model_validator(mode="after")
    def _check_seed(self) -> RecordsMetadata:
        if self.seed is not None and self.source != "simulation":
            raise ValueError("a seed is only meaningful for source='simulation'; remove it")
        if self.input_probs_xy is not None:
            table = np.asarray(self.input_probs_xy)
            if not (
                np.allclose(table.sum(axis=1), self.input_probs_x, atol=_PROB_TOLERANCE)
                and np.allclose(table.sum(axis=0), self.input_probs_y, atol=_PROB_TOLERANCE)
            ):
                raise ValueError(
                    "input_probs_x and input_probs_y must be the marginals of input_probs_xy "
                    "(omit them and they are filled in)"
                )
        return self

    def to_json(self) -> str:
        """The metadata as one compact JSON document (``None`` fields included)."""
        return self.model_dump_json()


def check_schema_version(value: object, *, origin: str | None = None) -> None:
    """Raise unless ``value`` is a schema version this diqkd reads (1..SCHEMA_VERSION)."""
    prefix = "" if origin is None else f"{origin}: "
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordsError(f"{prefix}schema_version must be an integer, got {value!r}")
    if value > SCHEMA_VERSION:
        raise RecordsError(
            f"{prefix}records schema_version {value} was written by a newer diqkd (this one "
            f"reads up to version {SCHEMA_VERSION}); upgrade diqkd to read this file"
        )
    if value < 1:
        raise RecordsError(f"{prefix}schema_version must be >= 1, got {value}")


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming each bad metadata field and what is wrong with it."""
    known = ", ".join(RecordsMetadata.model_fields)
    parts: list[str] = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "metadata"
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown metadata key {loc!r} (known keys: {known})")
        elif err["type"] == "missing":
            parts.append(f"metadata key {loc!r} is required")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"{loc}: {msg} (got {err['input']!r})")
    return "; ".join(parts)


def metadata_from_mapping(data: Mapping[str, Any], *, origin: str = "<data>") -> RecordsMetadata:
    """Validate plain data as :class:`RecordsMetadata`.

    The schema version is checked first, so a file from a newer diqkd is reported as such
    even when it has keys this version does not know.

    Raises
    ------
    RecordsError
        If the version is newer than :data:`SCHEMA_VERSION`, or a key is unknown, missing,
        of the wrong type or out of range.
    """
    if "schema_version" in data:
        check_schema_version(data["schema_version"], origin=origin)
    try:
        return RecordsMetadata.model_validate(dict(data))
    except ValidationError as exc:
        raise RecordsError(
            f"{origin}: invalid records metadata: {describe_validation_error(exc)}"
        ) from None


def metadata_from_json(text: str | bytes, *, origin: str = "<data>") -> RecordsMetadata:
    """Parse the JSON metadata document stored in a records file.

    Raises
    ------
    RecordsError
        If the text is not a JSON object, or :func:`metadata_from_mapping` rejects it.
    """
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordsError(
            f"{origin}: the records metadata is not valid JSON ({exc}); the file is corrupt"
        ) from None
    if not isinstance(data, dict):
        raise RecordsError(f"{origin}: the records metadata is not a JSON object; file corrupt")
    return metadata_from_mapping(data, origin=origin)
