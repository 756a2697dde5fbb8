"""``kiosk demo`` stage: a headless scripted purchase against the simulated cabinet.

The CLI (the only module that may import ``simulators``/``drivers``) hands in two factories:
``start_sim(cfg) -> (cabinet, control client)`` and ``open_devices(cfg) -> (locks, scales,
scanner)``. A staff card is tapped, door D1 opens, a bag of rice and a jar of honey leave, the
door shuts, and the receipt is printed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kiosk import auth, clock, money, signing
from kiosk import db as kdb
from kiosk.controller import Controller

DEMO_CARD = "04A1B2C3"


def stage(start_sim: Callable[[Any], tuple[Any, Any]], open_devices: Callable[[Any], tuple]):
    def purchase(demo: Any) -> None:
        cfg = demo.cfg
        key = signing.load_key(cfg.central.key_file) if cfg.central.key_file else bytes(32)
        with kdb.transaction(demo.dbh):
            auth.import_accounts(
                demo.dbh.conn,
                key,
                [auth.AccountRow(DEMO_CARD, "演示员工 Demo staff", 20_000, "active")],
                clock.now_iso(),
            )
        sim, c = start_sim(cfg)
        locks, scales, scanner = open_devices(cfg)
        ctl = Controller(cfg, cfg.database, locks, scales, scanner, None, key=key)
        try:
            ctl.start()
            _wait(ctl, lambda s: s.state == "idle")
            demo.say("purchase  staff card tapped at the scanner")
            c.scan(DEMO_CARD)
            _wait(ctl, lambda s: s.state == "open")
            c.pull("D1")
            demo.say("          door D1 open: one bag of rice and a jar of honey taken")
            c.take("D1-S1", "zr-rice-5kg")
            c.take("D1-S2", "hs-honey-500g")
            time.sleep(0.5)
            c.push("D1")
            snap = _wait(ctl, lambda s: s.receipt is not None, timeout=20)
            r = snap.receipt
            demo.say("")
            demo.say(f"receipt   {cfg.cabinet.name}  (sale {r.sale[:8]}...)")
            for it in r.items:
                demo.say(
                    f"  {it.zh:<16} x{it.qty}  {money.yuan_sign(it.unit_price_fen):>8}"
                    f"  {money.yuan_sign(it.line_fen):>9}"
                )
            demo.say(
                f"  total {money.yuan_sign(r.total_fen)}  paid by {r.method} ({r.payment_status})"
            )
            names = "、".join(s.zh for s in r.suppliers[:1])
            demo.say(
                f"  本次消费帮扶了 {names} 等 {len(r.suppliers)} 家合作社和企业,"
                f" 带动 {r.households} 户"
            )
        finally:
            ctl.stop()
            sim.stop()
            for b in {id(x): x for x in locks.values()}.values():
                b.close()

    return purchase


def _wait(ctl: Controller, pred: Callable[[Any], bool], timeout: float = 15.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        s = ctl.snapshot()
        if pred(s):
            return s
        time.sleep(0.02)
    raise RuntimeError(f"demo: the cabinet did not get there (state {ctl.snapshot().state})")
