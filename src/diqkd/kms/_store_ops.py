"""The key store's transactions, one function each; :class:`~diqkd.kms.store.KeyStore` runs
them through :func:`~diqkd.kms._store_db.run_tx` after checking the arguments.

Each function runs inside one open transaction and leaves the commit to its caller. Locking
(see :mod:`diqkd.kms._store_db`): on SQLite the transaction already holds the write lock
(``BEGIN IMMEDIATE``); on PostgreSQL the functions lock the block rows whose segments they read
or rewrite, always in ascending row order, so that concurrent transactions on one block take
turns and never deadlock.
"""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Connection

from diqkd.errors import KeyStoreError
from diqkd.kms import _store_schema as sch
from diqkd.kms._store_crypto import Sealer, segment_span, split_segments
from diqkd.kms._store_segments import SegmentView
from diqkd.kms._store_types import KeyNotAuthorized, KeyNotFound, Reservation, ServedKey
from diqkd.postproc.keys import KeyBlock


@dataclass(frozen=True)
class Ctx:
    """What every transaction needs to know about the store that runs it."""

    site: str
    sealer: Sealer
    pg: bool


class Short(Exception):
    """Too few free bits were found (with SKIP LOCKED: maybe only for the moment)."""


def now_utc() -> str:
    """The current UTC time, ISO 8601 with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def window(site: str, n_bits: int) -> tuple[int, int]:
    """A site's allocation window ``[start, end)`` in a block of ``n_bits`` bits."""
    half = n_bits // 2
    return (0, half) if site == "alice" else (half, n_bits)


def conflict_message(block_id: str) -> str:
    """Why a block cannot be imported over a stored one of the same ID."""
    return (
        f"block {block_id} is already stored with different bits or length: a keys file from "
        "another run reuses its ID; do not import it"
    )


def import_tx(conn: Connection, ctx: Ctx, todo: Mapping[str, tuple[KeyBlock, bytes]]) -> int:
    """Insert the blocks not yet stored; refuse an ID stored with other bits."""
    b = sch.blocks
    added = 0
    for block, digest in todo.values():
        found = conn.execute(
            select(b.c.digest).where(b.c.site == ctx.site, b.c.block_id == block.key_id)
        ).scalar_one_or_none()
        if found is not None:
            if not hmac.compare_digest(found, digest):
                raise KeyStoreError(conflict_message(block.key_id))
            continue
        try:
            certificate = json.dumps(dict(block.certificate), sort_keys=True)
        except (TypeError, ValueError):
            raise KeyStoreError(
                f"the certificate of block {block.key_id} is not JSON-serialisable: "
                "convert its values to plain numbers, strings, lists and objects"
            ) from None
        lo, hi = window(ctx.site, block.n_bits)
        now = now_utc()
        inserted = conn.execute(
            insert(b).values(
                site=ctx.site,
                block_id=block.key_id,
                n_bits=block.n_bits,
                digest=digest,
                certificate=certificate,
                created_utc=block.created_utc,
                imported_utc=now,
                alloc_start=lo,
                alloc_end=hi,
                alloc_next=lo,
            )
        ).inserted_primary_key
        if inserted is None:  # pragma: no cover - both dialects return it
            raise KeyStoreError("the database did not return the new block's row ID")
        pk = inserted[0]
        conn.execute(
            insert(sch.segments),
            [
                {
                    "block_pk": pk,
                    "idx": i,
                    "n_bits": n,
                    "erased_bits": 0,
                    "version": 0,
                    "sealed": ctx.sealer.seal(
                        plain, block_id=block.key_id, index=i, n_bits=n, version=0
                    ),
                }
                for i, (n, plain) in enumerate(split_segments(block.key, block.n_bits))
            ],
        )
        added += 1
    return added


def free_keys_tx(conn: Connection, ctx: Ctx, size: int) -> int:
    """How many keys of ``size`` bits the site's halves still hold."""
    b = sch.blocks
    free = conn.execute(
        select(b.c.alloc_end - b.c.alloc_next).where(
            b.c.site == ctx.site, b.c.alloc_end - b.c.alloc_next >= size
        )
    ).scalars()
    return sum(int(f) // size for f in free)


def reserve_tx(
    conn: Connection,
    ctx: Ctx,
    *,
    number: int,
    size: int,
    master: str,
    slaves: tuple[str, ...],
    skip_locked: bool,
) -> tuple[list[ServedKey], list[Reservation]]:
    """Carve ``number`` keys first-fit from the site's halves, erase their bits, record them.

    Raises :class:`Short` when too few bits are free (with ``skip_locked``: free and unlocked).
    """
    b = sch.blocks
    query = (
        select(b.c.id, b.c.block_id, b.c.alloc_next, b.c.alloc_end)
        .where(b.c.site == ctx.site, b.c.alloc_end - b.c.alloc_next >= size)
        .order_by(b.c.id)
    )
    if ctx.pg:
        query = (
            query.limit(number).with_for_update(skip_locked=True)
            if skip_locked
            else query.with_for_update()
        )
    plan: list[tuple[Any, list[int]]] = []
    planned = 0
    for row in conn.execute(query):
        offsets = []
        nxt = int(row.alloc_next)
        while planned < number and int(row.alloc_end) - nxt >= size:
            offsets.append(nxt)
            nxt += size
            planned += 1
        plan.append((row, offsets))
        if planned == number:
            break
    if planned < number:
        raise Short
    now = now_utc()
    served: list[ServedKey] = []
    reservations: list[Reservation] = []
    key_rows: list[dict[str, Any]] = []
    for row, offsets in plan:
        segs = SegmentView(
            conn,
            ctx.sealer,
            row.id,
            row.block_id,
            (i for o in offsets for i in segment_span(o, size)),
        )
        for offset in offsets:
            key_id = str(uuid.uuid4())
            served.append(ServedKey(key_id=key_id, key=segs.read(offset, size), size_bits=size))
            segs.erase(offset, size)
            reservations.append(
                Reservation(
                    key_id=key_id,
                    block_id=row.block_id,
                    offset_bits=offset,
                    size_bits=size,
                    master_sae=master,
                    slave_saes=slaves,
                )
            )
            key_rows.append(
                {
                    "site": ctx.site,
                    "key_id": key_id,
                    "block_pk": row.id,
                    "offset_bits": offset,
                    "size_bits": size,
                    "master_sae": master,
                    "slave_saes": json.dumps(list(slaves)),
                    "delivered_to": json.dumps([master]),
                    "state": sch.DELIVERED_TO_MASTER,
                    "local": True,
                    "synced": False,
                    "created_utc": now,
                    "updated_utc": now,
                }
            )
        segs.flush(conn)
        conn.execute(update(b).where(b.c.id == row.id).values(alloc_next=offsets[-1] + size))
    conn.execute(insert(sch.keys), key_rows)
    return served, reservations


def accept_tx(conn: Connection, ctx: Ctx, todo: Mapping[str, Reservation]) -> int:
    """Record the peer's reservations that are new; refuse any that break the rules."""
    peer = "bob" if ctx.site == "alice" else "alice"
    b, k = sch.blocks, sch.keys
    block_ids = sorted({r.block_id for r in todo.values()})
    query = (
        select(b.c.id, b.c.block_id, b.c.n_bits)
        .where(b.c.site == ctx.site, b.c.block_id.in_(block_ids))
        .order_by(b.c.id)
    )
    if ctx.pg:
        query = query.with_for_update()
    found = {row.block_id: row for row in conn.execute(query)}
    added = 0
    now = now_utc()
    for r in todo.values():
        block = found.get(r.block_id)
        if block is None:
            raise KeyStoreError(
                f"block {r.block_id} of key {r.key_id} is not stored at this site: "
                "import this site's keys first, then send the reservation again"
            )
        existing = conn.execute(
            select(k.c.block_pk, k.c.offset_bits, k.c.size_bits, k.c.master_sae)
            .add_columns(k.c.slave_saes, k.c.local)
            .where(k.c.site == ctx.site, k.c.key_id == r.key_id)
        ).first()
        if existing is not None:
            same = (
                not existing.local
                and existing.block_pk == block.id
                and existing.offset_bits == r.offset_bits
                and existing.size_bits == r.size_bits
                and existing.master_sae == r.master_sae
                and tuple(json.loads(existing.slave_saes)) == r.slave_saes
            )
            if not same:
                raise KeyStoreError(
                    f"key ID {r.key_id} is already recorded here with other fields: "
                    "the peer reused a key ID; refuse this reservation"
                )
            continue
        lo, hi = window(peer, int(block.n_bits))
        end = r.offset_bits + r.size_bits
        if r.offset_bits < lo or end > hi:
            raise KeyStoreError(
                f"key {r.key_id} lies at bits [{r.offset_bits}, {end}) of block "
                f"{r.block_id}, outside the {peer} half [{lo}, {hi}): the peer must "
                "allocate only from its own half"
            )
        clash = conn.execute(
            select(k.c.key_id)
            .where(
                k.c.block_pk == block.id,
                k.c.offset_bits < end,
                k.c.offset_bits + k.c.size_bits > r.offset_bits,
            )
            .limit(1)
        ).scalar_one_or_none()
        if clash is not None:
            raise KeyStoreError(
                f"key {r.key_id} overlaps key {clash} in block {r.block_id}: a bit range "
                "was reserved twice; refuse this reservation"
            )
        conn.execute(
            insert(k).values(
                site=ctx.site,
                key_id=r.key_id,
                block_pk=block.id,
                offset_bits=r.offset_bits,
                size_bits=r.size_bits,
                master_sae=r.master_sae,
                slave_saes=json.dumps(list(r.slave_saes)),
                delivered_to="[]",
                state=sch.RESERVED,
                local=False,
                synced=True,
                created_utc=now,
                updated_utc=now,
            )
        )
        added += 1
    return added


def fetch_tx(conn: Connection, ctx: Ctx, ids: Sequence[str], slave: str) -> list[ServedKey]:
    """Deliver keys to one slave SAE, erasing those that every slave now has."""
    b, k = sch.blocks, sch.keys
    query = (
        select(k, b.c.block_id)
        .join(b, b.c.id == k.c.block_pk)
        .where(k.c.site == ctx.site, k.c.key_id.in_(ids))
        .order_by(k.c.key_id)
    )
    if ctx.pg:
        query = query.with_for_update(of=k)
    rows = {row.key_id: row for row in conn.execute(query)}
    for kid in ids:
        row = rows.get(kid)
        if row is None:
            raise KeyNotFound(
                f"key {kid} is unknown at this KME: check the key ID, or retry once the "
                "master's KME has forwarded its reservation"
            )
        if row.local:
            raise KeyNotFound(
                f"key {kid} was reserved at this KME for its master SAE; its slave SAEs "
                "get it from the peer KME"
            )
        if slave not in json.loads(row.slave_saes):
            raise KeyNotAuthorized(f"SAE {slave!r} is not a slave SAE of key {kid}")
        if row.state == sch.ERASED or slave in json.loads(row.delivered_to):
            raise KeyNotFound(
                f"key {kid} was already delivered to SAE {slave!r}; keys are served once"
            )
    if ctx.pg:  # the block rows are the lock that guards their segments
        conn.execute(
            select(b.c.id)
            .where(b.c.id.in_(sorted({r.block_pk for r in rows.values()})))
            .order_by(b.c.id)
            .with_for_update()
        ).all()
    by_block: dict[int, list[Any]] = {}
    for kid in ids:
        by_block.setdefault(rows[kid].block_pk, []).append(rows[kid])
    now = now_utc()
    served: dict[str, ServedKey] = {}
    for block_pk, krows in sorted(by_block.items()):
        segs = SegmentView(
            conn,
            ctx.sealer,
            block_pk,
            krows[0].block_id,
            (i for r in krows for i in segment_span(r.offset_bits, r.size_bits)),
        )
        updates = []
        for r in krows:
            served[r.key_id] = ServedKey(
                key_id=r.key_id,
                key=segs.read(r.offset_bits, r.size_bits),
                size_bits=r.size_bits,
            )
            delivered = [*json.loads(r.delivered_to), slave]
            done = set(json.loads(r.slave_saes)) <= set(delivered)
            if done:
                segs.erase(r.offset_bits, r.size_bits)
            updates.append(
                {
                    "b_site": ctx.site,
                    "b_key_id": r.key_id,
                    "b_delivered": json.dumps(delivered),
                    "b_state": sch.ERASED if done else sch.DELIVERED_TO_SLAVE,
                    "b_now": now,
                }
            )
        segs.flush(conn)
        conn.execute(
            update(k)
            .where(k.c.site == bindparam("b_site"), k.c.key_id == bindparam("b_key_id"))
            .values(
                delivered_to=bindparam("b_delivered"),
                state=bindparam("b_state"),
                updated_utc=bindparam("b_now"),
            ),
            updates,
        )
    return [served[kid] for kid in ids]


def pending_tx(conn: Connection, ctx: Ctx, limit: int | None) -> list[Reservation]:
    """Local reservations the peer has not acknowledged, in allocation order."""
    b, k = sch.blocks, sch.keys
    query = (
        select(k.c.key_id, k.c.offset_bits, k.c.size_bits, k.c.master_sae)
        .add_columns(k.c.slave_saes, b.c.block_id)
        .join(b, b.c.id == k.c.block_pk)
        .where(k.c.site == ctx.site, k.c.local.is_(True), k.c.synced.is_(False))
        .order_by(k.c.block_pk, k.c.offset_bits)
    )
    if limit is not None:
        query = query.limit(limit)
    return [
        Reservation(
            key_id=r.key_id,
            block_id=r.block_id,
            offset_bits=int(r.offset_bits),
            size_bits=int(r.size_bits),
            master_sae=r.master_sae,
            slave_saes=tuple(json.loads(r.slave_saes)),
        )
        for r in conn.execute(query)
    ]


def mark_synced_tx(conn: Connection, ctx: Ctx, ids: Sequence[str]) -> None:
    """Mark local reservations as acknowledged by the peer."""
    k = sch.keys
    for chunk in range(0, len(ids), 500):
        conn.execute(
            update(k)
            .where(
                k.c.site == ctx.site,
                k.c.local.is_(True),
                k.c.key_id.in_(ids[chunk : chunk + 500]),
            )
            .values(synced=True)
        )


def counts_tx(conn: Connection, ctx: Ctx) -> dict[str, int]:
    """Keys by state and bit totals of the site."""
    b, k = sch.blocks, sch.keys
    n_blocks, free, peer_window = conn.execute(
        select(
            func.count(b.c.id),
            func.coalesce(func.sum(b.c.alloc_end - b.c.alloc_next), 0),
            func.coalesce(func.sum(b.c.n_bits - (b.c.alloc_end - b.c.alloc_start)), 0),
        ).where(b.c.site == ctx.site)
    ).one()
    peer_used = conn.execute(
        select(func.coalesce(func.sum(k.c.size_bits), 0)).where(
            k.c.site == ctx.site, k.c.local.is_(False)
        )
    ).scalar_one()
    out = {
        "blocks": int(n_blocks),
        "free_bits": int(free),
        "peer_bits": int(peer_window) - int(peer_used),
    }
    out.update(dict.fromkeys(sch.STATES, 0))
    for state, n in conn.execute(
        select(k.c.state, func.count()).where(k.c.site == ctx.site).group_by(k.c.state)
    ):
        out[state] = int(n)
    out["unsynced"] = int(
        conn.execute(
            select(func.count()).where(
                k.c.site == ctx.site, k.c.local.is_(True), k.c.synced.is_(False)
            )
        ).scalar_one()
    )
    return out
