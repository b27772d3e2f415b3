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
