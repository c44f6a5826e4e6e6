"""The DI-QKD session: roles, devices and channel put together, from first herald to key.

:func:`run_session` runs the CHSH protocol of ``docs/finite-size.md`` (steps in
:mod:`diqkd.protocol.roles`) with live devices (:class:`~diqkd.protocol.devices.Devices`,
streamed chunk by chunk) or with the two parties' columns of a records file
(:class:`RecordsInput`). It returns a :class:`SessionResult`: identical key blocks on both sides
with their certificate, or an abort with the reason (and no key). Any failure inside — a Bell
test below threshold, a failed verification, a tampered or dropped message, an exhausted
authentication pool, malformed device output — ends in a clean abort: no partial key leaves.

Authentication (:mod:`diqkd.protocol.channel`): per message, except the interactive
reconciliation, which is one batch authenticated as a whole before its output is used. With a
one-shot pre-shared key (``auth_key=``) the key block holds all ℓ certified bits and the result
reports the authentication key spent; with persistent pools (``auth_pools=``, long-running
operation) the spent key is replenished from the end of the distilled key before it is output
(Wegman–Carter key recycling), so then ``key_bits = ℓ − 8·auth_bytes``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from diqkd.errors import DiqkdError, ProtocolAbort, VerificationFailed
from diqkd.postproc import KeyBlock, KeyPool
from diqkd.postproc.messages import Done as ReconDone
from diqkd.postproc.messages import decode_message
from diqkd.protocol.channel import Channel, ChannelAdversary, Party, Transcript
from diqkd.protocol.checks import TSIRELSON_FALSE_ALARM
from diqkd.protocol.design import ProtocolParameters
from diqkd.protocol.devices import Devices
from diqkd.protocol.messages import Abort, Done, HeraldAnnouncement, Reconciliation
from diqkd.protocol.randomness import RandomnessSource, is_secure
from diqkd.protocol.roles import (
    FRAMES,
    LDPC_METHODS,
    Alice,
    Bob,
    ReconParty,
    reconciliation_method,
)
from diqkd.security import Certificate, certificate_from_result

__all__ = ["RecordsInput", "SessionResult", "SessionStatistics", "run_session"]


@dataclass(frozen=True, eq=False)
class RecordsInput:
    """Each party's own columns of a records file (Alice: round, x, a; Bob: round, y, b)."""

    alice_rounds: NDArray[np.uint64]
    x: NDArray[np.uint8]
    a: NDArray[np.uint8]
    bob_rounds: NDArray[np.uint64]
    y: NDArray[np.uint8]
    b: NDArray[np.uint8]


@dataclass(frozen=True)
class SessionStatistics:
    """What the session observed (public quantities only)."""

    events: int
    test_rounds: int = 0
    wins: int = 0
    key_rounds: int = 0
    key_errors: int = 0
    statistic: float = float("nan")
    leaked_bits: int = 0
    reconciliation_method: str = ""
    reconciliation_rounds: int = 0

    @property
    def chsh(self) -> float:
        """Observed CHSH value ``S = 8 w − 4`` from the test-round winning frequency."""
        return 8.0 * self.wins / self.test_rounds - 4.0 if self.test_rounds else float("nan")

    @property
    def qber(self) -> float:
        """Observed key-round error rate (after noisy preprocessing), from error correction."""
        return self.key_errors / self.key_rounds if self.key_rounds else float("nan")


@dataclass(frozen=True, eq=False)
class SessionResult:
    """Outcome of one session.

    ``alice_keys`` and ``bob_keys`` are identical lists of :class:`~diqkd.postproc.KeyBlock`
    unless ``aborted``; then both are empty and ``abort_reason`` says why.
    """

    aborted: bool
    abort_reason: str
    alice_keys: list[KeyBlock]
    bob_keys: list[KeyBlock]
    certificate: Certificate | None
    statistics: SessionStatistics
    parameters: ProtocolParameters
    transcript: Transcript
    timings_s: dict[str, float]
    randomness: Literal["os-csprng", "seeded-simulation"]
    certified_bits: int = 0
    auth_key_bits: int = 0
    epsilon_auth: float = 0.0
    tampered_messages: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key_bits(self) -> int:
        """Net key bits output (after replenishing the authentication pool)."""
        return sum(b.n_bits for b in self.alice_keys)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (no key material); quantities not measured (abort) are ``None``."""
        st = self.statistics
        doc = {
            "events": st.events,
            "chsh": st.chsh,
            "qber": st.qber,
            "aborted": self.aborted,
            "abort_reason": self.abort_reason or None,
            "key_bits": self.key_bits,
            "key_rate_per_event": self.key_bits / st.events if st.events else 0.0,
            "epsilon_sound": self.parameters.epsilon_sound,
            "certified_bits": self.certified_bits,
            "auth_key_bits": self.auth_key_bits,
            "epsilon_auth": self.epsilon_auth,
            "test_rounds": st.test_rounds,
            "test_fraction": self.parameters.test_fraction,
            "flip_probability": self.parameters.flip_probability,
            "statistic": st.statistic,
            "statistic_threshold": self.parameters.statistic_threshold,
            "leaked_bits": st.leaked_bits,
            "reconciliation": st.reconciliation_method,
            "reconciliation_rounds": st.reconciliation_rounds,
            "messages": len(self.transcript),
            "transcript_bytes": self.transcript.n_bytes,
            "transcript_sha256": self.transcript.digest,
            "randomness": self.randomness,
            "key_ids": [b.key_id for b in self.alice_keys],
            "timings_s": dict(self.timings_s),
        }
        return {
            k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in doc.items()
        }


def _route_reconciliation(
    channel: Channel,
    frame: str,
    opener: Party,
    first: ReconParty,
    second: ReconParty,
    alice: Alice,
    bob: Bob,
) -> int:
    """Carry one frame's reconciliation messages over the channel; return round trips."""
    parties: dict[Party, ReconParty] = {
        opener: first,
        ("bob" if opener == "alice" else "alice"): second,
    }
    ledgers = {"alice": alice.ledger, "bob": bob.ledger}
    sender: Party = opener
    message = first.first_message()  # type: ignore[union-attr]
    exchanges = 0
    while True:
        receiver: Party = "bob" if sender == "alice" else "alice"
        ledgers[sender].record(message)
        delivered = channel.send(
            sender, receiver, Reconciliation(frame=frame, payload=message.to_bytes())
        )
        if not isinstance(delivered, Reconciliation) or delivered.frame != frame:
            raise ProtocolAbort("unexpected message during reconciliation")
        inner = decode_message(delivered.payload)
        ledgers[receiver].record(inner)
        reply = parties[receiver].handle(inner)
        exchanges += 1
        if isinstance(inner, ReconDone):
            if reply is not None:
                raise ProtocolAbort("a party answered Done: abort")
            return exchanges // 2
        if reply is None:
            raise ProtocolAbort(f"no answer to a {inner.kind}: abort")
        message, sender = reply, receiver


def run_session(
    *,
    params: ProtocolParameters,
    alice_randomness: RandomnessSource,
    bob_randomness: RandomnessSource,
    auth_key: bytes | None = None,
    auth_pools: tuple[KeyPool, KeyPool] | None = None,
    devices: Devices | None = None,
    records: RecordsInput | None = None,
    adversary: ChannelAdversary | None = None,
    chunk_events: int = 1 << 18,
    progress: Callable[[int], None] | None = None,
) -> SessionResult:
    """Run one DI-QKD session over ``params.n_rounds`` rounds.

    Parameters
    ----------
    params
        Agreed before the run (:func:`~diqkd.protocol.design_protocol`).
    alice_randomness, bob_randomness
        Each party's private randomness; :class:`~diqkd.protocol.SystemRandomness` for real
        keys (anything else marks the result ``randomness="seeded-simulation"``).
    auth_key
        A one-shot pre-shared authentication key (both parties build pools from these bytes).
    auth_pools
        Instead of ``auth_key``: Alice's and Bob's persistent pools, replenished from the key.
    devices, records
        Exactly one: live devices, or the parties' columns of a records file.
    adversary
        Optional channel adversary.
    chunk_events
        Events per herald chunk (live mode).
    progress
        Called with the number of events acquired after each chunk.
    """
    if (devices is None) == (records is None):
        raise DiqkdError("give exactly one of devices= (live) or records= (from a file)")
    if (auth_key is None) == (auth_pools is None):
        raise DiqkdError("give exactly one of auth_key= or auth_pools=")
    pools = (KeyPool(auth_key), KeyPool(auth_key)) if auth_key is not None else auth_pools
    assert pools is not None
    start_consumed = (pools[0].consumed_bytes, pools[1].consumed_bytes)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    alice = Alice(params, alice_randomness)
    bob = Bob(params, bob_randomness)
    channel = Channel(pools[0], pools[1], adversary=adversary)
    kind: Literal["os-csprng", "seeded-simulation"] = (
        "os-csprng"
        if is_secure(alice_randomness) and is_secure(bob_randomness)
        else "seeded-simulation"
    )
    stats = SessionStatistics(events=params.n_rounds)

    def aborted(reason: str, *, notify: Party | None = None) -> SessionResult:
        timings["total"] = time.perf_counter() - t0
        if notify is not None:
            other: Party = "bob" if notify == "alice" else "alice"
            with contextlib.suppress(DiqkdError):
                channel.send(notify, other, Abort(reason=reason))
        return SessionResult(
            aborted=True,
            abort_reason=reason,
            alice_keys=[],
            bob_keys=[],
            certificate=None,
            statistics=stats,
            parameters=params,
            transcript=channel.transcript,
            timings_s=timings,
            randomness=kind,
            epsilon_auth=channel.epsilon_auth,
            tampered_messages=channel.tampered,
        )

    try:
        bob.on_hello(channel.send("alice", "bob", alice.hello()))  # type: ignore[arg-type]
        # 1. acquisition
        if devices is not None:
            done = 0
            chunk = 0
            while done < params.n_rounds:
                n = min(chunk_events, params.n_rounds - done)
                heralds = devices.herald(n)
                if len(heralds) != n:
                    raise ProtocolAbort(
                        "the heralding station announced the wrong number of events"
                    )
                ann = HeraldAnnouncement(chunk=chunk, n_events=n, rounds=heralds.round)
                got_a = channel.send("station", "alice", ann)
                got_b = channel.send("station", "bob", ann)
                if not isinstance(got_a, HeraldAnnouncement) or not isinstance(
                    got_b, HeraldAnnouncement
                ):
                    raise ProtocolAbort("expected a herald announcement")
                bob.on_herald(got_b)
                bob.on_round_types(channel.send("alice", "bob", alice.on_herald(got_a)))  # type: ignore[arg-type]
                alice.record_outputs(devices.measure_alice(alice.current_inputs()))
                bob.record_outputs(devices.measure_bob(bob.current_inputs()))
                done += n
                chunk += 1
                if progress is not None:
                    progress(done)
            alice.finish_acquisition()
            bob.finish_acquisition()
        else:
            assert records is not None
            alice.load_records(records.alice_rounds, records.x, records.a)
            bob.load_records(records.bob_rounds, records.y, records.b)
            discards = alice.on_round_types(channel.send("bob", "alice", bob.round_types()))  # type: ignore[arg-type]
            bob.on_discards(channel.send("alice", "bob", discards))  # type: ignore[arg-type]
            if alice.n_rounds != params.n_rounds:
                raise ProtocolAbort(
                    f"{alice.n_rounds} usable rounds, but the parameters were fixed for "
                    f"{params.n_rounds}"
                )
        timings["acquisition"] = time.perf_counter() - t0
        # 2. announcements and preprocessing
        t = time.perf_counter()
        bob.on_test_inputs(channel.send("alice", "bob", alice.test_inputs()))  # type: ignore[arg-type]
        alice.preprocess()
        timings["sifting"] = time.perf_counter() - t
        # 3. error correction of both frames, one authenticated batch
        t = time.perf_counter()
        rounds = 0
        methods = []
        try:
            with channel.batch("error-correction"):
                for frame in FRAMES:
                    n_bits = int(np.count_nonzero(alice.test if frame == "test" else ~alice.test))
                    if n_bits == 0:
                        continue
                    method = reconciliation_method(params, n_bits, alice.frame_qber(frame))
                    methods.append(method)
                    a_party = alice.recon_party(frame, method)
                    b_party = bob.recon_party(frame, method)
                    if method in LDPC_METHODS:  # Alice opens with her syndrome
                        rounds += _route_reconciliation(
                            channel, frame, "alice", a_party, b_party, alice, bob
                        )
                    else:
                        rounds += _route_reconciliation(
                            channel, frame, "bob", b_party, a_party, alice, bob
                        )
        except ProtocolAbort as exc:
            raise ProtocolAbort(f"error correction aborted: {exc}") from None
        bob.finish_reconciliation()
        timings["error_correction"] = time.perf_counter() - t
        stats = dataclasses.replace(
            stats,
            leaked_bits=alice.ledger.leaked_bits,
            reconciliation_method="+".join(sorted(set(methods))),
            reconciliation_rounds=rounds,
        )
        if alice.ledger.leaked_bits != bob.ledger.leaked_bits:
            raise ProtocolAbort("Alice and Bob count different leaks: abort")
        # 4. verification and parameter estimation
        t = time.perf_counter()
        bob.on_verification(channel.send("alice", "bob", alice.verification()))  # type: ignore[arg-type]
        estimation = bob.estimate()
        stats = dataclasses.replace(
            stats,
            test_rounds=estimation.test_rounds,
            wins=estimation.wins,
            key_rounds=estimation.key_rounds,
            key_errors=estimation.key_errors,
            statistic=estimation.statistic,
        )
        alice.on_estimation(channel.send("bob", "alice", estimation))  # type: ignore[arg-type]
        timings["verification_estimation"] = time.perf_counter() - t
        # 5. privacy amplification to the certified length
        t = time.perf_counter()
        length = alice.key_length()
        if length <= 0:
            raise ProtocolAbort(
                f"the certificate allows no key: the leak ({alice.ledger.leaked_bits} bits) "
                "exceeds what the accumulated entropy covers"
            )
        pa = alice.privacy_amplification(length)
        got_pa = channel.send("alice", "bob", pa)
        bob.on_privacy_amplification(got_pa)  # type: ignore[arg-type]
        done_msg = channel.send("bob", "alice", Done(key_id=pa.key_id))
        if not isinstance(done_msg, Done) or done_msg.key_id != pa.key_id:
            raise ProtocolAbort("Bob did not confirm the key: abort")
        timings["privacy_amplification"] = time.perf_counter() - t
    except VerificationFailed as exc:
        # Detected at the receiver of a tag (Bob, or Alice for Bob's messages): tell the other.
        return aborted(str(exc), notify="bob")
    except ProtocolAbort as exc:
        return aborted(str(exc))
    except DiqkdError as exc:
        return aborted(f"session error: {exc}")

    auth_bytes = channel.auth_key_bytes_consumed("alice") - start_consumed[0]
    if channel.auth_key_bytes_consumed("bob") - start_consumed[1] != auth_bytes:
        return aborted("authentication key pools out of step: abort")
    auth_bits = 8 * auth_bytes
    net = length
    key_a = alice.final_key()
    key_b = bob.final_key()
    if auth_pools is not None:
        # Replenish both pools from the end of the key (Wegman–Carter key recycling).
        if length <= auth_bits:
            return aborted(
                f"the certified key ({length} bits) does not cover the authentication key "
                f"spent ({auth_bits} bits)"
            )
        net = length - auth_bits
        auth_pools[0].replenish(np.packbits(key_a[net:]).tobytes())
        auth_pools[1].replenish(np.packbits(key_b[net:]).tobytes())
    certificate = certificate_from_result(
        params.design,
        key_length_bits=length,
        observed={
            "chsh": stats.chsh,
            "qber": stats.qber,
            "statistic": stats.statistic,
            "test_rounds": stats.test_rounds,
        },
        leak_ec_bits=stats.leaked_bits,
    )
    # Completeness also counts the Tsirelson check's false-alarm probability.
    complete = min(1.0, certificate.epsilons.complete + TSIRELSON_FALSE_ALARM)
    certificate = dataclasses.replace(
        certificate, epsilons=dataclasses.replace(certificate.epsilons, complete=complete)
    )
    cert = certificate.to_dict()
    cert.update(
        key_bits=net,
        auth_key_bits=auth_bits,
        randomness=kind,
        session_id=alice.session_id,
        transcript_sha256=channel.transcript.digest,
    )
    block_a = KeyBlock.from_bits(key_a[:net], certificate=cert, key_id=pa.key_id)
    block_b = KeyBlock.from_bits(key_b[:net], certificate=cert, key_id=pa.key_id)
    timings["total"] = time.perf_counter() - t0
    return SessionResult(
        aborted=False,
        abort_reason="",
        alice_keys=[block_a],
        bob_keys=[block_b],
        certificate=certificate,
        statistics=stats,
        parameters=params,
        transcript=channel.transcript,
        timings_s=timings,
        randomness=kind,
        certified_bits=length,
        auth_key_bits=auth_bits,
        epsilon_auth=channel.epsilon_auth,
        tampered_messages=channel.tampered,
    )
