"""A small HTTP/1.1 client for the KME-to-KME channel: JSON POSTs over kept-alive mutual TLS.

Why not httpx (which the SAE client uses)? The channel sends one POST per batch of
reservations while the KME answers thousands of requests per second on the same event loop,
and httpx does TLS in Python (``ssl.MemoryBIO`` through anyio) with several layers per call:
measured on the 2-core development machine, ≈ 2.0 ms of CPU per POST of 100 reservations
under uvloop, against ≈ 0.3 ms here (``benchmarks/bench_kme_channel.py``), where the TLS
record layer is the event loop's own (``asyncio.open_connection`` with an ``SSLContext``).

Scope, deliberately narrow: ``POST`` with a JSON body to the one peer URL; answers with
``Content-Length`` or ``Transfer-Encoding: chunked``; keep-alive unless the peer says
``Connection: close``; up to ``max_connections`` connections, one request in flight on each.
Every connection checks, once, that the server presents the peer KME's certificate (the
records it returns let slave SAEs fetch keys). A request on a kept-alive connection that the
peer closed meanwhile is retried once on a fresh connection (the channel's calls are
idempotent). Errors are :class:`~diqkd.kms.errors.PeerSyncError` naming the peer, never
holding a body.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from diqkd.kms.errors import PeerSyncError
from diqkd.kms.identity import CallerIdentity, identity_from_der

__all__ = ["PeerHttp", "PeerResponse"]

#: Largest answer head and body accepted from the peer.
_MAX_HEAD = 64 * 1024
_MAX_BODY = 64 * 1024 * 1024


@dataclass(frozen=True)
class PeerResponse:
    """Status and body of one answer of the peer KME."""

    status: int
    body: bytes


class _Malformed(Exception):
    """The peer's answer does not parse as HTTP/1.1."""


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class PeerHttp:
    """JSON POSTs to the peer KME over kept-alive mutual TLS connections.

    Parameters
    ----------
    url
        ``https://host:port`` of the peer KME (a path prefix is kept).
    ctx
        Client TLS context (verifies the server, presents this KME's certificate).
    timeout_s
        Limit of one request (connecting included).
    peer_name
        The peer's KME ID, for messages.
    is_peer
        Decides whether the certificate the server presents is the peer KME's.
    max_connections
        Connections open at once (each carries one request at a time).
    """

    def __init__(
        self,
        url: str,
        ctx: ssl.SSLContext,
        *,
        timeout_s: float,
        peer_name: str,
        is_peer: Callable[[CallerIdentity | None], bool],
        max_connections: int = 2,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise PeerSyncError(f"the peer URL {url!r} is not an https:// URL")
        self._host = parts.hostname
        self._port = parts.port or 443
        self._prefix = parts.path.rstrip("/")
        self._authority = parts.netloc.rsplit("@", 1)[-1]
        self._ctx = ctx
        self._timeout_s = timeout_s
        self._peer = peer_name
        self._is_peer = is_peer
        self._idle: list[_Conn] = []
        self._slots = asyncio.Semaphore(max_connections)

    async def post(self, path: str, body: bytes) -> PeerResponse:
        """POST ``body`` (JSON) to ``path``; the peer's answer, whatever its status.

        Raises
        ------
        PeerSyncError
            If the peer cannot be reached, is not the configured peer, times out or answers
            something that is not HTTP/1.1.
        """
        async with self._slots:
            for _ in range(2):
                conn, reused = (self._idle.pop(), True) if self._idle else (None, False)
                try:
                    async with asyncio.timeout(self._timeout_s):
                        if conn is None:
                            conn = await self._connect()
                        response, keep = await self._exchange(conn, path, body)
                except TimeoutError:
                    if conn is not None:
                        conn.close()
                    raise PeerSyncError(
                        f"peer KME {self._peer} did not answer within {self._timeout_s:g} s"
                    ) from None
                except (OSError, ssl.SSLError, asyncio.IncompleteReadError, _Malformed) as exc:
                    if conn is not None:
                        conn.close()
                    if reused and not isinstance(exc, _Malformed):
                        continue  # the peer closed the idle connection meanwhile: once more
                    raise PeerSyncError(
                        f"peer KME {self._peer} is unreachable ({type(exc).__name__})"
                    ) from None
                if keep:
                    self._idle.append(conn)
                else:
                    conn.close()
                return response
        raise PeerSyncError(
            f"peer KME {self._peer} closed the connection twice"
        )  # pragma: no cover

    async def close(self) -> None:
        """Close the idle connections."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    async def _connect(self) -> _Conn:
        reader, writer = await asyncio.open_connection(
            self._host, self._port, ssl=self._ctx, server_hostname=self._host, limit=_MAX_HEAD
        )
        conn = _Conn(reader, writer)
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not self._is_peer(identity_from_der(der) if der else None):
            conn.close()
            raise PeerSyncError(
                f"the server at {self._host}:{self._port} does not present the certificate "
                f"of peer KME {self._peer}"
            )
        return conn

    async def _exchange(self, conn: _Conn, path: str, body: bytes) -> tuple[PeerResponse, bool]:
        head = (
            f"POST {self._prefix}{path} HTTP/1.1\r\nHost: {self._authority}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        conn.writer.write(head.encode("ascii") + body)
        await conn.writer.drain()
        try:
            raw = await conn.reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise _Malformed from None
        lines = raw.decode("latin-1").split("\r\n")
        status_line = lines[0].split(" ", 2)
        if (
            len(status_line) < 2
            or not status_line[0].startswith("HTTP/1.")
            or not (status_line[1].isdigit() and len(status_line[1]) == 3)
        ):
            raise _Malformed
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, sep, value = line.partition(":")
                if not sep:
                    raise _Malformed
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            data = await self._chunked(conn.reader)
        else:
            length = headers.get("content-length", "0")
            if not length.isdigit() or int(length) > _MAX_BODY:
                raise _Malformed
            data = await conn.reader.readexactly(int(length))
        keep = headers.get("connection", "").lower() != "close" and status_line[0] != "HTTP/1.0"
        return PeerResponse(int(status_line[1]), data), keep

    @staticmethod
    async def _chunked(reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size_line = (await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise _Malformed from None
            if size == 0:  # trailer lines, if any, then the empty line
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                return b"".join(parts)
            total += size
            if total > _MAX_BODY:
                raise _Malformed
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
