"""A local two-KME deployment on loopback, for tests, benchmarks and demonstrations.

:func:`make_deployment` writes a test PKI and two KME configs (sites alice and bob) on free
ports with their stores in one data folder; :func:`fill_stores` imports the same random key
blocks into both sites' stores (as ``diqkd run`` does with distilled keys); :class:`KmeProcess`
runs ``diqkd kme serve`` in a subprocess and stops (or kills) it.

Not for production: the CA key lies next to the certificates and the key blocks are random
bytes, not distilled QKD keys.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from diqkd.kms.errors import KmeError
from diqkd.kms.pki import kme_config_toml, write_test_pki
from diqkd.kms.store import KeyStore
from diqkd.postproc.keys import KeyBlock

__all__ = [
    "Deployment",
    "KmeProcess",
    "fill_stores",
    "free_port",
    "make_deployment",
    "random_blocks",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Deployment:
    """Two KMEs (``KME-A`` at site alice, ``KME-B`` at site bob) and their SAEs, on disk."""

    root: Path
    data_dir: Path
    configs: dict[str, Path]
    ports: dict[str, int]
    sae_kme: dict[str, str]
    ca: Path
    unregistered_sae: str

    def url(self, kme: str) -> str:
        """Base URL of a KME."""
        return f"https://127.0.0.1:{self.ports[kme]}"

    def cert(self, name: str) -> Path:
        """Certificate of an SAE or KME."""
        return self.root / f"{name}.crt"

    def key(self, name: str) -> Path:
        """Private key of an SAE or KME."""
        return self.root / f"{name}.key"

    def env(self) -> dict[str, str]:
        """Environment for ``diqkd`` subprocesses (the data folder as ``DIQKD_HOME``)."""
        env = dict(os.environ)
        env["DIQKD_HOME"] = str(self.data_dir)
        env.pop("DIQKD_MASTER_KEY", None)
        env.pop("DIQKD_MASTER_KEY_FILE", None)
        return env

    def open_store(self, site: str) -> KeyStore:
        """Open a site's store (as the KME does with the default config)."""
        if site not in ("alice", "bob"):
            raise KmeError(f"site must be alice or bob, got {site!r}")
        return KeyStore.open_default("alice" if site == "alice" else "bob", data_dir=self.data_dir)


def make_deployment(
    root: Path,
    *,
    saes_a: Sequence[str] = ("SAE-A", "SAE-A2"),
    saes_b: Sequence[str] = ("SAE-B", "SAE-C", "SAE-D", "SAE-E", "SAE-F"),
    limits: Mapping[str, int] | None = None,
    log_level: str = "warning",
    server: Mapping[str, int] | None = None,
    peer_options: Mapping[str, float] | None = None,
    store_options: Mapping[str, float] | None = None,
) -> Deployment:
    """Write a PKI and configs of two KMEs on free loopback ports under ``root``.

    ``saes_a`` are attached to KME-A, ``saes_b`` to KME-B; one more SAE certificate
    (``SAE-ROGUE``, signed by the same CA) is registered at neither KME.
    """
    rogue = "SAE-ROGUE"
    specs = [f"{s}@KME-A" for s in saes_a] + [f"{s}@KME-B" for s in saes_b]
    write_test_pki(root, kmes=["KME-A", "KME-B", "KME-X"], saes=[*specs, f"{rogue}@KME-X"])
    sae_kme = {s: "KME-A" for s in saes_a} | {s: "KME-B" for s in saes_b}
    data_dir = root / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    ports = {"KME-A": free_port(), "KME-B": free_port()}
    while ports["KME-B"] == ports["KME-A"]:
        ports["KME-B"] = free_port()
    configs: dict[str, Path] = {}
    for kme, site, peer in (("KME-A", "alice", "KME-B"), ("KME-B", "bob", "KME-A")):
        path = root / f"{kme}.toml"
        path.write_text(
            kme_config_toml(
                kme=kme,
                site=site,
                port=ports[kme],
                peer=peer,
                peer_port=ports[peer],
                sae_kme=sae_kme,
                data_dir="data",
                limits=dict(limits or {}),
                log_level=log_level,
                server=dict(server or {}),
                peer_options=dict(peer_options or {}),
                store_options=dict(store_options or {}),
            ),
            encoding="utf-8",
        )
        configs[kme] = path
    return Deployment(
        root=root,
        data_dir=data_dir,
        configs=configs,
        ports=ports,
        sae_kme=sae_kme,
        ca=root / "ca.crt",
        unregistered_sae=rogue,
    )


def random_blocks(count: int, n_bits: int) -> list[KeyBlock]:
    """``count`` key blocks of ``n_bits`` bits from :mod:`secrets` (stand-ins for QKD keys)."""
    blocks = []
    for _ in range(count):
        raw = bytearray(secrets.token_bytes((n_bits + 7) // 8))
        pad = (-n_bits) % 8
        if pad:
            raw[-1] &= 0xFF ^ ((1 << pad) - 1)
        blocks.append(KeyBlock(key_id=_uuid4(), key=bytes(raw), n_bits=n_bits))
    return blocks


def _uuid4() -> str:
    import uuid

    return str(uuid.uuid4())


def fill_stores(deployment: Deployment, blocks: Sequence[KeyBlock]) -> None:
    """Import the same blocks into both sites' stores (as ``diqkd run`` does)."""
    for site in ("alice", "bob"):
        store = deployment.open_store(site)
        try:
            store.import_blocks(blocks)
        finally:
            store.close()


@dataclass
class KmeProcess:
    """``diqkd kme serve --config CONFIG`` in a subprocess.

    Parameters
    ----------
    config
        The KME config file.
    env
        Environment of the subprocess.
    log
        File that receives the server's stdout and stderr.
    """

    config: Path
    env: Mapping[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _ready: Path = field(default=Path(), init=False, repr=False)

    def start(self, *, timeout_s: float = 60.0) -> KmeProcess:
        """Start the server and wait until it accepts connections."""
        return self.launch().wait_ready(timeout_s=timeout_s)

    def launch(self) -> KmeProcess:
        """Start the server process without waiting (see :meth:`wait_ready`)."""
        self._ready = self.log.with_suffix(".ready")
        self._ready.unlink(missing_ok=True)
        exe = shutil.which("diqkd", path=str(Path(sys.executable).parent))
        argv = (
            [exe]
            if exe
            else [sys.executable, "-c", "from diqkd.cli.main import run_cli; run_cli()"]
        )
        argv += ["kme", "serve", "--config", str(self.config), "--ready-file", str(self._ready)]
        out = self.log.open("ab")
        try:
            self.process = subprocess.Popen(
                argv, env=dict(self.env), stdout=out, stderr=subprocess.STDOUT
            )
        finally:
            out.close()
        return self

    def wait_ready(self, *, timeout_s: float = 60.0) -> KmeProcess:
        """Wait until the launched server accepts connections."""
        if self.process is None:
            raise KmeError("the KME was not launched")
        deadline = time.monotonic() + timeout_s
        while not self._ready.exists():
            if self.process.poll() is not None:
                raise KmeError(
                    f"the KME exited with {self.process.returncode} at start:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise KmeError(f"the KME did not start within {timeout_s} s:\n{self.tail()}")
            time.sleep(0.05)
        return self

    def tail(self, n: int = 4000) -> str:
        """The end of the server's log."""
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, *, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, wait, then SIGKILL if needed; returns the exit code."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int | None:
        """SIGKILL (a crash), and reap the process."""
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
        return proc.returncode

    def __enter__(self) -> KmeProcess:
        return self.start() if self.process is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
