"""What people do to cabinets through the fleet API: signed commands, published downlinks,
sale reviews. Permissions are checked before these are called (``central.fleet_api``); these
check the request itself against the contract, so nothing is signed that a cabinet refuses.

- **Commands** (``open_door``, ``refund``, ``block_card`` ...) are signed and queued with
  ``Store.add_command``; the running service's Publisher sends them on MQTT and a cabinet
  polling over HTTP fetches them. Who sent one is kept in ``command_issuers``; its outcome is
  the cabinet's ``cmd_result`` record (``central.fleet_view.commands``).
- **Catalogue, prices, configuration** are signed and kept per cabinet with
  ``Store.put_downlink`` and handed to ``publish(cabinet, kind, message)`` (the Publisher's
  retained MQTT publish; None: HTTP polling only). A catalogue must be newer than the last one
  that cabinet was sent (it refuses one that is not). A price change is a new catalogue version
  for each cabinet: its newest catalogue with the prices changed, so the price is retained
  and versioned like any catalogue. Who published each version is kept in ``publications``.
  Everything is checked for every cabinet before anything is published.
- **Staff cards** (``central.staff``, helper R's): a card is named to a cabinet by its account
  there (``kiosk.signing.card_account`` of the cabinet's key and the card's UID, opened with the
  master key); blocking a card for the whole fleet is ``central.staff``'s block: the registry,
  ``block_card`` to every cabinet, a new accounts list for each.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from central import schema as t
from central import schema_auth as ta
from central.auth import AuthError, insert, read_tx, write_tx
from central.store import DOWN_CHECKS, Store
from kiosk import contract, signing

Publish = Callable[[str, str, dict[str, Any]], Any]
TTL_DEFAULT_S = 600.0


def _cabinet_open(store: Store, cabinet: str) -> None:
    c = t.cabinets.c
    with read_tx(store) as conn:
        r = conn.execute(sa.select(c.retired_at).where(c.id == cabinet)).first()
    if r is None:
        raise AuthError(404, "unknown cabinet", cabinet[:80])
    if r.retired_at is not None:
        raise AuthError(409, "cabinet retired", {"cabinet": cabinet, "at": r.retired_at})


def queue_command(
    store: Store,
    cabinet: str,
    cmd: Any,
    args: Any,
    *,
    by: str,
    at: datetime,
    ttl_s: Any = TTL_DEFAULT_S,
) -> dict[str, Any]:
    """Sign and queue a command; the signed message."""
    why = contract.check_command_args(cmd, args)
    if why:
        raise AuthError(400, "bad command", why)
    if (
        not isinstance(ttl_s, int | float)
        or isinstance(ttl_s, bool)
        or not 1 <= ttl_s <= contract.MAX_TTL_S
    ):
        raise AuthError(400, "bad ttl_s", f"1..{contract.MAX_TTL_S} seconds")
    _cabinet_open(store, cabinet)
    try:
        message = store.add_command(cabinet, cmd, args, float(ttl_s))
    except KeyError as e:
        raise AuthError(404, "unknown cabinet", str(e)) from None
    with write_tx(store) as conn:
        conn.execute(
            insert(store, ta.command_issuers)
            .values(cmd_id=message["cmd_id"], issued_by=by, issued_at=at)
            .on_conflict_do_nothing(index_elements=[ta.command_issuers.c.cmd_id])
        )
    return message


def _latest_catalog(store: Store, cabinet: str) -> dict[str, Any] | None:
    message = store.latest_downlink(cabinet, "catalog")
    return message["catalog"] if message else None


def publish_downlinks(
    store: Store,
    publish: Publish | None,
    kind: str,
    payloads: Mapping[str, Any],
    *,
    by: str,
    at: datetime,
) -> dict[str, int]:
    """Sign, keep and publish ``payloads[cabinet]`` for each cabinet; cabinet -> version."""
    check = DOWN_CHECKS.get(kind)
    if check is None:
        raise AuthError(400, "bad kind", f"one of {', '.join(DOWN_CHECKS)}")
    for cabinet, payload in payloads.items():
        _cabinet_open(store, cabinet)
        why = check(payload)
        if why:
            raise AuthError(400, f"{kind} refused", why)
        if kind == "catalog":
            old = _latest_catalog(store, cabinet)
            if old is not None and payload["version"] <= old["version"]:
                raise AuthError(
                    409,
                    "catalogue not newer",
                    {"cabinet": cabinet, "has": old["version"], "given": payload["version"]},
                )
    out: dict[str, int] = {}
    for cabinet, payload in payloads.items():
        try:
            message = store.put_downlink(cabinet, kind, payload)
        except ValueError as e:
            raise AuthError(400, f"{kind} refused", str(e)) from None
        except KeyError as e:
            raise AuthError(404, "unknown cabinet", str(e)) from None
        version = int(message["version"])
        p = ta.publications.c
        ins = insert(store, ta.publications).values(
            cabinet=cabinet, kind=kind, version=version, published_by=by, published_at=at
        )
        with write_tx(store) as conn:
            conn.execute(
                ins.on_conflict_do_update(
                    index_elements=[p.cabinet, p.kind, p.version],
                    set_={"published_by": by, "published_at": at},
                )
            )
        if publish is not None:
            publish(cabinet, kind, message)
        out[cabinet] = version
    return out


def repriced(catalog: dict[str, Any], prices: Mapping[str, Any]) -> dict[str, Any]:
    """Pure: the next version of ``catalog`` with ``prices`` (sku -> fen) in force."""
    new = copy.deepcopy(catalog)
    products = {p["sku"]: p for p in new["products"]}
    for sku, fen in prices.items():
        if sku not in products:
            raise AuthError(400, "unknown sku", sku[:80])
        lo, hi = contract.CATALOG_PRICE
        if not isinstance(fen, int) or isinstance(fen, bool) or not lo <= fen <= hi:
            raise AuthError(400, "bad price", f"{sku}: an integer {lo}..{hi} fen")
        products[sku]["price_fen"] = fen
    new["version"] = int(catalog["version"]) + 1
    return new


def publish_prices(
    store: Store,
    publish: Publish | None,
    cabinets: Sequence[str],
    prices: Any,
    *,
    by: str,
    at: datetime,
) -> dict[str, int]:
    if not isinstance(prices, dict) or not prices:
        raise AuthError(400, "bad prices", "an object sku -> price_fen")
    payloads = {}
    for cabinet in cabinets:
        base = _latest_catalog(store, cabinet)
        if base is None:
            raise AuthError(409, "no catalogue yet", f"{cabinet}: publish a catalogue first")
        payloads[cabinet] = repriced(base, prices)
    return publish_downlinks(store, publish, "catalog", payloads, by=by, at=at)


def review_sale(
    store: Store, sale_id: str, cabinet: str, note: str, *, by: str, at: datetime
) -> None:
    v = ta.sale_reviews.c
    with write_tx(store) as conn:
        got = conn.execute(
            insert(store, ta.sale_reviews)
            .values(sale_id=sale_id, cabinet=cabinet, reviewed_by=by, reviewed_at=at, note=note)
            .on_conflict_do_nothing(index_elements=[v.sale_id])
            .returning(v.sale_id)
        ).first()
    if got is None:
        raise AuthError(409, "already reviewed", sale_id)


def _staff_keyring(store: Store) -> Any:
    if store.keyring is None:  # card UIDs are sealed under the master key
        raise AuthError(409, "no master key", "this service runs without one: give the account")
    return store.keyring


def card_account(store: Store, cabinet: str, card: Any, at: datetime) -> str:
    """The account a staff card (its id, or UID) has at ``cabinet``."""
    from central import staff

    if not isinstance(card, str) or not card.strip():
        raise AuthError(400, "bad request", "card: a staff card's id")
    ring = _staff_keyring(store)
    try:
        found, uid = staff.find(store, ring, card)
    except staff.StaffError as e:
        raise AuthError(404, "unknown card", str(e)) from None
    key = store.key(cabinet)
    if key is None or uid is None:
        raise AuthError(409, "cabinet has no key", cabinet)
    account = signing.card_account(key, uid)
    staff.remember(store, cabinet, {account: found.id}, at)
    return account


def staff_cards(store: Store) -> list[dict[str, Any]]:
    from central import staff

    return [asdict(c) for c in staff.cards(store)]


def set_staff_status(
    store: Store, card: str, status: str, *, by: str, at: datetime
) -> dict[str, Any]:
    """Block or unblock a card at every cabinet (``central.staff``), and note who published
    the accounts lists that follow."""
    from central import staff

    ring = _staff_keyring(store)
    try:
        found, uid = staff.set_status(store, ring, card, status, at)
        assert uid is not None  # opened with the keyring
        told = staff.send_status(store, found, uid)
        versions = staff.publish_accounts(store, ring, now=at)
    except staff.StaffError as e:
        raise AuthError(404, "unknown card", str(e)) from None
    p = ta.publications.c
    with write_tx(store) as conn:
        for cabinet, version in versions.items():
            conn.execute(
                insert(store, ta.publications)
                .values(
                    cabinet=cabinet,
                    kind="accounts",
                    version=version,
                    published_by=by,
                    published_at=at,
                )
                .on_conflict_do_nothing(index_elements=[p.cabinet, p.kind, p.version])
            )
    return {
        "card": found.id,
        "name": found.name,
        "status": status,
        "told": told,
        "accounts": versions,
    }
