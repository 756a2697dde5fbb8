"""The broker's logins and rights (mosquitto 2.0): password and ACL files, made from the
cabinets table, and the listener settings that use them.

Two listeners, each with its own files (``per_listener_settings true``):

- **the cabinets' listener** (TLS, 8883): ``use_username_as_clientid true``, so a cabinet's
  client id is its login ``kiosk-{id}`` whatever it asks for, and no cabinet can take another's
  session. Each cabinet may write only its own ``up`` and ``status`` and read only its own
  ``ack`` and ``down/#`` (``cabinets.passwd``, ``cabinets.acl``).
- **the centre's listener** (TLS, 8884; the internal network): the service's own clients
  (ingest workers, the publisher) log in as ``kiosk-central``. They are several clients with one
  login, so this listener cannot take the username as client id; no cabinet login exists here
  (``centre.passwd``, ``centre.acl``). ``kiosk-central`` reads every ``up`` (through
  ``$share/...``) and ``status``, and writes every ``ack`` and ``down/#``.

Passwords are never stored: each login's password is derived from the master key
(HMAC-SHA256 under a key derived for this use alone), so the files can be written again at any
time from the database and the master key, and the service logs in without a password file. A
cabinet keeps its password for its whole life (a key rotation leaves MQTT working); retiring it
removes its login. The password file holds mosquitto's own PBKDF2-SHA512 form
(``$7$101$salt$hash``, what ``mosquitto_passwd`` writes).

Files are replaced atomically (written beside, then renamed): the broker never reads half a
file. mosquitto reads them again on SIGHUP (``systemctl reload mosquitto``), and then closes the
connections of logins that are gone.
"""

from __future__ import annotations

import base64
import grp
import hashlib
import hmac
import os
import re
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from kiosk import wire

DEFAULT_DIR = Path("/etc/mosquitto/kiosk")
CENTRE_USER = "kiosk-central"
# The same form as a cabinet's [cabinet] id (kiosk.config): it goes into ACL lines and topics,
# so nothing else may (no spaces, newlines, '+', '#', '/').
CABINET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
# mosquitto_passwd's own choices (mosquitto 2.0): 12 bytes of salt, 101 rounds. The passwords
# are 256-bit random values, so the rounds add nothing and cost the broker at every login.
SALT_BYTES = 12
ROUNDS = 101


class BrokerFilesError(Exception):
    """A file cannot be written or the broker cannot be told (one line for the operator)."""


def username(cabinet: str) -> str:
    """A cabinet's MQTT login (and, on the cabinets' listener, its client id)."""
    if not CABINET_ID.fullmatch(cabinet):
        raise ValueError(f"{cabinet!r} is not a cabinet id (letters, digits, '-', '_', '.')")
    return f"kiosk-{cabinet}"


def mqtt_password(master_key: bytes, user: str) -> str:
    """The password of ``user``, derived from the master key (43 URL-safe characters)."""
    # A key of its own, so the master key is used for nothing but AES-GCM and this derivation.
    sub = hmac.new(master_key, b"kiosk mqtt passwords v1", hashlib.sha256).digest()
    mac = hmac.new(sub, user.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def password_hash(password: str, salt: bytes | None = None) -> str:
    """mosquitto's ``$7$`` form: PBKDF2-HMAC-SHA512, base64 salt and hash."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, ROUNDS)
    b64 = base64.b64encode
    return f"$7${ROUNDS}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(line_hash: str, password: str) -> bool:
    """Does ``password`` match a ``$7$`` hash (as the broker checks it)."""
    try:
        _, seven, rounds, salt, digest = line_hash.split("$")
        got = hashlib.pbkdf2_hmac(
            "sha512", password.encode("utf-8"), base64.b64decode(salt), int(rounds)
        )
    except ValueError:
        return False
    return seven == "7" and hmac.compare_digest(base64.b64encode(got).decode(), digest)


def cabinet_acl(cabinets: Iterable[str]) -> str:
    """One ``user`` block per cabinet: its own up and status out, its own ack and down in."""
    blocks = ["# Written by `kiosk central`: each cabinet's own topics, nothing else.\n"]
    for cab in sorted(cabinets):
        user = username(cab)
        blocks.append(
            f"user {user}\n"
            f"topic write {wire.topic(cab, 'up')}\n"
            f"topic write {wire.topic(cab, 'status')}\n"
            f"topic read {wire.topic(cab, 'ack')}\n"
            f"topic read {wire.topic(cab, 'down/#')}\n"
        )
    return "\n".join(blocks)


def centre_acl() -> str:
    every = "+"
    return (
        "# Written by `kiosk central`: the centre's own clients.\n"
        f"user {CENTRE_USER}\n"
        f"topic read {wire.topic(every, 'up')}\n"  # through $share/{group}/... as well
        f"topic read {wire.topic(every, 'status')}\n"
        f"topic write {wire.topic(every, 'ack')}\n"
        f"topic write {wire.topic(every, 'down/#')}\n"
    )


def password_file(master_key: bytes, users: Iterable[str]) -> str:
    return "".join(
        f"{u}:{password_hash(mqtt_password(master_key, u))}\n" for u in sorted(set(users))
    )


@dataclass(frozen=True)
class BrokerFiles:
    """Where the broker's files are (``--broker-dir``)."""

    folder: Path = DEFAULT_DIR

    @property
    def cabinets_passwd(self) -> Path:
        return self.folder / "cabinets.passwd"

    @property
    def cabinets_acl(self) -> Path:
        return self.folder / "cabinets.acl"

    @property
    def centre_passwd(self) -> Path:
        return self.folder / "centre.passwd"

    @property
    def centre_acl(self) -> Path:
        return self.folder / "centre.acl"

    def write(self, master_key: bytes, cabinets: Iterable[str]) -> list[Path]:
        """All four files, for exactly these cabinets (the ones in service)."""
        cabs = sorted(set(cabinets))
        texts = {
            self.cabinets_passwd: password_file(master_key, map(username, cabs)),
            self.cabinets_acl: cabinet_acl(cabs),
            self.centre_passwd: password_file(master_key, [CENTRE_USER]),
            self.centre_acl: centre_acl(),
        }
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BrokerFilesError(f"broker files: {self.folder}: {e.strerror}") from None
        for path, text in texts.items():
            _replace(path, text)
        return list(texts)

    def listeners(
        self,
        cabinet_port: int,
        centre_port: int,
        cafile: str | Path,
        certfile: str | Path,
        keyfile: str | Path,
        host: str = "",
    ) -> str:
        """The mosquitto.conf lines for both listeners (``host``: bind to one address)."""
        bind = f" {host}" if host else ""
        tls = f"cafile {cafile}\ncertfile {certfile}\nkeyfile {keyfile}\n"
        return (
            "per_listener_settings true\n\n"
            "# The cabinets: one login each, the login is the client id.\n"
            f"listener {cabinet_port}{bind}\n{tls}"
            "allow_anonymous false\n"
            "use_username_as_clientid true\n"
            f"password_file {self.cabinets_passwd}\n"
            f"acl_file {self.cabinets_acl}\n\n"
            "# The centre's own clients (several share one login): the internal network only.\n"
            f"listener {centre_port}{bind}\n{tls}"
            "allow_anonymous false\n"
            f"password_file {self.centre_passwd}\n"
            f"acl_file {self.centre_acl}\n"
        )


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.new")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        _broker_may_read(tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise BrokerFilesError(f"broker files: {path}: {e.strerror}") from None


def _broker_may_read(path: Path) -> None:
    """Group ``mosquitto`` when there is one and we may give it: mosquitto started as root
    drops to that user before it reads these files."""
    if os.geteuid() != 0:
        return
    try:
        gid = grp.getgrnam("mosquitto").gr_gid
    except KeyError:
        return
    os.chown(path, -1, gid)


def reload_broker(pid_file: str | Path | None) -> str:
    """SIGHUP to the broker named by ``pid_file`` (it reads its files again); without one,
    what the operator should run. Returns the line to show."""
    if pid_file is None:
        return "reload the broker to apply: systemctl reload mosquitto (or kill -HUP its pid)"
    try:
        pid = int(Path(pid_file).read_text(encoding="ascii").strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else "not a process id"
        raise BrokerFilesError(f"broker pid file {pid_file}: {why}") from None
    return f"broker {pid} told to read its files again (SIGHUP)"
