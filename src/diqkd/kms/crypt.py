"""File encryption with QKD keys: AES-256-GCM, or a one-time pad with a one-time MAC.

The sender's SAE obtains keys from its KME (``enc_keys``), encrypts, and writes their IDs in the
header; the receiver's SAE obtains the same keys by ID from its own KME (``dec_keys``) and
decrypts. Verification raises; nothing is returned (or written) for a file that fails it.

File format (all integers big-endian)::

    magic        8 bytes   b"DIQKDENC"
    version      1 byte    1
    mode         1 byte    1 = AES-256-GCM, 2 = one-time pad + Poly1305
    master_len   1 byte    length of the master SAE ID
    master_SAE   master_len bytes (UTF-8): the SAE that got the keys (dec_keys path)
    n_keys       2 bytes
    key_IDs      n_keys × 16 bytes (UUIDs)
    length       8 bytes   plaintext length in bytes
    nonce        12 bytes  (mode 1 only; random)
    body         mode 1: AES-256-GCM ciphertext and 16-byte tag, the header as associated data
                 mode 2: plaintext XOR pad, then a 16-byte Poly1305 tag of header || ciphertext

Mode 1 uses one 256-bit key. Mode 2 (``otp``) uses ``8 * length + 256`` key bits: the first 256
bits are the one-time Poly1305 key, the rest the pad; encryption is then information-
theoretically secure and a forgery succeeds with probability at most ``8⌈L/16⌉ / 2^106``
(Bernstein 2005, "The Poly1305-AES message-authentication code", Theorem 3.3, for a uniformly
random one-time key).
"""

from __future__ import annotations

import math
import secrets
import struct
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.poly1305 import Poly1305

from diqkd.errors import VerificationFailed
from diqkd.kms.client import ClientKey
from diqkd.kms.errors import KmeError

__all__ = [
    "MODE_GCM",
    "MODE_OTP",
    "Header",
    "decrypt_bytes",
    "encrypt_bytes",
    "otp_key_plan",
    "parse_header",
]

MAGIC = b"DIQKDENC"
VERSION = 1
MODE_GCM = 1
MODE_OTP = 2
GCM_KEY_BITS = 256
MAC_KEY_BYTES = 32
_TAG = 16
_NONCE = 12
#: Largest file handled (in memory).
MAX_BYTES = 1 << 30


@dataclass(frozen=True)
class Header:
    """The parsed header of an encrypted file."""

    mode: int
    master_sae: str
    key_ids: tuple[str, ...]
    length: int
    nonce: bytes
    size: int

    def encode(self) -> bytes:
        """The header bytes (they are authenticated with the body)."""
        master = self.master_sae.encode("utf-8")
        parts = [
            MAGIC,
            bytes([VERSION, self.mode, len(master)]),
            master,
            struct.pack(">H", len(self.key_ids)),
            b"".join(uuid.UUID(k).bytes for k in self.key_ids),
            struct.pack(">Q", self.length),
        ]
        if self.mode == MODE_GCM:
            parts.append(self.nonce)
        return b"".join(parts)


def _malformed(what: str) -> KmeError:
    return KmeError(f"not a diqkd encrypted file ({what})")


def parse_header(blob: bytes) -> Header:
    """Parse the header of an encrypted file.

    Raises
    ------
    KmeError
        If the bytes are not a diqkd encrypted file of a known version.
    """
    if len(blob) < 11 or not blob.startswith(MAGIC):
        raise _malformed("bad magic")
    version, mode, master_len = blob[8], blob[9], blob[10]
    if version != VERSION:
        raise _malformed(f"unknown version {version}")
    if mode not in (MODE_GCM, MODE_OTP):
        raise _malformed(f"unknown mode {mode}")
    pos = 11
    if len(blob) < pos + master_len + 2:
        raise _malformed("truncated header")
    try:
        master = blob[pos : pos + master_len].decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed("master SAE ID is not UTF-8") from None
    pos += master_len
    (n_keys,) = struct.unpack(">H", blob[pos : pos + 2])
    pos += 2
    need = pos + 16 * n_keys + 8 + (_NONCE if mode == MODE_GCM else 0)
    if n_keys == 0 or len(blob) < need:
        raise _malformed("truncated header")
    key_ids = tuple(
        str(uuid.UUID(bytes=blob[p : p + 16])) for p in range(pos, pos + 16 * n_keys, 16)
    )
    pos += 16 * n_keys
    (length,) = struct.unpack(">Q", blob[pos : pos + 8])
    pos += 8
    nonce = b""
    if mode == MODE_GCM:
        nonce = blob[pos : pos + _NONCE]
        pos += _NONCE
    return Header(
        mode=mode, master_sae=master, key_ids=key_ids, length=length, nonce=nonce, size=pos
    )


def otp_key_plan(n_bytes: int, *, max_key_size: int, min_key_size: int) -> tuple[int, int]:
    """``(number, size_bits)`` of keys covering a one-time pad for ``n_bytes`` plus a MAC key.

    Keys are as large as the KME allows (``max_key_size``), each at least ``min_key_size``.
    """
    need = 8 * (n_bytes + MAC_KEY_BYTES)
    size = min(max_key_size - max_key_size % 8, max(need, min_key_size))
    size = max(size + (-size) % 8, min_key_size + (-min_key_size) % 8)
    return math.ceil(need / size), size


def encrypt_bytes(
    plaintext: bytes, *, keys: Sequence[ClientKey], master_sae: str, otp: bool = False
) -> bytes:
    """Encrypt with QKD keys (one 256-bit key for AES-256-GCM; enough for a pad with ``otp``).

    Raises
    ------
    KmeError
        If the keys are too short for the chosen mode or the input is too large.
    """
    if len(plaintext) > MAX_BYTES:
        raise KmeError(f"the file holds {len(plaintext)} bytes; at most {MAX_BYTES} are supported")
    if not keys:
        raise KmeError("no key to encrypt with")
    if len(master_sae.encode("utf-8")) > 255:
        raise KmeError("the master SAE ID is longer than 255 bytes")
    ids = tuple(k.key_id for k in keys)
    if otp:
        material = b"".join(k.key for k in keys)
        if len(material) < MAC_KEY_BYTES + len(plaintext):
            raise KmeError(
                f"one-time pad needs {8 * (MAC_KEY_BYTES + len(plaintext))} key bits, got "
                f"{8 * len(material)}"
            )
        header = Header(MODE_OTP, master_sae, ids, len(plaintext), b"", 0).encode()
        pad = material[MAC_KEY_BYTES : MAC_KEY_BYTES + len(plaintext)]
        body = _xor(plaintext, pad)
        tag = Poly1305.generate_tag(material[:MAC_KEY_BYTES], header + body)
        return header + body + tag
    if len(keys) != 1 or len(keys[0].key) != GCM_KEY_BITS // 8:
        raise KmeError("AES-256-GCM takes exactly one 256-bit key")
    nonce = secrets.token_bytes(_NONCE)
    header = Header(MODE_GCM, master_sae, ids, len(plaintext), nonce, 0).encode()
    return header + AESGCM(keys[0].key).encrypt(nonce, plaintext, header)


def _xor(data: bytes, pad: bytes) -> bytes:
    n = len(data)
    a = np.frombuffer(data, dtype=np.uint8)
    b = np.frombuffer(pad, dtype=np.uint8, count=n)
    return np.bitwise_xor(a, b).tobytes()


def decrypt_bytes(
    blob: bytes, *, fetch_keys: Callable[[str, Sequence[str]], Sequence[ClientKey]]
) -> bytes:
    """Decrypt a file written by :func:`encrypt_bytes`; ``fetch_keys(master, ids)`` gets keys.

    Raises
    ------
    KmeError
        If the file is malformed or the keys returned do not match the header.
    VerificationFailed
        If the authentication tag does not verify (wrong key, tampered file).
    """
    header = parse_header(blob)
    head, body = blob[: header.size], blob[header.size :]
    expected = header.length + _TAG
    if len(body) != expected:
        raise _malformed(f"body holds {len(body)} bytes, the header announces {expected}")
    keys = list(fetch_keys(header.master_sae, header.key_ids))
    if [k.key_id for k in keys] != list(header.key_ids):
        raise KmeError("the KME returned other keys than the file names")
    if header.mode == MODE_GCM:
        if len(keys[0].key) != GCM_KEY_BITS // 8:
            raise KmeError("the key of an AES-256-GCM file must be 256 bits")
        try:
            return AESGCM(keys[0].key).decrypt(header.nonce, body, head)
        except InvalidTag:
            raise VerificationFailed(
                "authentication failed: the file was altered or the key is not its key"
            ) from None
    material = b"".join(k.key for k in keys)
    if len(material) < MAC_KEY_BYTES + header.length:
        raise KmeError("the keys are shorter than the one-time pad the file needs")
    ciphertext, tag = body[: header.length], body[header.length :]
    try:
        Poly1305.verify_tag(material[:MAC_KEY_BYTES], head + ciphertext, tag)
    except InvalidSignature:
        raise VerificationFailed(
            "authentication failed: the file was altered or the keys are not its keys"
        ) from None
    return _xor(ciphertext, material[MAC_KEY_BYTES : MAC_KEY_BYTES + header.length])
