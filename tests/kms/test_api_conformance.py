"""ETSI GS QKD 014 V1.1.1 conformance, written from ``shared/docs/ETSI-GS-QKD-014.md``.

A real client drives a real server: the ``kme_pair`` fixture runs two ``diqkd kme serve``
processes (KME-A at site alice, KME-B at site bob) on loopback with TLS, and these tests talk
to them over HTTPS with client certificates. SAE-A and SAE-A2 are attached to KME-A; SAE-B …
SAE-F to KME-B; SAE-ROGUE holds a certificate of the same CA but is registered nowhere.
"""

from __future__ import annotations

import base64
import ssl
import uuid
import warnings
from typing import Any

import httpx
import pytest

from diqkd.kms.service import (
    MSG_EXT_UNSUPPORTED,
    MSG_KEYS_NOT_FOUND,
    MSG_SIZE_MULTIPLE,
)

KEYS = "/api/v1/keys"


def _enc(pair: Any, body: Any = None, *, slave: str = "SAE-B", master: str = "SAE-A") -> Any:
    return pair.http(master).post(f"{KEYS}/{slave}/enc_keys", json=body)


def _error_message(response: httpx.Response) -> str:
    assert response.status_code in (400, 503), response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) <= {"message", "details"}
    assert isinstance(body["message"], str) and body["message"]
    return str(body["message"])


def _assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.content == b""


def _keys(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) <= {"keys", "key_container_extension"}
    for key in body["keys"]:
        assert set(key) <= {"key_ID", "key", "key_ID_extension", "key_extension"}
        assert str(uuid.UUID(key["key_ID"])) == key["key_ID"]
    keys: list[dict[str, Any]] = body["keys"]
    return keys


# ----------------------------------------------------------------------------------- Status


def test_status(kme_pair: Any) -> None:
    response = kme_pair.http("SAE-A").get(f"{KEYS}/SAE-B/status")
    assert response.status_code == 200
    status = response.json()
    assert status["source_KME_ID"] == "KME-A"
    assert status["target_KME_ID"] == "KME-B"
    assert status["master_SAE_ID"] == "SAE-A"  # the caller, from its certificate
    assert status["slave_SAE_ID"] == "SAE-B"
    assert status["key_size"] == 256
    assert status["max_key_per_request"] == 128
    assert status["min_key_size"] == 64
    assert status["max_key_size"] == 8192
    assert status["max_SAE_ID_count"] == 4
    assert 0 < status["stored_key_count"] <= status["max_key_count"]
    for name in ("key_size", "stored_key_count", "max_key_count", "max_key_per_request"):
        assert isinstance(status[name], int)


def test_status_from_the_other_side(kme_pair: Any) -> None:
    response = kme_pair.http("SAE-C", "KME-B").get(f"{KEYS}/SAE-A/status")
    assert response.status_code == 200
    status = response.json()
    assert (status["source_KME_ID"], status["target_KME_ID"]) == ("KME-B", "KME-A")
    assert (status["master_SAE_ID"], status["slave_SAE_ID"]) == ("SAE-C", "SAE-A")


def test_status_unknown_slave_is_400(kme_pair: Any) -> None:
    response = kme_pair.http("SAE-A").get(f"{KEYS}/NO-SUCH-SAE/status")
    assert "not known" in _error_message(response)


def test_stored_key_count_falls_by_keys_taken(kme_pair: Any) -> None:
    http = kme_pair.http("SAE-A2")
    before = http.get(f"{KEYS}/SAE-B/status").json()["stored_key_count"]
    assert len(_keys(_enc(kme_pair, {"number": 3}, master="SAE-A2"))) == 3
    after = http.get(f"{KEYS}/SAE-B/status").json()["stored_key_count"]
    assert before - after == 3


# ------------------------------------------------------------------------ enc_keys / dec_keys


def test_post_enc_keys_then_post_dec_keys_same_bits(kme_pair: Any) -> None:
    keys = _keys(_enc(kme_pair, {"number": 2, "size": 512}))
    assert len(keys) == 2
    for key in keys:
        assert len(base64.b64decode(key["key"], validate=True)) == 512 // 8
    body = {"key_IDs": [{"key_ID": k["key_ID"]} for k in keys]}
    got = _keys(kme_pair.http("SAE-B", "KME-B").post(f"{KEYS}/SAE-A/dec_keys", json=body))
    assert [k["key_ID"] for k in got] == [k["key_ID"] for k in keys]
    assert [k["key"] for k in got] == [k["key"] for k in keys]


def test_post_enc_keys_empty_body_gives_one_default_key(kme_pair: Any) -> None:
    http = kme_pair.http("SAE-A")
    for response in (
        http.post(f"{KEYS}/SAE-B/enc_keys"),
        http.post(f"{KEYS}/SAE-B/enc_keys", json={}),
        http.post(
            f"{KEYS}/SAE-B/enc_keys", content=b"", headers={"content-type": "application/json"}
        ),
    ):
        keys = _keys(response)
        assert len(keys) == 1
        assert len(base64.b64decode(keys[0]["key"], validate=True)) == 256 // 8


def test_get_enc_keys_and_get_dec_keys(kme_pair: Any) -> None:
    http = kme_pair.http("SAE-A")
    keys = _keys(http.get(f"{KEYS}/SAE-B/enc_keys", params={"number": 2, "size": 128}))
    assert len(keys) == 2
    assert all(len(base64.b64decode(k["key"])) == 16 for k in keys)
    assert len(_keys(http.get(f"{KEYS}/SAE-B/enc_keys"))) == 1
    slave = kme_pair.http("SAE-B", "KME-B")
    for key in keys:
        got = _keys(slave.get(f"{KEYS}/SAE-A/dec_keys", params={"key_ID": key["key_ID"]}))
        assert got == [{"key_ID": key["key_ID"], "key": key["key"]}]


def test_keys_are_fresh_and_distinct(kme_pair: Any) -> None:
    seen_ids: set[str] = set()
    seen_bits: set[str] = set()
    for _ in range(5):
        for key in _keys(_enc(kme_pair, {"number": 10})):
            seen_ids.add(key["key_ID"])
            seen_bits.add(key["key"])
    assert len(seen_ids) == 50
    assert len(seen_bits) == 50


def test_dec_keys_twice_is_400_not_found(kme_pair: Any) -> None:
    (key,) = _keys(_enc(kme_pair))
    slave = kme_pair.http("SAE-B", "KME-B")
    assert len(_keys(slave.get(f"{KEYS}/SAE-A/dec_keys", params={"key_ID": key["key_ID"]}))) == 1
    again = slave.get(f"{KEYS}/SAE-A/dec_keys", params={"key_ID": key["key_ID"]})
    assert _error_message(again) == MSG_KEYS_NOT_FOUND


def test_dec_keys_at_the_masters_own_kme_is_not_found(kme_pair: Any) -> None:
    (key,) = _keys(_enc(kme_pair))
    # SAE-A2 is attached to KME-A: its master's keys are fetched at KME-B, not here
    response = kme_pair.http("SAE-A2").get(
        f"{KEYS}/SAE-B/dec_keys", params={"key_ID": key["key_ID"]}
    )
    assert response.status_code == 400


def test_dec_keys_unknown_key_is_400_with_spec_message(kme_pair: Any) -> None:
    slave = kme_pair.http("SAE-B", "KME-B")
    response = slave.post(
        f"{KEYS}/SAE-A/dec_keys", json={"key_IDs": [{"key_ID": str(uuid.uuid4())}]}
    )
    assert _error_message(response) == MSG_KEYS_NOT_FOUND


def test_dec_keys_is_all_or_nothing(kme_pair: Any) -> None:
    (key,) = _keys(_enc(kme_pair))
    slave = kme_pair.http("SAE-B", "KME-B")
    body = {"key_IDs": [{"key_ID": key["key_ID"]}, {"key_ID": str(uuid.uuid4())}]}
    assert _error_message(slave.post(f"{KEYS}/SAE-A/dec_keys", json=body)) == MSG_KEYS_NOT_FOUND
    got = _keys(slave.get(f"{KEYS}/SAE-A/dec_keys", params={"key_ID": key["key_ID"]}))
    assert got[0]["key"] == key["key"]


def test_dec_keys_by_a_slave_not_named_is_401_without_body(kme_pair: Any) -> None:
    (key,) = _keys(_enc(kme_pair))
    other = kme_pair.http("SAE-C", "KME-B")  # registered at KME-B, but not named as slave
    _assert_401(other.get(f"{KEYS}/SAE-A/dec_keys", params={"key_ID": key["key_ID"]}))
    # the named slave still gets it
    slave = kme_pair.http("SAE-B", "KME-B")
    assert _keys(slave.get(f"{KEYS}/SAE-A/dec_keys", params={"key_ID": key["key_ID"]}))


def test_dec_keys_naming_another_master_is_401_without_body(kme_pair: Any) -> None:
    # The spec: the caller must have been named as slave in the enc_keys call of *that* master.
    (key,) = _keys(_enc(kme_pair))  # reserved by SAE-A for SAE-B
    slave = kme_pair.http("SAE-B", "KME-B")
    # SAE-A2 is a master SAE at KME-A too, but it did not reserve this key
    _assert_401(slave.get(f"{KEYS}/SAE-A2/dec_keys", params={"key_ID": key["key_ID"]}))
    body = {"key_IDs": [{"key_ID": key["key_ID"]}]}
    _assert_401(slave.post(f"{KEYS}/SAE-A2/dec_keys", json=body))
    # nothing was delivered by the refused calls: the right master still works, once
    got = _keys(slave.post(f"{KEYS}/SAE-A/dec_keys", json=body))
    assert got == [key]
    assert _error_message(slave.post(f"{KEYS}/SAE-A/dec_keys", json=body)) == MSG_KEYS_NOT_FOUND


def test_dec_keys_mixing_two_masters_keys_is_401_and_all_or_nothing(kme_pair: Any) -> None:
    (mine,) = _keys(_enc(kme_pair))
    (theirs,) = _keys(_enc(kme_pair, master="SAE-A2"))
    slave = kme_pair.http("SAE-B", "KME-B")
    body = {"key_IDs": [{"key_ID": mine["key_ID"]}, {"key_ID": theirs["key_ID"]}]}
    _assert_401(slave.post(f"{KEYS}/SAE-A/dec_keys", json=body))
    assert _keys(slave.get(f"{KEYS}/SAE-A/dec_keys", params={"key_ID": mine["key_ID"]}))
    assert _keys(slave.get(f"{KEYS}/SAE-A2/dec_keys", params={"key_ID": theirs["key_ID"]}))


# ---------------------------------------------------------------------------------- multicast


def test_multicast_additional_slaves_each_get_the_key_once(kme_pair: Any) -> None:
    body = {"number": 2, "additional_slave_SAE_IDs": ["SAE-C", "SAE-D"]}
    keys = _keys(_enc(kme_pair, body))
    ids = {"key_IDs": [{"key_ID": k["key_ID"]} for k in keys]}
    for slave in ("SAE-B", "SAE-C", "SAE-D"):
        http = kme_pair.http(slave, "KME-B")
        got = _keys(http.post(f"{KEYS}/SAE-A/dec_keys", json=ids))
        assert [k["key"] for k in got] == [k["key"] for k in keys]
        assert _error_message(http.post(f"{KEYS}/SAE-A/dec_keys", json=ids)) == MSG_KEYS_NOT_FOUND
    _assert_401(kme_pair.http("SAE-E", "KME-B").post(f"{KEYS}/SAE-A/dec_keys", json=ids))


# ------------------------------------------------------------------------------------- 400s

BAD_REQUESTS: list[tuple[str, Any, str | None]] = [
    ("number zero", {"number": 0}, None),
    ("number negative", {"number": -3}, None),
    ("number non-numeric", {"number": "five"}, None),
    ("number as string", {"number": "5"}, None),
    ("number fractional", {"number": 1.5}, None),
    ("number boolean", {"number": True}, None),
    ("number above max_key_per_request", {"number": 129}, None),
    ("size zero", {"size": 0}, None),
    ("size negative", {"size": -256}, None),
    ("size non-numeric", {"size": "big"}, None),
    ("size not a multiple of 8", {"size": 250}, MSG_SIZE_MULTIPLE),
    ("size below min_key_size", {"size": 56}, None),
    ("size above max_key_size", {"size": 8200}, None),
    (
        "too many additional slaves",
        {"additional_slave_SAE_IDs": ["SAE-C", "SAE-D", "SAE-E", "SAE-F", "SAE-X"]},
        None,
    ),
    ("duplicate additional slave", {"additional_slave_SAE_IDs": ["SAE-C", "SAE-C"]}, None),
    ("path slave repeated", {"additional_slave_SAE_IDs": ["SAE-B"]}, None),
    ("master among slaves", {"additional_slave_SAE_IDs": ["SAE-A"]}, None),
    ("empty SAE ID", {"additional_slave_SAE_IDs": [""]}, None),
    ("unknown additional slave", {"additional_slave_SAE_IDs": ["NOBODY"]}, None),
    ("slave list not a list", {"additional_slave_SAE_IDs": "SAE-C"}, None),
    (
        "extension_mandatory",
        {"extension_mandatory": [{"abc_route_type": "direct"}]},
        MSG_EXT_UNSUPPORTED,
    ),
    ("extension_mandatory not objects", {"extension_mandatory": ["x"]}, None),
    ("unknown field", {"numbr": 1}, None),
    ("body not an object", [1, 2], None),
    ("body a string", "hello", None),
]


@pytest.mark.parametrize(
    ("case", "body", "message"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS]
)
def test_post_enc_keys_400(kme_pair: Any, case: str, body: Any, message: str | None) -> None:
    got = _error_message(_enc(kme_pair, body))
    if message is not None:
        assert got == message


def test_more_keys_than_stored_is_400_and_takes_nothing(kme_pair: Any) -> None:
    http = kme_pair.http("SAE-A")
    before = http.get(f"{KEYS}/SAE-B/status").json()["stored_key_count"]
    response = _enc(kme_pair, {"number": 128, "size": 8192})  # 1 Mbit > alice's half
    assert "not enough key" in _error_message(response)
    assert http.get(f"{KEYS}/SAE-B/status").json()["stored_key_count"] == before


def test_extension_optional_is_ignored(kme_pair: Any) -> None:
    body = {"extension_optional": [{"abc_route_type": "direct"}]}
    assert len(_keys(_enc(kme_pair, body))) == 1


@pytest.mark.parametrize(
    "raw",
    [b"{", b'{"number": 1', b"\xff\xfe", b"nul", b'{"number": 1}{"size": 8}', b"[" * 5000],
)
def test_malformed_json_is_400(kme_pair: Any, raw: bytes) -> None:
    http = kme_pair.http("SAE-A")
    response = http.post(
        f"{KEYS}/SAE-B/enc_keys", content=raw, headers={"content-type": "application/json"}
    )
    _error_message(response)


@pytest.mark.parametrize(
    "params",
    [
        {"number": "x"},
        {"size": "1.5"},
        {"number": "0"},
        {"size": "12"},
        {"number": "1", "color": "red"},
        {"additional_slave_SAE_IDs": "SAE-C"},
    ],
)
def test_get_enc_keys_400(kme_pair: Any, params: dict[str, str]) -> None:
    _error_message(kme_pair.http("SAE-A").get(f"{KEYS}/SAE-B/enc_keys", params=params))


def test_get_enc_keys_repeated_parameter_is_400(kme_pair: Any) -> None:
    response = kme_pair.http("SAE-A").get(f"{KEYS}/SAE-B/enc_keys?number=1&number=2")
    _error_message(response)


@pytest.mark.parametrize(
    "query",
    ["", "?key_ID=not-a-uuid", "?key_ID=1&key_ID=2", "?keyID=abc", f"?key_ID={uuid.uuid4()}&x=1"],
)
def test_get_dec_keys_400(kme_pair: Any, query: str) -> None:
    _error_message(kme_pair.http("SAE-B", "KME-B").get(f"{KEYS}/SAE-A/dec_keys{query}"))


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"key_IDs": []},
        {"key_IDs": [{"key_ID": "nope"}]},
        {"key_IDs": [{"key_ID": 7}]},
        {"key_IDs": ["a"]},
        {"key_IDs": [{"key_ID": str(uuid.uuid4())}] * 2},
        {"key_IDs": [{"key_ID": str(uuid.uuid4())} for _ in range(129)]},
        {"key_IDs": [{"key_ID": str(uuid.uuid4()), "other": 1}]},
    ],
)
def test_post_dec_keys_400(kme_pair: Any, body: Any) -> None:
    _error_message(kme_pair.http("SAE-B", "KME-B").post(f"{KEYS}/SAE-A/dec_keys", json=body))


def test_dec_keys_unknown_master_is_400(kme_pair: Any) -> None:
    response = kme_pair.http("SAE-B", "KME-B").get(
        f"{KEYS}/NOBODY/dec_keys", params={"key_ID": str(uuid.uuid4())}
    )
    _error_message(response)


def test_enc_keys_slave_attached_to_this_kme_is_400(kme_pair: Any) -> None:
    _error_message(_enc(kme_pair, slave="SAE-A2"))


# ------------------------------------------------------------------------------------- 401s


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"{KEYS}/SAE-B/status"),
        ("POST", f"{KEYS}/SAE-B/enc_keys"),
        ("GET", f"{KEYS}/SAE-B/enc_keys"),
        ("POST", f"{KEYS}/SAE-B/dec_keys"),
        ("GET", f"{KEYS}/SAE-B/dec_keys?key_ID={uuid.uuid4()}"),
    ],
)
def test_unregistered_certificate_is_401_without_body(
    kme_pair: Any, method: str, path: str
) -> None:
    rogue = kme_pair.deployment.unregistered_sae
    response = kme_pair.http(rogue).request(method, path, content=b"{not json")
    _assert_401(response)


def test_sae_of_the_other_kme_is_401(kme_pair: Any) -> None:
    # SAE-B is registered, but attached to KME-B: it may not ask KME-A for keys
    _assert_401(kme_pair.http("SAE-B", "KME-A").post(f"{KEYS}/SAE-C/enc_keys", json={}))


def test_kme_to_kme_endpoint_refuses_saes(kme_pair: Any) -> None:
    response = kme_pair.http("SAE-A").post(
        "/api/v1/kme/reservations", json={"source_KME_ID": "KME-B", "reservations": []}
    )
    _assert_401(response)


def test_reservation_lookup_answers_only_the_peer_kme(kme_pair: Any) -> None:
    lookup = "/api/v1/kme/reservations/lookup"
    response = kme_pair.http("SAE-A").post(
        lookup, json={"source_KME_ID": "KME-B", "key_IDs": [str(uuid.uuid4())]}
    )
    _assert_401(response)
    got = kme_pair.http("SAE-A").post(f"{KEYS}/SAE-B/enc_keys", json={"number": 1})
    assert got.status_code == 200, got.text
    (key,) = got.json()["keys"]
    peer = kme_pair.http("KME-B", "KME-A")  # KME-B's certificate, as its forwarder uses it
    unknown = str(uuid.uuid4())
    response = peer.post(
        lookup, json={"source_KME_ID": "KME-B", "key_IDs": [key["key_ID"], unknown]}
    )
    assert response.status_code == 200, response.text
    (record,) = response.json()["reservations"]  # only A's own reservation, never key bits
    assert record["key_id"] == key["key_ID"]
    assert record["master_sae"] == "SAE-A" and record["slave_saes"] == ["SAE-B"]
    assert set(record) == {
        "key_id", "block_id", "offset_bits", "size_bits", "master_sae", "slave_saes"
    }  # fmt: skip
    bad = peer.post(lookup, json={"source_KME_ID": "KME-B", "key_IDs": ["not-a-uuid"]})
    assert bad.status_code == 400
    wrong = peer.post(lookup, json={"source_KME_ID": "KME-X", "key_IDs": []})
    assert wrong.status_code == 400


def test_no_client_certificate_is_refused_by_tls(kme_pair: Any) -> None:
    ctx = ssl.create_default_context(cafile=str(kme_pair.deployment.ca))
    with (
        httpx.Client(base_url=kme_pair.url("KME-A"), verify=ctx, timeout=10) as http,
        pytest.raises((httpx.HTTPError, ssl.SSLError)),
    ):
        http.get(f"{KEYS}/SAE-B/status")


def test_tls_1_1_is_refused(kme_pair: Any) -> None:
    dep = kme_pair.deployment
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(dep.ca))
    ctx.load_cert_chain(str(dep.cert("SAE-A")), str(dep.key("SAE-A")))
    with warnings.catch_warnings():  # setting TLS 1.1 is deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with (
        httpx.Client(base_url=kme_pair.url("KME-A"), verify=ctx, timeout=10) as http,
        pytest.raises((httpx.HTTPError, ssl.SSLError)),
    ):
        http.get(f"{KEYS}/SAE-B/status")


def test_tls_version_is_at_least_1_2(kme_pair: Any) -> None:
    import socket

    dep = kme_pair.deployment
    ctx = ssl.create_default_context(cafile=str(dep.ca))
    ctx.load_cert_chain(str(dep.cert("SAE-A")), str(dep.key("SAE-A")))
    with (
        socket.create_connection(("127.0.0.1", dep.ports["KME-A"]), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


# ---------------------------------------------------------------------------- other answers


def test_unknown_path_and_method_answer_error_bodies(kme_pair: Any) -> None:
    http = kme_pair.http("SAE-A")
    response = http.get("/api/v1/nothing")
    assert response.status_code == 404 and "message" in response.json()
    response = http.delete(f"{KEYS}/SAE-B/enc_keys")
    assert response.status_code == 405 and "message" in response.json()


def test_openapi_document(kme_pair: Any) -> None:
    doc = kme_pair.http("SAE-A").get("/openapi.json").json()
    paths = doc["paths"]
    assert set(paths) == {
        f"{KEYS}/{{slave_SAE_ID}}/status",
        f"{KEYS}/{{slave_SAE_ID}}/enc_keys",
        f"{KEYS}/{{master_SAE_ID}}/dec_keys",
    }
    assert set(paths[f"{KEYS}/{{slave_SAE_ID}}/enc_keys"]) == {"get", "post"}
    assert set(paths[f"{KEYS}/{{master_SAE_ID}}/dec_keys"]) == {"get", "post"}
    for path in paths.values():
        for operation in path.values():
            assert {"200", "400", "401", "503"} <= set(operation["responses"])
            assert "422" not in operation["responses"]
    schemas = doc["components"]["schemas"]
    for name in ("Status", "KeyRequest", "KeyContainer", "KeyIDs", "ErrorBody"):
        assert name in schemas
