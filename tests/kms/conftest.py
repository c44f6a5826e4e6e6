"""Fixtures of the key manager's tests.

Key store fixtures: ``store_url`` runs a test once on SQLite (a file in ``tmp_path``) and once on
PostgreSQL (a fresh schema in the server named by ``DIQKD_TEST_POSTGRES_URL``, which
``.ci/postgres.sh`` starts and prints). Without that variable the PostgreSQL runs are skipped,
unless ``DIQKD_REQUIRE_POSTGRES=1`` (set by ``.ci/run``) makes them fail.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from sqlalchemy.engine import make_url

from diqkd.kms.store import KeyStore, Site
from diqkd.postproc.keys import KeyBlock

POSTGRES_URL_ENV = "DIQKD_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "DIQKD_REQUIRE_POSTGRES"


def postgres_base_url() -> str:
    """The test PostgreSQL server's URL, or skip (fail in CI) when none is configured."""
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        reason = (
            f"PostgreSQL key store tests need {POSTGRES_URL_ENV}: start a server with "
            f'`export {POSTGRES_URL_ENV}="$(.ci/postgres.sh)"`'
        )
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(f"{reason} ({REQUIRE_POSTGRES_ENV}=1 requires it)")
        pytest.skip(reason)
    return url


def _libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A SQLAlchemy URL whose ``search_path`` is a fresh, empty schema (dropped afterwards)."""
    base = postgres_base_url()
    schema = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(_libpq_url(base), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(_libpq_url(base), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store database, once per database kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite3'}"
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


@pytest.fixture
def master_key() -> bytes:
    """A fresh 32-byte master key."""
    return secrets.token_bytes(32)


StoreFactory = Callable[..., KeyStore]


@pytest.fixture
def make_store(store_url: str, master_key: bytes) -> Iterator[StoreFactory]:
    """``make_store(site="alice", url=store_url, master_key=master_key)``: a migrated store,
    closed after the test. Both sites may share ``store_url`` (every row belongs to a site)."""
    opened: list[KeyStore] = []

    def factory(
        site: Site = "alice", *, url: str | None = None, key: bytes | None = None
    ) -> KeyStore:
        store = KeyStore(url or store_url, master_key=key or master_key, site=site)
        store.migrate()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


def random_blocks(count: int, n_bits: int, seed: int = 0) -> list[KeyBlock]:
    """``count`` key blocks of ``n_bits`` random bits (seeded: tests only, not secret)."""
    rng = np.random.default_rng(seed)
    return [
        KeyBlock.from_bits(rng.integers(0, 2, n_bits, dtype=np.uint8), certificate={"test": True})
        for _ in range(count)
    ]


@pytest.fixture
def make_blocks() -> Callable[..., list[KeyBlock]]:
    """``make_blocks(count, n_bits, seed=0)``: random key blocks with fresh IDs."""
    return random_blocks


# ------------------------------------------------------------------ KME service fixtures
# (the ETSI GS QKD 014 tests: two real `diqkd kme serve` processes on loopback with mTLS)


class KmePair:
    """Two running KMEs (KME-A at site alice, KME-B at site bob) and ways to talk to them."""

    def __init__(self, deployment: Any, a: Any, b: Any) -> None:
        self.deployment = deployment
        self.a = a
        self.b = b
        self._clients: list[Any] = []

    def url(self, kme: str) -> str:
        return str(self.deployment.url(kme))

    def counts(self, site: str) -> dict[str, int]:
        """``KeyStore.counts()`` of ``site``'s store, read through a store of its own."""
        store = self.deployment.open_store(site)
        try:
            return dict(store.counts())
        finally:
            store.close()

    def http(self, sae: str, kme: str = "KME-A") -> Any:
        """An ``httpx.Client`` to ``kme`` with ``sae``'s client certificate (closed at teardown)."""
        import httpx

        from diqkd.kms.client import sae_ssl_context

        dep = self.deployment
        client = httpx.Client(
            base_url=self.url(kme),
            verify=sae_ssl_context(cert=dep.cert(sae), key=dep.key(sae), ca=dep.ca),
            timeout=30.0,
        )
        self._clients.append(client)
        return client

    def kme_client(self, sae: str, kme: str = "KME-A") -> Any:
        """A :class:`diqkd.kms.client.KmeClient` for ``sae`` at ``kme``."""
        from diqkd.kms.client import KmeClient

        dep = self.deployment
        client = KmeClient(self.url(kme), cert=dep.cert(sae), key=dep.key(sae), ca=dep.ca)
        self._clients.append(client)
        return client

    def close_clients(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()


def fetch_all_once(pair: KmePair, keys: list[tuple[str, str]]) -> None:
    """SAE-B fetches ``keys`` (ID, base64 bits) of master SAE-A at KME-B: each once, same bits."""
    slave = pair.http("SAE-B", "KME-B")
    for start in range(0, len(keys), 128):
        chunk = keys[start : start + 128]
        body = {"key_IDs": [{"key_ID": kid} for kid, _ in chunk]}
        response = slave.post("/api/v1/keys/SAE-A/dec_keys", json=body)
        assert response.status_code == 200, response.text
        assert [(k["key_ID"], k["key"]) for k in response.json()["keys"]] == chunk
        again = slave.post("/api/v1/keys/SAE-A/dec_keys", json=body)
        assert again.status_code == 400  # delivered to the slave once, never again


def start_kme_pair(root: Path, *, blocks: int, n_bits: int, **kwargs: Any) -> KmePair:
    """Write a deployment under ``root``, fill both stores, start both KMEs."""
    from diqkd.kms.testing import KmeProcess, fill_stores, make_deployment
    from diqkd.kms.testing import random_blocks as secret_blocks

    dep = make_deployment(root, **kwargs)
    fill_stores(dep, secret_blocks(blocks, n_bits))
    env = dep.env()
    b = KmeProcess(dep.configs["KME-B"], env, root / "kme-b.log").launch()
    a = KmeProcess(dep.configs["KME-A"], env, root / "kme-a.log")
    try:
        a.launch()
        a.wait_ready()
        b.wait_ready()
    except BaseException:
        a.kill()
        b.kill()
        raise
    return KmePair(dep, a, b)


def stop_kme_pair(pair: KmePair) -> None:
    pair.close_clients()
    pair.a.stop()
    pair.b.stop()


@pytest.fixture(scope="session")
def kme_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmePair]:
    """Two running KMEs with 8 shared blocks of 65,536 bits (1,024 keys of 256 bits per site)."""
    pair = start_kme_pair(tmp_path_factory.mktemp("kme-pair"), blocks=8, n_bits=65_536)
    try:
        yield pair
    finally:
        stop_kme_pair(pair)
