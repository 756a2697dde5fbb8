"""The payment port (``kiosk.payments.PaymentPort``) over HTTP.

``authorize`` is asked while the customer waits, so it gets a short timeout and no retries:
the centre's answer is authoritative, and no answer is ``PaymentOffline``. ``capture`` tries
once; a capture that gets no answer stays in the ``captures`` table, and the sync agent
retries it (``sync.agent``) until the centre answers.
"""

from __future__ import annotations

from kiosk import signing
from kiosk.config import Config
from kiosk.payments import Authorization, PaymentOffline
from sync.http_link import CentralRefused, CentralUnreachable, HttpLink


class HttpPaymentPort:
    def __init__(self, link: HttpLink):
        self.link = link

    def authorize(self, session: str, code: str, hold_fen: int) -> Authorization:
        try:
            a = self.link.post_json(
                "/payments/authorize", {"session": session, "code": code, "hold_fen": hold_fen}
            )
        except CentralUnreachable as e:
            raise PaymentOffline(str(e)) from e
        except CentralRefused as e:
            return Authorization(False, None, e.error)
        if not isinstance(a, dict) or not isinstance(a.get("ok"), bool):
            raise PaymentOffline("the centre's answer to authorize is not {ok, auth_id}")
        return Authorization(a["ok"], a.get("auth_id"), str(a.get("why") or ""))

    def capture(self, auth_id: str, amount_fen: int) -> bool:
        try:
            a = self.link.post_json(
                "/payments/capture", {"auth_id": auth_id, "amount_fen": amount_fen}
            )
        except CentralUnreachable as e:
            raise PaymentOffline(str(e)) from e
        except CentralRefused:
            return False
        return isinstance(a, dict) and a.get("ok") is True


def from_config(cfg: Config, timeout_s: float = 5.0) -> HttpPaymentPort:
    """The port ``kiosk run`` wires into the controller (``[central] http`` and ``key_file``).

    Raises ``ValueError`` when the configuration has no HTTP address or key file, and
    ``kiosk.signing.KeyFileError`` for a bad key file.
    """
    c = cfg.central
    if not c.http or c.key_file is None:
        raise ValueError("payments need [central] http and key_file")
    key = signing.load_key(c.key_file)
    ca = str(c.ca_file) if c.ca_file else None
    return HttpPaymentPort(HttpLink(c.http, cfg.cabinet.id, key, timeout_s, ca))
