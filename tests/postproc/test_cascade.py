"""Cascade: messages, the leak ledger, kernels against their references, the two parties."""

from __future__ import annotations

import ast
import inspect
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from diqkd.errors import DiqkdError, ProtocolAbort
from diqkd.postproc import _cascade_kernels as kernels
from diqkd.postproc.cascade import (
    CascadeAlice,
    CascadeBob,
    as_key_bits,
    demystifying_block_sizes,
    original_block_sizes,
    run_cascade,
)
from diqkd.postproc.ledger import LeakLedger
from diqkd.postproc.messages import (
    CascadeStart,
    Done,
    ParityReply,
    ParityRequest,
    ReconciliationError,
    ReconciliationMessage,
    RevealReply,
    RevealRequest,
    SyndromeMessage,
    decode_message,
)

SRC = Path(__file__).resolve().parents[2] / "src" / "diqkd" / "postproc"


def noisy_pair(
    n: int, qber: float, seed: int, *, p_one: float = 0.5
) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Alice's key (P(1) = p_one) and Bob's through a binary symmetric channel of ``qber``."""
    rng = np.random.default_rng(seed)
    alice = (rng.random(n) < p_one).astype(np.uint8)
    noise = (rng.random(n) < qber).astype(np.uint8)
    return alice, alice ^ noise


def run_pair(
    alice_key: NDArray[np.uint8],
    bob_key: NDArray[np.uint8],
    qber: float,
    seed: int,
    **kwargs: object,
) -> tuple[CascadeBob, LeakLedger, int]:
    alice = CascadeAlice(alice_key, backend=kwargs.pop("backend", "numba"))  # type: ignore[arg-type]
    bob = CascadeBob(bob_key, qber, shuffle_seed=seed, **kwargs)  # type: ignore[arg-type]
    ledger = LeakLedger()
    run = run_cascade(alice, bob, ledger)
    return bob, ledger, run.rounds


# --------------------------------------------------------------------------- messages

bit_vectors = st.lists(st.integers(0, 1), max_size=200).map(lambda v: np.array(v, np.uint8))


def _request(draw: st.DrawFn) -> ParityRequest:
    count = draw(st.integers(1, 20))
    passes = draw(st.lists(st.integers(0, 63), min_size=count, max_size=count))
    starts = draw(st.lists(st.integers(0, 2**32 - 3), min_size=count, max_size=count))
    lengths = draw(st.lists(st.integers(1, 2), min_size=count, max_size=count))
    return ParityRequest(
        passes=np.array(passes),
        starts=np.array(starts),
        ends=np.array(starts) + np.array(lengths),
    )


@st.composite
def messages(draw: st.DrawFn) -> ReconciliationMessage:
    kind = draw(st.integers(0, 6))
    if kind == 0:
        n = draw(st.integers(1, 2**32 - 1))
        sizes = draw(st.lists(st.integers(1, min(n, 2**32 - 1)), min_size=1, max_size=20))
        seed = draw(st.integers(0, 2**64 - 1))
        return CascadeStart(n_bits=n, shuffle_seed=seed, block_sizes=tuple(sizes))
    if kind == 1:
        return _request(draw)
    if kind == 2:
        return ParityReply(parities=draw(bit_vectors))
    if kind == 3:
        idx = draw(st.sets(st.integers(0, 2**32 - 2), max_size=50))
        return RevealRequest(indices=np.array(sorted(idx), dtype=np.int64))
    if kind == 4:
        return RevealReply(bits=draw(bit_vectors))
    if kind == 5:
        tag = draw(st.binary(max_size=16))
        key = draw(st.binary(min_size=16, max_size=16)) if tag else b""
        return SyndromeMessage(
            code_id=draw(st.text(max_size=20)),
            syndrome=draw(bit_vectors),
            check_key=key,
            check_tag=tag,
        )
    return Done()


@given(messages())
def test_messages_round_trip_canonically(message: ReconciliationMessage) -> None:
    data = message.to_bytes()
    again = decode_message(data)
    assert type(again) is type(message)
    assert again == message
    assert hash(again) == hash(message)
    assert again.to_bytes() == data
    assert type(message).from_bytes(data) == message
    assert again.disclosed_bits == message.disclosed_bits


def test_disclosed_bits_follow_the_cascade_convention() -> None:
    request = ParityRequest(passes=np.array([0, 1]), starts=np.array([0, 4]), ends=np.array([2, 8]))
    assert request.disclosed_bits == 0
    assert CascadeStart(n_bits=8, shuffle_seed=1, block_sizes=(2, 4)).disclosed_bits == 0
    assert Done().disclosed_bits == 0
    assert RevealRequest(indices=np.array([1, 5])).disclosed_bits == 0
    assert ParityReply(parities=np.array([1, 0, 1])).disclosed_bits == 3
    assert RevealReply(bits=np.array([0, 0])).disclosed_bits == 2
    assert SyndromeMessage(code_id="x", syndrome=np.ones(7, np.uint8)).disclosed_bits == 7
    checked = SyndromeMessage(
        code_id="x", syndrome=np.ones(7, np.uint8), check_key=bytes(16), check_tag=b"\x00" * 4
    )
    assert checked.disclosed_bits == 7 + 32  # the tag counts, the random key h does not
    assert CascadeStart(n_bits=10, shuffle_seed=0, block_sizes=(4, 5)).n_top_level_blocks == 5


def test_messages_are_frozen_and_read_only() -> None:
    source = np.array([1, 0, 1], dtype=np.uint8)
    reply = ParityReply(parities=source)
    source[0] = 0  # the message holds its own copy
    assert reply.parities.tolist() == [1, 0, 1]
    with pytest.raises(ValueError, match="read-only"):
        reply.parities[0] = 0
    with pytest.raises(AttributeError):
        reply.parities = np.zeros(3, np.uint8)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "header"),
        (b"\x01\x03", "wire version"),  # version 1 (before the check tag) is refused
        (b"\x02\x63", "unknown message kind"),
        (ParityReply(parities=np.ones(3, np.uint8)).to_bytes()[:-1], "truncated"),
        (Done().to_bytes() + b"\x00", "trailing"),
        (b"\x02\x03\x03\x00\x00\x00\xff", "padding"),  # 3 parities, 5 stray padding bits
        (b"\x02\x02\x01\x00\x00\x00\x00\x00\x05\x00\x00\x00\x05\x00\x00\x00", "start < end"),
        (b"\x02\x04\x02\x00\x00\x00\x05\x00\x00\x00\x01\x00\x00\x00", "increasing"),
        (b"\x02\x01" + (0).to_bytes(8, "little") * 2 + b"\x00\x00", "n_bits"),
        (b"\x02\x06\x01x\x04" + bytes(10), "truncated"),  # a check tag without its key
    ],
)
def test_malformed_bytes_abort(data: bytes, match: str) -> None:
    with pytest.raises(ProtocolAbort, match=match):
        decode_message(data)


def test_from_bytes_checks_the_kind() -> None:
    with pytest.raises(ProtocolAbort, match="expected a ParityReply"):
        ParityReply.from_bytes(Done().to_bytes())


@pytest.mark.parametrize(
    "build",
    [
        lambda: ParityReply(parities=np.array([0, 2])),
        lambda: ParityReply(parities=np.array([0.0, 1.0])),
        lambda: ParityReply(parities=np.zeros((2, 2), np.uint8)),
        lambda: ParityRequest(passes=np.array([0]), starts=np.array([3]), ends=np.array([3])),
        lambda: ParityRequest(passes=np.array([]), starts=np.array([]), ends=np.array([])),
        lambda: ParityRequest(passes=np.array([0, 1]), starts=np.array([0]), ends=np.array([1])),
        lambda: ParityRequest(passes=np.array([64]), starts=np.array([0]), ends=np.array([1])),
        lambda: RevealRequest(indices=np.array([3, 3])),
        lambda: RevealRequest(indices=np.array([-1])),
        lambda: CascadeStart(n_bits=0, shuffle_seed=0, block_sizes=(1,)),
        lambda: CascadeStart(n_bits=8, shuffle_seed=-1, block_sizes=(1,)),
        lambda: CascadeStart(n_bits=8, shuffle_seed=0, block_sizes=(9,)),
        lambda: CascadeStart(n_bits=8, shuffle_seed=0, block_sizes=()),
        lambda: SyndromeMessage(code_id="x" * 256),
        lambda: SyndromeMessage(code_id="x", check_key=bytes(16)),
        lambda: SyndromeMessage(code_id="x", check_key=bytes(15), check_tag=b"\x01"),
        lambda: SyndromeMessage(code_id="x", check_key=bytes(16), check_tag=bytes(17)),
        lambda: SyndromeMessage(code_id="x", check_key="k" * 16, check_tag=b"\x01"),  # type: ignore[arg-type]
    ],
)
def test_invalid_message_fields_raise(build: object) -> None:
    with pytest.raises(ReconciliationError):
        build()  # type: ignore[operator]


# --------------------------------------------------------------------------- ledger


def test_ledger_sums_messages_and_tags() -> None:
    ledger = LeakLedger()
    ledger.record(CascadeStart(n_bits=8, shuffle_seed=3, block_sizes=(4,)))
    ledger.record(ParityReply(parities=np.array([1, 0])))
    ledger.record(RevealReply(bits=np.array([1, 1, 1])))
    ledger.record(SyndromeMessage(code_id="c", syndrome=np.zeros(4, np.uint8)))
    ledger.add_tag(64)
    assert ledger.leaked_bits == 2 + 3 + 4 + 64
    assert ledger.messages == 4
    assert ledger.bits_by_kind() == {
        "CascadeStart": 0,
        "ParityReply": 2,
        "RevealReply": 3,
        "SyndromeMessage": 4,
        "verification tag": 64,
    }
    assert [e.sender for e in ledger.entries] == ["bob", "alice", "alice", "alice", "tag"]
    assert ledger.wire_bytes == sum(e.wire_bytes for e in ledger.entries) > 0
    assert "leaked_bits=73" in repr(ledger)


@pytest.mark.parametrize("bits", [-1, 1.5, True, "8"])
def test_ledger_rejects_bad_tags(bits: object) -> None:
    with pytest.raises(DiqkdError, match="tag length"):
        LeakLedger().add_tag(bits)  # type: ignore[arg-type]


def test_ledger_rejects_non_messages() -> None:
    with pytest.raises(DiqkdError, match="only reconciliation messages"):
        LeakLedger().record(np.zeros(3))  # type: ignore[arg-type]


def test_ledger_digest_tracks_content() -> None:
    one, two = LeakLedger(), LeakLedger()
    for ledger in (one, two):
        ledger.record(ParityReply(parities=np.array([1, 0])))
    assert one.transcript_digest() == two.transcript_digest()
    two.add_tag(1)
    assert one.transcript_digest() != two.transcript_digest()


# --------------------------------------------------------------------------- kernels


@settings(max_examples=25)
@given(n=st.integers(0, 1500), seed=st.integers(0, 2**64 - 1), p=st.integers(0, 63))
def test_permutation_kernel_matches_reference(n: int, seed: int, p: int) -> None:
    state = kernels.pass_state(seed, p)
    fast = kernels.permutation_numba(n, state)
    ref = kernels.permutation_numpy(n, state)
    assert fast.dtype == ref.dtype == np.int32
    np.testing.assert_array_equal(fast, ref)
    np.testing.assert_array_equal(np.sort(fast), np.arange(n))


def test_permutations_differ_between_passes_and_seeds() -> None:
    base = kernels.pass_permutation(1000, 5, 0)
    assert not np.array_equal(base, kernels.pass_permutation(1000, 5, 1))
    assert not np.array_equal(base, kernels.pass_permutation(1000, 6, 0))
    np.testing.assert_array_equal(base, kernels.pass_permutation(1000, 5, 0))


def test_permutation_positions_are_uniform() -> None:
    # Position of element 0 over 4000 shuffles of 8 items: χ² with 7 degrees of freedom;
    # 24.3 is its 0.999 quantile (tolerance derived, not tuned).
    counts = np.zeros(8)
    for seed in range(4000):
        counts[np.flatnonzero(kernels.pass_permutation(8, seed, 0) == 0)[0]] += 1
    chi2 = float(((counts - 500.0) ** 2 / 500.0).sum())
    assert chi2 < 24.3


@settings(max_examples=25)
@given(
    n=st.integers(1, 2000),
    k=st.integers(1, 2100),
    seed=st.integers(0, 2**32),
    base=st.integers(0, 1000),
)
def test_parity_kernels_match_reference(n: int, k: int, seed: int, base: int) -> None:
    k = min(k, n)
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, n, dtype=np.uint8)
    perm = kernels.permutation_numba(n, seed)
    np.testing.assert_array_equal(
        kernels.prefix_parity_numba(bits, perm), kernels.prefix_parity_numpy(bits, perm)
    )
    blocks = kernels.block_parities_numba(bits, perm, k)
    np.testing.assert_array_equal(blocks, kernels.block_parities_numpy(bits, perm, k))
    shuffled = bits[perm]
    expected = [int(shuffled[s : s + k].sum() % 2) for s in range(0, n, k)]
    assert blocks.tolist() == expected
    fast, ref = np.zeros(n, np.int32), np.zeros(n, np.int32)
    kernels.label_blocks_numba(fast, perm, k, base)
    kernels.label_blocks_numpy(ref, perm, k, base)
    np.testing.assert_array_equal(fast, ref)
    np.testing.assert_array_equal(fast[perm], base + np.arange(n) // k)


def test_unknown_backend() -> None:
    with pytest.raises(DiqkdError, match="unknown Cascade backend"):
        kernels.get_kernels("cuda")  # type: ignore[arg-type]


@pytest.mark.parametrize(("n", "qber"), [(3000, 0.05), (600, 0.2), (50, 0.1)])
def test_backends_give_the_same_transcript(n: int, qber: float) -> None:
    alice, bob = noisy_pair(n, qber, seed=n)
    fast, fast_ledger, _ = run_pair(alice, bob, qber, 11)
    ref, ref_ledger, _ = run_pair(alice, bob, qber, 11, backend="numpy")
    assert fast_ledger.transcript_digest() == ref_ledger.transcript_digest()
    np.testing.assert_array_equal(fast.corrected_key, ref.corrected_key)


# --------------------------------------------------------------------------- block sizes


def test_demystifying_block_sizes() -> None:
    # α = log2(1/0.03) − 1/2 = 4.56: k1 = 2^5, k2 = 2^⌈8.28⌉ = 2^9, k3 = 4096, then n/2.
    assert demystifying_block_sizes(0.03, 10_000) == (32, 512, 4096) + (5000,) * 11
    assert demystifying_block_sizes(0.01, 10_000)[:3] == (128, 1024, 4096)
    assert demystifying_block_sizes(0.05, 10**6)[:4] == (16, 256, 4096, 500_000)
    assert demystifying_block_sizes(0.0, 100) == (100, 100, 100) + (50,) * 11
    assert demystifying_block_sizes(0.45, 7, passes=2) == (2, 7)
    assert original_block_sizes(0.03, 10_000) == (25, 50, 100, 200)
    assert original_block_sizes(0.01, 200) == (73, 146, 200, 200)


@pytest.mark.parametrize("qber", [0.5, -0.01, math.nan, math.inf])
def test_block_sizes_reject_bad_qber(qber: float) -> None:
    with pytest.raises(ReconciliationError, match="QBER"):
        demystifying_block_sizes(qber, 1000)
    with pytest.raises(ReconciliationError, match="QBER"):
        CascadeBob(np.zeros(10, np.uint8), qber)


def test_block_sizes_reject_bad_frames_and_passes() -> None:
    with pytest.raises(ReconciliationError, match="frame length"):
        demystifying_block_sizes(0.1, 0)
    with pytest.raises(ReconciliationError, match="pass"):
        original_block_sizes(0.1, 10, passes=0)


# --------------------------------------------------------------------------- protocol


@pytest.mark.parametrize(
    ("qber", "seed"), [(0.01, 1), (0.02, 2), (0.03, 3), (0.05, 5), (0.08, 8), (0.11, 11)]
)
def test_seeded_frames_reconcile_exactly(qber: float, seed: int) -> None:
    alice, bob_key = noisy_pair(10_000, qber, seed)
    bob, ledger, rounds = run_pair(alice, bob_key, qber, seed)
    np.testing.assert_array_equal(bob.corrected_key, alice)
    assert bob.corrections == int(np.count_nonzero(alice ^ bob_key))
    assert ledger.leaked_bits == bob.parities_received
    # Interactive but batched: every search in progress advances one level per round trip,
    # so rounds grow like passes·log n (times the length of the cascade chains; measured
    # 170–810 at n = 10⁴), far below one round trip per parity.
    assert rounds <= 6 * len(bob.block_sizes) * math.ceil(math.log2(10_000))
    assert rounds * 4 < ledger.leaked_bits


def _independent_driver(
    alice: CascadeAlice, bob: CascadeBob, ledger: LeakLedger
) -> tuple[int, list[ReconciliationMessage]]:
    """A second router: counts the disclosed bits itself and keeps what Alice received."""
    counted = 0
    received: list[ReconciliationMessage] = []
    request: ReconciliationMessage = bob.first_message()
    while True:
        wire = request.to_bytes()
        ledger.record(request)
        delivered = decode_message(wire)  # only bytes cross
        received.append(delivered)
        counted += delivered.disclosed_bits
        reply = alice.handle(delivered)
        if reply is None:
            return counted, received
        ledger.record(reply)
        counted += reply.disclosed_bits
        request = bob.handle(decode_message(reply.to_bytes()))


@given(
    n=st.integers(1, 3000),
    qber=st.floats(0.0, 0.15),
    seed=st.integers(0, 2**63 - 1),
    estimate_error=st.floats(0.5, 2.0),
)
def test_random_frames_ledger_and_structure(
    n: int, qber: float, seed: int, estimate_error: float
) -> None:
    alice_key, bob_key = noisy_pair(n, qber, seed % 2**32)
    alice = CascadeAlice(alice_key)
    bob = CascadeBob(bob_key, min(0.49, qber * estimate_error), shuffle_seed=seed)
    ledger = LeakLedger()
    counted, received = _independent_driver(alice, bob, ledger)
    # The ledger total is exactly the disclosed bits of the messages that crossed.
    assert ledger.leaked_bits == counted == bob.parities_received
    assert ledger.messages == 2 * len(received) - 1
    # Alice only ever received Bob's requests: indices, never bits of Bob's key.
    assert all(isinstance(m, CascadeStart | ParityRequest | Done) for m in received)
    assert all(m.disclosed_bits == 0 for m in received)
    assert isinstance(received[-1], Done)
    assert alice.finished and bob.done
    # Residual errors are rare (FER bounded in test_frame_error_rate_is_bounded). When they
    # occur every disclosed parity still matches, so they come in even numbers per block.
    residual = int(np.count_nonzero(bob.corrected_key ^ alice_key))
    assert residual % 2 == 0


def test_frame_error_rate_is_bounded() -> None:
    # 200 frames of 2000 bits at Q = 5 %. Claim: FER ≤ 1 % (measured ≈ 0.3 %). Under the claim
    # the failures are at most Binomial(200, 0.01): mean 2, σ = 1.41; 4σ bound → ≤ 7.
    failures = 0
    for seed in range(200):
        alice, bob_key = noisy_pair(2000, 0.05, 10_000 + seed)
        bob, _, _ = run_pair(alice, bob_key, 0.05, seed)
        failures += not np.array_equal(bob.corrected_key, alice)
    assert failures <= 7


def test_alice_never_holds_bobs_array() -> None:
    assert list(inspect.signature(CascadeAlice).parameters) == ["key_bits", "backend"]
    alice_key, bob_key = noisy_pair(2000, 0.05, 4)
    alice = CascadeAlice(alice_key)
    bob = CascadeBob(bob_key, 0.05, shuffle_seed=4)
    run_cascade(alice, bob, LeakLedger(), through_bytes=True)
    for value in vars(alice).values():
        assert value is not bob_key
        if isinstance(value, np.ndarray) and value.shape == bob_key.shape:
            assert not np.array_equal(value, bob_key)


def test_same_seeds_same_transcript() -> None:
    alice, bob_key = noisy_pair(5000, 0.04, 21)
    digests = {run_pair(alice, bob_key, 0.04, 77)[1].transcript_digest() for _ in range(2)}
    assert len(digests) == 1
    other = run_pair(alice, bob_key, 0.04, 78)[1].transcript_digest()
    assert other not in digests
    wire_ledger = LeakLedger()
    bob = CascadeBob(bob_key, 0.04, shuffle_seed=77)
    run_cascade(CascadeAlice(alice), bob, wire_ledger, through_bytes=True)
    assert wire_ledger.transcript_digest() in digests


def test_searches_of_one_round_never_share_a_bit() -> None:
    # The scheduling rule: the blocks searched in one round are disjoint sets of bits, so two
    # searches can never chase the same error (which would waste parities).
    n = 3000
    alice_key, bob_key = noisy_pair(n, 0.06, 61)
    alice = CascadeAlice(alice_key)
    bob = CascadeBob(bob_key, 0.06, shuffle_seed=61)
    perms = [kernels.pass_permutation(n, 61, p) for p in range(len(bob.block_sizes))]
    request: ReconciliationMessage = bob.first_message()
    multi_pass_rounds = 0
    while not isinstance(request, Done):
        reply = alice.handle(request)
        assert reply is not None
        request = bob.handle(reply)
        if isinstance(request, ParityRequest):
            owner = np.full(n, -1)
            for i, (p, s, m) in enumerate(
                zip(request.passes, request.starts, request.ends, strict=True)
            ):
                # The request names the first half [s, m) of the block searched; that block
                # is [s, s + 2(m − s)) or one bit shorter (halves are ⌈len/2⌉): check the
                # part it surely covers.
                bits = perms[p][s : s + 2 * (m - s) - 1]
                assert np.all(owner[bits] == -1)
                owner[bits] = i
            multi_pass_rounds += len(set(request.passes.tolist())) > 1
    np.testing.assert_array_equal(bob.corrected_key, alice_key)
    assert multi_pass_rounds > 0  # disjoint blocks of different passes do share rounds


def test_sequential_mode_asks_one_parity_per_round() -> None:
    alice_key, bob_key = noisy_pair(3000, 0.05, 71)
    sequential, seq_ledger, seq_rounds = run_pair(alice_key, bob_key, 0.05, 71, batched=False)
    batched, _, batched_rounds = run_pair(alice_key, bob_key, 0.05, 71)
    np.testing.assert_array_equal(sequential.corrected_key, alice_key)
    np.testing.assert_array_equal(batched.corrected_key, alice_key)
    assert seq_rounds > batched_rounds
    # One round for the top-level parities, then one parity per round trip.
    assert seq_ledger.leaked_bits == CascadeStart(
        n_bits=3000, shuffle_seed=71, block_sizes=sequential.block_sizes
    ).n_top_level_blocks + (seq_rounds - 1)


def test_biased_keys_reconcile() -> None:
    alice, bob_key = noisy_pair(10_000, 0.04, 31, p_one=0.9)
    bob, _, _ = run_pair(alice, bob_key, 0.04, 31)
    np.testing.assert_array_equal(bob.corrected_key, alice)


def test_drifting_qber_reconciles() -> None:
    # QBER drifts linearly from 0.5 % to 9 % across the frame; Bob only knows the mean.
    n = 10_000
    rng = np.random.default_rng(41)
    alice = rng.integers(0, 2, n, dtype=np.uint8)
    local = np.linspace(0.005, 0.09, n)
    bob_key = alice ^ (rng.random(n) < local).astype(np.uint8)
    bob, _, _ = run_pair(alice, bob_key, float(local.mean()), 41)
    np.testing.assert_array_equal(bob.corrected_key, alice)


def test_original_schedule_runs_in_the_same_engine() -> None:
    alice, bob_key = noisy_pair(10_000, 0.03, 51)
    sizes = original_block_sizes(0.03, 10_000)
    bob, ledger, _ = run_pair(alice, bob_key, 0.03, 51, block_sizes=sizes)
    assert bob.block_sizes == sizes
    assert ledger.leaked_bits == bob.parities_received


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("bits", "match"),
    [
        (np.zeros(0, np.uint8), "empty"),
        (np.array([0, 1, 2]), "only 0 and 1"),
        (np.array([0, -1]), "only 0 and 1"),
        (np.array([0.0, 1.0]), "dtype float64"),
        (np.zeros((2, 3), np.uint8), "1-D"),
        (np.array(["0", "1"]), "dtype"),
    ],
)
def test_bad_keys_raise(bits: NDArray[np.generic], match: str) -> None:
    with pytest.raises(ReconciliationError, match=match):
        as_key_bits(bits)
    with pytest.raises(ReconciliationError, match=match):
        CascadeAlice(bits)
    with pytest.raises(ReconciliationError, match=match):
        CascadeBob(bits, 0.05)


def test_as_key_bits_accepts_bool_and_copies() -> None:
    source = np.array([True, False, True])
    out = as_key_bits(source)
    assert out.dtype == np.uint8 and out.tolist() == [1, 0, 1]
    out[0] = 0
    assert source[0]


def test_length_mismatch_aborts_at_alice() -> None:
    alice = CascadeAlice(np.zeros(100, np.uint8))
    bob = CascadeBob(np.zeros(99, np.uint8), 0.05, shuffle_seed=1)
    with pytest.raises(ProtocolAbort, match="differ in length"):
        run_cascade(alice, bob, LeakLedger())


def test_out_of_order_and_malformed_messages_abort() -> None:
    alice = CascadeAlice(np.zeros(64, np.uint8))
    request = ParityRequest(passes=np.array([0]), starts=np.array([0]), ends=np.array([2]))
    with pytest.raises(ProtocolAbort, match="before CascadeStart"):
        alice.handle(request)
    with pytest.raises(ProtocolAbort, match="cannot answer"):
        alice.handle(RevealReply(bits=np.array([1])))
    start = CascadeStart(n_bits=64, shuffle_seed=0, block_sizes=(8, 16))
    assert isinstance(alice.handle(start), ParityReply)
    with pytest.raises(ProtocolAbort, match="second CascadeStart"):
        alice.handle(start)
    bad = ParityRequest(passes=np.array([2]), starts=np.array([0]), ends=np.array([2]))
    with pytest.raises(ProtocolAbort, match="does not exist"):
        alice.handle(bad)
    assert alice.handle(Done()) is None
    with pytest.raises(ProtocolAbort, match="after Done"):
        alice.handle(request)

    bob = CascadeBob(np.zeros(64, np.uint8), 0.05, shuffle_seed=0)
    with pytest.raises(ReconciliationError, match="not finished"):
        _ = bob.corrected_key
    with pytest.raises(ProtocolAbort, match="in state"):
        bob.handle(ParityReply(parities=np.array([1])))
    bob.first_message()
    with pytest.raises(ReconciliationError, match="already started"):
        bob.first_message()
    with pytest.raises(ProtocolAbort, match="expected a ParityReply"):
        bob.handle(Done())
    with pytest.raises(ProtocolAbort, match="top-level parities"):
        bob.handle(ParityReply(parities=np.array([1])))


def test_postproc_never_imports_physics_or_profiles() -> None:
    banned = ("diqkd.physics", "diqkd.profiles", "diqkd.cli", "typer")
    for path in SRC.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(banned), f"{path.name} imports {name}"
