"""How the centre's MQTT clients reach the broker: ``mqtt://`` or ``mqtts://`` URLs, client ids.

``mqtt://host:1883`` (plain TCP: loopback and tests only), ``mqtts://host:8883`` (TLS, checked
against ``ca_file`` or the system's CAs). A user and password in the URL
(``mqtts://central:secret@broker:8883``) log in: a production broker lets only the centre read
every cabinet's topics.
"""

from __future__ import annotations

import itertools
import os
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt


@dataclass(frozen=True)
class MqttUrl:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None


def parse_mqtt_url(url: str) -> MqttUrl:
    """``ValueError`` (naming the URL without its password) for anything else."""
    try:
        u = urlsplit(url)
        port = u.port
    except ValueError:
        u, port = None, None
    if u is None or u.scheme not in ("mqtt", "mqtts") or not u.hostname:
        shown = url.split("@")[-1] if "@" in url else url
        raise ValueError(f"{shown!r} is not mqtt://host:port or mqtts://host:port")
    if u.path not in ("", "/") or u.query or u.fragment:
        raise ValueError(f"{u.hostname}: an MQTT URL has no path, query or fragment")
    tls = u.scheme == "mqtts"
    return MqttUrl(
        host=u.hostname,
        port=port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(u.username) if u.username else None,
        password=unquote(u.password) if u.password is not None else None,
    )


def configure(client: mqtt.Client, url: MqttUrl, ca_file: str | None = None) -> None:
    """TLS and the login of ``url`` on a new paho client (before it connects)."""
    if url.tls:
        client.tls_set(ca_certs=ca_file, cert_reqs=ssl.CERT_REQUIRED)
    if url.username is not None:
        client.username_pw_set(url.username, url.password)


_numbers = itertools.count(1)


def default_client_id(role: str = "ingest") -> str:
    """``kiosk-central-{role}-{hostname}-{pid}-{n}``: unique per worker, never a cabinet's
    ``kiosk-{cabinet}`` (two clients with one id throw each other off the broker)."""
    host = "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in socket.gethostname())
    return f"kiosk-central-{role}-{host or 'host'}-{os.getpid()}-{next(_numbers)}"


def check_client_id(client_id: str) -> str:
    """A given id: ``kiosk-{cabinet}`` is the cabinets' form, so ``kiosk-`` only as
    ``kiosk-central-...``."""
    if not client_id or len(client_id) > 128:
        raise ValueError("a client id has 1..128 characters")
    if client_id.startswith("kiosk-") and not client_id.startswith("kiosk-central-"):
        raise ValueError(f"client id {client_id!r}: kiosk-{{cabinet}} is the cabinets' form")
    return client_id
