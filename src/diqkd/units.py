"""Unit helpers and physical constants.

House rule: physical quantities carry their unit in their name (``length_km``,
``loss_db_per_km``, ``rate_hz``, ``time_s``); efficiencies and probabilities are plain
numbers in [0, 1]. The helpers below convert between the few units that appear and check
that a value is finite and in range, raising :class:`~diqkd.errors.UnitError` otherwise.
"""

from __future__ import annotations

import math

from diqkd.errors import UnitError

__all__ = [
    "SPEED_OF_LIGHT_M_PER_S",
    "check_finite",
    "check_probability",
    "db_to_transmission",
    "fiber_delay_s",
    "fiber_transmission",
    "transmission_to_db",
]

#: Speed of light in vacuum (exact, SI definition), m/s.
SPEED_OF_LIGHT_M_PER_S = 299_792_458.0


def check_finite(name: str, value: float) -> float:
    """Return ``value`` as float, or raise :class:`UnitError` if it is NaN or infinite."""
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise UnitError(f"{name} must be a number, got {value!r}") from exc
    if not math.isfinite(v):
        raise UnitError(f"{name} must be finite, got {v}")
    return v


def check_probability(name: str, value: float) -> float:
    """Return ``value`` if it is a probability (finite, 0 <= value <= 1), else raise."""
    v = check_finite(name, value)
    if not 0.0 <= v <= 1.0:
        raise UnitError(f"{name} must lie in [0, 1], got {v}")
    return v


def db_to_transmission(loss_db: float) -> float:
    """Power transmission of a loss given in dB: ``10 ** (-loss_db / 10)``."""
    loss = check_finite("loss_db", loss_db)
    if loss < 0:
        raise UnitError(f"loss_db must be >= 0 (a loss, not a gain), got {loss}")
    return float(10.0 ** (-loss / 10.0))


def transmission_to_db(transmission: float) -> float:
    """Loss in dB of a power transmission in (0, 1]."""
    t = check_probability("transmission", transmission)
    if t == 0.0:
        raise UnitError("transmission 0 has infinite loss in dB")
    return -10.0 * math.log10(t)


def fiber_transmission(length_km: float, loss_db_per_km: float) -> float:
    """Transmission ``10 ** (-loss_db_per_km * length_km / 10)`` of a fiber span."""
    length = check_finite("length_km", length_km)
    if length < 0:
        raise UnitError(f"length_km must be >= 0, got {length}")
    return db_to_transmission(length * check_finite("loss_db_per_km", loss_db_per_km))


def fiber_delay_s(length_km: float, group_index: float) -> float:
    """One-way propagation time (s) of light through ``length_km`` of fiber.

    ``t = L · n_g / c`` with ``n_g`` the group index (≈ 1.468 for SMF-28 in the O and C band,
    Corning SMF-28 datasheet).
    """
    length = check_finite("length_km", length_km)
    if length < 0:
        raise UnitError(f"length_km must be >= 0, got {length}")
    return length * 1e3 * check_finite("group_index", group_index) / SPEED_OF_LIGHT_M_PER_S
