"""The configuration loader: every bad configuration gets its exact message, all at once."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk import cli, config

GOOD = """\
[cabinet]
id = "QH-0001"

[[doors]]
id = "D1"
protocol = "8a80"
url = "run/locks-8a80"
board = 1
lock = 1

[[doors]]
id = "D2"
protocol = "kerong_cu"
url = "run/locks-cu"
board = 0
lock = 1

[[shelves]]
id = "D1-S1"
door = "D1"
slave = 1
capacity_g = 30000
lanes = [{sku = "zr-rice-5kg", count = 4}]

[scales]
url = "run/scales"

[scanner]
url = "run/scanner"

[database]
path = "run/kiosk.db"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cabinet.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(config.ConfigError) as e:
        config.load(write(tmp_path, text))
    return e.value.problems


def test_the_minimal_config_loads_with_defaults_and_resolved_paths(tmp_path):
    cfg = config.load(write(tmp_path, GOOD))
    assert cfg.cabinet.timezone == "Asia/Shanghai"
    assert [d.baud for d in cfg.doors] == [9600, 19200]  # each protocol's default
    assert [d.status_inverted for d in cfg.doors] == [False, False]  # the field convention
    assert cfg.database == tmp_path / "run" / "kiosk.db"
    assert cfg.doors[1].url == str(tmp_path / "run" / "locks-cu")
    assert cfg.shelves[0].lanes == (config.Lane("zr-rice-5kg", 4, 1),)
    assert cfg.limits.card_offline_limit_fen == 20_000


def test_the_example_config_is_valid(example_config):
    cfg = config.load(example_config)
    assert {d.protocol for d in cfg.doors} == {"8a80", "kerong_cu"}
    for door in cfg.doors:
        lanes = [lane for s in cfg.shelves_of(door.id) for lane in s.lanes]
        assert 3 <= len(cfg.shelves_of(door.id)) <= 4
        assert sum(lane.count for lane in lanes) >= 10


# (replace this, with that) in GOOD -> the exact problems reported, in order.
NOT_A_DOOR = "cabinet.toml: shelves[1].door: 'D1' is not a door in [[doors]]"
BAD = [
    ("board = 1\n", "board = 40\n", ["cabinet.toml: doors[1].board: 40 is outside 1..32"]),
    ("board = 0\n", "board = 16\n", ["cabinet.toml: doors[2].board: 16 is outside 0..15"]),
    (
        "board = 0\nlock = 1",
        "board = 0\nlock = 17",
        ["cabinet.toml: doors[2].lock: 17 is outside 1..16"],
    ),
    (
        "board = 1\nlock = 1",
        "board = 1\nlock = 25",
        ["cabinet.toml: doors[1].lock: 25 is outside 1..24"],
    ),
    (
        'protocol = "8a80"',
        'protocol = "rs232"',
        [
            "cabinet.toml: doors[1].protocol: 'rs232' is not one of 8a80, kerong_cu, wkly",
            NOT_A_DOOR,
        ],
    ),
    (
        'protocol = "kerong_cu"\nurl = "run/locks-cu"\nboard = 0\nlock = 1',
        'protocol = "wkly"\nurl = "run/locks-cu"\nboard = 32\nlock = 49',
        [
            "cabinet.toml: doors[2].board: 32 is outside 0..31",
            "cabinet.toml: doors[2].lock: 49 is outside 1..48",
        ],
    ),
    (
        "board = 0\nlock = 1\n",
        'board = 0\nlock = 1\nopen_state = "11"\n',
        ["cabinet.toml: doors[2].open_state: only the 8a80 protocol has open_state"],
    ),
    (
        "board = 1\nlock = 1\n",
        'board = 1\nlock = 1\nopen_state = "zz"\n',
        ["cabinet.toml: doors[1].open_state: 'zz' is not a hex byte like '11'"],
    ),
    (
        "board = 1\nlock = 1\n",
        'board = 1\nlock = 1\nopen_state = "01"\n',
        ["cabinet.toml: doors[1].open_state: '01' is neither '00' nor '11'"],
    ),
    (
        "board = 1\nlock = 1\n",
        'board = 1\nlock = 1\nopen_state = "11"\nstatus_inverted = true\n',
        ["cabinet.toml: doors[1].open_state: give status_inverted alone (open_state is old)"],
    ),
    (
        "board = 0\nlock = 1\n",
        'board = 0\nlock = 1\nstatus_inverted = "yes"\n',
        ["cabinet.toml: doors[2].status_inverted: must be true or false, not 'yes'"],
    ),
    (
        "board = 1\nlock = 1\n",
        "board = 1\nlock = 1\nbaud = 9601\n",
        [
            "cabinet.toml: doors[1].baud: 9601 is not one of "
            "1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200"
        ],
    ),
    ('id = "D2"', 'id = "D1"', ["cabinet.toml: doors[2].id: 'D1' is used by another door"]),
    ("[cabinet]\n", '[cabinet]\ncolour = "red"\n', ["cabinet.toml: cabinet.colour: unknown key"]),
    ("[scales]\n", '[scales]\nparity = "N"\n', ["cabinet.toml: scales.parity: unknown key"]),
    (
        "[database]\n",
        "[databse]\n",
        ["cabinet.toml: databse: unknown key", "cabinet.toml: database: missing"],
    ),
    ("slave = 1", "slave = 300", ["cabinet.toml: shelves[1].slave: 300 is outside 1..247"]),
    (
        'door = "D1"\nslave',
        'door = "D9"\nslave',
        ["cabinet.toml: shelves[1].door: 'D9' is not a door in [[doors]]"],
    ),
    (
        "capacity_g = 30000",
        "capacity_g = 0",
        ["cabinet.toml: shelves[1].capacity_g: 0 must be greater than 0"],
    ),
    (
        "count = 4",
        "count = -1",
        ["cabinet.toml: shelves[1].lanes[1].count: -1 must not be negative"],
    ),
    (
        "count = 4",
        'count = "4"',
        ["cabinet.toml: shelves[1].lanes[1].count: must be an integer, not '4'"],
    ),
    (
        "count = 4",
        "count = true",
        ["cabinet.toml: shelves[1].lanes[1].count: must be an integer, not True"],
    ),
    ('[scanner]\nurl = "run/scanner"\n', "", ["cabinet.toml: scanner: missing"]),
    (
        'id = "QH-0001"\n',
        'id = "QH-0001"\ntimezone = "Mars/Olympus"\n',
        ["cabinet.toml: cabinet.timezone: 'Mars/Olympus' is not a known time zone"],
    ),
    (
        '[database]\npath = "run/kiosk.db"\n',
        '[database]\npath = "run/kiosk.db"\n[limits]\ncard_offline_limit_fen = -5\n',
        ["cabinet.toml: limits.card_offline_limit_fen: -5 must not be negative"],
    ),
    ('id = "D1"\nprotocol', "protocol", ["cabinet.toml: doors[1].id: missing", NOT_A_DOOR]),
]


@pytest.mark.parametrize(("old", "new", "messages"), BAD, ids=[b[2][0][14:] for b in BAD])
def test_each_bad_config_has_its_exact_message(tmp_path, old, new, messages):
    assert old in GOOD
    assert problems_of(tmp_path, GOOD.replace(old, new, 1)) == messages


def test_a_cabinet_id_with_a_space_is_refused(tmp_path):
    [msg] = problems_of(tmp_path, GOOD.replace('id = "QH-0001"', 'id = "QH 0001"'))
    assert msg.startswith("cabinet.toml: cabinet.id: 'QH 0001' is not an id")


def test_not_toml_names_the_file(tmp_path):
    [msg] = problems_of(tmp_path, GOOD.replace("[cabinet]", "[cabinet"))
    assert msg.startswith("cabinet.toml: not valid TOML:")


def test_all_problems_are_listed_at_once(tmp_path):
    text = (
        GOOD.replace("board = 1\n", "board = 40\n")
        .replace("slave = 1", "slave = 0")
        .replace("[cabinet]\n", '[cabinet]\ncolour = "red"\n')
        .replace("count = 4", "count = -1")
    )
    assert sorted(problems_of(tmp_path, text)) == sorted(
        [
            "cabinet.toml: cabinet.colour: unknown key",
            "cabinet.toml: doors[1].board: 40 is outside 1..32",
            "cabinet.toml: shelves[1].slave: 0 is outside 1..247",
            "cabinet.toml: shelves[1].lanes[1].count: -1 must not be negative",
        ]
    )


def test_config_check_exits_0_when_valid(example_config, capsys):
    assert cli.main(["config", "check", str(example_config)]) == 0
    out = capsys.readouterr().out
    assert "ok (cabinet QH-0001, 2 doors, 7 shelves)" in out
    assert "warning" not in out  # every door states its polarity


@pytest.mark.parametrize(("open_state", "inverted"), [("11", True), ("00", False)])
def test_the_old_open_state_is_read_with_a_warning(tmp_path, open_state, inverted):
    path = write(
        tmp_path, GOOD.replace("lock = 1\n", f'lock = 1\nopen_state = "{open_state}"\n', 1)
    )
    cfg = config.load(path)
    assert cfg.doors[0].status_inverted is inverted  # "11" meant open: the inverted wiring
    assert cfg.warnings[0] == (
        "cabinet.toml: doors[1].open_state: replaced by status_inverted: "
        f"write status_inverted = {str(inverted).lower()}"
    )


def test_status_inverted_true_is_read(tmp_path):
    path = write(tmp_path, GOOD.replace("lock = 1\n", "lock = 1\nstatus_inverted = true\n"))
    cfg = config.load(path)
    assert [d.status_inverted for d in cfg.doors] == [True, True]
    assert cfg.warnings == ()


def test_config_check_warns_on_doors_without_polarity_and_still_passes(tmp_path, capsys):
    path = write(tmp_path, GOOD)
    assert cli.main(["config", "check", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "warning: cabinet.toml: doors[1].status_inverted: not stated; false assumed "
        "(status 00 = open, 11 = closed): check the board's wiring",
        "warning: cabinet.toml: doors[2].status_inverted: not stated; false assumed "
        "(a hook bit of 1 = locked): check the board's wiring",
        "cabinet.toml: ok (cabinet QH-0001, 2 doors, 1 shelves)",
    ]


def test_config_check_exits_2_listing_every_problem(tmp_path, capsys):
    path = write(
        tmp_path, GOOD.replace("board = 1\n", "board = 40\n").replace("slave = 1", "slave = 0")
    )
    assert cli.main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "cabinet.toml: doors[1].board: 40 is outside 1..32",
        "cabinet.toml: shelves[1].slave: 0 is outside 1..247",
    ]


def test_config_check_of_a_missing_file(tmp_path, capsys):
    assert cli.main(["config", "check", str(tmp_path / "nope.toml")]) == 2
    assert re.match(r"nope\.toml: cannot read: ", capsys.readouterr().err)


def test_the_installed_command_gives_the_same_exit_code(tmp_path):
    path = write(tmp_path, GOOD.replace("lock = 1\n", "lock = 99\n", 1))
    run = subprocess.run(
        [sys.executable, "-m", "kiosk", "config", "check", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 2
    assert "cabinet.toml: doors[1].lock: 99 is outside 1..24" in run.stderr
