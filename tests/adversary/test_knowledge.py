"""Eve's reconstruction tools and the information estimate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from diqkd.adversary import (
    BranchDevices,
    Eavesdropper,
    certificate_information_bits,
    key_information,
    public_view,
    replay_bob,
)
from diqkd.adversary.attacks import _design
from diqkd.errors import DiqkdError
from diqkd.profiles import load_profile
from diqkd.protocol import SeededRandomness, auth_key_bytes, run_session


def test_identical_keys_carry_all_information() -> None:
    k = np.random.default_rng(1).integers(0, 2, 5000, dtype=np.uint8)
    info = key_information(k, k)
    assert info.agreement == 1.0 and info.information_bits == pytest.approx(5000)
    assert info.information_upper_bits == pytest.approx(5000)
    assert info.agreement_low > 0.998


def test_independent_guess_is_consistent_with_no_information() -> None:
    rng = np.random.default_rng(2)
    n = 40_000
    k = rng.integers(0, 2, n, dtype=np.uint8)
    g = rng.integers(0, 2, n, dtype=np.uint8)
    info = key_information(k, g, confidence=0.99)
    assert info.agreement_low < 0.5 < info.agreement_high
    # Upper bound ≈ (2/ln 2)·N·δ², δ ≈ z·½/√N: a few bits whatever N (z = 2.58 at 99 %).
    z = 2.5758
    approx = 2 / math.log(2) * n * (z * 0.5 / math.sqrt(n) + abs(info.agreement - 0.5)) ** 2
    assert info.information_upper_bits < 1.5 * approx
    assert info.information_bits <= info.information_upper_bits


def test_key_information_checks_input() -> None:
    with pytest.raises(DiqkdError):
        key_information(np.zeros(3, np.uint8), np.zeros(4, np.uint8))
    with pytest.raises(DiqkdError):
        key_information(np.zeros(3, np.uint8), np.zeros(3, np.uint8), confidence=1.0)


def test_certificate_information_bound() -> None:
    """Alicki–Fannes–Winter: 2εℓ + (1+ε)h(ε/(1+ε))."""
    eps, ell = 1e-6, 10_000
    q = eps / (1 + eps)
    h = -q * math.log2(q) - (1 - q) * math.log2(1 - q)
    assert certificate_information_bits(eps, ell) == pytest.approx(2 * eps * ell + (1 + eps) * h)
    assert certificate_information_bits(0.0, ell) == 0.0


def test_passive_eve_changes_nothing_and_replays_bob() -> None:
    """With Bob's (y, b) and the wire, Eve's replay equals Bob's corrected string = Alice's."""
    prof = load_profile("ustc-2026")
    n = 300_000
    link, params = _design(prof.content_hash(), prof, 11.0, n)  # shared with test_attacks
    dev = BranchDevices(
        tables=link.correlations[None],
        weights=[1.0],
        leaky=True,
        rng=np.random.default_rng(9),
        herald_probability=link.herald_probability,
        attempt_period_s=link.attempt_period_s,
    )
    eve = Eavesdropper()
    root = SeededRandomness(9)
    result = run_session(
        params=params,
        alice_randomness=root.child("alice"),
        bob_randomness=root.child("bob"),
        auth_key=root.child("key").random_bytes(auth_key_bytes(n, 1 << 17)),
        devices=dev,
        adversary=eve,
        chunk_events=1 << 17,
    )
    assert not result.aborted and result.tampered_messages == 0
    assert len(eve.messages) >= len(result.transcript)
    view = public_view(eve.messages)
    truth = dev.ground_truth()
    assert view.test.size == n and np.array_equal(view.test, truth.y < 2)
    assert view.x_test is not None and np.array_equal(view.x_test, truth.x[truth.y < 2])
    string = replay_bob(view, b=truth.b, y=truth.y)
    # Alice's string differs from her outputs only by the noisy-preprocessing flips (key rounds).
    flips = string != truth.a
    assert not flips[truth.y < 2].any()
    p = params.flip_probability
    m = int(np.count_nonzero(truth.y == 2))
    assert abs(flips.sum() - p * m) < 5 * math.sqrt(m * p * (1 - p))
    with pytest.raises(DiqkdError):
        replay_bob(view, b=truth.b[:-1], y=truth.y[:-1])
