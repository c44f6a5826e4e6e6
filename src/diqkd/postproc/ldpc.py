"""One-way LDPC reconciliation with a blind fallback, as two parties that only exchange messages.

Protocol (Alice holds the reference key ``x``, Bob ``y = x ⊕ e``; both know the public QBER
estimate ``Q̂``):

1. **Rate choice.** Both parties derive the syndrome length ``m`` from ``Q̂``: the smallest
   ``m`` on a geometric ladder (ratio :data:`RATE_LADDER_RATIO`, so cached codes are reused
   across frames) with ``m ≥ f₀·n·h(Q̂)``, ``f₀`` the target efficiency (default
   :data:`DEFAULT_EFFICIENCY`, measured to decode most frames at n = 10⁴; see the benchmark).
   This "choose the rate from a family by the estimated QBER" is the simplest rate adaptation
   (Elkouss, Martinez-Mateo, Martin, QIC 11, 226 (2011), Sec. 2); shortening and puncturing of
   one mother code are not implemented.
2. **Syndrome.** Alice sends ``s = H·x`` for the PEG code
   (:mod:`~diqkd.postproc._ldpc_codes`) in a
   :class:`~diqkd.postproc.messages.SyndromeMessage` (``m`` bits disclosed); the public
   ``code_id`` names ``(n, m, seed)``, from which Bob rebuilds ``H``.
3. **Decoding.** Bob runs sum-product belief propagation
   (:mod:`~diqkd.postproc._ldpc_kernels`) and stops when ``H·x̂ = s``.
4. **Blind fallback** (Martinez-Mateo, Elkouss, Martin, "Blind reconciliation", QIC 12, 791
   (2012), in its shortening form): on failure Bob asks for ``d = ⌈reveal_fraction·m⌉`` more
   key bits at positions taken in a public pseudo-random order
   (:class:`~diqkd.postproc.messages.RevealRequest`); Alice reveals them
   (:class:`~diqkd.postproc.messages.RevealReply`, ``d`` bits disclosed); Bob decodes again
   with those bits known; at most ``max_reveals`` times. Then :class:`Done`.

Leak: ``m`` syndrome bits plus every revealed bit, each counted once in the
:class:`~diqkd.postproc.ledger.LeakLedger` (the messages' ``disclosed_bits``). The revealed
positions stay in the key (their disclosure is in the leak). A converged frame satisfies the
syndrome but may, rarely, be a different word: a verification hash must follow. A frame that
never converges is reported (:attr:`LdpcBob.converged` false); :func:`run_ldpc` returns it and
:func:`diqkd.postproc.reconcile.reconcile` aborts on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from diqkd.errors import ProtocolAbort
from diqkd.postproc._ldpc_codes import LdpcCode, build_code, parse_code_id, syndrome
from diqkd.postproc._ldpc_kernels import Schedule, channel_llr, decode
from diqkd.postproc.cascade import AliceRole, as_key_bits
from diqkd.postproc.ledger import LeakLedger
from diqkd.postproc.messages import (
    Done,
    ReconciliationError,
    ReconciliationMessage,
    RevealReply,
    RevealRequest,
    SyndromeMessage,
)

__all__ = [
    "DEFAULT_EFFICIENCY",
    "RATE_LADDER_RATIO",
    "LdpcAlice",
    "LdpcBob",
    "LdpcRun",
    "choose_syndrome_length",
    "run_ldpc",
]

#: Target efficiency f₀ of the first syndrome (measured, n = 10⁴, QBER 2–5 %: FER ≲ 10 %).
DEFAULT_EFFICIENCY = 1.2
#: Ratio between successive syndrome lengths of the rate ladder (≤ 2 % rounding overhead).
RATE_LADDER_RATIO = 1.02
#: Smallest QBER used to size the syndrome (an estimate of 0 still needs some checks).
QBER_FLOOR = 1e-3


def _h(p: float) -> float:
    return -p * math.log2(p) - (1.0 - p) * math.log2(1.0 - p)


def _check_qber(qber: float) -> float:
    q = float(qber)
    if not math.isfinite(q) or not 0.0 <= q < 0.5:
        raise ReconciliationError(
            f"QBER estimate must be a finite number in [0, 0.5), got {qber!r}: "
            "at 50 % errors the keys are uncorrelated and cannot be reconciled"
        )
    return max(q, QBER_FLOOR)


def choose_syndrome_length(n_bits: int, qber: float, efficiency: float = DEFAULT_EFFICIENCY) -> int:
    """Syndrome length ``m``: the smallest ladder rung ``⌈n·0.005·1.02ᵏ⌉ ≥ f₀·n·h(Q)``.

    Parameters
    ----------
    n_bits
        Frame length ``n``.
    qber
        QBER estimate in ``[0, 0.5)`` (floored at :data:`QBER_FLOOR`).
    efficiency
        Target ``f₀ ≥ 1`` (``f = m/(n·h(Q))``, SCIENCE.md).

    Raises
    ------
    ReconciliationError
        If ``f₀ < 1`` or the QBER needs more than ``n/2`` checks (this family has rate ≥ ½).
    """
    q = _check_qber(qber)
    if not math.isfinite(efficiency) or efficiency < 1.0:
        raise ReconciliationError(
            f"target efficiency must be ≥ 1 (Shannon limit), got {efficiency}"
        )
    need = efficiency * n_bits * _h(q)
    k = max(0, math.ceil(math.log(need / (0.005 * n_bits)) / math.log(RATE_LADDER_RATIO)))
    m = math.ceil(n_bits * 0.005 * RATE_LADDER_RATIO**k)
    while m < need:  # guard against rounding in the logarithm
        k += 1
        m = math.ceil(n_bits * 0.005 * RATE_LADDER_RATIO**k)
    if m > n_bits // 2:
        raise ReconciliationError(
            f"QBER {qber:.3f} with f₀ = {efficiency} needs {m} > n/2 syndrome bits: this LDPC "
            "family has rate ≥ ½; use method='cascade'"
        )
    return max(m, 2)


class LdpcAlice:
    """Alice's side: sends the syndrome of her key, then reveals bits Bob asks for.

    Parameters
    ----------
    key_bits
        Alice's key, shape (n,), values 0/1 (n ≥ 8).
    qber_estimate
        The public QBER estimate; fixes the code rate (:func:`choose_syndrome_length`).
    efficiency
        Target efficiency ``f₀`` of the first syndrome.
    code_seed
        Public seed of the PEG construction, ``[0, 2⁶³)``.
    """

    def __init__(
        self,
        key_bits: ArrayLike,
        qber_estimate: float,
        *,
        efficiency: float = DEFAULT_EFFICIENCY,
        code_seed: int = 0,
    ) -> None:
        self._bits = as_key_bits(key_bits, "Alice's key")
        m = choose_syndrome_length(self._bits.size, qber_estimate, efficiency)
        self._code: LdpcCode = build_code(int(self._bits.size), m, int(code_seed))
        self._finished = False
        self._sent = False

    @property
    def finished(self) -> bool:
        """Whether Bob has said :class:`Done`."""
        return self._finished

    @property
    def code(self) -> LdpcCode:
        """The public code Alice uses."""
        return self._code

    def first_message(self) -> SyndromeMessage:
        """The syndrome of Alice's key (``m`` bits disclosed)."""
        if self._sent:
            raise ProtocolAbort("Alice sends her syndrome once per session")
        self._sent = True
        return SyndromeMessage(
            code_id=self._code.code_id, syndrome=syndrome(self._code, self._bits)
        )

    def handle(self, message: ReconciliationMessage) -> ReconciliationMessage | None:
        """Answer a :class:`RevealRequest`; ``None`` after :class:`Done`."""
        if self._finished:
            raise ProtocolAbort(f"{message.kind} after Done: abort the session")
        if isinstance(message, Done):
            self._finished = True
            return None
        if isinstance(message, RevealRequest):
            if message.indices.size and message.indices[-1] >= self._bits.size:
                raise ProtocolAbort("RevealRequest names a position beyond Alice's frame")
            return RevealReply(bits=self._bits[message.indices])
        raise ProtocolAbort(f"Alice cannot answer a {message.kind} in LDPC: abort the session")


class LdpcBob:
    """Bob's side: decodes Alice's key from her syndrome, asks for reveals on failure.

    Parameters
    ----------
    key_bits
        Bob's key, shape (n,), values 0/1.
    qber_estimate
        QBER estimate in ``[0, 0.5)`` for the prior LLRs (floored at :data:`QBER_FLOOR`).
    max_reveals
        Most reveal rounds after a failed decoding (0: one-shot).
    reveal_fraction
        Bits revealed per round, as a fraction of the syndrome length ``m``.
    max_iterations
        Belief-propagation iteration cap per decoding.
    schedule
        Decoder (``"layered"`` numba default; ``"flooding"``; ``"flooding-numpy"`` reference).
    """

    def __init__(
        self,
        key_bits: ArrayLike,
        qber_estimate: float,
        *,
        max_reveals: int = 8,
        reveal_fraction: float = 0.05,
        max_iterations: int = 100,
        schedule: Schedule = "layered",
    ) -> None:
        self._bits = as_key_bits(key_bits, "Bob's key")
        self._qber = _check_qber(qber_estimate)
        if isinstance(max_reveals, bool) or not isinstance(max_reveals, int) or max_reveals < 0:
            raise ReconciliationError(
                f"max_reveals must be a non-negative int, got {max_reveals!r}"
            )
        if not 0.0 < reveal_fraction <= 1.0:
            raise ReconciliationError(f"reveal_fraction must lie in (0, 1], got {reveal_fraction}")
        if max_iterations < 1:
            raise ReconciliationError(f"max_iterations must be ≥ 1, got {max_iterations}")
        self._max_reveals = int(max_reveals)
        self._reveal_fraction = float(reveal_fraction)
        self._max_iterations = int(max_iterations)
        self._schedule: Schedule = schedule
        self._code: LdpcCode | None = None
        self._syndrome = np.zeros(0, dtype=np.uint8)
        self._order = np.zeros(0, dtype=np.int64)
        self._revealed_idx = np.zeros(0, dtype=np.int64)
        self._revealed_bits = np.zeros(0, dtype=np.uint8)
        self._pending = np.zeros(0, dtype=np.int64)
        self._corrected = self._bits.copy()
        self._converged = False
        self._done = False
        self._reveal_rounds = 0
        self._iterations = 0

    @property
    def converged(self) -> bool:
        """Whether the last decoding satisfied Alice's syndrome."""
        return self._converged

    @property
    def done(self) -> bool:
        """Whether Bob has sent :class:`Done`."""
        return self._done

    @property
    def reveal_rounds(self) -> int:
        """Reveal round trips used."""
        return self._reveal_rounds

    @property
    def revealed_bits(self) -> int:
        """Key bits Alice revealed in this session."""
        return int(self._revealed_idx.size)

    @property
    def iterations(self) -> int:
        """Belief-propagation iterations, all decodings together."""
        return self._iterations

    @property
    def corrected_key(self) -> NDArray[np.uint8]:
        """Bob's key after decoding (read-only copy); his own key if nothing converged."""
        out = self._corrected.copy()
        out.flags.writeable = False
        return out

    def handle(self, message: ReconciliationMessage) -> RevealRequest | Done:
        """Take Alice's syndrome or reveal; return the next request or :class:`Done`."""
        if self._done:
            raise ProtocolAbort(f"{message.kind} after Done: abort the session")
        if isinstance(message, SyndromeMessage):
            self._start(message)
        elif isinstance(message, RevealReply):
            self._absorb(message)
        else:
            raise ProtocolAbort(f"Bob cannot take a {message.kind} in LDPC: abort the session")
        return self._decode_and_next()

    def _start(self, message: SyndromeMessage) -> None:
        if self._code is not None:
            raise ProtocolAbort("a second SyndromeMessage in one session: abort the session")
        try:
            n, m, seed = parse_code_id(message.code_id)
        except ReconciliationError as exc:
            raise ProtocolAbort(f"bad code in SyndromeMessage: {exc}") from exc
        if n != self._bits.size or message.syndrome.size != m:
            raise ProtocolAbort(
                f"Alice's code is for {n} bits with {m} checks, Bob holds {self._bits.size} bits "
                f"and got {message.syndrome.size} syndrome bits: re-sift and start again"
            )
        self._code = build_code(n, m, seed)
        self._syndrome = np.array(message.syndrome, dtype=np.uint8)
        public = np.random.SeedSequence([seed, n, m, 0xB11D])
        self._order = np.random.default_rng(public).permutation(n).astype(np.int64)

    def _absorb(self, message: RevealReply) -> None:
        if message.bits.size != self._pending.size or self._pending.size == 0:
            raise ProtocolAbort(
                f"Alice revealed {message.bits.size} bits, {self._pending.size} were asked for"
            )
        self._revealed_idx = np.concatenate([self._revealed_idx, self._pending])
        self._revealed_bits = np.concatenate([self._revealed_bits, message.bits])
        self._pending = np.zeros(0, dtype=np.int64)

    def _decode_and_next(self) -> RevealRequest | Done:
        code = self._code
        if code is None:
            raise ProtocolAbort("RevealReply before SyndromeMessage: abort the session")
        prior = channel_llr(self._bits, self._qber, self._revealed_idx, self._revealed_bits)
        hard, ok, iterations, _ = decode(
            code.check_ptr,
            code.check_var,
            self._syndrome,
            prior,
            max_iterations=self._max_iterations,
            schedule=self._schedule,
        )
        self._iterations += iterations
        self._converged = ok
        if ok:
            self._corrected = hard
        used = self._revealed_idx.size
        d = math.ceil(self._reveal_fraction * code.m)
        if ok or self._reveal_rounds >= self._max_reveals or used >= code.n:
            self._done = True
            return Done()
        self._reveal_rounds += 1
        self._pending = np.sort(self._order[used : used + d])
        return RevealRequest(indices=self._pending)


@dataclass(frozen=True)
class LdpcRun:
    """What :func:`run_ldpc` counted itself, independently of the ledger.

    Attributes
    ----------
    rounds
        Round trips (the syndrome and Bob's answer count one; each reveal one more).
    messages
        Messages that crossed (both directions, ``Done`` included).
    disclosed_bits
        Sum of ``disclosed_bits`` over the messages that crossed.
    converged
        Whether Bob's final decoding satisfied Alice's syndrome.
    """

    rounds: int
    messages: int
    disclosed_bits: int
    converged: bool


def run_ldpc(
    alice: LdpcAlice | AliceRole,
    bob: LdpcBob,
    ledger: LeakLedger,
    *,
    through_bytes: bool = False,
) -> LdpcRun:
    """Route LDPC reconciliation's messages between the parties until Bob says :class:`Done`.

    Parameters
    ----------
    alice, bob
        The two parties; they meet only here.
    ledger
        Every message is recorded in it as it crosses.
    through_bytes
        If true, each message is delivered as ``decode_message(message.to_bytes())``.
    """
    if not isinstance(alice, LdpcAlice):
        raise ReconciliationError("run_ldpc needs an LdpcAlice (she opens with the syndrome)")

    rounds = messages = disclosed = 0
    reply: ReconciliationMessage | None = alice.first_message()
    while True:
        if reply is None:
            raise ProtocolAbort("Alice did not answer a request: abort the session")
        delivered = ledger.cross(reply, through_bytes=through_bytes)
        messages += 1
        disclosed += reply.disclosed_bits
        request = bob.handle(delivered)
        rounds += 1
        delivered = ledger.cross(request, through_bytes=through_bytes)
        messages += 1
        disclosed += request.disclosed_bits
        reply = alice.handle(delivered)
        if isinstance(request, Done):
            if reply is not None:
                raise ProtocolAbort("Alice answered Done: abort the session")
            return LdpcRun(
                rounds=rounds, messages=messages, disclosed_bits=disclosed, converged=bob.converged
            )
