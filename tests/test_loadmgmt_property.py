"""Property tests for firmware/core/loadmgmt.py: hypothesis generates house histories (other
loads per phase, PV, meter noise, feed gaps, EV draws and delays, plug/unplug);
tests/device/lm_sim.py runs them in the unix port at 100 ms steps with a reading a second,
and its oracle checks the fuse, feed-loss, phase-switch and offer-rate rules on every step."""
from hypothesis import given, strategies as st

WAIT = st.integers(1, 120).map(lambda n: n * 500)
OTHER = st.tuples(st.integers(0, 2), st.sampled_from([0, 2000, 5000, 10000, 16000, 20000, 24000,
                                                      30000]))
ACTION = st.one_of(
    st.tuples(st.just("wait"), WAIT),
    st.tuples(st.just("wait"), WAIT),
    st.tuples(st.just("wait"), WAIT),
    st.tuples(st.just("other"), OTHER),
    st.tuples(st.just("other"), OTHER),
    st.tuples(st.just("pv"), st.sampled_from([0, 0, 3000, 6000, 8000, 12000, 20000])),
    st.tuples(st.just("noise"), st.sampled_from([0, 500, 3000])),
    st.tuples(st.just("silent"), st.sampled_from([False, False, True])),
    st.tuples(st.just("plug"), st.sampled_from([True, True, True, False])),
    st.tuples(st.just("want"), st.sampled_from([6000, 10000, 16000, 32000])),
    st.tuples(st.just("delay"), st.sampled_from([100, 1000, 3000, 5000])),
)

CFG = st.fixed_dictionaries({
    "mode": st.sampled_from([1, 1, 2, 3]),
    "fuse_ma": st.sampled_from([10000, 16000, 25000, 35000]),
    "import_ma": st.sampled_from([0, 0, 3000]),
    "start_ms": st.sampled_from([0, 10000, 60000]),
    "stop_ms": st.sampled_from([0, 30000, 300000]),
    "min_charge_ms": st.sampled_from([0, 60000, 600000]),
    "min_pause_ms": st.sampled_from([0, 5000, 60000]),
    "safe_ma": st.sampled_from([0, 6000]),
    "phase_switch": st.booleans(),
    "switch_min_ms": st.sampled_from([30000, 300000]),
    "timeout_ms": st.sampled_from([3000, 11000]),
})

STEPS = []


def run(mp, actions, cfg, check_rate=False):
    return mp.run("import lm_sim\nresult = lm_sim.run_actions(data[0], data[1], data[2])",
                  [actions, cfg, check_rate])


@given(cfg=CFG, actions=st.lists(ACTION, min_size=5, max_size=40))
def test_loadmgmt_property_fuse_feed_switch(mp, cfg, actions):
    r = run(mp, [list(a) for a in actions] + [["wait", 20000]], cfg)
    assert r["n_errors"] == 0, r["errors"]
    STEPS.append(r["steps"])


NOISY = st.lists(st.one_of(
    st.tuples(st.just("wait"), WAIT),
    st.tuples(st.just("pv"), st.sampled_from([6000, 8000, 12000, 20000])),
    st.tuples(st.just("noise"), st.sampled_from([1000, 3000, 8000])),
), min_size=3, max_size=20)


@given(mode=st.sampled_from([2, 3]), actions=NOISY)
def test_loadmgmt_property_offer_rate_under_noisy_surplus(mp, mode, actions):
    cfg = {"mode": mode, "fuse_ma": 200000, "start_ms": 0, "min_pause_ms": 0}
    r = run(mp, [["noise", 3000], ["pv", 10000]] + [list(a) for a in actions], cfg, True)
    assert r["n_errors"] == 0, r["errors"]
    STEPS.append(r["steps"])


def test_zz_loadmgmt_property_step_count():
    if STEPS:
        print("\nloadmgmt property: %d histories, %d steps" % (len(STEPS), sum(STEPS)))
        assert sum(STEPS) > 10000
