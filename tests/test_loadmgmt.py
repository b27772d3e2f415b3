"""Scenario tests for firmware/core/loadmgmt.py in the unix port, on the house model of
tests/device/lm_sim.py (100 ms steps, a mains reading a second)."""

PRE = ("import lm_sim as S\nfrom firmware.core import loadmgmt as L\n"
       "def snap(h):\n    lm = h.lm\n"
       "    return {'offer': lm.offer_ma, 'reason': L.REASON_NAMES[lm.reason], 'text': L.reason_text(lm),"
       " 'phases': h.phases, 'draw': h.draw, 'contactor': h.contactor, 'cycles': lm.cycles,"
       " 'switches': lm.switches, 'surplus': lm.surplus_ma, 'errors': h.errors}\n")


def sc(mp, body):
    return mp.run(PRE + body)


def test_house_fuse_takes_what_is_left_pauses_and_resumes(mp):
    r = sc(mp, """
h = S.House(S.make_cfg({'mode': L.MODE_NORMAL, 'fuse_ma': 25000, 'min_pause_ms': 30000}))
out = []
h.run(5000); out.append(snap(h))
h.other[1] = 15000; h.run(3000); out.append(snap(h))     # oven on L2: 10 A left
h.other[1] = 21000; h.run(3000); out.append(snap(h))     # 4 A left: pause
h.other[1] = 0; h.run(10000); out.append(snap(h))        # minimum pause still running
h.run(30000); out.append(snap(h))
result = out
""")
    free, oven, full, waiting, back = r
    assert free["offer"] == 25000 and free["draw"] == 16000 and free["reason"] == "house fuse"
    assert oven["offer"] == 10000 and oven["draw"] == 10000 and oven["text"] == "house fuse 25 A"
    assert full["offer"] == 0 and full["reason"] == "house fuse: paused" and full["draw"] == 0
    assert waiting["offer"] == 0 and waiting["reason"] == "minimum pause"
    assert back["offer"] == 25000 and back["draw"] == 16000 and back["cycles"] == 2
    assert all(not s["errors"] for s in r)


def test_overload_lowers_the_offer_within_two_seconds(mp):
    r = sc(mp, """
h = S.House(S.make_cfg({'mode': L.MODE_NORMAL, 'fuse_ma': 25000}))
h.run(5000)
h.other[0] = 18000
t0 = h.now
while h.lm.offer_ma > 7000:
    h.run(100)
result = h.now - t0
""")
    assert r <= 2000


def test_silent_feed_gives_the_safe_current_then_recovers(mp):
    r = sc(mp, """
h = S.House(S.make_cfg({'mode': L.MODE_NORMAL, 'fuse_ma': 32000, 'timeout_ms': 11000}))
h.run(5000); a = snap(h)
h.silent = True; h.run(10000); b = snap(h)
h.run(2500); c = snap(h)
h.silent = False; h.run(7000); d = snap(h)
result = [a, b, c, d, h.lm.feed_losses]
""")
    a, b, c, d, losses = r
    assert a["offer"] == 32000 and b["offer"] == 32000  # 10 s silent: still within 11 s
    assert c["offer"] == 6000 and c["reason"] == "mains feed lost" and c["text"].endswith("6 A")
    assert d["offer"] == 32000 and losses == 1


def test_pv_starts_on_surplus_holds_six_amps_then_stops(mp):
    r = sc(mp, """
h = S.House(S.make_cfg({'mode': L.MODE_PV, 'fuse_ma': 25000, 'start_ms': 10000,
                        'stop_ms': 20000, 'min_charge_ms': 30000, 'min_pause_ms': 0}))
out = []
h.run(5000); out.append(snap(h))                         # no sun: paused
for p in range(3): h.pv[p] = 9000                        # 27 A export
h.run(8000); out.append(snap(h))                         # start_s not over yet
h.run(60000); out.append(snap(h))                        # charging on surplus
for p in range(3): h.pv[p] = 3000                        # cloud: 9 A total
h.run(15000); out.append(snap(h))                        # 6 A held (stop_s, min_charge)
h.run(60000); out.append(snap(h))
result = out
""")
    dark, starting, sun, cloud, stopped = r
    assert dark["offer"] == 0 and dark["reason"] == "no solar surplus"
    assert starting["offer"] == 0 and not starting["contactor"]
    assert sun["contactor"] and 8000 <= sun["offer"] <= 9000 and sun["reason"] == "solar surplus"
    assert cloud["offer"] == 6000 and cloud["contactor"]
    assert stopped["offer"] == 0 and not stopped["contactor"] and stopped["cycles"] == 1
    assert all(not s["errors"] for s in r)


def test_minpv_keeps_six_amps_without_sun(mp):
    r = sc(mp, """
h = S.House(S.make_cfg({'mode': L.MODE_MINPV, 'fuse_ma': 25000}))
h.run(10000); a = snap(h)
for p in range(3): h.pv[p] = 12000
h.run(90000); b = snap(h)
result = [a, b]
""")
    a, b = r
    assert a["offer"] == 6000 and a["reason"] == "minimum current" and a["contactor"]
    assert 11000 <= b["offer"] <= 12000 and b["reason"] == "solar surplus"


def test_phase_switch_only_open_and_at_most_once_per_interval(mp):
    r = sc(mp, """
h = S.House(S.make_cfg({'mode': L.MODE_PV, 'fuse_ma': 25000, 'start_ms': 0, 'stop_ms': 5000,
                        'min_charge_ms': 0, 'min_pause_ms': 0, 'phase_switch': True,
                        'switch_min_ms': 300000}))
for p in range(3): h.pv[p] = 8000                        # 24 A: three phases
h.run(60000); a = snap(h)
for p in range(3): h.pv[p] = 3000                        # 9 A: one phase
h.run(60000); b = snap(h)
for p in range(3): h.pv[p] = 8000                        # back up: but within 300 s
h.run(120000); c = snap(h)
h.run(300000); d = snap(h)
result = [a, b, c, d]
""")
    a, b, c, d = r
    assert a["phases"] == 3 and a["contactor"] and 7000 <= a["offer"] <= 8000
    assert b["phases"] == 1 and b["contactor"] and b["switches"] == 1 and 8000 <= b["offer"] <= 9000
    assert c["phases"] == 1 and c["switches"] == 1
    assert d["phases"] == 3 and d["switches"] == 2 and d["contactor"]
    assert all(not s["errors"] for s in r)


def test_mode_off_makes_no_claim(mp):
    r = sc(mp, """
h = S.House(S.make_cfg({'mode': L.MODE_OFF}))
h.other[0] = 90000
h.run(3000)
result = [h.lm.offer_ma, h.lm.reason]
""")
    assert r == [80000, 0]


def test_dimming_current_for_4200_w(mp):
    r = mp.run("from firmware.core import loadmgmt as L\n"
               "result = [L.dim_ma(4200, 230000, 1), L.dim_ma(4200, 230000, 3)]")
    assert r == [18260, 6086]


def test_step_allocates_nothing(mp):
    r = sc(mp, """
import micropython
h = S.House(S.make_cfg({'mode': L.MODE_PV, 'phase_switch': True, 'start_ms': 0}))
for p in range(3): h.pv[p] = 8000
h.run(20000)
lm = h.lm
n = h.now
micropython.heap_lock()
try:
    for i in range(2000):
        n += 100
        if i % 10 == 0:
            lm.feed(-9000, -8000, -7000, n)
        lm.step(n)
finally:
    micropython.heap_unlock()
result = lm.offer_ma
""")
    assert r >= 6000


def test_mains_payload_is_read_strictly(mp):
    """set/mains (firmware/services/mains.py parse_mains) reads its JSON and numbers with the
    one strict parser (issue 12 item 4): what json.loads/float() would take is an error."""
    good = ["12.5,3,-4.2", " 12.5 , 3 , -4.2 ", "[12.5, 3, -4.2]", '{"currents": [12.5, 3, -4.2]}',
            '{"currents": [12.5, 3, -4.2], "ts": 1733300000}', [12.5, 3, -4.2], "1e1,0,-0"]
    bad = ["[1, 2, 3,]", '{"currents": [1, 2, 3], "currents": [4, 5, 6]}', "[1, 2, 3] x",
           "[01, 2, 3]", "[NaN, 2, 3]", "+5,1,2", "0x10,1,2", "1_0,2,3", "nan,1,2", "inf,1,2",
           "1,,2", "1,2", "[1, 2, 999]", [True, 1, 2], [None, 1, 2], ["1", "2", "x"], 5,
           '{"currents": [1, 2, 3], "ts": 1.5}', '["\\ud800", 1, 2]']
    r = mp.run("from firmware.services.mains import parse_mains\n"
               "result = [list(parse_mains(p)) for p in data]", good + bad)
    for p, (v, err) in zip(good, r[:len(good)]):
        assert err is None, (p, err)
    assert r[0][0][0] == [12500, 3000, -4200] and r[4][0][1] == 1733300000
    assert r[6][0][0] == [10000, 0, 0]
    for p, (v, err) in zip(bad, r[len(good):]):
        assert v is None and err.startswith("mains: "), (p, v, err)
