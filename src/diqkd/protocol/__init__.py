"""The DI-QKD protocol engine: roles, messages, channel, devices, sessions.

Two honest levels: the parts (:class:`Channel`, :class:`ModelDevices`, :func:`design_protocol`,
:func:`run_session`) and the safe recipes :func:`simulate_session` (what ``diqkd run`` does)
and :func:`distill_records` (what ``diqkd distill`` does). See ``docs/protocol.md``.
"""

from diqkd.protocol.channel import Channel, ChannelAdversary, Transcript
from diqkd.protocol.design import ProtocolParameters, design_protocol, final_key_length
from diqkd.protocol.devices import Devices, Heralds, ModelDevices, no_signalling_gap
from diqkd.protocol.randomness import (
    RandomnessSource,
    SeededRandomness,
    SystemRandomness,
    is_secure,
)
from diqkd.protocol.session import RecordsInput, SessionResult, SessionStatistics, run_session
from diqkd.protocol.simulate import (
    RecordingDevices,
    auth_key_bytes,
    distill_records,
    records_test_fraction,
    simulate_session,
)

__all__ = [
    "Channel",
    "ChannelAdversary",
    "Devices",
    "Heralds",
    "ModelDevices",
    "ProtocolParameters",
    "RandomnessSource",
    "RecordingDevices",
    "RecordsInput",
    "SeededRandomness",
    "SessionResult",
    "SessionStatistics",
    "SystemRandomness",
    "Transcript",
    "auth_key_bytes",
    "design_protocol",
    "distill_records",
    "final_key_length",
    "is_secure",
    "no_signalling_gap",
    "records_test_fraction",
    "run_session",
    "simulate_session",
]
