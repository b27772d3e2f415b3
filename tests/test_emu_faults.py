"""Faults at the pins of the emulated RP2040 while charging: each opens the contactor,
and the latency from the fault at the pins (emulated t0) to the contactor pin falling
(t1) is emulated time, whatever the host's load. Bounds: 100 ms for the CP changes
(IEC 61851-1 Table A.6 seq. 8.1, iec61851.md section 3), the RCD's hard IRQ well under
one control tick; the figures go to bench/rp2040.json (make emu)."""
from emu_chip import boot_firmware, needs_node
from scenarios import data, open_latency_ms, plug_and_charge, wait_state

pytestmark = needs_node


def _charging():
    chip = boot_firmware()
    try:
        plug_and_charge(chip)
    except BaseException:
        chip.stop()
        raise
    return chip


def test_unplug_under_load_then_rcd_trip():
    chip = _charging()
    try:
        assert open_latency_ms(chip, ev="A") <= 100  # unplugged: CP at +12 V
        st = wait_state(chip, ("A",), 3000)
        assert not st["faults"]
        plug_and_charge(chip)  # a new session after the replug
        assert open_latency_ms(chip, rcd=1) <= 5  # hard IRQ opens the coil itself
        st = wait_state(chip, ("F", "E"), 2000)
        assert "rcd_trip" in st["faults"] and st["contactor"] is False
    finally:
        chip.stop()


def test_missing_diode():
    chip = _charging()
    try:
        assert open_latency_ms(chip, diode=False) <= 100
        st = data(chip, "status")
        assert "diode" in st["faults"] and st["contactor"] is False
    finally:
        chip.stop()


def test_over_temperature():
    chip = _charging()
    try:
        assert open_latency_ms(chip, tempC=80) <= 100  # 71 C stop threshold, read each tick
        st = data(chip, "status")
        assert "overtemp" in st["faults"] and st["contactor"] is False
    finally:
        chip.stop()


def test_cp_short_to_pe():
    chip = _charging()
    try:
        assert open_latency_ms(chip, ev="E") <= 100
        st = data(chip, "status")
        assert st["contactor"] is False and st["state"] in ("E", "F")
    finally:
        chip.stop()
