"""The technician console over the same USB REPL while the emulated RP2040 charges:
commands are answered, the contactor stays closed, and the control loop keeps its
period (the loop-gap figure the firmware itself measures, in emulated time)."""
from emu_chip import MS, needs_node, boot_firmware
from scenarios import data, plug_and_charge

pytestmark = needs_node


def test_console_while_charging_keeps_the_loop_period():
    chip = boot_firmware()
    try:
        plug_and_charge(chip)
        end = chip.now() + 1000 * MS
        n = 0
        while chip.now() < end:
            mark = len(chip.out)
            chip.write(b"\x02\rstatus()\r")  # friendly console, as a technician types
            chip.wait_text(b"wb> ", 60, chip.wait_text(b"loop ", 60, mark))
            chip.write(b"log(5)\r")
            chip.wait_text(b"wb> ", 60, mark + 10)
            n += 1
        st = data(chip, "status")
        assert n >= 2 and st["state"] == "C2" and st["contactor"] is True
        assert chip.status()["world"]["contactor"] == 1
        # The emulated chip runs the single-loop build (no core 1 in the harness yet), where
        # a console command holds the tick while it runs: status() measured 134 ms here,
        # longer than the standard's 100 ms (docs/emulator.md "Findings"). Bound: the
        # single-loop console bound of the unix tests; core 1 is what brings it to 10 ms.
        assert st["max_gap_ms"] < 250, st["max_gap_ms"]
    finally:
        chip.stop()
