"""End-to-end DI-QKD sessions: honest runs, reproducibility, records, and every clean abort."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from diqkd.errors import DiqkdError, RecordsError
from diqkd.physics import LinkPoint, link_point
from diqkd.postproc import KeyPool
from diqkd.profiles import load_profile
from diqkd.protocol import (
    ModelDevices,
    ProtocolParameters,
    SeededRandomness,
    SessionResult,
    design_protocol,
    distill_records,
    run_session,
    simulate_session,
)
from diqkd.protocol.channel import Party
from diqkd.protocol.roles import Bob
from diqkd.records import RecordsMetadata, write_records

N = 300_000  # the smallest block that certifies a key at 11 km (docs/finite-size.md)


@pytest.fixture(scope="module")
def link() -> LinkPoint:
    return link_point(load_profile("ustc-2026"), 11.0)


@pytest.fixture(scope="module")
def params(link: LinkPoint) -> ProtocolParameters:
    return design_protocol(expected_chsh=link.chsh, expected_qber=link.qber, n_rounds=N)


def devices(link: LinkPoint, seed: int, table: Any = None) -> ModelDevices:
    return ModelDevices(
        correlations=link.correlations if table is None else table,
        herald_probability=link.herald_probability,
        attempt_period_s=link.attempt_period_s,
        rng=np.random.default_rng(seed),
    )


def session(
    link: LinkPoint, params: ProtocolParameters, seed: int = 1, **kwargs: Any
) -> SessionResult:
    options: dict[str, Any] = {
        "params": params,
        "alice_randomness": SeededRandomness(seed).child("alice"),
        "bob_randomness": SeededRandomness(seed).child("bob"),
        "auth_key": SeededRandomness(seed).child("psk").random_bytes(4096),
    }
    if "records" not in kwargs:
        options["devices"] = kwargs.pop("devices", None) or devices(link, seed)
    options.update(kwargs)
    return run_session(**options)


@pytest.fixture(scope="module")
def honest(link: LinkPoint, params: ProtocolParameters) -> SessionResult:
    return session(link, params, seed=11)


def assert_clean_abort(result: SessionResult, match: str) -> None:
    assert result.aborted
    assert match in result.abort_reason, result.abort_reason
    assert result.alice_keys == [] and result.bob_keys == []
    assert result.key_bits == 0 and result.certificate is None


def test_honest_session_gives_identical_certified_keys(honest: SessionResult) -> None:
    assert not honest.aborted, honest.abort_reason
    (ka,), (kb,) = honest.alice_keys, honest.bob_keys
    assert ka.key_id == kb.key_id
    np.testing.assert_array_equal(ka.bits(), kb.bits())
    cert = honest.certificate
    assert cert is not None and cert.secure
    assert ka.n_bits == cert.key_length_bits == honest.certified_bits
    assert ka.certificate["key_length_bits"] == ka.n_bits
    st = honest.statistics
    # Statistics of the model (S ≈ 2.671, Q ≈ 0.031); 5σ with m ≈ 0.05 N test rounds.
    sigma_s = 8 * np.sqrt(0.834 * 0.166 / st.test_rounds)
    assert abs(st.chsh - 2.6713) < 5 * sigma_s
    assert abs(st.qber - 0.031) < 5 * np.sqrt(0.031 * 0.969 / st.key_rounds) + 0.005
    assert st.events == N
    assert honest.randomness == "seeded-simulation"
    summary = honest.summary()
    for key in ("events", "chsh", "qber", "aborted", "abort_reason", "key_bits"):
        assert key in summary
    assert summary["key_rate_per_event"] == pytest.approx(ka.n_bits / N)


def test_no_secret_in_the_transcript(honest: SessionResult) -> None:
    key = honest.alice_keys[0].key
    digests = {e.sha256 for e in honest.transcript.entries}
    assert len(digests) > 10
    assert key.hex() not in repr(honest.summary())


def test_same_seed_same_run(
    link: LinkPoint, params: ProtocolParameters, honest: SessionResult
) -> None:
    again = session(link, params, seed=11)
    assert again.summary()["transcript_sha256"] == honest.summary()["transcript_sha256"]
    assert again.alice_keys[0].key == honest.alice_keys[0].key
    other = session(link, params, seed=12)
    assert other.alice_keys[0].key != honest.alice_keys[0].key


def test_low_chsh_aborts_with_no_key(link: LinkPoint, params: ProtocolParameters) -> None:
    from diqkd.physics import bell_statistics

    # Werner state with S = 2√2·v just below the classical bound: nothing certified.
    psi = np.array([0, 1, 1, 0]) / np.sqrt(2)
    v = 0.70
    rho = v * np.outer(psi, psi) + (1 - v) * np.eye(4) / 4
    table = bell_statistics(rho, shrink_a=1.0, shrink_b=1.0).correlations
    result = session(link, params, devices=devices(link, 3, table))
    assert_clean_abort(result, "Bell test failed")
    assert result.statistics.chsh < 2.1


class Tamper:
    def __init__(self, kind: str, drop: bool = False) -> None:
        self.kind, self.drop = kind, drop

    def intercept(
        self, sender: Party, receiver: Party, kind: str, data: bytes, tag: bytes | None
    ) -> tuple[bytes, bytes | None] | None:
        if kind != self.kind:
            return data, tag
        if self.drop:
            return None
        i = len(data) // 2
        return data[:i] + bytes([data[i] ^ 0x10]) + data[i + 1 :], tag


@pytest.mark.parametrize(
    ("kind", "drop", "match"),
    [
        ("AnnouncedInputs", False, "authentic"),
        ("Reconciliation", False, "error correction aborted"),
        ("PrivacyAmplification", False, "authentic"),
        ("EstimationResult", True, "never reached"),
    ],
)
def test_tampered_or_dropped_messages_abort(
    link: LinkPoint, params: ProtocolParameters, kind: str, drop: bool, match: str
) -> None:
    result = session(link, params, adversary=Tamper(kind, drop))
    assert_clean_abort(result, match)
    assert result.tampered_messages >= 1


def test_exhausted_key_pool_aborts(link: LinkPoint, params: ProtocolParameters) -> None:
    result = session(link, params, auth_key=bytes(100))
    assert_clean_abort(result, "key pool exhausted")


def test_failed_verification_aborts(
    link: LinkPoint, params: ProtocolParameters, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Bob.finish_reconciliation

    def corrupt(self: Bob) -> None:
        original(self)
        self._corrected[17] ^= 1  # type: ignore[index]

    monkeypatch.setattr(Bob, "finish_reconciliation", corrupt)
    assert_clean_abort(session(link, params), "verification failed")


def test_persistent_pools_are_replenished(link: LinkPoint, params: ProtocolParameters) -> None:
    psk = SeededRandomness(2).random_bytes(2048)
    pools = (KeyPool(psk), KeyPool(psk))
    result = session(link, params, auth_key=None, auth_pools=pools)
    assert not result.aborted
    assert result.key_bits == result.certified_bits - result.auth_key_bits
    assert pools[0].replenished_bytes == pools[1].replenished_bytes == result.auth_key_bits // 8
    assert pools[0].take(64) == pools[1].take(64)


def test_records_and_live_give_the_same_result(tmp_path: Path) -> None:
    path = tmp_path / "run.parquet"
    live, _ = simulate_session(events=N, seed=21, save_records=path)
    from_file, params = distill_records(path, seed=21)
    assert not live.aborted and not from_file.aborted
    assert params.n_rounds == N
    for key in ("chsh", "qber", "key_bits", "leaked_bits", "statistic", "test_rounds"):
        assert live.summary()[key] == from_file.summary()[key], key
    assert live.alice_keys[0].key == from_file.alice_keys[0].key
    assert from_file.alice_keys == from_file.bob_keys


def test_distill_rejects_bad_records(tmp_path: Path) -> None:
    with pytest.raises(RecordsError):
        distill_records(tmp_path / "missing.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(RecordsError):
        distill_records(bad)
    # Independent inputs with no profile: thresholds cannot be fixed in advance.
    rng = np.random.default_rng(0)
    n = 1000
    cols = {
        "round": np.arange(n, dtype=np.uint64),
        "t_s": np.arange(n, dtype=np.float64),
        "x": rng.integers(0, 2, n, dtype=np.uint8),
        "y": rng.integers(0, 3, n, dtype=np.uint8),
        "a": rng.integers(0, 2, n, dtype=np.uint8),
        "b": rng.integers(0, 2, n, dtype=np.uint8),
    }
    plain = tmp_path / "plain.parquet"
    write_records(plain, [cols], RecordsMetadata(source="experiment"))
    with pytest.raises(DiqkdError, match="fixed before the data are seen"):
        distill_records(plain)
    with pytest.raises(DiqkdError, match="no key can be certified"):
        distill_records(plain, expected_chsh=2.7, expected_qber=0.03)
    lying = tmp_path / "lying.parquet"
    meta = RecordsMetadata(
        source="experiment", input_probs_xy=((0.01, 0.01, 0.96), (0.01, 0.01, 0.0))
    )
    write_records(lying, [cols], meta)
    with pytest.raises(RecordsError, match="not random per the declared law"):
        distill_records(lying, expected_chsh=2.7, expected_qber=0.03)


def test_devices_that_know_the_inputs_are_caught(
    link: LinkPoint, params: ProtocolParameters
) -> None:
    class Clairvoyant:
        """Boxes with a copy of the inputs: win every test round, agree on every key round."""

        def __init__(self) -> None:
            self.honest = devices(link, 5)
            self.x = np.zeros(0, np.uint8)
            self.a = np.zeros(0, np.uint8)

        def herald(self, n: int) -> Any:
            return self.honest.herald(n)

        def measure_alice(self, x: np.ndarray) -> np.ndarray:
            self.x = x
            self.a = np.random.default_rng(len(x)).integers(0, 2, len(x), dtype=np.uint8)
            return self.a

        def measure_bob(self, y: np.ndarray) -> np.ndarray:
            return (self.a ^ (self.x & (y == 1))).astype(np.uint8)  # a ⊕ b = x·y always

    result = session(link, params, devices=Clairvoyant())
    assert_clean_abort(result, "beyond Tsirelson's bound")
    assert result.statistics.chsh == pytest.approx(4.0)


@pytest.mark.parametrize("method", ["ldpc", "ldpc-qc", "ldpc-fast"])
def test_session_with_ldpc(link: LinkPoint, method: str) -> None:
    params = design_protocol(
        expected_chsh=link.chsh, expected_qber=link.qber, n_rounds=N, reconciliation=method
    )
    result = session(link, params, seed=5)
    assert not result.aborted, result.abort_reason
    (ka,), (kb,) = result.alice_keys, result.bob_keys
    assert ka.n_bits > 0 and np.array_equal(ka.bits(), kb.bits())
    # the key frame takes the QC codes; the test frame (error 1 − ω ≈ 17 %, beyond the
    # rate-½ codes) falls back to Cascade
    assert result.statistics.reconciliation_method == f"cascade+{method}"
    with pytest.raises(DiqkdError, match="ldpc-qc"):
        design_protocol(
            expected_chsh=link.chsh, expected_qber=link.qber, n_rounds=N, reconciliation="qc"
        )
