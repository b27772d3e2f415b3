"""firmware/links/commands.py: the validation every entry point (console, MQTT, sim) shares."""
import pytest

SETUP = """
from firmware.links.commands import Commands, parse_amps_ma, parse_bool
from firmware.services.config import Config
from firmware.services.store import Store
from firmware.core import evse as E
import os
class RT:
    pass
def rt(path):
    r = RT()
    try:
        os.mkdir(path)
    except OSError:
        pass
    r.store = Store(path)
    r.config = Config(r.store)
    r.evse = E.Evse()
    r.note_command = lambda: None
    return r
"""


@pytest.mark.parametrize("text,ma", [
    (16, 16000), (16.0, 16000), ("10.5", 10500), ("6", 6000), ("  32 ", 32000), (0, 0),
    ("6.04", 6000), (True, None), ("abc", None), ("", None), ("nan", None), ("inf", None),
    (None, None), ([16], None), ("1" * 20, None),
])
def test_parse_amps(mp, text, ma):
    assert mp.run(SETUP + "result = parse_amps_ma(data)", text) == ma


@pytest.mark.parametrize("text,val", [
    (True, True), ("false", False), ("ON", True), ("0", False), ("yes", True),
    ("maybe", None), (1, None), (None, None),
])
def test_parse_bool(mp, text, val):
    assert mp.run(SETUP + "result = parse_bool(data)", text) == val


def test_bad_commands_change_nothing(mp, tmp_path):
    r = mp.run(SETUP + """
r = rt(data)
r.config.set('phase_switch', True); r.evse.cfg.phase_switch = True
c = Commands(r)
before = [r.evse.backend_ma, r.evse.enabled, r.evse._phases_target, r.store.setpoints()]
res = [c.set_phases(3.0), c.set_phases(True), c.set_phases("2"), c.set_phases(b"x"),
       c.set_current(5), c.set_current(17), c.set_current("x"), c.set_current(-6),
       c.enable("maybe"), c.enable(2)]
after = [r.evse.backend_ma, r.evse.enabled, r.evse._phases_target, r.store.setpoints()]
good = [c.set_current("10.5"), c.enable("off"), c.set_phases("1")]
result = [before, after, res, good, [r.evse.backend_ma, r.evse.enabled, r.evse._phases_target]]
""", str(tmp_path / "st"))
    before, after, res, good, final = r
    assert before == after
    assert all(ok is False and isinstance(err, str) and err for ok, err in res)
    assert "1 or 3" in res[0][1] and "6..16" in res[5][1]
    assert good == [[True, 10.5], [True, False], [True, 1]]
    assert final == [10500, False, 1]
