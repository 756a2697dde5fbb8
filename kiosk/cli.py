"""The ``kiosk`` command: the composition root.

This is the one module that may import every package (``drivers``, ``sync``, ``simulators``,
``ui``); it does so lazily inside each command, so ``kiosk sync`` never loads Kivy and
``kiosk weigh`` never opens a serial port. Exit codes: 0 ok, 1 failure, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """Bad input from the person at the terminal: printed, exit 2."""


# -- Step 1: configuration, database, catalogue -----------------------------------------------
def _cmd_config_check(args: argparse.Namespace) -> int:
    from kiosk import config

    try:
        cfg = config.load(args.file)
    except config.ConfigError as e:
        for p in e.problems:
            print(p, file=sys.stderr)
        return 2
    print(
        f"{Path(args.file).name}: ok (cabinet {cfg.cabinet.id}, {len(cfg.doors)} doors, "
        f"{len(cfg.shelves)} shelves)"
    )
    return 0


def _not_built(args: argparse.Namespace) -> int:
    print(f"kiosk {args.command}: not built yet", file=sys.stderr)
    return 3


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kiosk", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name: str, handler: Handler, help: str, parent=sub) -> argparse.ArgumentParser:
        sp = parent.add_parser(name, help=help, description=help)
        sp.set_defaults(handler=handler)
        return sp

    def group(name: str, help: str) -> argparse._SubParsersAction:
        gp = sub.add_parser(name, help=help, description=help)
        return gp.add_subparsers(dest="action", required=True, metavar="ACTION")

    cfg = group("config", "check a cabinet configuration")
    c = cmd("check", _cmd_config_check, "validate FILE; exit 2 listing every problem", cfg)
    c.add_argument("file")

    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except UsageError as e:
        print(f"kiosk: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
