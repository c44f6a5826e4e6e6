"""Party randomness and the canonical wire form of protocol messages."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from diqkd.errors import DiqkdError, ProtocolAbort
from diqkd.protocol import SeededRandomness, SystemRandomness, is_secure
from diqkd.protocol.messages import (
    Abort,
    AnnouncedInputs,
    EstimationResult,
    Hello,
    HeraldAnnouncement,
    PrivacyAmplification,
    Reconciliation,
    RoundTypes,
    decode,
)


def test_only_the_os_csprng_is_secure() -> None:
    assert is_secure(SystemRandomness())
    assert not is_secure(SeededRandomness(1))
    assert SystemRandomness().child("x").kind == "os-csprng"
    assert "seed" not in repr(SeededRandomness(123)).replace("<seed>", "")


def test_seeded_children_are_reproducible_and_distinct() -> None:
    a, b = SeededRandomness(5).child("inputs"), SeededRandomness(5).child("inputs")
    np.testing.assert_array_equal(a.bits(100), b.bits(100))
    c = SeededRandomness(5).child("secrets")
    assert not np.array_equal(SeededRandomness(5).child("inputs").bits(256), c.bits(256))


@pytest.mark.parametrize("source", [SystemRandomness(), SeededRandomness(9)])
def test_bernoulli_frequency(source: SystemRandomness | SeededRandomness) -> None:
    n, p = 200_000, 0.05
    k = int(source.bernoulli(n, p).sum())
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(k - n * p) < 5 * sigma  # 5σ: false alarm ≈ 6e-7
    bits = source.bits(n)
    assert abs(int(bits.sum()) - n / 2) < 5 * math.sqrt(n / 4)


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_bad_counts_and_probabilities(bad: object) -> None:
    with pytest.raises(DiqkdError):
        SystemRandomness().bits(bad)  # type: ignore[arg-type]
    with pytest.raises(DiqkdError):
        SeededRandomness(1).bernoulli(3, 2.0)


bit_arrays = st.lists(st.integers(0, 1), min_size=0, max_size=70).map(
    lambda v: np.array(v, dtype=np.uint8)
)


@given(bit_arrays, st.integers(0, 10**6), st.text(max_size=20))
def test_bit_messages_round_trip(bits: np.ndarray, chunk: int, digest: str) -> None:
    for message in (
        RoundTypes(n_bits=bits.size, bits=bits, chunk=chunk, herald_digest=digest),
        AnnouncedInputs(n_bits=bits.size, bits=bits, n_discarded=chunk),
        PrivacyAmplification(n_bits=bits.size, bits=bits, output_bits=chunk, key_id=digest),
    ):
        back = decode(message.to_bytes())
        assert type(back) is type(message)
        assert back.to_bytes() == message.to_bytes()
        np.testing.assert_array_equal(back.bits, bits)  # type: ignore[attr-defined]


@given(
    st.booleans(),
    st.floats(-1e6, 1e6, allow_nan=False),
    st.integers(0, 10**9),
    st.text(max_size=40),
)
def test_scalar_messages_round_trip(accept: bool, stat: float, count: int, text: str) -> None:
    for message in (
        EstimationResult(
            accept=accept,
            statistic=stat,
            test_rounds=count,
            wins=count,
            key_rounds=count,
            key_errors=0,
            reason=text,
        ),
        Hello(session_id=text, parameters_digest=text),
        Abort(reason=text),
        Reconciliation(frame=text, payload=text.encode()),
    ):
        assert decode(message.to_bytes()) == message


def test_herald_announcement_round_trip() -> None:
    rounds = np.array([3, 9, 2**40], dtype=np.uint64)
    back = decode(HeraldAnnouncement(chunk=1, n_events=3, rounds=rounds).to_bytes())
    assert isinstance(back, HeraldAnnouncement)
    np.testing.assert_array_equal(back.rounds, rounds)


@given(st.binary(max_size=80))
def test_garbage_never_decodes_silently(data: bytes) -> None:
    try:
        message = decode(data)
    except ProtocolAbort:
        return
    assert message.to_bytes() == data  # anything accepted is canonical


def test_malformed_messages_are_rejected() -> None:
    good = RoundTypes(n_bits=3, bits=np.array([1, 0, 1], dtype=np.uint8), chunk=0).to_bytes()
    with pytest.raises(ProtocolAbort, match=r"truncated|payload"):
        decode(good[:-1])
    with pytest.raises(ProtocolAbort, match="payload"):
        decode(good + b"\x00")
    padded = bytearray(good)
    padded[-1] |= 0x01  # a padding bit set
    with pytest.raises(ProtocolAbort, match="padding"):
        decode(bytes(padded))
    spaced = good.replace(b'"chunk":0', b'"chunk": 0')
    with pytest.raises(ProtocolAbort):
        decode(spaced)
    with pytest.raises(ProtocolAbort, match="magic"):
        decode(b"XXXX" + good[4:])
