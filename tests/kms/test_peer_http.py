"""The KME-to-KME HTTP/1.1 client against a real TLS server that answers in every way it may."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from diqkd.kms._peer_http import PeerHttp
from diqkd.kms.errors import PeerSyncError
from diqkd.kms.identity import CallerIdentity
from diqkd.kms.pki import write_test_pki
from diqkd.kms.sync import client_ssl_context

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return await reader.readexactly(length)


def _answer(body: bytes, *extra: str) -> bytes:
    head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" + "".join(
        f"{h}\r\n" for h in extra
    )
    return (head + f"content-length: {len(body)}\r\n\r\n").encode() + body


class _Server:
    """A TLS server with KME-B's certificate; counts connections; answers with ``reply``."""

    def __init__(self, pki: Path, reply: Callable[[bytes, int], bytes | None]) -> None:
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(pki / "KME-B.crt", pki / "KME-B.key")
        self.reply = reply
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        n = 0
        try:
            while True:
                body = await _read_request(reader)
                n += 1
                out = self.reply(body, n)
                if out is None:  # close without answering
                    break
                writer.write(out)
                await writer.drain()
                if b"connection: close" in out.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0, ssl=self.ctx)
        port = self.server.sockets[0].getsockname()[1]
        return f"https://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pki")
    write_test_pki(out, kmes=["KME-A", "KME-B"], saes=["SAE-A@KME-A"])
    return out


def _client(pki: Path, url: str, *, accept: bool = True, timeout_s: float = 5.0) -> PeerHttp:
    ctx = client_ssl_context(
        ca=str(pki / "ca.crt"), cert=str(pki / "KME-A.crt"), key=str(pki / "KME-A.key")
    )

    def is_peer(identity: CallerIdentity | None) -> bool:
        return accept and identity is not None and identity.cn == "KME-B"

    return PeerHttp(url, ctx, timeout_s=timeout_s, peer_name="KME-B", is_peer=is_peer)


def _run(
    pki: Path,
    reply: Callable[[bytes, int], bytes | None],
    scenario: Callable[[str, _Server], Awaitable[None]],
) -> None:
    async def main() -> None:
        server = _Server(pki, reply)
        async with server as url:
            await scenario(url, server)

    asyncio.run(main())


def test_keep_alive_reuses_one_connection(pki: Path) -> None:
    async def scenario(url: str, server: _Server) -> None:
        client = _client(pki, url)
        for i in range(3):
            response = await client.post("/x", b'{"i":%d}' % i)
            assert (response.status, response.body) == (200, b'{"i":%d}' % i)
        await client.close()
        assert server.connections == 1

    _run(pki, lambda body, n: _answer(body), scenario)


def test_chunked_answer_and_connection_close(pki: Path) -> None:
    def reply(body: bytes, n: int) -> bytes:
        chunks = (
            b"4\r\n" + body[:4] + b"\r\n" + b"%x\r\n" % len(body[4:]) + body[4:] + b"\r\n0\r\n\r\n"
        )
        head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        return head + chunks

    async def scenario(url: str, server: _Server) -> None:
        client = _client(pki, url)
        assert (await client.post("/x", b'{"a":"chunked"}')).body == b'{"a":"chunked"}'
        assert (await client.post("/x", b'{"b":2}')).body == b'{"b":2}'
        assert server.connections == 2  # the peer said close: a new connection next time
        await client.close()

    _run(pki, reply, scenario)


def test_idle_connection_closed_by_the_peer_is_retried_once(pki: Path) -> None:
    # the server answers the first request, then drops the connection on the second: the
    # client reconnects and sends it again (the channel's calls are idempotent)
    def reply(body: bytes, n: int) -> bytes | None:
        return _answer(body) if n == 1 else None

    async def scenario(url: str, server: _Server) -> None:
        client = _client(pki, url)
        assert (await client.post("/x", b"1")).body == b"1"
        assert (await client.post("/x", b"2")).body == b"2"
        assert server.connections == 2
        await client.close()

    _run(pki, reply, scenario)


def test_malformed_answer_and_wrong_server_identity_raise(pki: Path) -> None:
    async def scenario(url: str, server: _Server) -> None:
        with pytest.raises(PeerSyncError, match="unreachable"):
            await _client(pki, url).post("/x", b"{}")
        with pytest.raises(PeerSyncError, match="does not present the certificate"):
            await _client(pki, url, accept=False).post("/x", b"{}")

    _run(pki, lambda body, n: b"HTTP/9 nonsense\r\n\r\n", scenario)


def test_timeout_and_refused_connection_raise(pki: Path) -> None:
    def reply(body: bytes, n: int) -> bytes:
        return b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort"  # never completes

    async def scenario(url: str, server: _Server) -> None:
        with pytest.raises(PeerSyncError, match="did not answer within"):
            await _client(pki, url, timeout_s=0.5).post("/x", b"{}")

    _run(pki, reply, scenario)

    async def refused() -> None:
        with pytest.raises(PeerSyncError, match="unreachable"):
            await _client(pki, "https://127.0.0.1:9").post("/x", b"{}")

    asyncio.run(refused())
    with pytest.raises(PeerSyncError, match="https://"):
        _client(pki, "http://127.0.0.1:9")
