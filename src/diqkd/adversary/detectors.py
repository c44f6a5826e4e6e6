"""Flags for predictable inputs, re-exported where attack analysis looks for them.

Device independence assumes the inputs are fresh private randomness, unknown to the devices
(``docs/security.md``). If the devices know the inputs in advance they can win every CHSH round
(``S = 4``) with outputs Eve knows. Two checks catch what can be caught, and both live with the
code that applies them:

* :func:`tsirelson_check` (:mod:`diqkd.protocol.checks`) — a CHSH winning frequency above
  what any quantum device reaches; Bob's parameter estimation aborts on it.
* :func:`input_randomness_test` (:mod:`diqkd.records.randomness`) — the input columns of a
  records file against their declared law (frequency and serial χ² tests); ``diqkd distill``
  refuses files that fail it. It catches a *broken* generator; no statistical test detects a
  good generator whose seed has leaked (the ``predictable-inputs-stealthy`` attack).
"""

from __future__ import annotations

from diqkd.protocol.checks import TSIRELSON_WIN_PROBABILITY, TsirelsonCheck, tsirelson_check
from diqkd.records.randomness import (
    InputRandomnessReport,
    input_randomness_of_records,
    input_randomness_test,
)

__all__ = [
    "TSIRELSON_WIN_PROBABILITY",
    "InputRandomnessReport",
    "TsirelsonCheck",
    "input_randomness_of_records",
    "input_randomness_test",
    "tsirelson_check",
]
