"""The payment port (``kiosk.payments.PaymentPort``) over HTTP.

``authorize`` is asked while the customer waits, so it gets a short timeout and no retries:
the centre's answer is authoritative, and no answer is ``PaymentOffline`` (so is "come back
later": 429/503, or a clock the centre will not take). ``capture`` tries once; a capture
without a final answer stays in the ``captures`` table, and the sync agent retries it
(``sync.agent``) until it gets one. Final: 200, or a refusal in ``FINAL_CAPTURE_REFUSALS``
(the same capture can never succeed); anything else (429, 503, 401, another 4xx, 5xx, no
answer) is not, as the capture may yet go through.
"""

from __future__ import annotations

from kiosk import signing
from kiosk.config import Config
from kiosk.payments import Authorization, PaymentOffline
from sync.http_link import CentralRefused, CentralUnreachable, HttpLink

# (status, error) of the centre's refusals that end a capture (integration.md, "HTTP"); None
# for any error. A 409 "already captured" means the hold was settled by an earlier try.
FINAL_CAPTURE_REFUSALS: tuple[tuple[int, str | None], ...] = (
    (404, "unknown auth_id"),
    (409, None),
    (400, "amount over the hold"),
)


def capture_refusal_is_final(e: CentralRefused) -> bool:
    """True when retrying this capture can never change the centre's answer."""
    return any(e.status == s and err in (None, e.error) for s, err in FINAL_CAPTURE_REFUSALS)


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
        except CentralRefused as e:
            if capture_refusal_is_final(e):
                return False
            raise PaymentOffline(f"capture not answered: {e}") from e  # kept and retried
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
