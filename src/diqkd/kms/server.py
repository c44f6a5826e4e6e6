"""Run a KME: open its store, build the app, serve it with uvicorn over mutual TLS.

The TLS context requires a client certificate signed by a configured CA
(``ssl.CERT_REQUIRED``) and TLS 1.2 or newer. The HTTP protocol is uvicorn's (httptools when
installed, else h11), extended by :func:`diqkd.kms.identity.identity_protocol` so that each
request knows the verified certificate of its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import sys
import tempfile
from pathlib import Path
from typing import Any

import uvicorn

from diqkd.errors import KeyStoreError
from diqkd.kms.app import create_app
from diqkd.kms.config import KmeConfig, read_master_key
from diqkd.kms.errors import KmeConfigError
from diqkd.kms.identity import identity_protocol
from diqkd.kms.store import KeyStore, default_data_dir

__all__ = ["open_store", "serve", "server_ssl_context", "write_ready_file"]

log = logging.getLogger(__name__)
#: GIL switch interval while serving (see :func:`serve`).
_SWITCH_INTERVAL_S = 0.0005


def server_ssl_context(config: KmeConfig) -> ssl.SSLContext:
    """TLS ≥ 1.2 server context with this KME's certificate; client certificates required.

    Client certificates must chain to ``tls.ca`` (the SAEs' CA) or ``peer.ca`` (the peer KME's).

    Raises
    ------
    KmeConfigError
        If a certificate, key or CA file cannot be loaded.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_cert_chain(str(config.tls.cert), str(config.tls.key))
    except (OSError, ssl.SSLError) as exc:
        raise KmeConfigError(
            f"tls.cert/tls.key ({config.tls.cert}, {config.tls.key}) cannot be loaded: "
            f"{_reason(exc)}"
        ) from None
    for name, path in (("tls.ca", config.tls.ca), ("peer.ca", config.peer.ca)):
        try:
            ctx.load_verify_locations(cafile=str(path))
        except (OSError, ssl.SSLError) as exc:
            raise KmeConfigError(f"{name} ({path}) cannot be loaded: {_reason(exc)}") from None
    return ctx


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


def open_store(config: KmeConfig) -> KeyStore:
    """Open (and migrate) the store the config names: the site's default, or ``store.url``.

    Raises
    ------
    KmeConfigError
        If the master key source is unusable.
    KeyStoreError
        If the store cannot be opened or migrated.
    """
    master_key = read_master_key(config.store)
    if not config.store.url and master_key is None:
        return KeyStore.open_default(config.site, data_dir=config.store.data_dir)
    if master_key is None:
        raise KmeConfigError(
            "store.url is set: give store.master_key_file or store.master_key_env as well"
        )
    url = config.store.url or _default_url(config)
    store = KeyStore(url, master_key=master_key, site=config.site)
    store.migrate()
    return store


def _default_url(config: KmeConfig) -> str:
    """The site's default SQLite store (same place as :meth:`KeyStore.open_default`)."""
    base = default_data_dir(config.store.data_dir)
    folder = base / config.site
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return f"sqlite:///{folder / 'keystore.sqlite3'}"


def _protocol_class() -> type[asyncio.Protocol]:
    try:
        import httptools  # noqa: F401
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        return identity_protocol(HttpToolsProtocol)
    except ImportError:  # pragma: no cover - uvicorn[standard] ships httptools
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return identity_protocol(H11Protocol)


class _Server(uvicorn.Server):
    """uvicorn's server that reports the bound port in a file once it accepts connections."""

    def __init__(self, config: uvicorn.Config, ready_file: Path | None) -> None:
        super().__init__(config)
        self._ready_file = ready_file

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self._ready_file is None or self.should_exit:
            return
        port = 0
        for server in getattr(self, "servers", []):
            for sock in server.sockets or ():
                port = int(sock.getsockname()[1])
                break
        write_ready_file(self._ready_file, port)


def write_ready_file(path: Path, port: int) -> None:
    """Write ``"<port>\n"`` to ``path`` atomically (a temporary file, then a rename), so that a
    process polling for it never reads a partial line."""
    text = f"{port}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def serve(
    config: KmeConfig,
    *,
    port: int | None = None,
    ready_file: Path | None = None,
) -> None:
    """Serve the KME until SIGINT/SIGTERM (blocking).

    Parameters
    ----------
    config
        The KME's configuration.
    port
        Overrides ``listen.port`` (``0``: any free port; see ``ready_file``).
    ready_file
        When given, the bound port is written there once the server accepts connections.

    Raises
    ------
    KmeConfigError
        If the TLS files or the master key cannot be loaded.
    KeyStoreError
        If the store cannot be opened.
    """
    ctx = server_ssl_context(config)
    _configure_logging(config.server.log_level)
    if config.server.workers > 1:
        from diqkd.kms.workers import serve_workers

        serve_workers(config, ctx, port=port, ready_file=ready_file)
        return
    store = open_store(config)
    try:
        server = _Server(uvicorn_config(config, create_app(config, store), ctx, port), ready_file)
        run_server(server)
        if not server.started:
            raise KeyStoreError("the KME did not start (see the log above)")
    finally:
        with contextlib.suppress(Exception):
            store.close()


def uvicorn_config(
    config: KmeConfig, app: Any, ctx: ssl.SSLContext, port: int | None
) -> uvicorn.Config:
    """uvicorn's configuration of one KME server process (TLS context ``ctx``)."""
    uv_config = uvicorn.Config(
        app,
        host=config.listen.host,
        port=config.listen.port if port is None else port,
        http=_protocol_class(),
        loop=_loop_name(),
        lifespan="on",
        log_level=config.server.log_level,
        access_log=config.server.access_log,
        backlog=config.server.backlog,
        timeout_keep_alive=config.server.timeout_keep_alive_s,
        timeout_graceful_shutdown=config.server.graceful_shutdown_s,
        server_header=False,
        # The caller is its client certificate; no X-Forwarded-* header is ever trusted.
        proxy_headers=False,
    )
    uv_config.load()
    uv_config.ssl = ctx
    return uv_config


def run_server(server: uvicorn.Server, sockets: list[socket.socket] | None = None) -> None:
    """Run ``server`` until it is told to stop, with a short GIL switch interval.

    The store thread hands the GIL back and forth with the event loop around every SQLite
    call; with CPython's default 5 ms switch interval a transaction can wait that long for
    each hand-off while the loop parses requests. 0.5 ms keeps it short.
    """
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, _SWITCH_INTERVAL_S))
    try:
        server.run(sockets=sockets)
    finally:
        sys.setswitchinterval(previous)


def _loop_name() -> Any:
    try:
        import uvloop  # noqa: F401
    except ImportError:  # pragma: no cover
        return "asyncio"
    return "uvloop"


def _configure_logging(level: str) -> None:
    logger = logging.getLogger("diqkd")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level.upper())
