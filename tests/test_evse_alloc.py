def test_steady_state_step_allocates_nothing(mp):
    # heap_lock makes any allocation raise MemoryError: 2000 steps per steady state.
    r = mp.run("import evse_bench\nresult = evse_bench.alloc_check()")
    assert r == {"A": "A", "B2": "B2", "C2": "C2"}


def test_step_profile_runs_and_keeps_each_steady_state(mp):
    # tests/device/evse_profile.py (make emu runs it on the emulated RP2040): every
    # handler of the step, called alone, leaves the steady state as it was (it asserts).
    r = mp.run("import evse_profile\nresult = evse_profile.profile(5)")
    assert sorted(r) == ["A", "B2", "C2"]
    for parts in r.values():
        assert {"classify", "limits", "contactor", "set_outputs", "step"} <= set(parts)
