"""A small ETSI GS QKD 014 client for SAEs (mutual TLS, keep-alive, httpx).

>>> with KmeClient("https://127.0.0.1:8443", cert="SAE-A.crt", key="SAE-A.key",
...                ca="ca.crt") as kme:                                    # doctest: +SKIP
...     keys = kme.enc_keys("SAE-B", number=1, size=256)
...     keys[0].key_id, len(keys[0].key)
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from diqkd.kms.errors import KmeClientError
from diqkd.kms.schemas import Status

__all__ = ["ClientKey", "KmeClient", "sae_ssl_context"]


@dataclass(frozen=True, repr=False)
class ClientKey:
    """A key as received by an SAE: its ID and its bytes (never shown in ``repr``)."""

    key_id: str
    key: bytes

    def __repr__(self) -> str:
        return f"ClientKey(key_id={self.key_id!r}, size_bits={8 * len(self.key)}, key=<secret>)"


def sae_ssl_context(
    *, cert: str | os.PathLike[str], key: str | os.PathLike[str], ca: str | os.PathLike[str]
) -> ssl.SSLContext:
    """TLS ≥ 1.2 client context: verifies the KME against ``ca``, presents the SAE certificate.

    Raises
    ------
    KmeClientError
        If a file cannot be loaded.
    """
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise KmeClientError(
            f"cannot load the SAE certificate, key or CA ({cert}, {key}, {ca}): {reason}"
        ) from None
    return ctx


class KmeClient:
    """Talks to one KME as one SAE (identified by its client certificate).

    Parameters
    ----------
    url
        Base URL of the KME (``https://host:port``).
    cert, key, ca
        The SAE's certificate and private key (PEM), and the CA bundle that verifies the KME.
    timeout_s
        Timeout of one request.
    """

    def __init__(
        self,
        url: str,
        *,
        cert: str | os.PathLike[str],
        key: str | os.PathLike[str],
        ca: str | os.PathLike[str],
        timeout_s: float = 10.0,
    ) -> None:
        if not url.startswith("https://"):
            raise KmeClientError(f"the KME URL must start with https:// (got {url!r})")
        self._http = httpx.Client(
            base_url=url.rstrip("/") + "/api/v1/keys",
            verify=sae_ssl_context(cert=cert, key=key, ca=ca),
            timeout=httpx.Timeout(timeout_s),
        )

    def __enter__(self) -> KmeClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def status(self, slave_sae: str) -> Status:
        """Status of the keys this SAE (as master) may get for ``slave_sae``."""
        data = self._request("GET", f"/{quote(slave_sae, safe='')}/status")
        try:
            return Status.model_validate(data)
        except ValueError:
            raise KmeClientError("the KME answered a malformed Status") from None

    def enc_keys(
        self,
        slave_sae: str,
        *,
        number: int = 1,
        size: int | None = None,
        additional_slaves: Sequence[str] = (),
    ) -> list[ClientKey]:
        """New keys to share with ``slave_sae`` (and ``additional_slaves``); sizes in bits."""
        body: dict[str, Any] = {"number": number}
        if size is not None:
            body["size"] = size
        if additional_slaves:
            body["additional_slave_SAE_IDs"] = list(additional_slaves)
        data = self._request("POST", f"/{quote(slave_sae, safe='')}/enc_keys", json=body)
        return _keys(data)

    def dec_keys(self, master_sae: str, key_ids: Sequence[str]) -> list[ClientKey]:
        """The keys named by ID, which ``master_sae`` obtained for this SAE."""
        body = {"key_IDs": [{"key_ID": k} for k in key_ids]}
        data = self._request("POST", f"/{quote(master_sae, safe='')}/dec_keys", json=body)
        return _keys(data)

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise KmeClientError(f"cannot reach the KME: {type(exc).__name__}: {exc}") from None
        if response.status_code == 200:
            try:
                return response.json()
            except ValueError:
                raise KmeClientError("the KME answered 200 without a JSON body") from None
        if response.status_code == 401:
            raise KmeClientError(
                "401 unauthorized: this SAE's certificate is not registered at the KME, or the "
                "SAE was not named as a slave of the keys",
                status_code=401,
            )
        try:
            message = str(response.json().get("message", "no message"))
        except (ValueError, AttributeError):
            message = "no Error body"
        raise KmeClientError(f"{response.status_code}: {message}", status_code=response.status_code)


def _keys(data: Any) -> list[ClientKey]:
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise KmeClientError("the KME answered a malformed Key container")
    out: list[ClientKey] = []
    for entry in data["keys"]:
        try:
            out.append(
                ClientKey(
                    key_id=str(entry["key_ID"]),
                    key=base64.b64decode(str(entry["key"]), validate=True),
                )
            )
        except (KeyError, TypeError, binascii.Error, ValueError):
            raise KmeClientError("the KME answered a malformed key in its Key container") from None
    return out
