"""Every attack behaves as stated (seeded runs through the real protocol).

Statistical tolerances are K_SIGMA binomial standard deviations of the quantity checked.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from diqkd.adversary import (
    AttackReport,
    BranchDevices,
    ManInTheMiddle,
    entangling_target_chsh,
    get_strategy,
    list_strategies,
    purification_branches,
    rank2_attack_state,
    run_attack,
)
from diqkd.adversary.attacks import _design
from diqkd.errors import DiqkdError
from diqkd.physics import bell_statistics
from diqkd.physics.correlations import measurement_shrink
from diqkd.profiles import load_profile
from diqkd.protocol import SeededRandomness, auth_key_bytes, run_session

K_SIGMA = 5.0
EVENTS = 300_000  # the smallest n (in steps of 10⁵) at which the honest link certifies key
SEED = 1
NAMES = [
    "intercept-resend",
    "local-deterministic",
    "predictable-inputs",
    "predictable-inputs-stealthy",
    "entangling",
    "mitm",
    "mitm-drop",
    "side-channel",
]


@pytest.fixture(scope="module")
def reports() -> dict[str, AttackReport]:
    return {name: run_attack(name, events=EVENTS, seed=SEED) for name in NAMES}


def chsh_sigma(report: AttackReport) -> float:
    """σ of S = 8ŵ − 4 from m test rounds at the observed winning frequency."""
    m = report.details["test_rounds"]
    w = (4 + report.details["ground_truth_chsh"]) / 8
    return 8 * math.sqrt(max(w * (1 - w), 1 / m) / m)


def test_registry() -> None:
    assert [s.name for s in list_strategies()] == NAMES
    assert get_strategy("side-channel").outside_model
    assert not get_strategy("entangling").outside_model
    with pytest.raises(DiqkdError, match="unknown attack strategy"):
        get_strategy("quantum-hacking")
    with pytest.raises(DiqkdError):
        run_attack("mitm", events=0)
    with pytest.raises(DiqkdError):
        run_attack("mitm", seed=-1)


def test_json_contract(reports: dict[str, AttackReport]) -> None:
    for name, report in reports.items():
        doc = report.to_dict()
        text = json.dumps(doc, allow_nan=False)  # NaN would break the JSON contract
        assert json.loads(text)["strategy"] == name
        for key in ("strategy", "chsh", "qber", "aborted", "key_bits", "eve_information_bits"):
            assert key in doc


def test_deterministic_for_a_seed() -> None:
    a = run_attack("predictable-inputs", events=EVENTS, seed=4).to_dict()
    b = run_attack("predictable-inputs", events=EVENTS, seed=4).to_dict()
    assert a == b


def test_intercept_resend_aborts(reports: dict[str, AttackReport]) -> None:
    r = reports["intercept-resend"]
    assert r.aborted and r.key_bits == 0 and r.eve_information_bits == 0
    s = r.details["ground_truth_chsh"]
    assert abs(s - r.details["predicted_chsh"]) < K_SIGMA * chsh_sigma(r)
    assert r.details["predicted_chsh"] <= 2.0
    # Eve measured Alice's atom: she knows Alice's key-round outputs up to readout errors.
    assert r.details["eve_raw_key_agreement"] > 0.99


def test_local_deterministic_aborts(reports: dict[str, AttackReport]) -> None:
    r = reports["local-deterministic"]
    assert r.aborted and r.key_bits == 0
    assert "Bell test failed" in r.abort_reason
    assert abs(r.details["ground_truth_chsh"] - 2.0) < K_SIGMA * chsh_sigma(r)
    assert r.details["ground_truth_qber"] == 0.0
    assert r.details["eve_raw_key_agreement"] == 1.0


def test_predictable_inputs_fake_s4_and_are_flagged(reports: dict[str, AttackReport]) -> None:
    r = reports["predictable-inputs"]
    assert r.details["ground_truth_chsh"] == 4.0
    assert r.details["tsirelson_flag"]["flagged"]
    if r.aborted:  # once the protocol applies the Tsirelson check
        assert r.key_bits == 0
        assert re.search(r"Tsirelson|quantum maximum|2√2", r.abort_reason)
    else:  # today: key is output, and Eve holds all of it
        assert r.key_bits > 0
        assert r.eve_information_bits == r.key_bits
        assert r.details["eve_key_agreement"] == 1.0


def test_stealthy_predictable_inputs_are_undetectable(reports: dict[str, AttackReport]) -> None:
    r = reports["predictable-inputs-stealthy"]
    assert not r.aborted and r.key_bits > 0
    assert r.eve_information_bits == r.key_bits  # Eve knows the whole key
    assert not r.details["tsirelson_flag"]["flagged"]
    assert r.details["input_randomness_p_value"] > 1e-3  # the inputs look perfectly random
    assert abs(r.details["ground_truth_chsh"] - r.details["target_chsh"]) < K_SIGMA * chsh_sigma(r)


def test_entangling_attack_passes_and_eve_learns_nothing_measurable(
    reports: dict[str, AttackReport],
) -> None:
    r = reports["entangling"]
    assert not r.aborted and r.key_bits > 0
    assert r.details["statistic"] >= r.details["statistic_threshold"]
    # Eve's raw-key guess rate: P(g = a) = Σ_g w_g P_g(a = guess_g | x = 0) from the model.
    prof = load_profile("ustc-2026")
    _, params = _design(prof.content_hash(), prof, 11.0, EVENTS)
    k = measurement_shrink(prof.atom.readout_fidelity, prof.measurement.angle_error_rad)
    s_state = entangling_target_chsh(params, margin_sigma=2.0) / k**2
    assert r.details["attack_state_chsh"] == pytest.approx(s_state)
    rho = rank2_attack_state(s_state)
    z = np.array([0.0, 0.0, 1.0])
    settings = bell_statistics(rho, shrink_a=k, shrink_b=k, key_axis=z)
    br = purification_branches(rho, key_axis=z)
    p_hit = 0.0
    for w, state, g in zip(br.weights, br.states, br.guesses, strict=True):
        t = bell_statistics(
            state,
            shrink_a=k,
            shrink_b=k,
            alice_settings=settings.alice_settings,
            bob_settings=settings.bob_settings,
        ).correlations
        p_hit += w * t[0, 2].sum(axis=1)[g]
    m_key = EVENTS - r.details["test_rounds"]
    raw = r.details["eve_raw_key_agreement"]
    assert abs(raw - p_hit) < K_SIGMA * math.sqrt(p_hit * (1 - p_hit) / m_key)
    assert raw > 0.7  # Eve knows much of the raw key ...
    # ... but her hashed guess agrees with the final key like a coin: |f̂ − ½| ≤ Kσ.
    n = r.details["eve_key_compared_bits"]
    assert n == r.key_bits
    assert abs(r.details["eve_key_agreement"] - 0.5) < K_SIGMA * 0.5 / math.sqrt(n)
    lo, hi = r.details["eve_key_agreement_interval_99"]
    assert lo < 0.5 < hi or abs(r.details["eve_key_agreement"] - 0.5) < 0.01
    # The 99 % upper bound is a few bits (≈ (2/ln2)·z²/4 ≈ 5 bits, independent of ℓ).
    assert r.eve_information_upper_bits < 20
    assert r.eve_information_bits <= r.eve_information_upper_bits


def test_mitm_flip_aborts_on_authentication(reports: dict[str, AttackReport]) -> None:
    r = reports["mitm"]
    assert r.aborted and r.key_bits == 0
    assert "authentication" in r.abort_reason
    assert r.details["tampered_messages"] == 1


def test_mitm_drop_aborts(reports: dict[str, AttackReport]) -> None:
    r = reports["mitm-drop"]
    assert r.aborted and r.key_bits == 0
    assert "never reached" in r.abort_reason
    assert r.details["tampered_messages"] == 1


def test_side_channel_outputs_key_eve_knows(reports: dict[str, AttackReport]) -> None:
    r = reports["side-channel"]
    assert r.outside_model
    assert not r.aborted and r.key_bits > 0
    assert r.eve_information_bits == r.key_bits
    assert r.details["eve_key_agreement"] == 1.0
    assert r.to_dict()["outside_model"] is True


def test_tampered_reconciliation_fails_the_batch_tag() -> None:
    """A flipped parity in Alice's Cascade replies is caught by the batch authentication."""
    prof = load_profile("ustc-2026")
    link, params = _design(prof.content_hash(), prof, 11.0, EVENTS)
    devices = BranchDevices(
        tables=link.correlations[None],
        weights=[1.0],
        rng=np.random.default_rng(3),
        herald_probability=link.herald_probability,
        attempt_period_s=link.attempt_period_s,
    )
    eve = ManInTheMiddle(("Reconciliation",), "flip", occurrence=1, sender="alice")
    root = SeededRandomness(3)
    result = run_session(
        params=params,
        alice_randomness=root.child("alice"),
        bob_randomness=root.child("bob"),
        auth_key=root.child("key").random_bytes(auth_key_bytes(EVENTS, 1 << 17)),
        devices=devices,
        adversary=eve,
        chunk_events=1 << 17,
    )
    assert eve.acted and result.tampered_messages == 1
    assert result.aborted and result.key_bits == 0
    assert "authentication" in result.abort_reason
