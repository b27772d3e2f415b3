"""The control path allocates nothing (issue 12 item 1: a control thread that allocates can
wait on a collection the asyncio side runs): one pass of the control loop -- sample,
evse.step, outputs, edge counters, gap figures, the CT chunk of thread mode -- on the sim
board under micropython.heap_lock(), through charging, an unplug and a plug-in."""

CODE = """
import micropython, time
from firmware import startup
rt = startup.build({"data": data, "board": "sim", "sim_port": 0, "console": False, "safe": False,
                "config": '{"min_off_s": 0, "ev_off_s": 0}'})
w = rt.hw.world
w.delay_ms = 0
rt._loop_start()
w.plugged = True
t0 = time.ticks_ms()
while not w.contactor and time.ticks_diff(time.ticks_ms(), t0) < 30000:
    time.sleep_ms(rt._loop_once())
    rt.hw.current.update()
charging = w.contactor
errors = []
states = []
for phase in ("charging", "unplugged", "plugged"):
    w.plugged = phase != "unplugged"
    for i in range(300):
        micropython.heap_lock()
        try:
            rt._loop_once()
            rt.hw.current.update()
            rt.hw.current.read_peak()
        except MemoryError:
            errors.append(phase)
        finally:
            micropython.heap_unlock()
        time.sleep_ms(1)
    states.append(rt.evse.outputs.state)
result = [charging, errors[:5], len(errors), states]
"""


def test_control_pass_allocates_nothing(mp, tmp_path):
    charging, first, n, states = mp.run(CODE, str(tmp_path / "store"))
    assert charging
    assert n == 0, first
    assert states[0] == "C2" and states[1] == "A" and states[2][0] in "BC", states
