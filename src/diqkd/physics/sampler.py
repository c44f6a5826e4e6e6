"""Samplers of DI-QKD round records from a Bell table and a herald process.

The inputs are plain numbers, so that this module knows nothing of link models or profiles:

* ``correlations``: ``P[x, y, a, b]`` = P(a, b | x, y), shape (2, 3, 2, 2), for Alice's input
  ``x ∈ {0, 1}``, Bob's input ``y ∈ {0, 1, 2}`` (``y = 2`` is the key setting) and outcomes
  ``a, b ∈ {0, 1}``;
* input distributions ``p(x)``, shape (2,), and ``p(y)``, shape (3,), uniform by default;
* a herald process: per-attempt success probability ``p``, attempt period, measurement dead
  time after each herald, and duty cycle.

Three entry points:

* :func:`sample_rounds` streams :class:`RoundChunk` records (round index, herald time, x, y, a,
  b) chunk by chunk, so memory stays flat for 10⁹ events; :func:`sample_rounds_array` returns
  them as one chunk for small runs;
* :func:`sample_counts` draws only the 24 counts ``N[x, y, a, b]`` (a multinomial draw, O(1)
  in the number of events);
* :func:`counts_from_rounds` packs records into the same counts.

Every stochastic function takes ``rng: numpy.random.Generator`` (see :mod:`diqkd.rng`).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from diqkd.errors import ModelError, RecordsError
from diqkd.physics._sampler_kernels import (
    CDF_LENGTH,
    N_CELLS,
    sample_chunk_numba,
    sample_chunk_numpy,
)

__all__ = [
    "CORRELATIONS_SHAPE",
    "RoundChunk",
    "counts_from_rounds",
    "protocol_input_probs",
    "sample_counts",
    "sample_rounds",
    "sample_rounds_array",
]

#: Shape of a Bell table ``P[x, y, a, b]`` and of a count table ``N[x, y, a, b]``.
CORRELATIONS_SHAPE = (2, 3, 2, 2)

#: Round-off tolerated on a probability before it is an error: negatives down to ``-_NEG_TOL``
#: are clipped to 0, sums within ``_SUM_TOL`` of 1 are renormalised.
_NEG_TOL = 1e-12
_SUM_TOL = 1e-9

#: Largest attempt count one event can draw is ``ceil(log(2**-53) / log1p(-p))``; it must fit
#: the signed 64-bit range so the float-to-integer conversion is defined.
_LOG_MIN_SURVIVAL = -53.0 * math.log(2.0)

_UINT64_MAX = 2**64 - 1

Backend = Literal["numba", "numpy"]


@dataclass(frozen=True, eq=False)
class RoundChunk:
    """One chunk of heralded round records (all columns of equal length ``n``).

    Attributes
    ----------
    round
        uint64, shape (n,): index of the attempt that heralded (0-based attempt counter of the
        link, offset by ``start_round``), strictly increasing.
    t_s
        float64, shape (n,): wall-clock herald time in seconds, non-decreasing.
    x, y
        uint8, shape (n,): Alice's input (0, 1) and Bob's input (0, 1, 2).
    a, b
        uint8, shape (n,): Alice's and Bob's outcomes (0, 1).
    """

    round: NDArray[np.uint64]
    t_s: NDArray[np.float64]
    x: NDArray[np.uint8]
    y: NDArray[np.uint8]
    a: NDArray[np.uint8]
    b: NDArray[np.uint8]

    def __post_init__(self) -> None:
        lengths = {name: len(col) for name, col in self.columns().items()}
        if len(set(lengths.values())) > 1:
            raise RecordsError(f"RoundChunk columns must have equal lengths, got {lengths}")

    def __len__(self) -> int:
        return len(self.round)

    def columns(self) -> dict[str, NDArray[np.generic]]:
        """The columns by name, in the order ``round, t_s, x, y, a, b``."""
        return {
            "round": self.round,
            "t_s": self.t_s,
            "x": self.x,
            "y": self.y,
            "a": self.a,
            "b": self.b,
        }


# --------------------------------------------------------------------------- validation


def _as_count(name: str, value: int, *, minimum: int) -> int:
    if isinstance(value, bool):
        raise ModelError(f"{name} must be an integer, not a bool")
    try:
        n = operator.index(value)
    except TypeError:
        raise ModelError(
            f"{name} must be an integer, got {value!r} ({type(value).__name__}); "
            "write e.g. 10**6 or int(1e6)"
        ) from None
    if n < minimum:
        raise ModelError(f"{name} must be >= {minimum}, got {n}")
    return n


def _as_real(name: str, value: float) -> float:
    if isinstance(value, bool):
        raise ModelError(f"{name} must be a number, not a bool")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ModelError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(v):
        raise ModelError(f"{name} must be finite, got {v}")
    return v


def _probability_array(
    name: str, value: ArrayLike, shape: tuple[int, ...], sum_axes: tuple[int, ...]
) -> NDArray[np.float64]:
    """Validate a table of probabilities that sums to 1 over ``sum_axes``; return it cleaned.

    Negatives down to ``-1e-12`` are clipped to 0 and sums within ``1e-9`` of 1 renormalised
    (round-off of the code that produced the table); anything worse is a :class:`ModelError`.
    """
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ModelError(f"{name} must be an array of real numbers of shape {shape}") from None
    if arr.shape != shape:
        raise ModelError(f"{name} must have shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ModelError(f"{name} must be finite; entry {bad} is {arr[bad]}")
    if np.any(arr < -_NEG_TOL):
        bad = tuple(int(i) for i in np.argwhere(arr < -_NEG_TOL)[0])
        raise ModelError(f"{name} must be >= 0 (probabilities); entry {bad} is {arr[bad]:.3g}")
    np.clip(arr, 0.0, None, out=arr)
    sums = arr.sum(axis=sum_axes, keepdims=True)
    off = np.abs(sums - 1.0) > _SUM_TOL
    if np.any(off):
        idx = tuple(int(i) for i in np.argwhere(off)[0])
        where = "" if arr.ndim == 1 else f" for (x, y) = {idx[: arr.ndim - len(sum_axes)]}"
        raise ModelError(
            f"{name} must sum to 1 (within {_SUM_TOL:g}){where}, got {float(sums[idx]):.12g}; "
            "normalise the table before sampling"
        )
    arr /= sums
    return arr


def _joint_table(
    correlations: ArrayLike,
    input_probs_x: ArrayLike | None,
    input_probs_y: ArrayLike | None,
    input_probs_xy: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """The 24-cell joint law ``p(x, y) P(a, b | x, y)``, flattened in (x, y, a, b) C order.

    ``p(x, y)`` is ``input_probs_xy`` (shape (2, 3)) when given, else ``p(x) p(y)``.
    """
    table = _probability_array("correlations", correlations, CORRELATIONS_SHAPE, (2, 3))
    if input_probs_xy is not None:
        if input_probs_x is not None or input_probs_y is not None:
            raise ModelError("give either input_probs_xy or input_probs_x/input_probs_y, not both")
        pxy = _probability_array("input_probs_xy", input_probs_xy, (2, 3), (0, 1))
        return (pxy[:, :, None, None] * table).reshape(N_CELLS)
    px = _probability_array(
        "input_probs_x", np.full(2, 0.5) if input_probs_x is None else input_probs_x, (2,), (0,)
    )
    py = _probability_array(
        "input_probs_y", np.full(3, 1 / 3) if input_probs_y is None else input_probs_y, (3,), (0,)
    )
    joint = px[:, None, None, None] * py[None, :, None, None] * table
    return joint.reshape(N_CELLS)


def protocol_input_probs(test_fraction: float) -> NDArray[np.float64]:
    """Joint input law ``p(x, y)`` of the CHSH DI-QKD protocol with test fraction γ.

    Test round (probability γ): ``x, y`` uniform in {0, 1}; key round: ``x = 0, y = 2``
    (Arnon-Friedman et al., Nat. Commun. 9, 459 (2018), protocol 1; ``docs/finite-size.md``).
    Shape (2, 3).
    """
    g = _as_real("test_fraction", test_fraction)
    if not 0.0 < g < 1.0:
        raise ModelError(f"test_fraction must lie in (0, 1), got {g}")
    return np.array([[g / 4, g / 4, 1.0 - g], [g / 4, g / 4, 0.0]])


def _cdf_table(joint: NDArray[np.float64]) -> NDArray[np.float64]:
    """Cumulative table for inversion; see :func:`sample_chunk_numba` for its invariants."""
    cdf = np.ones(CDF_LENGTH, dtype=np.float64)
    cdf[:N_CELLS] = np.cumsum(joint)
    cdf[:N_CELLS] /= cdf[N_CELLS - 1]
    last_positive = int(np.flatnonzero(joint > 0.0)[-1])
    cdf[last_positive:] = 1.0
    return cdf


@dataclass(frozen=True, kw_only=True)
class _HeraldModel:
    probability: float
    log_q: float
    attempt_period_s: float
    measurement_time_s: float
    duty_cycle: float


def _herald_model(
    herald_probability: float,
    attempt_period_s: float,
    measurement_time_s: float,
    duty_cycle: float,
) -> _HeraldModel:
    p = _as_real("herald_probability", herald_probability)
    if not 0.0 < p <= 1.0:
        raise ModelError(f"herald_probability must lie in (0, 1] (per attempt), got {p}")
    log_q = math.log1p(-p) if p < 1.0 else -math.inf
    if p < 1.0 and _LOG_MIN_SURVIVAL / log_q >= 2.0**63:
        raise ModelError(
            f"herald_probability {p:g} is too small: one event could need more than 2**63 "
            "attempts (the 64-bit round counter); use p >= 1e-17, or sample_counts"
        )
    period = _as_real("attempt_period_s", attempt_period_s)
    if period <= 0.0:
        raise ModelError(f"attempt_period_s must be > 0, got {period}")
    dead = _as_real("measurement_time_s", measurement_time_s)
    if dead < 0.0:
        raise ModelError(f"measurement_time_s must be >= 0, got {dead}")
    duty = _as_real("duty_cycle", duty_cycle)
    if not 0.0 < duty <= 1.0:
        raise ModelError(f"duty_cycle must lie in (0, 1], got {duty}")
    return _HeraldModel(
        probability=p,
        log_q=log_q,
        attempt_period_s=period,
        measurement_time_s=dead,
        duty_cycle=duty,
    )


# --------------------------------------------------------------------------- per-round records


def sample_rounds(
    correlations: ArrayLike,
    *,
    n_events: int,
    rng: np.random.Generator,
    herald_probability: float,
    attempt_period_s: float,
    measurement_time_s: float = 0.0,
    duty_cycle: float = 1.0,
    input_probs_x: ArrayLike | None = None,
    input_probs_y: ArrayLike | None = None,
    input_probs_xy: ArrayLike | None = None,
    chunk_events: int = 1 << 20,
    start_round: int = 0,
    start_time_s: float = 0.0,
    backend: Backend = "numba",
) -> Iterator[RoundChunk]:
    """Stream ``n_events`` heralded round records, at most ``chunk_events`` per chunk.

    Each event draws its inputs and outcomes ``(x, y, a, b)`` in one go from the joint law
    ``p(x) p(y) P(a, b | x, y)`` (inversion over the 24 cells), and its herald from a geometric
    number of attempts. Arguments are validated when the function is called, before the first
    chunk is asked for.

    Herald-time model: attempt ``j`` (0-based, from ``start_round``) succeeds with probability
    ``p`` independently of the others, so the attempts ``K_i`` from one herald to the next,
    counting the successful one, are i.i.d. Geometric(p) on {1, 2, …}, mean ``1/p``, variance
    ``(1 − p)/p²`` (the standard model of probabilistic heralded entanglement, e.g. Hensen et al.,
    Nature 526, 682 (2015); Zhang et al., Nature 607, 687 (2022)). After each herald the link
    spends ``measurement_time_s`` measuring before attempts resume, so the *active* time of the
    ``k``-th herald (1-based) is ``(K_1 + … + K_k)·attempt_period_s + (k − 1)·measurement_time_s``.
    The link is active a fraction ``duty_cycle`` of the wall-clock time (the rest goes to
    calibration, recooling, …); it is modelled as a *uniform stretch*, wall time = active time /
    ``duty_cycle``, which gives the right mean rate but not the burst structure of a real
    on/off schedule. Mean wall time between heralds: ``(attempt_period_s/p +
    measurement_time_s)/duty_cycle``.

    Parameters
    ----------
    correlations
        ``P[x, y, a, b]`` = P(a, b | x, y), shape (2, 3, 2, 2), finite, >= 0, each ``(x, y)``
        slice summing to 1 (round-off up to 1e-12 below 0 is clipped, sums within 1e-9 of 1
        renormalised).
    n_events
        Number of heralded events to produce (>= 0).
    rng
        Source of simulation randomness; event ``i`` consumes the two consecutive float64
        uniforms ``2i`` and ``2i + 1`` (cell, then attempts), so the output does not depend on
        ``chunk_events``. Draws happen as chunks are pulled: do not use ``rng`` elsewhere
        while the stream is open if the run must be reproducible.
    herald_probability
        Success probability ``p`` of one attempt, ``0 < p <= 1`` (dimensionless). ``p`` so small
        that one event could need 2⁶³ attempts is refused.
    attempt_period_s
        Duration of one attempt, s, > 0.
    measurement_time_s
        Dead time after each herald while the atoms are measured, s, >= 0.
    duty_cycle
        Fraction of wall-clock time the link runs, ``0 < duty_cycle <= 1``.
    input_probs_x, input_probs_y
        ``p(x)``, shape (2,), and ``p(y)``, shape (3,); uniform when ``None``.
    input_probs_xy
        A joint input law ``p(x, y)``, shape (2, 3), instead of ``p(x) p(y)`` (e.g.
        :func:`protocol_input_probs`).
    chunk_events
        Largest number of events per yielded chunk (>= 1); memory use is about 50 bytes per
        event of one chunk.
    start_round
        Index of the first attempt (>= 0). To continue an earlier stream, pass its last
        ``round + 1`` and ``start_time_s`` = its last ``t_s + measurement_time_s/duty_cycle``.
    start_time_s
        Wall-clock time at which the first attempt starts, s, finite.
    backend
        ``"numba"`` (default, compiled kernel) or ``"numpy"`` (the pure-numpy reference); both
        give bit-identical records from the same ``rng`` state.

    Yields
    ------
    RoundChunk
        Consecutive chunks; ``round`` and ``t_s`` continue across chunk boundaries.

    Raises
    ------
    ModelError
        If an argument is out of range, or the 64-bit attempt counter would overflow.
    """
    n_total = _as_count("n_events", n_events, minimum=0)
    chunk = _as_count("chunk_events", chunk_events, minimum=1)
    first_round = _as_count("start_round", start_round, minimum=0)
    if first_round > _UINT64_MAX:
        raise ModelError(f"start_round must fit in 64 bits (< 2**64), got {first_round}")
    t0_s = _as_real("start_time_s", start_time_s)
    if backend == "numba":
        kernel = sample_chunk_numba
    elif backend == "numpy":
        kernel = sample_chunk_numpy
    else:
        raise ModelError(f"backend must be 'numba' or 'numpy', got {backend!r}")
    cdf = _cdf_table(_joint_table(correlations, input_probs_x, input_probs_y, input_probs_xy))
    model = _herald_model(herald_probability, attempt_period_s, measurement_time_s, duty_cycle)

    def chunks() -> Iterator[RoundChunk]:
        attempts = 0
        done = 0
        while done < n_total:
            n = min(chunk, n_total - done)
            uniforms = rng.random((n, 2))
            (rounds, t_s, x, y, a, b), attempts, overflow = kernel(
                uniforms,
                cdf,
                log_q=model.log_q,
                start_round=first_round,
                attempts_before=attempts,
                heralds_before=done,
                start_time_s=t0_s,
                attempt_period_s=model.attempt_period_s,
                measurement_time_s=model.measurement_time_s,
                duty_cycle=model.duty_cycle,
            )
            if overflow or first_round + attempts - 1 > _UINT64_MAX:
                raise ModelError(
                    f"the 64-bit attempt counter overflowed after {done} events (start_round "
                    f"{first_round}, herald_probability {model.probability:g}); "
                    "use a smaller start_round or fewer events"
                )
            done += n
            yield RoundChunk(round=rounds, t_s=t_s, x=x, y=y, a=a, b=b)

    return chunks()


def sample_rounds_array(
    correlations: ArrayLike,
    *,
    n_events: int,
    rng: np.random.Generator,
    herald_probability: float,
    attempt_period_s: float,
    measurement_time_s: float = 0.0,
    duty_cycle: float = 1.0,
    input_probs_x: ArrayLike | None = None,
    input_probs_y: ArrayLike | None = None,
    input_probs_xy: ArrayLike | None = None,
    chunk_events: int = 1 << 20,
    start_round: int = 0,
    start_time_s: float = 0.0,
    backend: Backend = "numba",
) -> RoundChunk:
    """:func:`sample_rounds` gathered into one :class:`RoundChunk` (for small ``n_events``).

    Same arguments and the same records as :func:`sample_rounds`, concatenated; memory grows
    with ``n_events`` (about 20 bytes per event), so stream large runs instead.
    """
    parts = list(
        sample_rounds(
            correlations,
            n_events=n_events,
            rng=rng,
            herald_probability=herald_probability,
            attempt_period_s=attempt_period_s,
            measurement_time_s=measurement_time_s,
            duty_cycle=duty_cycle,
            input_probs_x=input_probs_x,
            input_probs_y=input_probs_y,
            input_probs_xy=input_probs_xy,
            chunk_events=chunk_events,
            start_round=start_round,
            start_time_s=start_time_s,
            backend=backend,
        )
    )
    if len(parts) == 1:
        return parts[0]
    if not parts:
        empty = np.empty(0, dtype=np.uint8)
        return RoundChunk(
            round=np.empty(0, dtype=np.uint64),
            t_s=np.empty(0, dtype=np.float64),
            x=empty,
            y=empty.copy(),
            a=empty.copy(),
            b=empty.copy(),
        )
    return RoundChunk(
        round=np.concatenate([p.round for p in parts], dtype=np.uint64),
        t_s=np.concatenate([p.t_s for p in parts], dtype=np.float64),
        x=np.concatenate([p.x for p in parts], dtype=np.uint8),
        y=np.concatenate([p.y for p in parts], dtype=np.uint8),
        a=np.concatenate([p.a for p in parts], dtype=np.uint8),
        b=np.concatenate([p.b for p in parts], dtype=np.uint8),
    )


# --------------------------------------------------------------------------- counts


def sample_counts(
    correlations: ArrayLike,
    *,
    n_events: int,
    rng: np.random.Generator,
    input_probs_x: ArrayLike | None = None,
    input_probs_y: ArrayLike | None = None,
    input_probs_xy: ArrayLike | None = None,
) -> NDArray[np.int64]:
    """Counts ``N[x, y, a, b]`` of ``n_events`` events, without the per-round records.

    The counts of ``n_events`` i.i.d. draws from the joint law ``p(x) p(y) P(a, b | x, y)``
    are Multinomial(n_events, joint), drawn here in O(24) work by the conditional-binomial
    method (sequential binomials; Devroye 1986, *Non-Uniform Random Variate Generation*,
    ch. XI) as implemented by :meth:`numpy.random.Generator.multinomial`. It has the same law
    as :func:`counts_from_rounds` applied to :func:`sample_rounds` output, not the same draws.
    Zero-probability cells are left out of the draw, so they stay exactly 0 and the round-off
    remainder of the method falls on a cell that can occur.

    Parameters
    ----------
    correlations
        ``P[x, y, a, b]``, shape (2, 3, 2, 2), validated as in :func:`sample_rounds`.
    n_events
        Number of events, ``0 <= n_events < 2**63``.
    rng
        Source of simulation randomness.
    input_probs_x, input_probs_y
        ``p(x)``, shape (2,), and ``p(y)``, shape (3,); uniform when ``None``.
    input_probs_xy
        A joint input law ``p(x, y)``, shape (2, 3), instead of ``p(x) p(y)`` (e.g.
        :func:`protocol_input_probs`).

    Returns
    -------
    numpy.ndarray
        int64 counts, shape (2, 3, 2, 2), summing to ``n_events``.
    """
    n = _as_count("n_events", n_events, minimum=0)
    if n >= 2**63:
        raise ModelError(f"n_events must be < 2**63 (int64 counts), got {n}")
    joint = _joint_table(correlations, input_probs_x, input_probs_y, input_probs_xy)
    positive = np.flatnonzero(joint > 0.0)
    pvals = joint[positive] / joint[positive].sum()
    counts = np.zeros(N_CELLS, dtype=np.int64)
    counts[positive] = rng.multinomial(n, pvals)
    return counts.reshape(CORRELATIONS_SHAPE)


def counts_from_rounds(
    chunk_or_columns: RoundChunk | Mapping[str, ArrayLike],
) -> NDArray[np.int64]:
    """Counts ``N[x, y, a, b]`` of round records (a :class:`RoundChunk` or a column mapping).

    Parameters
    ----------
    chunk_or_columns
        A :class:`RoundChunk`, or a mapping with integer columns ``"x"``, ``"y"``, ``"a"``,
        ``"b"`` of equal length (other columns are ignored), e.g. from a records file.

    Returns
    -------
    numpy.ndarray
        int64 counts, shape (2, 3, 2, 2); add the results of several chunks to accumulate.

    Raises
    ------
    RecordsError
        If a column is missing, not integer, of unequal length, or out of range.
    """
    source: Mapping[str, ArrayLike] = (
        chunk_or_columns.columns() if isinstance(chunk_or_columns, RoundChunk) else chunk_or_columns
    )
    cols: dict[str, NDArray[np.int64]] = {}
    for name, size in zip("xyab", (2, 3, 2, 2), strict=True):
        if name not in source:
            raise RecordsError(f"round records lack column {name!r} (need x, y, a, b)")
        col = np.asarray(source[name])
        if col.ndim != 1 or not (np.issubdtype(col.dtype, np.integer) or col.dtype == np.bool_):
            raise RecordsError(
                f"column {name!r} must be a 1-D integer array, got dtype {col.dtype} "
                f"and shape {col.shape}"
            )
        if col.size and (int(col.min()) < 0 or int(col.max()) >= size):
            raise RecordsError(
                f"column {name!r} must hold values in 0..{size - 1}, found "
                f"{int(col.min())}..{int(col.max())}"
            )
        cols[name] = col.astype(np.int64)
    lengths = {name: len(col) for name, col in cols.items()}
    if len(set(lengths.values())) > 1:
        raise RecordsError(f"columns x, y, a, b must have equal lengths, got {lengths}")
    cell = ((cols["x"] * 3 + cols["y"]) * 2 + cols["a"]) * 2 + cols["b"]
    return np.bincount(cell, minlength=N_CELLS).astype(np.int64).reshape(CORRELATIONS_SHAPE)
