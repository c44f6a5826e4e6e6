"""Key verification after reconciliation: a polynomial hash over GF(2¹²⁸) (GHASH).

After error correction Alice and Bob hold keys that are equal with high probability. To
certify it, Alice draws a hash key ``h`` *after* reconciliation (so that it is independent of
both strings), sends ``h`` and her tag over the authenticated channel, and Bob checks the tag
against his key; on mismatch the protocol aborts. The probability that two different keys pass
is at most :func:`epsilon_ec`, the ``ε_EC`` ("correctness") term of the security statement.

Construction
------------
The tag is GHASH of NIST SP 800-38D (§6.4) with empty additional data and the key as the
"ciphertext": the bits are packed MSB-first into bytes (``numpy.packbits``), zero-padded to
16-byte blocks ``B₁ … B_k``, followed by the length block ``0⁶⁴ ‖ [n]₆₄`` (``n`` in *bits*, so
keys of any bit length are encoded unambiguously), and

.. math:: \\mathrm{GHASH}_h = \\sum_{i=1}^{k+1} B_i\\, h^{\\,k+2-i} \\quad\\text{in GF}(2^{128}),

in GCM's bit-reflected field representation (see :mod:`diqkd.postproc._gf128`). The key of
:func:`verification_tag` is ``h`` (16 bytes) or ``h ‖ p`` (32 bytes): with the one-time pad
``p`` the transmitted tag is ``GHASH_h ⊕ p``.

Collision bound
---------------
For two different bit strings of at most ``n`` bits the difference of their GHASH values is a
nonzero polynomial in ``h`` of degree at most ``k + 1`` (``k = ⌈n/128⌉``), so it vanishes for at
most ``k + 1`` of the ``2¹²⁸`` values of ``h`` (D. McGrew and J. Viega, "The security and
performance of the Galois/Counter Mode (GCM) of operation", INDOCRYPT 2004, LNCS 3348,
section on the security of GHASH; the
polynomial-hash bound "degree / field size" of J. L. Carter and M. N. Wegman, JCSS 18 (1979)
and V. Shoup, CRYPTO 1996). Keeping the first ``t`` bits of the tag (``64 ≤ t ≤ 128``, whole
bytes): the truncated tags collide when the difference lies in a set of ``2^{128−t}`` field
elements, each hit by at most ``k + 1`` values of ``h``, so

.. math:: ε_{EC} \\le (k + 1) / 2^{t}.

The pad ``p`` is the same on both sides and cancels; it only matters for secrecy.

Leakage
-------
An unpadded tag is a public function of the key and reveals up to ``t`` bits about it: count
``t`` in the leakage subtracted from the final key length. A tag padded with ``p`` taken from the
secret key pool (``p`` used once) reveals nothing and costs ``t`` pool bits instead.
"""

from __future__ import annotations

import hmac
import math

import numpy as np
from numpy.typing import NDArray

from diqkd.errors import DiqkdError, VerificationFailed
from diqkd.postproc._gf128 import blocks_from_bytes, ghash_blocks, mul_tables
from diqkd.rng import secret_bytes

__all__ = [
    "CHECK_TAG_BITS",
    "DEFAULT_TAG_BITS",
    "MIN_TAG_BITS",
    "check_tag",
    "epsilon_ec",
    "ghash",
    "new_verification_key",
    "verification_tag",
    "verify_keys",
]

#: Full GHASH tag length.
DEFAULT_TAG_BITS = 128
#: Shortest tag accepted (truncation raises the collision bound by 2^(128 − t)).
MIN_TAG_BITS = 64
#: Default length of a decoder's :func:`check_tag` (not a verification tag).
CHECK_TAG_BITS = 32


def _check_tag_bits(tag_bits: object) -> int:
    if isinstance(tag_bits, bool) or not isinstance(tag_bits, int):
        raise DiqkdError(f"tag_bits must be an integer, got {type(tag_bits).__name__}")
    if not MIN_TAG_BITS <= tag_bits <= DEFAULT_TAG_BITS or tag_bits % 8:
        raise DiqkdError(
            f"tag_bits must be a multiple of 8 between {MIN_TAG_BITS} and {DEFAULT_TAG_BITS}, "
            f"got {tag_bits}"
        )
    return tag_bits


def _split_key(key: object) -> tuple[int, bytes | None]:
    if not isinstance(key, bytes | bytearray | memoryview):
        raise DiqkdError(
            f"the verification key must be bytes (16: h, or 32: h ‖ pad), got {type(key).__name__}"
        )
    raw = bytes(key)
    if len(raw) not in (16, 32):
        raise DiqkdError(
            f"the verification key must be 16 bytes (h) or 32 bytes (h ‖ pad), got {len(raw)}"
        )
    pad = raw[16:] if len(raw) == 32 else None
    return int.from_bytes(raw[:16], "big"), pad


def _as_bits(arr: object) -> NDArray[np.uint8]:
    if not isinstance(arr, np.ndarray) or arr.ndim != 1:
        raise DiqkdError("the key must be a one-dimensional numpy array of 0/1 (uint8 or bool)")
    if arr.dtype == np.bool_:
        return arr.view(np.uint8)
    if arr.dtype != np.uint8:
        raise DiqkdError(f"the key must have dtype uint8 (or bool), got {arr.dtype}")
    if arr.size and int(arr.max()) > 1:
        raise DiqkdError("the key must contain only 0 and 1")
    return arr


def _ghash_int(
    h: int,
    aad: bytes | NDArray[np.uint8],
    ct: bytes | NDArray[np.uint8],
    aad_bits: int,
    ct_bits: int,
) -> int:
    table = mul_tables(h)
    length_block = np.array([[aad_bits, ct_bits]], dtype=np.uint64)
    blocks = np.concatenate([blocks_from_bytes(aad), blocks_from_bytes(ct), length_block])
    return ghash_blocks(table, blocks)


def ghash(h: bytes, aad: bytes, ciphertext: bytes) -> bytes:
    """``GHASH_H(A, C)`` exactly as NIST SP 800-38D §6.4 / §7.1 (byte strings, 16-byte output).

    Parameters
    ----------
    h
        The hash subkey ``H`` (16 bytes; in GCM, ``AES_K(0¹²⁸)``).
    aad, ciphertext
        ``A`` and ``C``; each is zero-padded to whole blocks, then the block
        ``[len(A)]₆₄ ‖ [len(C)]₆₄`` (bit lengths) is appended.
    """
    if not isinstance(h, bytes) or len(h) != 16:
        raise DiqkdError("GHASH needs a 16-byte hash subkey H")
    if not isinstance(aad, bytes | bytearray) or not isinstance(ciphertext, bytes | bytearray):
        raise DiqkdError("GHASH needs the additional data and the ciphertext as bytes")
    value = _ghash_int(int.from_bytes(h, "big"), aad, ciphertext, 8 * len(aad), 8 * len(ciphertext))
    return value.to_bytes(16, "big")


def new_verification_key(*, padded: bool = False) -> bytes:
    """A fresh verification key from the OS CSPRNG: ``h`` (16 bytes) or ``h ‖ pad`` (32 bytes).

    Draw it after reconciliation, so that it is independent of both keys. With ``padded=True``
    the pad must stay secret (take it from the authentication key pool instead when both parties
    need it: ``h`` can be public, the pad cannot).
    """
    return secret_bytes(32 if padded else 16)


def verification_tag(
    bits: NDArray[np.uint8], key: bytes, *, tag_bits: int = DEFAULT_TAG_BITS
) -> bytes:
    """Alice's verification tag of her reconciled key (GHASH; see the module docstring).

    Parameters
    ----------
    bits
        The key, shape (n,), uint8 (or bool) 0/1.
    key
        ``h`` (16 bytes) or ``h ‖ pad`` (32 bytes); ``h`` uniform and independent of the keys.
    tag_bits
        Tag length ``t`` in bits, a multiple of 8 in ``[64, 128]``; the first ``t/8`` bytes of
        the (padded) GHASH value are kept.

    Returns
    -------
    bytes
        ``t/8`` bytes. Collision probability for different keys: :func:`epsilon_ec`.
    """
    t = _check_tag_bits(tag_bits)
    h, pad = _split_key(key)
    return _tag(_as_bits(bits), h, pad, t)


def _tag(x: NDArray[np.uint8], h: int, pad: bytes | None, t: int) -> bytes:
    value = _ghash_int(h, b"", np.packbits(x), 0, x.shape[0]).to_bytes(16, "big")
    if pad is not None:
        value = bytes(a ^ b for a, b in zip(value, pad, strict=True))
    return value[: t // 8]


def check_tag(bits: NDArray[np.uint8], key: bytes, *, tag_bits: int = CHECK_TAG_BITS) -> bytes:
    """A short GHASH tag by which a decoder recognises the right word among its candidates.

    Not a verification: :func:`verification_tag` (with a key drawn *after* reconciliation)
    still certifies the result. Alice sends ``key`` (``h``, 16 bytes from the OS CSPRNG, drawn
    independently of both keys) and this tag with her syndrome; Bob accepts a word that
    satisfies the syndrome only if its tag matches. Each wrong word Bob tests passes with
    probability at most ``(⌈n/128⌉ + 1)/2^t`` over ``h`` (the bound of the module docstring;
    ≈ 1.8·10⁻⁶ at ``n = 10⁶``, ``t = 32``), and the words Bob would test if every check failed
    do not depend on ``h``, so ``K`` tested words pass wrongly with probability at most ``K``
    times that (a wrong word that passes is caught by the verification, a lost frame). The tag
    discloses ``t`` bits of the key: count them in the leak.

    Parameters
    ----------
    bits
        The key, shape (n,), uint8 (or bool) 0/1.
    key
        ``h``, 16 bytes.
    tag_bits
        ``t``, a multiple of 8 in ``[8, 128]``.
    """
    if isinstance(tag_bits, bool) or not isinstance(tag_bits, int):
        raise DiqkdError(f"tag_bits must be an integer, got {type(tag_bits).__name__}")
    if not 8 <= tag_bits <= DEFAULT_TAG_BITS or tag_bits % 8:
        raise DiqkdError(f"a check tag has 8 to 128 bits, a multiple of 8; got {tag_bits}")
    h, pad = _split_key(key)
    if pad is not None:
        raise DiqkdError("a check tag takes a 16-byte key (h), without a pad")
    return _tag(_as_bits(bits), h, None, tag_bits)


def verify_keys(
    alice_tag: bytes, bob_bits: NDArray[np.uint8], key: bytes, *, tag_bits: int = DEFAULT_TAG_BITS
) -> None:
    """Bob's check of Alice's tag against his key; returns ``None`` or raises.

    The tag length is fixed by ``tag_bits`` (never read from the received tag, so a shortened
    tag cannot lower the bound). The comparison is constant-time (:func:`hmac.compare_digest`).

    Raises
    ------
    VerificationFailed
        If the tags differ (the keys differ; abort the protocol) or the tag has the wrong length.
    DiqkdError
        On malformed arguments.
    """
    t = _check_tag_bits(tag_bits)
    if not isinstance(alice_tag, bytes | bytearray):
        raise DiqkdError(f"alice_tag must be bytes, got {type(alice_tag).__name__}")
    expected = verification_tag(bob_bits, key, tag_bits=t)
    if len(alice_tag) != len(expected):
        raise VerificationFailed(
            f"verification tag has {len(alice_tag)} bytes, expected {len(expected)}: abort"
        )
    if not hmac.compare_digest(bytes(alice_tag), expected):
        raise VerificationFailed(
            "verification failed: the reconciled keys differ; abort this block "
            "(do not amplify or use it)"
        )


def epsilon_ec(n_bits: int, tag_bits: int = DEFAULT_TAG_BITS) -> float:
    """Collision bound ``ε_EC = (⌈n/128⌉ + 1) / 2^t`` of :func:`verification_tag`.

    Parameters
    ----------
    n_bits
        Key length ``n ≥ 0`` in bits (the longer of the two keys if they may differ).
    tag_bits
        Tag length ``t`` (multiple of 8 in ``[64, 128]``).

    Returns
    -------
    float
        Probability, over a uniform ``h``, that two different keys get equal tags.
    """
    t = _check_tag_bits(tag_bits)
    if isinstance(n_bits, bool) or not isinstance(n_bits, int) or n_bits < 0:
        raise DiqkdError(f"n_bits must be a non-negative integer, got {n_bits!r}")
    return (math.ceil(n_bits / 128) + 1) / 2.0**t
