"""The button held at power-on boots into safe mode (firmware/startup.py safe_mode_requested):
the sim bench holds it from boot (SimBench(world=...), boards/sim.py)."""
import time

from e2e import SimBench


def test_button_held_from_boot_means_safe_mode_and_release_boots_normally():
    b = SimBench(console=True, world={"button": True})
    try:
        time.sleep(0.5)
        r = b.read()
        assert r["world"]["button"] is True
        assert r["stats"]["ticks"] == 0  # no control loop
        assert (r["world"]["contactor"], r["world"]["pilot"]) == (False, 0)  # safe outputs
        b.plug()  # an EV asking for power gets nothing
        time.sleep(0.3)
        assert b.read()["world"]["contactor"] is False and b.stats()["ticks"] == 0
        assert "SAFE MODE" in b.log()
        assert any(e["type"] == "safe_mode" for e in b.events())
        b.kill()
        # Released at the next power-on: the application runs and charges.
        b.world = {}
        b.start()
        b.set(delay_ms=20)
        b.plug()
        b.wait_for(lambda r: r["status"]["contactor"], timeout=10, what="charging")
        assert b.stats()["ticks"] > 0
        assert b.read()["world"]["button"] is False
    finally:
        b.close()


def test_button_pressed_after_boot_does_not_stop_the_application():
    with SimBench(console=True) as b:
        b.set(delay_ms=20, button=True)  # pressed while running: safe mode is a boot choice
        b.plug()
        b.wait_for(lambda r: r["status"]["contactor"], timeout=10, what="charging")
        assert "SAFE MODE" not in b.log()


def test_the_boards_debounced_button_held_at_power_on_requests_safe_mode(mp_fakes):
    """On a board the button is hal/button.py's Button (the sim's reads the world without a
    debounce): its first reading only starts the 30 ms debounce, so the power-on check
    samples it for that long. Held (active low: 0) -> safe mode; released -> not."""
    r = mp_fakes.run("""
import time
from machine import Pin
from hal.button import Button
from firmware import startup
class HW:
    pass
out = []
for level in (0, 1):
    hw = HW()
    hw.button = Button(Pin(0, Pin.IN, value=level), 0)
    t0 = time.ticks_ms()
    out.append([startup.safe_mode_requested({"safe": False, "data": "/nonexistent"}, hw),
                time.ticks_diff(time.ticks_ms(), t0)])
result = out
""")
    (held, held_ms), (released, released_ms) = r
    assert held is True and held_ms >= 30  # after the debounce, not on the first reading
    assert released is False and released_ms >= 60
