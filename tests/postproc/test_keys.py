"""Key blocks and the keys file."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from diqkd.errors import DiqkdError
from diqkd.postproc import KeyBlock, read_keys, write_keys


@given(st.lists(st.integers(0, 1), min_size=1, max_size=300))
def test_bits_round_trip(bits: list[int]) -> None:
    arr = np.array(bits, dtype=np.uint8)
    block = KeyBlock.from_bits(arr, certificate={"epsilon_sound": 1e-6})
    assert block.n_bits == len(bits)
    np.testing.assert_array_equal(block.bits(), arr)
    again = KeyBlock.from_json_dict(json.loads(json.dumps(block.to_json_dict())))
    assert again == block


def test_repr_hides_key() -> None:
    block = KeyBlock.from_bits(np.ones(64, dtype=np.uint8))
    assert "<secret>" in repr(block)
    assert block.key.hex() not in repr(block)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"key_id": "nope", "key": b"\x00", "n_bits": 8}, "UUID"),
        ({"key_id": str(uuid.uuid4()).upper(), "key": b"\x00", "n_bits": 8}, "canonical"),
        ({"key_id": str(uuid.uuid4()), "key": b"\x00\x00", "n_bits": 8}, "needs 1"),
        ({"key_id": str(uuid.uuid4()), "key": b"\x01", "n_bits": 7}, "padding"),
        ({"key_id": str(uuid.uuid4()), "key": b"", "n_bits": 0}, "positive"),
    ],
)
def test_bad_blocks_are_rejected(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(DiqkdError, match=match):
        KeyBlock(**kwargs)  # type: ignore[arg-type]


def test_keys_file_round_trip_and_mode(tmp_path: Path) -> None:
    blocks = [KeyBlock.from_bits(np.arange(n) % 2 == 0) for n in (5, 64, 1000)]
    path = write_keys(tmp_path / "sub" / "keys.json", blocks, side="bob")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    side, back = read_keys(path)
    assert side == "bob"
    assert back == blocks
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("not json", "not a readable keys file"),
        ('{"format": "other"}', "not a diqkd keys file"),
        ('{"format": "diqkd-keys", "version": 9}', "version 9"),
        ('{"format": "diqkd-keys", "version": 1, "side": "eve"}', "side"),
        ('{"format": "diqkd-keys", "version": 1, "side": "bob", "blocks": [{}]}', "lacks"),
    ],
)
def test_bad_keys_files(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "k.json"
    path.write_text(content)
    with pytest.raises(DiqkdError, match=match):
        read_keys(path)
    with pytest.raises(DiqkdError, match="no such"):
        read_keys(tmp_path / "missing.json")
