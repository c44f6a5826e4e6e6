"""Authentication of the classical channel: Wegman–Carter one-time MACs from a key pool.

Every classical message of the protocol is authenticated with a one-time MAC whose key is
consumed from a pool of secret key shared by Alice and Bob: an initial pre-shared key, then
replenished from distilled QKD key (M. N. Wegman and J. L. Carter, "New hash functions and their
use in authentication and set equality", JCSS 22 (1981) 265–279).

MAC: Poly1305 with a one-time key
---------------------------------
Each message gets a fresh 32-byte key ``(r, s)`` from the pool and the tag
``Poly1305_{r,s}(message)`` (16 bytes), computed by :mod:`cryptography`
(``cryptography.hazmat.primitives.poly1305.Poly1305``, the RFC 8439 §2.5 function). With ``r``
(clamped: 106 free bits) and ``s`` uniform and used for this message only, an adversary who has
seen one (message, tag) pair forges a tag for any other message of at most ``L`` bytes with
probability at most

.. math:: ε_{auth}(L) = 8 \\lceil L/16 \\rceil / 2^{106}

(D. J. Bernstein, "The Poly1305-AES message-authentication code", FSE 2005, LNCS 3557, §3: the
Poly1305 polynomial is ``8⌈L/16⌉/2¹⁰⁶``-almost-Δ-universal and the one-time ``s`` turns that
into the forgery bound). The bound is information-theoretic: no computational assumption (the
AES of Poly1305-AES is *not* used — the one-time key replaces it). Over a session the failure
probabilities add: :attr:`Authenticator.epsilon_auth` keeps the running sum.

Key cost: 32 pool bytes (256 bits) per message, whether it is tagged or checked. (A
polynomial hash over GF(2¹²⁸) with a reused hash key and a fresh one-time pad per tag would cost
16 bytes per message; we keep the simpler rule "nothing is ever reused".)

Ordering rule
-------------
Both parties hold byte-identical pools and consume them in the same order: the ``i``-th call
of :meth:`Authenticator.tag` on one side pairs with the ``i``-th call of
:meth:`Authenticator.check` on the other (one authenticator per direction, or one shared
sequence that both sides walk in the transcript's order). A check consumes its key even when it
fails, so a failed check leaves the pools in step — the protocol must abort anyway.

Key hygiene: key material is kept in a ``bytearray`` that is overwritten with zeros as it is
consumed (best effort — CPython may hold other copies); it never appears in ``repr`` or in an
exception message.
"""

from __future__ import annotations

import math

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.poly1305 import Poly1305

from diqkd.errors import DiqkdError, VerificationFailed

__all__ = [
    "KEY_BYTES_PER_MESSAGE",
    "TAG_BYTES",
    "Authenticator",
    "KeyPool",
    "poly1305_forgery_bound",
]

#: One-time Poly1305 key per message: ``r ‖ s``, 16 + 16 bytes.
KEY_BYTES_PER_MESSAGE = 32
#: Poly1305 tag length.
TAG_BYTES = 16


def poly1305_forgery_bound(message_bytes: int) -> float:
    """Forgery probability ``8⌈L/16⌉ / 2¹⁰⁶`` for one-time Poly1305 on ``L``-byte messages.

    Bernstein (2005), §3. ``L`` is the length of the longest message the adversary may
    substitute (at least one block is counted).
    """
    if isinstance(message_bytes, bool) or not isinstance(message_bytes, int) or message_bytes < 0:
        raise DiqkdError(f"message length must be a non-negative integer, got {message_bytes!r}")
    return 8 * max(1, math.ceil(message_bytes / 16)) / 2.0**106


def _as_bytes(value: object, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise DiqkdError(f"{what} must be bytes, got {type(value).__name__}")
    return bytes(value)


class KeyPool:
    """Secret key material shared by Alice and Bob, consumed strictly in order.

    Parameters
    ----------
    initial
        The pre-shared key (bytes), e.g. from an out-of-band exchange.

    Notes
    -----
    Both parties must build their pools from the same bytes and call :meth:`replenish` and
    :meth:`take` in the same order with the same sizes; the pools then stay identical. The
    ``repr`` shows only byte counts.
    """

    __slots__ = ("_buf", "_consumed", "_pos", "_replenished")

    def __init__(self, initial: bytes) -> None:
        self._buf = bytearray(_as_bytes(initial, "the initial key"))
        self._pos = 0
        self._consumed = 0
        self._replenished = 0

    @property
    def available_bytes(self) -> int:
        """Bytes left to take."""
        return len(self._buf) - self._pos

    @property
    def consumed_bytes(self) -> int:
        """Bytes taken so far (over the pool's life)."""
        return self._consumed

    @property
    def replenished_bytes(self) -> int:
        """Bytes added by :meth:`replenish` so far."""
        return self._replenished

    def replenish(self, material: bytes) -> None:
        """Append secret key (e.g. distilled QKD key, packed into bytes) to the pool."""
        data = _as_bytes(material, "replenishing material")
        self._compact()
        self._buf.extend(data)
        self._replenished += len(data)

    def take(self, n_bytes: int) -> bytes:
        """Remove and return the next ``n_bytes`` bytes (zeroed in the pool).

        Raises
        ------
        DiqkdError
            If fewer than ``n_bytes`` are available (nothing is taken then).
        """
        if isinstance(n_bytes, bool) or not isinstance(n_bytes, int) or n_bytes < 0:
            raise DiqkdError(f"n_bytes must be a non-negative integer, got {n_bytes!r}")
        if n_bytes > self.available_bytes:
            raise DiqkdError(
                f"key pool exhausted: {n_bytes} bytes needed, {self.available_bytes} available; "
                "replenish it from distilled key (or a new pre-shared key) before "
                "authenticating more messages, or abort"
            )
        start = self._pos
        out = bytes(self._buf[start : start + n_bytes])
        self._buf[start : start + n_bytes] = bytes(n_bytes)
        self._pos += n_bytes
        self._consumed += n_bytes
        if self._pos > 4096 and self._pos * 2 > len(self._buf):
            self._compact()
        return out

    def _compact(self) -> None:
        """Drop the (already zeroed) consumed prefix."""
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0

    def __repr__(self) -> str:
        return (
            f"KeyPool(available_bytes={self.available_bytes}, "
            f"consumed_bytes={self._consumed}, replenished_bytes={self._replenished})"
        )

    def __reduce__(self) -> str | tuple[object, ...]:
        raise DiqkdError("a KeyPool holds secret key and cannot be pickled or copied")


class Authenticator:
    """One-time Poly1305 MACs keyed from a :class:`KeyPool` (Wegman–Carter).

    Parameters
    ----------
    pool
        The pool to consume, 32 bytes per :meth:`tag` or :meth:`check`.

    Notes
    -----
    Alice's ``tag`` calls and Bob's ``check`` calls must occur in the same order (see the module
    docstring). :attr:`epsilon_auth` sums the per-message forgery bounds of the messages checked
    so far.
    """

    __slots__ = ("_epsilon", "_messages", "_pool")

    def __init__(self, pool: KeyPool) -> None:
        if not isinstance(pool, KeyPool):
            raise DiqkdError(f"Authenticator needs a KeyPool, got {type(pool).__name__}")
        self._pool = pool
        self._messages = 0
        self._epsilon = 0.0

    @property
    def pool(self) -> KeyPool:
        """The key pool consumed."""
        return self._pool

    @property
    def messages(self) -> int:
        """Number of messages tagged or checked."""
        return self._messages

    @property
    def epsilon_auth(self) -> float:
        """Sum of the forgery bounds of the messages checked so far (union bound).

        Each check adds :func:`poly1305_forgery_bound` of the received message's length.
        """
        return self._epsilon

    def tag(self, message: bytes) -> bytes:
        """Tag ``message`` with the next one-time key (16-byte Poly1305 tag)."""
        data = _as_bytes(message, "message")
        key = self._pool.take(KEY_BYTES_PER_MESSAGE)
        self._messages += 1
        return Poly1305.generate_tag(key, data)

    def check(self, message: bytes, tag: bytes) -> None:
        """Check ``tag`` on ``message`` with the next one-time key; return ``None`` or raise.

        Raises
        ------
        VerificationFailed
            If the tag is wrong (message or tag altered, or the pools are out of step).
        DiqkdError
            If the pool is exhausted or the arguments are not bytes.
        """
        data = _as_bytes(message, "message")
        received = _as_bytes(tag, "tag")
        key = self._pool.take(KEY_BYTES_PER_MESSAGE)
        self._messages += 1
        self._epsilon += poly1305_forgery_bound(len(data))
        if len(received) != TAG_BYTES:
            raise VerificationFailed(
                f"authentication tag has {len(received)} bytes, expected {TAG_BYTES}: "
                "the message is not authentic; abort"
            )
        try:
            Poly1305.verify_tag(key, data, received)  # constant-time comparison inside
        except InvalidSignature:
            raise VerificationFailed(
                "authentication failed: the message or its tag was altered (or the key pools "
                "are out of step); abort the session"
            ) from None

    def __repr__(self) -> str:
        return f"Authenticator(messages={self._messages}, pool={self._pool!r})"
