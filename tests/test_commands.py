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


# ---- strict input (issue 12 item 4): one parser for MQTT, console, wbctl, web, OCPP -----

STRICT = "from firmware.links.commands import json_strict, utf8, parse_payload, parse_nonneg\n"

BAD_JSON = ['{"a":1,}', '[1,]', '[1,,2]', '{,}', 'NaN', '{"a":NaN}', 'Infinity', '-Infinity',
            '{"a":1,"a":2}', '01', '-01', '1.', '.5', '1e', '+1', '[1 2]', '{"a" 1}', '{a:1}',
            "{'a':1}", '"\\x"', '"\\u12"', '"\\ud800"', '"\\udc00"', '"\\ud800\\u0041"',
            '"\\u0000"', '"a\tb"', '"a\nb"', '"a\\"', '"a\\\\\\"', '"\\q"', 'tru', 'nul', 'true false', '{"a":1}x', '1e400',
            '[' * 9 + ']' * 9, '', ' ', '"unterminated', '{"a":1', '0x10']
GOOD_JSON = [('{}', {}), ('[]', []), ('0', 0), ('-0.5', -0.5), ('2.5e3', 2500.0),
             (' {"a" : [1, true, false, null, "x\\n\\u00e9"]} ',
              {"a": [1, True, False, None, "x\n\u00e9"]}),
             ('"\\ud83d\\ude00"', "\U0001f600"), ('"a\\"b\\\\c\\/"', 'a"b\\c/'),
             ('["x", "", "\\t\\u00e9z"]', ["x", "", "\t\u00e9z"]), ('[' * 8 + ']' * 8, [[[[[[[[]]]]]]]])]


@pytest.mark.parametrize("text", BAD_JSON)
def test_json_strict_rejects(mp, text):
    v, err = mp.run(STRICT + "result = list(json_strict(data))", text)
    assert v is None and err.startswith("invalid JSON") or err == "not valid UTF-8 text", (text, err)


@pytest.mark.parametrize("text,want", GOOD_JSON)
def test_json_strict_accepts(mp, text, want):
    assert mp.run(STRICT + "result = list(json_strict(data))", text) == [want, None]


# objects and arrays share one item loop: trailing commas, nesting and empty ones either way
@pytest.mark.parametrize("text,why", [
    ('[1,]', "trailing comma"), ('{"a":1,}', "trailing comma"), ('[[1,],2]', "trailing comma"),
    ('{"a":{"b":[],},"c":1}', "trailing comma"), ('[{"a":1,}]', "trailing comma"),
    ('[ 1 , ]', "trailing comma"), ('{"a":1 , }', "trailing comma"), ('[,]', "value expected"),
    ('{,}', "key string expected"), ('[1,,2]', "value expected"), ('[1 2]', "',' or ']' expected"),
    ('{"a":1 "b":2}', "',' or '}' expected"), ('{"a":[1}', "',' or ']' expected"),
    ('[{"a":1]', "',' or '}' expected"), ('{"a":1,"b":{"a":2},"a":3}', "duplicate key 'a'"),
    ('{"a" 1}', "':' expected"), ('[', "value expected"), ('{', "key string expected"),
    ('[1', "',' or ']' expected"), ('{"a":1', "',' or '}' expected"),
    ('[' * 9 + ']' * 9, "nested too deep"), ('{"a":' * 9 + '1' + '}' * 9, "nested too deep"),
])
def test_json_strict_container_errors(mp, text, why):
    v, err = mp.run(STRICT + "result = list(json_strict(data))", text)
    assert v is None and err.startswith("invalid JSON at byte ") and why in err, (text, err)


@pytest.mark.parametrize("text,want", [
    ('[]', []), ('{}', {}), (' [ ] ', []), ('{ }', {}), ('[[]]', [[]]), ('[{}]', [{}]),
    ('{"a":{}}', {"a": {}}), ('{"a":[]}', {"a": []}), ('[[],{},[{}]]', [[], {}, [{}]]),
    ('{"a":{"a":1},"b":[{"a":[1,{"c":null}]}]}', {"a": {"a": 1}, "b": [{"a": [1, {"c": None}]}]}),
    ('[1, [2, [3]], {"k": [4, 5]}]', [1, [2, [3]], {"k": [4, 5]}]),
    ('{"a":' * 8 + '1' + '}' * 8, {"a": {"a": {"a": {"a": {"a": {"a": {"a": {"a": 1}}}}}}}}),
])
def test_json_strict_nested_and_empty(mp, text, want):
    assert mp.run(STRICT + "result = list(json_strict(data))", text) == [want, None]


BAD_UTF8 = ["eda080", "edbfbf", "c0af", "c1bf", "e080af", "f08080af", "f4908080", "f5808080",
            "ff", "80", "c328", "e282", "f09f98"]  # surrogates, overlong, > U+10FFFF, truncated


@pytest.mark.parametrize("hexb", BAD_UTF8)
def test_utf8_rejects(mp, hexb):
    assert mp.run(STRICT + "import binascii\nresult = utf8(binascii.unhexlify(data))", hexb) is None


def test_utf8_accepts(mp):
    good = ["", "abc", "\u00e9", "\u20ac", "\ud7ff", "\ue000", "\U0001f600", "\U0010ffff"]
    # hex both ways: the test transport's own JSON would not carry U+1F600 intact
    got = mp.run(STRICT + "import binascii\n"
                 "result = [binascii.hexlify(utf8(binascii.unhexlify(h)).encode()) for h in data]",
                 [s.encode().hex() for s in good])
    assert [bytes.fromhex(h).decode() for h in got] == good


@pytest.mark.parametrize("v", ["-0.01", "-0", "-6", "- 1", -0.0, -0.01, -6,
                               "+5", "0x10", "1_0", "nan", "inf", "1e400", "16A", "", " ",
                               True, None, [16], "\u0661\u0666"])
def test_parse_nonneg_rejects(mp, v):
    r = mp.run(STRICT + "result = list(parse_nonneg(data, 'current'))", v)
    assert r[0] is None and r[1].startswith("current must")


@pytest.mark.parametrize("payload", [
    b'{"value":16,}', b'{"value":16,"value":17}', b'{"value":NaN}', b'{"value":16} x',
    b'{"value":16, "extra": 1}', b'{"req":"\\ud800","value":16}', b'{"req":"a\\u0001"}',
    b"\xed\xa0\x80", b"\xc0\xaf", b"16\x00", b"1\n6", b"x" * 65, b'{"req":' + b'"x"' * 3 + b'}'])
def test_parse_payload_rejects(mp, payload):
    r = mp.run(STRICT + "import binascii\nresult = list(parse_payload(binascii.unhexlify(data)))",
               payload.hex())
    assert r[1] is None and r[2], (payload, r)


def test_parse_payload_accepts(mp):
    r = mp.run(STRICT + "result = [list(parse_payload(p)) for p in data]",
               [" 16 ", '{"value": 10.5, "req": "r-1"}', "{}", '{"value": "on"}', "\u00e9t\u00e9"])
    assert r == [[None, "16", None], ["r-1", 10.5, None], [None, None, None],
                 [None, "on", None], [None, "\u00e9t\u00e9", None]]


def test_negative_and_rounding_to_pause_rejected_nothing_changed(mp, tmp_path):
    r = mp.run(SETUP + """
r = rt(data)
c = Commands(r)
c.set_current(10)
before = [r.evse.backend_ma, r.store.setpoints()]
res = [c.set_current(v) for v in ("-0.01", "-0", -0.0, -0.01, -16, "0.04", 0.04, "5.96")]
result = [before, [r.evse.backend_ma, r.store.setpoints()], res, c.set_current("0"),
          c.set_current(16.04)]
""", str(tmp_path / "neg"))
    before, after, res, zero, over = r
    assert before == after and before[0] == 10000
    assert all(ok is False for ok, _ in res), res
    assert "must not be negative" in res[0][1] and "0 (pause) or 6..16 A" in res[0][1]
    assert "0.04 A out of range" in res[5][1]
    assert zero == [True, 0]  # only an exact 0 pauses
    assert over[0] is False


def test_config_rejects_negative_and_loose_numbers(mp):
    r = mp.run("""
from firmware.services.config import Config, parse
c = Config()
res = [c.set('fallback_current_a', -0.0), c.set('fallback_timeout_s', -1),
       c.set_text('fallback_timeout_s', '-0'), c.set_text('fallback_current_a', '-0'),
       c.set_text('telemetry_s', '+5'), c.set_text('telemetry_s', '1_0'),
       c.set_text('telemetry_s', '0x10'), c.set_text('ct_cal_pm', '-0,1000,1000'),
       c.set('ct_cal_pm', [1000, -0.0, 1000])]
result = [res, c.get('fallback_current_a'), c.get('fallback_timeout_s'), c.get('telemetry_s'),
          list(parse('cp_offset_mv', '-20'))]
""")
    res, fb, to, tele, cp = r
    assert all(isinstance(e, str) and e for e in res), res
    assert "negative values not allowed" in res[0] and "negative" in res[2]
    assert (fb, to, tele) == (6, 0, 10)
    assert cp == [-20, None]  # a signed key keeps its negatives


def test_ota_mqtt_payload_is_strict_too(mp):
    """cmd/update and cmd/rollback parse through the same strict path."""
    r = mp.run("""
import binascii
from firmware.links.ota_mqtt import OtaMqtt
result = [list(OtaMqtt._payload(None, binascii.unhexlify(h))) for h in data]
""", [p.hex() for p in (b'{"url": "http://x/b", "sha256": "ab",}', b'{"url": "a", "url": "b"}',
                        b'{"req": "\\ud800"}', b"\xed\xa0\x80", b'{"url": "http://x/b"}',
                        b" install ")])
    assert all(v is None and err.startswith("payload") for v, err in r[:4]), r
    assert r[4] == [{"url": "http://x/b"}, None] and r[5] == ["install", None]


@pytest.mark.parametrize("text,want", [
    ('[2,"a",{}] x', [2, "a"]), ('[2,"a",{"k":1,}]', [2, "a"]), (' [ 3 , "b" , {', [3, "b"]),
    ('["x","y"]', ["x", "y"]), ('{"a":1}', None), ('{not json', None), ('[2', None),
    ('[2,', None), ('[2 "a"', None), ('', None), ('[2,"\\ud800"]', None), ('[01,"a"]', None),
])
def test_json_head_reads_the_valid_start_of_an_array(mp, text, want):
    """What ocpp.py answers a frame by when the whole is not valid JSON."""
    assert mp.run("from firmware.links.commands import json_head\nresult = json_head(data, 2)",
                  text) == want
