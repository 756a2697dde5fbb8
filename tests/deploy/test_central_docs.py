"""docs/central.md's commands as the real ``kiosk central`` parser reads them: a renamed
option or subcommand shows up here, not on a province's server."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "central.md"
# How the doc runs the command: the wrapper (which puts --db first), or the venv's kiosk.
PREFIX = re.compile(r"^(?:sudo )?(?:/usr/local/sbin/kiosk-central|kiosk-central)\s+(.*)$")
CRON = re.compile(r"^(?:[\d*/,-]+ ){5}\w+ ")  # minute hour day month weekday user
VENV = re.compile(r"^(?:sudo )?/opt/kiosk/venv/bin/kiosk central\s+(.*)$")


def commands() -> list[str]:
    """Every ``kiosk central`` command line in the doc's code blocks, continuations joined."""
    text = DOC.read_text(encoding="utf-8")
    found = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line.strip())  # a trailing comment
            line = CRON.sub("", line)
            line = line.split(" && ")[0].split(" >")[0]
            line = line.replace("$(date +\\%F)", "2026-12-01").replace("$(date +%F)", "2026-12-01")
            m = PREFIX.match(line)
            if m:
                found.append("--db postgresql://u@h/db " + m.group(1))
            elif m := VENV.match(line):
                found.append(m.group(1))
    return found


def parser() -> argparse.ArgumentParser:
    """central.cli's parser, with the subcommands other modules add (wired there or not yet)."""
    from central import auth_cli, backup_cli, figures_cli, hooks_cli
    from central.cli import build_parser

    p = build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    for module, name in (
        (backup_cli, "backup"),
        (auth_cli, "user"),
        (hooks_cli, "hook"),
        (figures_cli, "staff"),
    ):
        if name not in sub.choices:
            module.add_cli(sub)
    return p


def test_the_doc_shows_the_commands_a_deployment_needs() -> None:
    verbs = {" ".join(c.split()[2:4]) if c.startswith("--db") else c for c in commands()}
    text = " | ".join(sorted(verbs))
    for needed in ("db upgrade", "user add", "broker files", "cabinet add", "backup", "restore"):
        assert needed in text, text


@pytest.mark.parametrize("line", commands())
def test_each_command_in_the_doc_parses(line: str) -> None:
    p = parser()
    try:
        args = p.parse_args(shlex.split(line))
    except SystemExit as e:  # argparse's verdict on a bad command line
        raise AssertionError(f"docs/central.md: `kiosk central {line}` does not parse") from e
    assert callable(args.handler)


def test_backup_and_restore_are_commands_of_kiosk_central() -> None:
    from central.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert {"backup", "restore"} <= set(sub.choices), "central/cli.py: backup_cli.add_cli(sub)"
