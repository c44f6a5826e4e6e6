"""The one seeding contract of diqkd (simulation randomness only).

Every stochastic *simulation* function takes ``rng: numpy.random.Generator``; callers who hold
a seed turn it into a generator with :func:`make_rng`. There is no global RNG and no "seed 0
means the clock". ``None`` asks for fresh OS entropy (an unseeded, non-reproducible simulation).

Secret randomness (protocol inputs in real runs, hashing seeds, keys, nonces) never comes from
here: it comes from the OS CSPRNG through :mod:`secrets`. See :func:`secret_bytes`.
"""

from __future__ import annotations

import secrets

import numpy as np

from diqkd.errors import DiqkdError

__all__ = ["SeedLike", "fresh_seed", "make_rng", "secret_bytes", "spawn"]

SeedLike = int | np.random.SeedSequence | np.random.Generator | None


def make_rng(seed: SeedLike) -> np.random.Generator:
    """Return a :class:`numpy.random.Generator` (PCG64) for ``seed``.

    Parameters
    ----------
    seed
        A non-negative int, a ``SeedSequence``, an existing ``Generator`` (returned as is), or
        ``None`` for fresh OS entropy.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool):
        raise DiqkdError("seed must be a non-negative integer, not a bool")
    if isinstance(seed, int) and seed < 0:
        raise DiqkdError(f"seed must be a non-negative integer, got {seed}")
    return np.random.default_rng(seed)


def fresh_seed() -> int:
    """A new non-negative 63-bit simulation seed from OS entropy, to record for reproducibility.

    For *simulations* that were not given a seed: the seed is drawn, used and written down
    (in the records file and the command output), so the run can be repeated exactly.
    """
    return secrets.randbits(63)


def spawn(rng: np.random.Generator, n: int) -> list[np.random.Generator]:
    """Split ``rng`` into ``n`` independent child generators (for parallel chunks)."""
    return list(rng.spawn(n))


def secret_bytes(n: int) -> bytes:
    """``n`` bytes from the OS CSPRNG (:func:`secrets.token_bytes`), for secret material."""
    if n < 0:
        raise DiqkdError(f"cannot draw a negative number of bytes ({n})")
    return secrets.token_bytes(n)
