"""Safe recipes: a full DI-QKD session on a simulated link, and a session from a records file.

:func:`simulate_session` is what ``diqkd run`` does: evaluate the link model of a hardware
profile at a distance, fix the protocol parameters from its predicted S and Q (before any
round), stream heralded events from honest :class:`~diqkd.protocol.devices.ModelDevices`, and
run :func:`~diqkd.protocol.session.run_session`. :func:`distill_records` runs the same protocol
on the two parties' columns of a records file (``docs/records.md``), from a lab or from
``simulate_session(..., save_records=...)``: the same data and seeds give the same result.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from diqkd.errors import DiqkdError, RecordsError
from diqkd.physics import LinkPoint, link_point, protocol_input_probs
from diqkd.profiles import Profile, load_profile
from diqkd.protocol.channel import ChannelAdversary
from diqkd.protocol.design import ProtocolParameters, design_protocol
from diqkd.protocol.devices import Devices, Heralds, ModelDevices
from diqkd.protocol.randomness import RandomnessSource, SeededRandomness, SystemRandomness
from diqkd.protocol.session import RecordsInput, SessionResult, run_session
from diqkd.records import RecordsMetadata, RecordsWriter, read_records
from diqkd.records.randomness import input_randomness_of_records
from diqkd.rng import fresh_seed, make_rng

__all__ = [
    "RecordingDevices",
    "auth_key_bytes",
    "distill_records",
    "records_test_fraction",
    "simulate_session",
]

#: Significance level at which ``distill_records`` rejects the recorded inputs as not random
#: (honest files are refused with this probability).
INPUT_TEST_ALPHA = 1e-6
#: Bytes of one-time authentication key per message (Poly1305 key).
_AUTH_BYTES_PER_MESSAGE = 32
#: Messages of a session besides the per-chunk round types (hello, inputs, batch tags, …).
_FIXED_MESSAGES = 32


def auth_key_bytes(n_events: int, chunk_events: int) -> int:
    """Pre-shared authentication key a session of ``n_events`` needs (with margin), bytes."""
    chunks = math.ceil(n_events / chunk_events)
    return _AUTH_BYTES_PER_MESSAGE * (chunks + _FIXED_MESSAGES)


def _parties(
    seed: int | None,
) -> tuple[RandomnessSource, RandomnessSource, Callable[[int], bytes]]:
    """Each party's randomness and a source of the pre-shared key (seeded only in simulation)."""
    if seed is None:
        return SystemRandomness(), SystemRandomness(), secrets.token_bytes
    root = SeededRandomness(seed)
    shared = root.child("pre-shared-key")
    return root.child("alice"), root.child("bob"), shared.random_bytes


@dataclass(eq=False)
class RecordingDevices:
    """Wrap devices and write every round (round, t_s, x, y, a, b) to a records file.

    The logger of a simulated experiment: it sees what the boxes see (their own inputs and
    outputs) and writes the union of both labs' logs, as an experiment's data file holds.
    """

    devices: Devices
    writer: RecordsWriter
    _heralds: Heralds | None = field(default=None, init=False)
    _x: NDArray[np.uint8] | None = field(default=None, init=False)
    _a: NDArray[np.uint8] | None = field(default=None, init=False)

    def herald(self, n_events: int) -> Heralds:
        self._heralds = self.devices.herald(n_events)
        return self._heralds

    def measure_alice(self, x: NDArray[np.uint8]) -> NDArray[np.uint8]:
        self._x = np.array(x, dtype=np.uint8)
        self._a = np.array(self.devices.measure_alice(x), dtype=np.uint8)
        return self._a.copy()

    def measure_bob(self, y: NDArray[np.uint8]) -> NDArray[np.uint8]:
        b = np.array(self.devices.measure_bob(y), dtype=np.uint8)
        if self._heralds is None or self._x is None or self._a is None:
            raise DiqkdError("RecordingDevices: Bob measured before herald and Alice")
        self.writer.write(
            {
                "round": self._heralds.round,
                "t_s": self._heralds.t_s,
                "x": self._x,
                "y": np.asarray(y, dtype=np.uint8),
                "a": self._a,
                "b": b,
            }
        )
        self._heralds = self._x = self._a = None
        return b.copy()


def simulate_session(
    profile: Profile | str = "ustc-2026",
    *,
    distance_km: float = 11.0,
    events: int = 1_200_000,
    seed: int | None = None,
    epsilon_sound: float = 1e-6,
    test_fraction: float | None = None,
    reconciliation: str = "auto",
    adversary: ChannelAdversary | None = None,
    devices: Devices | None = None,
    save_records: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    auth_key: bytes | None = None,
    chunk_events: int = 1 << 18,
    progress: Callable[[int], None] | None = None,
) -> tuple[SessionResult, LinkPoint]:
    """Run the full protocol on a simulated link; return the result and the link prediction.

    Parameters
    ----------
    profile
        A :class:`~diqkd.profiles.Profile` or the name of a shipped one.
    distance_km
        Total fiber length between the nodes, km.
    events
        Heralded events (rounds) of the block.
    seed
        ``None``: the parties' randomness and the pre-shared key come from the OS CSPRNG (the
        physics from a fresh seed). An integer makes the whole run reproducible, with every
        party's randomness from seeded generators: the keys are then *simulation artefacts*,
        marked ``randomness="seeded-simulation"``.
    epsilon_sound, test_fraction, reconciliation
        Protocol parameters (:func:`~diqkd.protocol.design_protocol`).
    adversary, devices
        Optional channel adversary; devices replacing the honest model (attacks).
    save_records
        Write the run's round records (Parquet) here, for :func:`distill_records`.
    auth_key
        The pre-shared authentication key; by default one of :func:`auth_key_bytes` bytes is
        drawn (from the OS CSPRNG, or the seeded stream with ``seed``). Too short a key ends
        the session in a clean abort.
    """
    prof = load_profile(profile) if isinstance(profile, str) else profile
    link = link_point(prof, distance_km)
    params = design_protocol(
        expected_chsh=link.chsh,
        expected_qber=link.qber,
        n_rounds=events,
        epsilon_sound=epsilon_sound,
        test_fraction=test_fraction,
        reconciliation=reconciliation,
    )
    physics_seed = fresh_seed() if seed is None else seed
    alice_rng, bob_rng, shared_key = _parties(seed)
    if devices is None:
        devices = ModelDevices(
            correlations=link.correlations,
            herald_probability=link.herald_probability,
            attempt_period_s=link.attempt_period_s,
            measurement_time_s=link.measurement_time_s,
            duty_cycle=link.duty_cycle,
            rng=make_rng(physics_seed),
        )
    if auth_key is None:
        auth_key = shared_key(auth_key_bytes(events, chunk_events))
    if save_records is None:
        result = run_session(
            params=params,
            alice_randomness=alice_rng,
            bob_randomness=bob_rng,
            auth_key=auth_key,
            devices=devices,
            adversary=adversary,
            chunk_events=chunk_events,
            progress=progress,
        )
        return result, link
    meta = RecordsMetadata(
        source="simulation",
        profile_name=prof.name,
        profile_hash=prof.content_hash(),
        distance_km=float(distance_km),
        seed=seed,
        input_probs_xy=tuple(
            tuple(float(v) for v in row) for row in protocol_input_probs(params.test_fraction)
        ),
        notes=f"diqkd run: epsilon_sound={epsilon_sound}",
    )
    with RecordsWriter(save_records, meta, overwrite=overwrite) as writer:
        result = run_session(
            params=params,
            alice_randomness=alice_rng,
            bob_randomness=bob_rng,
            auth_key=auth_key,
            devices=RecordingDevices(devices, writer),
            adversary=adversary,
            chunk_events=chunk_events,
            progress=progress,
        )
    return result, link


def records_test_fraction(meta: RecordsMetadata) -> tuple[float, float]:
    """γ of a records file's input law, and the fraction of rounds discarded.

    Test rounds are ``y ∈ {0, 1}``; key rounds ``x = 0, y = 2``; rounds with ``x = 1, y = 2``
    are discarded (public, input-only). ``γ = P(test) / (1 − P(discard))``.

    Raises
    ------
    RecordsError
        If the law has no test or no key rounds, or test rounds are not uniform in {0, 1}².
    """
    if meta.input_probs_xy is not None:
        pxy = np.asarray(meta.input_probs_xy, dtype=np.float64)
    else:
        pxy = np.outer(meta.input_probs_x, meta.input_probs_y)
    test = pxy[:, :2]
    # 4·p(0, 0) rather than a sum, so that γ/4 written by a simulation gives back γ exactly.
    p_test, p_key, p_discard = 4.0 * float(test[0, 0]), float(pxy[0, 2]), float(pxy[1, 2])
    if p_test <= 0.0 or p_key <= 0.0:
        raise RecordsError(
            "the records' input law has no "
            + ("test" if p_test <= 0 else "key")
            + " rounds (test: y ∈ {0,1}; key: x = 0, y = 2); the CHSH protocol cannot run on it"
        )
    if not np.allclose(test, p_test / 4.0, atol=1e-9) or p_test <= 0.0:
        raise RecordsError(
            "in test rounds (y ∈ {0, 1}) the inputs must be uniform over {0, 1}², as the "
            f"certificate assumes; the records declare p(x, y<2) = {test.tolist()}"
        )
    return p_test / (1.0 - p_discard), p_discard


def distill_records(
    path: str | os.PathLike[str],
    *,
    epsilon_sound: float = 1e-6,
    expected_chsh: float | None = None,
    expected_qber: float | None = None,
    test_fraction: float | None = None,
    seed: int | None = None,
    reconciliation: str = "auto",
    adversary: ChannelAdversary | None = None,
    auth_key: bytes | None = None,
) -> tuple[SessionResult, ProtocolParameters]:
    """Distil keys from a records file (a lab's data, or a simulation's).

    The abort thresholds must be fixed before the data are looked at: from ``expected_chsh``
    and ``expected_qber`` if given, else from the link model of the profile and distance the
    metadata names. γ comes from the metadata's input law (``test_fraction`` must agree with it
    within the statistics when given).

    Raises
    ------
    RecordsError
        Bad file, inconsistent metadata, or an input law the protocol cannot use.
    DiqkdError
        Too few rounds or expected statistics that certify nothing.
    """
    records = read_records(path)
    meta = records.metadata
    n_total = len(records.x)
    if n_total == 0:
        raise RecordsError(f"{path}: the file holds no rounds")
    gamma, _ = records_test_fraction(meta)
    randomness = input_randomness_of_records(records)
    if not randomness.passed(INPUT_TEST_ALPHA):
        raise RecordsError(
            f"{path}: the inputs are not random per the declared law (p = "
            f"{randomness.p_value:.2g} < {INPUT_TEST_ALPHA:g}; frequency p = "
            f"{randomness.frequency_p_value:.2g}, serial p = {randomness.serial_p_value:.2g}, "
            f"{randomness.impossible_inputs} impossible inputs): the random source is broken "
            "or the metadata is wrong; no key is distilled from such data"
        )
    discard = (records.x == 1) & (records.y == 2)
    n = int(n_total - np.count_nonzero(discard))
    if test_fraction is not None and not math.isclose(test_fraction, gamma, rel_tol=1e-9):
        raise RecordsError(
            f"--test-fraction {test_fraction} disagrees with the records' input law (γ = "
            f"{gamma:.6g}); the test fraction is fixed by how the data were taken"
        )
    if expected_chsh is None or expected_qber is None:
        if meta.profile_name is None or meta.distance_km is None:
            raise DiqkdError(
                "the abort thresholds must be fixed before the data are seen: pass "
                "--expected-chsh and --expected-qber (or records whose metadata names a "
                "profile and distance)"
            )
        prof = load_profile(meta.profile_name)
        if meta.profile_hash is not None and prof.content_hash() != meta.profile_hash:
            raise RecordsError(
                f"{path}: the records were taken with a different version of profile "
                f"{meta.profile_name!r} (hash mismatch); pass --expected-chsh/--expected-qber"
            )
        link = link_point(prof, meta.distance_km)
        expected_chsh = link.chsh if expected_chsh is None else expected_chsh
        expected_qber = link.qber if expected_qber is None else expected_qber
    params = design_protocol(
        expected_chsh=expected_chsh,
        expected_qber=expected_qber,
        n_rounds=n,
        epsilon_sound=epsilon_sound,
        test_fraction=gamma,
        reconciliation=reconciliation,
    )
    alice_rng, bob_rng, shared_key = _parties(seed)
    result = run_session(
        params=params,
        alice_randomness=alice_rng,
        bob_randomness=bob_rng,
        auth_key=shared_key(auth_key_bytes(n, 1 << 18)) if auth_key is None else auth_key,
        records=RecordsInput(
            alice_rounds=np.asarray(records.round),
            x=np.asarray(records.x),
            a=np.asarray(records.a),
            bob_rounds=np.asarray(records.round),
            y=np.asarray(records.y),
            b=np.asarray(records.b),
        ),
        adversary=adversary,
    )
    return result, params
