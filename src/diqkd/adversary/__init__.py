"""Attacks on the DI-QKD protocol, run through the real session, with what Eve learns.

Strategies act on the quantum state (intercept-resend, the entangling attack), on the devices
(local deterministic, predictable inputs, a side channel) or on the classical channel (man in
the middle). Each runs :func:`diqkd.protocol.run_session` and reports S, QBER, abort, key bits
and Eve's information estimated from the simulation's ground truth (``docs/attacks.md``).
Detectors for predictable inputs: :func:`tsirelson_check` and :func:`input_randomness_test`.
"""

from diqkd.adversary.attacks import (
    DEFAULT_EVENTS,
    AttackReport,
    Strategy,
    entangling_target_chsh,
    get_strategy,
    list_strategies,
    run_attack,
)
from diqkd.adversary.detectors import (
    TSIRELSON_WIN_PROBABILITY,
    InputRandomnessReport,
    TsirelsonCheck,
    input_randomness_of_records,
    input_randomness_test,
    tsirelson_check,
)
from diqkd.adversary.devices import BranchDevices, GroundTruth, OracleDevices, PredictingDevices
from diqkd.adversary.knowledge import (
    Eavesdropper,
    Intercepted,
    KeyInformation,
    ManInTheMiddle,
    PublicView,
    certificate_information_bits,
    eve_key,
    key_information,
    public_view,
    replay_bob,
)
from diqkd.adversary.states import (
    Branches,
    intercept_resend_branches,
    purification_branches,
    rank2_attack_state,
)

__all__ = [
    "DEFAULT_EVENTS",
    "TSIRELSON_WIN_PROBABILITY",
    "AttackReport",
    "BranchDevices",
    "Branches",
    "Eavesdropper",
    "GroundTruth",
    "InputRandomnessReport",
    "Intercepted",
    "KeyInformation",
    "ManInTheMiddle",
    "OracleDevices",
    "PredictingDevices",
    "PublicView",
    "Strategy",
    "TsirelsonCheck",
    "certificate_information_bits",
    "entangling_target_chsh",
    "eve_key",
    "get_strategy",
    "input_randomness_of_records",
    "input_randomness_test",
    "intercept_resend_branches",
    "key_information",
    "list_strategies",
    "public_view",
    "purification_branches",
    "rank2_attack_state",
    "replay_bob",
    "run_attack",
    "tsirelson_check",
]
