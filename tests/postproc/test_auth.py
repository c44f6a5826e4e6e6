"""Wegman–Carter authentication: Poly1305 known answers, key pool accounting, raising API."""

from __future__ import annotations

import copy
import pickle
import re
from pathlib import Path

import pytest

from diqkd.errors import DiqkdError, VerificationFailed
from diqkd.postproc.auth import (
    KEY_BYTES_PER_MESSAGE,
    TAG_BYTES,
    Authenticator,
    KeyPool,
    poly1305_forgery_bound,
)

_REPO = Path(__file__).resolve().parents[2]
VECTOR_DIRS = (_REPO / "tests" / "data" / "vectors", _REPO.parent / "shared" / "vectors")

#: Recognisable key material that must never show up in a repr or an error message.
SECRET = bytes.fromhex("c0ffee00deadbeef" * 8)


def vector_file(name: str) -> Path:
    """A known-answer file from the repository copy or the shared folder; never skipped."""
    for folder in VECTOR_DIRS:
        if (folder / name).is_file():
            return folder / name
    pytest.fail(f"known-answer file {name} not found in {[str(d) for d in VECTOR_DIRS]}")


def _nist_vectors() -> list[tuple[bytes, bytes, bytes]]:
    """Parse the NIST ``COUNT / KEY / MSG / TAG`` form (``#`` comments, blank-line separated)."""
    out: list[tuple[bytes, bytes, bytes]] = []
    record: dict[str, str] = {}
    for line in [*vector_file("poly1305_rfc7539_pyca.txt").read_text().splitlines(), ""]:
        line = line.strip()
        if line.startswith("#"):
            continue
        if not line:
            if record:
                out.append(tuple(bytes.fromhex(record[k]) for k in ("KEY", "MSG", "TAG")))  # type: ignore[arg-type]
                record = {}
            continue
        name, _, value = line.partition("=")
        record[name.strip()] = value.strip()
    return out


def test_poly1305_known_answers() -> None:
    """RFC 7539/8439 Poly1305 vectors: the 32-byte KEY is exactly one message's one-time key."""
    vectors = _nist_vectors()
    assert len(vectors) == 11
    for key, msg, tag in vectors:
        assert len(key) == KEY_BYTES_PER_MESSAGE and len(tag) == TAG_BYTES
        alice = Authenticator(KeyPool(key))
        assert alice.tag(msg) == tag
        Authenticator(KeyPool(key)).check(msg, tag)
    # one pool holding all keys in order reproduces every tag, consuming 32 bytes each
    pool = KeyPool(b"".join(k for k, _, _ in vectors))
    auth = Authenticator(pool)
    assert [auth.tag(m) for _, m, _ in vectors] == [t for _, _, t in vectors]
    assert pool.consumed_bytes == 32 * len(vectors) and pool.available_bytes == 0


def test_alice_and_bob_in_step() -> None:
    initial = bytes(range(256)) * 2
    alice, bob = Authenticator(KeyPool(initial)), Authenticator(KeyPool(initial))
    messages = [b"sifting", b"", b"syndrome" * 100, b"verification tag", b"seed"]
    for message in messages:
        bob.check(message, alice.tag(message))
    assert alice.pool.consumed_bytes == bob.pool.consumed_bytes == 32 * len(messages)
    assert bob.messages == len(messages)
    expected_eps = sum(poly1305_forgery_bound(len(m)) for m in messages)
    assert bob.epsilon_auth == pytest.approx(expected_eps) and alice.epsilon_auth == 0.0


def test_tampering_raises() -> None:
    initial = bytes(range(256))
    alice, bob = Authenticator(KeyPool(initial)), Authenticator(KeyPool(initial))
    tag = alice.tag(b"syndrome 1")
    with pytest.raises(VerificationFailed, match="altered"):
        bob.check(b"syndrome 2", tag)
    # the failed check consumed its key: the pools are still in step
    tag = alice.tag(b"next")
    with pytest.raises(VerificationFailed):
        bob.check(b"next", bytes([tag[0] ^ 0x80]) + tag[1:])
    tag = alice.tag(b"third")
    with pytest.raises(VerificationFailed, match="bytes"):
        bob.check(b"third", tag[:15])
    tag = alice.tag(b"fourth")
    bob.check(b"fourth", tag)


def test_out_of_order_fails() -> None:
    """Tags must be checked in the order they were made (each uses the next pool key)."""
    initial = bytes(range(64))
    alice, bob = Authenticator(KeyPool(initial)), Authenticator(KeyPool(initial))
    t1, t2 = alice.tag(b"one"), alice.tag(b"two")
    with pytest.raises(VerificationFailed):
        bob.check(b"two", t2)
    with pytest.raises(VerificationFailed):
        bob.check(b"one", t1)


def test_pool_accounting_and_exhaustion() -> None:
    pool = KeyPool(b"\x01" * 40)
    assert (pool.available_bytes, pool.consumed_bytes) == (40, 0)
    assert pool.take(0) == b""
    assert pool.take(8) == b"\x01" * 8
    assert (pool.available_bytes, pool.consumed_bytes) == (32, 8)
    auth = Authenticator(pool)
    auth.tag(b"m")
    assert pool.available_bytes == 0
    with pytest.raises(DiqkdError, match="exhausted") as info:
        auth.tag(b"m2")
    assert not isinstance(info.value, VerificationFailed)
    assert pool.consumed_bytes == 40  # a failed take takes nothing
    pool.replenish(b"\x02" * 33)
    assert (pool.available_bytes, pool.replenished_bytes) == (33, 33)
    with pytest.raises(DiqkdError, match="34 bytes needed, 33 available"):
        pool.take(34)
    assert pool.take(33) == b"\x02" * 33
    for bad in (-1, 1.5, True):
        with pytest.raises(DiqkdError):
            pool.take(bad)  # type: ignore[arg-type]


def test_pool_consumes_in_order_across_compaction() -> None:
    material = bytes(i % 251 for i in range(20_000))
    pool = KeyPool(material[:9_000])
    got = [pool.take(1000) for _ in range(6)]
    pool.replenish(material[9_000:])
    got += [pool.take(2000) for _ in range(7)]
    assert b"".join(got) == material
    assert pool.available_bytes == 0 and pool.consumed_bytes == 20_000


def test_no_key_material_in_repr_or_errors() -> None:
    pool = KeyPool(SECRET)
    text = repr(pool) + repr(Authenticator(pool)) + str(pool)
    assert "available_bytes=64" in text
    for needle in (SECRET.hex(), SECRET.hex()[:8], repr(SECRET)[:12], "c0ffee", "\\xc0"):
        assert needle not in text
    assert not re.search(r"[0-9a-f]{16}", text)
    with pytest.raises(DiqkdError) as info:
        pool.take(65)
    assert "c0ffee" not in str(info.value)
    with pytest.raises(DiqkdError):
        pickle.dumps(pool)
    with pytest.raises(DiqkdError):
        copy.deepcopy(pool)


def test_forgery_bound() -> None:
    assert poly1305_forgery_bound(0) == 8 / 2**106
    assert poly1305_forgery_bound(16) == 8 / 2**106
    assert poly1305_forgery_bound(17) == 16 / 2**106
    assert poly1305_forgery_bound(1 << 20) == 8 * 65536 / 2**106
    with pytest.raises(DiqkdError):
        poly1305_forgery_bound(-1)


def test_type_errors() -> None:
    with pytest.raises(DiqkdError, match="bytes"):
        KeyPool("secret")  # type: ignore[arg-type]
    with pytest.raises(DiqkdError, match="KeyPool"):
        Authenticator(b"\x00" * 32)  # type: ignore[arg-type]
    auth = Authenticator(KeyPool(bytes(64)))
    with pytest.raises(DiqkdError, match="message"):
        auth.tag("text")  # type: ignore[arg-type]
    with pytest.raises(DiqkdError, match="replenishing"):
        auth.pool.replenish(None)  # type: ignore[arg-type]
