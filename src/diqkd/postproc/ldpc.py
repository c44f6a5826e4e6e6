"""Rate-adaptive, blind LDPC reconciliation as two parties that only exchange messages.

Protocol (Alice holds the reference key ``x``, Bob ``y = x ⊕ e``; both know the public QBER
estimate ``Q̂``):

1. **Rate adaptation** (Elkouss, Martinez-Mateo, Martin, QIC 11, 226 (2011), Sec. 3.1): both
   parties compute the target leak ``L = ⌈f₀·n·h(Q̂)⌉`` (:func:`choose_code`,
   :func:`default_efficiency`), take the
   highest-rate mother code of the family (:mod:`~diqkd.postproc._ldpc_codes`, degree
   distributions of Elkouss et al., ISIT 2009, Table I) with ``M ≥ L`` checks, and puncture
   ``p = M − L`` of its special symbols (the other ``d − p`` are shortened to 0). Alice
   picks the code family (``family``): the random graphs (default) or their quasi-cyclic
   lifts (``"qc"``, :mod:`~diqkd.postproc._ldpc_qc`: about the same leak, decoded 2–4 times
   faster; some lifts have short cycles of degree-2 variables and leak more,
   benchmarks/README.md, "Wrong words"); the code name tells Bob which. She also picks the
   operating point (``start``): ``"efficient"`` (default, the least leak) or ``"fast"``
   (first syndrome at ``f₀ ≥`` :data:`FAST_START_EFFICIENCY`, where frames decode at once in
   ≈ 25 iterations).
2. **Syndrome.** Alice places her key in the codeword, sets each punctured symbol to the parity
   of the key bits of its anchor check and sends the ``M − p`` syndrome bits of the other
   checks (:class:`~diqkd.postproc.messages.SyndromeMessage`; the anchors' bits are 0 by
   construction). ``code_id`` names ``(n, R₀, seed, p)``. When it costs at most
   :data:`CHECK_MAX_SHARE` of the syndrome she adds a decoding check: a fresh GHASH key and
   the 32-bit :func:`~diqkd.postproc.verify.check_tag` of her key (32 bits of leak).
3. **Decoding.** Bob runs layered sum-product BP (:mod:`~diqkd.postproc._ldpc_kernels`) with
   early termination, escapes small trapping sets locally (:func:`_escape`), and refuses a
   word that satisfies the syndrome but fails the check (:func:`_rescue` searches on).
4. **Blind steps** (Martinez-Mateo, Elkouss, Martin, "Blind reconciliation", QIC 12, 791
   (2012)): while decoding fails Bob asks for ``Δ = ⌈reveal_fraction·L⌉`` more values
   (:class:`~diqkd.postproc.messages.RevealRequest`, codeword positions): first punctured
   symbols (which turns them into shortened ones), then, when none is left, key bits in a
   public pseudo-random order, in steps growing by :data:`KEY_STEP_GROWTH` per round; Alice
   reveals them (:class:`~diqkd.postproc.messages.RevealReply`, one bit each) and Bob resumes
   the same decoding with those symbols known (warm start), at
   most ``max_reveals`` times. Then :class:`~diqkd.postproc.messages.Done`.

Leak (every bit in the :class:`~diqkd.postproc.ledger.LeakLedger`): ``M − p`` syndrome bits
(and the check tag) plus every revealed bit, ``leak = m − p + t`` as in blind reconciliation
(Martinez-Mateo et al. 2012: ``p`` punctured symbols, ``t`` of them revealed).
The efficiency is ``f = leak/(n·h(Q))``. A converged frame satisfies the syndrome (and the
check) but may, very rarely, be another word: the verification hash must follow. A frame
that never converges is reported (:attr:`LdpcBob.converged` false);
:func:`diqkd.postproc.reconcile.reconcile` aborts.
"""

from __future__ import annotations

import functools
import hmac
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from diqkd.errors import ProtocolAbort
from diqkd.postproc._entropy import binary_entropy
from diqkd.postproc._ldpc_codes import (
    CODE_FAMILIES,
    FAMILY,
    FOREST_RUNGS,
    LADDER_TOP,
    MOTHER_RATES,
    CodeFamily,
    MotherCode,
    build_code,
    is_forest,
    ladder,
    parse_code_id,
)
from diqkd.postproc._ldpc_kernels import (
    KNOWN_LLR,
    Backend,
    DecoderLayout,
    LayeredDecoder,
    bsc_llr,
    prepare_layout,
)
from diqkd.postproc._ldpc_qc import QcDecoder, QcStructure, qc_structure
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
from diqkd.postproc.verify import CHECK_TAG_BITS, check_tag
from diqkd.rng import secret_bytes

__all__ = [
    "BLIND_ROOM",
    "CHECK_MAX_SHARE",
    "DEFAULT_EFFICIENCY",
    "FAST_START_ABOVE",
    "FAST_START_EFFICIENCY",
    "FINITE_LENGTH_STEP",
    "FOREST_START_BELOW",
    "FOREST_START_TARGET",
    "KEY_STEP_GROWTH",
    "LDPC_STARTS",
    "PIN_ITERATIONS",
    "PIN_LLR",
    "PIN_MARGIN_BITS",
    "PIN_MAX_TRIALS",
    "PIN_MAX_UNSATISFIED",
    "PIN_PATIENCE",
    "QBER_FLOOR",
    "LdpcAlice",
    "LdpcBob",
    "LdpcRun",
    "LdpcStart",
    "check_start",
    "choose_code",
    "default_efficiency",
    "run_ldpc",
]

#: Target efficiency ``f₀`` of the first syndrome at ``n ≥ 10⁶`` (blind steps add to it).
DEFAULT_EFFICIENCY = 1.03
#: Punctured values kept in reserve for blind steps, as a fraction of the first syndrome
#: (0.10 before: every punctured symbol still unknown when decoding succeeds lowers the
#: threshold, Ha, Kim, McLaughlin, IEEE TIT 50, 2824 (2004); the blind steps seldom need more).
BLIND_ROOM = 0.05
#: Growth factor of the blind step once the punctured values are used up and key bits are
#: revealed (each costs a full bit but removes only ``h(Q)`` of uncertainty: a QBER estimate
#: far too low should end in few rounds, not many).
KEY_STEP_GROWTH = 1.5
#: From :data:`~diqkd.postproc._ldpc_codes.FOREST_MIN_KEY_BITS` key bits ``f₀`` is the
#: threshold efficiency of the rung's own ensemble (:data:`~diqkd.postproc._ldpc_codes.
#: FOREST_RUNGS`) less this, at least :data:`DEFAULT_EFFICIENCY`: measured at 10⁶ (6 frames
#: per seed) the 2 % rung of the 0.84 global design (``f*`` 1.032) gave 1.061 starting at
#: 1.055 (half the frames stopped at the first syndrome) and 1.047–1.048 starting at 1.03.
FOREST_START_BELOW = 0.01
#: From :data:`~diqkd.postproc._ldpc_codes.FOREST_MIN_KEY_BITS` key bits ``f₀`` moves up to
#: this where the rung's threshold ``f*_k`` allows it (at most ``f*_k +``
#: :data:`FOREST_START_BELOW`): a first syndrome below every frame's own threshold fails
#: anyway and only costs a decoding attempt (BP iterations), while the leak of a blind
#: session is set by where the frame decodes on the grid of blind steps. Measured at 10⁶
#: (2026-12-07, paired frames, 12–16 per QBER, ``f`` then iterations per frame): 1.03 → 1.04
#: gave 2 % 1.0477 → 1.0477, 197 → 143; 3 % +0.0013 ± 0.0009, 206 → 147; 5 % (from 1.0318)
#: +0.0007 ± 0.0013, 171 → 131; 8 % 1.0434 → 1.0434, 170 → 113; at 10 % (``f*_k`` 1.018)
#: every frame decodes at 1.03, so the cap ``f*_k + 0.01`` keeps it there
#: (benchmarks/README.md, "Where the first syndrome starts").
FOREST_START_TARGET = 1.04
#: Added to ``f₀`` per decade of ``n`` below 10⁶ (:func:`default_efficiency`). It was 0.04
#: (above where a typical frame decodes at 10⁵); at 0.02 the first syndrome sits about 1 %
#: below that, so that the better frames stop early: measured at 10⁵ (40 frames each, blind
#: step 0.01·n·h(Q)), f = 1.106 → 1.092 at QBER 2 %, 1.077 → 1.069 at 3 %, 1.072 at 5 %
#: (unchanged), for 1.6–2.2 blind steps instead of 0.2–1.0 (benchmarks/README.md).
FINITE_LENGTH_STEP = 0.02
#: Bob's trapping-set escape (:meth:`~diqkd.postproc._ldpc_kernels.LayeredDecoder.pin`): tried
#: when a decoding attempt stalls with at most this many unsatisfied checks. Such a stall is a
#: small trapping set, not a lack of information: measured at ``n = 10⁶``, QBER 2 %, a frame
#: stalled at 5 wrong bits (4 of degree 2 on a path closed by one of degree 3) and 1
#: unsatisfied check through 5 blind steps (f 1.05 → 1.10); pinning the second-least reliable
#: variable of that check decoded it in 1.5 s, without a blind step.
PIN_MAX_UNSATISFIED = 8
#: At most this many trials (the least reliable variables near the unsatisfied checks first).
PIN_MAX_TRIALS = 24
#: The escape's candidates: unknown variables with ``|posterior| <`` this, reached from the
#: unsatisfied checks through at most :data:`PIN_DEPTH` variables of that kind (a path of
#: unreliable variables). Measured at 10⁶, QBER 2 % (seed 11, frame 166): a stall with one
#: unsatisfied check and 6 wrong bits (a path of 5 degree-2 variables from that check to a
#: degree-3 one closing a cycle); pinning the one wrong variable on the check left the other 5
#: and the stall, pinning the variable two steps along the path (``|post|`` 11.6) decoded the
#: frame in 4 iterations. With only the check's own variables as candidates the frame took 14
#: blind steps, f = 1.42.
PIN_NEAR_LLR = 20.0
PIN_DEPTH = 4
#: LLR pushed against a trial variable's hard decision, and the iterations of each trial.
PIN_LLR = 40.0
PIN_ITERATIONS = 30
PIN_PATIENCE = 8
#: The escape keeps its likeliest word only if every other word it found disagrees with Bob's
#: key in at least this many more positions (posterior odds ``((1 − Q)/Q)⁻²``: ≈ 10⁻⁴ at 1 %);
#: a tie (the case measured at 1 %) leaves the decision to the blind steps.
PIN_MARGIN_BITS = 2
#: Smallest QBER used to size the syndrome and the priors.
QBER_FLOOR = 1e-3
#: Alice adds a :data:`~diqkd.postproc.verify.CHECK_TAG_BITS`-bit decoding check to her
#: syndrome when it costs at most this share of the syndrome (from ≈ 6400 syndrome bits on:
#: ``n ≳ 4·10⁴`` at 2 %). Why: the codes with more degree-2 variables than checks have
#: codewords on the cycles of their degree-2 graph, and at 2 % about one frame in 60 of the
#: rate-0.84 design converged to such a word (benchmarks/README.md, "An error floor at 2 %").
#: With the check Bob sees it at once and searches on (:func:`_rescue`), and his trapping-set
#: escape takes the word the check accepts instead of deferring ties to blind steps.
CHECK_MAX_SHARE = 0.005


#: The operating point of the first syndrome: ``"efficient"`` (the least leak; frames near
#: the threshold take blind steps and 100–200 iterations) or ``"fast"`` (throughput: ``f₀`` well
#: above the threshold, frames decode at once in ≈ 25 iterations; :func:`default_efficiency`).
LdpcStart = Literal["efficient", "fast"]
LDPC_STARTS: tuple[LdpcStart, ...] = ("efficient", "fast")
#: Least target efficiency ``f₀`` of the first syndrome at the ``"fast"`` operating point
#: (at 10⁶ and QBER 3 % with the QC codes: ≈ 24 iterations at 1.15, 27–35 at 1.12, 35 at 1.10;
#: benchmarks/README.md).
FAST_START_EFFICIENCY = 1.15
#: The ``"fast"`` ``f₀`` is at least this far above the ``"efficient"`` one.
FAST_START_ABOVE = 0.1


def _check_qber(qber: float) -> float:
    q = float(qber)
    if not math.isfinite(q) or not 0.0 <= q < 0.5:
        raise ReconciliationError(
            f"QBER estimate must be a finite number in [0, 0.5), got {qber!r}: "
            "at 50 % errors the keys are uncorrelated and cannot be reconciled"
        )
    return max(q, QBER_FLOOR)


def check_start(start: str) -> LdpcStart:
    """``start`` as an :data:`LdpcStart`; anything else raises :class:`ReconciliationError`."""
    if start not in LDPC_STARTS:
        raise ReconciliationError(f"unknown LDPC start {start!r}: use 'efficient' or 'fast'")
    return start


def default_efficiency(
    n_key: int, qber: float | None = None, start: LdpcStart = "efficient"
) -> float:
    """First-syndrome target ``f₀ = max(1.03, f*(Q) − 0.005) + 0.02·clip(log₁₀(10⁶/n), 0, 2)``.

    ``f*(Q)`` is the threshold efficiency ``(1 − R)/h(p*_R)`` of the family
    (:data:`~diqkd.postproc._ldpc_codes.FAMILY`; ``p*`` by density evolution) at the design
    rates bracketing ``1 − 1.03·h(Q)``, the smaller of the two (the rung the ladder picks
    uses the one nearest its own rate); without ``qber`` it is not used (``f₀ = 1.03`` at
    ``n ≥ 10⁶``). The finite-length term (:data:`FINITE_LENGTH_STEP` per decade) is measured,
    not derived: BP on these codes succeeds about 2 % above ``f*`` at ``n = 10⁶`` and 3–4 % at
    ``10⁵``, with a frame-to-frame spread of several percent at ``10⁵`` (benchmarks/README.md);
    the first syndrome sits about 1 % below the typical frame, so that the better frames stop
    there and the others take a few blind steps (each costing ``patience`` iterations). For the
    high rates (QBER ≲ 2 %) ``f*`` is itself above 1.03 (1.06 at rate 0.85, 1.12 at 0.9):
    starting there keeps the punctured reserve for the blind steps instead of spending it
    below the threshold. From :data:`~diqkd.postproc._ldpc_codes.FOREST_MIN_KEY_BITS` key bits
    each rung has its own ensemble, and ``f₀ = max(1.03, f*_k − δ, min(1.04, f*_k + δ))``
    (``δ =`` :data:`FOREST_START_BELOW` ``= 0.01``, 1.04 = :data:`FOREST_START_TARGET`) with
    ``f*_k`` the threshold efficiency of the rung ``k`` a 1.03 target picks
    (:data:`~diqkd.postproc._ldpc_codes.FOREST_RUNGS`): at 10⁶ the frames of QBER 2–8 % seldom
    decode below 1.04, and a first syndrome below that costs iterations, not leak.

    Both code families share the degree distributions, so the same ``f₀`` serves both
    (measured at 10⁶: the QC codes end near the random codes' ``f`` at QBER 1–10 %, and at
    1.030–1.069 over 3000 frames per cell at 1, 2, 5, 8 and 10 %; benchmarks/README.md, "Every
    10⁶ cell on the codes of today").
    With ``start="fast"`` it is ``max(``:data:`FAST_START_EFFICIENCY`,
    ``f₀ + ``:data:`FAST_START_ABOVE```)``: the throughput point, whose first syndrome sits
    well above the threshold so that frames decode at once in few iterations.
    """
    if check_start(start) == "fast":
        return max(FAST_START_EFFICIENCY, default_efficiency(n_key, qber) + FAST_START_ABOVE)
    base = DEFAULT_EFFICIENCY
    if qber is not None and is_forest(n_key):
        # the rung the 1.03 target picks, and the threshold of the ensemble it builds
        k, _ = choose_code(n_key, qber, DEFAULT_EFFICIENCY)
        f_k = FOREST_RUNGS[k][2]
        toward = min(FOREST_START_TARGET, f_k + FOREST_START_BELOW)
        return max(base, f_k - FOREST_START_BELOW, toward)
    if qber is not None:
        q = _check_qber(qber)
        rate = 1.0 - DEFAULT_EFFICIENCY * binary_entropy(q)
        below = [r for r in MOTHER_RATES if r <= rate] or [MOTHER_RATES[0]]
        above = [r for r in MOTHER_RATES if r >= rate] or [MOTHER_RATES[-1]]
        f_star = min(
            FAMILY[max(below)].threshold_efficiency(), FAMILY[min(above)].threshold_efficiency()
        )
        base = max(base, f_star - 0.005)
    return base + FINITE_LENGTH_STEP * min(max(math.log10(1e6 / n_key), 0.0), 2.0)


def choose_code(
    n_key: int,
    qber: float,
    efficiency: float | None = None,
    blind_room: float = BLIND_ROOM,
    start: LdpcStart = "efficient",
) -> tuple[int, int]:
    """Ladder rung ``k`` and punctured count ``p`` for ``n_key`` bits at QBER ``qber``.

    ``L = ⌈f₀·n·h(Q)⌉`` is the target syndrome length (``h``: Shannon 1948); the rung is the
    lowest with ``M_k ≥ (1 + blind_room)·L`` and ``p = min(M_k − L, d_k)`` specials are
    punctured (rate ``R = (R₀ − σ)/(1 − π − σ)``: Elkouss et al., QIC 11, 226 (2011),
    Eqs. (3) and (6)), so that the first syndrome
    discloses ``L`` bits and at least ``blind_room·L`` punctured values remain for blind
    steps (``start`` only picks the default ``f₀``). The code may allow fewer punctured symbols
    (:attr:`~diqkd.postproc._ldpc_codes.MotherCode.n_puncturable`); then the parties use that
    many.

    Raises
    ------
    ReconciliationError
        If ``f₀ < 1`` or the QBER needs more checks than the top rung has (use Cascade).
    """
    q = _check_qber(qber)
    if efficiency is None:
        efficiency = default_efficiency(n_key, q, start)
    if not math.isfinite(efficiency) or efficiency < 1.0:
        raise ReconciliationError(
            f"target efficiency must be ≥ 1 (Shannon limit), got {efficiency}"
        )
    need = math.ceil(efficiency * n_key * binary_entropy(q))
    for k in range(LADDER_TOP + 1):
        m, d, _ = ladder(n_key, k)
        if m >= (1.0 + blind_room) * need:
            return k, min(m - need, d)
    raise ReconciliationError(
        f"QBER {qber:.3f} with f₀ = {efficiency} needs {need} syndrome bits for {n_key} key "
        "bits: beyond the rate-½ codes of this family; use method='cascade'"
    )


@functools.lru_cache(maxsize=12)
def _layout(code: MotherCode) -> DecoderLayout:
    """The decoder's schedule for ``code``, prepared once per code (≈ 0.2 s at 10⁶)."""
    return prepare_layout(code.check_ptr, code.check_var)


@functools.lru_cache(maxsize=12)
def _structure(code: MotherCode) -> QcStructure:
    """The base graph of a QC code, read back from ``H`` and checked (≈ 0.1 s at 10⁶)."""
    return qc_structure(code.check_ptr, code.check_var, code.lift, code.n)


def _decoder(
    code: MotherCode, syndrome: NDArray[np.uint8], prior: NDArray[np.float32], backend: Backend
) -> LayeredDecoder:
    """The family's decoder: the ratio-domain QC kernel for a lift, else the coloured one."""
    if code.lift:
        return QcDecoder(_structure(code), code.check_ptr, code.check_var, syndrome, prior, backend)
    return LayeredDecoder(
        code.check_ptr, code.check_var, syndrome, prior, backend=backend, layout=_layout(code)
    )


class LdpcAlice:
    """Alice's side: sends the syndrome of her key, then reveals the values Bob asks for.

    Parameters
    ----------
    key_bits
        Alice's key, shape (n,), values 0/1 (8 ≤ n ≤ 4·10⁶; LDPC pays off from n ≈ 10⁴).
    qber_estimate
        The public QBER estimate; fixes the code and its puncturing (:func:`choose_code`).
    efficiency
        Target efficiency ``f₀`` of the first syndrome (default :func:`default_efficiency`).
    code_seed
        Public seed of the code construction, ``[0, 2⁶³)``.
    check
        Whether to send a decoding check (a :data:`~diqkd.postproc.verify.CHECK_TAG_BITS`-bit
        :func:`~diqkd.postproc.verify.check_tag` of the key under a fresh key from the OS
        CSPRNG) with the syndrome; ``None`` (default): when it costs at most
        :data:`CHECK_MAX_SHARE` of the syndrome.
    family
        Code family (:data:`~diqkd.postproc._ldpc_codes.CodeFamily`): ``"random"`` (default)
        or ``"qc"`` (quasi-cyclic, from 65 536 key bits: about the same leak, decoded 2–4 times
        faster). Bob follows the code name.
    start
        Operating point (:data:`LdpcStart`) of the default ``f₀``: ``"efficient"`` (default)
        or ``"fast"`` (``f₀ ≥`` :data:`FAST_START_EFFICIENCY`: ≈ 10 % more leak, frames decode
        at once). Ignored when ``efficiency`` is given.
    """

    def __init__(
        self,
        key_bits: ArrayLike,
        qber_estimate: float,
        *,
        efficiency: float | None = None,
        code_seed: int = 0,
        check: bool | None = None,
        family: CodeFamily = "random",
        start: LdpcStart = "efficient",
    ) -> None:
        bits = as_key_bits(key_bits, "Alice's key")
        if family not in CODE_FAMILIES:
            raise ReconciliationError(f"unknown code family {family!r}: use 'random' or 'qc'")
        check_start(start)
        rung, punctured = choose_code(int(bits.size), qber_estimate, efficiency, start=start)
        self._code: MotherCode = build_code(int(bits.size), rung, int(code_seed), family)
        # a QC code rounds the rung's checks up to whole base rows: puncture the surplus too,
        # so that the first syndrome discloses the same number of bits
        punctured += self._code.m - ladder(int(bits.size), rung)[0]
        self._punctured = min(punctured, self._code.n_puncturable)
        code = self._code
        word = np.zeros(code.n, dtype=np.uint8)
        word[code.key_positions] = bits
        anchors = code.anchors[: self._punctured]
        word[code.specials[: self._punctured]] = code.syndrome(word)[anchors]
        self._word = word
        keep = np.ones(code.m, dtype=bool)
        keep[anchors] = False
        self._syndrome = code.syndrome(word)[keep]
        if check is None:
            check = CHECK_MAX_SHARE * self._syndrome.size >= CHECK_TAG_BITS
        self._check_key = secret_bytes(16) if check else b""
        self._check_tag = check_tag(bits, self._check_key) if check else b""
        self._finished = False
        self._sent = False

    @property
    def finished(self) -> bool:
        """Whether Bob has said :class:`Done`."""
        return self._finished

    @property
    def code(self) -> MotherCode:
        """The public mother code Alice uses."""
        return self._code

    @property
    def punctured(self) -> int:
        """Punctured specials in this session."""
        return self._punctured

    def first_message(self) -> SyndromeMessage:
        """The syndrome of Alice's codeword without the anchor checks (``M − p`` bits)."""
        if self._sent:
            raise ProtocolAbort("Alice sends her syndrome once per session")
        self._sent = True
        return SyndromeMessage(
            code_id=self._code.code_id(self._punctured),
            syndrome=self._syndrome,
            check_key=self._check_key,
            check_tag=self._check_tag,
        )

    def handle(self, message: ReconciliationMessage) -> ReconciliationMessage | None:
        """Answer a :class:`RevealRequest`; ``None`` after :class:`Done`."""
        if self._finished:
            raise ProtocolAbort(f"{message.kind} after Done: abort the session")
        if isinstance(message, Done):
            self._finished = True
            return None
        if isinstance(message, RevealRequest):
            if message.indices.size and message.indices[-1] >= self._code.n:
                raise ProtocolAbort("RevealRequest names a position beyond Alice's codeword")
            return RevealReply(bits=self._word[message.indices])
        raise ProtocolAbort(f"Alice cannot answer a {message.kind} in LDPC: abort the session")


class LdpcBob:
    """Bob's side: decodes Alice's key from her syndrome, asks for blind reveals on failure.

    Parameters
    ----------
    key_bits
        Bob's key, shape (n,), values 0/1.
    qber_estimate
        QBER estimate in ``[0, 0.5)`` for the prior LLRs (floored at :data:`QBER_FLOOR`).
    max_reveals
        Most blind steps after a failed decoding (0: one-shot).
    reveal_fraction
        Values revealed per step, as a fraction of the target leak ``n·h(Q̂)``.
    max_iterations
        Belief-propagation iteration cap per decoding attempt.
    patience
        Stop an attempt after this many iterations without fewer unsatisfied checks.
    max_efficiency
        Give up (report failure) rather than let the disclosed bits exceed
        ``max_efficiency·n·h(Q̂)``: a QBER far above the estimate ends the session instead of
        revealing the whole key.
    backend
        ``"numba"`` (default) or ``"numpy"`` (the reference decoder; same transcript).
    """

    def __init__(
        self,
        key_bits: ArrayLike,
        qber_estimate: float,
        *,
        max_reveals: int = 60,
        reveal_fraction: float = 0.01,
        max_iterations: int = 150,
        patience: int = 12,
        max_efficiency: float = 3.0,
        backend: Backend = "numba",
    ) -> None:
        self._bits = as_key_bits(key_bits, "Bob's key")
        self._qber = _check_qber(qber_estimate)
        if isinstance(max_reveals, bool) or not isinstance(max_reveals, int) or max_reveals < 0:
            raise ReconciliationError(
                f"max_reveals must be a non-negative int, got {max_reveals!r}"
            )
        if not 0.0 < reveal_fraction <= 1.0:
            raise ReconciliationError(f"reveal_fraction must lie in (0, 1], got {reveal_fraction}")
        if not max_efficiency >= 1.0:
            raise ReconciliationError(f"max_efficiency must be ≥ 1, got {max_efficiency}")
        if max_iterations < 1 or patience < 1:
            raise ReconciliationError(
                f"max_iterations and patience must be ≥ 1, got {max_iterations}, {patience}"
            )
        if backend not in ("numba", "numpy"):
            raise ReconciliationError(f"unknown backend {backend!r}: use 'numba' or 'numpy'")
        self._max_reveals = int(max_reveals)
        self._step = max(
            1, math.ceil(reveal_fraction * self._bits.size * binary_entropy(self._qber))
        )
        self._max_iterations = int(max_iterations)
        self._patience = int(patience)
        self._backend: Backend = backend
        self._code: MotherCode | None = None
        self._decoder: LayeredDecoder | None = None
        self._queue = np.zeros(0, dtype=np.int64)
        self._key_seed: tuple[int, int, int] | None = None
        self._pending = np.zeros(0, dtype=np.int64)
        self._corrected = self._bits.copy()
        self._converged = False
        self._first_ok = False
        self._done = False
        self._reveal_rounds = 0
        self._key_rounds = 0
        self._n_punctured = 0
        self._syndrome_bits = 0
        self._max_leak = max_efficiency * self._bits.size * binary_entropy(self._qber)
        self._revealed = 0
        self._check: tuple[bytes, bytes] | None = None
        self._wrong_words = 0

    @property
    def converged(self) -> bool:
        """Whether the last decoding satisfied Alice's syndrome."""
        return self._converged

    @property
    def converged_first(self) -> bool:
        """Whether the first decoding (before any blind step) converged."""
        return self._first_ok

    @property
    def done(self) -> bool:
        """Whether Bob has sent :class:`Done`."""
        return self._done

    @property
    def reveal_rounds(self) -> int:
        """Blind steps (reveal round trips) used."""
        return self._reveal_rounds

    @property
    def revealed_bits(self) -> int:
        """Values Alice revealed in this session."""
        return self._revealed

    @property
    def wrong_words(self) -> int:
        """Words that satisfied the syndrome but failed Alice's decoding check."""
        return self._wrong_words

    @property
    def iterations(self) -> int:
        """Belief-propagation iterations, all attempts together."""
        return 0 if self._decoder is None else self._decoder.iterations

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
            n_key, rung, seed, punctured, family = parse_code_id(message.code_id)
        except ReconciliationError as exc:
            raise ProtocolAbort(f"bad code in SyndromeMessage: {exc}") from exc
        if n_key != self._bits.size:
            raise ProtocolAbort(
                f"Alice's code is for {n_key} key bits, Bob holds {self._bits.size}: "
                "re-sift and start again"
            )
        code = build_code(n_key, rung, seed, family)
        if punctured > code.n_puncturable or message.syndrome.size != code.m - punctured:
            raise ProtocolAbort(
                f"SyndromeMessage has {message.syndrome.size} bits and {punctured} punctured "
                f"symbols; the code needs {code.m} − p bits with p ≤ {code.n_puncturable}"
            )
        keep = np.ones(code.m, dtype=bool)
        keep[code.anchors[:punctured]] = False
        full = np.zeros(code.m, dtype=np.uint8)
        full[keep] = message.syndrome
        prior = np.full(code.n, KNOWN_LLR, dtype=np.float32)
        prior[code.key_positions] = (1.0 - 2.0 * self._bits.astype(np.float32)) * np.float32(
            bsc_llr(self._qber)
        )
        prior[code.specials[:punctured]] = 0.0
        self._code = code
        self._decoder = _decoder(code, full, prior, self._backend)
        # what Bob asks for: punctured symbols (last punctured first), then key bits in a
        # public order, drawn only when the punctured ones run out (≈ 15 ms at 10⁶)
        self._queue = code.specials[:punctured][::-1].copy()
        self._key_seed = (seed, n_key, rung)
        self._n_punctured = punctured
        self._syndrome_bits = int(message.disclosed_bits)
        if message.check_tag:
            self._check = (message.check_key, message.check_tag)

    def _absorb(self, message: RevealReply) -> None:
        size = self._pending.size
        if self._decoder is None or message.bits.size != size or not size:
            raise ProtocolAbort(
                f"Alice revealed {message.bits.size} values, {self._pending.size} were asked for"
            )
        self._decoder.set_known(self._pending, message.bits)
        self._revealed += int(self._pending.size)
        self._pending = np.zeros(0, dtype=np.int64)

    def _decode_and_next(self) -> RevealRequest | Done:
        code, decoder = self._code, self._decoder
        if code is None or decoder is None:
            raise ProtocolAbort("RevealReply before SyndromeMessage: abort the session")
        accept = None if self._check is None else self._accepts
        ok = decoder.run(self._max_iterations, self._patience)
        if ok and accept is not None and not accept(decoder.hard()):
            self._wrong_words += 1
            ok = _rescue(decoder, accept)
        elif not ok:
            ok = _escape(code, decoder, self._qber, accept)
        self._converged = ok
        if self._reveal_rounds == 0:
            self._first_ok = ok
        if ok:
            self._corrected = decoder.hard()[code.key_positions]
        used = self._revealed
        step = self._step
        if used >= self._n_punctured:  # key bits now: grow the steps (×1.5 per round)
            step = math.ceil(step * KEY_STEP_GROWTH ** (self._key_rounds + 1))
        over_budget = self._syndrome_bits + used + step > self._max_leak
        if (
            ok
            or self._reveal_rounds >= self._max_reveals
            or used >= self._n_punctured + self._bits.size
            or over_budget
        ):
            self._done = True
            return Done()
        self._reveal_rounds += 1
        if used >= self._n_punctured:
            self._key_rounds += 1
        if used + step > self._queue.size and self._key_seed is not None:
            seed, n_key, rung = self._key_seed
            public = np.random.default_rng(np.random.SeedSequence([seed, n_key, rung, 0xB11D]))
            key_order = code.key_positions[public.permutation(n_key)]
            self._queue = np.concatenate([self._queue, key_order])
            self._key_seed = None
        self._pending = np.sort(self._queue[used : used + step])
        return RevealRequest(indices=self._pending)

    def _accepts(self, word: NDArray[np.uint8]) -> bool:
        """Whether a codeword's key bits pass Alice's decoding check (constant-time compare)."""
        if self._check is None or self._code is None:
            return True
        key, tag = self._check
        mine = check_tag(word[self._code.key_positions], key, tag_bits=8 * len(tag))
        return hmac.compare_digest(mine, tag)


def _rescue(decoder: LayeredDecoder, accept: Callable[[NDArray[np.uint8]], bool]) -> bool:
    """Bob's search after a word that satisfies the syndrome but fails the decoding check:
    pin the :data:`PIN_MAX_TRIALS` least reliable unknown variables in turn and keep the first
    word the check accepts; if none, forget the messages (:meth:`LayeredDecoder.restart`), so
    that the blind steps decode afresh instead of sitting on the wrong word."""
    reliability = np.abs(decoder.post)
    unknown = np.flatnonzero(reliability < KNOWN_LLR / 2)
    take = min(PIN_MAX_TRIALS, unknown.size)
    if take:
        near = unknown[np.argpartition(reliability[unknown], take - 1)[:take]]
        order = near[np.argsort(reliability[near], kind="stable")]
        if decoder.pin(order, PIN_LLR, PIN_ITERATIONS, PIN_PATIENCE, accept=accept):
            return True
    decoder.restart()
    return False


def _escape(
    code: MotherCode,
    decoder: LayeredDecoder,
    qber: float,
    accept: Callable[[NDArray[np.uint8]], bool] | None = None,
) -> bool:
    """Bob's local trapping-set escape after a stalled attempt (no message, no leak): with at
    most :data:`PIN_MAX_UNSATISFIED` unsatisfied checks, try pinning their unknown variables
    (``|posterior| < KNOWN_LLR/2``), least reliable first (:data:`PIN_MAX_TRIALS`). With
    Alice's decoding check (``accept``) keep the first word it accepts; without it keep the
    likeliest word only if it beats every other found by :data:`PIN_MARGIN_BITS` key-bit
    disagreements (``× log((1 − Q)/Q)`` nats)."""
    unsat = decoder.unsatisfied()
    if not 0 < unsat.size <= PIN_MAX_UNSATISFIED:
        return False
    cands = _near_unsatisfied(code, decoder.post, unsat)
    reliability = np.abs(decoder.post[cands])
    order = np.argsort(reliability, kind="stable")[:PIN_MAX_TRIALS]
    margin = PIN_MARGIN_BITS * bsc_llr(qber)
    return decoder.pin(cands[order], PIN_LLR, PIN_ITERATIONS, PIN_PATIENCE, margin, accept)


@functools.lru_cache(maxsize=12)
def _var_checks(code: MotherCode) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``H`` by variable (CSC): the checks of variable ``v`` are ``chk[ptr[v] : ptr[v + 1]]``."""
    order = np.argsort(code.check_var, kind="stable")
    rows = np.repeat(np.arange(code.m, dtype=np.int64), np.diff(code.check_ptr))
    ptr = np.zeros(code.n + 1, dtype=np.int64)
    np.cumsum(np.bincount(code.check_var, minlength=code.n), out=ptr[1:])
    return ptr, rows[order]


def _near_unsatisfied(
    code: MotherCode, post: NDArray[np.float32], unsat: NDArray[np.int64]
) -> NDArray[np.int64]:
    """The escape's candidates: the unknown variables of the unsatisfied checks, and those
    with ``|post| <`` :data:`PIN_NEAR_LLR` reached from them through at most :data:`PIN_DEPTH`
    such variables (breadth first over the Tanner graph, growing each level from its
    :data:`PIN_MAX_TRIALS` least reliable new variables only), ascending."""
    ptr, chk = _var_checks(code)
    seen_checks = set(int(c) for c in unsat)
    found: set[int] = set()
    frontier = [int(c) for c in unsat]
    for depth in range(PIN_DEPTH + 1):
        members = (
            np.concatenate(
                [code.check_var[code.check_ptr[c] : code.check_ptr[c + 1]] for c in frontier]
            )
            if frontier
            else np.zeros(0, np.int32)
        )
        members = np.unique(members).astype(np.int64)
        mag = np.abs(post[members])
        limit = KNOWN_LLR / 2 if depth == 0 else PIN_NEAR_LLR
        members = members[mag < limit]
        new = [int(v) for v in members if int(v) not in found]
        found.update(new)
        if depth == PIN_DEPTH:
            break
        grow = sorted((v for v in new if abs(post[v]) < PIN_NEAR_LLR), key=lambda v: abs(post[v]))
        grow = grow[:PIN_MAX_TRIALS]  # bounded: a stall far from convergence has many
        frontier = []
        for v in grow:
            for c in chk[ptr[v] : ptr[v + 1]]:
                if int(c) not in seen_checks:
                    seen_checks.add(int(c))
                    frontier.append(int(c))
    return np.array(sorted(found), dtype=np.int64)


@dataclass(frozen=True)
class LdpcRun:
    """What :func:`run_ldpc` counted itself, independently of the ledger.

    Attributes
    ----------
    rounds
        Round trips (the syndrome and Bob's answer count one; each blind step one more).
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
