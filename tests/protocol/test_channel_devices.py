"""The authenticated channel and the honest model devices."""

from __future__ import annotations

import math

import numpy as np
import pytest

from diqkd.errors import DiqkdError, ModelError, ProtocolAbort, VerificationFailed
from diqkd.physics import link_point
from diqkd.postproc import KeyPool
from diqkd.protocol import Channel, ModelDevices, no_signalling_gap
from diqkd.protocol.channel import Party
from diqkd.protocol.messages import Abort, Hello, HeraldAnnouncement


class Flipper:
    """Flips one bit of the n-th message between Alice and Bob (or drops it)."""

    def __init__(self, target: int, drop: bool = False, tag_only: bool = False) -> None:
        self.target, self.drop, self.tag_only, self.seen = target, drop, tag_only, 0

    def intercept(
        self, sender: Party, receiver: Party, kind: str, data: bytes, tag: bytes | None
    ) -> tuple[bytes, bytes | None] | None:
        if "station" in (sender, receiver):
            return data, tag
        self.seen += 1
        if self.seen != self.target:
            return data, tag
        if self.drop:
            return None
        if self.tag_only and tag is not None:
            return data, bytes([tag[0] ^ 1]) + tag[1:]
        return data[:-1] + bytes([data[-1] ^ 0x01]), tag


def channel(adversary: object | None = None, key: bytes = bytes(range(256)) * 4) -> Channel:
    return Channel(KeyPool(key), KeyPool(key), adversary=adversary)  # type: ignore[arg-type]


def test_authenticated_delivery_and_transcript() -> None:
    ch = channel()
    got = ch.send("alice", "bob", Hello(session_id="s", parameters_digest="d"))
    assert got == Hello(session_id="s", parameters_digest="d")
    ch.send(
        "station", "alice", HeraldAnnouncement(chunk=0, n_events=1, rounds=np.ones(1, np.uint64))
    )
    assert [e.authenticated for e in ch.transcript.entries] == ["message", "none"]
    assert ch.auth_key_bytes_consumed("alice") == ch.auth_key_bytes_consumed("bob") == 32
    assert len(ch.transcript.digest) == 64


@pytest.mark.parametrize("tag_only", [False, True])
def test_tampering_fails_authentication(tag_only: bool) -> None:
    ch = channel(Flipper(1, tag_only=tag_only))
    with pytest.raises(VerificationFailed):
        ch.send("alice", "bob", Abort(reason="hello"))
    assert ch.tampered == 1


def test_dropped_message_aborts() -> None:
    ch = channel(Flipper(1, drop=True))
    with pytest.raises(ProtocolAbort, match="never reached"):
        ch.send("bob", "alice", Abort(reason="x"))


def test_batch_is_authenticated_as_a_whole() -> None:
    ch = channel()
    with ch.batch("ec"):
        for i in range(5):
            ch.send("alice" if i % 2 else "bob", "bob" if i % 2 else "alice", Abort(reason=str(i)))
    assert ch.auth_key_bytes_consumed("alice") == 64  # one batch tag each way
    ch.send("alice", "bob", Abort(reason="after"))  # pools still in step

    class Rewriter:
        def intercept(
            self, sender: Party, receiver: Party, kind: str, data: bytes, tag: bytes | None
        ) -> tuple[bytes, bytes | None]:
            return data.replace(b'"2"', b'"7"'), tag  # still a valid message

    tampered = channel(Rewriter())
    delivered = []
    with pytest.raises(VerificationFailed), tampered.batch("ec"):
        for i in range(5):
            delivered.append(tampered.send("bob", "alice", Abort(reason=str(i))))
    assert Abort(reason="7") in delivered  # delivered at once, caught at the batch end


def test_exhausted_pool_raises() -> None:
    ch = channel(key=bytes(40))
    ch.send("alice", "bob", Abort(reason="one"))
    with pytest.raises(DiqkdError, match="exhausted"):
        ch.send("alice", "bob", Abort(reason="two"))


@pytest.fixture(scope="module")
def table() -> np.ndarray:
    from diqkd.profiles import load_profile

    return np.asarray(link_point(load_profile("ustc-2026"), 11.0).correlations)


def test_model_devices_reproduce_the_bell_table(table: np.ndarray) -> None:
    n = 120_000
    dev = ModelDevices(
        correlations=table,
        herald_probability=0.01,
        attempt_period_s=1e-6,
        rng=np.random.default_rng(3),
    )
    rng = np.random.default_rng(4)
    heralds = dev.herald(n)
    assert len(heralds) == n and np.all(np.diff(heralds.round.astype(np.int64)) > 0)
    x = rng.integers(0, 2, n, dtype=np.uint8)
    y = rng.integers(0, 3, n, dtype=np.uint8)
    a = dev.measure_alice(x)
    b = dev.measure_bob(y)
    for xi in range(2):
        for yi in range(3):
            sel = (x == xi) & (y == yi)
            m = int(sel.sum())
            for ai in range(2):
                for bi in range(2):
                    p = table[xi, yi, ai, bi]
                    k = int(np.count_nonzero(sel & (a == ai) & (b == bi)))
                    assert abs(k - m * p) < 5 * math.sqrt(m * p * (1 - p)) + 1


def test_model_devices_refuse_signalling_and_misuse(table: np.ndarray) -> None:
    signalling = np.zeros((2, 3, 2, 2))
    signalling[:, 0, 0, 0] = 1.0
    signalling[:, 1:, 1, 1] = 1.0  # Alice's output depends on Bob's input
    assert no_signalling_gap(signalling) == pytest.approx(1.0)
    with pytest.raises(ModelError, match="signals"):
        ModelDevices(
            correlations=signalling,
            herald_probability=0.1,
            attempt_period_s=1e-6,
            rng=np.random.default_rng(0),
        )
    dev = ModelDevices(
        correlations=table,
        herald_probability=0.1,
        attempt_period_s=1e-6,
        rng=np.random.default_rng(0),
    )
    dev.herald(4)
    with pytest.raises(DiqkdError, match="before Alice"):
        dev.measure_bob(np.zeros(4, np.uint8))
    with pytest.raises(DiqkdError, match="inputs"):
        dev.measure_alice(np.zeros(3, np.uint8))
    with pytest.raises(DiqkdError, match=r"0\.\.1"):
        dev.measure_alice(np.full(4, 2, np.uint8))
