"""What the centre sends down on MQTT: catalogues, configuration, accounts and commands.

- ``push`` keeps a new catalogue, configuration or accounts list (``store.put_downlink`` signs
  it with the cabinet's key and gives it the next version) and publishes it retained on
  ``kiosk/v1/{cabinet}/down/{kind}``, so a cabinet that connects later still gets the newest.
- the command pump publishes, every 0.1 s, the commands queued in the database (also by
  ``kiosk central send`` from another process) on ``down/cmd``, not retained, and marks them
  published. A cabinet that missed one fetches it with ``GET /commands``.
- after every (re)connect the newest downlink of each cabinet is published again: a broker
  that restarted without persistence has lost its retained messages. A cabinet ignores a
  version it already has.

Faults (``--simulate``): ``duplicates`` sends everything twice; ``disconnect`` leaves the
broker for N seconds.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import paho.mqtt.client as mqtt

from central.faults import Faults, FaultSettings
from central.mqtt_url import check_client_id, configure, default_client_id, parse_mqtt_url
from central.store import Store
from kiosk import wire

log = logging.getLogger("kiosk.central.publisher")

KINDS = (*wire.DOWN_KINDS, "cmd")
PUMP_S = 0.1


def leaf_of(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown downlink kind {kind!r}")
    return f"down/{kind}"


class Publisher:
    def __init__(
        self,
        store: Store,
        mqtt_url: str,
        *,
        ca_file: str | None = None,
        faults: Faults | None = None,
        client_id: str | None = None,
    ):
        self.store = store
        self.url = parse_mqtt_url(mqtt_url)
        self.faults = faults
        self.client_id = check_client_id(client_id or default_client_id("pub"))
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._client_lock = threading.Lock()
        self._away = False
        self._resync = threading.Event()  # set on connect: publish the newest downlinks again
        self._pump = threading.Thread(target=self._run, name=f"{self.client_id}-pump", daemon=True)
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5
        )
        configure(c, self.url, ca_file)
        c.max_inflight_messages_set(1000)
        c.reconnect_delay_set(0.1, 5)  # type: ignore[arg-type]  # paho accepts seconds as float
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        self.client = c
        if faults is not None:
            faults.on_set(self._on_faults)

    # -- life --------------------------------------------------------------------------------------
    def _connect(self) -> None:
        self.client.connect_async(self.url.host, self.url.port, keepalive=30, clean_start=True)
        self.client.loop_start()

    def start(self) -> Publisher:
        self._pump.start()
        with self._client_lock:
            self._connect()
        return self

    def wait_connected(self, timeout: float = 10.0) -> bool:
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def stop(self) -> None:
        self._stop.set()
        if self._pump.is_alive():
            self._pump.join(timeout=5)
        with self._client_lock:
            self.client.disconnect()
            self.client.loop_stop()
        self._connected.clear()

    def _on_connect(self, client, userdata, flags, reason, props) -> None:
        if reason.is_failure:
            log.warning("publisher %s: the broker refused us: %s", self.client_id, reason)
            return
        self._connected.set()
        self._resync.set()

    def _on_disconnect(self, client, userdata, flags, reason, props) -> None:
        self._connected.clear()
        if not self._stop.is_set() and not self._away:
            log.warning("publisher %s: lost the broker (%s); reconnecting", self.client_id, reason)

    # -- sending -----------------------------------------------------------------------------------
    def _faults(self) -> FaultSettings:
        return self.faults.current if self.faults is not None else FaultSettings()

    def publish_down(self, cabinet: str, kind: str, message: dict[str, Any]) -> bool:
        """Publish a signed message (QoS 1; retained but for commands). False when paho did
        not take it (not connected: the retained copy goes out again on reconnecting)."""
        topic = wire.topic(cabinet, leaf_of(kind))
        payload = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()
        ok = True
        for _ in range(2 if self._faults().duplicates else 1):
            info = self.client.publish(topic, payload, qos=1, retain=kind != "cmd")
            ok = ok and info.rc == mqtt.MQTT_ERR_SUCCESS
        return ok

    def push(
        self, cabinet: str, kind: str, payload: Any, version: int | None = None
    ) -> dict[str, Any]:
        """Keep (signed, next version) and publish a catalogue, configuration or accounts list.
        ``ValueError`` when the contract refuses it (``Store.put_downlink``)."""
        message = self.store.put_downlink(cabinet, kind, payload, version)
        self.publish_down(cabinet, kind, message)
        return message

    def clear_retained(self, cabinet: str, kind: str) -> None:
        """Remove a retained downlink from the broker (an empty retained message)."""
        if kind not in wire.DOWN_KINDS:
            raise ValueError(f"kind is one of {', '.join(wire.DOWN_KINDS)}")
        self.client.publish(wire.topic(cabinet, leaf_of(kind)), b"", qos=1, retain=True)

    # -- the pump thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(PUMP_S):
            if not self._connected.is_set():
                continue
            try:
                if self._resync.is_set():
                    self._resync.clear()
                    self.publish_latest()
                self.pump_commands()
            except Exception as e:  # the database away: try again next tick
                log.warning("publisher: %s", e)
                self._stop.wait(1.0)

    def pump_commands(self) -> int:
        """Publish the commands not yet published; how many went out."""
        n = 0
        for seq, cabinet, message in self.store.unpublished_commands():
            if not self._connected.is_set() or self._stop.is_set():
                break
            if self.publish_down(cabinet, "cmd", message):
                self.store.mark_published(seq)
                n += 1
        return n

    def publish_latest(self) -> None:
        """The newest catalogue, configuration and accounts of every cabinet, again."""
        for cabinet in sorted(self.store.keys()):
            for kind in wire.DOWN_KINDS:
                message = self.store.latest_downlink(cabinet, kind)
                if message is not None:
                    self.publish_down(cabinet, kind, message)

    # -- the disconnect fault (--simulate) --------------------------------------------------------
    def _on_faults(self, faults: FaultSettings) -> None:
        if faults.disconnect > 0:
            threading.Thread(
                target=self._leave_for, args=(faults.disconnect,), name="pub-away", daemon=True
            ).start()

    def _leave_for(self, seconds: float) -> None:
        with self._client_lock:
            if self._stop.is_set():
                return
            self._away = True
            self.client.disconnect()
            self.client.loop_stop()
            self._connected.clear()
        log.info("publisher %s: away from the broker for %.1f s (fault)", self.client_id, seconds)
        if self._stop.wait(seconds):
            return
        with self._client_lock:
            if self._stop.is_set():
                return
            self._away = False
            self._connect()
