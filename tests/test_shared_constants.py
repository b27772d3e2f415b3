"""The same numbers are defined on both sides of the firmware/hal boundary (firmware/
never imports hal/): the pilot modes, the "no temperature" marker and the open-PP
resistance. If one side changes, this fails instead of the outputs silently meaning
something else."""


def test_constants_agree_across_the_hal_boundary(mp_fakes):
    r = mp_fakes.run("""
from firmware import evse as E
from firmware import iec61851 as I
from hal import pilot as P, temp as T, sim as S
names = ("PILOT_OFF", "PILOT_PLUS12", "PILOT_PWM", "PILOT_MINUS12")
result = {
    "pilot": [[getattr(m, n) for n in names] for m in (E, P, S)],
    "temp_none": [E.TEMP_NONE, T.TEMP_NONE, S.TEMP_NONE],
    "pp_open": [P.PP_OPEN_OHM, S.PP_OPEN_OHM, I.PP_OPEN_MIN_OHM],
}
""")
    evse, pilot, sim = r["pilot"]
    assert evse == pilot == sim and len(set(evse)) == 4
    assert len(set(r["temp_none"])) == 1
    hal_open, sim_open, iec_open_min = r["pp_open"]
    assert hal_open == sim_open and hal_open >= iec_open_min  # open reads as "no cable"
