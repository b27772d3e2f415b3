"""firmware/services/config.py in the MicroPython unix port: every schema rule,
all-or-nothing updates, redaction, persistence and corrupt files."""
import json

import pytest
from hypothesis import given, strategies as hs

SPEC = {  # key: (default, valid samples, invalid samples) from the brief
    "id": ("wb1", ["a", "A-b_9", "x" * 24], ["", "x" * 25, "a b", "ä", "a/b", 5, None]),
    "board": ("", ["", "esp32_evse"], [3, None, "x" * 25]),
    "max_current_a": (16, [6, 80, 32], [5, 81, 0, -1, 16.5, "16", True, None]),
    "cable_fixed_a": (0, [0, 6, 80], [1, 5, 81, -6, False]),
    "require_auth": (False, [True, False], [1, 0, "true", None]),
    "ventilation": (False, [True], [1]),
    "phases": (3, [1, 3], [2, 0, 4, True, "3"]),
    "phase_switch": (False, [True], ["on"]),
    "lock": (False, [True], [0]),
    "fallback_current_a": (6, [0, 6, 80], [3, 81, -1]),
    "fallback_timeout_s": (0, [0, 86400], [-1, 86401]),
    "min_off_s": (60, [0, 600], [-1, 601]),
    "fault_retry_s": (60, [5, 600], [4, 601, 1.5]),
    "ev_off_s": (5, [0, 60], [-1, 61]),
    "max_phase_switches": (5, [0, 20], [-1, 21]),
    "control_period_ms": (10, [1, 50], [0, 51]),
    "meter": ("internal", ["none", "internal", "sdm120", "sdm630"], ["SDM630", "", 1, None]),
    "meter_addr": (1, [1, 247], [0, 248]),
    "mains_v": (230, [100, 260], [99, 261]),
    "ct_cal_pm": ([1000, 1000, 1000], [[500, 2000, 1000]],
                  [[1000, 1000], [1000, 1000, 1000, 1000], [499, 1000, 1000], [1000, 2001, 1000],
                   [1000, 1000, 10.5], [1000, True, 1000], 1000, "1000,1000,1000"]),
    "cp_gain_pm": (1000, [800, 1200], [799, 1201]),
    "cp_offset_mv": (0, [-2000, 2000], [-2001, 2001]),
    "wifi_ssid": ("", ["", "home net"], ["x" * 33, "a\nb", 1]),
    "wifi_password": ("", ["", "12345678", "x" * 63], ["1234567", "x" * 64, 12345678]),
    "mqtt_host": ("", ["", "broker.local", "10.0.0.2"], [None, "a\x00b"]),
    "mqtt_port": (1883, [1, 65535], [0, 65536, "1883"]),
    "mqtt_user": ("", ["", "evcc"], [None]),
    "mqtt_password": ("", ["", "s3cret"], [1]),
    "mqtt_tls": (False, [True], ["false"]),
    "mqtt_ca": ("", ["", "/ca.der"], [0]),
    "mqtt_client_id": ("", ["", "wallbox-1"], ["a b", "x" * 24]),
    "mqtt_base": ("", ["", "wallbox/garage"], ["a/#", "a/+/b", "/a", "a/"]),
    "ha_discovery": (True, [False], [None]),
    "ha_prefix": ("homeassistant", ["homeassistant", "ha"], ["", "ha/#"]),
    "telemetry_s": (10, [1, 3600], [0, 3601]),
    # --- ocpp ---
    "ocpp_url": ("", ["", "ws://csms.example:8180/steve/websocket/CentralSystemService"],
                 ["x" * 201, "caf\u00e9"]),
    "ocpp_id": ("", ["", "CP-0001"], ["a b", "x" * 49]),
    "ocpp_password": ("", ["", "0123456789abcdef"], ["short", "x" * 41]),
    "ocpp_ca": ("", ["", "/ca.der"], [0]),
    "ocpp_timeout_s": (30, [2, 120], [1, 121]),
    # --- ota ---
    "ota": (True, [False], [None]),
    "ota_healthy_s": (60, [1, 3600], [0, 3601]),
    # --- web ---
    "web_port": (0, [0, 80, 8080, 65535], [-1, 65536, "80", True, 8.5]),
    "web_public_status": (False, [True, False], [1, "yes", None]),
    "web_session_h": (12, [1, 168], [0, 169, "12"]),
    "web_password": ("", ["", "s1$2000$00ff$" + "a" * 64], [None, 5, "x" * 101, "tab\there"]),
    # --- control ---
    "control_thread": (True, [True, False], [1, "yes", None]),
    # --- web (https) ---
    "web_cert": ("", ["", "/web_cert.der"], [0, "x" * 65]),
    "web_key": ("", ["", "/web_key.der"], [0, "x" * 65]),
    # --- load management ---
    "lm_mode": ("off", ["normal", "pv", "minpv", "off"], ["solar", "", 1]),
    "mains_source": ("none", ["modbus", "mqtt", "none"], ["p1", None]),
    "mains_addr": (2, [1, 247], [0, 248]),
    "mains_poll_ms": (1000, [1000, 2000], [999, 2001]),
    "mains_max_a": (25, [10, 200], [9, 201, 25.5]),
    "mains_timeout_s": (11, [3, 600], [2, 601]),
    "lm_safe_a": (6, [0, 6, 80], [5, 81]),
    "lm_min_pause_s": (60, [0, 3600], [-1, 3601]),
    "pv_import_a": (0, [0, 100], [-1, 101]),
    "pv_start_s": (60, [0, 3600], [-1, 3601]),
    "pv_stop_s": (300, [0, 3600], [-1, 3601]),
    "pv_min_charge_s": (600, [0, 7200], [-1, 7201]),
    "pv_attack_pm": (50, [1, 1000], [0, 1001]),
    "pv_decay_pm": (400, [1, 1000], [0, 1001]),
    "phase_auto": (False, [True], ["yes"]),
    "phase_switch_min_s": (300, [60, 3600], [59, 3601]),
    "dim_source": ("none", ["mqtt", "input", "none"], ["gpio", 0]),
    "dim_power_w": (4200, [4200, 22000], [4199, 22001]),
    "group_id": ("", ["", "garage"], ["a b", "x" * 25]),
    "group_max_a": (32, [6, 400], [5, 401]),
    "group_size": (3, [2, 16], [1, 17]),
    "group_rotate_s": (900, [60, 7200], [59, 7201]),
}

PRELUDE = """
import os
from firmware.services.config import Config, parse, check, SCHEMA, rows
from firmware.services import store as S
def fresh(path):
    try:
        for n in os.listdir(path):
            os.remove(path + '/' + n)
    except OSError:
        pass
    return S.Store(path)
"""


def run(mp, code, data=None):
    return mp.run(PRELUDE + code, data)


def test_schema_keys_and_defaults_match_the_brief(mp):
    r = run(mp, "result = [Config().as_dict(False), [row[0] for row in rows()]]")
    defaults, keys = r
    assert keys == list(SPEC)
    assert defaults == {k: v[0] for k, v in SPEC.items()}


def test_every_rule(mp):
    cases = [[k, v] for k, spec in SPEC.items() for v in spec[1]]
    bad = [[k, v] for k, spec in SPEC.items() for v in spec[2]]
    r = run(mp, """
out = []
for k, v in data[0]:
    c = Config(); err = c.set(k, v); out.append([k, v, err, c.get(k)])
for k, v in data[1]:
    c = Config(); before = c.as_dict(False); err = c.set(k, v)
    out.append([k, v, err, c.as_dict(False) == before, c.version])
result = out
""", [cases, bad])
    for k, v, err, got in r[:len(cases)]:
        assert err is None, (k, v, err)
        assert got == v, (k, v, got)
    for k, v, err, unchanged, version in r[len(cases):]:
        assert isinstance(err, str) and err.startswith(k + ":"), (k, v, err)
        assert unchanged and version == 0, (k, v)


def test_errors_say_what_is_allowed(mp):
    r = run(mp, """
c = Config()
result = [c.set('max_current_a', 90), c.set('max_current_a', 16.5), c.set('max_current_a', True),
          c.set('cable_fixed_a', 3), c.set('phases', 2), c.set('meter', 'x'), c.set('nope', 1),
          c.set('id', 'a b'), c.set('wifi_password', 'short'), c.set('ct_cal_pm', [1]),
          c.set('require_auth', 1)]
""")
    assert r == [
        "max_current_a: 90 out of range, allowed 6..80",
        "max_current_a: 16.5 is not a whole number",
        "max_current_a: expected int, got bool",
        "cable_fixed_a: 3 out of range, allowed 0 or 6..80",
        "phases: 2 not allowed, one of 1|3",
        "meter: 'x' not allowed, one of none|internal|sdm120|sdm630",
        "unknown key 'nope' (see describe())",
        "id: ' ' not allowed, only a-z A-Z 0-9 _ -",
        "wifi_password: length 5, allowed 0 or 8..63",
        "ct_cal_pm: expected a list of 3 ints",
        "require_auth: expected true or false, got int",
    ]


def test_whole_floats_become_ints(mp):
    r = run(mp, """
c = Config()
result = [c.set('max_current_a', 20.0), c.get('max_current_a'), type(c.get('max_current_a')) is int,
          c.set('ct_cal_pm', [900.0, 1000, 1100]), c.get('ct_cal_pm') == (900, 1000, 1100)]
""")
    assert r == [None, 20, True, None, True]


def test_get_returns_an_immutable_list_value(mp):
    r = run(mp, """
c = Config()
v = c.get('ct_cal_pm')
try:
    v[0] = 1
    result = 'mutated'
except TypeError:
    result = c.as_dict()['ct_cal_pm']
""")
    assert r == [1000, 1000, 1000]


def test_update_is_all_or_nothing(mp):
    r = run(mp, """
c = Config()
e1 = c.update({'max_current_a': 20, 'phases': 2, 'mqtt_host': 'h'})
d1 = c.as_dict(False); v1 = c.version
e2 = c.update({'max_current_a': 20, 'mqtt_host': 'h', 'bogus': 1})
e3 = c.update({'max_current_a': 20, 'mqtt_host': 'h'})
e4 = c.update([('max_current_a', 20)])
result = [e1, d1 == Config().as_dict(False), v1, e2, e3, c.get('max_current_a'), c.get('mqtt_host'),
          c.version, e4]
""")
    assert r == ["phases: 2 not allowed, one of 1|3", True, 0, "unknown key 'bogus' (see describe())",
                 None, 20, "h", 1, "expected a dict of key: value"]


def test_redaction(mp):
    r = run(mp, """
c = Config()
a = c.as_dict()
c.update({'wifi_password': 'password1', 'mqtt_password': 'pw', 'mqtt_user': 'u'})
result = [a['wifi_password'], c.as_dict(), c.as_dict(redact=False)]
""")
    unset, red, plain = r
    assert unset == ""  # an unset secret shows as empty, a set one as ***
    assert red["wifi_password"] == red["mqtt_password"] == "***" and red["mqtt_user"] == "u"
    assert plain["wifi_password"] == "password1" and plain["mqtt_password"] == "pw"


def test_parse_text(mp):
    r = run(mp, """
out = []
for t in ('true', 'False', '1', '0', 'on', 'OFF', ' yes ', 'maybe', '2'):
    out.append(list(parse('lock', t)))
out.append(list(parse('max_current_a', ' 20 ')))
out.append(list(parse('max_current_a', '20.5')))
out.append(list(parse('max_current_a', '99')))
out.append(list(parse('phases', '1')))
out.append(list(parse('ct_cal_pm', '900, 1000,1100')))
out.append(list(parse('ct_cal_pm', '[900,1000,1100]')))
out.append(list(parse('meter', 'sdm630')))
out.append(list(parse('wifi_ssid', ' my net ')))
out.append(list(parse('nokey', 'x')))
c = Config()
out.append([c.set_text('require_auth', 'on'), c.get('require_auth'), c.set_text('mains_v', 'abc')])
result = out
""")
    assert r[:9] == [[True, None], [False, None], [True, None], [False, None], [True, None],
                     [False, None], [True, None],
                     [None, "lock: 'maybe' is not a bool, use true|false|1|0|on|off"],
                     [None, "lock: '2' is not a bool, use true|false|1|0|on|off"]]
    assert r[9] == [20, None]
    assert r[10] == [None, "max_current_a: '20.5' is not an integer"]
    assert r[11] == [None, "max_current_a: 99 out of range, allowed 6..80"]
    assert r[12] == [1, None]
    assert r[13] == r[14] == [[900, 1000, 1100], None]
    assert r[15] == ["sdm630", None]
    assert r[16] == [" my net ", None]
    assert r[17] == [None, "unknown key 'nokey' (see describe())"]
    assert r[18] == [None, True, "mains_v: 'abc' is not an integer"]


def test_describe_lists_every_key(mp):
    text = run(mp, "result = Config().describe()")
    lines = text.splitlines()
    assert [ln.split()[0] for ln in lines] == list(SPEC)
    row = [ln for ln in lines if ln.startswith("max_current_a")][0]
    assert "int 6..80" in row and "16" in row and "installation limit" in row
    assert "(secret)" in [ln for ln in lines if ln.startswith("wifi_password")][0]


def test_derived_names_and_reset(mp):
    r = run(mp, """
c = Config()
c.set('id', 'garage')
a = [c.client_id(), c.base_topic()]
c.update({'mqtt_client_id': 'cid', 'mqtt_base': 'x/y'})
b = [c.client_id(), c.base_topic()]
c.reset()
result = [a, b, c.as_dict(False) == Config().as_dict(False)]
""")
    assert r == [["wallbox-garage", "wallbox/garage"], ["cid", "x/y"], True]


def test_persisted_and_logged(mp, tmp_path):
    r = run(mp, """
s = fresh(data)
c = Config(s)
c.update({'max_current_a': 32, 'wifi_password': 'topsecret'})
c.set('phases', 1)
c.set('phases', 1)              # no change: no event, no version bump
s.flush()
c2 = Config(S.Store(data))
ev = [[e['type'], e['detail']] for e in S.Store(data).events()]
raw = open(data + '/config').read()
result = [c2.get('max_current_a'), c2.get('phases'), c2.get('wifi_password'), c.version, ev,
          'topsecret' in str(ev)]
""", str(tmp_path / "c"))
    assert r[:4] == [32, 1, "topsecret", 2]
    assert r[4] == [["config", "max_current_a,wifi_password"], ["config", "phases"]]
    assert r[5] is False  # secret values never reach the event log


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "not_dict"])
def test_corrupt_file_gives_defaults_and_event(mp, tmp_path, damage):
    r = run(mp, """
path, damage = data
s = fresh(path)
c = Config(s)
c.update({'max_current_a': 32, 'mqtt_host': 'h'}); s.flush()
p = path + '/config'
b = bytearray(open(p, 'rb').read())
if damage == 'truncate':
    b = b[:len(b) // 2]
elif damage == 'flip':
    b[-4] ^= 0x20
elif damage == 'garbage':
    b = b'\\x00' * 40
else:
    b = S.encode([1, 2], 1)
open(p, 'wb').write(b)
s2 = S.Store(path)
c2 = Config(s2)
result = [c2.as_dict(False) == Config().as_dict(False),
          [e['detail'] for e in s2.events() if e['type'] == 'config_corrupt'], s2.flush_due()]
""", [str(tmp_path / "c"), damage])
    defaults, details, due = r
    assert defaults
    assert len(details) == 1 and details[0].startswith("defaults")
    assert due  # the event is written at the next flush


def test_invalid_value_in_valid_file_defaults_that_key(mp, tmp_path):
    r = run(mp, """
s = fresh(data)
open(data + '/config', 'wb').write(S.encode({'max_current_a': 999, 'mqtt_host': 'h', 'gone': 1,
                                              'phases': 1}, 1))
s2 = S.Store(data)
c = Config(s2)
result = [c.get('max_current_a'), c.get('mqtt_host'), c.get('phases'),
          [e['detail'] for e in s2.events() if e['type'] == 'config_corrupt']]
""", str(tmp_path / "c"))
    assert r == [16, "h", 1, ["defaults for: gone,max_current_a"]]


def test_missing_file_is_silent_defaults(mp, tmp_path):
    r = run(mp, """
s = fresh(data); c = Config(s)
result = [c.as_dict(False) == Config().as_dict(False), s.events()]
""", str(tmp_path / "c"))
    assert r == [True, []]


# ---- property: config.set never raises; an error changes nothing ----------
KEYS = list(SPEC) + ["", "ID", "max_current", "x" * 30]
values = hs.one_of(
    hs.none(), hs.booleans(),
    hs.integers(min_value=-(2 ** 40), max_value=2 ** 40), hs.integers(min_value=-5, max_value=300),
    hs.sampled_from([-2001, -1, 0, 1, 5, 6, 80, 81, 247, 500, 2000, 2001, 65535, 65536, 86400]),
    hs.floats(allow_nan=False, allow_infinity=False), hs.sampled_from([6.0, 16.0, 16.5, 1e300]),
    hs.text(max_size=70), hs.sampled_from(["none", "sdm630", "wb-1", "a/#", "true"]),
    hs.lists(hs.one_of(hs.integers(min_value=400, max_value=2100),
                       hs.floats(allow_nan=False, allow_infinity=False),
                       hs.booleans()), max_size=4),
    hs.dictionaries(hs.text(max_size=3), hs.integers(), max_size=2),
)
ops = hs.lists(hs.tuples(hs.sampled_from(KEYS), values), min_size=1, max_size=25)


def _norm(v):
    if isinstance(v, float) and v == int(v):
        return int(v)
    if isinstance(v, list):
        return [_norm(x) for x in v]
    return v


@given(ops)
def test_property_set_never_raises_error_means_unchanged(mp, seq):
    r = run(mp, """
c = Config()
out = []
for k, v in data:
    before = c.as_dict(False)
    err = c.set(k, v)
    after = c.as_dict(False)
    out.append([err, [x for x in after if after[x] != before[x]], after.get(k) if type(k) is str else None])
result = out
""", [list(op) for op in seq])
    for (k, v), (err, changed, now) in zip(seq, r):
        if err is not None:
            assert isinstance(err, str) and err and changed == [], (k, v, err)
        else:
            assert k in SPEC and changed in ([], [k])
            assert json.dumps(now) == json.dumps(_norm(v)), (k, v, now)


def test_inf_nan_and_huge_rejected(mp):
    r = run(mp, """
c = Config()
result = [c.set('max_current_a', float('inf')), c.set('max_current_a', float('nan')),
          c.set('max_current_a', 10 ** 30), c.set('ct_cal_pm', [float('nan')] * 3), c.version]
""")
    assert r[0] == "max_current_a: inf is not a whole number"
    assert r[1] == "max_current_a: nan is not a whole number"
    assert r[2].startswith("max_current_a: 1000000000000000000000000000000 out of range")
    assert r[3] == "ct_cal_pm: nan is not a whole number" and r[4] == 0
