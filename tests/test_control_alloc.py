"""The control path allocates nothing (issue 12 item 1: a control thread that allocates can
wait on a collection the asyncio side runs): one pass of the control loop -- sample,
evse.step, outputs, edge counters, gap figures, the CT chunk of thread mode -- on the sim
board under micropython.heap_lock(), through charging, an unplug and a plug-in. Also on the
32-bit VM (tools/mp32/, the chip's 31-bit small ints) at 230 V x 32 A x 3 phases, where the
products the tick forms (mV x mA: 7.4e9) would be long ints, allocated every tick."""

CODE = """
data, amps = data
import micropython, time
from firmware import startup
rt = startup.build({"data": data, "board": "sim", "sim_port": 0, "console": False, "safe": False,
                    "config": '{"min_off_s": 0, "ev_off_s": 0, "max_current_a": %d}' % amps})
w = rt.hw.world
w.delay_ms = 0
w.want_ma = amps * 1000
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
result = [charging, errors[:5], len(errors), states, w.mains_mv, w.draw_ma, w.live_phases(),
          w.energy_mwh]
"""


def _check(vm, tmp_path, amps):
    charging, first, n, states, mv, ma, phases, mwh = vm.run(CODE, [str(tmp_path / "store"), amps])
    assert charging
    assert n == 0, first
    assert states[0] == "C2" and states[1] == "A" and states[2][0] in "BC", states
    return mv, ma, phases, mwh


def test_control_pass_allocates_nothing(mp, tmp_path):
    _check(mp, tmp_path, 16)


def test_control_pass_allocates_nothing_on_32bit_at_32a(mp32, tmp_path):
    mv, ma, phases, mwh = _check(mp32, tmp_path, 32)
    # the figures the tick multiplies were beyond a 31-bit small int (2**30)
    assert mv == 230000 and ma >= 31000 and phases == 3, (mv, ma, phases)
    assert mv * ma > 2 ** 30 and mv // 1000 * ma * phases * 1000 > 2 ** 30
    assert mwh > 0  # the sim's energy integral ran in the locked passes
