"""``kiosk probe`` on real ptys against the simulated cabinet's boards and transmitters."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from drivers import probe
from kiosk import cli, config
from simulators.cabinet import SimulatedCabinet
from tests.conftest import write_sim_config

pytestmark = pytest.mark.timeout(60)


def test_probe_lists_the_lock_boards_and_never_unlocks(sim_cabinet, capsys) -> None:
    urls = sim_cabinet.urls()["locks"]
    # 8A/80 boards 1..3: board 1 answers (the example's D1), 2 and 3 stay silent
    assert cli.main(["probe", "--url", urls["D1"], "--protocol", "8a80", "--ids", "1-3"]) == 0
    out = capsys.readouterr().out
    assert "8a80 board 1: 24 locks, open: none" in out
    assert "board 2" not in out
    assert 'id = "B1-L1"' in out and "board = 1\nlock = 24\n" in out
    assert probe.probe_locks("kerong_cu", urls["D2"], 19200, range(0, 2)) == [
        probe.BoardFound(0, 16, ())
    ]
    assert sim_cabinet.unlocks_heard("D1") == sim_cabinet.unlocks_heard("D2") == 0


def test_probe_finds_a_wkly_board_with_its_open_door(tmp_path: Path) -> None:
    path = write_sim_config(tmp_path, {'protocol = "kerong_cu"': 'protocol = "wkly"'})
    with SimulatedCabinet(config.load(path)) as cab:
        cab.model.pulse("D2")  # the door unlatched, as after a sale
        found = probe.probe_locks("wkly", cab.urls()["locks"]["D2"], 19200, range(0, 3))
        assert found == [probe.BoardFound(0, 48, (1,))]
        assert cab.unlocks_heard("D2") == 0


def test_probe_lists_the_transmitters_fast(sim_cabinet, capsys) -> None:
    url, baud = sim_cabinet.urls()["scales"], sim_cabinet.config.scales.baud
    t0 = time.monotonic()
    assert cli.main(["probe", "--url", url, "--protocol", "modbus", "--ids", "1-10"]) == 0
    elapsed = time.monotonic() - t0
    out = capsys.readouterr().out
    slaves = {s.slave for s in sim_cabinet.config.shelves}
    for s in slaves:
        assert f"transmitter {s}: " in out and f"slave = {s}\n" in out
    assert "transmitter 10:" not in out
    assert out.count("[[shelves]]") == len(slaves)
    # ids that answer cost one exchange, silent ones one short timeout each
    assert elapsed < 10 * probe.modbus_timeout_s(baud) + 2.0


def test_a_full_modbus_scan_at_9600_baud_is_under_30_s_by_design() -> None:
    assert probe.modbus_scan_budget_s(9600) < 30
    assert probe.modbus_scan_budget_s(9600, ids=1) > probe.modbus_timeout_s(9600)


def test_probe_on_a_missing_port_fails_clearly(tmp_path: Path, capsys) -> None:
    missing = str(tmp_path / "nothing")
    assert cli.main(["probe", "--url", missing, "--protocol", "wkly", "--ids", "0"]) == 1
    assert "kiosk probe" in capsys.readouterr().err
