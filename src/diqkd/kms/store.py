"""The durable key store of a KME: distilled key blocks in, ETSI-sized keys out, each once.

One store per site (``"alice"`` or ``"bob"``) holds the key blocks that the protocol distilled
(:class:`diqkd.postproc.KeyBlock`; both sites hold the same block IDs and bits). Keys are carved
from blocks bit-exactly. To let two sites hand out keys without asking each other first, each
site allocates as *master* only from its own half of every block: alice from bits
``[0, n // 2)``, bob from ``[n // 2, n)``. A reservation made at one site travels to the other
as a :class:`Reservation` record (no secret in it) and is recorded there with
:meth:`KeyStore.accept_reservations`; the slave SAEs then fetch the key there with
:meth:`KeyStore.fetch_for_slave`.

Lifecycle of a key (see ``docs/kms-store.md``)::

    available bits ─ reserve() ─► delivered_to_master      (master's site: bits erased at once)
    peer's bits ─ accept_reservations() ─► reserved ─ fetch_for_slave() ─► delivered_to_slave
                                                      (all slaves fetched) ─► erased

At rest the bits of every block are kept as fixed-size segments, each sealed with AES-256-GCM
under the master key with the block ID, segment index and a rewrite counter as associated data.
Consumed bits are zeroed and the segment re-sealed in the same transaction that consumes them;
a segment whose bits are all consumed loses its ciphertext entirely.

Every state change is one database transaction that is committed before the method returns
(SQLite: ``BEGIN IMMEDIATE`` in WAL mode with ``synchronous=FULL``; PostgreSQL: row locks with
``SELECT … FOR UPDATE [SKIP LOCKED]``), so a crash leaves every key either still available or
handed out exactly once.
"""

from __future__ import annotations

import hmac
import logging
import math
import os
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, TypeVar

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from diqkd.errors import KeyStoreError
from diqkd.kms import _store_ops as ops
from diqkd.kms import _store_schema as sch
from diqkd.kms._store_crypto import Sealer, load_or_create_key_file, parse_master_key
from diqkd.kms._store_db import WriteConflict, make_engine, run_tx, translate
from diqkd.kms._store_types import (
    SITES,
    KeyNotAuthorized,
    KeyNotFound,
    KeyUnknown,
    NotEnoughKey,
    Reservation,
    ServedKey,
    Site,
    positive_int,
    sae_id,
)
from diqkd.postproc.keys import KeyBlock

__all__ = [
    "KeyNotAuthorized",
    "KeyNotFound",
    "KeyStore",
    "KeyStoreError",
    "KeyUnknown",
    "NotEnoughKey",
    "Reservation",
    "ServedKey",
    "Site",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
_CHECK_NAME: Final = "master_key_check"
# Alembic keeps its migration context in module globals: one migration per process at a time
# (processes take turns through the database's own locks).
_MIGRATE_LOCK: Final = threading.Lock()


class KeyStore:
    """A site's durable key store on SQLite or PostgreSQL (thread-safe; one per process).

    Parameters
    ----------
    url
        SQLAlchemy URL: ``sqlite:///path/to/file.sqlite3`` or
        ``postgresql+psycopg://user@host:port/db``.
    master_key
        32 bytes: the AES-256-GCM key that seals the key bits at rest.
    site
        ``"alice"`` or ``"bob"``: which half of every block this site allocates from.
        Several sites may share one database: every row belongs to one site.

    Notes
    -----
    The constructor does not touch the database; call :meth:`migrate` once (it is idempotent)
    before use. The first operation checks that ``master_key`` is the one the store was created
    with and raises :class:`KeyStoreError` if not.
    """

    def __init__(self, url: str, *, master_key: bytes, site: Site) -> None:
        if site not in SITES:
            raise KeyStoreError(f"site must be 'alice' or 'bob', got {site!r}")
        self._site: Site = site
        self._sealer = Sealer(master_key, site)
        self._engine, self._safe_url = make_engine(url)
        self._pg = self._engine.dialect.name == "postgresql"
        self._ctx = ops.Ctx(site=site, sealer=self._sealer, pg=self._pg)
        self._ready = False
        self._ready_lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"KeyStore(url={self._safe_url!r}, site={self._site!r})"

    @property
    def site(self) -> Site:
        """Which site this store serves (``"alice"`` or ``"bob"``)."""
        return self._site

    @property
    def dialect(self) -> str:
        """The database in use: ``"sqlite"`` or ``"postgresql"``."""
        return str(self._engine.dialect.name)

    @classmethod
    def open_default(cls, site: Site, *, data_dir: Path | None = None) -> KeyStore:
        """Open (creating and migrating if needed) the site's SQLite store in the data directory.

        The data directory is ``data_dir``, else ``$DIQKD_HOME``, else
        ``$XDG_DATA_HOME/diqkd``, else ``~/.local/share/diqkd``; the store is
        ``<data_dir>/<site>/keystore.sqlite3``. The master key is taken from
        ``$DIQKD_MASTER_KEY`` (base64 or hex of 32 bytes), else from the file named by
        ``$DIQKD_MASTER_KEY_FILE``, else from ``<data_dir>/<site>/master.key``, which is created
        with mode 0600 from :mod:`secrets` on first use.
        """
        if site not in SITES:
            raise KeyStoreError(f"site must be 'alice' or 'bob', got {site!r}")
        site_dir = default_data_dir(data_dir) / site
        site_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        store = cls(
            f"sqlite:///{site_dir / 'keystore.sqlite3'}",
            master_key=default_master_key(site_dir),
            site=site,
        )
        store.migrate()
        return store

    # ---------------------------------------------------------------- schema and master key

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest Alembic revision shipped with diqkd."""
        from alembic import command
        from alembic.config import Config

        self._check_open()
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
        try:
            with _MIGRATE_LOCK, self._engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except Exception as error:
            from sqlalchemy import exc

            if isinstance(error, exc.DBAPIError):
                raise translate(error, self._safe_url) from None
            raise KeyStoreError(
                f"could not migrate the key store at {self._safe_url} ({type(error).__name__}); "
                "check the database and that this diqkd is not older than the store"
            ) from error
        self._ensure_ready()

    def _check_open(self) -> None:
        if self._closed:
            raise KeyStoreError("this key store is closed; open a new KeyStore")

    def _ensure_ready(self) -> None:
        self._check_open()
        if self._ready:
            return
        with self._ready_lock:
            if self._ready:
                return
            run_tx(self._engine, self._safe_url, self._ensure_ready_tx)
            self._ready = True

    def _ensure_ready_tx(self, conn: Connection) -> None:
        from sqlalchemy import text

        try:
            with conn.begin_nested():
                version = conn.execute(
                    text(f"SELECT version_num FROM {sch.VERSION_TABLE}")
                ).scalar_one_or_none()
        except Exception:
            version = None
        if version != sch.HEAD_REVISION:
            raise KeyStoreError(
                f"the key store at {self._safe_url} has schema {version or 'none'}, this diqkd "
                f"needs {sch.HEAD_REVISION}: call KeyStore.migrate() (or use open_default)"
            )
        m = sch.meta
        where = (m.c.site == self._site, m.c.name == _CHECK_NAME)
        stored = conn.execute(select(m.c.value).where(*where)).scalar_one_or_none()
        if stored is None:
            conn.execute(
                insert(m).values(site=self._site, name=_CHECK_NAME, value=self._sealer.make_check())
            )
        elif not self._sealer.verify_check(stored):
            raise KeyStoreError(
                f"the master key does not open the {self._site} key store at {self._safe_url}: "
                "give the master key this store was created with (DIQKD_MASTER_KEY, "
                "DIQKD_MASTER_KEY_FILE or <data_dir>/<site>/master.key)"
            )

    def _tx(self, work: Callable[[Connection], T], *, read_only: bool = False) -> T:
        self._ensure_ready()
        return run_tx(self._engine, self._safe_url, work, read_only=read_only)

    # ---------------------------------------------------------------------------- import

    def import_blocks(self, blocks: Sequence[KeyBlock]) -> int:
        """Store distilled key blocks; idempotent by block ID, all or nothing.

        Returns
        -------
        int
            The number of blocks newly added (a block already stored with the same bits is
            skipped).

        Raises
        ------
        KeyStoreError
            If a block ID is already stored with different bits or length.
        """
        todo: dict[str, tuple[KeyBlock, bytes]] = {}
        for block in blocks:
            if not isinstance(block, KeyBlock):
                raise KeyStoreError(f"import_blocks takes KeyBlock objects, got {type(block)}")
            digest = self._sealer.digest(block.key_id, block.n_bits, block.key)
            seen = todo.get(block.key_id)
            if seen is not None:
                if not hmac.compare_digest(seen[1], digest):
                    raise KeyStoreError(ops.conflict_message(block.key_id))
                continue
            todo[block.key_id] = (block, digest)
        if not todo:
            return 0

        try:
            added = self._tx(lambda conn: ops.import_tx(conn, self._ctx, todo))
        except WriteConflict:  # a concurrent import of the same block won: now a no-op
            added = self._tx(lambda conn: ops.import_tx(conn, self._ctx, todo))
        log.info("%s key store: imported %d new block(s)", self._site, added)
        return added

    # --------------------------------------------------------------------- master side

    def stored_key_count(self, size_bits: int) -> int:
        """How many keys of ``size_bits`` bits this site could still hand out as master."""
        size = positive_int(size_bits, "size_bits")
        return self._tx(lambda conn: ops.free_keys_tx(conn, self._ctx, size), read_only=True)

    def reserve(
        self,
        *,
        number: int,
        size_bits: int,
        master_sae: str,
        slave_saes: Sequence[str],
        mark_synced: Sequence[str] = (),
    ) -> tuple[list[ServedKey], list[Reservation]]:
        """Carve ``number`` fresh keys from this site's half of the stored blocks, atomically.

        The keys get new uuid4 key IDs and are recorded as delivered to ``master_sae``; their
        bits are erased at this site in the same transaction. The returned reservations are
        what the peer KME needs (:meth:`accept_reservations`); they are also kept in an outbox
        (:meth:`pending_reservations`) until :meth:`mark_reservations_synced`.

        ``mark_synced`` names earlier reservations that the peer acknowledged: they are marked
        synced in the same transaction (as :meth:`mark_reservations_synced` would, without a
        commit of its own); if this call fails they are not marked.

        Raises
        ------
        NotEnoughKey
            If fewer than ``number`` keys of ``size_bits`` bits are free (nothing is reserved).
        KeyStoreError
            If an argument is out of range.
        """
        number = positive_int(number, "number")
        size = positive_int(size_bits, "size_bits")
        master = sae_id(master_sae, "master_sae")
        if isinstance(slave_saes, str):
            raise KeyStoreError("slave_saes must be a sequence of SAE IDs, not one string")
        slaves = tuple(dict.fromkeys(sae_id(s, "each slave SAE") for s in slave_saes))
        if not slaves:
            raise KeyStoreError("name at least one slave SAE")
        if isinstance(mark_synced, str):
            raise KeyStoreError("mark_synced must be a sequence of key IDs, not one string")
        acks = sorted({str(i) for i in mark_synced})

        def reserve(
            conn: Connection, skip_locked: bool
        ) -> tuple[list[ServedKey], list[Reservation]]:
            return ops.reserve_tx(
                conn,
                self._ctx,
                number=number,
                size=size,
                master=master,
                slaves=slaves,
                skip_locked=skip_locked,
                acks=acks,
            )

        try:
            result = self._tx(lambda conn: reserve(conn, True))
        except ops.Short:
            if not self._pg:
                raise self._not_enough(number, size) from None
            try:  # SKIP LOCKED saw too little: look again, waiting for locked blocks
                result = self._tx(lambda conn: reserve(conn, False))
            except ops.Short:
                raise self._not_enough(number, size) from None
        log.info("%s key store: reserved %d key(s) of %d bits", self._site, number, size)
        return result

    def _not_enough(self, number: int, size: int) -> NotEnoughKey:
        have = self.stored_key_count(size)
        return NotEnoughKey(
            f"this KME holds {have} free key(s) of {size} bits for its master SAEs, "
            f"{number} were asked for: ask for fewer or shorter keys, or wait for more key"
        )

    # ---------------------------------------------------------------------- slave side

    def accept_reservations(self, reservations: Sequence[Reservation]) -> None:
        """Record keys that the peer site reserved, so that their slaves may fetch them here.

        Idempotent by key ID (the same record again is a no-op); all or nothing.

        Raises
        ------
        KeyStoreError
            If a block is unknown here, a key does not lie in the peer's half of its block,
            overlaps a key already recorded, or a key ID is reused with different fields.
        """
        todo: dict[str, Reservation] = {}
        for r in reservations:
            if not isinstance(r, Reservation):
                raise KeyStoreError(f"accept_reservations takes Reservation objects, got {type(r)}")
            if todo.setdefault(r.key_id, r) != r:
                raise KeyStoreError(f"key {r.key_id} appears twice with different fields")
        if not todo:
            return
        added = self._tx(lambda conn: ops.accept_tx(conn, self._ctx, todo))
        log.info("%s key store: accepted %d reservation(s) from the peer", self._site, added)

    def fetch_for_slave(
        self, *, key_ids: Sequence[str], slave_sae: str, master_sae: str | None = None
    ) -> list[ServedKey]:
        """Hand keys reserved by the peer site to one of their slave SAEs; all or nothing.

        After every named slave has fetched a key, its bits are erased for good.

        ``master_sae`` (the master SAE named in the ``dec_keys`` call), if given, must be the
        master SAE that reserved every one of the keys: ETSI GS QKD 014 serves a key only to an
        SAE that was named as slave in the ``enc_keys`` call of that master.

        Raises
        ------
        KeyNotAuthorized
            If ``slave_sae`` is not named as a slave of one of the keys, or one of the keys was
            reserved by another master SAE than ``master_sae``.
        KeyUnknown
            If key IDs are not recorded here at all (a :class:`KeyNotFound`; its ``key_ids``
            names them: the peer's reservation may not have arrived yet).
        KeyNotFound
            If a key ID was already delivered to ``slave_sae``, is erased, or was reserved at
            this site (its slaves fetch it at the peer site).
        """
        slave = sae_id(slave_sae, "slave_sae")
        master = None if master_sae is None else sae_id(master_sae, "master_sae")
        if isinstance(key_ids, str):
            raise KeyStoreError("key_ids must be a sequence of key IDs, not one string")
        ids = list(key_ids)
        if not ids:
            raise KeyStoreError("name at least one key ID")
        for kid in ids:
            if not isinstance(kid, str):
                raise KeyNotFound(f"key ID {kid!r} is not a string")
        if len(set(ids)) != len(ids):
            raise KeyNotFound("a key ID is named twice in one request; name each key once")

        result = self._tx(lambda conn: ops.fetch_tx(conn, self._ctx, ids, slave, master))
        log.info("%s key store: delivered %d key(s) to a slave SAE", self._site, len(result))
        return result

    def expire_reservations(self, *, older_than_s: float, batch: int = 1000) -> int:
        """Erase the peer's reservations that waited here longer than ``older_than_s`` seconds.

        A key the master SAE got but that not every slave SAE has fetched within the time
        would otherwise stay at this site for good. Its bits are erased exactly as after the
        last slave's fetch, and the key moves to ``erased``. A later fetch raises
        :class:`KeyNotFound` ("expired"), and the same reservation sent again is a no-op (the
        key ID is known). Only the peer's reservations are affected. This site's own keys were
        erased when its master SAE got them, and free bits do not expire. The age counts from
        when the reservation was recorded here. The work is done in transactions of at most
        ``batch`` keys.

        Returns
        -------
        int
            Keys erased.

        Raises
        ------
        KeyStoreError
            If ``older_than_s`` is not a finite number ≥ 0 or ``batch`` is not ≥ 1.
        """
        age = float(older_than_s)
        if not math.isfinite(age) or age < 0:
            raise KeyStoreError(f"older_than_s must be a finite number ≥ 0, got {older_than_s!r}")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise KeyStoreError(f"batch must be an int ≥ 1, got {batch!r}")
        cutoff = ops.stamp(datetime.now(UTC) - timedelta(seconds=age))
        total = 0
        while True:
            done = self._tx(lambda conn: ops.expire_tx(conn, self._ctx, cutoff, batch))
            total += done
            if done < batch:
                break
        if total:
            log.info("%s key store: %d unfetched reservation(s) expired", self._site, total)
        return total

    # ------------------------------------------------------------------------ outbox

    def pending_reservations(self, *, limit: int | None = None) -> list[Reservation]:
        """Reservations made at this site that the peer has not yet acknowledged (oldest first).

        The KME-to-KME sync sends these to the peer and then calls
        :meth:`mark_reservations_synced`; after a crash it simply sends them again
        (:meth:`accept_reservations` is idempotent).
        """
        if limit is not None:
            positive_int(limit, "limit")
        return self._tx(lambda conn: ops.pending_tx(conn, self._ctx, limit), read_only=True)

    def local_reservations(self, key_ids: Sequence[str]) -> list[Reservation]:
        """The reservations made at this site among ``key_ids`` (others are left out).

        What the peer KME asks for when one of its slave SAEs names a key whose reservation
        has not reached it yet (:mod:`diqkd.kms.sync`); records hold no key bits.
        """
        if isinstance(key_ids, str):
            raise KeyStoreError("key_ids must be a sequence of key IDs, not one string")
        ids = sorted({str(i) for i in key_ids})
        if not ids:
            return []
        return self._tx(
            lambda conn: ops.local_reservations_tx(conn, self._ctx, ids), read_only=True
        )

    def mark_reservations_synced(self, key_ids: Sequence[str]) -> None:
        """Record that the peer acknowledged these reservations (unknown IDs are ignored)."""
        if isinstance(key_ids, str):
            raise KeyStoreError("key_ids must be a sequence of key IDs, not one string")
        ids = sorted({str(i) for i in key_ids})
        if not ids:
            return
        self._tx(lambda conn: ops.mark_synced_tx(conn, self._ctx, ids))

    # ------------------------------------------------------------------ status, close

    def counts(self) -> dict[str, int]:
        """Keys by lifecycle state, plus block and free-bit totals of this site.

        Keys: ``blocks``, ``free_bits`` (this site's half, not yet allocated), ``peer_bits``
        (the peer's half, not yet reserved by it), ``delivered_to_master``, ``reserved``,
        ``delivered_to_slave`` (some but not all slaves), ``erased``, ``unsynced``
        (local reservations not yet acknowledged by the peer).
        """
        return self._tx(lambda conn: ops.counts_tx(conn, self._ctx), read_only=True)

    def close(self) -> None:
        """Release the database connections (the store is unusable afterwards).

        On SQLite the WAL is checkpointed and truncated first, so that no superseded page (which
        could hold an older sealing of erased bits) stays in the ``-wal`` file.
        """
        if self._closed:
            return
        self._closed = True
        if not self._pg:
            try:
                raw = self._engine.raw_connection()  # autocommit: no BEGIN IMMEDIATE
                try:
                    cursor = raw.cursor()
                    cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    cursor.close()
                finally:
                    raw.close()
            except Exception:  # closing must not fail; the next open checkpoints anyway
                log.warning("%s key store: WAL checkpoint at close failed", self._site)
        self._engine.dispose()

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def default_data_dir(data_dir: Path | None = None) -> Path:
    """The diqkd data directory: ``data_dir``, ``$DIQKD_HOME``, ``$XDG_DATA_HOME/diqkd``, or
    ``~/.local/share/diqkd``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    home = os.environ.get("DIQKD_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg:
        return Path(xdg).expanduser() / "diqkd"
    return Path.home() / ".local" / "share" / "diqkd"


def default_master_key(site_dir: Path) -> bytes:
    """The master key: ``$DIQKD_MASTER_KEY``, the file ``$DIQKD_MASTER_KEY_FILE``, or
    ``<site_dir>/master.key`` (created, mode 0600, on first use)."""
    value = os.environ.get("DIQKD_MASTER_KEY")
    if value:
        return parse_master_key(value, origin="the environment variable DIQKD_MASTER_KEY")
    named = os.environ.get("DIQKD_MASTER_KEY_FILE")
    if named:
        path = Path(named).expanduser()
        try:
            return parse_master_key(path.read_bytes(), origin=f"file {path}")
        except OSError as exc:
            raise KeyStoreError(
                f"cannot read the master key file {path} named by DIQKD_MASTER_KEY_FILE "
                f"({exc.strerror}); fix the path or its permissions"
            ) from None
    return load_or_create_key_file(site_dir / "master.key")
