"""The attack report and the analysis all strategies share: what the protocol saw, what Eve knows.

:func:`build_report` puts next to each other the session's public outcome (S, QBER, abort, key
bits), the simulation's ground truth from Eve's devices (:class:`~diqkd.adversary.GroundTruth`),
the detector flags (Tsirelson check, input randomness), and Eve's information on the final key
(:func:`~diqkd.adversary.key_information` of her reconstructed key against the real one).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from diqkd.adversary.detectors import input_randomness_test, tsirelson_check
from diqkd.adversary.devices import OracleDevices
from diqkd.adversary.knowledge import (
    Eavesdropper,
    certificate_information_bits,
    eve_key,
    key_information,
    public_view,
    replay_bob,
)
from diqkd.adversary.states import Branches
from diqkd.errors import DiqkdError
from diqkd.physics import LinkPoint, bell_statistics
from diqkd.physics.correlations import measurement_shrink
from diqkd.physics.sampler import protocol_input_probs
from diqkd.profiles import Profile
from diqkd.protocol import (
    Devices,
    ProtocolParameters,
    SeededRandomness,
    SessionResult,
    auth_key_bytes,
    run_session,
)

__all__ = ["AttackContext", "AttackReport", "build_report", "guess_string", "replay_string"]

#: Herald chunk of attack sessions (events).
CHUNK_EVENTS = 1 << 17


@dataclass(frozen=True)
class AttackReport:
    """What one attack run did and what Eve learned.

    Attributes
    ----------
    strategy
        Strategy name.
    chsh, qber
        CHSH value and key-round error rate as the protocol observed them (``None`` where the
        session aborted before estimation; then the ground-truth values are in ``details``).
    aborted, abort_reason
        Whether the protocol aborted, and why.
    key_bits
        Net key bits the protocol output (0 on abort).
    eve_information_bits
        Eve's information on the output key, estimated from ground truth (0 with no key).
    eve_information_upper_bits
        One-sided upper confidence bound on it (99 % Clopper–Pearson, see
        :func:`~diqkd.adversary.key_information`).
    certificate_information_bits
        The most the certificate's ε allows (:func:`~diqkd.adversary.certificate_information_bits`).
    outside_model
        True when the attack breaks an assumption of the DI security proof.
    notes
        One paragraph in words.
    details
        Everything else (ground-truth statistics, Eve's raw-key agreement, detector flags).
    """

    strategy: str
    chsh: float | None
    qber: float | None
    aborted: bool
    abort_reason: str
    key_bits: int
    eve_information_bits: float
    eve_information_upper_bits: float
    certificate_information_bits: float
    outside_model: bool
    notes: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (non-finite floats become ``None``)."""
        out: dict[str, Any] = _clean(
            {
                "strategy": self.strategy,
                "chsh": self.chsh,
                "qber": self.qber,
                "aborted": self.aborted,
                "abort_reason": self.abort_reason or None,
                "key_bits": self.key_bits,
                "eve_information_bits": self.eve_information_bits,
                "eve_information_upper_bits": self.eve_information_upper_bits,
                "certificate_information_bits": self.certificate_information_bits,
                "outside_model": self.outside_model,
                "notes": self.notes,
                **self.details,
            }
        )
        return out


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value


@dataclass(frozen=True)
class AttackContext:
    profile: Profile
    link: LinkPoint
    params: ProtocolParameters
    events: int
    seed: int
    distance_km: float

    def physics_rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    def party(self, name: str) -> SeededRandomness:
        return SeededRandomness(self.seed).child(name)

    def herald_kwargs(self) -> dict[str, Any]:
        return {
            "herald_probability": self.link.herald_probability,
            "attempt_period_s": self.link.attempt_period_s,
            "measurement_time_s": self.link.measurement_time_s,
            "duty_cycle": self.link.duty_cycle,
        }

    def shrink(self) -> float:
        return measurement_shrink(
            self.profile.atom.readout_fidelity, self.profile.measurement.angle_error_rad
        )

    def run(self, devices: Devices, adversary: Eavesdropper) -> SessionResult:
        auth_key = self.party("pre-shared-key").random_bytes(
            auth_key_bytes(self.events, CHUNK_EVENTS)
        )
        return run_session(
            params=self.params,
            alice_randomness=self.party("alice"),
            bob_randomness=self.party("bob"),
            auth_key=auth_key,
            devices=devices,
            adversary=adversary,
            chunk_events=CHUNK_EVENTS,
        )


def branch_tables(
    branches: Branches, shrink: float, alice: NDArray[np.float64], bob: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Bell table of each branch state with fixed settings (the devices' own settings)."""
    return np.stack(
        [
            bell_statistics(
                s, shrink_a=shrink, shrink_b=shrink, alice_settings=alice, bob_settings=bob
            ).correlations
            for s in branches.states
        ]
    )


def _ground_statistics(devices: OracleDevices) -> dict[str, Any]:
    """S, QBER and Eve's raw-key agreement from the oracle record."""
    t = devices.ground_truth()
    test = t.y < 2
    key = t.y == 2
    m = int(np.count_nonzero(test))
    wins = int(np.count_nonzero(((t.a ^ t.b) == (t.x & t.y))[test]))
    key_n = int(np.count_nonzero(key))
    agree = int(np.count_nonzero((t.eve_guess_a == t.a)[key]))
    raw = key_information(t.a[key], t.eve_guess_a[key]) if key_n else None
    return {
        "ground_truth_chsh": 8.0 * wins / m - 4.0 if m else float("nan"),
        "ground_truth_qber": float(np.count_nonzero((t.a != t.b)[key]) / key_n)
        if key_n
        else float("nan"),
        "eve_raw_key_agreement": agree / key_n if key_n else float("nan"),
        "eve_raw_information_bits_per_round": (raw.information_bits / key_n) if raw else 0.0,
    }


def build_report(
    ctx: AttackContext,
    name: str,
    result: SessionResult,
    devices: OracleDevices,
    eve: Eavesdropper,
    *,
    outside_model: bool,
    notes: str,
    eve_string: Callable[[], NDArray[np.uint8] | None],
    extra: dict[str, Any] | None = None,
    device_knowledge: bool = True,
) -> AttackReport:
    """Assemble the report; ``eve_string`` gives Eve's version of Alice's whole string.

    ``device_knowledge=False``: Eve has no access to the devices (channel attacks), so her
    raw-key agreement is reported as ``None``.
    """
    st = result.statistics
    observed = st.test_rounds > 0
    details: dict[str, Any] = {
        "events": ctx.events,
        "seed": ctx.seed,
        "distance_km": ctx.distance_km,
        "profile": ctx.profile.name,
        "honest_expected_chsh": ctx.params.expected_chsh,
        "honest_expected_qber": ctx.params.expected_qber,
        "statistic": st.statistic,
        "statistic_threshold": ctx.params.statistic_threshold,
        "test_rounds": st.test_rounds,
        "wins": st.wins,
        "tampered_messages": result.tampered_messages,
        "epsilon_sound": ctx.params.epsilon_sound,
        "randomness": result.randomness,
        **_ground_statistics(devices),
    }
    flag = tsirelson_check(st.wins, st.test_rounds) if observed else None
    details["tsirelson_flag"] = (
        {
            "flagged": flag.flagged,
            "p_value": flag.p_value,
            "excess_sigma": flag.excess_sigma,
            "max_wins": flag.max_wins,
            "epsilon": flag.epsilon,
        }
        if flag
        else None
    )
    truth = devices.ground_truth()
    if truth.x.size:
        inputs = input_randomness_test(
            truth.x, truth.y, input_probs_xy=protocol_input_probs(ctx.params.test_fraction)
        )
        details["input_randomness_p_value"] = inputs.p_value
    key_bits = result.key_bits
    info = upper = 0.0
    details["eve_key_agreement"] = None
    details["eve_key_method"] = None
    if not result.aborted and key_bits > 0:
        view = public_view(eve.messages)
        string = eve_string()
        if string is not None:
            guess = eve_key(view, string, key_bits)
            true_key = np.concatenate([block.bits() for block in result.alice_keys])
            ki = key_information(true_key, guess)
            info, upper = ki.information_bits, ki.information_upper_bits
            details["eve_key_agreement"] = ki.agreement
            details["eve_key_agreement_interval_99"] = [ki.agreement_low, ki.agreement_high]
            details["eve_key_compared_bits"] = ki.compared_bits
    if not device_knowledge:
        details["eve_raw_key_agreement"] = None
        details["eve_raw_information_bits_per_round"] = 0.0
    if extra:
        details.update(extra)
    return AttackReport(
        strategy=name,
        chsh=st.chsh if observed else None,
        qber=st.qber if st.key_rounds else None,
        aborted=result.aborted,
        abort_reason=result.abort_reason,
        key_bits=key_bits,
        eve_information_bits=info,
        eve_information_upper_bits=upper,
        certificate_information_bits=certificate_information_bits(
            ctx.params.epsilon_sound, key_bits
        )
        if key_bits
        else 0.0,
        outside_model=outside_model,
        notes=notes,
        details=details,
    )


def replay_string(
    eve: Eavesdropper, devices: OracleDevices, details: dict[str, Any]
) -> Callable[[], NDArray[np.uint8] | None]:
    """Eve's string from Bob's data she holds, via :func:`replay_bob`."""

    def string() -> NDArray[np.uint8] | None:
        truth = devices.ground_truth()
        try:
            out = replay_bob(public_view(eve.messages), b=truth.b, y=truth.y)
        except DiqkdError as exc:
            details["eve_key_method"] = f"replay failed ({exc}); guessing from Alice's outputs"
            return truth.a
        details["eve_key_method"] = "replayed Bob's reconciliation from leaked b, y"
        return out

    return string


def guess_string(
    devices: OracleDevices, details: dict[str, Any]
) -> Callable[[], NDArray[np.uint8] | None]:
    def string() -> NDArray[np.uint8] | None:
        details["eve_key_method"] = (
            "per-round guess of Alice's outputs, hashed with the public seed"
        )
        return devices.ground_truth().eve_guess_a

    return string
