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

import asyncio
import gc
import inspect
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
from diqkd.kms.routes import enc_keys_response, keys_router, parse_key_request, peer_router
from diqkd.kms.runner import StoreRunner
from diqkd.kms.schemas import KeyRequest
from diqkd.kms.service import ApiError, KeyService
from diqkd.kms.store import KeyStore
from diqkd.kms.sync import PeerSync

__all__ = ["create_app", "expire_reservations_loop"]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_KEYS_PREFIX = "/api/v1/keys/"
_PEER_PREFIX = "/api/v1/kme/"
_ENC_SUFFIX = "/enc_keys"


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


def error_response(exc: Exception) -> Response:
    """The answer to a request that raised ``exc`` (400/401/503 as docs/kms.md lists them)."""
    if isinstance(exc, ApiError):
        return _error(exc.status, exc.message, exc.details)
    if isinstance(exc, RequestValidationError):
        message, details = _describe_validation(exc)
        return _error(400, message, details)
    if isinstance(exc, StarletteHTTPException):
        return _error(503 if exc.status_code >= 500 else exc.status_code, str(exc.detail))
    log.error("unexpected error: %s", type(exc).__name__, exc_info=exc)
    return _error(503, "internal error of the KME; try again later")


class _EncKeysFastPath:
    """Pure ASGI middleware: serves ``POST /api/v1/keys/{slave_SAE_ID}/enc_keys`` directly.

    The key request of a master SAE is the KME's hottest call; FastAPI's routing, dependency
    resolution and exception layers cost more CPU than the work itself. This handler sits
    inside :class:`_AuthMiddleware` (the caller is already identified) and runs the very same
    steps as the FastAPI route (:func:`diqkd.kms.routes.enc_keys_response`: body parsing,
    checks, reservation) and the same error answers (:func:`error_response`); only the HTTP
    plumbing is shorter. Requests with a query string (a 400) and every other path go on to
    FastAPI, which also documents this route in the OpenAPI document.
    """

    def __init__(self, app: ASGIApp, service: KeyService) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        slave = path[len(_KEYS_PREFIX) : -len(_ENC_SUFFIX)]
        if (
            scope.get("method") != "POST"
            or not path.startswith(_KEYS_PREFIX)
            or not path.endswith(_ENC_SUFFIX)
            or not slave
            or "/" in slave
            or scope.get("query_string")
        ):
            await self.app(scope, receive, send)
            return
        try:
            body = await _read_body(receive)
            content_type = None
            for name, value in scope.get("headers", ()):
                if name == b"content-type":
                    content_type = value.decode("latin-1")
            state = scope.get("state")
            master = state.get(SAE_STATE_KEY) if isinstance(state, dict) else None
            if not isinstance(master, str):  # pragma: no cover - _AuthMiddleware sets it
                master = self.service.local_sae(identity_from_scope(scope))
            response = await enc_keys_response(
                self.service, master, slave, parse_key_request(body, content_type)
            )
        except Exception as exc:
            response = error_response(exc)
        await response(scope, receive, send)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise StarletteHTTPException(400, "the client disconnected")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


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


async def expire_reservations_loop(runner: StoreRunner, ttl_s: float) -> None:
    """Erase unfetched peer reservations older than ``ttl_s`` (``store.reservation_ttl_s``),
    checking every ``ttl_s/10`` seconds (clipped to [1 s, 5 min]) until cancelled.

    A failed pass (the database busy or away) is logged by error class and retried at the
    next check; the service keeps running.
    """
    interval = min(max(ttl_s / 10.0, 1.0), 300.0)
    while True:
        try:
            await runner.call(runner.store.expire_reservations, older_than_s=ttl_s)
        except Exception as exc:  # a background pass must not end the loop
            log.warning(
                "reservation expiry failed (%s); next try in %.0f s", type(exc).__name__, interval
            )
        await asyncio.sleep(interval)


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
        ttl = config.store.reservation_ttl_s
        expiry = asyncio.create_task(expire_reservations_loop(runner, ttl)) if ttl > 0 else None
        try:
            yield
        finally:
            if expiry is not None:
                expiry.cancel()
                await asyncio.gather(expiry, return_exceptions=True)
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
        **_NO_TELEMETRY,
    )
    app.state.service = service
    app.include_router(keys_router)
    app.include_router(peer_router)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Response:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        return error_response(exc)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        return error_response(exc)

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
    app.add_middleware(_EncKeysFastPath, service=service)  # inside the authentication
    app.add_middleware(_AuthMiddleware, registry=Registry(config), kme_id=config.kme_id)
    return app


def _no_telemetry() -> dict[str, Any]:
    """FastAPI ≥ 0.16x checks for OpenTelemetry providers on every request; a KME exports no
    telemetry (its requests are about keys), so switch the checks off where FastAPI has them."""
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


_NO_TELEMETRY = _no_telemetry()


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
