"""Fixtures for the centre's tests: a migrated empty database on either backend (``db_url``,
parametrized sqlite / postgresql: contract tests run on both) and the PostgreSQL cluster."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from central import migrate
from tests.central.pg import PgCluster, missing

# The cabinet side's fixtures (a broker, a cabinet database, ``kiosk sync`` as a process), for
# the centre's tests that run the whole path.
from tests.sync.conftest import broker, cabinet_db, keyfile, sync_proc  # noqa: F401

TEMPLATE = "kiosk_template"
_names = itertools.count(1)


class _Spare:
    """The next test's database, copied from the template while the current test runs
    (CREATE DATABASE writes the copy to the WAL and waits for its fsync)."""

    def __init__(self, cluster: PgCluster) -> None:
        self.cluster = cluster
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="pg-spare")
        self.next: Future[str] | None = None

    def _make(self) -> str:
        return self.cluster.create_database(f"t{next(_names)}", template=TEMPLATE)

    def take(self) -> str:
        ready, self.next = self.next, None
        url = None
        if ready is not None:
            try:
                url = ready.result()
            except Exception:  # tried while the server was down (a restart test)
                url = None
        url = url or self._make()
        self.next = self.pool.submit(self._make)
        return url

    def close(self) -> None:
        self.pool.shutdown(wait=True)


_spares: dict[int, _Spare] = {}


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One PostgreSQL 15 cluster per xdist worker, with a migrated template database;
    ``.restart()``, ``.stop()``, ``.start()``, ``.url(db)``, ``.create_database(name)``."""
    why = missing()
    if why:
        pytest.skip(why)
    cluster = PgCluster()
    try:
        cluster.init().start()
        migrate.upgrade(cluster.create_database(TEMPLATE))
        _spares[id(cluster)] = _Spare(cluster)
        yield cluster
    finally:
        spare = _spares.pop(id(cluster), None)
        if spare is not None:
            spare.close()
        cluster.destroy()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("central-template") / "central.db"
    migrate.upgrade(path)
    return path


def fresh_pg_database(cluster: PgCluster) -> str:
    """A new migrated, empty database (a copy of the template) -> its URL."""
    spare = _spares.get(id(cluster))
    return spare.take() if spare else cluster.create_database(f"t{next(_names)}", TEMPLATE)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty centre database: a SQLite path or a postgresql:// URL."""
    if request.param == "sqlite":
        path = tmp_path / "central.db"
        shutil.copy(request.getfixturevalue("_sqlite_template"), path)
        return str(path)
    return fresh_pg_database(request.getfixturevalue("pg_cluster"))


@pytest.fixture
def store(db_url: str):
    """A central.store.Store on ``db_url``, closed afterwards."""
    from central.store import Store

    s = Store(db_url)
    yield s
    s.close()
