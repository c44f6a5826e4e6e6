"""The untrusted devices: Alice's box, Bob's box and the source/heralding station between them.

Device independence means the protocol treats these as black boxes: per heralded event, each
box takes its party's input and returns one bit. :class:`Devices` is that interface; the
session calls, for every chunk of events, :meth:`Devices.herald` (the middle station announces
which attempts succeeded), then :meth:`Devices.measure_alice` with Alice's inputs and
:meth:`Devices.measure_bob` with Bob's. Alice's box never sees ``y`` and Bob's never sees ``x``
through this interface; what couples the boxes is hidden state inside the implementation (the
entangled pair, or an adversary's programme) that protocol code never reads.

:class:`ModelDevices` are honest devices that reproduce a Bell table ``P(a, b | x, y)`` exactly
(shape (2, 3, 2, 2), e.g. :attr:`diqkd.physics.LinkPoint.correlations`): Alice's box draws
``a ~ P(a|x)`` and leaves ``(x, a)`` in the hidden pair record; Bob's box draws
``b ~ P(b | x, y, a) = P(a, b|x, y) / P(a|x)``. For a no-signalling table this samples the joint
distribution exactly, and it is how any quantum correlation can be produced by a local sampler
with a shared hidden record (the record is the stand-in for the entangled state).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from diqkd.errors import DiqkdError, ModelError
from diqkd.physics.sampler import sample_rounds

__all__ = ["Devices", "Heralds", "ModelDevices", "no_signalling_gap"]

#: Largest signalling (difference of Alice's marginals between Bob's inputs) a table may have
#: before :class:`ModelDevices` refuses it; round-off of a quantum table is far below.
_SIGNALLING_TOLERANCE = 1e-9


@dataclass(frozen=True, eq=False)
class Heralds:
    """One chunk of heralded events as the middle station announces them.

    Attributes
    ----------
    round
        uint64, shape (n,): attempt index of each herald, strictly increasing.
    t_s
        float64, shape (n,): herald time, s.
    """

    round: NDArray[np.uint64]
    t_s: NDArray[np.float64]

    def __post_init__(self) -> None:
        if self.round.shape != self.t_s.shape or self.round.ndim != 1:
            raise DiqkdError("herald rounds and times must be one-dimensional and equally long")

    def __len__(self) -> int:
        return int(self.round.size)


@runtime_checkable
class Devices(Protocol):
    """Black-box devices, called per chunk in the order herald → Alice → Bob."""

    def herald(self, n_events: int) -> Heralds:
        """Announce the next ``n_events`` heralded events."""
        ...

    def measure_alice(self, x: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """Alice's box: outputs for her inputs ``x ∈ {0, 1}`` on the last heralded chunk."""
        ...

    def measure_bob(self, y: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """Bob's box: outputs for his inputs ``y ∈ {0, 1, 2}`` on the last heralded chunk."""
        ...


def _bell_table(correlations: ArrayLike) -> NDArray[np.float64]:
    table = np.array(correlations, dtype=np.float64)
    if table.shape != (2, 3, 2, 2):
        raise ModelError(f"a Bell table P[x, y, a, b] has shape (2, 3, 2, 2), got {table.shape}")
    if not np.all(np.isfinite(table)) or np.any(table < -1e-12):
        raise ModelError("a Bell table must hold finite, non-negative probabilities")
    table = np.clip(table, 0.0, None)
    sums = table.sum(axis=(2, 3))
    if np.any(np.abs(sums - 1.0) > 1e-9):
        raise ModelError("each P[x, y, :, :] of a Bell table must sum to 1")
    out: NDArray[np.float64] = table / sums[:, :, None, None]
    return out


def no_signalling_gap(correlations: ArrayLike) -> float:
    """Largest change of a party's marginal when the other party changes input.

    ``max |P(a|x,y) − P(a|x,y')|`` and ``max |P(b|x,y) − P(b|x',y)|``; 0 for any quantum (or
    otherwise no-signalling) table.
    """
    table = _bell_table(correlations)
    pa = table.sum(axis=3)  # [x, y, a]
    pb = table.sum(axis=2)  # [x, y, b]
    gap_a = float(np.max(pa.max(axis=1) - pa.min(axis=1)))
    gap_b = float(np.max(pb.max(axis=0) - pb.min(axis=0)))
    return max(gap_a, gap_b)


@dataclass(eq=False)
class ModelDevices:
    """Honest devices producing a given no-signalling Bell table, with a herald process.

    Parameters
    ----------
    correlations
        ``P[x, y, a, b]``, shape (2, 3, 2, 2), no-signalling.
    herald_probability, attempt_period_s, measurement_time_s, duty_cycle
        The herald process of :func:`diqkd.physics.sample_rounds` (per-attempt success
        probability, attempt period in s, dead time after each herald in s, duty cycle).
    rng
        Simulation generator (physics only; the parties' randomness is separate).
    """

    correlations: ArrayLike
    herald_probability: float
    attempt_period_s: float
    rng: np.random.Generator
    measurement_time_s: float = 0.0
    duty_cycle: float = 1.0
    _table: NDArray[np.float64] = field(init=False, repr=False)
    _pending_x: NDArray[np.uint8] | None = field(init=False, default=None, repr=False)
    _pending_a: NDArray[np.uint8] | None = field(init=False, default=None, repr=False)
    _chunk: int = field(init=False, default=0, repr=False)
    _next_round: int = field(init=False, default=0, repr=False)
    _next_time_s: float = field(init=False, default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._table = _bell_table(self.correlations)
        gap = no_signalling_gap(self._table)
        if gap > _SIGNALLING_TOLERANCE:
            raise ModelError(
                f"the Bell table signals (marginals change by {gap:.3g} with the other "
                "party's input): no pair of separated devices can produce it"
            )

    def herald(self, n_events: int) -> Heralds:
        """Herald times from the geometric attempt process (:func:`sample_rounds`)."""
        if isinstance(n_events, bool) or not isinstance(n_events, int) or n_events < 1:
            raise DiqkdError(f"n_events must be a positive integer, got {n_events!r}")
        chunks = list(
            sample_rounds(
                self._table,
                n_events=n_events,
                rng=self.rng,
                herald_probability=self.herald_probability,
                attempt_period_s=self.attempt_period_s,
                measurement_time_s=self.measurement_time_s,
                duty_cycle=self.duty_cycle,
                chunk_events=n_events,
                start_round=self._next_round,
                start_time_s=self._next_time_s,
            )
        )
        rounds = np.concatenate([c.round for c in chunks])
        times = np.concatenate([c.t_s for c in chunks])
        self._next_round = int(rounds[-1]) + 1
        self._next_time_s = float(times[-1])
        self._chunk = n_events
        self._pending_x = self._pending_a = None
        return Heralds(round=rounds, t_s=times)

    def _check_inputs(self, values: NDArray[np.uint8], upper: int, who: str) -> NDArray[np.intp]:
        arr = np.asarray(values)
        if arr.shape != (self._chunk,):
            raise DiqkdError(
                f"{who} gave {arr.shape} inputs for a chunk of {self._chunk} heralded events"
            )
        if arr.size and (arr.min() < 0 or arr.max() > upper):
            raise DiqkdError(f"{who}'s inputs must lie in 0..{upper}")
        return arr.astype(np.intp)

    def measure_alice(self, x: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """Draw ``a ~ P(a|x)`` (averaged over ``y``; exact for a no-signalling table)."""
        xi = self._check_inputs(x, 1, "Alice")
        p_a1 = self._table.sum(axis=3)[:, :, 1].mean(axis=1)  # P(a=1 | x)
        a: NDArray[np.uint8] = (self.rng.random(xi.size) < p_a1[xi]).astype(np.uint8)
        self._pending_x, self._pending_a = xi.astype(np.uint8), a
        return a.copy()

    def measure_bob(self, y: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """Draw ``b ~ P(b | x, y, a)`` from the hidden pair record left by Alice's box."""
        if self._pending_x is None or self._pending_a is None:
            raise DiqkdError("Bob's box measured before Alice's box on this chunk")
        yi = self._check_inputs(y, 2, "Bob")
        xi = self._pending_x.astype(np.intp)
        ai = self._pending_a.astype(np.intp)
        joint = self._table[xi, yi, ai, :]  # P(a, b | x, y) for the drawn a, shape (n, 2)
        p_b1 = joint[:, 1] / np.maximum(joint.sum(axis=1), 1e-300)
        b: NDArray[np.uint8] = (self.rng.random(yi.size) < p_b1).astype(np.uint8)
        self._pending_x = self._pending_a = None
        return b
