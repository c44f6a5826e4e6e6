"""The one exception tree of diqkd.

Every error says what was wrong and what to do about it. Messages never contain secret
material (key bits, seeds of secret randomness, MAC keys).
"""

from __future__ import annotations

__all__ = [
    "DiqkdError",
    "KeyStoreError",
    "ModelError",
    "ProfileError",
    "ProtocolAbort",
    "ReconciliationError",
    "RecordsError",
    "UnitError",
    "VerificationFailed",
]


class DiqkdError(Exception):
    """Base class of every error raised on purpose by diqkd."""


class UnitError(DiqkdError, ValueError):
    """A physical quantity has the wrong unit, sign or is not finite."""


class ProfileError(DiqkdError, ValueError):
    """A hardware profile is missing, malformed, or has out-of-range values."""


class ModelError(DiqkdError, ValueError):
    """A physical model was asked for something outside its domain (e.g. negative length)."""


class RecordsError(DiqkdError, ValueError):
    """A round-record file is malformed; the message names the row and column where known."""


class ReconciliationError(DiqkdError, ValueError):
    """Inputs to reconciliation are malformed (lengths differ, empty, non-binary, out of range).

    A malformed *message* arriving from the channel raises :class:`ProtocolAbort` instead.
    """


class KeyStoreError(DiqkdError):
    """The key store refused or failed an operation (see ``diqkd.kms.store`` for subclasses).

    Raised for a store that is unreachable, not migrated, opened with the wrong master key, or
    asked for something inconsistent with what it holds.
    """


class ProtocolAbort(DiqkdError):
    """The protocol aborted (failed Bell test, failed verification, too few rounds...)."""


class VerificationFailed(DiqkdError):
    """A verification hash or authentication tag did not match."""
