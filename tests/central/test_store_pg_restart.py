"""PostgreSQL goes away under a writer and comes back: every acknowledged record is stored
exactly once, nothing is acknowledged while the server is down, and the Store reconnects by
itself (pool_pre_ping); the failed batches sent again store the rest once."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from central.store import Store
from tests.central.conftest import fresh_pg_database
from tests.central.test_store import CAB, KEY, batch, ids, rec, up
from tests.sync.conftest import wait_for


def test_acked_records_survive_a_restart_exactly_once(pg_cluster):
    store = Store(fresh_pg_database(pg_cluster), pool_size=2)
    store.add_cabinet(CAB, KEY)
    acked: set[str] = set()
    failed: list = []
    sent: list[str] = []
    unexpected: list[BaseException] = []
    stop = threading.Event()

    def writer() -> None:  # an ingest worker: distinct records, batch after batch
        n = 0
        while not stop.is_set():
            n += 1
            b = batch(f"b{n}", *(rec(f"r{n}-{i}", n * 10 + i) for i in range(5)))
            sent.extend(r.id for r in b.records)
            try:
                [answer] = up(store, (CAB, b))
            except sa.exc.SQLAlchemyError:
                failed.append(b)
                stop.wait(0.02)  # the worker's backoff before its next try
                continue
            except BaseException as e:  # anything else fails the test
                unexpected.append(e)
                return
            acked.update(answer.stored)

    th = threading.Thread(target=writer, daemon=True)
    th.start()
    try:
        wait_for(lambda: len(acked) >= 50, 30, "acks before the outage")
        pg_cluster.stop("fast")
        down = len(failed)
        wait_for(lambda: len(failed) > down, 30, "a call failing while the server is down")
        during = len(acked)
        wait_for(lambda: len(failed) >= down + 3, 30, "more failing calls")
        assert len(acked) == during  # nothing acknowledged while the server is down
        pg_cluster.start()
        wait_for(lambda: len(acked) >= during + 50, 30, "acks after the server came back")
        pg_cluster.restart()  # a fast restart under load: the pool replaces cut connections
        now = len(acked)
        wait_for(lambda: len(acked) >= now + 50, 30, "acks after a restart")
    finally:
        stop.set()
        th.join(10)
    assert not unexpected and failed
    for b in failed:  # the cabinets send what was not acknowledged again
        [answer] = up(store, (CAB, b))
        acked.update(answer.stored)
    stored = ids(store)
    assert len(stored) == len(set(stored)) == len(sent) == len(set(sent))
    assert set(stored) == acked == set(sent)
    stats = store.stats()
    assert (stats.records, stats.duplicates) == (len(sent), 0)
    store.close()
