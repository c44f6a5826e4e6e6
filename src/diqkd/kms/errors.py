"""Errors of the key manager's service side, config and client (all under ``DiqkdError``).

Messages never carry key material, private keys or master keys.
"""

from __future__ import annotations

from diqkd.errors import DiqkdError

__all__ = ["KmeClientError", "KmeConfigError", "KmeError", "PeerSyncError"]


class KmeError(DiqkdError):
    """Base class of the key manager's errors (config, service, peer channel, client)."""


class KmeConfigError(KmeError, ValueError):
    """A KME configuration file is missing, not TOML, or has a bad key (the message names it)."""


class PeerSyncError(KmeError):
    """The peer KME could not be reached, refused the reservations, or answered nonsense."""


class KmeClientError(KmeError):
    """A KME answered an SAE's request with an error, or could not be reached.

    Attributes
    ----------
    status_code
        The HTTP status code (``0`` when no answer came back at all).
    message
        The ``message`` of the ETSI Error body, or a description of the transport failure.
    """

    def __init__(self, message: str, *, status_code: int = 0) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
