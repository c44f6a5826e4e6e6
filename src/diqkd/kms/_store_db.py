"""Engines and transactions of the key store, per database.

SQLite
    WAL journal, ``synchronous=FULL`` (a commit is on disk before it returns), a 30 s busy
    timeout, ``secure_delete=ON`` (freed content is overwritten with zeros) and a zero
    ``journal_size_limit`` (the WAL is truncated when it is reset). pysqlite's own transaction
    handling is switched off and every write transaction starts with ``BEGIN IMMEDIATE``, which
    takes the database's write lock at once: writers run one at a time, and a transaction never
    reads a state that another writer changes before it commits. Writers of a file database
    first queue on an advisory lock file beside it (``<database>.lock``, ``flock``): SQLite's
    own busy handler polls with sleeps of up to 100 ms, while a writer blocked in ``flock`` is
    woken as soon as the previous one commits, so that KME worker processes (and ``diqkd run``
    filling the store) take turns without latency spikes.
PostgreSQL (psycopg 3)
    ``READ COMMITTED`` with explicit row locks: the store locks the block rows it allocates from
    or reads segments of (``SELECT … FOR UPDATE``, with ``SKIP LOCKED`` for allocation), so
    concurrent transactions on one block take turns and others run in parallel.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, TypeVar

from sqlalchemy import create_engine, event, exc
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from diqkd.errors import KeyStoreError

T = TypeVar("T")

BUSY_TIMEOUT_S: Final = 30.0
#: Execution option that marks a read-only transaction (SQLite then uses a deferred BEGIN).
READ_ONLY: Final = "diqkd_read_only"
_RETRY_SQLSTATES: Final = frozenset({"40001", "40P01"})  # serialization failure, deadlock
_MAX_ATTEMPTS: Final = 5


try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: SQLite's busy handler alone
    fcntl = None  # type: ignore[assignment]


class _WriterLock:
    """Queue of a file database's writers: a thread lock, then an exclusive ``flock``.

    ``flock`` locks belong to an open file description, which the threads of a process share;
    the thread lock orders them, the file lock orders the processes.
    """

    def __init__(self, path: Path) -> None:
        self._thread_lock = threading.Lock()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        weakref.finalize(self, os.close, self._fd)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._thread_lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)


_WRITER_LOCKS: weakref.WeakKeyDictionary[Engine, _WriterLock] = weakref.WeakKeyDictionary()


class WriteConflict(KeyStoreError):
    """A write collided with a concurrent one (a unique key was taken meanwhile): retry."""


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
    cur = dbapi_conn.cursor()
    try:
        cur.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = FULL")
        cur.execute("PRAGMA secure_delete = ON")
        cur.execute("PRAGMA journal_size_limit = 0")
        cur.execute("PRAGMA foreign_keys = ON")
    finally:
        cur.close()


def _sqlite_on_begin(conn: Connection) -> None:
    if conn.get_execution_options().get(READ_ONLY):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> tuple[Engine, str]:
    """An engine for ``url`` set up for the store, and the URL with any password hidden."""
    try:
        parsed: URL = make_url(url)
    except (exc.ArgumentError, ValueError, TypeError):
        raise KeyStoreError(
            "the key store URL is not a SQLAlchemy URL; use sqlite:///path/to/store.sqlite3 "
            "or postgresql+psycopg://user@host:port/dbname"
        ) from None
    safe = parsed.render_as_string(hide_password=True)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        memory = database in ("", ":memory:")
        if not memory and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        kwargs: dict[str, Any] = {
            "connect_args": {"check_same_thread": False, "timeout": BUSY_TIMEOUT_S}
        }
        if memory:
            kwargs["poolclass"] = StaticPool
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        if fcntl is not None and not memory and not database.startswith("file:"):
            lock_path = Path(database).expanduser()
            try:
                _WRITER_LOCKS[engine] = _WriterLock(lock_path.with_name(lock_path.name + ".lock"))
            except OSError as error:
                raise KeyStoreError(
                    f"cannot create the writer lock file beside the key store {safe} "
                    f"({error.strerror or type(error).__name__}): check the folder's permissions"
                ) from None
        return engine, safe
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            raise KeyStoreError(
                f"the key store speaks to PostgreSQL through psycopg 3 only; write the URL as "
                f"postgresql+psycopg://… (got driver {parsed.get_driver_name()!r})"
            )
        engine = create_engine(parsed, pool_pre_ping=True, pool_size=8, max_overflow=24)
        return engine, safe
    raise KeyStoreError(
        f"the key store runs on SQLite or PostgreSQL, not {backend!r}; use sqlite:///… or "
        "postgresql+psycopg://…"
    )


def _sqlstate(error: exc.DBAPIError) -> str | None:
    state = getattr(error.orig, "sqlstate", None)
    return state if isinstance(state, str) else None


def run_tx(
    engine: Engine, safe_url: str, work: Callable[[Connection], T], *, read_only: bool = False
) -> T:
    """Run ``work`` in one transaction, committed before this returns; retry on deadlock.

    Database errors become :class:`KeyStoreError` with a message that holds no SQL parameters
    (they could hold sealed key material).
    """
    lock = None if read_only else _WRITER_LOCKS.get(engine)
    for attempt in range(1, _MAX_ATTEMPTS + 1):
        try:
            with (
                lock.held() if lock is not None else contextlib.nullcontext(),
                engine.connect() as conn,
            ):
                if read_only:
                    conn = conn.execution_options(**{READ_ONLY: True})
                with conn.begin():
                    return work(conn)
        except exc.DBAPIError as error:
            if _sqlstate(error) in _RETRY_SQLSTATES and attempt < _MAX_ATTEMPTS:
                time.sleep(0.005 * attempt)
                continue
            raise translate(error, safe_url) from None
        except exc.SQLAlchemyError as error:  # e.g. no pooled connection free in time
            raise KeyStoreError(
                f"the key store at {safe_url} failed ({type(error).__name__}): retry the "
                "request; if it keeps failing, check the database and the KME's load"
            ) from None
    raise AssertionError("unreachable")  # pragma: no cover


def translate(error: exc.DBAPIError, safe_url: str) -> KeyStoreError:
    """A :class:`KeyStoreError` that says what went wrong, without SQL or parameters."""
    orig = type(error.orig).__name__
    text = str(error.orig).splitlines()[0] if error.orig is not None else ""
    if "no such table" in text or ("does not exist" in text and "relation" in text):
        return KeyStoreError(
            f"the key store at {safe_url} has no schema yet: call KeyStore.migrate() first"
        )
    if "database is locked" in text:
        return KeyStoreError(
            f"the key store at {safe_url} stayed locked for {BUSY_TIMEOUT_S:.0f} s; another "
            "process holds a long write transaction: retry later"
        )
    if isinstance(error, exc.IntegrityError):
        return WriteConflict(
            f"the key store at {safe_url} refused a write that conflicts with another one "
            f"({orig}): retry the request"
        )
    if isinstance(error, exc.OperationalError | exc.InterfaceError):
        return KeyStoreError(
            f"cannot use the key store database at {safe_url} ({orig}): check that it is "
            "running and reachable, and that the URL and credentials are right"
        )
    return KeyStoreError(f"the key store database at {safe_url} failed ({orig})")
