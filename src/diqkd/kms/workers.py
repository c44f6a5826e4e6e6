"""Serve one KME with several worker processes (``server.workers`` > 1) on one listening socket.

The parent process migrates the store once, binds the listening socket, and forks
``server.workers`` children. Each child is a complete KME server process: its own store
connection (SQLite in WAL mode and PostgreSQL both serialise writers across processes), its own
store runner and KME-to-KME forwarder, and a uvicorn server accepting TLS connections from the
shared socket (the kernel spreads connections over the processes). Nothing is shared in memory,
so every guarantee of the single-process KME holds per process, and across processes through
the store's transactions:

* a key is reserved in exactly one committed transaction, whichever process ran it;
* every process forwards what it committed, and re-sends the whole unsynced outbox after a
  failure (the peer accepts duplicates idempotently), and any process answers the peer's
  lookups from the shared store;
* keys reserved ahead (:mod:`diqkd.kms.runner`) are per process: a crash spends at most
  ``server.prefetch_keys`` keys per group *per process*.

Lifecycle: the parent writes ``ready_file`` once every child accepts connections; SIGTERM or
SIGINT to the parent stops the children gracefully; if a child dies, the parent stops the
others and exits with an error (a supervisor restarts the KME); if the parent is killed (even
with SIGKILL), every child is killed by the kernel (``PR_SET_PDEATHSIG`` on Linux, and a
parent check elsewhere), so a crash of the KME is always a crash of all its processes.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import socket
import ssl
import sys
import threading
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from pathlib import Path
from types import FrameType

import uvicorn

from diqkd.errors import KeyStoreError
from diqkd.kms.app import create_app
from diqkd.kms.config import KmeConfig
from diqkd.kms.server import open_store, run_server, uvicorn_config, write_ready_file

__all__ = ["serve_workers"]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
#: Seconds the parent waits for all children to accept connections.
_START_TIMEOUT_S = 120.0


def _listen_socket(host: str, port: int, backlog: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` that the forked children inherit."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    if not infos:  # pragma: no cover - getaddrinfo raises instead
        raise OSError(f"cannot resolve listen.host {host!r}")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.set_inheritable(True)
    except BaseException:
        sock.close()
        raise
    return sock


def _die_with_parent(parent_pid: int) -> None:
    """Make the kernel kill this child when its parent dies (Linux), or notice it (others)."""
    libc_name = ctypes.util.find_library("c")
    armed = False
    if sys.platform.startswith("linux") and libc_name:
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(libc_name, use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)
    if not armed:  # pragma: no cover - non-Linux

        def watch() -> None:
            while os.getppid() == parent_pid:
                threading.Event().wait(0.5)
            os._exit(1)

        threading.Thread(target=watch, name="kme-parent-watch", daemon=True).start()


class _WorkerServer(uvicorn.Server):
    """uvicorn's server that tells the parent when it accepts connections."""

    def __init__(self, config: uvicorn.Config, ready: Event) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            self._ready.set()


def _worker(
    config: KmeConfig, ctx: ssl.SSLContext, sock: socket.socket, ready: Event, parent_pid: int
) -> None:
    """Body of one child: a whole KME server process on the inherited socket."""
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    store = open_store(config)
    try:
        server = _WorkerServer(uvicorn_config(config, create_app(config, store), ctx, None), ready)
        run_server(server, sockets=[sock])
    finally:
        with contextlib.suppress(Exception):
            store.close()


def serve_workers(
    config: KmeConfig,
    ctx: ssl.SSLContext,
    *,
    port: int | None = None,
    ready_file: Path | None = None,
) -> None:
    """Serve the KME with ``config.server.workers`` processes until SIGINT/SIGTERM (blocking).

    Raises
    ------
    KeyStoreError
        If the store cannot be opened, a worker does not start, or a worker dies.
    OSError
        If the listening socket cannot be bound.
    """
    open_store(config).close()  # migrate once, and fail here rather than in every child
    listen_port = config.listen.port if port is None else port
    sock = _listen_socket(config.listen.host, listen_port, config.server.backlog)
    bound_port = int(sock.getsockname()[1])
    mp = multiprocessing.get_context("fork")
    stopping = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    children: list[tuple[BaseProcess, Event]] = []
    failed = ""
    try:
        for i in range(config.server.workers):
            ready = mp.Event()
            child = mp.Process(
                target=_worker,
                args=(config, ctx, sock, ready, os.getpid()),
                name=f"kme-{config.kme_id}-worker-{i}",
                daemon=False,
            )
            child.start()
            children.append((child, ready))
        failed = _await_ready(children, stopping)
        if not failed and not stopping.is_set():
            if ready_file is not None:
                write_ready_file(ready_file, bound_port)
            log.info(
                "KME %s serving with %d worker processes on port %d",
                config.kme_id,
                len(children),
                bound_port,
            )
            failed = _supervise(children, stopping)
    finally:
        _stop_children(children, config.server.graceful_shutdown_s + 5)
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed:
        raise KeyStoreError(failed)


def _await_ready(children: list[tuple[BaseProcess, Event]], stopping: threading.Event) -> str:
    """Wait until every child accepts connections; returns why not ('' when all did)."""
    waited = 0.0
    while not stopping.is_set():
        if all(ready.is_set() for _, ready in children):
            return ""
        for child, _ in children:
            if not child.is_alive():
                return f"KME worker {child.name} exited during start-up (see the log above)"
        if waited >= _START_TIMEOUT_S:
            return f"KME workers did not start within {_START_TIMEOUT_S:g} s"
        stopping.wait(0.05)
        waited += 0.05
    return ""


def _supervise(children: list[tuple[BaseProcess, Event]], stopping: threading.Event) -> str:
    """Block until told to stop ('') or until a child dies (why)."""
    sentinels = [child.sentinel for child, _ in children]
    while not stopping.is_set():
        if wait(sentinels, timeout=0.2):
            dead = next(child for child, _ in children if not child.is_alive())
            return f"KME worker {dead.name} exited with code {dead.exitcode}; stopping the KME"
    return ""


def _stop_children(children: list[tuple[BaseProcess, Event]], grace_s: float) -> None:
    """SIGTERM every live child (graceful uvicorn shutdown), SIGKILL those that linger."""
    for child, _ in children:
        if child.is_alive() and child.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGTERM)
    for child, _ in children:
        child.join(grace_s)
        if child.is_alive():
            child.kill()
            child.join(5)
