"""Thin HTTP routes of the ETSI GS QKD 014 API (and the KME-to-KME intake).

Each route identifies the caller from its verified client certificate, parses the request,
and hands it to :class:`~diqkd.kms.service.KeyService`. Answers are written directly as JSON
(the response models document them in the OpenAPI document).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import TypeAdapter, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from diqkd.kms.identity import SAE_STATE_KEY, identity_from_scope
from diqkd.kms.schemas import (
    ErrorBody,
    KeyContainer,
    KeyIDs,
    KeyRequest,
    ReservationBatch,
    ReservationLookup,
    ReservationsAccepted,
    ReservationsFound,
    Status,
)
from diqkd.kms.service import ApiError, KeyService

__all__ = ["enc_keys_response", "keys_router", "parse_key_request", "peer_router"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Bad request format (Error body)"},
    401: {
        "description": "Unauthorized: the client certificate is not a registered SAE of this "
        "KME, or the caller is not a slave of the keys (no body)",
        "content": {},
    },
    503: {"model": ErrorBody, "description": "Error on the server side (Error body)"},
}

keys_router = APIRouter(prefix="/api/v1/keys", tags=["ETSI GS QKD 014 V1.1.1"])
peer_router = APIRouter(prefix="/api/v1/kme", include_in_schema=False)


def _service(request: Request) -> KeyService:
    service: KeyService = request.app.state.service
    return service


def _json(document: dict[str, Any], status_code: int = 200) -> Response:
    return Response(
        content=json.dumps(document, separators=(",", ":")).encode("utf-8"),
        status_code=status_code,
        media_type="application/json",
    )


def _only_query(request: Request, allowed: tuple[str, ...]) -> None:
    if not request.scope.get("query_string"):
        return
    params = request.query_params
    for name in params:
        if name not in allowed:
            what = f"only {' and '.join(allowed)} are allowed" if allowed else "none are allowed"
            raise ApiError(400, f"unknown query parameter {name[:64]!r}: {what}")
        if len(params.getlist(name)) > 1:
            raise ApiError(400, f"query parameter {name!r} is given more than once")


def _caller(request: Request, service: KeyService) -> str:
    """The SAE ID the authentication middleware derived from the client certificate."""
    state = request.scope.get("state")
    sae = state.get(SAE_STATE_KEY) if isinstance(state, dict) else None
    if isinstance(sae, str):
        return sae
    return service.local_sae(identity_from_scope(request.scope))


@keys_router.get(
    "/{slave_SAE_ID}/status",
    response_model=Status,
    responses=_ERRORS,
    summary="Get status",
    operation_id="get_status",
)
async def get_status(slave_SAE_ID: str, request: Request) -> Response:
    """Status of the keys the caller (master SAE) may get for ``slave_SAE_ID``."""
    service = _service(request)
    master = _caller(request, service)
    _only_query(request, ())
    return _json(await service.status(master, slave_SAE_ID))


_KEY_REQUEST = TypeAdapter(KeyRequest | None)
#: The request body as FastAPI would document ``body: KeyRequest | None = Body(None)``.
_KEY_REQUEST_BODY: dict[str, Any] = {
    "content": {
        "application/json": {
            "schema": {
                "anyOf": [{"$ref": "#/components/schemas/KeyRequest"}, {"type": "null"}],
                "title": "Body",
            }
        }
    }
}


def _is_json_type(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    main, _, sub = kind.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def parse_key_request(raw: bytes, content_type: str | None) -> KeyRequest | None:
    """The body of ``POST enc_keys``, read and validated as FastAPI reads an optional JSON body.

    The hottest route parses its body here rather than through FastAPI's dependency
    machinery (which costs more than the rest of the request on a loaded KME): an empty body
    is ``None``; a JSON content type (or none) is decoded (errors as FastAPI's
    ``json_invalid``, bytes that are not UTF-8 as its 400); anything else is validated as is,
    so it fails as FastAPI fails it; the pydantic errors carry FastAPI's ``("body", …)``
    locations, and the app's handler turns them into the same 400 answers.
    """
    if not raw:
        return None
    value: Any = raw
    if not content_type or _is_json_type(content_type):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise RequestValidationError(
                [
                    {
                        "type": "json_invalid",
                        "loc": ("body", exc.pos),
                        "msg": "JSON decode error",
                        "input": {},
                        "ctx": {"error": exc.msg},
                    }
                ]
            ) from None
        except ValueError:  # not UTF-8: what FastAPI answers for a body it cannot parse
            raise StarletteHTTPException(400, "There was an error parsing the body") from None
    try:
        return _KEY_REQUEST.validate_python(value)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**err, "loc": ("body", *err["loc"])} for err in exc.errors()]
        ) from None


async def enc_keys_response(
    service: KeyService, master: str, slave: str, body: KeyRequest | None
) -> Response:
    """Check a master SAE's key request and answer it with fresh keys (or raise)."""
    req = body or KeyRequest()
    checked = service.check_key_request(
        master,
        slave,
        number=req.number,
        size=req.size,
        additional_slaves=req.additional_slave_SAE_IDs,
        extension_mandatory=req.extension_mandatory,
    )
    return _json(await service.enc_keys(checked))


@keys_router.post(
    "/{slave_SAE_ID}/enc_keys",
    response_model=KeyContainer,
    responses=_ERRORS,
    summary="Get key (POST)",
    operation_id="post_enc_keys",
    openapi_extra={"requestBody": _KEY_REQUEST_BODY},
)
async def post_enc_keys(slave_SAE_ID: str, request: Request) -> Response:
    """New keys for the caller (master SAE), to be shared with ``slave_SAE_ID``.

    Without a query string the app's fast path (``diqkd.kms.app``) answers this call with the
    same functions before it reaches FastAPI; this route serves the rest and documents it.
    """
    service = _service(request)
    master = _caller(request, service)
    _only_query(request, ())
    body = parse_key_request(await request.body(), request.headers.get("content-type"))
    return await enc_keys_response(service, master, slave_SAE_ID, body)


@keys_router.get(
    "/{slave_SAE_ID}/enc_keys",
    response_model=KeyContainer,
    responses=_ERRORS,
    summary="Get key (GET)",
    operation_id="get_enc_keys",
)
async def get_enc_keys(
    slave_SAE_ID: str,
    request: Request,
    number: Annotated[int | None, Query(description="number of keys (default 1)")] = None,
    size: Annotated[int | None, Query(description="key size in bits (default key_size)")] = None,
) -> Response:
    """New keys for the caller (master SAE); only ``number`` and ``size`` may be given."""
    service = _service(request)
    master = _caller(request, service)
    _only_query(request, ("number", "size"))
    body = KeyRequest(number=number, size=size)
    return await enc_keys_response(service, master, slave_SAE_ID, body)


@keys_router.post(
    "/{master_SAE_ID}/dec_keys",
    response_model=KeyContainer,
    responses=_ERRORS,
    summary="Get key with key IDs (POST)",
    operation_id="post_dec_keys",
)
async def post_dec_keys(
    master_SAE_ID: str, request: Request, body: Annotated[KeyIDs, Body()]
) -> Response:
    """The keys named by ID, for the caller (a slave SAE named when they were reserved)."""
    service = _service(request)
    slave = _caller(request, service)
    _only_query(request, ())
    key_ids = service.check_key_ids(master_SAE_ID, [entry.key_ID for entry in body.key_IDs])
    return _json(await service.dec_keys(slave, key_ids, master=master_SAE_ID))


@keys_router.get(
    "/{master_SAE_ID}/dec_keys",
    response_model=KeyContainer,
    responses=_ERRORS,
    summary="Get key with key IDs (GET)",
    operation_id="get_dec_keys",
)
async def get_dec_keys(
    master_SAE_ID: str,
    request: Request,
    key_ID: Annotated[str, Query(description="the key's UUID (exactly one)")],
) -> Response:
    """One key named by ID, for the caller (a slave SAE named when it was reserved)."""
    service = _service(request)
    slave = _caller(request, service)
    _only_query(request, ("key_ID",))
    key_ids = service.check_key_ids(master_SAE_ID, [key_ID])
    return _json(await service.dec_keys(slave, key_ids, master=master_SAE_ID))


@peer_router.post("/reservations", response_model=ReservationsAccepted)
async def post_reservations(
    request: Request, body: Annotated[ReservationBatch, Body()]
) -> Response:
    """KME-to-KME: record the peer's reservations (only from the peer KME's certificate)."""
    service = _service(request)
    identity = identity_from_scope(request.scope)
    _only_query(request, ())
    accepted = await service.accept_from_peer(identity, body.source_KME_ID, body.reservations)
    return _json({"accepted": accepted})


@peer_router.post("/reservations/lookup", response_model=ReservationsFound)
async def post_reservation_lookup(
    request: Request, body: Annotated[ReservationLookup, Body()]
) -> Response:
    """KME-to-KME: this KME's reservations of the named keys (only for the peer KME)."""
    service = _service(request)
    identity = identity_from_scope(request.scope)
    _only_query(request, ())
    found = await service.lookup_for_peer(identity, body.source_KME_ID, body.key_IDs)
    return _json({"reservations": found})
