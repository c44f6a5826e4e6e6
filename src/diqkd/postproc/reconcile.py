"""The safe reconciliation recipe: estimate the QBER if needed, build both parties, run them.

:func:`reconcile` is the "thick" entry point (ARCHITECTURE.md, style rule 2): it composes
:mod:`~diqkd.postproc.cascade`'s two parties with the right parameters and routes every message
through one :class:`~diqkd.postproc.ledger.LeakLedger`. The parties still meet only through
messages; the recipe merely plays the channel for a local simulation.

QBER estimation (``qber=None``), as a real protocol would do it:

1. Bob draws ``m`` sample positions from the public seed (:func:`sample_size`:
   ``m = min(max(1, ⌊n/10⌋), 10 000)``) and sends them
   (:class:`~diqkd.postproc.messages.RevealRequest`);
2. Alice reveals her bits there (:class:`~diqkd.postproc.messages.RevealReply`, ``m`` bits in
   the ledger);
3. Bob counts the disagreements ``e`` and estimates ``Q̂ = (e + ½)/(m + 1)`` (the add-½
   estimator: finite and non-zero when ``e = 0``, so blocks stay finite);
4. both parties **discard** the sample positions; the result refers to the shortened keys
   (:attr:`ReconciliationResult.kept_indices`).

Seeds: the shuffle and sample positions are public and may come from any RNG; they are derived
from ``rng_seed_for_public_shuffles`` (or a fresh seed, recorded in the result). Nothing secret
is drawn here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from diqkd.errors import ProtocolAbort
from diqkd.postproc._cascade_kernels import Backend
from diqkd.postproc._entropy import binary_entropy
from diqkd.postproc._ldpc_codes import CODE_FAMILIES, CodeFamily
from diqkd.postproc.cascade import CascadeAlice, CascadeBob, as_key_bits, run_cascade
from diqkd.postproc.ldpc import LdpcAlice, LdpcBob, LdpcStart, check_start, run_ldpc
from diqkd.postproc.ledger import LeakLedger
from diqkd.postproc.messages import ReconciliationError, RevealReply, RevealRequest
from diqkd.rng import fresh_seed

__all__ = [
    "QBER_SAMPLE_CAP",
    "QBER_SAMPLE_FRACTION",
    "Method",
    "ReconciliationResult",
    "binary_entropy",
    "choose_method",
    "efficiency",
    "reconcile",
    "sample_size",
]

Method = Literal["cascade", "auto", "ldpc"]

#: Fraction of the frame disclosed to estimate the QBER when none is given.
QBER_SAMPLE_FRACTION = 0.1
#: Most positions disclosed to estimate the QBER (σ(Q̂) ≈ 0.0017 at Q = 3 %).
QBER_SAMPLE_CAP = 10_000


def efficiency(leaked_bits: int, n_bits: int, qber: float) -> float:
    """Reconciliation efficiency ``f = leaked_bits / (n·h(Q))``; ``f = 1`` is the Shannon limit.

    Convention of SCIENCE.md (Martinez-Mateo et al., QIC 15, 453 (2015)); for
    benchmarks ``Q`` is the true QBER of the frame. ``inf`` when ``Q = 0``.
    """
    h = binary_entropy(qber)
    if n_bits <= 0:
        raise ReconciliationError(f"n_bits must be positive, got {n_bits}")
    return math.inf if h == 0.0 else leaked_bits / (n_bits * h)


def sample_size(n_bits: int) -> int:
    """Positions disclosed for QBER estimation: ``min(max(1, ⌊n·0.1⌋), 10 000)``."""
    return min(max(1, int(n_bits * QBER_SAMPLE_FRACTION)), QBER_SAMPLE_CAP)


def choose_method(n_bits: int, qber: float) -> Literal["cascade"]:
    """The method ``method="auto"`` uses for a frame of ``n_bits`` at QBER ``qber``.

    Cascade for every frame, by measurement (benchmarks/README.md, same machine): optimised
    Cascade reaches ``f ≈ 1.03–1.05`` at ``n = 10⁵`` and 0.9–1.8 Mbit/s at ``10⁶``, while the
    rate-adaptive blind LDPC of :mod:`~diqkd.postproc.ldpc` reaches ``f ≈ 1.07–1.10`` at
    ``10⁵`` and ``1.04–1.07`` at ``10⁶`` at ≈ 0.2 Mbit/s (QBER 1–10 %); with the
    quasi-cyclic codes (``ldpc_codes="qc"``) at the same ``f`` ≈ 0.5–1 Mbit/s, and at their
    fast operating point (``ldpc_start="fast"``) ≈ 5–7 Mbit/s at ``f ≈ 1.15``: LDPC does not beat
    Cascade on leak, which is what costs secret key. Its advantages are interactivity (a handful
    of round trips instead of hundreds to thousands), which matters on high-latency links, and,
    with the QC codes, speed: choose ``method="ldpc"`` explicitly there.
    """
    del n_bits, qber
    return "cascade"


@dataclass(frozen=True, eq=False)
class ReconciliationResult:
    """What :func:`reconcile` returns.

    Attributes
    ----------
    bob_corrected
        Bob's corrected key over ``kept_indices`` (read-only); equals Alice's key there with
        high probability — Cascade leaves a small residual frame error rate, so a
        verification hash must follow before privacy amplification.
    kept_indices
        Positions of the original frame both keys still hold (all of them when ``qber`` was
        given); Alice's shortened key is ``alice_bits[kept_indices]``.
    leaked_bits
        Bits this call disclosed about Alice's key (``sample_bits + correction_bits``), as
        recorded in ``ledger``.
    sample_bits
        Bits disclosed to estimate the QBER (of discarded positions; 0 when ``qber`` given).
    correction_bits
        Bits disclosed by the correction protocol (Cascade's parities): the ``leak_EC`` that
        enters the efficiency ``f``.
    rounds
        Round trips (the estimation exchange counts one).
    messages
        Messages that crossed, both directions.
    method
        The method used (``"cascade"``).
    qber_estimate
        The QBER the block sizes were chosen for (given or estimated).
    shuffle_seed
        Public seed of the shuffles and sample positions (to reproduce the transcript).
    ledger
        The ledger every message was recorded in (add the verification tag to it later).
    """

    bob_corrected: NDArray[np.uint8]
    kept_indices: NDArray[np.int64]
    leaked_bits: int
    sample_bits: int
    correction_bits: int
    rounds: int
    messages: int
    method: str
    qber_estimate: float
    shuffle_seed: int
    ledger: LeakLedger = field(repr=False)

    @property
    def n_bits(self) -> int:
        """Length of the reconciled (shortened) keys."""
        return int(self.kept_indices.size)


def _alice_reveal(alice_key: NDArray[np.uint8], request: RevealRequest) -> RevealReply:
    """Alice's side of QBER estimation: she sees only the request."""
    if request.indices.size and request.indices[-1] >= alice_key.size:
        raise ProtocolAbort("RevealRequest names a position beyond Alice's frame")
    return RevealReply(bits=alice_key[request.indices])


def _derive_seeds(seed: int) -> tuple[np.random.Generator, int]:
    """Public sample-position generator and Cascade shuffle seed, both from ``seed``."""
    sample_seq, shuffle_seq = np.random.SeedSequence([seed, 0x5EC0_C11E]).spawn(2)
    shuffle_seed = int(shuffle_seq.generate_state(1, np.uint64)[0])
    return np.random.default_rng(sample_seq), shuffle_seed


def reconcile(
    alice_bits: ArrayLike,
    bob_bits: ArrayLike,
    *,
    method: Method = "cascade",
    qber: float | None = None,
    rng_seed_for_public_shuffles: int | None = None,
    ledger: LeakLedger | None = None,
    backend: Backend = "numba",
    ldpc_codes: CodeFamily = "random",
    ldpc_start: LdpcStart = "efficient",
) -> ReconciliationResult:
    """Reconcile Bob's key to Alice's, counting every disclosed bit in a ledger.

    Parameters
    ----------
    alice_bits, bob_bits
        The sifted keys, shape (n,), values 0/1, same length. Neither array is modified.
    method
        ``"cascade"`` (optimised Cascade, :mod:`diqkd.postproc.cascade`), ``"auto"``
        (:func:`choose_method`), or ``"ldpc"`` (:mod:`diqkd.postproc.ldpc`: one syndrome and
        blind reveals; raises :class:`~diqkd.errors.ProtocolAbort` if it never converges).
    qber
        Known or separately estimated QBER in ``[0, 0.5)``. ``None``: estimate it from a
        disclosed sample that is then discarded (module docstring).
    rng_seed_for_public_shuffles
        Non-negative int seeding the *public* shuffles and sample positions; ``None`` draws a
        fresh one (recorded in the result). Not secret, and never used for secrets.
    ledger
        Record into this ledger (e.g. the session's); a new one by default.
    backend
        Kernel backend, ``"numba"`` or ``"numpy"`` (reference; identical transcript).
    ldpc_codes
        LDPC code family (:data:`~diqkd.postproc._ldpc_codes.CodeFamily`): ``"random"``
        (default) or ``"qc"`` (quasi-cyclic, from 65 536 bits: about the same leak, decoded 2–4
        times faster; :mod:`~diqkd.postproc._ldpc_qc`).
    ldpc_start
        LDPC operating point (:data:`~diqkd.postproc.ldpc.LdpcStart`): ``"efficient"``
        (default, the least leak) or ``"fast"`` (first syndrome at ``f₀ ≥ 1.15``: frames
        decode at once, ≈ 10 % more leak).

    Returns
    -------
    ReconciliationResult
    """
    alice = as_key_bits(alice_bits, "Alice's key")
    bob = as_key_bits(bob_bits, "Bob's key")
    if alice.size != bob.size:
        raise ReconciliationError(
            f"Alice's key has {alice.size} bits and Bob's {bob.size}: reconcile equal-length "
            "sifted keys (check the sifting step)"
        )
    chosen: str
    if method == "auto":
        chosen = choose_method(alice.size, 0.0 if qber is None else float(qber))
    elif method in ("cascade", "ldpc"):
        chosen = method
    else:
        raise ReconciliationError(f"unknown method {method!r}: use 'cascade', 'auto' or 'ldpc'")
    if ldpc_codes not in CODE_FAMILIES:
        raise ReconciliationError(f"unknown LDPC codes {ldpc_codes!r}: use 'random' or 'qc'")
    check_start(ldpc_start)  # before anything is disclosed
    if rng_seed_for_public_shuffles is None:
        seed = fresh_seed()
    elif isinstance(rng_seed_for_public_shuffles, bool) or rng_seed_for_public_shuffles < 0:
        raise ReconciliationError(
            f"rng_seed_for_public_shuffles must be a non-negative int or None, "
            f"got {rng_seed_for_public_shuffles!r}"
        )
    else:
        seed = int(rng_seed_for_public_shuffles)
    ledger = LeakLedger() if ledger is None else ledger
    start_bits = ledger.leaked_bits
    sample_rng, shuffle_seed = _derive_seeds(seed)

    n = alice.size
    kept = np.arange(n, dtype=np.int64)
    sample_bits = rounds = messages = 0
    if qber is None:
        m = sample_size(n)
        if n - m < 1:
            raise ReconciliationError(
                f"a {n}-bit frame is too short to estimate the QBER from a sample and keep "
                "bits: pass qber= or reconcile a longer frame"
            )
        positions = np.sort(sample_rng.choice(n, size=m, replace=False)).astype(np.int64)
        request = RevealRequest(indices=positions)
        ledger.record(request)
        reply = _alice_reveal(alice, request)
        ledger.record(reply)
        if reply.bits.size != m:
            raise ProtocolAbort(f"Alice revealed {reply.bits.size} bits, {m} were asked for")
        errors = int(np.count_nonzero(reply.bits != bob[positions]))
        qber_estimate = (errors + 0.5) / (m + 1)
        if qber_estimate >= 0.5:
            raise ProtocolAbort(
                f"estimated QBER {qber_estimate:.3f} ≥ 0.5: the keys are uncorrelated; abort"
            )
        sample_bits = reply.disclosed_bits
        rounds, messages = 1, 2
        keep_mask = np.ones(n, dtype=bool)
        keep_mask[positions] = False
        kept = np.flatnonzero(keep_mask).astype(np.int64)
        alice, bob = alice[kept], bob[kept]
    else:
        qber_estimate = float(qber)

    corrected: NDArray[np.uint8]
    if chosen == "ldpc":
        ldpc_bob = LdpcBob(bob, qber_estimate)
        # one public code per (n, rung): built once, reused from the cache across frames
        ldpc_alice = LdpcAlice(
            alice, qber_estimate, code_seed=0, family=ldpc_codes, start=ldpc_start
        )
        ldpc_run = run_ldpc(ldpc_alice, ldpc_bob, ledger)
        if not ldpc_run.converged:
            raise ProtocolAbort(
                "LDPC decoding did not converge even after the blind reveals: discard this "
                "frame (the disclosed bits stay in the ledger) or use method='cascade'"
            )
        rounds += ldpc_run.rounds
        messages += ldpc_run.messages
        corrected = ldpc_bob.corrected_key
    else:
        alice_party = CascadeAlice(alice, backend=backend)
        bob_party = CascadeBob(bob, qber_estimate, shuffle_seed=shuffle_seed, backend=backend)
        run = run_cascade(alice_party, bob_party, ledger)
        rounds += run.rounds
        messages += run.messages
        corrected = bob_party.corrected_key
    kept.flags.writeable = False
    leaked = ledger.leaked_bits - start_bits
    return ReconciliationResult(
        bob_corrected=corrected,
        kept_indices=kept,
        leaked_bits=leaked,
        sample_bits=sample_bits,
        correction_bits=leaked - sample_bits,
        rounds=rounds,
        messages=messages,
        method=chosen,
        qber_estimate=qber_estimate,
        shuffle_seed=seed,
        ledger=ledger,
    )
