"""LDPC reconciliation: PEG codes, BP syndrome decoders (numba vs numpy), the two parties."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from diqkd.errors import ProtocolAbort, ReconciliationError
from diqkd.postproc._ldpc_codes import build_code, parse_code_id, syndrome, variable_degrees
from diqkd.postproc._ldpc_kernels import channel_llr, decode
from diqkd.postproc.ldpc import (
    LdpcAlice,
    LdpcBob,
    choose_syndrome_length,
    run_ldpc,
)
from diqkd.postproc.ledger import LeakLedger
from diqkd.postproc.messages import RevealReply, SyndromeMessage
from diqkd.postproc.reconcile import binary_entropy, reconcile


def noisy_pair(n: int, qber: float, seed: int) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    rng = np.random.default_rng(seed)
    alice = rng.integers(0, 2, n, dtype=np.uint8)
    return alice, alice ^ (rng.random(n) < qber).astype(np.uint8)


def test_construction_is_deterministic_and_well_formed() -> None:
    a = build_code(2000, 400, 7)
    b = build_code.__wrapped__(2000, 400, 7)  # bypass the cache: rebuilt from scratch
    np.testing.assert_array_equal(a.check_ptr, b.check_ptr)
    np.testing.assert_array_equal(a.check_var, b.check_var)
    c = build_code.__wrapped__(2000, 400, 8)
    assert not np.array_equal(a.check_var, c.check_var)
    h = a.dense()
    assert h.shape == (400, 2000)
    np.testing.assert_array_equal(h.sum(axis=0), variable_degrees(2000, 400))
    row_deg = h.sum(axis=1)
    assert row_deg.max() - row_deg.min() <= 2  # PEG's lowest-degree rule concentrates checks
    # PEG avoids 4-cycles (two columns sharing two rows) where the graph leaves room: among
    # the low-degree columns of this code, and everywhere in a rate-1/2 code of this length
    low = h[:, h.sum(axis=0) <= 7].astype(np.float64)  # BLAS product
    overlap = low.T @ low
    np.fill_diagonal(overlap, 0)
    assert overlap.max() <= 1
    half = build_code(2000, 1000, 7).dense().astype(np.float64)
    overlap = half.T @ half
    np.fill_diagonal(overlap, 0)
    assert overlap.max() <= 1
    assert parse_code_id(a.code_id) == (2000, 400, 7)


def test_syndrome_matches_dense_product() -> None:
    code = build_code(500, 120, 1)
    x = np.random.default_rng(0).integers(0, 2, 500, dtype=np.uint8)
    np.testing.assert_array_equal(syndrome(code, x), (code.dense().astype(int) @ x) % 2)


@pytest.mark.parametrize(
    ("n", "m", "seed"), [(4, 2, 0), (1000, 600, 0), (1000, 1, 0), (1000, 100, -1)]
)
def test_bad_code_sizes_raise(n: int, m: int, seed: int) -> None:
    with pytest.raises(ReconciliationError):
        build_code(n, m, seed)


@pytest.mark.parametrize("name", ["", "peg-rsu20:n=10:m=3", "other:n=100:m=20:seed=0"])
def test_bad_code_names_raise(name: str) -> None:
    with pytest.raises(ReconciliationError):
        parse_code_id(name)


def test_flooding_numba_matches_numpy_reference() -> None:
    for qber, seed in [(0.02, 1), (0.06, 2)]:  # one converging, one failing frame
        code = build_code(3000, 600, 3)
        x, y = noisy_pair(3000, qber, seed)
        s, prior = syndrome(code, x), channel_llr(y, qber)
        a = decode(code.check_ptr, code.check_var, s, prior, max_iterations=30, schedule="flooding")
        b = decode(
            code.check_ptr, code.check_var, s, prior, max_iterations=30, schedule="flooding-numpy"
        )
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:3] == b[1:3]
        np.testing.assert_allclose(a[3], b[3], rtol=1e-9, atol=1e-9)
    assert not a[1]  # the second frame is beyond this code: the failure path is compared too


def test_layered_and_flooding_agree_on_easy_frames() -> None:
    code = build_code(3000, 600, 3)
    for seed in range(3):
        x, y = noisy_pair(3000, 0.02, seed)
        s, prior = syndrome(code, x), channel_llr(y, 0.02)
        lay = decode(code.check_ptr, code.check_var, s, prior, schedule="layered")
        flo = decode(code.check_ptr, code.check_var, s, prior, schedule="flooding-numpy")
        assert lay[1] and flo[1]
        np.testing.assert_array_equal(lay[0], x)
        np.testing.assert_array_equal(flo[0], x)
        assert lay[2] <= flo[2]


def test_decoder_rejects_bad_arguments() -> None:
    code = build_code(500, 120, 1)
    s, prior = np.zeros(120, np.uint8), np.zeros(500)
    with pytest.raises(ReconciliationError):
        decode(code.check_ptr, code.check_var, s, prior, schedule="bogus")  # type: ignore[arg-type]
    with pytest.raises(ReconciliationError):
        decode(code.check_ptr, code.check_var, s, prior, max_iterations=0)
    with pytest.raises(ReconciliationError):
        decode(code.check_ptr, code.check_var, s[:-1], prior)
    with pytest.raises(ReconciliationError):
        channel_llr(np.zeros(5, np.uint8), 0.5)


@pytest.mark.parametrize("qber", [0.01, 0.03, 0.05])
def test_protocol_reconciles_and_ledger_counts_every_bit(qber: float) -> None:
    n = 10_000
    alice, bob = noisy_pair(n, qber, 11)
    ledger = LeakLedger()
    a, b = LdpcAlice(alice, qber), LdpcBob(bob, qber)
    run = run_ldpc(a, b, ledger, through_bytes=True)
    assert run.converged and a.finished and b.done
    np.testing.assert_array_equal(b.corrected_key, alice)
    m = choose_syndrome_length(n, qber)
    assert a.code.m == m
    assert ledger.leaked_bits == run.disclosed_bits == m + b.revealed_bits
    by_kind = ledger.bits_by_kind()
    assert by_kind["SyndromeMessage"] == m
    assert by_kind.get("RevealReply", 0) == b.revealed_bits
    assert run.rounds == 1 + b.reveal_rounds
    assert run.messages == 2 * run.rounds
    f = ledger.leaked_bits / (n * binary_entropy(qber))
    assert 1.0 < f < 1.6


def test_blind_reveals_rescue_a_too_short_syndrome() -> None:
    n, qber = 5000, 0.04
    alice, bob = noisy_pair(n, qber, 5)
    ledger = LeakLedger()
    a = LdpcAlice(alice, qber, efficiency=1.0)  # at the Shannon limit: BP cannot decode
    b = LdpcBob(bob, qber, max_reveals=30, reveal_fraction=0.05)
    run = run_ldpc(a, b, ledger)
    assert b.reveal_rounds >= 1
    assert run.converged
    np.testing.assert_array_equal(b.corrected_key, alice)
    assert ledger.leaked_bits == a.code.m + b.revealed_bits
    assert ledger.bits_by_kind()["RevealReply"] == b.revealed_bits


def test_unconverged_frame_is_reported_and_reconcile_aborts() -> None:
    alice, bob = noisy_pair(3000, 0.12, 2)
    a, b = LdpcAlice(alice, 0.02), LdpcBob(bob, 0.02, max_reveals=1)
    run = run_ldpc(a, b, LeakLedger())
    assert not run.converged and not b.converged
    np.testing.assert_array_equal(b.corrected_key, bob)
    with pytest.raises(ProtocolAbort, match="did not converge"):
        reconcile(alice, bob, method="ldpc", qber=0.02, rng_seed_for_public_shuffles=1)


def test_reconcile_routes_ldpc() -> None:
    alice, bob = noisy_pair(10_000, 0.03, 4)
    result = reconcile(alice, bob, method="ldpc", qber=0.03, rng_seed_for_public_shuffles=9)
    assert result.method == "ldpc"
    np.testing.assert_array_equal(result.bob_corrected, alice)
    assert result.leaked_bits == result.ledger.leaked_bits
    estimated = reconcile(alice, bob, method="ldpc", rng_seed_for_public_shuffles=9)
    np.testing.assert_array_equal(estimated.bob_corrected, alice[estimated.kept_indices])
    assert reconcile(alice, bob, qber=0.03, method="auto").method == "cascade"


@pytest.mark.parametrize(
    "bad",
    [np.zeros(0, np.uint8), np.full(10, 2), np.zeros((2, 8), np.uint8), np.zeros(10, float)],
)
def test_bad_keys_raise(bad: NDArray[np.generic]) -> None:
    with pytest.raises(ReconciliationError):
        LdpcAlice(bad, 0.03)
    with pytest.raises(ReconciliationError):
        LdpcBob(bad, 0.03)


@pytest.mark.parametrize("qber", [-0.1, 0.5, float("nan")])
def test_bad_qber_raises(qber: float) -> None:
    key = np.zeros(1000, np.uint8)
    with pytest.raises(ReconciliationError):
        LdpcAlice(key, qber)
    with pytest.raises(ReconciliationError):
        LdpcBob(key, qber)


def test_bad_parameters_raise() -> None:
    key = np.zeros(1000, np.uint8)
    with pytest.raises(ReconciliationError):
        LdpcAlice(key, 0.3)  # needs rate < 1/2
    with pytest.raises(ReconciliationError):
        LdpcAlice(key, 0.03, efficiency=0.9)
    with pytest.raises(ReconciliationError):
        LdpcBob(key, 0.03, max_reveals=-1)
    with pytest.raises(ReconciliationError):
        LdpcBob(key, 0.03, reveal_fraction=0.0)


def test_malformed_messages_abort() -> None:
    key = np.zeros(1000, np.uint8)
    bob = LdpcBob(key, 0.03)
    with pytest.raises(ProtocolAbort):
        bob.handle(RevealReply(bits=np.ones(1, np.uint8)))
    with pytest.raises(ProtocolAbort):
        bob.handle(SyndromeMessage(code_id="nonsense", syndrome=np.zeros(2, np.uint8)))
    with pytest.raises(ProtocolAbort):  # code for another frame length
        bob.handle(
            SyndromeMessage(
                code_id="peg-rsu20:n=2000:m=200:seed=0", syndrome=np.zeros(200, np.uint8)
            )
        )
    alice = LdpcAlice(key, 0.03)
    with pytest.raises(ProtocolAbort):
        alice.handle(SyndromeMessage(code_id="x", syndrome=np.zeros(1, np.uint8)))


def test_syndrome_length_ladder() -> None:
    for qber in (0.01, 0.02, 0.05, 0.08):
        m = choose_syndrome_length(100_000, qber, 1.1)
        need = 1.1 * 100_000 * binary_entropy(qber)
        assert need <= m <= 1.021 * need + 1
