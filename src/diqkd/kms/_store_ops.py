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
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Connection

from diqkd.errors import KeyStoreError
from diqkd.kms import _store_schema as sch
from diqkd.kms._store_crypto import Sealer, segment_span, split_segments
from diqkd.kms._store_segments import SegmentView
from diqkd.kms._store_types import (
    KeyNotAuthorized,
    KeyNotFound,
    KeyUnknown,
    Reservation,
    ServedKey,
)
from diqkd.postproc.keys import KeyBlock


@dataclass(frozen=True)
class Ctx:
    """What every transaction needs to know about the store that runs it."""

    site: str
    sealer: Sealer
    pg: bool


# Statements built once (SQLAlchemy caches their compiled form; building them costs more).
_k = sch.keys
_IN_CHUNK = 500
_EXISTING_KEYS = select(
    _k.c.key_id,
    _k.c.block_pk,
    _k.c.offset_bits,
    _k.c.size_bits,
    _k.c.master_sae,
    _k.c.slave_saes,
    _k.c.local,
).where(_k.c.site == bindparam("site"), _k.c.key_id.in_(bindparam("ids", expanding=True)))
_KEY_BELOW = (
    select(_k.c.key_id, _k.c.offset_bits, _k.c.size_bits)
    .where(_k.c.block_pk == bindparam("pk"), _k.c.offset_bits < bindparam("lo"))
    .order_by(_k.c.offset_bits.desc())
    .limit(1)
)
_KEYS_INSIDE = select(_k.c.key_id, _k.c.offset_bits, _k.c.size_bits).where(
    _k.c.block_pk == bindparam("pk"),
    _k.c.offset_bits >= bindparam("lo"),
    _k.c.offset_bits < bindparam("hi"),
)
_INSERT_KEYS = insert(_k)
_b = sch.blocks
_FREE_BLOCKS = (
    select(_b.c.id, _b.c.block_id, _b.c.alloc_next, _b.c.alloc_end)
    .where(_b.c.site == bindparam("site"), _b.c.alloc_end - _b.c.alloc_next >= bindparam("size"))
    .order_by(_b.c.id)
)
_ADVANCE_CURSOR = (
    update(_b).where(_b.c.id == bindparam("b_id")).values(alloc_next=bindparam("b_next"))
)


class Short(Exception):
    """Too few free bits were found (with SKIP LOCKED: maybe only for the moment)."""


def stamp(moment: datetime) -> str:
    """A UTC time as the store writes it: ISO 8601 with milliseconds and ``Z`` (fixed width,
    so that the strings sort as the times do)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_utc() -> str:
    """The current UTC time, as :func:`stamp` writes it."""
    return stamp(datetime.now(UTC))


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
    acks: Sequence[str] = (),
) -> tuple[list[ServedKey], list[Reservation]]:
    """Carve ``number`` keys first-fit from the site's halves, erase their bits, record them.

    ``acks``: earlier local reservations to mark synced in the same transaction.
    Raises :class:`Short` when too few bits are free (with ``skip_locked``: free and unlocked).
    """
    if acks:
        mark_synced_tx(conn, ctx, acks)
    b = sch.blocks
    if ctx.pg:
        query = (
            select(b.c.id, b.c.block_id, b.c.alloc_next, b.c.alloc_end)
            .where(b.c.site == ctx.site, b.c.alloc_end - b.c.alloc_next >= size)
            .order_by(b.c.id)
        )
        query = (
            query.limit(number).with_for_update(skip_locked=True)
            if skip_locked
            else query.with_for_update()
        )
        result = conn.execute(query)
    else:  # the transaction already holds SQLite's write lock
        result = conn.execute(_FREE_BLOCKS, {"site": ctx.site, "size": size})
    plan: list[tuple[Any, list[int]]] = []
    planned = 0
    for row in result:
        offsets = []
        nxt = int(row.alloc_next)
        while planned < number and int(row.alloc_end) - nxt >= size:
            offsets.append(nxt)
            nxt += size
            planned += 1
        plan.append((row, offsets))
        if planned == number:
            break
    result.close()
    if planned < number:
        raise Short
    now = now_utc()
    slaves_json = json.dumps(list(slaves))
    delivered_json = json.dumps([master])
    served: list[ServedKey] = []
    reservations: list[Reservation] = []
    key_rows: list[dict[str, Any]] = []
    cursors: list[dict[str, Any]] = []
    fresh = os.urandom(16 * number)  # one system call for every new key ID (uuid4)
    new_ids = (str(uuid.UUID(bytes=fresh[16 * i : 16 * i + 16], version=4)) for i in range(number))
    for row, offsets in plan:
        segs = SegmentView(
            conn,
            ctx.sealer,
            row.id,
            row.block_id,
            (i for o in offsets for i in segment_span(o, size)),
        )
        for offset in offsets:
            key_id = next(new_ids)
            served.append(ServedKey(key_id=key_id, key=segs.read(offset, size), size_bits=size))
            segs.erase(offset, size)
            reservations.append(
                Reservation.checked(
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
                    "slave_saes": slaves_json,
                    "delivered_to": delivered_json,
                    "state": sch.DELIVERED_TO_MASTER,
                    "local": True,
                    "synced": False,
                    "created_utc": now,
                    "updated_utc": now,
                }
            )
        segs.flush(conn)
        cursors.append({"b_id": row.id, "b_next": offsets[-1] + size})
    conn.execute(_ADVANCE_CURSOR, cursors)
    conn.execute(_INSERT_KEYS, key_rows)
    return served, reservations


def accept_tx(conn: Connection, ctx: Ctx, todo: Mapping[str, Reservation]) -> int:
    """Record the peer's reservations that are new; refuse any that break the rules.

    Set-based: one query for the blocks, one per 500 key IDs for keys already recorded, two
    bounded overlap queries per block (the nearest recorded key below the new ranges and the
    recorded keys that start inside them, by the ``(block_pk, offset_bits)`` index), and one
    multi-row insert.
    """
    peer = "bob" if ctx.site == "alice" else "alice"
    b = sch.blocks
    block_ids = sorted({r.block_id for r in todo.values()})
    query = (
        select(b.c.id, b.c.block_id, b.c.n_bits)
        .where(b.c.site == ctx.site, b.c.block_id.in_(block_ids))
        .order_by(b.c.id)
    )
    if ctx.pg:
        query = query.with_for_update()
    found = {row.block_id: row for row in conn.execute(query)}
    for r in todo.values():
        block = found.get(r.block_id)
        if block is None:
            raise KeyStoreError(
                f"block {r.block_id} of key {r.key_id} is not stored at this site: "
                "import this site's keys first, then send the reservation again"
            )
        lo, hi = window(peer, int(block.n_bits))
        end = r.offset_bits + r.size_bits
        if r.offset_bits < lo or end > hi:
            raise KeyStoreError(
                f"key {r.key_id} lies at bits [{r.offset_bits}, {end}) of block "
                f"{r.block_id}, outside the {peer} half [{lo}, {hi}): the peer must "
                "allocate only from its own half"
            )

    ids = list(todo)
    existing: dict[str, Any] = {}
    for chunk in range(0, len(ids), _IN_CHUNK):
        for found_row in conn.execute(
            _EXISTING_KEYS, {"site": ctx.site, "ids": ids[chunk : chunk + _IN_CHUNK]}
        ):
            existing[found_row.key_id] = found_row
    new_by_block: dict[int, list[Reservation]] = {}
    for r in todo.values():
        row = existing.get(r.key_id)
        if row is None:
            new_by_block.setdefault(found[r.block_id].id, []).append(r)
            continue
        same = (
            not row.local
            and row.block_pk == found[r.block_id].id
            and row.offset_bits == r.offset_bits
            and row.size_bits == r.size_bits
            and row.master_sae == r.master_sae
            and tuple(json.loads(row.slave_saes)) == r.slave_saes
        )
        if not same:
            raise KeyStoreError(
                f"key ID {r.key_id} is already recorded here with other fields: "
                "the peer reused a key ID; refuse this reservation"
            )

    for block_pk, new in new_by_block.items():
        _check_no_overlap(conn, block_pk, new)

    now = now_utc()
    rows = [
        {
            "site": ctx.site,
            "key_id": r.key_id,
            "block_pk": block_pk,
            "offset_bits": r.offset_bits,
            "size_bits": r.size_bits,
            "master_sae": r.master_sae,
            "slave_saes": json.dumps(list(r.slave_saes)),
            "delivered_to": "[]",
            "state": sch.RESERVED,
            "local": False,
            "synced": True,
            "created_utc": now,
            "updated_utc": now,
        }
        for block_pk, new in new_by_block.items()
        for r in new
    ]
    if rows:
        conn.execute(_INSERT_KEYS, rows)
    return len(rows)


def _check_no_overlap(conn: Connection, block_pk: int, new: list[Reservation]) -> None:
    """Refuse new ranges of one block that overlap each other or a key recorded there.

    The recorded keys of a block never overlap (every insert passes this check, and the two
    sites' halves are disjoint), so sorted by offset their ends ascend too: of the keys that
    start below the new ranges only the nearest one can reach into them. Only that key and the
    keys that start inside ``[lowest new offset, highest new end)`` are read.
    """
    new.sort(key=lambda r: r.offset_bits)
    lo = new[0].offset_bits
    hi = max(r.offset_bits + r.size_bits for r in new)
    recorded: list[tuple[int, int, str]] = []
    below = conn.execute(_KEY_BELOW, {"pk": block_pk, "lo": lo}).first()
    if below is not None:
        recorded.append((int(below.offset_bits), int(below.size_bits), below.key_id))
    recorded.extend(
        (int(row.offset_bits), int(row.size_bits), row.key_id)
        for row in conn.execute(_KEYS_INSIDE, {"pk": block_pk, "lo": lo, "hi": hi})
    )
    # One sweep over recorded and new ranges by offset: a range that starts before the
    # furthest end seen so far overlaps the range that reaches there.
    intervals = sorted(
        [(o, o + s, kid, False) for o, s, kid in recorded]
        + [(r.offset_bits, r.offset_bits + r.size_bits, r.key_id, True) for r in new]
    )
    reach_end, reach_id, reach_new = -1, "", False
    for start, end, kid, is_new in intervals:
        if start < reach_end and (is_new or reach_new):
            key, other = (kid, reach_id) if is_new else (reach_id, kid)
            raise KeyStoreError(
                f"key {key} overlaps key {other} in block {new[0].block_id}: a bit range was "
                "reserved twice; refuse this reservation"
            )
        if end > reach_end:
            reach_end, reach_id, reach_new = end, kid, is_new


def _open_by_block(
    conn: Connection, ctx: Ctx, rows: Sequence[Any]
) -> Iterator[tuple[list[Any], SegmentView]]:
    """Key rows (with ``block_pk``, ``block_id``, ``offset_bits``, ``size_bits``) grouped by
    block, in block order, each group with the opened segments its keys touch. On PostgreSQL
    the block rows are locked first (they are the lock that guards their segments)."""
    by_block: dict[int, list[Any]] = {}
    for row in rows:
        by_block.setdefault(row.block_pk, []).append(row)
    if ctx.pg:
        b = sch.blocks
        conn.execute(
            select(b.c.id).where(b.c.id.in_(sorted(by_block))).order_by(b.c.id).with_for_update()
        ).all()
    for block_pk, krows in sorted(by_block.items()):
        spans = (i for r in krows for i in segment_span(r.offset_bits, r.size_bits))
        yield krows, SegmentView(conn, ctx.sealer, block_pk, krows[0].block_id, spans)


def fetch_tx(
    conn: Connection, ctx: Ctx, ids: Sequence[str], slave: str, master: str | None = None
) -> list[ServedKey]:
    """Deliver keys to one slave SAE, erasing those that every slave now has.

    With ``master``, every key must have been reserved by that master SAE.
    """
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
    unknown = tuple(kid for kid in ids if kid not in rows)
    if unknown:
        raise KeyUnknown(
            f"key {unknown[0]} is unknown at this KME: check the key ID, or retry once the "
            "master's KME has forwarded its reservation",
            unknown,
        )
    for kid in ids:
        row = rows[kid]
        if row.local:
            raise KeyNotFound(
                f"key {kid} was reserved at this KME for its master SAE; its slave SAEs "
                "get it from the peer KME"
            )
        if slave not in json.loads(row.slave_saes):
            raise KeyNotAuthorized(f"SAE {slave!r} is not a slave SAE of key {kid}")
        if master is not None and row.master_sae != master:
            raise KeyNotAuthorized(
                f"key {kid} was not reserved by master SAE {master!r}: the caller was not named "
                "as a slave SAE in an enc_keys call of that master"
            )
        if slave in json.loads(row.delivered_to):
            raise KeyNotFound(
                f"key {kid} was already delivered to SAE {slave!r}; keys are served once"
            )
        if row.state == sch.ERASED:
            raise KeyNotFound(
                f"key {kid} expired at this KME before SAE {slave!r} fetched it (its bits are "
                "erased): ask the master SAE for a new key"
            )
    now = now_utc()
    served: dict[str, ServedKey] = {}
    for krows, segs in _open_by_block(conn, ctx, [rows[kid] for kid in ids]):
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


def expire_tx(conn: Connection, ctx: Ctx, cutoff: str, limit: int) -> int:
    """Erase the peer's reservations recorded here before ``cutoff`` that some slave has not
    fetched (states ``reserved`` and ``delivered_to_slave``); at most ``limit`` keys.

    The keys are locked in key-ID order, as :func:`fetch_tx` locks them, so that an expiry and
    a fetch of the same keys wait for each other instead of deadlocking.
    """
    b, k = sch.blocks, sch.keys
    query = (
        select(k.c.key_id, k.c.block_pk, k.c.offset_bits, k.c.size_bits, b.c.block_id)
        .join(b, b.c.id == k.c.block_pk)
        .where(
            k.c.site == ctx.site,
            k.c.local.is_(False),
            k.c.state.in_((sch.RESERVED, sch.DELIVERED_TO_SLAVE)),
            k.c.created_utc < cutoff,
        )
        .order_by(k.c.key_id)
        .limit(limit)
    )
    if ctx.pg:
        query = query.with_for_update(of=k)
    rows = conn.execute(query).all()
    if not rows:
        return 0
    for krows, segs in _open_by_block(conn, ctx, rows):
        for r in krows:
            segs.erase(r.offset_bits, r.size_bits)
        segs.flush(conn)
    now = now_utc()
    conn.execute(
        update(k)
        .where(k.c.site == bindparam("b_site"), k.c.key_id == bindparam("b_key_id"))
        .values(state=sch.ERASED, updated_utc=now),
        [{"b_site": ctx.site, "b_key_id": r.key_id} for r in rows],
    )
    return len(rows)


def _local_reservations(
    conn: Connection, ctx: Ctx, *conditions: Any, limit: int | None = None
) -> list[Reservation]:
    """This site's own reservations that meet ``conditions``, in allocation order.

    ``local`` is tested on the rows, not in SQL, unless a condition uses the
    ``(site, local, synced)`` index anyway: next to ``key_id IN (…)`` it would lead SQLite's
    planner to scan that index over every local key instead of using the primary key.
    """
    b, k = sch.blocks, sch.keys
    query = (
        select(k.c.key_id, k.c.offset_bits, k.c.size_bits, k.c.master_sae)
        .add_columns(k.c.slave_saes, k.c.local, b.c.block_id)
        .join(b, b.c.id == k.c.block_pk)
        .where(k.c.site == ctx.site, *conditions)
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
        if r.local
    ]


def pending_tx(conn: Connection, ctx: Ctx, limit: int | None) -> list[Reservation]:
    """Local reservations the peer has not acknowledged, in allocation order."""
    k = sch.keys
    return _local_reservations(conn, ctx, k.c.local.is_(True), k.c.synced.is_(False), limit=limit)


def local_reservations_tx(conn: Connection, ctx: Ctx, ids: Sequence[str]) -> list[Reservation]:
    """This site's own reservations among ``ids`` (unknown IDs and the peer's are left out)."""
    out: list[Reservation] = []
    for chunk in range(0, len(ids), _IN_CHUNK):
        out.extend(
            _local_reservations(conn, ctx, sch.keys.c.key_id.in_(ids[chunk : chunk + _IN_CHUNK]))
        )
    return out


def mark_synced_tx(conn: Connection, ctx: Ctx, ids: Sequence[str]) -> None:
    """Mark local reservations as acknowledged by the peer."""
    k = sch.keys
    for chunk in range(0, len(ids), 500):
        conn.execute(
            # by primary key only: with ``local IS 1`` added, SQLite's planner scanned the
            # (site, local, synced) index over every local key (O(n) per call, measured: 8 ms
            # per 500 IDs at 20k keys, 54 ms at 100k); the IDs are this site's own reservations
            # (the peer's rows are recorded synced already)
            update(k)
            .where(k.c.site == ctx.site, k.c.key_id.in_(ids[chunk : chunk + 500]))
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
