"""Cabinets into and out of service: ``kiosk central cabinet add | rotate-key | retire``.

- **add** makes the cabinet's 32-byte key, keeps it sealed under the master key
  (``central.keyring``, purpose ``cabinet-key:{id}``), writes the cabinet's two files to
  ``--out`` (``{id}.key`` and ``{id}.mqtt-password``, mode 0600: copy them beside the cabinet's
  ``cabinet.toml``), writes the broker's files again (``central.broker_files``) and returns the
  cabinet's ``[central]`` section.
- **rotate-key** gives a cabinet a new key (``{id}.key`` in ``--out`` again); the one before
  is still accepted for a grace period (7 days by default), so the cabinet keeps working until
  a technician installs the new file. Its MQTT login does not change.
- **retire** takes a cabinet out of service: no key (its requests are refused like a
  stranger's), no broker login; its records, sales and figures stay, and its id is never given
  to another cabinet.

Every change writes the broker's password and ACL files from the cabinets table and tells the
broker to read them (``--broker-pid-file``; else the command says what to run). A master key
that does not open the keys already sealed is refused before anything is changed: a cabinet
sealed under another master key would be lost.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from central import broker_files
from central.broker_files import BrokerFiles
from central.keyring import DEFAULT_PATH, Keyring, KeyringError, load_master_key
from central.store import Store

DEFAULT_GRACE_S = 7 * 86400.0
MAX_TEXT = 200  # name and location, as a cabinet's own [cabinet] section allows


class ProvisionError(Exception):
    """What was asked cannot be done (one line for the operator; nothing was changed)."""


@dataclass(frozen=True)
class CabinetLinks:
    """Where the printed ``[central]`` section points the cabinet."""

    mqtt: str = ""  # the cabinets' listener, e.g. mqtts://broker.example:8883
    http: str = ""
    ca_file: str = "ca.crt"  # as the cabinet finds it (relative: beside cabinet.toml)


@dataclass(frozen=True)
class Written:
    cabinet: str
    key_file: Path
    password_file: Path | None  # None after a rotation (the login is unchanged)
    section: str  # the cabinet's [central] section (TOML)
    grace_until: datetime | None = None


class Centre:
    """The store and the master key, checked against what is sealed already."""

    def __init__(self, store: Store, master_key_file: str | Path | None, files: BrokerFiles):
        # Another centre's master key is refused here, before anything is sealed with it.
        key = open_keyring(store, master_key_file, required=True)
        assert key is not None
        self.master_key = key
        self.store = store
        self.files = files

    def write_broker_files(self) -> list[Path]:
        return self.files.write(self.master_key, self.store.provisioned())


def check_id(cabinet: str) -> str:
    try:
        broker_files.username(cabinet)
    except ValueError as e:
        raise ProvisionError(str(e)) from None
    return cabinet


def central_section(cabinet: str, links: CabinetLinks) -> str:
    """The cabinet's ``[central]`` section; its files are named relative to cabinet.toml."""
    values = {
        "mqtt": links.mqtt,
        "http": links.http,
        "ca_file": links.ca_file,
        "key_file": f"{cabinet}.key",
        "mqtt_username": broker_files.username(cabinet),
        "mqtt_password_file": f"{cabinet}.mqtt-password",
    }
    # JSON strings are TOML basic strings for what these hold (printable, escaped quotes).
    lines = [f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in values.items() if v]
    return "[central]\n" + "\n".join(lines) + "\n"


def _stage(path: Path, text: str) -> Path:
    """``text`` in a file beside ``path`` (mode 0600), put in place by ``_commit``."""
    tmp = path.with_name(f".{path.name}.new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def _commit(staged: dict[Path, Path]) -> None:
    for tmp, path in staged.items():
        os.replace(tmp, path)


def _discard(staged: dict[Path, Path]) -> None:
    for tmp in staged:
        tmp.unlink(missing_ok=True)


def _why(e: Exception) -> str:
    return str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)


def _out_dir(out: str | Path) -> Path:
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ProvisionError(f"--out {folder}: {e.strerror}") from None
    return folder


def add(
    centre: Centre,
    cabinet: str,
    out: str | Path,
    *,
    name: str = "",
    location: str = "",
    route: str | None = None,
    links: CabinetLinks = CabinetLinks(),
) -> Written:
    check_id(cabinet)
    for what, text in (("--name", name), ("--location", location), ("--route", route or "")):
        if len(text) > MAX_TEXT or any(ch < " " for ch in text):
            raise ProvisionError(f"{what}: at most {MAX_TEXT} characters, on one line")
    folder = _out_dir(out)
    key_file, pw_file = folder / f"{cabinet}.key", folder / f"{cabinet}.mqtt-password"
    for p in (key_file, pw_file):
        if p.exists():
            raise ProvisionError(f"{p} exists already: a cabinet's files are never overwritten")
    key = os.urandom(32)
    password = broker_files.mqtt_password(centre.master_key, broker_files.username(cabinet))
    staged = {
        _stage(key_file, key.hex() + "\n"): key_file,
        _stage(pw_file, password + "\n"): pw_file,
    }
    try:
        centre.store.provision_cabinet(cabinet, key, name, location, route or None)
    except (ValueError, KeyError) as e:
        _discard(staged)
        raise ProvisionError(_why(e)) from None
    except BaseException:
        _discard(staged)
        raise
    _commit(staged)
    _send_staff_cards(centre, cabinet)
    return Written(cabinet, key_file, pw_file, central_section(cabinet, links))


def rotate_key(
    centre: Centre,
    cabinet: str,
    out: str | Path,
    grace_s: float = DEFAULT_GRACE_S,
    links: CabinetLinks = CabinetLinks(),
) -> Written:
    check_id(cabinet)
    if grace_s < 0:
        raise ProvisionError("--grace-days is not negative")
    folder = _out_dir(out)
    key_file = folder / f"{cabinet}.key"
    key = os.urandom(32)
    staged = {_stage(key_file, key.hex() + "\n"): key_file}
    try:
        until = centre.store.rotate_key(cabinet, key, grace_s)
    except (ValueError, KeyError) as e:
        _discard(staged)
        raise ProvisionError(_why(e)) from None
    except BaseException:
        _discard(staged)
        raise
    _commit(staged)
    _send_staff_cards(centre, cabinet)
    return Written(cabinet, key_file, None, central_section(cabinet, links), until)


def _send_staff_cards(centre: Centre, cabinet: str) -> None:
    """A cabinet knows staff cards by their hash under its own key: a new key (or a new
    cabinet) needs the accounts list made with it. Signed with the new key, it is refused by
    the cabinet until its new key file is installed, then fetched again and applied."""
    from central import staff

    if staff.cards(centre.store):
        staff.publish_accounts(centre.store, Keyring(centre.master_key), [cabinet])


def retire(centre: Centre, cabinet: str) -> str:
    """When it was retired."""
    try:
        return centre.store.retire_cabinet(cabinet)
    except (ValueError, KeyError) as e:
        raise ProvisionError(_why(e)) from None


def open_keyring(
    store: Store, master_key: str | Path | None, required: bool = False
) -> bytes | None:
    """Load the master key, check it opens what is sealed already, and give the store its
    keyring; returns the master key (None when none was given, none is needed and none is
    ``required``). ``KeyringError`` (one line) when it is missing, malformed or another's.

    Without ``master_key`` the default path is used, but only when some key is sealed (or
    ``required``): a centre of ``--cabinet`` keys alone (tests, ``--simulate``) needs none."""
    samples = store.sealed_samples()
    if master_key is None and not samples and not required:
        return None
    path = Path(master_key) if master_key is not None else DEFAULT_PATH
    key = load_master_key(path)
    ring = Keyring(key)
    try:
        ring.check(samples)
    except KeyringError as e:
        raise KeyringError(
            f"master key {path}: {e} (the cabinets' keys were sealed with another)"
        ) from None
    store.keyring = ring
    return key
