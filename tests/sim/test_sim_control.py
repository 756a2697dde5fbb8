"""The control port: the state JSON, the person's actions, and lines it must refuse."""

from __future__ import annotations

import pytest

from simulators.control import ControlClient, ControlError

pytestmark = pytest.mark.timeout(30)


def test_state_has_the_documented_shape(sim_control: ControlClient) -> None:
    state = sim_control.state()
    assert set(state) == {"doors", "shelves"}
    assert state["doors"]["D1"] == {"latched": True, "open": False}
    shelf = state["shelves"]["D1-S1"]
    assert shelf["items"] == {"zr-rice-5kg": 4, "zr-rice-2.5kg": 4}
    assert isinstance(shelf["load_g"], float) and 29_000 < shelf["load_g"] < 31_000


def test_take_and_put_need_the_door_open(sim_control: ControlClient) -> None:
    with pytest.raises(ControlError, match="shut"):
        sim_control.take("D2-S1", "hs-eggs-10")
    sim_control.force("D2")
    (w,) = sim_control.take("D2-S1", "hs-eggs-10")
    assert sim_control.put("D2-S2", "hs-eggs-10") == [w]
    items = sim_control.state()["shelves"]
    assert items["D2-S1"]["items"]["hs-eggs-10"] == 4 and items["D2-S2"]["items"]["hs-eggs-10"] == 1
    sim_control.stock("D2-S1", "hs-eggs-10", 9)
    assert sim_control.state()["shelves"]["D2-S1"]["items"]["hs-eggs-10"] == 9


@pytest.mark.parametrize(
    "line, why",
    [
        ("", "empty"),
        ("dance D1", "unknown command"),
        ("pull", "usage"),
        ("pull D9", "no door"),
        ("take D1-S1 zr-rice-5kg many", "whole number"),
        ("take D1-S9 zr-rice-5kg", "no shelf"),
        ("lean D1-S1 heavy 2", "not a number"),
        ("fault D1 explode", "KIND"),
        ("fault D1 drop 2", "0..1"),
        ("fault D1 delay", "needs MS"),
        ("fault nowhere silent", "no device"),
        ("fault scales stuck", "stuck needs"),
        ("silent-unlock", "usage"),
        ("silent-unlock D1-S1", "needs a door"),
        ("stock D1-S1 zr-rice-5kg -1", "negative"),
        ("scan", "usage"),
    ],
)
def test_bad_lines_get_an_error_and_the_port_lives_on(
    sim_control: ControlClient, line: str, why: str
) -> None:
    with pytest.raises(ControlError, match=why):
        sim_control.command(line)
    assert sim_control.state()["doors"]["D1"]["latched"]


def test_binary_garbage_is_refused(sim_cabinet) -> None:
    import socket

    host, port = sim_cabinet.control_address.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"\xff\xfe\x00take\n")
        assert s.makefile("rb").readline().startswith(b"error")
