"""The reconciliation recipe: QBER estimation by disclosed sample, method choice, results."""

from __future__ import annotations

import dataclasses
import importlib
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray

from diqkd.errors import DiqkdError, ReconciliationError
from diqkd.postproc import cascade, ledger, messages
from diqkd.postproc.ledger import LeakLedger
from diqkd.postproc.reconcile import (
    QBER_SAMPLE_CAP,
    binary_entropy,
    choose_method,
    efficiency,
    reconcile,
    sample_size,
)


def noisy_pair(n: int, qber: float, seed: int) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    rng = np.random.default_rng(seed)
    alice = rng.integers(0, 2, n, dtype=np.uint8)
    return alice, alice ^ (rng.random(n) < qber).astype(np.uint8)


def test_known_qber_reconciles_whole_frame() -> None:
    alice, bob = noisy_pair(10_000, 0.03, 1)
    alice_copy, bob_copy = alice.copy(), bob.copy()
    result = reconcile(alice, bob, qber=0.03, rng_seed_for_public_shuffles=5)
    np.testing.assert_array_equal(result.bob_corrected, alice)
    np.testing.assert_array_equal(result.kept_indices, np.arange(10_000))
    assert result.n_bits == 10_000
    assert result.method == "cascade"
    assert result.sample_bits == 0
    assert result.leaked_bits == result.correction_bits == result.ledger.leaked_bits
    assert result.messages == result.ledger.messages == 2 * result.rounds + 1
    assert result.qber_estimate == 0.03
    assert result.shuffle_seed == 5
    # f = leak / (n·h(Q)) near the published 1.06–1.10 (one frame; the benchmark averages).
    q_true = float(np.mean(alice ^ bob))
    assert 1.0 < efficiency(result.correction_bits, 10_000, q_true) < 1.3
    # Inputs untouched, outputs read-only.
    np.testing.assert_array_equal(alice, alice_copy)
    np.testing.assert_array_equal(bob, bob_copy)
    assert not result.bob_corrected.flags.writeable
    assert not result.kept_indices.flags.writeable
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.leaked_bits = 0  # type: ignore[misc]


def test_estimated_qber_discards_the_sample() -> None:
    n, qber = 20_000, 0.04
    alice, bob = noisy_pair(n, qber, 2)
    result = reconcile(alice, bob, rng_seed_for_public_shuffles=9)
    m = sample_size(n)
    assert m == 2000
    assert result.kept_indices.size == n - m
    assert np.all(np.diff(result.kept_indices) > 0)
    np.testing.assert_array_equal(result.bob_corrected, alice[result.kept_indices])
    # The sample crossed as a RevealRequest/RevealReply pair, counted in the ledger.
    kinds = [entry.kind for entry in result.ledger.entries]
    assert kinds[:2] == ["RevealRequest", "RevealReply"]
    assert result.sample_bits == m == result.ledger.bits_by_kind()["RevealReply"]
    assert result.leaked_bits == result.sample_bits + result.correction_bits
    assert result.correction_bits == result.ledger.bits_by_kind()["ParityReply"]
    assert result.rounds >= 2
    # Estimate within 5 σ of the truth (σ = sqrt(Q(1−Q)/m) ≈ 0.0044).
    sigma = math.sqrt(qber * (1 - qber) / m)
    assert abs(result.qber_estimate - qber) < 5 * sigma
    # Sample positions come from the public seed: same seed, same positions.
    again = reconcile(alice, bob, rng_seed_for_public_shuffles=9)
    np.testing.assert_array_equal(again.kept_indices, result.kept_indices)
    assert again.ledger.transcript_digest() == result.ledger.transcript_digest()
    other = reconcile(alice, bob, rng_seed_for_public_shuffles=10)
    assert other.ledger.transcript_digest() != result.ledger.transcript_digest()


def test_estimate_handles_an_error_free_sample() -> None:
    alice = np.random.default_rng(3).integers(0, 2, 1000, dtype=np.uint8)
    result = reconcile(alice, alice.copy(), rng_seed_for_public_shuffles=1)
    assert result.qber_estimate == pytest.approx(0.5 / (sample_size(1000) + 1))
    np.testing.assert_array_equal(result.bob_corrected, alice[result.kept_indices])


def test_sample_size_rule() -> None:
    assert sample_size(1) == 1
    assert sample_size(99) == 9
    assert sample_size(10**4) == 1000
    assert sample_size(10**7) == QBER_SAMPLE_CAP


@given(n=st.integers(200, 3000), qber=st.floats(0.0, 0.12), seed=st.integers(0, 2**32))
def test_random_frames_through_the_recipe(n: int, qber: float, seed: int) -> None:
    alice, bob = noisy_pair(n, qber, seed)
    result = reconcile(alice, bob, method="auto", rng_seed_for_public_shuffles=seed)
    assert result.method == "cascade"
    assert result.ledger.leaked_bits == result.leaked_bits
    assert result.bob_corrected.size == result.kept_indices.size == n - sample_size(n)
    residual = int(np.count_nonzero(result.bob_corrected ^ alice[result.kept_indices]))
    assert residual % 2 == 0  # every disclosed parity matches at the end


def test_session_ledger_accumulates_and_takes_tags() -> None:
    session = LeakLedger()
    session.add_tag(10, label="earlier")
    alice, bob = noisy_pair(5000, 0.02, 4)
    result = reconcile(alice, bob, qber=0.02, ledger=session, rng_seed_for_public_shuffles=4)
    assert result.ledger is session
    assert session.leaked_bits == 10 + result.leaked_bits
    session.add_tag(64)
    assert session.leaked_bits == 74 + result.leaked_bits


def test_method_choice() -> None:
    assert choose_method(10**4, 0.03) == "cascade"
    alice, bob = noisy_pair(1000, 0.03, 5)
    assert reconcile(alice, bob, method="auto", qber=0.03).method == "cascade"
    alice, bob = noisy_pair(10_000, 0.05, 5)
    ldpc_result = reconcile(alice, bob, method="ldpc", qber=0.05, rng_seed_for_public_shuffles=1)
    assert ldpc_result.method == "ldpc"
    assert np.array_equal(ldpc_result.bob_corrected, alice[ldpc_result.kept_indices])
    with pytest.raises(DiqkdError, match="unknown method"):
        reconcile(alice, bob, method="turbo")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("alice", "bob", "kwargs", "match"),
    [
        (np.zeros(10, np.uint8), np.zeros(11, np.uint8), {}, "10 bits and Bob's 11"),
        (np.zeros(0, np.uint8), np.zeros(0, np.uint8), {}, "empty"),
        (np.array([0, 1, 3]), np.array([0, 1, 1]), {}, "only 0 and 1"),
        (np.array([0, 1, 1]), np.array([0.5, 1, 1]), {}, "dtype float64"),
        (np.ones(1, np.uint8), np.ones(1, np.uint8), {}, "too short"),
        (np.ones(8, np.uint8), np.ones(8, np.uint8), {"qber": 0.7}, "QBER"),
        (np.ones(8, np.uint8), np.ones(8, np.uint8), {"qber": math.nan}, "QBER"),
        (
            np.ones(8, np.uint8),
            np.ones(8, np.uint8),
            {"rng_seed_for_public_shuffles": -1},
            "non-negative",
        ),
        (
            np.ones(8, np.uint8),
            np.ones(8, np.uint8),
            {"rng_seed_for_public_shuffles": True},
            "non-negative",
        ),
        (np.ones(8, np.uint8), np.ones(8, np.uint8), {"backend": "gpu"}, "backend"),
    ],
)
def test_bad_inputs_raise(
    alice: NDArray[np.generic], bob: NDArray[np.generic], kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ReconciliationError, match=match):
        reconcile(alice, bob, **kwargs)  # type: ignore[arg-type]


def test_uncorrelated_keys_abort_after_estimation() -> None:
    alice = np.zeros(2000, np.uint8)
    with pytest.raises(DiqkdError, match="uncorrelated"):
        reconcile(alice, np.ones(2000, np.uint8), rng_seed_for_public_shuffles=1)


def test_efficiency_and_entropy() -> None:
    assert binary_entropy(0.5) == 1.0
    assert binary_entropy(0.0) == binary_entropy(1.0) == 0.0
    assert binary_entropy(0.11) == pytest.approx(0.4999, abs=1e-4)
    assert efficiency(1000, 10_000, 0.11) == pytest.approx(1000 / (10_000 * binary_entropy(0.11)))
    assert efficiency(5, 100, 0.0) == math.inf
    with pytest.raises(ReconciliationError):
        binary_entropy(1.5)
    with pytest.raises(ReconciliationError):
        efficiency(1, 0, 0.1)


# The package re-exports the function ``reconcile``, which shadows the submodule attribute.
reconcile_module = importlib.import_module("diqkd.postproc.reconcile")


@pytest.mark.parametrize("module", [cascade, ledger, messages, reconcile_module])
def test_modules_list_their_public_api(module: object) -> None:
    names = module.__all__  # type: ignore[attr-defined]
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(module, name), f"{module}.{name} is listed but missing"
