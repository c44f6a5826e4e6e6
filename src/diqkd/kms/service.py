"""The ETSI GS QKD 014 service: checks each request against the rules and does the work.

Routes (:mod:`diqkd.kms.routes`) parse HTTP and identify the caller; this module applies the
specification's rules (ETSI GS QKD 014 V1.1.1 and ``docs/kms.md``), talks to the store through
the :class:`~diqkd.kms.runner.StoreRunner` and to the peer KME through
:class:`~diqkd.kms.sync.PeerSync`, and raises :class:`ApiError` with the status and message the
caller must see. No message ever holds key material.
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from diqkd.errors import KeyStoreError
from diqkd.kms.config import KmeConfig
from diqkd.kms.errors import KmeError, PeerSyncError
from diqkd.kms.identity import CallerIdentity, Registry
from diqkd.kms.runner import ReserveRequest, StoreRunner
from diqkd.kms.store import (
    KeyNotAuthorized,
    KeyNotFound,
    KeyUnknown,
    NotEnoughKey,
    Reservation,
    ServedKey,
)
from diqkd.kms.sync import PeerSync

__all__ = [
    "MSG_EXT_NOT_MET",
    "MSG_EXT_UNSUPPORTED",
    "MSG_KEYS_NOT_FOUND",
    "MSG_SIZE_MULTIPLE",
    "ApiError",
    "KeyService",
]

log = logging.getLogger(__name__)

#: Messages fixed by ETSI GS QKD 014 V1.1.1 for 400 answers.
MSG_SIZE_MULTIPLE = "size shall be a multiple of 8"
MSG_EXT_UNSUPPORTED = "not all extension_mandatory parameters are supported"
MSG_EXT_NOT_MET = "not all extension_mandatory request options could be met"
MSG_KEYS_NOT_FOUND = "one or more keys specified are not found on KME"
#: Most key IDs the peer may look up in one call (a dec_keys call names at most
#: ``max_key_per_request`` ≤ 100,000).
_MAX_LOOKUP = 100_000


class ApiError(KmeError):
    """An answer other than 200: ``status`` 400 or 503 with an Error body, 401 without one."""

    def __init__(
        self, status: int, message: str = "", *, details: Sequence[Mapping[str, Any]] | None = None
    ) -> None:
        super().__init__(message or f"HTTP {status}")
        self.status = status
        self.message = message
        self.details = [dict(d) for d in details] if details else None


def _unauthorized() -> ApiError:
    return ApiError(401)


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


def _container(keys: Sequence[ServedKey]) -> dict[str, Any]:
    return {
        "keys": [{"key_ID": k.key_id, "key": base64.b64encode(k.key).decode("ascii")} for k in keys]
    }


class KeyService:
    """Status, enc_keys and dec_keys of one KME, and the peer's reservation intake.

    Parameters
    ----------
    config
        This KME's configuration (limits, registry, peer).
    runner
        Runs store calls off the event loop.
    sync
        The KME-to-KME channel (``None``: reservations are not sent anywhere; tests only).
    """

    def __init__(self, config: KmeConfig, runner: StoreRunner, sync: PeerSync | None) -> None:
        self.config = config
        self.runner = runner
        self.sync = sync
        self.registry = Registry(config)

    # -- identity -----------------------------------------------------------------------------

    def local_sae(self, identity: CallerIdentity | None) -> str:
        """SAE ID of a caller attached to this KME, else 401 (no body)."""
        sae = self.registry.sae_of(identity)
        if sae is None or self.registry.kme_of(sae) != self.config.kme_id:
            raise _unauthorized()
        return sae

    def _remote_sae(self, sae_id: str, role: str) -> None:
        kme = self.registry.kme_of(sae_id)
        if kme is None:
            raise _bad(f"{role} SAE ID {sae_id!r} is not known to this KME")
        if kme != self.config.peer.kme_id:
            raise _bad(
                f"{role} SAE ID {sae_id!r} is attached to {kme}, not to the peer KME "
                f"{self.config.peer.kme_id}: keys are delivered between SAEs of the two KMEs"
            )

    # -- Status ---------------------------------------------------------------------------------

    async def status(self, master: str, slave: str) -> dict[str, Any]:
        """Status between the caller (master) and ``slave``."""
        self._remote_sae(slave, "slave")
        limits = self.config.limits
        try:
            stored = await self.runner.call(self.runner.store.stored_key_count, limits.key_size)
        except KeyStoreError as exc:
            raise self._unavailable(exc) from None
        stored += self.runner.stocked(limits.key_size, master, (slave,))
        return {
            "source_KME_ID": self.config.kme_id,
            "target_KME_ID": self.config.peer.kme_id,
            "master_SAE_ID": master,
            "slave_SAE_ID": slave,
            "key_size": limits.key_size,
            "stored_key_count": min(int(stored), limits.max_key_count),
            "max_key_count": limits.max_key_count,
            "max_key_per_request": limits.max_key_per_request,
            "max_key_size": limits.max_key_size,
            "min_key_size": limits.min_key_size,
            "max_SAE_ID_count": limits.max_SAE_ID_count,
        }

    # -- enc_keys -------------------------------------------------------------------------------

    def check_key_request(
        self,
        master: str,
        slave: str,
        *,
        number: int | None,
        size: int | None,
        additional_slaves: Sequence[str] | None,
        extension_mandatory: Sequence[Mapping[str, Any]] | None,
    ) -> ReserveRequest:
        """Apply every rule of a Key request; returns what to reserve or raises 400."""
        limits = self.config.limits
        if extension_mandatory:
            raise _bad(MSG_EXT_UNSUPPORTED)
        n = 1 if number is None else number
        if n < 1:
            raise _bad(f"number must be a positive integer, got {n}")
        if n > limits.max_key_per_request:
            raise _bad(f"number {n} exceeds max_key_per_request ({limits.max_key_per_request})")
        bits = limits.key_size if size is None else size
        if bits < 1:
            raise _bad(f"size must be a positive number of bits, got {bits}")
        if bits % 8:
            raise _bad(MSG_SIZE_MULTIPLE)
        if bits < limits.min_key_size:
            raise _bad(f"size {bits} is below min_key_size ({limits.min_key_size} bits)")
        if bits > limits.max_key_size:
            raise _bad(f"size {bits} exceeds max_key_size ({limits.max_key_size} bits)")
        self._remote_sae(slave, "slave")
        extra = list(additional_slaves or [])
        if len(extra) > limits.max_SAE_ID_count:
            raise _bad(
                f"{len(extra)} additional slave SAE IDs exceed max_SAE_ID_count "
                f"({limits.max_SAE_ID_count})"
            )
        seen = {slave}
        for sae in extra:
            if not sae:
                raise _bad("additional_slave_SAE_IDs must not contain an empty SAE ID")
            if sae == master:
                raise _bad(f"the master SAE {sae!r} cannot be an additional slave SAE")
            if sae in seen:
                raise _bad(f"SAE ID {sae!r} appears more than once among the slave SAEs")
            seen.add(sae)
            self._remote_sae(sae, "additional slave")
        return ReserveRequest(
            number=n, size_bits=bits, master_sae=master, slave_saes=(slave, *extra)
        )

    async def enc_keys(self, request: ReserveRequest) -> dict[str, Any]:
        """Hand out freshly reserved keys (committed, and forwarded to the peer KME).

        The runner forwards every committed reservation to the peer in the background
        (:meth:`PeerSync.forward`); a slave that asks the peer first makes the peer pull it
        (:meth:`dec_keys`).
        """
        if self.sync is not None and not self.sync.healthy:
            raise ApiError(
                503,
                f"the peer KME {self.config.peer.kme_id} is unreachable; no key was reserved: "
                "ask again later",
            )
        try:
            keys, _ = await self.runner.reserve(request)
        except NotEnoughKey:
            raise _bad(
                f"not enough key: {request.number} keys of {request.size_bits} bits were asked "
                "for, fewer are stored (see stored_key_count in Status)"
            ) from None
        except KeyStoreError as exc:
            raise self._unavailable(exc) from None
        return _container(keys)

    # -- dec_keys -------------------------------------------------------------------------------

    def check_key_ids(self, master: str, key_ids: Sequence[str]) -> list[str]:
        """Apply the rules of a Key IDs request; returns canonical key IDs or raises 400."""
        limits = self.config.limits
        if not key_ids:
            raise _bad("key_IDs must name at least one key")
        if len(key_ids) > limits.max_key_per_request:
            raise _bad(
                f"{len(key_ids)} key IDs exceed max_key_per_request ({limits.max_key_per_request})"
            )
        canonical: list[str] = []
        for raw in key_ids:
            try:
                value = str(uuid.UUID(raw))
            except (ValueError, TypeError, AttributeError):
                raise _bad(f"key_ID {raw[:64]!r} is not a UUID") from None
            if value in canonical:
                raise _bad(f"key_ID {value} appears more than once")
            canonical.append(value)
        self._remote_sae(master, "master")
        return canonical

    async def dec_keys(self, slave: str, key_ids: Sequence[str], *, master: str) -> dict[str, Any]:
        """Deliver keys reserved by the peer KME for ``master`` to the calling slave SAE.

        A key reserved by another master SAE, or one whose slaves do not include the caller,
        answers 401 (the caller was not named as slave in an enc_keys call of that master).
        Key IDs not recorded here are first asked for at the peer KME (its forwarded
        reservation may still be on its way; :mod:`diqkd.kms.sync`).
        """
        try:
            try:
                keys = await self._fetch(slave, key_ids, master)
            except KeyUnknown as exc:
                if self.sync is None or not await self._pull(exc.key_ids):
                    raise
                keys = await self._fetch(slave, key_ids, master)
        except KeyNotAuthorized:
            raise _unauthorized() from None
        except KeyNotFound:
            raise _bad(MSG_KEYS_NOT_FOUND) from None
        except KeyStoreError as exc:
            raise self._unavailable(exc) from None
        return _container(keys)

    async def _fetch(self, slave: str, key_ids: Sequence[str], master: str) -> list[ServedKey]:
        return await self.runner.call(
            self.runner.store.fetch_for_slave,
            key_ids=list(key_ids),
            slave_sae=slave,
            master_sae=master,
        )

    async def _pull(self, key_ids: Sequence[str]) -> bool:
        """Ask the peer for its reservations of ``key_ids`` and record them; False if none."""
        assert self.sync is not None
        try:
            found = await self.sync.lookup(key_ids)
        except PeerSyncError as exc:
            log.warning("dec_keys: looking up %d key(s) at the peer failed: %s", len(key_ids), exc)
            return False
        if not found:
            return False
        try:
            self._check_peer_saes(found)  # already parsed by the channel
        except ApiError as exc:
            log.warning("dec_keys: the peer's lookup answer was refused: %s", exc.message)
            return False
        try:
            await self.runner.call(self.runner.store.accept_reservations, found)
        except KeyStoreError as exc:
            log.warning("dec_keys: recording the peer's reservations failed: %s", exc)
            return False
        return True

    # -- KME-to-KME -----------------------------------------------------------------------------

    def _check_peer(self, identity: CallerIdentity | None, source_kme: str) -> None:
        if not self.registry.is_peer(identity):
            raise _unauthorized()
        if source_kme != self.config.peer.kme_id:
            raise _bad(f"source_KME_ID {source_kme!r} is not this KME's peer")
        if self.sync is not None:
            self.sync.peer_seen()

    def _peer_reservations(self, records: Sequence[Mapping[str, Any]]) -> list[Reservation]:
        """Parse the peer's reservation records and check their SAEs; raises 400."""
        reservations: list[Reservation] = []
        for i, data in enumerate(records):
            try:
                reservations.append(Reservation.from_dict(data))
            except KeyStoreError as exc:
                raise _bad(f"reservations[{i}]: {exc}") from None
        self._check_peer_saes(reservations)
        return reservations

    def _check_peer_saes(self, reservations: Sequence[Reservation]) -> None:
        """The peer's reservations must be for its master SAEs and for slave SAEs here (400)."""
        for i, res in enumerate(reservations):
            if self.registry.kme_of(res.master_sae) != self.config.peer.kme_id:
                raise _bad(f"reservations[{i}]: master SAE is not attached to the peer KME")
            for sae in res.slave_saes:
                if self.registry.kme_of(sae) != self.config.kme_id:
                    raise _bad(f"reservations[{i}]: slave SAE {sae!r} is not attached here")

    async def accept_from_peer(
        self, identity: CallerIdentity | None, source_kme: str, records: Sequence[Mapping[str, Any]]
    ) -> int:
        """Record the peer KME's reservations (caller must present the peer's certificate)."""
        self._check_peer(identity, source_kme)
        reservations = self._peer_reservations(records)
        try:
            await self.runner.call(self.runner.store.accept_reservations, reservations)
        except KeyStoreError as exc:
            log.warning("refused reservations from the peer KME: %s", exc)
            raise _bad(f"reservations refused: {exc}") from None
        return len(reservations)

    async def lookup_for_peer(
        self, identity: CallerIdentity | None, source_kme: str, key_ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        """This KME's reservations among ``key_ids``, for the peer KME (no key bits)."""
        self._check_peer(identity, source_kme)
        if len(key_ids) > _MAX_LOOKUP:
            raise _bad(f"at most {_MAX_LOOKUP} key IDs per lookup")
        canonical: list[str] = []
        for raw in key_ids:
            try:
                canonical.append(str(uuid.UUID(raw)))
            except (ValueError, TypeError, AttributeError):
                raise _bad(f"key_ID {str(raw)[:64]!r} is not a UUID") from None
        try:
            found = await self.runner.call(self.runner.store.local_reservations, canonical)
        except KeyStoreError as exc:
            raise self._unavailable(exc) from None
        return [r.to_dict() for r in found]

    # -- helpers --------------------------------------------------------------------------------

    def _unavailable(self, exc: Exception) -> ApiError:
        log.error("key store failure: %s: %s", type(exc).__name__, exc)
        return ApiError(503, "the key store is unavailable; try again later")
