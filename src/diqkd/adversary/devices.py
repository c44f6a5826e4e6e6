"""Devices built by Eve: they satisfy the protocol's :class:`~diqkd.protocol.Devices` interface.

The protocol talks to these exactly as to honest devices (herald → Alice's box → Bob's box, one
chunk at a time). What makes them Eve's is the hidden record they keep on the side — the
simulation's ground truth (:meth:`OracleDevices.ground_truth`): every round's inputs, outputs
and Eve's own result. Protocol code never reads it; only the attack analysis does
(``docs/architecture.md``: "simulation ground truth travels on a separate oracle stream").

* :class:`BranchDevices` — a hidden variable ``g`` per round (Eve's measurement result, or a
  pre-programmed instruction) with a quantum Bell table per value of ``g``: intercept-resend,
  the entangling (purification) attack, local deterministic strategies, and, with one branch
  and a leaking record, the side-channel device.
* :class:`PredictingDevices` — boxes that know both parties' inputs in advance because Eve holds
  copies of the parties' (seeded, hence predictable) random generators.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from diqkd.errors import DiqkdError, ModelError
from diqkd.protocol.design import ProtocolParameters
from diqkd.protocol.devices import Heralds, ModelDevices, no_signalling_gap
from diqkd.protocol.messages import HeraldAnnouncement
from diqkd.protocol.randomness import RandomnessSource
from diqkd.protocol.roles import Alice, Bob

__all__ = ["BranchDevices", "GroundTruth", "OracleDevices", "PredictingDevices"]


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """What really happened in each round (simulation only; the protocol never sees it).

    Attributes
    ----------
    x, y, a, b
        Inputs and outputs of every round, shape (n,), uint8.
    eve
        Eve's classical record per round (her measurement result / instruction), shape (n,).
    eve_guess_a
        Eve's best guess of Alice's output ``a`` per round, shape (n,), uint8.
    """

    x: NDArray[np.uint8]
    y: NDArray[np.uint8]
    a: NDArray[np.uint8]
    b: NDArray[np.uint8]
    eve: NDArray[np.int64]
    eve_guess_a: NDArray[np.uint8]


@dataclass(eq=False, kw_only=True)
class OracleDevices:
    """Common part: the honest herald process and the ground-truth record.

    Parameters
    ----------
    herald_probability, attempt_period_s, measurement_time_s, duty_cycle
        The herald process (see :class:`~diqkd.protocol.ModelDevices`).
    rng
        Simulation generator (physics only).
    herald_table
        Bell table used only to drive :func:`diqkd.physics.sample_rounds` for herald times
        (the outputs of Eve's devices are drawn separately).
    """

    herald_probability: float
    attempt_period_s: float
    rng: np.random.Generator
    herald_table: ArrayLike | None = None
    measurement_time_s: float = 0.0
    duty_cycle: float = 1.0
    _herald_model: ModelDevices = field(init=False, repr=False)
    _chunk: int = field(init=False, default=0, repr=False)
    _x: NDArray[np.uint8] | None = field(init=False, default=None, repr=False)
    _a: NDArray[np.uint8] | None = field(init=False, default=None, repr=False)
    _truth: dict[str, list[NDArray[np.generic]]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.herald_table is None:
            raise ModelError("give the Bell table that drives the herald process")
        self._herald_model = ModelDevices(
            correlations=self.herald_table,
            herald_probability=self.herald_probability,
            attempt_period_s=self.attempt_period_s,
            rng=self.rng,
            measurement_time_s=self.measurement_time_s,
            duty_cycle=self.duty_cycle,
        )
        self._truth = {k: [] for k in ("x", "y", "a", "b", "eve", "eve_guess_a")}

    def herald(self, n_events: int) -> Heralds:
        """The honest herald process (Eve keeps the herald statistics unchanged)."""
        heralds = self._herald_model.herald(n_events)
        self._chunk = n_events
        self._x = self._a = None
        self._on_herald(n_events)
        return heralds

    def _on_herald(self, n_events: int) -> None:
        """Hook: prepare the chunk's hidden record."""

    def _inputs(self, values: NDArray[np.uint8], upper: int, who: str) -> NDArray[np.uint8]:
        arr = np.asarray(values)
        if arr.shape != (self._chunk,):
            raise DiqkdError(f"{who} gave {arr.shape} inputs for a chunk of {self._chunk}")
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) > upper):
            raise DiqkdError(f"{who}'s inputs must lie in 0..{upper}")
        return arr.astype(np.uint8)

    def _record(self, **arrays: NDArray[np.generic]) -> None:
        for key, value in arrays.items():
            self._truth[key].append(np.asarray(value))

    def ground_truth(self) -> GroundTruth:
        """Everything recorded so far, concatenated (the oracle stream)."""

        def cat(key: str, dtype: type[np.generic]) -> NDArray[np.generic]:
            parts = self._truth[key]
            return np.concatenate(parts).astype(dtype) if parts else np.empty(0, dtype=dtype)

        return GroundTruth(
            x=cat("x", np.uint8),  # type: ignore[arg-type]
            y=cat("y", np.uint8),  # type: ignore[arg-type]
            a=cat("a", np.uint8),  # type: ignore[arg-type]
            b=cat("b", np.uint8),  # type: ignore[arg-type]
            eve=cat("eve", np.int64),  # type: ignore[arg-type]
            eve_guess_a=cat("eve_guess_a", np.uint8),  # type: ignore[arg-type]
        )


@dataclass(eq=False, kw_only=True)
class BranchDevices(OracleDevices):
    """Devices whose rounds are a mixture of quantum behaviours chosen by Eve's variable ``g``.

    Per round ``g ~ weights``; Alice's box draws ``a ~ P_g(a|x)`` and Bob's box
    ``b ~ P_g(b|x, y, a)``: this samples ``P(a, b, g|x, y) = w_g P_g(a, b|x, y)`` exactly (as in
    :class:`~diqkd.protocol.ModelDevices`, the pair record stands in for the shared state).

    Parameters
    ----------
    tables
        ``P_g[x, y, a, b]``, shape (k, 2, 3, 2, 2), each no-signalling.
    weights
        ``w_g``, shape (k,).
    guesses
        Eve's guess of ``a`` for each ``g`` (used for key rounds ``x = 0``), shape (k,).
    leaky
        The boxes also leak every input and output to Eve (a side channel, outside the DI
        model): her guess of ``a`` is then ``a`` itself.
    """

    tables: ArrayLike
    weights: ArrayLike
    guesses: ArrayLike | None = None
    leaky: bool = False
    _tables: NDArray[np.float64] = field(init=False, repr=False)
    _weights: NDArray[np.float64] = field(init=False, repr=False)
    _guesses: NDArray[np.uint8] = field(init=False, repr=False)
    _g: NDArray[np.int64] | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        tables = np.asarray(self.tables, dtype=np.float64)
        weights = np.asarray(self.weights, dtype=np.float64)
        if tables.ndim != 5 or tables.shape[1:] != (2, 3, 2, 2):
            raise ModelError(f"tables must have shape (k, 2, 3, 2, 2), got {tables.shape}")
        if weights.shape != (tables.shape[0],) or np.any(weights < 0) or weights.sum() <= 0:
            raise ModelError("weights must be k non-negative numbers with a positive sum")
        for t in tables:
            if no_signalling_gap(t) > 1e-9:
                raise ModelError("every branch table must be no-signalling")
        self._tables = tables
        self._weights = weights / weights.sum()
        guesses = np.zeros(tables.shape[0]) if self.guesses is None else self.guesses
        self._guesses = np.asarray(guesses, dtype=np.uint8)
        if self.herald_table is None:
            self.herald_table = np.einsum("g,gxyab->xyab", self._weights, tables)
        super().__post_init__()

    def _on_herald(self, n_events: int) -> None:
        k = self._weights.size
        self._g = self.rng.choice(k, size=n_events, p=self._weights).astype(np.int64)

    def measure_alice(self, x: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """``a ~ P_g(a|x)``."""
        xi = self._inputs(x, 1, "Alice")
        if self._g is None:
            raise DiqkdError("measure_alice before herald")
        p_a1 = self._tables.sum(axis=4)[:, :, :, 1].mean(axis=2)  # [g, x]
        a: NDArray[np.uint8] = (self.rng.random(xi.size) < p_a1[self._g, xi]).astype(np.uint8)
        self._x, self._a = xi, a
        return a.copy()

    def measure_bob(self, y: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """``b ~ P_g(b | x, y, a)`` from the hidden pair record."""
        if self._x is None or self._a is None or self._g is None:
            raise DiqkdError("Bob's box measured before Alice's box on this chunk")
        yi = self._inputs(y, 2, "Bob")
        g, xi, ai = self._g, self._x.astype(np.intp), self._a.astype(np.intp)
        joint = self._tables[g, xi, yi.astype(np.intp), ai, :]
        p_b1 = joint[:, 1] / np.maximum(joint.sum(axis=1), 1e-300)
        b: NDArray[np.uint8] = (self.rng.random(yi.size) < p_b1).astype(np.uint8)
        guess = self._a if self.leaky else self._guesses[g]
        self._record(x=self._x, y=yi, a=self._a, b=b, eve=g, eve_guess_a=guess)
        self._x = self._a = self._g = None
        return b


@dataclass(eq=False, kw_only=True)
class PredictingDevices(OracleDevices):
    """Boxes that know every input in advance (Eve holds copies of the parties' generators).

    Eve runs *shadow* copies of Alice and Bob (:class:`diqkd.protocol.roles.Alice`/``Bob`` built
    from the public parameters and her copies of the parties' seeded generators): fed the same
    herald announcements, they draw exactly the parties' round types and inputs, whatever the
    protocol's order of draws. With ``(x, y)`` known before the round, a shared pre-programmed
    bit ``λ`` gives ``a = λ`` and ``b = λ ⊕ x·y`` (every CHSH test won, ``S = 4``), or is made to
    lose with probability ``1 − ω`` so the devices show any ``S = 8ω − 4`` Eve likes. Eve knows
    every output.

    Parameters
    ----------
    params
        The agreed (public) protocol parameters.
    alice_copy, bob_copy
        Eve's copies of the parties' seeded generators (same seeds, not yet drawn from).
    target_chsh
        The ``S`` the devices fake, in ``[−4, 4]``.
    key_error
        Probability that Bob's key-round output differs from Alice's (to fake a QBER).
    """

    params: ProtocolParameters
    alice_copy: RandomnessSource
    bob_copy: RandomnessSource
    target_chsh: float = 4.0
    key_error: float = 0.0
    _shadow_alice: Alice = field(init=False, repr=False)
    _shadow_bob: Bob = field(init=False, repr=False)
    _chunk_index: int = field(init=False, default=0, repr=False)
    _pred_x: NDArray[np.uint8] | None = field(init=False, default=None, repr=False)
    _pred_y: NDArray[np.uint8] | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        if not -4.0 <= self.target_chsh <= 4.0:
            raise ModelError(f"target_chsh must lie in [-4, 4], got {self.target_chsh}")
        if not 0.0 <= self.key_error <= 1.0:
            raise ModelError(f"key_error must lie in [0, 1], got {self.key_error}")
        super().__post_init__()
        self._shadow_alice = Alice(self.params, self.alice_copy)
        self._shadow_bob = Bob(self.params, self.bob_copy)

    def herald(self, n_events: int) -> Heralds:
        """Herald as usual, and let the shadow parties draw this chunk's inputs."""
        heralds = super().herald(n_events)
        ann = HeraldAnnouncement(chunk=self._chunk_index, n_events=n_events, rounds=heralds.round)
        self._chunk_index += 1
        self._shadow_bob.on_herald(ann)
        self._shadow_bob.on_round_types(self._shadow_alice.on_herald(ann))
        self._pred_x = self._shadow_alice.current_inputs().astype(np.uint8)
        self._pred_y = self._shadow_bob.current_inputs().astype(np.uint8)
        zeros = np.zeros(n_events, dtype=np.uint8)
        self._shadow_alice.record_outputs(zeros)
        self._shadow_bob.record_outputs(zeros)
        return heralds

    def measure_alice(self, x: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """``a = λ``, a fresh pre-programmed bit per round."""
        xi = self._inputs(x, 1, "Alice")
        if self._pred_x is None or not np.array_equal(xi, self._pred_x):
            raise DiqkdError("the predicting devices lost step with Alice's generator")
        a = self.rng.integers(0, 2, size=xi.size, dtype=np.uint8)
        self._x, self._a = xi, a
        return a.copy()

    def measure_bob(self, y: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """``b = λ ⊕ x·y`` on test rounds (⊕ a loss with probability 1 − ω), ``λ`` on key rounds."""
        if self._x is None or self._a is None or self._pred_x is None:
            raise DiqkdError("Bob's box measured before Alice's box on this chunk")
        yi = self._inputs(y, 2, "Bob")
        if self._pred_y is None or not np.array_equal(yi, self._pred_y):
            raise DiqkdError("the predicting devices lost step with Bob's generator")
        test = yi < 2
        omega = (4.0 + self.target_chsh) / 8.0
        u = self.rng.random(yi.size)
        miss = np.where(test, u >= omega, u < self.key_error)
        # Bob's box uses its *prediction* of x, never Alice's actual input.
        win_parity = (self._pred_x & yi & test.astype(np.uint8)).astype(np.uint8)
        b = (self._a ^ win_parity ^ miss.astype(np.uint8)).astype(np.uint8)
        self._record(x=self._x, y=yi, a=self._a, b=b, eve=self._a, eve_guess_a=self._a)
        self._x = self._a = None
        return b
