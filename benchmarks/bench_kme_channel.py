"""KME-to-KME channel: CPU per POST of our HTTP/1.1 client against httpx, same peer, same run.

``diqkd.kms._peer_http.PeerHttp`` replaced httpx for the reservations a KME forwards to its
peer (the SAE client library still uses httpx). This measures why: a real ``diqkd kme serve``
process (KME-B of a test deployment, its store filled) receives ``POST
/api/v1/kme/reservations`` batches of ``--batch`` new reservations over mutual TLS with
keep-alive, first from an ``httpx.AsyncClient`` (the previous implementation), then from
``PeerHttp``, both on uvloop in this process. Printed: the client's CPU time per POST
(``time.process_time``, which does not depend on what else runs on the machine) and the wall
time per POST (which includes the peer's durable commit), and the ratio httpx/ours.

    python benchmarks/bench_kme_channel.py
    python benchmarks/bench_kme_channel.py --posts 100 --batch 100 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from diqkd.kms._peer_http import PeerHttp
from diqkd.kms.sync import RESERVATIONS_PATH, client_ssl_context
from diqkd.kms.testing import KmeProcess, fill_stores, make_deployment, random_blocks

N_BITS = 1_000_000


def _bodies(block_ids: list[str], start: int, posts: int, batch: int) -> list[bytes]:
    """``posts`` bodies of ``batch`` new 256-bit reservations in alice's halves."""
    half = N_BITS // 2 // 256 * 256
    out = []
    offset = start
    for _ in range(posts):
        records = []
        for _ in range(batch):
            block, at = divmod(offset, half)
            records.append(
                {
                    "key_id": str(uuid.uuid4()),
                    "block_id": block_ids[block],
                    "offset_bits": at,
                    "size_bits": 256,
                    "master_sae": "SAE-A",
                    "slave_saes": ["SAE-B"],
                }
            )
            offset += 256
        out.append(json.dumps({"source_KME_ID": "KME-A", "reservations": records}).encode())
    return out


async def _measure(post: Callable[[bytes], Awaitable[int]], bodies: list[bytes]) -> dict[str, Any]:
    assert await post(bodies[0]) == 200  # connect and warm up
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for body in bodies[1:]:
        status = await post(body)
        if status != 200:
            raise RuntimeError(f"the peer answered {status}")
    n = len(bodies) - 1
    return {
        "cpu_ms_per_post": 1e3 * (time.process_time() - cpu0) / n,
        "wall_ms_per_post": 1e3 * (time.perf_counter() - wall0) / n,
    }


async def _run(url: str, ctx: ssl.SSLContext, parts: list[list[bytes]]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, verify=ctx, timeout=30) as client:

        async def httpx_post(body: bytes) -> int:
            response = await client.post(
                RESERVATIONS_PATH, content=body, headers={"content-type": "application/json"}
            )
            return response.status_code

        peer = await _measure(httpx_post, parts[0])
    ours_client = PeerHttp(url, ctx, timeout_s=30, peer_name="KME-B", is_peer=lambda _: True)

    async def ours_post(body: bytes) -> int:
        return (await ours_client.post(RESERVATIONS_PATH, body)).status

    try:
        ours = await _measure(ours_post, parts[1])
    finally:
        await ours_client.close()
    return {"httpx": peer, "ours": ours}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=60, help="POSTs per client")
    parser.add_argument("--batch", type=int, default=100, help="reservations per POST")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] ships it
        uvloop = None
    with tempfile.TemporaryDirectory(prefix="bench-channel-") as tmp:
        root = Path(tmp)
        dep = make_deployment(root)
        need = 2 * (args.posts + 1) * args.batch * 256
        blocks = random_blocks(need // (N_BITS // 2) + 1, N_BITS)
        fill_stores(dep, blocks)
        ids = [b.key_id for b in blocks]
        per_client = (args.posts + 1) * args.batch * 256
        parts = [
            _bodies(ids, 0, args.posts + 1, args.batch),
            _bodies(ids, per_client, args.posts + 1, args.batch),
        ]
        ctx = client_ssl_context(
            ca=str(dep.ca), cert=str(dep.cert("KME-A")), key=str(dep.key("KME-A"))
        )
        with KmeProcess(dep.configs["KME-B"], dep.env(), root / "kme-b.log"):
            coro = _run(dep.url("KME-B"), ctx, parts)
            result = uvloop.run(coro) if uvloop is not None else asyncio.run(coro)
    ratio = result["httpx"]["cpu_ms_per_post"] / result["ours"]["cpu_ms_per_post"]
    doc = {"posts": args.posts, "batch": args.batch, **result, "ratio_cpu_httpx_over_ours": ratio}
    if args.json:
        sys.stdout.write(json.dumps(doc) + "\n")
        return 0
    print(f"POST {RESERVATIONS_PATH}, {args.batch} reservations each, {args.posts} POSTs, uvloop")
    print("| client | CPU ms/POST | wall ms/POST |")
    print("|---|---|---|")
    for name in ("ours", "httpx"):
        row = result[name]
        label = "diqkd PeerHttp" if name == "ours" else "peer: httpx.AsyncClient"
        print(f"| {label} | {row['cpu_ms_per_post']:.2f} | {row['wall_ms_per_post']:.2f} |")
    print(f"ratio httpx/ours (CPU per POST): {ratio:.1f}×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
