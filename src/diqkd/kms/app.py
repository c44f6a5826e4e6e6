"""The app factory of the ETSI GS QKD 014 service.

:func:`create_app` wires the routes, the service, the store runner and the KME-to-KME channel,
and installs the error handling the specification asks for:

* every answer other than 200 is 400 or 503 with an Error body (``{"message": …}``), or 401
  with no body at all;
* FastAPI's 422 for a malformed request (bad JSON, wrong type, missing field) becomes 400;
* an unexpected exception becomes 503 with a fixed message: never a 500, never a traceback;
* callers are authenticated *before* anything else is read: a client certificate that is not a
  registered SAE of this KME gets 401 on ``/api/v1/keys/…``, anything but the peer KME's
  certificate gets 401 on ``/api/v1/kme/…``.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from diqkd import __version__
from diqkd.kms.config import KmeConfig
from diqkd.kms.identity import SAE_STATE_KEY, Registry, identity_from_scope
from diqkd.kms.routes import keys_router, peer_router
from diqkd.kms.runner import StoreRunner
from diqkd.kms.schemas import KeyRequest
from diqkd.kms.service import ApiError, KeyService
from diqkd.kms.store import KeyStore
from diqkd.kms.sync import PeerSync

__all__ = ["create_app"]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_KEYS_PREFIX = "/api/v1/keys/"
_PEER_PREFIX = "/api/v1/kme/"


class _AuthMiddleware:
    """Pure ASGI middleware: maps the client certificate to an SAE ID, or answers 401."""

    def __init__(self, app: ASGIApp, registry: Registry, kme_id: str) -> None:
        self.app = app
        self.registry = registry
        self.kme_id = kme_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope.get("path", "")
            if path.startswith(_KEYS_PREFIX):
                sae = self.registry.sae_of(identity_from_scope(scope))
                if sae is None or self.registry.kme_of(sae) != self.kme_id:
                    await _send_401(send)
                    return
                state = scope.get("state")
                if not isinstance(state, dict):
                    state = {}
                    scope["state"] = state
                state[SAE_STATE_KEY] = sae
            elif path.startswith(_PEER_PREFIX) and not self.registry.is_peer(
                identity_from_scope(scope)
            ):
                await _send_401(send)
                return
        await self.app(scope, receive, send)


async def _send_401(send: Send) -> None:
    await send(
        {"type": "http.response.start", "status": 401, "headers": [(b"content-length", b"0")]}
    )
    await send({"type": "http.response.body", "body": b""})


def _error(status: int, message: str, details: list[dict[str, Any]] | None = None) -> Response:
    if status == 401:
        return Response(status_code=401)
    body: dict[str, Any] = {"message": message}
    if details:
        body["details"] = details
    return JSONResponse(body, status_code=status)


def _describe_validation(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    details: list[dict[str, Any]] = []
    for err in exc.errors()[:10]:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        kind = str(err.get("type", "invalid"))
        msg = str(err.get("msg", "invalid value"))
        if kind == "json_invalid":
            msg = "the body is not valid JSON"
        details.append({"location": loc[:200], "problem": msg[:200]})
    if not details:
        return "bad request", []
    first = details[0]
    where = first["location"]
    message = first["problem"] if not where else f"{where}: {first['problem']}"
    return message, details


def create_app(
    config: KmeConfig,
    store: KeyStore,
    *,
    sync: bool = True,
    coalesce: bool = True,
) -> FastAPI:
    """Build the ETSI GS QKD 014 application of one KME.

    Parameters
    ----------
    config
        This KME's configuration.
    store
        The site's key store, migrated (the caller opens and closes it).
    sync
        Send reservations to the peer KME (``False`` only for tests of a single KME).
    coalesce
        Share reservation transactions between concurrent, alike requests.

    Returns
    -------
    FastAPI
        The ASGI application; its lifespan starts and stops the store runner and the channel.
    """
    runner = StoreRunner(
        store,
        threads=config.server.store_threads,
        coalesce=coalesce,
        prefetch=config.server.prefetch_keys,
    )
    peer_sync = PeerSync(config, runner) if sync else None
    if peer_sync is not None:
        runner.on_reserved = peer_sync.forward
    service = KeyService(config, runner, peer_sync)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Long-lived objects (app, routes, models) leave the collector's generations, so that
        # full collections under load stay short (fewer latency spikes).
        gc.collect()
        gc.freeze()
        if peer_sync is not None:
            await peer_sync.start()
        try:
            yield
        finally:
            if peer_sync is not None:
                await peer_sync.close()
            runner.shutdown()

    app = FastAPI(
        title=f"diqkd KME {config.kme_id} (ETSI GS QKD 014 V1.1.1)",
        version=__version__,
        description=(
            "REST-based key delivery API (ETSI GS QKD 014 V1.1.1) of a diqkd key manager. "
            "Mutual TLS is required; the caller's SAE ID comes from its client certificate. "
            "Key sizes are in bits; keys are base64 (RFC 4648)."
        ),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
    )
    app.state.service = service
    app.include_router(keys_router)
    app.include_router(peer_router)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Response:
        return _error(exc.status, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        message, details = _describe_validation(exc)
        return _error(400, message, details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        status = exc.status_code
        if status >= 500:
            status = 503
        return _error(status, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        log.error("unexpected error: %s", type(exc).__name__, exc_info=exc)
        return _error(503, "internal error of the KME; try again later")

    def _openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            _strip_422(schema)
            _add_key_request(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = _openapi  # type: ignore[method-assign]
    app.add_middleware(_AuthMiddleware, registry=Registry(config), kme_id=config.kme_id)
    return app


def _add_key_request(schema: dict[str, Any]) -> None:
    """``POST enc_keys`` parses its body itself: publish the KeyRequest schema it refers to."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault(
        "KeyRequest", KeyRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    )


def _strip_422(schema: dict[str, Any]) -> None:
    """Malformed requests answer 400 (Error body), not FastAPI's 422: say so in the document."""
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            operation.get("responses", {}).pop("422", None)
    components = schema.get("components", {}).get("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
