"""A whole charging session on the emulated RP2040, at its pins: the firmware's PWM
(frequency and duty measured from the CP pin's edges) against the IEC duty formula
for the current it offers, the contactor pin following the EV, current from the
emulated SDM630, and the session record in the store afterwards."""
from emu_chip import MS, boot_firmware, needs_node
from scenarios import data, iec_duty_pct, open_latency_ms, plug_and_charge, wait_state

pytestmark = needs_node


def test_session_a_b_c_b_a_at_the_pins():
    chip = boot_firmware()
    try:
        st = data(chip, "status")
        assert st["state"] == "A" and chip.status()["world"]["contactor"] == 0
        b2, c2, close_ms = plug_and_charge(chip)
        w = chip.status()["world"]
        pwm = w["pwm"]
        assert abs(pwm["hz"] - 1000) < 5  # 1 kHz +-0.5 % (IEC 61851-1 Table A.7)
        # duty at the pin (time at +12 V over the period) = the offered current's duty
        assert abs(pwm["duty"] * 100 - iec_duty_pct(c2["allowed_a"])) < 0.5
        assert abs(pwm["duty"] * 1000 - c2["duty_pm"]) <= 5
        assert b2["contactor"] is False and close_ms <= 3000  # B2 -> C2: on within 3 s
        chip.sleep(2500)  # the meter is polled once a second
        st = data(chip, "status")
        assert st["contactor"] is True and st["state"] == "C2"
        amps = c2["allowed_a"]
        assert all(abs(a - amps) < 0.5 for a in st["current_a"]), st
        # C -> B: the contactor opens within 100 ms (Table A.6 seq. 8.1)
        assert open_latency_ms(chip, ev="B") <= 100
        wait_state(chip, ("B1", "B2"), 3000)
        chip.world(ev="A")
        st = wait_state(chip, ("A",), 3000)
        assert not st["faults"] and chip.status()["world"]["contactor"] == 0
        sessions = []
        end = chip.now() + 5000 * MS  # the sessions task closes the record (1 s period)
        while not sessions and chip.now() < end:
            chip.sleep(200)
            sessions = data(chip, "sessions", 5)
        assert len(sessions) == 1
        s = sessions[0]
        assert s["reason"] == "ev" and s["wh"] > 0 and abs(s["max_ma"] - amps * 1000) < 500
    finally:
        chip.stop()
