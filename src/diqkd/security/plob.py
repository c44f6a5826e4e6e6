"""The repeaterless bound: the most secret key any point-to-point protocol can get from loss."""

from __future__ import annotations

import math

from diqkd.errors import DiqkdError

__all__ = ["plob_bound"]


def plob_bound(transmission: float) -> float:
    """PLOB bound ``−log₂(1 − η)`` secret bits per channel use of a pure-loss channel.

    Pirandola, Laurenza, Ottaviani, Banchi, Nat. Commun. 8, 15043 (2017), Eq. (19): the
    two-way assisted secret-key capacity of a pure-loss channel with transmissivity η. No
    protocol without quantum repeaters beats it; SPI and twin-field schemes, whose rate scales
    with √η, can beat it at long distance because their middle station is a (untrusted) relay.
    ``η ≈ 0`` gives ``≈ 1.44 η``.
    """
    eta = float(transmission)
    if not math.isfinite(eta) or not 0.0 <= eta <= 1.0:
        raise DiqkdError(f"transmission must lie in [0, 1], got {transmission!r}")
    if eta == 1.0:
        return math.inf
    return -math.log1p(-eta) / math.log(2.0)
