"""Malformed input never breaks the service: only 2xx/4xx, never 5xx, never a traceback.

Two fuzzers drive a running ``diqkd kme serve`` over mutual TLS:

* schemathesis, from the service's own OpenAPI document (``/openapi.json``), on every
  operation: generated and negated path, query and body data, checked for no server error,
  documented status codes, content types and response schemas;
* hypothesis, on bodies and query strings: arbitrary JSON (and bytes) for ``enc_keys`` and
  ``dec_keys``, from an SAE of the KME, so that requests get past authentication.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .conftest import KmePair, start_kme_pair, stop_kme_pair  # type: ignore[import-not-found]

KEYS = "/api/v1/keys"
ALLOWED = {200, 400, 401, 404, 405}


@pytest.fixture(scope="module")
def fuzz_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmePair]:
    """Its own two KMEs: fuzzing may drain keys, other modules must not notice."""
    pair = start_kme_pair(tmp_path_factory.mktemp("fuzz"), blocks=4, n_bits=65_536)
    try:
        yield pair
    finally:
        stop_kme_pair(pair)


@pytest.fixture(scope="module")
def kme_schema(fuzz_pair: KmePair) -> Any:
    document = fuzz_pair.http("SAE-A").get("/openapi.json").json()
    return schemathesis.openapi.from_dict(document)


def _assert_clean(response: Any) -> None:
    status = response.status_code
    assert status in ALLOWED, (status, response.text[:300])
    text = response.text
    assert "Traceback" not in text and 'File "' not in text
    if status == 401:
        assert response.content == b""
    elif status != 200:
        body = json.loads(text)
        assert isinstance(body, dict) and isinstance(body.get("message"), str)


OPERATIONS = [
    (f"{KEYS}/{{slave_SAE_ID}}/status", "GET"),
    (f"{KEYS}/{{slave_SAE_ID}}/enc_keys", "POST"),
    (f"{KEYS}/{{slave_SAE_ID}}/enc_keys", "GET"),
    (f"{KEYS}/{{master_SAE_ID}}/dec_keys", "POST"),
    (f"{KEYS}/{{master_SAE_ID}}/dec_keys", "GET"),
]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_schemathesis_every_operation(
    fuzz_pair: KmePair, kme_schema: Any, path: str, method: str, mode: GenerationMode
) -> None:
    if mode is GenerationMode.NEGATIVE and path.endswith("/status"):
        pytest.skip("status has only a string path parameter: nothing can violate its schema")
    dep = fuzz_pair.deployment
    operation = kme_schema[path][method]
    cert = (str(dep.cert("SAE-A")), str(dep.key("SAE-A")))

    @settings(suppress_health_check=list(HealthCheck), deadline=None)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(generation_mode=mode))
        response = case.call(
            base_url=fuzz_pair.url("KME-A"), cert=cert, verify=str(dep.ca), timeout=30
        )
        _assert_clean(response)
        checks = [not_a_server_error, content_type_conformance, status_code_conformance]
        if response.status_code != 401:
            checks.append(response_schema_conformance)
        case.validate_response(response, checks=checks)

    run()


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
_numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.text(max_size=5),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
_key_request = st.fixed_dictionaries(
    {},
    optional={
        "number": _numbers,
        "size": _numbers,
        "additional_slave_SAE_IDs": st.one_of(
            _json, st.lists(st.sampled_from(["SAE-C", "SAE-D", "SAE-A", "", "x"]), max_size=6)
        ),
        "extension_mandatory": _json,
        "extension_optional": _json,
    },
)
_key_ids = st.one_of(
    _json,
    st.fixed_dictionaries(
        {
            "key_IDs": st.lists(
                st.fixed_dictionaries(
                    {"key_ID": st.one_of(st.uuids().map(str), st.text(max_size=40), _json)}
                ),
                max_size=5,
            )
        }
    ),
)


@pytest.fixture(scope="module")
def sae_http(fuzz_pair: KmePair) -> dict[str, httpx.Client]:
    return {"A": fuzz_pair.http("SAE-A", "KME-A"), "B": fuzz_pair.http("SAE-B", "KME-B")}


_fuzz_settings = settings(suppress_health_check=list(HealthCheck), deadline=None)


@_fuzz_settings
@given(body=st.one_of(_key_request, _json))
def test_enc_keys_bodies(sae_http: dict[str, httpx.Client], body: Any) -> None:
    _assert_clean(sae_http["A"].post(f"{KEYS}/SAE-B/enc_keys", json=body))


@_fuzz_settings
@given(raw=st.binary(max_size=200))
def test_enc_keys_raw_bytes(sae_http: dict[str, httpx.Client], raw: bytes) -> None:
    headers = {"content-type": "application/json"}
    _assert_clean(sae_http["A"].post(f"{KEYS}/SAE-B/enc_keys", content=raw, headers=headers))


@_fuzz_settings
@given(body=_key_ids)
def test_dec_keys_bodies(sae_http: dict[str, httpx.Client], body: Any) -> None:
    _assert_clean(sae_http["B"].post(f"{KEYS}/SAE-A/dec_keys", json=body))


@_fuzz_settings
@given(
    params=st.dictionaries(
        st.sampled_from(["number", "size", "key_ID", "x", ""]), st.text(max_size=12), max_size=3
    ),
    path=st.sampled_from(
        ["SAE-B/enc_keys", "SAE-B/status", "SAE-A/dec_keys", "%00/enc_keys", "SAE-B/enc_keys/"]
    ),
)
def test_query_strings(
    sae_http: dict[str, httpx.Client], params: dict[str, str], path: str
) -> None:
    http = sae_http["B"] if "dec_keys" in path else sae_http["A"]
    _assert_clean(http.get(f"{KEYS}/{path}", params=params))


def test_schema_is_served_from_the_code(fuzz_pair: KmePair, tmp_path: Path) -> None:
    doc = fuzz_pair.http("SAE-A").get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert "ETSI GS QKD 014" in doc["info"]["title"]
