"""Alice and Bob: each holds only her/his own data and randomness, and talks through messages.

The step methods take received messages and return messages to send; the session
(:mod:`diqkd.protocol.session`) carries them over the :class:`~diqkd.protocol.channel.Channel`.
Nothing a role holds is ever read by the other role: raw outputs, flips, corrected strings and
final keys stay inside. The protocol is the CHSH protocol of ``docs/finite-size.md``:

1. per heralded event Alice draws ``T ~ Bernoulli(γ)``; key round: ``x = 0, y = 2``; test
   round: ``x, y`` uniform in {0, 1} (records mode: the inputs are in the records and Bob
   announces ``T = [y < 2]``; Alice discards rounds with ``T = 0, x = 1``);
2. Alice announces her test-round inputs; noisy preprocessing flips her key-round outputs with
   probability p;
3. error correction of the whole string ``Ã`` as two frames (key rounds, test rounds); Bob's
   guess is ``b`` on key rounds and ``b ⊕ x·y`` on test rounds;
4. verification hash; Bob estimates ``Σ z`` from his corrected copy and announces the result;
5. privacy amplification of all n bits to the certified ℓ by Toeplitz hashing.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from diqkd.errors import DiqkdError, ProtocolAbort, ReconciliationError
from diqkd.postproc import CascadeAlice, CascadeBob, LeakLedger, toeplitz_hash
from diqkd.postproc._ldpc_codes import MIN_KEY_BITS, CodeFamily
from diqkd.postproc._ldpc_qc import QC_MIN_KEY_BITS
from diqkd.postproc.ldpc import LdpcAlice, LdpcBob, LdpcStart, choose_code
from diqkd.postproc.reconcile import choose_method
from diqkd.postproc.verify import verification_tag, verify_keys
from diqkd.protocol.checks import tsirelson_check
from diqkd.protocol.design import ProtocolParameters, final_key_length
from diqkd.protocol.messages import (
    AnnouncedInputs,
    Discards,
    EstimationResult,
    Hello,
    HeraldAnnouncement,
    PrivacyAmplification,
    RoundTypes,
    Verification,
)
from diqkd.protocol.randomness import RandomnessSource

__all__ = ["Alice", "Bob", "Frame", "ReconParty"]

Frame = Literal["key", "test"]
FRAMES: tuple[Frame, Frame] = ("key", "test")
ReconParty = CascadeAlice | CascadeBob | LdpcAlice | LdpcBob


def _digest_rounds(rounds: NDArray[np.uint64]) -> str:
    return hashlib.sha256(np.ascontiguousarray(rounds, dtype="<u8").tobytes()).hexdigest()


#: The LDPC methods of :data:`~diqkd.protocol.design.RECONCILIATION_METHODS`: code family and
#: operating point (:mod:`diqkd.postproc.ldpc`). ``ldpc-qc`` leaks about as much as ``ldpc``
#: (more on QC codes with short degree-2 cycles, benchmarks/README.md) and decodes 2–4 times
#: faster; ``ldpc-fast`` starts at ``f₀ ≥ 1.15`` (≈ 10 % more leak, 5–10
#: times faster again).
LDPC_METHODS: dict[str, tuple[CodeFamily, LdpcStart]] = {
    "ldpc": ("random", "efficient"),
    "ldpc-qc": ("qc", "efficient"),
    "ldpc-fast": ("qc", "fast"),
}


def ldpc_settings(method: str, n_bits: int) -> tuple[CodeFamily, LdpcStart]:
    """Code family and operating point of an LDPC method for an ``n_bits`` frame: below the
    QC codes' :data:`~diqkd.postproc._ldpc_qc.QC_MIN_KEY_BITS` the random codes."""
    family, start = LDPC_METHODS[method]
    return ("random" if n_bits < QC_MIN_KEY_BITS else family), start


def reconciliation_method(params: ProtocolParameters, n_bits: int, qber: float) -> str:
    """The agreed method for a frame; ``auto`` resolves by frame length and QBER.

    LDPC falls back where its codes cannot carry the frame: ``ldpc-qc`` to ``ldpc`` below the
    QC codes' 65 536 bits (``ldpc-fast`` takes the random codes there), and every LDPC
    method to Cascade where no rung reaches the frame's QBER (the test rounds' error
    ``1 − ω`` is ≈ 17 % on a good link, beyond the rate-½ codes) or the frame is shorter than
    an LDPC frame."""
    method = params.reconciliation
    if method == "auto":
        return str(choose_method(n_bits, qber))
    if method == "ldpc-qc" and n_bits < QC_MIN_KEY_BITS:
        method = "ldpc"  # too short for the quasi-cyclic codes: the random ones
    if method in LDPC_METHODS:
        try:
            choose_code(n_bits, qber, start=ldpc_settings(method, n_bits)[1])
        except ReconciliationError:
            return "cascade"
        if n_bits < MIN_KEY_BITS:
            return "cascade"
    return method


class _Party:
    """What Alice and Bob share in shape (never in content)."""

    def __init__(self, params: ProtocolParameters, randomness: RandomnessSource) -> None:
        self.params = params
        # Separate streams, so that records mode (no input draws) and live mode distil the
        # same data identically with the same seeds.
        self.input_randomness = randomness.child("inputs")
        self.randomness = randomness.child("secrets")
        self._rounds: list[NDArray[np.uint64]] = []
        self._tests: list[NDArray[np.bool_]] = []
        self._inputs: list[NDArray[np.uint8]] = []
        self._outputs: list[NDArray[np.uint8]] = []
        self._pending_inputs: NDArray[np.uint8] | None = None
        self.ledger = LeakLedger()
        self._recon: dict[Frame, ReconParty] = {}
        self._finalised = False
        self.rounds = np.empty(0, dtype=np.uint64)
        self.test = np.empty(0, dtype=bool)
        self.inputs = np.empty(0, dtype=np.uint8)
        self.outputs = np.empty(0, dtype=np.uint8)

    # ---- acquisition
    def current_inputs(self) -> NDArray[np.uint8]:
        """The inputs for the chunk being measured (handed to this party's own box only)."""
        if self._pending_inputs is None:
            raise DiqkdError("no chunk is being measured")
        return self._pending_inputs

    def record_outputs(self, outputs: NDArray[np.uint8]) -> None:
        """Store this party's box outputs for the chunk being measured."""
        if self._pending_inputs is None:
            raise DiqkdError("no chunk is being measured")
        out = np.asarray(outputs)
        if out.shape != self._pending_inputs.shape or (out.size and out.max() > 1):
            raise ProtocolAbort("the device returned malformed outputs (not one bit per round)")
        self._inputs.append(self._pending_inputs)
        self._outputs.append(out.astype(np.uint8))
        self._pending_inputs = None

    def load_records(
        self, rounds: NDArray[np.uint64], inputs: NDArray[np.uint8], outputs: NDArray[np.uint8]
    ) -> None:
        """Records mode: this party's own columns of a records file."""
        self.rounds = np.asarray(rounds, dtype=np.uint64)
        self.inputs = np.asarray(inputs, dtype=np.uint8)
        self.outputs = np.asarray(outputs, dtype=np.uint8)
        self._finalised = True

    def finish_acquisition(self) -> None:
        """Concatenate the chunks."""
        if not self._finalised:
            self.rounds = np.concatenate(self._rounds) if self._rounds else self.rounds
            self.test = np.concatenate(self._tests) if self._tests else self.test
            self.inputs = np.concatenate(self._inputs) if self._inputs else self.inputs
            self.outputs = np.concatenate(self._outputs) if self._outputs else self.outputs
            self._finalised = True
        self._rounds, self._tests, self._inputs, self._outputs = [], [], [], []

    @property
    def n_rounds(self) -> int:
        return int(self.outputs.size)

    def _frame_positions(self, frame: Frame) -> NDArray[np.intp]:
        return np.flatnonzero(self.test if frame == "test" else ~self.test)

    def frame_qber(self, frame: Frame) -> float:
        """The design's expected error rate of a frame (public, fixed before the run)."""
        if frame == "key":
            return self.params.expected_key_qber
        return self.params.expected_test_error

    def leak_bits(self) -> int:
        """Bits disclosed by error correction so far (this party's view of the transcript)."""
        return self.ledger.leaked_bits

    def key_length(self) -> int:
        """The certified final length ℓ from the actual leak (Eq. (F7))."""
        return final_key_length(
            self.params, leak_ec_bits=self.ledger.leaked_bits, tag_bits=self.params.tag_bits
        )


class Alice(_Party):
    """Alice: chooses test rounds, holds the reference string, draws the public seeds."""

    def __init__(self, params: ProtocolParameters, randomness: RandomnessSource) -> None:
        super().__init__(params, randomness)
        self.session_id = str(uuid.UUID(bytes=self.randomness.random_bytes(16), version=4))
        self._flipped: NDArray[np.uint8] | None = None
        self._key: NDArray[np.uint8] | None = None

    def hello(self) -> Hello:
        return Hello(session_id=self.session_id, parameters_digest=self.params.digest())

    def on_herald(self, announcement: HeraldAnnouncement) -> RoundTypes:
        """Live mode: draw T and x for the announced chunk; tell Bob T."""
        if announcement.rounds is None:
            raise ProtocolAbort("herald announcement without rounds")
        n = announcement.n_events
        test = self.input_randomness.bernoulli(n, self.params.test_fraction)
        x = np.where(test, self.input_randomness.bits(n), 0).astype(np.uint8)
        self._rounds.append(announcement.rounds)
        self._tests.append(test)
        self._pending_inputs = x
        return RoundTypes(
            n_bits=n,
            bits=test.astype(np.uint8),
            chunk=announcement.chunk,
            herald_digest=_digest_rounds(announcement.rounds),
        )

    def on_round_types(self, message: RoundTypes) -> Discards:
        """Records mode: Bob's ``T = [y < 2]``; discard rounds with ``T = 0`` and ``x = 1``."""
        if message.herald_digest != _digest_rounds(self.rounds):
            raise ProtocolAbort("Alice's and Bob's records list different rounds: abort")
        if message.bits is None or message.n_bits != self.rounds.size:
            raise ProtocolAbort("round types do not cover Alice's records")
        test = message.bits.astype(bool)
        if np.any(self.inputs[test] > 1):
            raise ProtocolAbort("a test round has an input outside {0, 1}")
        discard = (~test) & (self.inputs != 0)
        keep = ~discard
        self.rounds, self.inputs, self.outputs = (
            self.rounds[keep],
            self.inputs[keep],
            self.outputs[keep],
        )
        self.test = test[keep]
        return Discards(n_bits=int(discard.size), bits=discard.astype(np.uint8))

    def test_inputs(self) -> AnnouncedInputs:
        """Announce ``x`` on the test rounds."""
        x = self.inputs[self.test]
        return AnnouncedInputs(n_bits=int(x.size), bits=x, n_discarded=0)

    def preprocess(self) -> None:
        """Noisy preprocessing: flip key-round outputs with probability p (Ho et al. 2020)."""
        flips = self.randomness.bernoulli(self.n_rounds, self.params.flip_probability)
        flips &= ~self.test
        self._flipped = (self.outputs ^ flips.astype(np.uint8)).astype(np.uint8)

    @property
    def _string(self) -> NDArray[np.uint8]:
        if self._flipped is None:
            raise DiqkdError("preprocess() first")
        return self._flipped

    def recon_party(self, frame: Frame, method: str) -> ReconParty:
        """Alice's reconciliation party for a frame."""
        bits = self._string[self._frame_positions(frame)]
        qber = self.frame_qber(frame)
        party: ReconParty
        if method in LDPC_METHODS:
            family, start = ldpc_settings(method, int(bits.size))
            party = LdpcAlice(bits, qber, family=family, start=start)
        else:
            party = CascadeAlice(bits)
        self._recon[frame] = party
        return party

    def verification(self) -> Verification:
        """Fresh hash key ``h`` and the tag of Alice's whole string."""
        h = self.randomness.random_bytes(16)
        tag = verification_tag(self._string, h, tag_bits=self.params.tag_bits)
        return Verification(hash_key=h.hex(), tag=tag.hex(), tag_bits=self.params.tag_bits)

    def on_estimation(self, message: EstimationResult) -> None:
        """Accept Bob's parameter estimation or abort with its reason."""
        if not message.accept:
            raise ProtocolAbort(message.reason or "Bob's parameter estimation failed")

    def privacy_amplification(self, length: int) -> PrivacyAmplification:
        """Draw the Toeplitz seed, hash to ℓ bits, keep the key; announce seed and ℓ."""
        n = self.n_rounds
        seed_len = n + length - 1
        seed = self.randomness.bits(seed_len)
        self._key = toeplitz_hash(self._string, seed, length)
        key_id = str(uuid.UUID(bytes=self.randomness.random_bytes(16), version=4))
        return PrivacyAmplification(n_bits=seed_len, bits=seed, output_bits=length, key_id=key_id)

    def final_key(self) -> NDArray[np.uint8]:
        if self._key is None:
            raise DiqkdError("no final key")
        return self._key


class Bob(_Party):
    """Bob: corrects his guess of Alice's string, estimates the Bell statistic."""

    def __init__(self, params: ProtocolParameters, randomness: RandomnessSource) -> None:
        super().__init__(params, randomness)
        self._announced: dict[int, str] = {}
        self._x_test: NDArray[np.uint8] | None = None
        self._guess: NDArray[np.uint8] | None = None
        self._corrected: NDArray[np.uint8] | None = None
        self._key: NDArray[np.uint8] | None = None
        self.session_id = ""
        self.estimation: EstimationResult | None = None

    def on_hello(self, message: Hello) -> None:
        if message.parameters_digest != self.params.digest():
            raise ProtocolAbort("Alice and Bob hold different protocol parameters: abort")
        self.session_id = message.session_id

    def on_herald(self, announcement: HeraldAnnouncement) -> None:
        if announcement.rounds is None:
            raise ProtocolAbort("herald announcement without rounds")
        self._announced[announcement.chunk] = _digest_rounds(announcement.rounds)
        self._rounds.append(announcement.rounds)

    def on_round_types(self, message: RoundTypes) -> None:
        """Live mode: check Alice saw the same heralds; draw y given T."""
        if self._announced.get(message.chunk) != message.herald_digest:
            raise ProtocolAbort(
                "Alice and Bob received different herald announcements (the middle station "
                "or the channel is lying): abort"
            )
        if message.bits is None or message.n_bits != self._rounds[-1].size:
            raise ProtocolAbort("round types do not match the heralded chunk")
        test = message.bits.astype(bool)
        y = np.where(test, self.input_randomness.bits(message.n_bits), 2).astype(np.uint8)
        self._tests.append(test)
        self._pending_inputs = y

    def round_types(self) -> RoundTypes:
        """Records mode: announce ``T = [y < 2]`` and the digest of Bob's rounds."""
        test = self.inputs < 2
        return RoundTypes(
            n_bits=int(test.size),
            bits=test.astype(np.uint8),
            chunk=0,
            herald_digest=_digest_rounds(self.rounds),
        )

    def on_discards(self, message: Discards) -> None:
        if message.bits is None or message.n_bits != self.rounds.size:
            raise ProtocolAbort("discard list does not cover Bob's records")
        keep = ~message.bits.astype(bool)
        test = (self.inputs < 2)[keep]
        self.rounds, self.inputs, self.outputs = (
            self.rounds[keep],
            self.inputs[keep],
            self.outputs[keep],
        )
        self.test = test

    def on_test_inputs(self, message: AnnouncedInputs) -> None:
        """Store Alice's test inputs and form the guess of her string."""
        m = int(np.count_nonzero(self.test))
        if message.bits is None or message.n_bits != m:
            raise ProtocolAbort(f"Alice announced {message.n_bits} test inputs, Bob has {m}")
        self._x_test = message.bits
        guess = self.outputs.copy()
        y_test = self.inputs[self.test]
        guess[self.test] ^= (message.bits & y_test).astype(np.uint8)
        self._guess = guess

    def recon_party(self, frame: Frame, method: str) -> ReconParty:
        """Bob's party for a frame; he draws the public shuffle seed of Cascade."""
        shuffle_seed = int.from_bytes(self.randomness.random_bytes(8), "little") >> 2
        if self._guess is None:
            raise DiqkdError("on_test_inputs() first")
        bits = self._guess[self._frame_positions(frame)]
        party: ReconParty
        if method in LDPC_METHODS:  # Bob follows the code Alice names
            party = LdpcBob(bits, self.frame_qber(frame))
        else:
            party = CascadeBob(bits, self.frame_qber(frame), shuffle_seed=shuffle_seed)
        self._recon[frame] = party
        return party

    def finish_reconciliation(self) -> None:
        """Assemble the corrected copy of Alice's whole string from the frames."""
        if self._guess is None:
            raise DiqkdError("nothing was reconciled")
        corrected = self._guess.copy()
        for frame in FRAMES:
            party = self._recon.get(frame)
            if party is None:
                continue
            if not isinstance(party, CascadeBob | LdpcBob):
                raise DiqkdError("Bob holds Alice's party")
            corrected[self._frame_positions(frame)] = party.corrected_key
        self._corrected = corrected

    def on_verification(self, message: Verification) -> None:
        """Check Alice's tag against the corrected string; raises ``VerificationFailed``."""
        if self._corrected is None:
            raise DiqkdError("finish_reconciliation() first")
        if message.tag_bits != self.params.tag_bits:
            raise ProtocolAbort("verification tag length differs from the agreed one")
        try:
            h, tag = bytes.fromhex(message.hash_key), bytes.fromhex(message.tag)
        except ValueError:
            raise ProtocolAbort("verification message is not hex") from None
        verify_keys(tag, self._corrected, h, tag_bits=self.params.tag_bits)

    def estimate(self) -> EstimationResult:
        """Parameter estimation with the corrected test bits (step 4 of the protocol)."""
        if self._corrected is None or self._x_test is None:
            raise DiqkdError("verify first")
        test = self.test
        a = self._corrected[test]
        b = self.outputs[test]
        x, y = self._x_test, self.inputs[test]
        wins = int(np.count_nonzero((a ^ b) == (x & y)))
        m = int(a.size)
        pivot = self.params.score_pivot
        statistic = wins * (1.0 - pivot) - (m - wins) * pivot
        key_rounds = int(np.count_nonzero(~test))
        key_errors = int(np.count_nonzero(self._corrected[~test] != self.outputs[~test]))
        reason = ""
        tsirelson = tsirelson_check(wins, m)
        if tsirelson.flagged:
            reason = tsirelson.reason()
        elif m > self.params.max_test_rounds:
            reason = (
                f"{m} test rounds exceed the agreed maximum {self.params.max_test_rounds}: abort"
            )
        elif statistic < self.params.statistic_threshold:
            s_obs = 8.0 * wins / m - 4.0 if m else float("nan")
            reason = (
                f"Bell test failed: CHSH score {statistic:.1f} below the threshold "
                f"{self.params.statistic_threshold:.1f} (observed S = {s_obs:.4f} on {m} test "
                "rounds): the devices or the source are not trusted; no key"
            )
        result = EstimationResult(
            accept=not reason,
            statistic=float(statistic),
            test_rounds=m,
            wins=wins,
            key_rounds=key_rounds,
            key_errors=key_errors,
            reason=reason,
        )
        self.estimation = result
        return result

    def on_privacy_amplification(self, message: PrivacyAmplification) -> None:
        """Check ℓ against Bob's own computation and hash his corrected string with the seed."""
        if self._corrected is None or message.bits is None:
            raise DiqkdError("verify first")
        expected = self.key_length()
        if message.output_bits != expected:
            raise ProtocolAbort(
                f"Alice announced a {message.output_bits}-bit key, Bob certifies {expected}: abort"
            )
        if message.n_bits != self.n_rounds + expected - 1:
            raise ProtocolAbort("privacy-amplification seed has the wrong length")
        self._key = toeplitz_hash(self._corrected, message.bits, expected)

    def final_key(self) -> NDArray[np.uint8]:
        if self._key is None:
            raise DiqkdError("no final key")
        return self._key
