"""ETSI GS QKD 014 ``enc_keys`` over mutual TLS with keep-alive: requests/s and latency.

Acceptance criterion (issue 6): on the 2-core machine, ``enc_keys`` over mutual TLS with
keep-alive sustains ≥ 2,000 requests/s with p99 ≤ 20 ms, measured by a load generator in a
separate process.

Set-up: a local two-KME deployment (:mod:`diqkd.kms.testing`: test PKI, KME-A at site alice,
KME-B at site bob, both stores filled with the same random key blocks), each KME a
``diqkd kme serve`` subprocess. Every key that ``enc_keys`` at KME-A hands out is reserved in a
committed transaction of A's SQLite store (WAL, ``synchronous=FULL``) and forwarded to KME-B
over the KME-to-KME mTLS channel, which records it in B's store (docs/kms.md).

Load: a separate process (this script with ``--loadgen``) opens ``--connections`` TLS
connections with the SAE's client certificate, and on each sends ``POST
/api/v1/keys/SAE-B/enc_keys`` (``{"number": 1, "size": 256}``) back to back over keep-alive
(a closed loop: one request in flight per connection) for ``--duration-s`` after a warm-up.
It is a minimal asyncio HTTP/1.1 client on uvloop, so that it spends little of the two cores.

Rows: the full KME pair; our app on a memory store without the KME-to-KME sync (the service
layer alone); and the peer (upper bound, same run): the same uvicorn + TLS + identity set-up
serving a constant JSON document from a bare ASGI application, the cost of the transport
alone. The ratio ours/peer shows how much of the transport's throughput the key manager keeps.
One row per setup and number of connections (closed loop: more connections, more queueing).
Besides requests/s and latency, each row gives the CPU time per request of the server
processes and of the load generator, read from ``/proc``: unlike requests/s it hardly depends
on what else runs on the machine.

    python benchmarks/bench_kms.py                      # 4, 8, 16 and 32 connections
    python benchmarks/bench_kms.py --connections 8 --duration-s 10 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BODY = b'{"number":1,"size":256}'
KME_ROW = "diqkd KME enc_keys (store + KME-to-KME sync)"
SERVICE_ROW = "diqkd KME app on a memory store, no sync (service layer only)"
PEER_ROW = "peer: same uvicorn + mTLS, constant JSON from a bare ASGI app"
TARGET_RPS = 2000
TARGET_P99_MS = 20.0


# ---------------------------------------------------------------------------- load generator


def _request(host: str, path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _connection(
    host: str,
    port: int,
    ctx: ssl.SSLContext,
    request: bytes,
    stop_at: float,
    measure_from: float,
    latencies: list[float],
    errors: list[int],
    total: list[int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port, ssl=ctx, server_hostname=host)
    try:
        while True:
            start = time.perf_counter()
            if start >= stop_at:
                break
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
                    break
            if length:
                await reader.readexactly(length)
            end = time.perf_counter()
            total[0] += 1
            if start >= measure_from:
                if status == 200:
                    latencies.append(end - start)
                else:
                    errors.append(status)
    finally:
        writer.close()


async def _loadgen(args: argparse.Namespace) -> dict[str, Any]:
    ctx = ssl.create_default_context(cafile=args.ca)
    ctx.load_cert_chain(args.cert, args.key)
    request = _request(args.host, args.path, BODY)
    now = time.perf_counter()
    measure_from = now + args.warmup_s
    stop_at = measure_from + args.duration_s
    latencies: list[float] = []
    errors: list[int] = []
    total = [0]
    await asyncio.gather(
        *(
            _connection(
                args.host, args.port, ctx, request, stop_at, measure_from, latencies, errors, total
            )
            for _ in range(args.connections[0])
        )
    )
    return {
        "latencies": latencies,
        "errors": errors,
        "duration_s": args.duration_s,
        "total": total[0],
    }


def run_loadgen(args: argparse.Namespace) -> None:
    """Entry point of the load-generator process: prints one JSON line."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(_loadgen(args))
    lat = sorted(result["latencies"])
    n = len(lat)
    out = {
        "requests": n,
        "errors": len(result["errors"]),
        "error_codes": sorted(set(result["errors"]))[:5],
        "rps": n / result["duration_s"],
        "p50_ms": 1e3 * lat[n // 2] if n else None,
        "p90_ms": 1e3 * lat[min(n - 1, int(0.90 * n))] if n else None,
        "p99_ms": 1e3 * lat[min(n - 1, int(0.99 * n))] if n else None,
        "max_ms": 1e3 * lat[-1] if n else None,
        "mean_ms": 1e3 * statistics.fmean(lat) if n else None,
        "total_requests": result["total"],
        "loadgen_cpu_s": time.process_time(),
    }
    sys.stdout.write(json.dumps(out) + "\n")


def _with_children(pid: int) -> list[int]:
    """``pid`` and its child processes (the workers of a multi-process KME; Linux /proc)."""
    out = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds used so far by the processes ``pids`` (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def measure(
    *,
    server_pids: list[int] | None = None,
    port: int,
    path: str,
    cert: Path,
    key: Path,
    ca: Path,
    connections: int,
    duration_s: float,
    warmup_s: float,
) -> dict[str, Any]:
    """Run the load generator in a separate process against ``127.0.0.1:port``."""
    argv = [
        sys.executable,
        __file__,
        "--loadgen",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--path", path,
        "--cert", str(cert),
        "--key", str(key),
        "--ca", str(ca),
        "--connections", str(connections),
        "--duration-s", str(duration_s),
        "--warmup-s", str(warmup_s),
    ]  # fmt: skip
    groups = [_with_children(pid) for pid in server_pids or []]
    cpu0 = [_cpu_s(group) for group in groups]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    cpu1 = [_cpu_s(group) for group in groups]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    total = max(int(result["total_requests"]), 1)
    # CPU per request of the servers (and of the load generator): unlike requests/s, this does
    # not depend on how much of the two cores other jobs (or the hypervisor) take meanwhile.
    each = [1e3 * (c1 - c0) / total for c0, c1 in zip(cpu0, cpu1, strict=True)]
    result["server_cpu_ms_per_request"] = sum(each)
    result["server_cpu_ms_per_request_each"] = each
    result["loadgen_cpu_ms_per_request"] = 1e3 * float(result["loadgen_cpu_s"]) / total
    return result


# ---------------------------------------------------------------------------- the peer server


def run_peer_server(config_path: str, port: int, ready_file: str) -> None:
    """The upper bound: same uvicorn, TLS context and identity protocol, a constant answer.

    A bare ASGI application (no framework): what the transport alone costs per request.
    """
    import uvicorn

    from diqkd.kms.config import load_config
    from diqkd.kms.server import _protocol_class, server_ssl_context

    config = load_config(config_path)
    ctx = server_ssl_context(config)
    payload = json.dumps(
        {"keys": [{"key_ID": "00000000-0000-4000-8000-000000000000", "key": "A" * 44}]}
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    uv = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=_protocol_class(),
        loop="uvloop",
        lifespan="off",
        log_level="warning",
        access_log=False,
        proxy_headers=False,
    )
    uv.load()
    uv.ssl = ctx

    class _Ready(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            Path(ready_file).write_text(str(port))

    _Ready(uv).run()


class _MemoryStore:
    """A store that keeps nothing (random bytes, no database): isolates the service layer."""

    def reserve(
        self, *, number: int, size_bits: int, master_sae: str, slave_saes: Any
    ) -> tuple[list[Any], list[Any]]:
        import secrets
        import uuid

        from diqkd.kms.store import Reservation, ServedKey

        keys, reservations = [], []
        for _ in range(number):
            key_id = str(uuid.uuid4())
            keys.append(
                ServedKey(
                    key_id=key_id, key=secrets.token_bytes(size_bits // 8), size_bits=size_bits
                )
            )
            reservations.append(
                Reservation(
                    key_id=key_id,
                    block_id=str(uuid.uuid4()),
                    offset_bits=0,
                    size_bits=size_bits,
                    master_sae=master_sae,
                    slave_saes=tuple(slave_saes),
                )
            )
        return keys, reservations

    def stored_key_count(self, size_bits: int) -> int:
        return 10**6

    def close(self) -> None:
        pass


def run_service_server(config_path: str, port: int, ready_file: str) -> None:
    """Our app (routes, service, runner, identity) on a memory store, without the peer sync."""
    import uvicorn

    from diqkd.kms.app import create_app
    from diqkd.kms.config import load_config
    from diqkd.kms.server import _protocol_class, server_ssl_context

    config = load_config(config_path)
    app = create_app(config, _MemoryStore(), sync=False)  # type: ignore[arg-type]

    class _Ready(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            Path(ready_file).write_text(str(port))

    uv = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=_protocol_class(),
        loop="uvloop",
        log_level="warning",
        access_log=False,
    )
    uv.load()
    uv.ssl = server_ssl_context(config)
    _Ready(uv).run()


# ---------------------------------------------------------------------------- the benchmark


def _wait_file(path: Path, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the peer server did not start")
        time.sleep(0.05)
    time.sleep(0.3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--connections",
        type=int,
        nargs="+",
        default=[4, 8, 16, 32],
        help="client connections (one row per value)",
    )
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--warmup-s", type=float, default=2.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--setups",
        default="kme,service,peer",
        help="comma-separated rows to measure: kme, service, peer (default: all; ratios need peer)",
    )
    parser.add_argument(
        "--store-threads", type=int, default=None, help="server.store_threads of the KMEs"
    )
    parser.add_argument(
        "--prefetch-keys", type=int, default=None, help="server.prefetch_keys of the KMEs"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server.workers of the KMEs (worker processes), and processes of the peer server",
    )
    # internal: the load generator and the peer server run as separate processes
    parser.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--peer-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--service-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--path", default="", help=argparse.SUPPRESS)
    parser.add_argument("--cert", default="", help=argparse.SUPPRESS)
    parser.add_argument("--key", default="", help=argparse.SUPPRESS)
    parser.add_argument("--ca", default="", help=argparse.SUPPRESS)
    parser.add_argument("--config", default="", help=argparse.SUPPRESS)
    parser.add_argument("--ready-file", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loadgen:
        run_loadgen(args)
        return 0
    if args.peer_server:
        run_peer_server(args.config, args.port, args.ready_file)
        return 0
    if args.service_server:
        run_service_server(args.config, args.port, args.ready_file)
        return 0

    from diqkd.kms.testing import KmeProcess, fill_stores, make_deployment, random_blocks

    setups = [x.strip() for x in args.setups.split(",") if x.strip()]
    unknown = sorted(set(setups) - {"kme", "service", "peer"})
    if unknown or not setups:
        parser.error(f"--setups takes kme, service, peer; got {args.setups!r}")
    if any(c < 1 for c in args.connections):
        parser.error("--connections takes positive numbers")
    rows: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="bench-kms-") as tmp:
        root = Path(tmp)
        server = {"workers": args.workers}
        if args.store_threads is not None:
            server["store_threads"] = args.store_threads
        if args.prefetch_keys is not None:
            server["prefetch_keys"] = args.prefetch_keys
        dep = make_deployment(root, server=server)
        # enough key for every row at up to 6,000 requests/s (a block of 10⁶ bits holds
        # 1,953 keys of 256 bits in alice's half), plus the keys reserved ahead
        rows_kme = len(args.connections) if "kme" in setups else 0
        need = 6000 * (args.duration_s + args.warmup_s) * rows_kme + 4096
        t0 = time.perf_counter()
        fill_stores(dep, random_blocks(max(4, math.ceil(need / 1953)), 1_000_000))
        fill_s = time.perf_counter() - t0
        common = dict(
            path="/api/v1/keys/SAE-B/enc_keys",
            cert=dep.cert("SAE-A"),
            key=dep.key("SAE-A"),
            ca=dep.ca,
            duration_s=args.duration_s,
            warmup_s=args.warmup_s,
        )
        env = dep.env()
        if "kme" in setups:
            a = KmeProcess(dep.configs["KME-A"], env, root / "kme-a.log")
            b = KmeProcess(dep.configs["KME-B"], env, root / "kme-b.log")
            with b, a:
                assert a.process is not None and b.process is not None
                for n in args.connections:
                    store = dep.open_store("alice")
                    before = store.stored_key_count(256)
                    store.close()
                    ours = measure(  # type: ignore[arg-type]
                        port=dep.ports["KME-A"],
                        server_pids=[a.process.pid, b.process.pid],
                        connections=n,
                        **common,
                    )
                    store = dep.open_store("alice")
                    ours["keys_taken"] = before - store.stored_key_count(256)
                    store.close()
                    rows.append({"setup": KME_ROW, "connections": n, **ours})
            store = dep.open_store("alice")
            counts = store.counts()
            store.close()

        for name, flag, label in (
            ("service", "--service-server", SERVICE_ROW),
            ("peer", "--peer-server", PEER_ROW),
        ):
            if name not in setups:
                continue
            ready = root / f"{flag[2:]}.ready"
            proc = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    flag,
                    "--config",
                    str(dep.configs["KME-A"]),
                    "--port",
                    str(dep.ports["KME-A"]),
                    "--ready-file",
                    str(ready),
                ],
                env=env,
            )
            try:
                _wait_file(ready, proc)
                for n in args.connections:
                    row = measure(  # type: ignore[arg-type]
                        port=dep.ports["KME-A"], server_pids=[proc.pid], connections=n, **common
                    )
                    rows.append({"setup": label, "connections": n, **row})
            finally:
                proc.terminate()
                proc.wait(timeout=15)

    peers = {row["connections"]: row for row in rows if row["setup"] == PEER_ROW}
    for row in rows:
        peer = peers.get(row["connections"])
        row["ratio_to_peer"] = row["rps"] / peer["rps"] if peer and peer["rps"] else None
        row["target_met"] = row["rps"] >= TARGET_RPS and row["p99_ms"] <= TARGET_P99_MS
    ours_rows = [row for row in rows if row["setup"] == KME_ROW]
    doc = {
        "connections": args.connections,
        "duration_s": args.duration_s,
        "cpus": os.cpu_count(),
        "fill_s": fill_s,
        "rows": rows,
        "unsynced_after": counts.get("unsynced"),
        "target": {"rps": TARGET_RPS, "p99_ms": TARGET_P99_MS},
        "target_met_at_connections": [r["connections"] for r in ours_rows if r["target_met"]],
    }
    if args.json:
        sys.stdout.write(json.dumps(doc) + "\n")
        return 0
    print(
        f"enc_keys over mTLS, keep-alive, closed loop, {args.duration_s:g} s after "
        f"{args.warmup_s:g} s warm-up per row, {os.cpu_count()} CPUs, KME workers {args.workers}"
    )
    print(
        "| setup | connections | requests/s | p50 ms | p99 ms | non-200 | ratio to peer "
        "| server CPU ms/request (KME-A + KME-B) | load generator CPU ms/request |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        ratio = row["ratio_to_peer"]
        print(
            f"| {row['setup']} | {row['connections']} | {row['rps']:.0f} | {row['p50_ms']:.2f} "
            f"| {row['p99_ms']:.2f} | {row['errors']} | "
            f"{'–' if ratio is None else f'{ratio:.2f}'} "
            f"| {' + '.join(f'{x:.3f}' for x in row['server_cpu_ms_per_request_each'])} "
            f"| {row['loadgen_cpu_ms_per_request']:.3f} |"
        )
    if ours_rows:
        met = doc["target_met_at_connections"]
        print(
            f"target ≥ {TARGET_RPS} req/s with p99 ≤ {TARGET_P99_MS} ms: "
            + (f"met at {', '.join(map(str, met))} connections" if met else "not met")
        )
        taken = sum(r["keys_taken"] for r in ours_rows)
        print(f"keys taken from site alice: {taken}; unsynced at the end: {doc['unsynced_after']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
