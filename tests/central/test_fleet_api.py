"""The fleet API (central.fleet_api) under a real uvicorn, on both database backends (what is
HTTP's alone on SQLite): every role's allowed and forbidden actions, an operator's scope, the
lockout over HTTP, the audit log, and what the API shows from records the cabinets send
through their own signed API."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import uvicorn

from central.auth import PERMISSIONS, Auth
from central.fleet_api import API, ENDPOINTS, FleetSettings, fleet_routes
from central.http_app import HttpSettings, create_app
from central.keyring import Keyring
from central.metrics import Metrics
from central.payments import UnconfiguredProvider
from central.phone import NoPhoneLogin
from central.store import Store
from kiosk import signing, wire
from tests.central.test_auth import FAST, PW, FakeClock
from tests.central.test_http import EXAMPLE_CATALOG, batch_body, signed_headers
from tests.sync.conftest import sale_body, wait_for

CABINETS = {"QH-0001": "north", "QH-0002": "south", "QH-0003": "north"}
ROLE_USERS = {"admin": "ada", "viewer": "vic", "operator": "ola"}
NOW = "2026-11-28T09:00:00.000Z"  # the fake clock's start (tests.central.test_auth.START)
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@dataclass
class Fleet:
    url: str
    store: Store
    auth: Auth
    clock: FakeClock
    keys: dict[str, bytes]
    tokens: dict[str, str]
    published: list[tuple[str, str, dict]] = field(default_factory=list)
    seqs: dict[str, int] = field(default_factory=dict)

    def _headers(self, role: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}

    def get(self, path: str, role: str | None = "admin", **kw: Any) -> requests.Response:
        return requests.get(f"{self.url}{API}{path}", headers=self._headers(role), timeout=10, **kw)

    def post(
        self, path: str, body: Any = None, role: str | None = "admin", **kw: Any
    ) -> requests.Response:
        return requests.post(
            f"{self.url}{API}{path}",
            json={} if body is None else body,
            headers=self._headers(role),
            timeout=10,
            **kw,
        )

    def upload(self, cabinet: str, *records: tuple[str, dict[str, Any]] | tuple) -> list[str]:
        """Records sent by ``cabinet`` through the cabinets' signed API: (type, body[, at])."""
        recs = []
        for r in records:
            seq = self.seqs[cabinet] = self.seqs.get(cabinet, 0) + 1
            at = r[2] if len(r) > 2 else wire.now_iso()
            recs.append({"id": wire.uuid7(), "seq": seq, "type": r[0], "at": at, "body": r[1]})
        bid, body = batch_body(recs)
        headers = {**signed_headers(body, cabinet, self.keys[cabinet]), "Idempotency-Key": bid}
        url = f"{self.url}/api/v1/cabinets/{cabinet}/batches"
        got = requests.post(url, data=body, headers=headers, timeout=10)
        assert got.status_code == 200 and not got.json()["rejected"], got.text
        return [r["id"] for r in recs]

    def audit(self, **query: str) -> list[dict[str, Any]]:
        return self.auth.audit_entries(**query, limit=1000)  # type: ignore[arg-type]


@pytest.fixture
def fleet(db_url: str) -> Iterator[Fleet]:
    store = Store(db_url, keyring=Keyring(os.urandom(32)))
    keys = {cab: os.urandom(32) for cab in CABINETS}
    for cab, route in CABINETS.items():
        store.provision_cabinet(cab, keys[cab], route=route)
    clock = FakeClock()
    auth = Auth(store, clock=clock, hasher=FAST)
    auth.add_user("ada", "admin", PW)
    auth.add_user("vic", "viewer", PW)
    auth.add_user("ola", "operator", PW, routes=["north"])
    from tests.central.test_auth import ADMIN

    tokens = {
        "admin": auth.add_token("admin", "admin", by=ADMIN),
        "viewer": auth.add_token("viewer", "viewer", by=ADMIN),
        "operator": auth.add_token("operator", "operator", routes=["north"], by=ADMIN),
    }
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    f = Fleet(f"http://127.0.0.1:{port}", store, auth, clock, keys, tokens)
    app = create_app(
        store,
        HttpSettings(),
        simulate=False,
        payments=UnconfiguredProvider(),
        phone=NoPhoneLogin(),
        faults=None,
        metrics=Metrics(),
        extra_routes=fleet_routes(
            store,
            auth,
            lambda cab, kind, message: f.published.append((cab, kind, message)),
            FleetSettings(timezone="UTC"),
        ),
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 10, "uvicorn started")
        yield f
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        store.close()


def alarm_body(kind: str = "door_forced", severity: str = "alarm", device: str = "D1") -> dict:
    return {"id": wire.uuid7(), "kind": kind, "severity": severity, "device": device,
            "detail": {"door": device}}  # fmt: skip


def a_sale(i: int, **extra: Any) -> dict[str, Any]:
    return {**sale_body(i), "id": f"sale-{i}", **extra}


# -- every role, every route ----------------------------------------------------------------------
@sqlite_only  # the table is the same on either backend; what it writes runs on both below
def test_each_role_is_allowed_exactly_its_actions_and_refusals_are_audited(fleet: Fleet) -> None:
    [sale] = fleet.upload("QH-0001", ("sale", a_sale(1)))
    [alarm] = fleet.upload("QH-0001", ("event", alarm_body()))
    cmd = fleet.post("/cabinets/QH-0001/open-door", {"door": "D1", "reason": "check"}).json()
    params = {"cabinet": "QH-0001", "cmd_id": cmd["cmd_id"], "alarm": alarm, "sale": sale,
              "route": "north", "kind": "catalog", "name": "nobody", "card": "nobody"}  # fmt: skip
    forbidden = 0
    for ep in ENDPOINTS:
        path = ep.path.format(**params)
        for role in ("viewer", "operator", "admin"):
            # an empty body: a change that passes the check is then refused as incomplete
            r = fleet.get(path, role) if ep.method == "GET" else fleet.post(path, {}, role)
            if role in PERMISSIONS[ep.action]:
                assert r.status_code not in (401, 403, 500), (ep, role, r.text)
            else:
                forbidden += 1
                assert r.status_code == 403, (ep, role, r.text)
                assert r.json()["error"] == "forbidden"
    refusals = [e for e in fleet.audit() if e["outcome"] == "denied"]
    assert len(refusals) == forbidden
    assert {(e["actor"], e["address"], e["at"]) for e in refusals} == {
        ("token:viewer", "127.0.0.1", NOW),
        ("token:operator", "127.0.0.1", NOW),
    }


def test_a_token_used_for_another_roles_action_is_refused_and_audited(fleet: Fleet) -> None:
    [sale] = fleet.upload("QH-0001", ("sale", a_sale(1)))
    r = fleet.post(f"/sales/{sale}/refund", {"amount_fen": 100, "reason": "x"}, "viewer")
    assert r.status_code == 403
    assert r.json() == {"error": "forbidden", "detail": "viewer may not sale.refund"}
    r = fleet.post("/catalog", {"catalog": EXAMPLE_CATALOG}, "operator")
    assert r.status_code == 403
    last, first = fleet.audit()[:2]
    assert {k: first[k] for k in ("actor", "role", "action", "target", "outcome", "address")} == {
        "actor": "token:viewer",
        "role": "viewer",
        "action": "sale.refund",
        "target": sale,
        "outcome": "denied",
        "address": "127.0.0.1",
    }
    assert (last["actor"], last["action"], last["at"]) == ("token:operator", "catalog.publish", NOW)
    assert fleet.get("/cabinets/QH-0001/commands").json() == []  # nothing was queued
    assert fleet.published == []


def test_an_operator_sees_and_acts_on_their_own_cabinets_only(fleet: Fleet) -> None:
    fleet.upload("QH-0002", ("event", alarm_body()))
    fleet.upload("QH-0001", ("event", alarm_body()))
    assert [c["id"] for c in fleet.get("/cabinets", "operator").json()] == ["QH-0001", "QH-0003"]
    assert [c["id"] for c in fleet.get("/cabinets", "viewer").json()] == list(CABINETS)
    assert fleet.get("/cabinets/QH-0002", "operator").status_code == 403
    assert [a["cabinet"] for a in fleet.get("/alarms", "operator").json()] == ["QH-0001"]
    assert fleet.get("/alarms?cabinet=QH-0002", "operator").status_code == 404
    door = {"door": "D1", "reason": "jammed"}
    assert fleet.post("/cabinets/QH-0002/open-door", door, "operator").status_code == 403
    r = fleet.post("/cabinets/QH-0001/open-door", door, "operator")
    assert r.status_code == 202, r.text
    assert (r.json()["cmd"], r.json()["issued_by"]) == ("open_door", "token:operator")
    [alarm2] = [a["id"] for a in fleet.get("/alarms").json() if a["cabinet"] == "QH-0002"]
    r = fleet.post(f"/alarms/{alarm2}/ack", {"note": "not mine"}, "operator")
    assert r.status_code == 403
    scope = [e for e in fleet.audit() if e["detail"].get("why") == "scope"]
    assert [(e["action"], e["target"]) for e in scope] == [
        ("alarm.ack", alarm2),
        ("door.open", "QH-0002"),
        ("cabinets.read", "QH-0002"),
    ]


# -- logging in -----------------------------------------------------------------------------------
@sqlite_only  # HTTP's part; central.auth's runs on both (test_auth.py)
def test_five_wrong_passwords_lock_a_user_over_http_for_15_minutes(fleet: Fleet) -> None:
    login = f"{fleet.url}{API}/login"
    for i in range(5):
        r = requests.post(login, json={"name": "ola", "password": f"no{i}"}, timeout=10)
        assert r.status_code == 401
    assert r.json() == {"error": "account locked", "detail": {"until": "2026-11-28T09:15:00.000Z"}}
    r = requests.post(login, json={"name": "ola", "password": PW}, timeout=10)
    assert (r.status_code, r.json()["error"]) == (401, "account locked")
    fleet.clock.advance(15 * 60)
    s = requests.Session()
    r = s.post(login, json={"name": "ola", "password": PW}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["routes"] == ["north"]
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert s.get(f"{fleet.url}{API}/me", timeout=10).json()["name"] == "ola"
    assert s.post(f"{fleet.url}{API}/logout", timeout=10).status_code == 204
    s.cookies.set("kiosk_session", r.cookies["kiosk_session"])  # the old cookie, kept
    assert s.get(f"{fleet.url}{API}/me", timeout=10).status_code == 401
    logins = [(e["outcome"], e["detail"].get("why"), e["address"])
              for e in reversed(fleet.audit(action="login"))]  # fmt: skip
    assert logins == [("denied", "wrong password", "127.0.0.1")] * 5 + [
        ("denied", "locked", "127.0.0.1"),
        ("ok", None, "127.0.0.1"),
    ]


@sqlite_only  # HTTP's part; central.auth's runs on both (test_auth.py)
def test_a_cookie_session_refuses_requests_from_another_site(fleet: Fleet) -> None:
    s = requests.Session()
    s.post(f"{fleet.url}{API}/login", json={"name": "ola", "password": PW}, timeout=10)
    door = {"door": "D1", "reason": "check"}
    url = f"{fleet.url}{API}/cabinets/QH-0001/open-door"
    r = s.post(url, json=door, headers={"Origin": "https://evil.example"}, timeout=10)
    assert (r.status_code, r.json()["error"]) == (403, "cross-site request")
    r = s.post(url, json=door, headers={"Origin": fleet.url}, timeout=10)
    assert r.status_code == 202
    assert r.json()["issued_by"] == "ola"


@sqlite_only  # HTTP's part; central.auth's runs on both (test_auth.py)
def test_without_credentials_401_and_bad_bodies_are_clear(fleet: Fleet) -> None:
    r = fleet.get("/cabinets", None)
    assert r.status_code == 401
    assert r.json() == {"error": "unauthenticated", "detail": "no credentials"}
    r = requests.get(f"{fleet.url}{API}/cabinets", headers={"Authorization": "Bearer kt_x"})
    assert r.json()["detail"] == "unknown or revoked token"
    [a, b] = fleet.audit()[:2]
    assert (a["actor"], a["outcome"], a["address"], a["detail"]["why"]) == (
        "-", "denied", "127.0.0.1", "unknown or revoked token"
    )  # fmt: skip
    assert b["detail"] == {"why": "no credentials", "path": f"{API}/cabinets"}
    h = {"Authorization": f"Bearer {fleet.tokens['admin']}"}
    url = f"{fleet.url}{API}/config"
    r = requests.post(url, data="config=1", headers={**h, "Content-Type": "text/plain"})
    assert r.status_code == 415
    r = requests.post(url, data=b'{"config": {}, "config": {}}', headers={**h,
                      "Content-Type": "application/json"})  # fmt: skip
    assert (r.status_code, r.json()["error"]) == (400, "bad JSON")
    assert fleet.get("/no/such/thing").status_code == 404
    assert fleet.published == []


# -- users and tokens over the API ----------------------------------------------------------------
def test_an_admin_manages_users_and_tokens_and_each_change_is_audited(fleet: Fleet) -> None:
    new = {"name": "uma", "role": "operator", "password": PW, "cabinets": ["QH-0002"]}
    r = fleet.post("/users", new)
    assert r.status_code == 201
    assert r.json() == {"name": "uma", "role": "operator", "cabinets": ["QH-0002"], "routes": []}
    assert fleet.post("/users", new).status_code == 409
    login = f"{fleet.url}{API}/login"
    assert requests.post(login, json={"name": "uma", "password": PW}).status_code == 200
    assert fleet.post("/users/uma/lock").status_code == 200
    assert requests.post(login, json={"name": "uma", "password": PW}).status_code == 401
    assert fleet.post("/users/uma/unlock").status_code == 200
    r = fleet.post("/tokens", {"name": "script", "role": "viewer", "routes": ["south"]})
    assert r.status_code == 201
    token = r.json()["token"]
    assert token not in json.dumps(fleet.get("/tokens").json())  # shown once, only then
    h = {"Authorization": f"Bearer {token}"}
    me = requests.get(f"{fleet.url}{API}/me", headers=h).json()
    assert me == {"name": "token:script", "role": "viewer", "cabinets": [], "routes": ["south"]}
    assert fleet.post("/tokens/script/revoke").status_code == 200
    assert requests.get(f"{fleet.url}{API}/me", headers=h).status_code == 401
    done = [(e["action"], e["target"], e["outcome"]) for e in reversed(fleet.audit())
            if e["actor"] == "token:admin"]  # fmt: skip
    assert done == [  # named as the command line names them (central.auth_cli)
        ("user.add", "uma", "ok"),
        ("user.add", "uma", "refused"),
        ("user.lock", "uma", "ok"),
        ("user.unlock", "uma", "ok"),
        ("token.add", "script", "ok"),
        ("token.revoke", "script", "ok"),
    ]
    audit = fleet.get("/audit?actor=token:admin&limit=2").json()
    assert [e["target"] for e in audit] == ["script", "script"]
    assert audit[0]["address"] == "127.0.0.1" and audit[0]["at"] == NOW


# -- refunds and commands -------------------------------------------------------------------------
def test_a_refund_is_a_signed_command_whose_result_shows_once_the_cabinet_sends_it(
    fleet: Fleet,
) -> None:
    [sale] = fleet.upload("QH-0001", ("sale", a_sale(7)))
    r = fleet.post(f"/sales/{sale}/refund", {"amount_fen": 99999, "reason": "x"}, "operator")
    assert (r.status_code, r.json()["error"]) == (400, "refund over the sale")
    r = fleet.post(f"/sales/{sale}/refund", {"items": [{"sku": "x", "qty": 0}], "reason": "x"},
                   "operator")  # fmt: skip
    assert (r.status_code, r.json()["error"]) == (400, "bad command")
    r = fleet.post(f"/sales/{sale}/refund", {"amount_fen": 1000, "reason": "dented"}, "operator")
    assert r.status_code == 202, r.text
    cmd = r.json()
    assert cmd["state"] == "queued" and cmd["result"] is None
    assert cmd["args"] == {"sale": "sale-7", "amount_fen": 1000, "reason": "dented"}
    # What the cabinet fetches is signed with its own key.
    got = requests.get(
        f"{fleet.url}/api/v1/cabinets/QH-0001/commands",
        headers=signed_headers(b"", "QH-0001", fleet.keys["QH-0001"]),
        timeout=10,
    ).json()
    [message] = [m for m in got if m["cmd_id"] == cmd["cmd_id"]]
    assert signing.verify_message(fleet.keys["QH-0001"], message)
    assert not signing.verify_message(fleet.keys["QH-0003"], message)
    fleet.upload(
        "QH-0001",
        ("adjustment", {"id": "adj-1", "sale": "sale-7", "amount_fen": 1000, "items": [],
                        "reason": "dented", "actor": f"central:{cmd['cmd_id']}"}),
        ("cmd_result", {"cmd_id": cmd["cmd_id"], "ok": True, "detail": "adjustment adj-1"}),
    )  # fmt: skip
    one = fleet.get(f"/commands/{cmd['cmd_id']}", "viewer").json()
    assert (one["state"], one["result"]["ok"], one["result"]["detail"]) == (
        "done", True, "adjustment adj-1"
    )  # fmt: skip
    assert one["issued_by"] == "token:operator"
    refunds = fleet.get(f"/sales/{sale}").json()["refunds"]
    assert [(x["amount_fen"], x["reason"]) for x in refunds] == [(1000, "dented")]
    [line] = [e for e in fleet.audit(action="sale.refund") if e["outcome"] == "ok"]
    assert line["target"] == sale and line["detail"]["cmd_id"] == cmd["cmd_id"]
    assert line["detail"]["cabinet"] == "QH-0001" and line["address"] == "127.0.0.1"


def test_commands_an_admin_sends_are_checked_against_the_contract(fleet: Fleet) -> None:
    r = fleet.post("/cabinets/QH-0002/commands", {"cmd": "reboot", "args": {}, "ttl_s": 60})
    assert r.status_code == 202 and r.json()["cmd"] == "reboot"
    r = fleet.post("/cabinets/QH-0002/commands", {"cmd": "self_destruct", "args": {}})
    assert (r.status_code, r.json()["detail"]) == (400, "unknown command 'self_destruct'")
    r = fleet.post("/cabinets/QH-0002/block-card", {"account": "not hex"}, "operator")
    assert r.status_code == 403  # south is not the operator's
    r = fleet.post("/cabinets/QH-0001/block-card", {"account": "a" * 32}, "operator")
    assert r.status_code == 202 and r.json()["args"] == {"account": "a" * 32}
    states = [c["state"] for c in fleet.get("/cabinets/QH-0002/commands").json()]
    assert states == ["queued"]


# -- publishing -----------------------------------------------------------------------------------
def test_catalogue_prices_and_config_are_published_and_who_applied_which_version(
    fleet: Fleet,
) -> None:
    r = fleet.post("/catalog", {"catalog": EXAMPLE_CATALOG, "route": "north"})
    assert r.json() == {"versions": {"QH-0001": 1, "QH-0003": 1}}
    assert [(c, k, m["version"]) for c, k, m in fleet.published] == [
        ("QH-0001", "catalog", 1),
        ("QH-0003", "catalog", 1),
    ]
    for cab, _, m in fleet.published:
        assert signing.verify_message(fleet.keys[cab], m)
    r = fleet.post("/catalog", {"catalog": EXAMPLE_CATALOG, "cabinets": ["QH-0001"]})
    assert (r.status_code, r.json()["error"]) == (409, "catalogue not newer")
    bad = {**EXAMPLE_CATALOG, "version": 5, "products": []}
    assert fleet.post("/catalog", {"catalog": bad}).status_code == 400
    fleet.upload("QH-0001", ("applied", {"kind": "catalog", "version": 1}, "2026-11-28T09:05:00Z"))
    r = fleet.post("/prices", {"prices": {"zr-rice-5kg": 4800}, "cabinets": ["QH-0001"]})
    assert r.json() == {"versions": {"QH-0001": 2}}
    cab, kind, m = fleet.published[-1]
    rice = [p for p in m["catalog"]["products"] if p["sku"] == "zr-rice-5kg"]
    assert (cab, kind, m["version"], rice[0]["price_fen"]) == ("QH-0001", "catalog", 2, 4800)
    assert fleet.post("/prices", {"prices": {"nope": 1}}).status_code == 400
    assert fleet.post("/prices", {"prices": {"zr-rice-5kg": 1}, "route": "south"}).json() == {
        "error": "no catalogue yet",
        "detail": "QH-0002: publish a catalogue first",
    }
    r = fleet.post("/config", {"config": {"telemetry_interval_s": 30}, "cabinets": ["QH-0002"]})
    assert r.json() == {"versions": {"QH-0002": 1}}
    assert fleet.post("/config", {"config": {"nope": 1}}).status_code == 400
    assert len(fleet.published) == 4

    got = {v["cabinet"]: v for v in fleet.get("/versions/catalog", "viewer").json()}
    assert got["QH-0001"]["in_force"] == {"version": 1, "at": "2026-11-28T09:05:00Z"}
    assert [(p["version"], p["published_by"], p["applied_at"])
            for p in got["QH-0001"]["published"]] == [
        (1, "token:admin", "2026-11-28T09:05:00Z"),
        (2, "token:admin", None),
    ]  # fmt: skip
    assert got["QH-0003"]["in_force"] is None and len(got["QH-0003"]["published"]) == 1
    assert got["QH-0002"]["published"] == []
    # the cabinet polling over HTTP gets the newest, signed
    r = requests.get(
        f"{fleet.url}/api/v1/cabinets/QH-0001/catalog?after=1",
        headers=signed_headers(b"", "QH-0001", fleet.keys["QH-0001"]),
        timeout=10,
    )
    assert r.json()["version"] == 2
    ok = [(e["action"], e["detail"].get("versions")) for e in reversed(fleet.audit())
          if e["outcome"] == "ok"]  # fmt: skip
    assert ok == [
        ("catalog.publish", {"QH-0001": 1, "QH-0003": 1}),
        ("prices.publish", {"QH-0001": 2}),
        ("config.push", {"QH-0002": 1}),
    ]


# -- alarms, stock, sales, health -----------------------------------------------------------------
def test_an_alarm_is_open_until_acknowledged_with_a_note(fleet: Fleet) -> None:
    [alarm, _, _] = fleet.upload(
        "QH-0001",
        ("event", alarm_body()),
        ("event", alarm_body("low_stock", "warning", "S1/zr-rice-5kg")),
        ("event", alarm_body("clock skew", "info", "")),
    )
    [only] = fleet.get("/alarms", "viewer").json()
    assert (only["id"], only["kind"], only["detail"], only["acked_at"]) == (
        alarm, "door_forced", {"door": "D1"}, None
    )  # fmt: skip
    assert fleet.get("/cabinets/QH-0001").json()["open_alarms"] == 1
    assert fleet.post(f"/alarms/{alarm}/ack", {}, "operator").json()["error"] == (
        "a note is required"
    )
    assert fleet.post(f"/alarms/{alarm}/ack", {"note": "ok"}, "viewer").status_code == 403
    r = fleet.post(f"/alarms/{alarm}/ack", {"note": "door re-seated"}, "operator")
    assert r.status_code == 200
    assert (r.json()["acked_by"], r.json()["note"], r.json()["acked_at"]) == (
        "token:operator", "door re-seated", NOW
    )  # fmt: skip
    again = fleet.post(f"/alarms/{alarm}/ack", {"note": "again"}, "operator")
    assert (again.status_code, again.json()["error"]) == (409, "already acknowledged")
    assert fleet.post("/alarms/nope/ack", {"note": "x"}).status_code == 404
    assert fleet.get("/alarms").json() == []
    assert [a["id"] for a in fleet.get("/alarms?state=acked").json()] == [alarm]
    assert fleet.get("/cabinets/QH-0001").json()["open_alarms"] == 0
    [line] = [e for e in fleet.audit(action="alarm.ack") if e["outcome"] == "ok"]
    assert (line["target"], line["detail"]["note"], line["detail"]["cabinet"]) == (
        alarm, "door re-seated", "QH-0001"
    )  # fmt: skip


def test_the_restock_list_of_a_route_names_low_and_expiring_lanes(fleet: Fleet) -> None:
    fleet.post("/catalog", {"catalog": EXAMPLE_CATALOG, "cabinets": ["QH-0001"]})
    restock = {"session": "r1", "reason": "restock", "lanes": [
        {"shelf": "S1", "sku": "zr-rice-5kg", "count": 6, "expires_on": "2027-06-01"},
        {"shelf": "S2", "sku": "hs-radish-400g", "count": 4, "expires_on": None},  # 180 days
        {"shelf": "S3", "sku": "hs-fish-150g", "count": 5, "expires_on": "2026-11-20"},
        {"shelf": "S4", "sku": "hs-tea-100g", "count": 8, "expires_on": "2027-01-01"},
        {"shelf": "S5", "sku": "zr-chili-sauce", "count": 7},
    ]}  # fmt: skip
    sold = {"session": "s1", "reason": "sale", "lanes": [
        {"shelf": "S1", "sku": "zr-rice-5kg", "count": 1}]}  # fmt: skip
    # The sale's inventory (seq 3) arrives before the restock (seq 2): the newer count wins.
    fleet.seqs["QH-0001"] = 2
    fleet.upload("QH-0001", ("inventory", sold, "2026-11-27T10:00:00Z"))
    fleet.seqs["QH-0001"] = 0
    fleet.upload(
        "QH-0001",
        ("event", alarm_body("low_stock", "warning", "S5/zr-chili-sauce"), "2026-05-31T08:00:00Z"),
        ("inventory", restock, "2026-06-01T08:00:00Z"),
    )
    fleet.seqs["QH-0001"] = 3
    fleet.upload(
        "QH-0001",
        ("event", alarm_body("low_stock", "warning", "S4/hs-tea-100g"), "2026-11-27T11:00:00Z"),
    )
    fleet.upload("QH-0003", ("inventory", {"reason": "restock", "lanes": [
        {"shelf": "S1", "sku": "zr-rice-5kg", "count": 9}]}))  # fmt: skip
    fleet.upload("QH-0002", ("inventory", {"reason": "sale", "lanes": [
        {"shelf": "S1", "sku": "zr-rice-5kg", "count": 0}]}))  # fmt: skip

    got = fleet.get("/routes/north/restock", "operator").json()
    assert (got["route"], got["today"]) == ("north", "2026-11-28")
    [cab] = got["cabinets"]
    assert cab["cabinet"] == "QH-0001"
    lanes = {(x["shelf"], x["sku"]): (x["count"], x["low"], x["expiry"], x["expires_on"],
                                      x["estimated"]) for x in cab["lanes"]}  # fmt: skip
    assert lanes == {
        ("S1", "zr-rice-5kg"): (1, True, None, "2027-06-01", False),
        ("S2", "hs-radish-400g"): (4, False, "expiring", "2026-11-28", True),
        ("S3", "hs-fish-150g"): (5, False, "expired", "2026-11-20", False),
        ("S4", "hs-tea-100g"): (8, True, None, "2027-01-01", False),
    }
    assert got["totals"]["zr-rice-5kg"] == 1
    stock = fleet.get("/cabinets/QH-0001/stock", "viewer").json()["lanes"]
    assert [(x["shelf"], x["count"]) for x in stock] == [
        ("S1", 1), ("S2", 4), ("S3", 5), ("S4", 8), ("S5", 7)
    ]  # fmt: skip
    assert fleet.get("/routes/south/restock", "operator").json()["cabinets"] == []
    assert fleet.get("/routes/south/restock").json()["cabinets"][0]["cabinet"] == "QH-0002"
    assert fleet.get("/routes/nowhere/restock").status_code == 404


def test_sales_and_the_review_queue(fleet: Fleet) -> None:
    sure, unsure, flagged = fleet.upload(
        "QH-0001",
        ("sale", a_sale(1, confidence=0.998)),
        ("sale", a_sale(2, confidence=0.52)),
        ("sale", a_sale(3, confidence=0.93, review=True)),
    )
    fleet.upload("QH-0002", ("sale", a_sale(4, confidence=0.1)))
    queue = fleet.get("/sales/review", "operator").json()
    assert sorted(s["id"] for s in queue) == sorted([unsure, flagged])
    assert len(fleet.get("/sales/review", "viewer").json()) == 3
    r = fleet.post(f"/sales/{unsure}/review", {"note": "checked on camera"}, "operator")
    assert r.status_code == 200
    assert r.json()["review"] == {"by": "token:operator", "at": NOW, "note": "checked on camera"}
    assert fleet.post(f"/sales/{unsure}/review", {"note": "x"}, "operator").status_code == 409
    assert [s["id"] for s in fleet.get("/sales/review", "operator").json()] == [flagged]
    sales = fleet.get("/sales?cabinet=QH-0001&limit=10", "viewer").json()
    assert sorted(s["id"] for s in sales) == sorted([sure, unsure, flagged])
    one = fleet.get(f"/sales/{sure}").json()
    assert (one["total_fen"], one["confidence"], one["to_review"]) == (4500, 0.998, False)
    assert [(x["sku"], x["qty"]) for x in one["lines"]] == [("zr-rice-5kg", 1)]
    assert fleet.get("/sales?since=yesterday").status_code == 400


def test_a_cabinet_shows_its_health_versions_and_contact(fleet: Fleet) -> None:
    tele = {"uptime_s": 100, "backlog": 40, "dead": 0, "oldest_undelivered_s": 12,
            "disk_free_mb": 900.5, "devices": {"scales": "ok"}, "mqtt": True,
            "name": "Jiaji market", "location": "Qionghai"}  # fmt: skip
    fleet.upload(
        "QH-0001",
        ("telemetry", {**tele, "backlog": 900}),
        ("telemetry", {**tele, "devices": {"scales": "fault"}}),
        ("applied", {"kind": "config", "version": 3}),
    )
    c = fleet.get("/cabinets/QH-0001", "viewer").json()
    assert (c["name"], c["route"], c["online"]) == ("Jiaji market", "north", False)
    assert c["last_contact"] is not None
    h = c["health"]
    assert (h["backlog"], h["devices"], h["disk_free_mb"]) == (40, {"scales": "fault"}, 900.5)
    assert c["applied"]["config"]["version"] == 3
    assert fleet.get("/cabinets/QH-0002").json()["health"] is None
    assert fleet.get("/cabinets/QH-0404").status_code == 404


# -- staff cards ----------------------------------------------------------------------------------
def test_staff_cards_are_blocked_per_cabinet_or_for_the_whole_fleet(fleet: Fleet, tmp_path) -> None:
    from central import staff

    uid = "04A1B2C3D4"
    path = tmp_path / "cards.csv"
    path.write_text(f"card,name,offline_limit_fen,status\n{uid},Li Wei,5000,active\n")
    staff.import_csv(fleet.store, fleet.store.keyring, path)
    [card] = fleet.get("/staff", "operator").json()
    assert (card["name"], card["status"]) == ("Li Wei", "active")
    assert uid not in json.dumps(card)
    assert fleet.get("/staff", "viewer").status_code == 403

    r = fleet.post("/cabinets/QH-0001/block-card", {"card": card["id"]}, "operator")
    assert r.status_code == 202, r.text
    account = signing.card_account(fleet.keys["QH-0001"], uid)
    assert r.json()["args"] == {"account": account}
    assert (
        fleet.post("/cabinets/QH-0001/block-card", {"card": "nope"}, "operator").json()["error"]
        == "unknown card"
    )
    assert fleet.post(f"/staff/{card['id']}/block", {}, "operator").status_code == 403

    r = fleet.post(f"/staff/{card['id']}/block")
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["status"], got["told"]) == ("blocked", sorted(CABINETS))
    assert got["accounts"] == dict.fromkeys(sorted(CABINETS), 1)
    assert fleet.get("/staff").json()[0]["status"] == "blocked"
    cmds = fleet.get("/cabinets/QH-0002/commands").json()
    assert [(c["cmd"], c["args"]) for c in cmds] == [
        ("block_card", {"account": signing.card_account(fleet.keys["QH-0002"], uid)})
    ]
    [v] = [v for v in fleet.get("/versions/accounts").json() if v["cabinet"] == "QH-0003"]
    assert v["published"][0]["published_by"] == "token:admin"
    [line] = [e for e in fleet.audit(action="staff.block") if e["outcome"] == "ok"]
    assert line["target"] == card["id"] and line["detail"]["status"] == "blocked"
