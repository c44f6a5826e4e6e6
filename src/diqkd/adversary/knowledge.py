"""What Eve learns: the public transcript, her reconstruction of the key, and an estimate of it.

Eve reads every classical message (:class:`Eavesdropper`, a passive
:class:`~diqkd.protocol.ChannelAdversary`; :class:`ManInTheMiddle` also flips or drops one).
From the messages she rebuilds the public view of the session (:func:`public_view`): which
rounds were tests, Alice's test inputs, every reconciliation message, the privacy-amplification
seed and length. Combined with what her
attack gave her, she then tries to compute the final key:

* :func:`replay_bob` — if Eve holds Bob's outputs and inputs (a leaking device, or inputs she
  predicted and outputs she programmed), she re-runs Bob's side of Cascade with the public shuffle
  seed and Alice's public parities: Bob's corrections are a deterministic function of exactly
  these, so she obtains Bob's corrected string, i.e. Alice's string, and with the public Toeplitz
  seed the final key (Eq. (F6) of ``docs/finite-size.md`` is a public linear map).
* :func:`eve_key` — Eve's best per-round guess of Alice's string pushed through the same public
  Toeplitz hash.

:func:`key_information` compares Eve's key with the real one (simulation ground truth) and
turns the agreement into an estimate and a one-sided confidence bound on the information.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.stats import beta

from diqkd.errors import DiqkdError
from diqkd.postproc import CascadeBob, toeplitz_hash
from diqkd.postproc.messages import CascadeStart, ParityReply, ReconciliationMessage, decode_message
from diqkd.protocol.channel import Party
from diqkd.protocol.messages import PrivacyAmplification, Reconciliation, RoundTypes, decode

__all__ = [
    "INPUTS_KINDS",
    "Eavesdropper",
    "Intercepted",
    "KeyInformation",
    "ManInTheMiddle",
    "PublicView",
    "certificate_information_bits",
    "eve_key",
    "key_information",
    "public_view",
    "replay_bob",
]


#: Names of the message in which Alice announces her test-round inputs (renamed once).
INPUTS_KINDS = ("AnnouncedInputs", "TestInputs")


@dataclass(frozen=True)
class Intercepted:
    """One message as Eve saw it on the wire (bytes as sent, before any change of hers)."""

    sender: Party
    receiver: Party
    kind: str
    data: bytes


class Eavesdropper:
    """A passive :class:`~diqkd.protocol.ChannelAdversary`: records every message, changes none."""

    def __init__(self) -> None:
        self.messages: list[Intercepted] = []

    def intercept(
        self, sender: Party, receiver: Party, kind: str, data: bytes, tag: bytes | None
    ) -> tuple[bytes, bytes | None] | None:
        self.messages.append(Intercepted(sender, receiver, kind, bytes(data)))
        return self.act(sender, receiver, kind, data, tag)

    def act(
        self, sender: Party, receiver: Party, kind: str, data: bytes, tag: bytes | None
    ) -> tuple[bytes, bytes | None] | None:
        """What to deliver (subclasses tamper); passive: the message unchanged."""
        del sender, receiver, kind
        return data, tag


class ManInTheMiddle(Eavesdropper):
    """Flips one bit of, or drops, the ``occurrence``-th message of some kinds.

    Parameters
    ----------
    kinds
        Message type names (``"AnnouncedInputs"``, ``"Reconciliation"``,
        ``"PrivacyAmplification"``…).
    mode
        ``"flip"`` (flip the lowest bit of the last byte) or ``"drop"``.
    occurrence
        Which message of that kind (0 = first).
    sender
        Only messages from this party (``None``: any sender).
    """

    def __init__(
        self,
        kinds: tuple[str, ...],
        mode: str = "flip",
        occurrence: int = 0,
        sender: Party | None = None,
    ) -> None:
        super().__init__()
        if mode not in ("flip", "drop"):
            raise DiqkdError(f"mode must be 'flip' or 'drop', got {mode!r}")
        self.kinds, self.mode, self.occurrence, self.sender = kinds, mode, occurrence, sender
        self._seen = 0
        self.acted = False

    def act(
        self, sender: Party, receiver: Party, kind: str, data: bytes, tag: bytes | None
    ) -> tuple[bytes, bytes | None] | None:
        if kind not in self.kinds or (self.sender is not None and sender != self.sender):
            return data, tag
        index = self._seen
        self._seen += 1
        if index != self.occurrence:
            return data, tag
        self.acted = True
        if self.mode == "drop":
            return None
        changed = bytearray(data)
        changed[-1] ^= 0x01
        return bytes(changed), tag


@dataclass(frozen=True, eq=False)
class PublicView:
    """The public record of a session, as Eve reconstructs it from the wire.

    Attributes
    ----------
    test
        Round types announced by Alice (True = test round), shape (n,).
    x_test
        Alice's inputs on the test rounds, in round order.
    reconciliation
        Per frame (``"key"``, ``"test"``): the (sender, message) sequence.
    pa_seed, pa_length
        Toeplitz seed and output length ℓ of privacy amplification (``None`` before it).
    """

    test: NDArray[np.bool_]
    x_test: NDArray[np.uint8] | None
    reconciliation: dict[str, list[tuple[Party, ReconciliationMessage]]]
    pa_seed: NDArray[np.uint8] | None
    pa_length: int | None


def public_view(messages: list[Intercepted]) -> PublicView:
    """Decode the messages Eve recorded into the session's public view."""
    tests: list[NDArray[np.uint8]] = []
    x_test: NDArray[np.uint8] | None = None
    recon: dict[str, list[tuple[Party, ReconciliationMessage]]] = {}
    seed: NDArray[np.uint8] | None = None
    length: int | None = None
    for m in messages:
        if m.kind not in ("RoundTypes", "Reconciliation", "PrivacyAmplification", *INPUTS_KINDS):
            continue
        msg = decode(m.data)
        if isinstance(msg, RoundTypes) and m.sender == "alice" and msg.bits is not None:
            tests.append(msg.bits)
        elif msg.kind in INPUTS_KINDS:
            x_test = getattr(msg, "bits", None)
        elif isinstance(msg, Reconciliation):
            recon.setdefault(msg.frame, []).append((m.sender, decode_message(msg.payload)))
        elif isinstance(msg, PrivacyAmplification) and msg.bits is not None:
            seed, length = msg.bits, msg.output_bits
    test = np.concatenate(tests).astype(bool) if tests else np.zeros(0, dtype=bool)
    return PublicView(
        test=test, x_test=x_test, reconciliation=recon, pa_seed=seed, pa_length=length
    )


def _replay_frame(
    bits: NDArray[np.uint8], sequence: list[tuple[Party, ReconciliationMessage]]
) -> NDArray[np.uint8]:
    start = sequence[0][1] if sequence else None
    if not isinstance(start, CascadeStart):
        raise DiqkdError("Eve's replay handles Cascade frames only")
    bob = CascadeBob(bits, 0.01, shuffle_seed=start.shuffle_seed, block_sizes=start.block_sizes)
    if bob.first_message().to_bytes() != start.to_bytes():
        raise DiqkdError("Eve's replay does not reproduce Bob's CascadeStart")
    for sender, message in sequence[1:]:
        if sender == "alice" and isinstance(message, ParityReply):
            bob.handle(message)
    return np.asarray(bob.corrected_key, dtype=np.uint8)


def replay_bob(
    view: PublicView, *, b: NDArray[np.uint8], y: NDArray[np.uint8]
) -> NDArray[np.uint8]:
    """Bob's corrected copy of Alice's string, recomputed by Eve from ``b``, ``y`` and the wire.

    Bob's guess of Alice's string is ``b`` on key rounds and ``b ⊕ x·y`` on test rounds
    (``docs/finite-size.md``, step 3); Cascade then corrects it using only the public shuffle
    seed and Alice's public parities (Brassard, Salvail 1993), so the same inputs give Bob's
    result bit for bit.

    Raises
    ------
    DiqkdError
        If the view is incomplete or the frames are not Cascade frames.
    """
    n = int(view.test.size)
    if b.shape != (n,) or y.shape != (n,) or view.x_test is None:
        raise DiqkdError("Eve's copy of Bob's data does not match the public view")
    guess = np.asarray(b, dtype=np.uint8).copy()
    guess[view.test] ^= (view.x_test & y[view.test]).astype(np.uint8)
    corrected = guess.copy()
    for frame, positions in (
        ("key", np.flatnonzero(~view.test)),
        ("test", np.flatnonzero(view.test)),
    ):
        if positions.size == 0:
            continue
        corrected[positions] = _replay_frame(guess[positions], view.reconciliation.get(frame, []))
    return corrected


def eve_key(view: PublicView, string: NDArray[np.uint8], n_bits: int) -> NDArray[np.uint8]:
    """Eve's version of the final key: her string through the public Toeplitz hash.

    The first ``n_bits`` of ``toeplitz_hash(string, seed, ℓ)`` (the session outputs the first
    ``ℓ − auth`` bits after replenishing the authentication pool).
    """
    if view.pa_seed is None or view.pa_length is None:
        raise DiqkdError("no privacy amplification was announced: there is no key to guess")
    hashed = toeplitz_hash(np.asarray(string, dtype=np.uint8), view.pa_seed, view.pa_length)
    return hashed[:n_bits]


def _h2(p: float) -> float:
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


@dataclass(frozen=True)
class KeyInformation:
    """Agreement of Eve's key with the real one, and the information it implies.

    Attributes
    ----------
    compared_bits, agreements
        Key bits compared and how many Eve got right.
    agreement
        ``f̂ = agreements / compared_bits``.
    agreement_low, agreement_high
        Two-sided Clopper–Pearson interval of the agreement probability at ``confidence``.
    information_bits
        Point estimate ``N·(1 − h(f̂))``.
    information_upper_bits
        ``N·max_{f ∈ [low, high]} (1 − h(f))`` — an upper confidence bound.
    confidence
        Confidence level of the interval.
    """

    compared_bits: int
    agreements: int
    agreement: float
    agreement_low: float
    agreement_high: float
    information_bits: float
    information_upper_bits: float
    confidence: float


def key_information(
    true_key: NDArray[np.uint8], eve_guess: NDArray[np.uint8], *, confidence: float = 0.99
) -> KeyInformation:
    """Estimate Eve's information on a key from the agreement of her guess with it.

    Model: each key bit is uniform and Eve's bit agrees with it with probability ``f``
    (a binary symmetric channel), so her information is ``1 − h(f)`` bits per key bit
    (Cover & Thomas, *Elements of Information Theory*, 2nd ed., Eq. (7.13)); over ``N`` bits,
    ``N(1 − h(f))``, additive if her errors are independent across bits. ``f`` is estimated by
    the agreement frequency with an exact Clopper–Pearson interval (Clopper, Pearson,
    Biometrika 26, 404 (1934)); the upper bound takes the interval end farther from ½.

    This measures the information in *this* guess only (one strategy of Eve's), not the
    Holevo information of her quantum side information on the whole key.
    """
    k = np.asarray(true_key, dtype=np.uint8)
    e = np.asarray(eve_guess, dtype=np.uint8)
    if k.shape != e.shape or k.ndim != 1:
        raise DiqkdError("the key and Eve's guess must be equally long bit strings")
    if not 0.0 < confidence < 1.0:
        raise DiqkdError(f"confidence must lie in (0, 1), got {confidence}")
    n = int(k.size)
    if n == 0:
        return KeyInformation(0, 0, float("nan"), 0.0, 1.0, 0.0, 0.0, confidence)
    agree = int(np.count_nonzero(k == e))
    alpha = 1.0 - confidence
    low = 0.0 if agree == 0 else float(beta.ppf(alpha / 2, agree, n - agree + 1))
    high = 1.0 if agree == n else float(beta.ppf(1 - alpha / 2, agree + 1, n - agree))
    f = agree / n
    far = low if abs(low - 0.5) > abs(high - 0.5) else high
    return KeyInformation(
        compared_bits=n,
        agreements=agree,
        agreement=f,
        agreement_low=low,
        agreement_high=high,
        information_bits=n * (1.0 - _h2(f)),
        information_upper_bits=n * (1.0 - _h2(far)),
        confidence=confidence,
    )


def certificate_information_bits(epsilon: float, key_bits: int) -> float:
    """The most information on an ℓ-bit key that an ε-secret key leaves to Eve.

    If the key is ε-close in trace distance to a uniform key independent of Eve, the continuity
    bound of Alicki–Fannes–Winter (Winter, CMP 347, 291 (2016), Lemma 2) gives
    ``I(K:E) = ℓ − H(K|E) ≤ 2εℓ + (1 + ε) h(ε/(1 + ε))``.
    """
    if not 0.0 <= epsilon <= 1.0 or key_bits < 0:
        raise DiqkdError("epsilon must lie in [0, 1] and key_bits be non-negative")
    return 2.0 * epsilon * key_bits + (1.0 + epsilon) * _h2(epsilon / (1.0 + epsilon))
