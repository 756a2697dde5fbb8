"""The MQTT path to the centre (paho-mqtt 2.x, MQTT v5, QoS 1), driven from the agent's one
thread.

The agent calls ``service()`` in its loop: it connects when due (exponential backoff with
jitter, not paho's own reconnect; clean start, as the cabinet relies on no broker state), runs
paho's network loop for a moment, and hands back what arrived as ``Inbound`` messages with
their MQTT v5 user properties (an ack's signature travels there). Presence: ``online`` retained
after connecting, ``offline`` as the Last Will (and published on a clean stop).

Login: ``[central] mqtt_username`` (``kiosk-{id}``) and the password in
``mqtt_password_file``. The broker takes the login as the client id
(``use_username_as_clientid``), which is the agent's own ``kiosk-{id}`` anyway.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from kiosk import wire
from sync.backoff import Backoff

log = logging.getLogger("kiosk.sync.mqtt")
DOWN_LEAVES = ("ack", "down/catalog", "down/config", "down/accounts", "down/cmd")


@dataclass(frozen=True)
class MqttTarget:
    host: str
    port: int
    tls: bool
    ca_file: str | None = None
    username: str = ""  # empty: no login
    password: str = field(default="", repr=False)


@dataclass(frozen=True)
class Inbound:
    """A message that arrived: its topic, payload, and MQTT v5 user properties in order."""

    topic: str
    payload: bytes
    user_properties: tuple[tuple[str, str], ...] = ()

    def user_property(self, name: str) -> str | None:
        """The value of ``name``; None when absent or given more than once (which is no
        signature anyone can rely on)."""
        values = [v for k, v in self.user_properties if k == name]
        return values[0] if len(values) == 1 else None


def parse_url(
    url: str, ca_file: str | None = None, username: str = "", password: str = ""
) -> MqttTarget:
    u = urlsplit(url)
    if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
        raise ValueError(f"{url!r} is not mqtt://host:port or mqtts://host:port")
    tls = u.scheme == "mqtts"
    port = u.port or (8883 if tls else 1883)
    return MqttTarget(u.hostname, port, tls, ca_file, username, password)


def read_password(path: str | Path) -> str:
    """The broker password in ``path`` (one line); ``ValueError`` naming the file otherwise."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ValueError(f"mqtt_password_file {path}: {why}") from None
    password = text.strip("\r\n")
    if not password or "\n" in password:
        raise ValueError(f"mqtt_password_file {path}: one line, the password")
    return password


def _status(state: str, version: str) -> str:
    return json.dumps({"state": state, "at": wire.now_iso(), "version": version})


class MqttLink:
    def __init__(
        self,
        target: MqttTarget,
        cabinet: str,
        backoff: Backoff,
        version: str = "",
        keepalive: int = 20,
    ):
        self.target = target
        self.cabinet = cabinet
        self.version = version
        self.backoff = backoff
        self.connected = False
        self.next_attempt = 0.0
        self._inbox: deque[Inbound] = deque()
        # MQTT v5: the centre signs its acks in user properties, which v3.1.1 does not have.
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"kiosk-{cabinet}", protocol=mqtt.MQTTv5
        )
        c.will_set(wire.topic(cabinet, "status"), _status("offline", version), qos=1, retain=True)
        if target.tls:
            c.tls_set(ca_certs=target.ca_file, cert_reqs=ssl.CERT_REQUIRED)
        if target.username:
            c.username_pw_set(target.username, target.password)
        c.max_inflight_messages_set(64)
        c.connect_timeout = 5.0
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        self.client = c
        self._keepalive = keepalive

    # -- paho callbacks (run inside service()) -----------------------------------------------
    def _on_connect(self, client, userdata, flags, reason, props) -> None:
        if reason.is_failure:
            log.warning("mqtt refused: %s", reason)
            return
        self.connected = True
        self.backoff.reset()
        client.subscribe([(wire.topic(self.cabinet, leaf), 1) for leaf in DOWN_LEAVES])
        client.publish(
            wire.topic(self.cabinet, "status"), _status("online", self.version), 1, retain=True
        )

    def _on_disconnect(self, client, userdata, flags, reason, props) -> None:
        self.connected = False

    def _on_message(self, client, userdata, msg) -> None:
        props = getattr(msg.properties, "UserProperty", None) or []
        self._inbox.append(Inbound(msg.topic, msg.payload, tuple((k, v) for k, v in props)))

    # -- driven by the agent -------------------------------------------------------------------
    def service(self, now: float, timeout: float) -> list[Inbound]:
        """Connect when due, run the network loop once, return what arrived."""
        sock = self.client.socket()
        if sock is None and now >= self.next_attempt:
            try:
                # Clean start: nothing relies on the broker's session; unacked is resent.
                self.client.connect(
                    self.target.host, self.target.port, self._keepalive, clean_start=True
                )
            except (OSError, ssl.SSLError, ValueError) as e:
                self._lost(now, f"connect: {e}")
                return self._drain()
            sock = self.client.socket()
        if sock is None:
            return self._drain()
        rc = self.client.loop(timeout)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            self._lost(now, mqtt.error_string(rc))
        return self._drain()

    def _lost(self, now: float, why: str) -> None:
        if self.connected:
            log.info("mqtt connection lost: %s", why)
        self.connected = False  # paho's loop() has closed the socket already
        self.next_attempt = now + self.backoff.next()

    def _drain(self) -> list[Inbound]:
        out = list(self._inbox)
        self._inbox.clear()
        return out

    def publish(
        self,
        leaf: str,
        payload: bytes | str,
        retain: bool = False,
        user_properties: Mapping[str, str] | None = None,
    ) -> bool:
        if not self.connected:
            return False
        props = None
        if user_properties:
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = list(user_properties.items())
        info = self.client.publish(
            wire.topic(self.cabinet, leaf), payload, qos=1, retain=retain, properties=props
        )
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def close(self) -> None:
        if self.connected:
            info = self.client.publish(
                wire.topic(self.cabinet, "status"),
                _status("offline", self.version),
                qos=1,
                retain=True,
            )
            for _ in range(20):
                if info.is_published():
                    break
                self.client.loop(0.05)
        try:
            self.client.disconnect()
            self.client.loop(0.05)
        except Exception:
            pass
        self.connected = False
