"""The central service in one process: storage, HTTP, and (with an MQTT URL) ingest and downlinks.

``kiosk central`` runs one ``CentralService``; tests and the demo start it in-process too.

- **Store** (``central.store``): SQLite (a path: WAL, for the demo and most tests) or
  PostgreSQL (a ``postgresql://`` URL). A SQLite file is brought to the newest schema on start;
  a PostgreSQL database must be upgraded first (``kiosk central db upgrade``), because several
  processes share it and a migration is an operator's decision.
- **HTTP** (``central.http_app``, Starlette) under uvicorn on its own thread, with its own
  event loop: the cabinets' API, the phone page, ``/healthz`` and ``/metrics``, and the fleet
  API for people and scripts (``central.fleet_api``, ``/api/v1/fleet/...``: users and tokens
  of ``central.auth``).
- **MQTT** (when ``mqtt_url`` is given): one ``IngestWorker`` in the shared subscription group,
  so ``kiosk central ingest`` processes on other machines split the traffic with it, and one
  ``Publisher`` for retained catalogues, configuration and accounts, and the command pump.
- **Keys**: a provisioned cabinet's key is sealed in the database (``central.provision``);
  the master key (``master_key``, default ``/etc/kiosk-central/master.key``) is loaded at
  start whenever a key is sealed, and a missing or wrong one stops the start with one line
  (``ServiceError``). Keys given as ``cabinets`` (``--cabinet ID=KEYFILE``: tests,
  ``--simulate``) are held in memory only, never written.
- **Broker login**: ``mqtt_login`` (user, password), else the one in ``mqtt_url``, else, with
  a master key, ``kiosk-central`` and its derived password (``central.broker_files``).
- **Alarm hooks** (``central.alarm_hooks``): a thread sending new alarms to the webhooks
  added with ``kiosk central hook add`` (grouped per cabinet, retried with backoff).
- ``simulate``: what a real centre must not have, for tests and the demo: ``/admin/faults``,
  the scripted payment provider (codes ending 9999 declined) and the phone page's test login.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import uvicorn

from central import broker_files, migrate
from central.alarm_hooks import AlarmHooks, HookSettings
from central.auth import Auth
from central.faults import Faults, FaultSettings
from central.fleet_api import fleet_routes
from central.http_app import HttpSettings, create_app
from central.keyring import KeyringError
from central.metrics import Metrics
from central.mqtt_ingest import IngestWorker
from central.mqtt_url import parse_mqtt_url
from central.payments import PaymentProvider, ScriptedProvider, UnconfiguredProvider
from central.phone import NoPhoneLogin, PhoneLogin, TestLogin
from central.provision import open_keyring
from central.publisher import Publisher
from central.store import Store


def is_sqlite(db: str | Path) -> bool:
    """A path or a ``sqlite:`` URL (anything else is a server's URL)."""
    text = str(db)
    return "://" not in text or text.startswith("sqlite:")


class ServiceError(Exception):
    """The service cannot start as configured (the message says what to do)."""


def prepare_database(db: str | Path) -> None:
    """A SQLite file is migrated on start; PostgreSQL must already be at the newest schema."""
    if is_sqlite(db):
        migrate.upgrade(str(db))
    elif not migrate.at_head(str(db)):
        raise ServiceError(
            f"the database is not at the newest schema: run `kiosk central db upgrade --db {db}`"
        )


def open_store(
    db: str | Path, master_key: str | Path | None = None, cabinets: dict[str, bytes] | None = None
) -> tuple[Store, bytes | None]:
    """The store, ready: migrated (SQLite) or checked (PostgreSQL), the master key loaded
    when one is given or needed, ``cabinets``' keys held in memory. ``ServiceError`` (one line)
    otherwise; returns the store and the master key (None without one)."""
    prepare_database(db)
    store = Store(db)
    try:
        key = open_keyring(store, master_key)
        store.hold_keys(cabinets or {})
    except (KeyringError, ValueError) as e:
        store.close()
        raise ServiceError(str(e)) from None
    except BaseException:
        store.close()
        raise
    return store, key


def with_login(
    mqtt_url: str, login: tuple[str, str] | None = None, master_key: bytes | None = None
) -> str:
    """``mqtt_url`` with the centre's broker login in it (see the module's docstring)."""
    url = parse_mqtt_url(mqtt_url)  # ValueError for anything but an MQTT URL
    if login is None:
        if url.username is not None or master_key is None:
            return mqtt_url
        user = broker_files.CENTRE_USER
        login = (user, broker_files.mqtt_password(master_key, user))
    host = f"[{url.host}]" if ":" in url.host else url.host
    user, password = (quote(x, safe="") for x in login)
    return f"{'mqtts' if url.tls else 'mqtt'}://{user}:{password}@{host}:{url.port}"


class CentralService:
    def __init__(
        self,
        db: str | Path,
        cabinets: dict[str, bytes] | None = None,
        http: tuple[str, int] = ("127.0.0.1", 0),
        mqtt_url: str | None = None,
        *,
        ca_file: str | None = None,
        simulate: bool = False,
        settings: HttpSettings | None = None,
        payments: PaymentProvider | None = None,
        phone: PhoneLogin | None = None,
        master_key: str | Path | None = None,
        mqtt_login: tuple[str, str] | None = None,
        alarm_hooks: HookSettings | None = None,
    ):
        self.db = db
        self.store, key = open_store(db, master_key, cabinets)
        login_url = mqtt_url
        if mqtt_url:
            try:
                login_url = with_login(mqtt_url, mqtt_login, key)
            except ValueError as e:
                self.store.close()
                raise ServiceError(str(e)) from None
        self.simulate = simulate
        self.faults = Faults() if simulate else None
        self.metrics = Metrics(connected=self._online_count)
        self.mqtt_url = mqtt_url  # as given: the password stays out of anything shown
        self.ingest: IngestWorker | None = None
        self.publisher: Publisher | None = None
        if login_url:
            self.ingest = IngestWorker(
                self.store, login_url, ca_file=ca_file, metrics=self.metrics, faults=self.faults
            )
            self.publisher = Publisher(self.store, login_url, ca_file=ca_file, faults=self.faults)
        # The fleet API (people and scripts: central.fleet_api); what it publishes goes out
        # retained on MQTT through the Publisher, and is kept for HTTP polling either way.
        self.auth = Auth(self.store)
        publish = self.publisher.publish_down if self.publisher else None
        self.alarm_hooks = AlarmHooks(self.store, alarm_hooks or HookSettings())
        app = create_app(
            self.store,
            settings or HttpSettings(),
            simulate=simulate,
            payments=payments or (ScriptedProvider() if simulate else UnconfiguredProvider()),
            phone=phone or (TestLogin() if simulate else NoPhoneLogin()),
            faults=self.faults,
            metrics=self.metrics,
            extra_routes=fleet_routes(self.store, self.auth, publish),
        )
        # The socket is bound here, so the address (port 0: any free one) is known at once.
        self._socket = socket.create_server(http, reuse_port=False)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._http = uvicorn.Server(config)
        self._http_thread = threading.Thread(
            target=self._http.run, kwargs={"sockets": [self._socket]}, name="central-http"
        )

    @property
    def http_url(self) -> str:
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def _online_count(self) -> float:
        try:
            return float(sum(1 for c in self.store.cabinets() if c.get("online")))
        except Exception:  # a scrape must answer even while the database is away
            return float("nan")

    def start(self, timeout: float = 10.0) -> CentralService:
        self._http_thread.start()
        end = time.monotonic() + timeout
        while not self._http.started:
            if not self._http_thread.is_alive() or time.monotonic() > end:
                raise ServiceError("the HTTP server did not start")
            time.sleep(0.01)
        if self.ingest and self.publisher:
            self.ingest.start()
            self.publisher.start()
        self.alarm_hooks.start()
        return self

    def stop(self) -> None:
        """Stop what was started (also after a start that failed half way)."""
        if self.ingest and self.publisher:
            self.ingest.stop()
            self.publisher.stop()
        self._http.should_exit = True
        if self._http_thread.is_alive():
            self._http_thread.join(timeout=10)
        self._socket.close()
        self.alarm_hooks.stop()  # waits for its POSTs in flight: before the store closes
        self.store.close()

    def __enter__(self) -> CentralService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_mqtt(self, timeout: float = 10.0) -> bool:
        """Both MQTT clients connected (and subscribed): what a test waits for first."""
        if not (self.ingest and self.publisher):
            return False
        end = time.monotonic() + timeout
        return self.ingest.wait_connected(timeout) and self.publisher.wait_connected(
            max(0.0, end - time.monotonic())
        )

    # -- operations tests and the demo use (Step 9 puts them behind authenticated users) ------
    def push(
        self, cabinet: str, kind: str, payload: Any, version: int | None = None
    ) -> dict[str, Any]:
        """Sign and keep a new catalogue, configuration or accounts list, and publish it."""
        if self.publisher:
            return self.publisher.push(cabinet, kind, payload, version)
        return self.store.put_downlink(cabinet, kind, payload, version)

    def set_faults(self, faults: FaultSettings) -> None:
        if self.faults is None:
            raise ServiceError("faults exist only in a simulated centre (simulate=True)")
        self.faults.set(faults)
