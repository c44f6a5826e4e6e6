"""At-rest protection of the key store: the master key, sealed segments, digests, bit slicing.

Every segment of a key block is sealed with AES-256-GCM (NIST SP 800-38D) under the master key,
with a fresh 96-bit random nonce per sealing, and with associated data that binds the ciphertext
to its place: site, block ID, segment index, segment length and a rewrite counter. A ciphertext
copied to another row, another block or back over a newer version of its own row fails to open.

Block digests (for idempotent imports) are HMAC-SHA-256 under a key derived from the master key
with HKDF-SHA-256 (RFC 5869), so the database never holds an unkeyed hash of key bits.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from diqkd.errors import KeyStoreError

MASTER_KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
#: Bits per sealed segment (a multiple of 8, so segments split the packed key bytes exactly).
SEGMENT_BITS: Final = 4096
_CHECK_PLAINTEXT: Final = b"diqkd key store master key check v1"


def parse_master_key(text: str | bytes, *, origin: str) -> bytes:
    """Decode a master key given as raw 32 bytes, hex (64 digits) or base64 (of 32 bytes).

    Raises
    ------
    KeyStoreError
        If it is none of these; the message names ``origin`` but never the value.
    """
    if isinstance(text, bytes):
        if len(text) == MASTER_KEY_BYTES:
            return text
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise KeyStoreError(_bad_key(origin)) from None
    value = text.strip()
    if len(value) == 2 * MASTER_KEY_BYTES:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise KeyStoreError(_bad_key(origin)) from None
    if len(raw) != MASTER_KEY_BYTES:
        raise KeyStoreError(_bad_key(origin))
    return raw


def _bad_key(origin: str) -> str:
    return (
        f"the master key from {origin} is not 32 bytes in hex (64 digits) or base64; "
        "generate one with: python -c 'import secrets; print(secrets.token_hex(32))'"
    )


def load_or_create_key_file(path: Path) -> bytes:
    """Read the master key file, creating it (mode 0600, from :mod:`secrets`) if it is absent."""
    try:
        return parse_master_key(path.read_bytes(), origin=f"file {path}")
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise KeyStoreError(
            f"cannot read the master key file {path} ({exc.strerror}); fix its permissions"
        ) from None
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(MASTER_KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return parse_master_key(path.read_bytes(), origin=f"file {path}")
    try:
        os.write(fd, base64.b64encode(key) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    return key


class Sealer:
    """AES-256-GCM sealing of segments and the master-key check, bound to one site."""

    def __init__(self, master_key: bytes, site: str) -> None:
        if not isinstance(master_key, bytes) or len(master_key) != MASTER_KEY_BYTES:
            raise KeyStoreError(
                f"master_key must be {MASTER_KEY_BYTES} bytes (AES-256); "
                "use KeyStore.open_default or decode DIQKD_MASTER_KEY first"
            )
        self._aead = AESGCM(master_key)
        self._site = site
        self._mac_key = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=None,
            info=b"diqkd.kms.store block digest v1",
        ).derive(master_key)

    def __repr__(self) -> str:
        return f"Sealer(site={self._site!r}, key=<secret>)"

    def _aad(self, block_id: str, index: int, n_bits: int, version: int) -> bytes:
        return f"diqkd.kms.segment.v1|{self._site}|{block_id}|{index}|{n_bits}|{version}".encode()

    def seal(self, plain: bytes, *, block_id: str, index: int, n_bits: int, version: int) -> bytes:
        """Nonce ‖ AES-GCM(plain) with the segment's place as associated data."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        aad = self._aad(block_id, index, n_bits, version)
        return nonce + self._aead.encrypt(nonce, plain, aad)

    def open(self, sealed: bytes, *, block_id: str, index: int, n_bits: int, version: int) -> bytes:
        """Inverse of :meth:`seal`; raises :class:`KeyStoreError` if it does not authenticate."""
        aad = self._aad(block_id, index, n_bits, version)
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
        except (InvalidTag, ValueError):
            raise KeyStoreError(
                f"segment {index} of block {block_id} does not authenticate under this master "
                "key: the store was tampered with or opened with another master key"
            ) from None

    def make_check(self) -> bytes:
        """A sealed constant that proves, later, that the same master key is in use."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        aad = f"diqkd.kms.check.v1|{self._site}".encode()
        return nonce + self._aead.encrypt(nonce, _CHECK_PLAINTEXT, aad)

    def verify_check(self, sealed: bytes) -> bool:
        """Whether ``sealed`` (from :meth:`make_check`) was made with this master key."""
        aad = f"diqkd.kms.check.v1|{self._site}".encode()
        try:
            plain = self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
        except (InvalidTag, ValueError):
            return False
        return hmac.compare_digest(plain, _CHECK_PLAINTEXT)

    def digest(self, block_id: str, n_bits: int, key: bytes) -> bytes:
        """HMAC-SHA-256 of a block's ID, length and bits under a key derived from the master key."""
        msg = f"{block_id}|{n_bits}|".encode() + key
        return hmac.new(self._mac_key, msg, hashlib.sha256).digest()


def split_segments(key: bytes, n_bits: int) -> list[tuple[int, bytes]]:
    """Split packed key bytes into ``(segment_bits, plaintext)`` of :data:`SEGMENT_BITS` each."""
    step = SEGMENT_BITS // 8
    out = []
    for start in range(0, n_bits, SEGMENT_BITS):
        seg_bits = min(SEGMENT_BITS, n_bits - start)
        out.append((seg_bits, key[start // 8 : start // 8 + step]))
    return out


def segment_span(start_bit: int, size_bits: int) -> range:
    """Indices of the segments that bits ``[start_bit, start_bit + size_bits)`` touch."""
    return range(start_bit // SEGMENT_BITS, (start_bit + size_bits - 1) // SEGMENT_BITS + 1)


def read_bits(plains: Mapping[int, bytes | bytearray], start_bit: int, size_bits: int) -> bytes:
    """Bits ``[start_bit, start_bit + size_bits)`` of a block, packed MSB first.

    ``plains`` maps segment index to that segment's plaintext (every touched segment).
    """
    parts = []
    for idx in segment_span(start_bit, size_bits):
        seg = np.unpackbits(np.frombuffer(plains[idx], dtype=np.uint8))
        lo = max(start_bit - idx * SEGMENT_BITS, 0)
        hi = min(start_bit + size_bits - idx * SEGMENT_BITS, SEGMENT_BITS)
        parts.append(seg[lo:hi])
    return np.packbits(np.concatenate(parts)).tobytes()


def zero_bits(
    plain: bytes | bytearray, seg_index: int, start_bit: int, size_bits: int
) -> tuple[bytes, int]:
    """Zero the part of ``[start_bit, start_bit + size_bits)`` inside one segment.

    Returns the new plaintext and the number of bits zeroed.
    """
    seg = np.unpackbits(np.frombuffer(plain, dtype=np.uint8))
    lo = max(start_bit - seg_index * SEGMENT_BITS, 0)
    hi = min(start_bit + size_bits - seg_index * SEGMENT_BITS, SEGMENT_BITS)
    seg[lo:hi] = 0
    return np.packbits(seg).tobytes(), hi - lo
