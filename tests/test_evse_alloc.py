def test_steady_state_step_allocates_nothing(mp):
    # heap_lock makes any allocation raise MemoryError: 2000 steps per steady state.
    r = mp.run("import evse_bench\nresult = evse_bench.alloc_check()")
    assert r == {"A": "A", "B2": "B2", "C2": "C2"}
