"""Where the parties' private randomness comes from: the OS CSPRNG, or a marked simulation RNG.

DI-QKD trusts exactly one thing inside each lab besides classical post-processing: the private
randomness that chooses the test rounds, the inputs, the noisy-preprocessing flips and the public
seeds (Arnon-Friedman, Renner, Vidick, SIAM J. Comput. 48, 181 (2019), assumption of trusted
private randomness). :class:`SystemRandomness` draws it from the operating system's CSPRNG
(:func:`secrets.token_bytes`) and is the only source :func:`is_secure` accepts. For reproducible
*simulations* :class:`SeededRandomness` draws from a seeded ``numpy`` generator; every result built
on it is marked ``randomness="seeded-simulation"`` and is never a usable key. The attack "devices
that know the inputs in advance" is exactly a copy of such a generator in Eve's hands.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from diqkd.errors import DiqkdError

__all__ = [
    "RandomnessSource",
    "SeededRandomness",
    "SystemRandomness",
    "is_secure",
]

RandomnessKind = Literal["os-csprng", "seeded-simulation"]

_TWO_POW_MINUS_53 = 2.0**-53


def _check_count(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or int(n) < 0:
        raise DiqkdError(f"a count of random draws must be a non-negative integer, got {n!r}")
    return int(n)


def _check_probability(p: object) -> float:
    if isinstance(p, bool) or not isinstance(p, int | float | np.floating):
        raise DiqkdError(f"a probability must be a number, got {p!r}")
    value = float(p)
    if not 0.0 <= value <= 1.0:
        raise DiqkdError(f"a probability must lie in [0, 1], got {value}")
    return value


@runtime_checkable
class RandomnessSource(Protocol):
    """A party's private random source. ``kind`` says whether it is fit for real keys."""

    @property
    def kind(self) -> RandomnessKind:
        """``"os-csprng"`` or ``"seeded-simulation"``."""
        ...

    def random_bytes(self, n: int) -> bytes:
        """``n`` uniform bytes."""
        ...

    def bits(self, n: int) -> NDArray[np.uint8]:
        """``n`` uniform bits, uint8 0/1."""
        ...

    def bernoulli(self, n: int, p: float) -> NDArray[np.bool_]:
        """``n`` independent Bernoulli(p) booleans."""
        ...

    def child(self, label: str) -> RandomnessSource:
        """An independent stream for one purpose (e.g. ``"inputs"``, ``"secrets"``)."""
        ...


class SystemRandomness:
    """The OS CSPRNG (:func:`secrets.token_bytes`): the source for real keys."""

    @property
    def kind(self) -> RandomnessKind:
        return "os-csprng"

    def random_bytes(self, n: int) -> bytes:
        return secrets.token_bytes(_check_count(n))

    def bits(self, n: int) -> NDArray[np.uint8]:
        count = _check_count(n)
        raw = np.frombuffer(self.random_bytes((count + 7) // 8), dtype=np.uint8)
        return np.unpackbits(raw)[:count].copy()

    def bernoulli(self, n: int, p: float) -> NDArray[np.bool_]:
        """Bernoulli(p) from 53-bit uniforms ``u = k·2⁻⁵³``: ``P(u < p)`` is ``p`` to 2⁻⁵³."""
        count = _check_count(n)
        prob = _check_probability(p)
        words = np.frombuffer(self.random_bytes(8 * count), dtype=np.uint64)
        uniform = (words >> np.uint64(11)).astype(np.float64) * _TWO_POW_MINUS_53
        return uniform < prob

    def child(self, label: str) -> SystemRandomness:
        """The OS CSPRNG needs no streams: every draw is fresh."""
        del label
        return self

    def __repr__(self) -> str:
        return "SystemRandomness()"


class SeededRandomness:
    """A seeded ``numpy`` generator, for reproducible simulations only (never for real keys).

    Parameters
    ----------
    seed
        Non-negative integer seed. Anyone who knows it predicts every draw.
    """

    def __init__(self, seed: int) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or int(seed) < 0:
            raise DiqkdError(f"seed must be a non-negative integer, got {seed!r}")
        self._seed = int(seed)
        self._rng = np.random.default_rng(self._seed)

    @property
    def kind(self) -> RandomnessKind:
        return "seeded-simulation"

    def random_bytes(self, n: int) -> bytes:
        return self._rng.bytes(_check_count(n))

    def bits(self, n: int) -> NDArray[np.uint8]:
        return self._rng.integers(0, 2, size=_check_count(n), dtype=np.uint8)

    def bernoulli(self, n: int, p: float) -> NDArray[np.bool_]:
        count = _check_count(n)
        prob = _check_probability(p)
        return self._rng.random(count) < prob

    def child(self, label: str) -> SeededRandomness:
        """A stream derived from (seed, label): the same label always gives the same stream."""
        digest = hashlib.sha256(f"{self._seed}|{label}".encode()).digest()
        return SeededRandomness(int.from_bytes(digest[:8], "little"))

    def __repr__(self) -> str:
        return "SeededRandomness(<seed>)"


def is_secure(source: RandomnessSource) -> bool:
    """True only for the OS CSPRNG; keys from anything else are simulation artefacts."""
    return source.kind == "os-csprng"
