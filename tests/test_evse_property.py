"""Property tests: hypothesis generates random physical histories (plug/unplug, S2, noise,
glitches, diode faults, RCD faults, welds, temperatures, currents, limits, commands, time
jumps); tests/device/evse_sim.py runs them through evse.step in the unix port, stepping
every 10 ms, and an independent oracle checks the safety rules of DESIGN.md on every step."""
import pytest
from hypothesis import given, settings, strategies as st, find

EV = st.sampled_from("AABBCCCCDE")
WAIT = st.integers(1, 300).map(lambda n: n * 10)

ACTION = st.one_of(
    st.tuples(st.just("ev"), EV),
    st.tuples(st.just("ev"), EV),
    st.tuples(st.just("wait"), WAIT),
    st.tuples(st.just("wait"), WAIT),
    st.tuples(st.just("wait"), WAIT),
    st.tuples(st.just("diode"), st.booleans()),
    st.tuples(st.just("noise"), st.integers(-350, 350)),
    st.tuples(st.just("noise"), st.integers(-9000, 9000)),
    st.tuples(st.just("rcd"), st.sampled_from([False, False, False, True])),
    st.tuples(st.just("rcd_broken"), st.sampled_from([False, False, True])),
    st.tuples(st.just("weld"), st.sampled_from([False, False, False, True])),
    st.tuples(st.just("temp"), st.integers(200, 760)),
    st.tuples(st.just("draw"), st.sampled_from([0, 0, 0, 5000, 17000, 20000, 30000, 45000])),
    st.tuples(st.just("want"), st.integers(6000, 40000)),
    st.tuples(st.just("limit"), st.sampled_from([0, 6000, 10000, 16000, 32000, 5000, -1, 90000])),
    st.tuples(st.just("enable"), st.booleans()),
    st.tuples(st.just("auth"), st.none()),
    st.tuples(st.just("reset"), st.none()),
    st.tuples(st.just("phases"), st.sampled_from([1, 2, 3])),
    st.tuples(st.just("pp"), st.sampled_from([100, 220, 680, 1500, 10, 100000])),
    st.tuples(st.just("jump"), st.integers(10, 70000)),
)

CFG = st.fixed_dictionaries({
    "require_auth": st.booleans(),
    "ventilation": st.booleans(),
    "lock_fitted": st.booleans(),
    "phase_switch": st.booleans(),
    "max_ma": st.sampled_from([6000, 16000, 32000]),
    "cable_fixed_ma": st.sampled_from([0, 0, 20000]),
    "min_off_ms": st.sampled_from([0, 5000, 60000]),
    "retry_ms": st.sampled_from([5000, 60000]),
    "ev_off_ms": st.sampled_from([0, 5000]),
})

# A charging session prefix, so most examples spend their time around a closed contactor.
PREFIX = [["wait", 1500], ["ev", "B"], ["wait", 1000], ["auth", None], ["ev", "C"], ["wait", 500]]


def run(mp, actions, cfg, mutant=None, start=0):
    return mp.run("import evse_sim\nresult = evse_sim.run_actions(data[0], data[1], data[2], data[3])",
                  [actions, cfg, start, mutant])


# start ticks: 0, 3 s before the ticks wrap, and half the chip's ticks period (2**30 with
# 31-bit small ints: ticks_add takes deltas up to 2**29 - 1 there)
@given(cfg=CFG, actions=st.lists(ACTION, min_size=5, max_size=60),
       start=st.sampled_from([0, -3000, (1 << 29) - 1]))
def test_safety_rules_hold_on_every_step(mp, cfg, actions, start):
    start = mp.run("from time import ticks_add\nresult = ticks_add(0, data)", start)
    r = run(mp, PREFIX + [list(a) for a in actions], cfg, start=start)
    assert r["n_errors"] == 0, r["errors"]
    STEPS.append(r["steps"])


STEPS = []


def test_replug_during_a_running_rcd_test_gets_its_own_test(mp):
    # Found by the property test: a re-plug straight into C while the RCD self-test of the
    # plug-in before was still running. An A shorter than the debounce is no unplug (same
    # session, its test stands); a real one (>= 3 samples) makes the new session test again.
    cfg = {"require_auth": False, "ventilation": False, "lock_fitted": False,
           "phase_switch": False, "max_ma": 6000, "cable_fixed_ma": 0, "min_off_ms": 0,
           "retry_ms": 5000, "ev_off_ms": 0}
    for a_ms in (10, 30, 60, 200):
        acts = [["ev", "A"], ["wait", 500], ["ev", "B"], ["wait", 20], ["ev", "A"],
                ["wait", a_ms - 10], ["ev", "C"], ["wait", 120], ["wait", 3000]]
        r = run(mp, PREFIX + acts, cfg)
        assert r["n_errors"] == 0, (a_ms, r["errors"])
        assert r["closed_steps"] > 50, (a_ms, r)  # and it does charge again


def test_zz_property_step_count():
    # Runs after the property test in this module: report (and require) the volume.
    if STEPS:
        print("\nproperty: %d histories, %d evse steps" % (len(STEPS), sum(STEPS)))
        assert sum(STEPS) > 10000


def test_property_runs_cover_thousands_of_steps_with_charging(mp):
    # The generator really drives the machine through charging: sample a few histories.
    acts = find(st.lists(ACTION, min_size=30, max_size=40), lambda a: True,
                settings=settings(database=None, max_examples=1))
    r = run(mp, PREFIX + [list(a) for a in acts] + [["wait", 3000]] * 10, {})
    assert r["steps"] > 3000 and r["closed_steps"] > 0 and r["n_errors"] == 0


def test_oracle_catches_contactor_held_one_step_after_unplug(mp):
    # Mutation check (issue 2): a step() that opens one step late must be caught,
    # both by a plain unplug and by the random search.
    r = run(mp, PREFIX + [["ev", "A"], ["wait", 200]], {}, mutant="delay_open")
    assert r["n_errors"] >= 1 and "left C/D" in r["errors"][0]
    assert run(mp, PREFIX + [["ev", "A"], ["wait", 200]], {})["n_errors"] == 0

    def violates(actions):
        return run(mp, PREFIX + [list(a) for a in actions], {}, mutant="delay_open")["n_errors"] > 0

    found = find(st.lists(ACTION, min_size=1, max_size=20), violates,
                 settings=settings(database=None, max_examples=200, deadline=None))
    assert found
