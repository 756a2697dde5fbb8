"""The broker as provisioned: mosquitto with TLS, the password and ACL files ``kiosk central
cabinet add`` writes, and the real centre behind it.

A CA and a server certificate are made with openssl; the broker has the cabinets' listener
(``use_username_as_clientid``) and the centre's. Logged in as cabinet A, a client cannot
publish as B, forge its own ack, read B's messages, or take B's client id; a retired cabinet's
login is refused (and its open connection closed); during a key rotation both keys are
accepted, each answered with its own; the real sync agent delivers through all of it.
"""

from __future__ import annotations

import contextlib
import getpass
import io
import json
import shutil
import subprocess
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import requests
from paho.mqtt.properties import Properties

from central import cli as central_cli
from central.broker_files import CENTRE_USER, BrokerFiles, mqtt_password
from central.keyring import load_master_key, new_master_key
from central.service import CentralService
from kiosk import clock, signing, wire
from tests.central.mqtt.parts import batch, records, signed
from tests.conftest import free_port, wait_port
from tests.sync.conftest import MOSQUITTO, add_sales, cabinet_counts, wait_for

A, B = "QH-0001", "QH-0002"  # A is examples/cabinet.toml's id: the sync agent runs as A


# -- a CA, a broker with the provisioned files, the centre ----------------------------------------
def make_ca(folder: Path, name: str = "ca") -> tuple[Path, Path, Path]:
    """A CA and a certificate for 127.0.0.1 signed by it (openssl, EC keys: quick)."""
    folder.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    run("req", "-x509", *ec, "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
        "-subj", f"/CN=kiosk test {name}")  # fmt: skip
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (folder / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", f"{name}.crt", "-CAkey", f"{name}.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    return folder / f"{name}.crt", folder / "server.crt", folder / "server.key"


def central(*argv: str) -> tuple[int, str, str]:
    """``kiosk central ...`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = central_cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


@dataclass
class Provisioned:
    """A centre's database, master key, broker (TLS, both listeners) and cabinets' files."""

    folder: Path
    ca: Path
    db: Path
    master_key: Path
    files: BrokerFiles
    out: Path
    cabinet_port: int
    centre_port: int
    pid_file: Path
    proc: subprocess.Popen | None = None
    sections: dict[str, dict] = field(default_factory=dict)

    @property
    def cabinet_url(self) -> str:
        return f"mqtts://127.0.0.1:{self.cabinet_port}"

    @property
    def centre_url(self) -> str:
        return f"mqtts://127.0.0.1:{self.centre_port}"

    def cli(self, *argv: str) -> tuple[int, str, str]:
        common = ["--db", str(self.db), "--master-key", str(self.master_key)]
        broker = ["--broker-dir", str(self.files.folder)]
        if self.proc is not None:  # running: it reads its files again at once
            broker += ["--broker-pid-file", str(self.pid_file)]
        return central(*argv, *common, *broker)

    def add(self, cabinet: str) -> dict:
        """``kiosk central cabinet add``: its [central] section, as a dict."""
        code, out, err = self.cli(
            "cabinet", "add", cabinet, "--name", f"cabinet {cabinet}", "--location", "琼海",
            "--out", str(self.out), "--cabinet-mqtt", self.cabinet_url,
        )  # fmt: skip
        assert code == 0, err
        section = tomllib.loads(out)["central"]
        self.sections[cabinet] = section
        return section

    def password(self, cabinet: str) -> str:
        return (self.out / self.sections[cabinet]["mqtt_password_file"]).read_text().strip()

    def key(self, cabinet: str) -> bytes:
        return signing.load_key(self.out / self.sections[cabinet]["key_file"])

    def start_broker(self) -> Provisioned:
        conf = self.folder / "mosquitto.conf"
        # `user`: as root, mosquitto would drop to its own user, who cannot read tmp_path.
        conf.write_text(
            f"persistence false\nuser {getpass.getuser()}\n"
            + self.files.listeners(
                self.cabinet_port,
                self.centre_port,
                self.ca,
                self.folder / "server.crt",
                self.folder / "server.key",
                host="127.0.0.1",
            )
        )
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.pid_file.write_text(f"{self.proc.pid}\n")
        wait_port(self.cabinet_port)
        wait_port(self.centre_port)
        return self

    def stop_broker(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def provisioned(folder: Path, cabinets: tuple[str, ...] = (A, B)) -> Iterator[Provisioned]:
    """Cabinets added with ``kiosk central cabinet add``, and the broker running on the files."""
    if not Path(MOSQUITTO).exists() or shutil.which("openssl") is None:
        pytest.skip("mosquitto and openssl are needed")
    ca, _, _ = make_ca(folder)
    p = Provisioned(
        folder,
        ca,
        folder / "central.db",
        new_master_key(folder / "master.key"),
        BrokerFiles(folder / "broker"),
        folder / "out",
        free_port(),
        free_port(),
        folder / "mosquitto.pid",
    )
    for cab in cabinets:
        p.add(cab)
    try:
        yield p.start_broker()
    finally:
        p.stop_broker()


# -- a client logged in as anyone ---------------------------------------------------------------
class Peer:
    """A paho v5 client over TLS with a login; records what it sees. Reconnects quickly."""

    def __init__(self, p: Provisioned, user: str, password: str, port: int, client_id: str = ""):
        self.messages: list[tuple[str, bytes, dict[str, str]]] = []
        self.refusals: list[str] = []
        self.drops = 0
        self.connected = threading.Event()
        self._lock = threading.Lock()
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or user, protocol=mqtt.MQTTv5
        )
        c.tls_set(ca_certs=str(p.ca))
        c.username_pw_set(user, password)
        c.reconnect_delay_set(0.05, 0.2)  # type: ignore[arg-type]
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.connect_async("127.0.0.1", port, clean_start=True)
        c.loop_start()
        self.client = c

    def _on_connect(self, client, userdata, flags, reason, props) -> None:
        if reason.is_failure:
            self.refusals.append(str(reason))
        else:
            self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason, props) -> None:
        if self.connected.is_set():
            self.drops += 1
        self.connected.clear()

    def _on_message(self, client, userdata, msg) -> None:
        props = dict(getattr(msg.properties, "UserProperty", None) or [])
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), props))

    def subscribe(self, *topics: str) -> None:
        assert self.connected.wait(10), self.refusals
        done = threading.Event()
        self.client.on_subscribe = lambda *a: done.set()
        self.client.subscribe([(t, 1) for t in topics])
        assert done.wait(10)

    def publish(self, topic: str, payload: bytes, props: Properties | None = None) -> str:
        """Publish at QoS 1 and return the broker's answer (its PUBACK reason)."""
        answer: list[str] = []
        got = threading.Event()

        def on_publish(client, userdata, mid, reason, props) -> None:
            answer.append(str(reason))
            got.set()

        self.client.on_publish = on_publish
        self.client.publish(topic, payload, qos=1, properties=props)
        assert got.wait(10)
        return answer[0]

    def seen(self, topic: str) -> list[bytes]:
        with self._lock:
            return [m for t, m, _ in self.messages if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def centre(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Provisioned, CentralService]]:
    """The broker as provisioned, and the real service logged in on the centre's listener."""
    with provisioned(tmp_path_factory.mktemp("tls")) as p:
        service = CentralService(
            p.db, mqtt_url=p.centre_url, ca_file=str(p.ca), master_key=p.master_key
        ).start()
        try:
            assert service.wait_mqtt(), "the centre's login or subscriptions were refused"
            yield p, service
        finally:
            service.stop()


@pytest.fixture
def peers(centre) -> Iterator[Callable[..., Peer]]:
    p, _ = centre
    made: list[Peer] = []

    def make(cabinet: str | None, client_id: str = "", password: str | None = None) -> Peer:
        """A client logged in as ``cabinet`` (None: as the centre, on its listener)."""
        if cabinet is None:
            secret = mqtt_password(load_master_key(p.master_key), CENTRE_USER)
            peer = Peer(p, CENTRE_USER, secret, p.centre_port, f"kiosk-central-test-{len(made)}")
        else:
            secret = password if password is not None else p.password(cabinet)
            peer = Peer(p, f"kiosk-{cabinet}", secret, p.cabinet_port, client_id)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.close()


def up(cabinet: str, key: bytes) -> tuple[str, bytes, Properties]:
    bid, payload = batch(records(1, cabinet))
    return bid, payload, signed(key, payload)


def ack_of(peer: Peer, cabinet: str, batch_id: str) -> tuple[dict, dict[str, str]] | None:
    with peer._lock:
        acks = [(m, pr) for t, m, pr in peer.messages if t == wire.topic(cabinet, "ack")]
    for payload, props in acks:
        answer = json.loads(payload)
        if answer.get("batch") == batch_id:
            return answer, props
    return None


def deliver(peer: Peer, cabinet: str, key: bytes) -> tuple[bytes, dict[str, str]]:
    """Send a batch as a cabinet does: again every second until acked (an ingest worker
    reads a new cabinet's keys at most every 2 s). Returns the ack (payload, properties)."""
    bid, payload, props = up(cabinet, key)
    sent = [0.0]

    def acked() -> bool:
        if ack_of(peer, cabinet, bid) is not None:
            return True
        if time.monotonic() - sent[0] > 1.0:
            assert peer.publish(wire.topic(cabinet, "up"), payload, props) == "Success"
            sent[0] = time.monotonic()
        return False

    wait_for(acked, 10, f"{cabinet}'s batch acknowledged")
    answer, ack_props = ack_of(peer, cabinet, bid)  # type: ignore[misc]
    return json.dumps(answer, separators=(",", ":")).encode(), ack_props


def signed_by(key: bytes, payload: bytes, props: dict[str, str]) -> bool:
    ts, sig = props.get(signing.TIMESTAMP_PROPERTY), props.get(signing.SIGNATURE_PROPERTY)
    return signing.check_signed(key, ts, sig, payload) is None


def http_get(service: CentralService, cabinet: str, key: bytes) -> requests.Response:
    props = signing.signed_properties(key, b"", time.time())
    headers = {
        "X-Cabinet": cabinet,
        "X-Timestamp": props[signing.TIMESTAMP_PROPERTY],
        "X-Signature": props[signing.SIGNATURE_PROPERTY],
    }
    url = f"{service.http_url}/api/v1/cabinets/{cabinet}/commands"
    return requests.get(url, headers=headers, timeout=10)


# -- the tests ------------------------------------------------------------------------------------
def test_a_cabinet_cannot_publish_as_another_nor_forge_its_own_ack(centre, peers) -> None:
    p, _ = centre
    spy = peers(None)  # the centre's login: reads every up
    spy.subscribe(wire.topic("+", "up"))
    a = peers(A)
    assert a.connected.wait(10), a.refusals
    a.subscribe(wire.topic(A, "ack"))

    bid_b, forged, props = up(B, p.key(A))
    assert a.publish(wire.topic(B, "up"), forged, props) == "Not authorized"
    assert a.publish(wire.topic(A, "ack"), b'{"batch":"forged","stored":[],"rejected":[]}') == (
        "Not authorized"
    )
    # What A sends as itself goes through, and is answered: everything before it has arrived.
    bid_a, payload, props = up(A, p.key(A))
    assert a.publish(wire.topic(A, "up"), payload, props) == "Success"
    wait_for(lambda: ack_of(a, A, bid_a) is not None, 10, "A's own batch acknowledged")
    wait_for(lambda: payload in spy.seen(wire.topic(A, "up")), 10, "the spy saw A's batch")
    assert spy.seen(wire.topic(B, "up")) == []  # the centre never saw the forged batch
    assert [json.loads(m)["batch"] for m in a.seen(wire.topic(A, "ack"))] == [bid_a]
    assert bid_b not in {json.loads(m)["batch"] for m in spy.seen(wire.topic(B, "up"))}


def test_a_cabinet_cannot_read_another_cabinets_messages(centre, peers) -> None:
    _, service = centre
    a = peers(A)
    assert a.connected.wait(10), a.refusals
    # mosquitto 2.0 grants the subscription but delivers nothing the ACL does not let A read.
    a.subscribe(wire.topic(B, "ack"), wire.topic(B, "down/#"), wire.topic(A, "down/#"))
    service.push(B, "config", {"door_open_alarm_s": 90})
    service.store.add_command(B, "reboot", {}, 600)
    wait_for(lambda: not service.store.unpublished_commands(), 10, "B's command published")
    # One publisher, in order: once A has its own, B's two went out before it.
    mine = service.push(A, "config", {"door_open_alarm_s": 91})
    wanted = json.dumps(mine, ensure_ascii=False, separators=(",", ":")).encode()
    wait_for(lambda: wanted in a.seen(wire.topic(A, "down/config")), 10, "A's own config")
    assert [t for t, _, _ in a.messages if wire.cabinet_of(t) == B] == []


def test_a_cabinet_cannot_take_another_cabinets_client_id(centre, peers) -> None:
    p, _ = centre
    b = peers(B)
    assert b.connected.wait(10), b.refusals
    b.subscribe(wire.topic(B, "ack"))
    a = peers(A, client_id=f"kiosk-{B}")  # asks for B's id: the broker gives it A's login
    assert a.connected.wait(10), a.refusals
    bid, payload, props = up(B, p.key(B))
    assert b.publish(wire.topic(B, "up"), payload, props) == "Success"
    wait_for(lambda: ack_of(b, B, bid) is not None, 10, "B's batch acknowledged")
    assert b.drops == 0 and b.connected.is_set()  # B was never thrown off


def test_a_retired_cabinets_login_is_refused(centre, peers) -> None:
    p, service = centre
    p.add("QH-0003")  # the broker reads its files again (SIGHUP)
    key = p.key("QH-0003")
    c = peers("QH-0003")
    assert c.connected.wait(10), c.refusals
    refused_before = len(c.refusals)  # (tries before the broker had read its files again)
    assert http_get(service, "QH-0003", key).status_code == 200

    code, out, err = p.cli("cabinet", "retire", "QH-0003")
    assert code == 0 and "retired" in out, err
    wait_for(lambda: c.drops == 1, 10, "the broker closes the retired cabinet's connection")
    wait_for(lambda: len(c.refusals) > refused_before, 10, "its next login refused")
    assert not c.connected.is_set()
    assert c.refusals[refused_before] == "Not authorized"
    r = http_get(service, "QH-0003", key)  # refused like a stranger
    assert r.status_code == 404 and r.json()["error"] == "unknown cabinet"
    assert service.store.cabinet("QH-0003")["retired_at"] is not None  # the row is kept
    code, _, err = p.cli("cabinet", "add", "QH-0003", "--name", "x", "--location", "y",
                         "--out", str(p.folder / "again"))  # fmt: skip
    assert code == 2 and len(err.strip().splitlines()) == 1 and "retired" in err


def test_during_a_key_rotation_both_keys_are_accepted_and_answered_with_their_own(
    centre, peers
) -> None:
    p, service = centre
    cab = "QH-0004"
    p.add(cab)
    old = p.key(cab)
    d = peers(cab)
    assert d.connected.wait(10), d.refusals
    d.subscribe(wire.topic(cab, "ack"))

    code, out, err = p.cli("cabinet", "rotate-key", cab, "--out", str(p.out), "--grace-days", "1")
    assert code == 0 and "accepted until" in out, err
    new = p.key(cab)
    assert new != old
    assert d.connected.is_set() and d.drops == 0  # the login is unchanged: MQTT goes on
    for key in (old, new):
        ack_payload, ack_props = deliver(d, cab, key)
        assert signed_by(key, ack_payload, ack_props)  # answered with the key it was sent with
        r = http_get(service, cab, key)
        assert r.status_code == 200
        assert signing.check_signed(
            key, r.headers["X-Timestamp"], r.headers["X-Signature"], r.content
        ) is None  # fmt: skip
    # After the grace period only the new key is accepted.
    later = clock.now() + timedelta(days=1, seconds=1)
    assert service.store.verify_keys(cab, at=later) == (new,)
    assert service.store.verify_keys(cab) == (new, old)
    # Ending it at once (a key that leaked): the old key is refused from now on.
    code, _, err = p.cli("cabinet", "rotate-key", cab, "--out", str(p.out), "--grace-days", "0")
    assert code == 0, err
    assert http_get(service, cab, new).status_code == 401  # `new` is the previous key now
    assert http_get(service, cab, p.key(cab)).status_code == 200


def test_the_sync_agent_delivers_through_the_tls_broker_with_its_login(
    centre, tmp_path, keyfile, cabinet_db, sync_proc
) -> None:
    p, service = centre
    section = dict(p.sections[A])
    # The files `cabinet add` wrote, beside the cabinet's configuration (the section names
    # them relative to it); the test fixture's key file is the cabinet's key.
    shutil.copy(p.out / section["mqtt_password_file"], tmp_path / section["mqtt_password_file"])
    shutil.copy(p.ca, tmp_path / section["ca_file"])
    keyfile.write_bytes((p.out / section.pop("key_file")).read_bytes())
    before = service.store.stats().sales
    add_sales(cabinet_db, 20)
    sync_proc(**section)
    wait_for(lambda: cabinet_counts(cabinet_db).get("pending", 0) == 0, 30, "delivered")
    assert service.store.stats().sales == before + 20
