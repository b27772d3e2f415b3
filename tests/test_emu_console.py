"""The technician console over the same USB REPL while the emulated RP2040 charges:
commands are answered, the contactor stays closed, and the control loop keeps its
period (the loop-gap figure the firmware itself measures, in emulated time)."""
from emu_chip import MS, needs_node, boot_firmware
from scenarios import data, plug_and_charge

pytestmark = needs_node


def _console_while_charging(single_loop):
    chip = boot_firmware(single_loop=single_loop)
    try:
        plug_and_charge(chip)
        end = chip.now() + 1000 * MS
        n = 0
        while chip.now() < end:
            mark = len(chip.out)
            chip.write(b"\x02\rstatus()\r")  # friendly console, as a technician types
            chip.wait_text(b"wb> ", 60, chip.wait_text(b"loop ", 60, mark))
            text = bytes(chip.out[mark:]).decode("utf-8", "replace")
            chip.write(b"log(5)\r")
            chip.wait_text(b"wb> ", 60, mark + 10)
            n += 1
        st = data(chip, "status")
        assert n >= 2 and st["state"] == "C2" and st["contactor"] is True
        assert chip.status()["world"]["contactor"] == 1
        return st, text
    finally:
        chip.stop()


def test_console_while_charging_keeps_the_loop_period():
    # The control loop on core 1 (control_thread, the default): the console on core 0
    # no longer holds it (134 ms single loop, below). What is left: core 0's garbage
    # collections hold core 1 (it takes the GC lock every tick): 38 ms measured, ~25 ms
    # of it one gc.collect() (docs/emulator.md "Findings").
    st, text = _console_while_charging(single_loop=False)
    assert st["control"] == "thread" and "ms period  thread" in text
    assert st["max_gap_ms"] < 60, st["max_gap_ms"]


def test_console_while_charging_single_loop():
    # The single-loop build (control_thread off): a console command holds the tick
    # while it runs: status() measured 134 ms here, longer than the standard's 100 ms
    # (docs/emulator.md "Findings"). Bound: the single-loop console bound of the unix tests.
    st, text = _console_while_charging(single_loop=True)
    assert st["control"] == "loop" and "ms period  single" in text
    assert st["max_gap_ms"] < 250, st["max_gap_ms"]
