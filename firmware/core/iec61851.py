# IEC 61851-1 (mode 3) numbers: control-pilot classification, PWM duty <-> current,
# proximity-pilot cable rating. Pure and integer-only (mV, mA, permille, ohm), so the
# same code runs on CPython, the unix port and a board, and never allocates per call.
# Section numbers "ref §n" point at ../shared/reference/iec61851.md.
from micropython import const

# CP states as small ints (index into STATE_LETTERS).
ST_A = const(0)  # +12 V: no EV
ST_B = const(1)  # +9 V: EV connected, not ready (R2 2.74 kOhm)
ST_C = const(2)  # +6 V: EV ready, charge (882 Ohm)
ST_D = const(3)  # +3 V: charge with ventilation (246 Ohm)
ST_E = const(4)  # 0 V: CP shorted to PE / no power
ST_F = const(5)  # -12 V: driven by the EVSE itself (not available / fault)
ST_ERR = const(6)  # reading outside every plausible band
ST_UNKNOWN = const(7)  # nothing accepted yet (after boot or after driving F)
STATE_LETTERS = "ABCDEF??"

# Level thresholds: midpoints between the nominal levels 12/9/6/3/0 V (ref §8 "CP
# classification"; nominal levels ref §1; esp32-evse uses the same midpoints).
_TH_AB = const(10500)
_TH_BC = const(7500)
_TH_CD = const(4500)
_TH_DE = const(1500)
_THRESHOLDS = (_TH_AB, _TH_BC, _TH_CD, _TH_DE)
HYSTERESIS_MV = const(400)  # towards the current state (ref §8; Tinkerforge-style)
# The thresholds as seen from each accepted state (index: ST_*): the one above it is
# HYSTERESIS_MV lower, the one below it HYSTERESIS_MV higher, so the state is held
# longer. Computed once: classify() runs on every control tick.
_TH_FROM = tuple(tuple(t - HYSTERESIS_MV if s == k else t + HYSTERESIS_MV if s == k + 1 else t
                       for k, t in enumerate(_THRESHOLDS)) for s in range(8))
# Beyond +-13.5 V nothing on a 12 V +-0.6 V generator can be real (ref §1): a reading error.
_PLAUSIBLE_MV = const(13500)
# Diode check: with PWM on, the low half must reach -10.5 V or below (ref §8 "diode check";
# negative level nominal -12 V, min -11.4 V per the J1772 table of ref §1).
DIODE_MAX_LOW_MV = const(-10500)

# Debounce (ref §8): a state is accepted after it was seen on N consecutive samples.
# Leaving C/D (less power) takes 2 samples so the contactor opens well inside the
# 100 ms of ref §3 at a 10 ms tick; entering a state takes 3.
N_ENTER = const(3)
N_LEAVE_POWER = const(2)
N_DIODE = const(2)


class PilotClassifier:
    """Turns CP high/low levels (mV) into a debounced state and a diode verdict.

    A noisy ADC cannot flip the state: a sample must cross the midpoint plus the
    hysteresis, and keep doing so on consecutive samples."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.state = ST_UNKNOWN
        self.diode_ok = False  # diode seen on the last N_DIODE PWM samples
        self.diode_bad = False  # diode missing/shorted on the last N_DIODE PWM samples
        self.raw = ST_UNKNOWN  # classification of the last sample alone
        self._cand = ST_UNKNOWN
        self._count = 0  # consecutive samples agreeing on _cand
        self._away = 0  # consecutive samples that differ from the accepted state
        self.confirming = False  # in C/D with a sample that says otherwise: confirm soon
        self._diode_bad = 0
        self._diode_good = 0

    def reset_diode(self):
        self.diode_ok = False
        self.diode_bad = False
        self._diode_bad = 0
        self._diode_good = 0

    def classify(self, high_mv):
        """One sample -> state, with hysteresis towards the current state."""
        if high_mv > _PLAUSIBLE_MV or high_mv < -_PLAUSIBLE_MV:
            return ST_ERR
        th = _TH_FROM[self.state]
        if high_mv >= th[0]:
            return ST_A
        if high_mv >= th[1]:
            return ST_B
        if high_mv >= th[2]:
            return ST_C
        if high_mv >= th[3]:
            return ST_D
        return ST_E

    def update(self, high_mv, low_mv, pwm_on):
        """Feed one sample; return the debounced state."""
        r = self.classify(high_mv)
        self.raw = r
        s = self.state
        if r == s:
            self._count = 0
            self._away = 0
        else:
            self._away += 1
            if r == self._cand:
                self._count += 1
            else:
                self._cand = r
                self._count = 1
            # Leaving a power state counts every sample that is not it, whatever it
            # is (an unplug may read A, then D...); entering a state needs agreement.
            if (s == ST_C or s == ST_D) and self._away >= N_LEAVE_POWER:
                s = self.state = r
                self._count = 0
                self._away = 0
            elif self._count >= N_ENTER:
                s = self.state = r
                self._count = 0
                self._away = 0
        # Diode: only observable while the PWM's negative half is driven and an EV loads CP.
        # The counters stop at N_DIODE (the verdict): a long session never grows them.
        if ST_B <= s <= ST_D:
            if pwm_on:
                if low_mv <= DIODE_MAX_LOW_MV:
                    self._diode_bad = 0
                    if self._diode_good < N_DIODE:
                        self._diode_good += 1
                        if self._diode_good >= N_DIODE:
                            self.diode_ok = True
                            self.diode_bad = False
                else:
                    self._diode_good = 0
                    if self._diode_bad < N_DIODE:
                        self._diode_bad += 1
                        if self._diode_bad >= N_DIODE:
                            self.diode_ok = False
                            self.diode_bad = True
        else:
            # No EV: the next one must prove its diode again.
            self.diode_ok = False
            self.diode_bad = False
            self._diode_good = 0
            self._diode_bad = 0
        # A first sample against C/D or against the diode: the caller may confirm it soon.
        self.confirming = (((s == ST_C or s == ST_D) and self._away > 0)
                           or 0 < self._diode_bad < N_DIODE)
        return s


# --- PWM duty <-> current (ref §2 "EVSE encoding", ref §8 "duty from current") -----------
MIN_CURRENT_MA = const(6000)  # ref §2 "Minimum 6 A"
MAX_CURRENT_MA = const(80000)  # top of the second duty range, ref §2
_SPLIT_MA = const(51000)  # 6-51 A: D = I/0.6; 51-80 A: D = I/2.5 + 64 (ref §2)
_GAP_TOP_MA = const(52750)  # first current the second range can express above 51 A

DUTY_NONE = const(0)  # current_from_duty: no charging allowed
DUTY_INVALID = const(-1)  # a duty the standard reserves or forbids
DUTY_DIGITAL = const(-2)  # 5 %: digital communication required


def duty_pm_from_ma(ma):
    """Duty in permille for a current limit in mA, or DUTY_INVALID outside 6..80 A.
    16 A -> 267, 32 A -> 533, 63 A -> 892, 80 A -> 960 (ref §2 examples, rounded)."""
    if ma < MIN_CURRENT_MA or ma > MAX_CURRENT_MA:
        return DUTY_INVALID
    if ma <= _SPLIT_MA:
        return (ma + 30) // 60  # permille = I[mA] / 60, rounded to nearest
    if ma < _GAP_TOP_MA:
        # 85.0 % still decodes as 51 A (first range), so 51-52.75 A cannot be told
        # exactly: offer 51 A (EVerest clamps the same "gap in norm", ref §2).
        return 850
    return (ma + 125) // 250 + 640  # permille = I[mA] / 250 + 640, rounded


def ma_from_duty_pm(pm):
    """What an EV reads from a duty (ref §2 "EV decoding", Fluke FEV300 table):
    mA, DUTY_NONE (no charging), DUTY_DIGITAL (5 %) or DUTY_INVALID (reserved)."""
    if pm < 0 or pm > 1000:
        return DUTY_INVALID
    if pm < 30:
        return DUTY_NONE  # < 3 %: no charging
    if 45 <= pm <= 55:
        return DUTY_DIGITAL  # 5 % +-0.5 %: digital communication
    if pm < 80:
        return DUTY_INVALID  # 3-7 % (besides 5 %) and 7-8 %: error, no charging
    if pm < 100:
        return MIN_CURRENT_MA  # 8-10 %: 6 A
    if pm <= 850:
        return pm * 60  # 10-85 %: D x 0.6 A
    if pm <= 960:
        return (pm - 640) * 250  # 85-96 %: (D - 64) x 2.5 A
    if pm <= 970:
        return MAX_CURRENT_MA  # 96-97 %: 80 A
    return DUTY_NONE  # > 97 %: no charging (100 % = x1 state)


# --- Proximity pilot (ref §4): resistor in the cable plug -> cable rating --------------
# Thresholds from Tinkerforge's IEC61851_PP_RESISTANCE_* (ref §4 [TF]) for the bands
# around 1.5 kOhm / 680 / 220 / 100 Ohm. Open and short limits are ours: above 4 kOhm
# no 13 A resistor (1.5 kOhm +-3 %) can be meant; below 50 Ohm it is a short.
PP_OPEN_MIN_OHM = const(4000)
PP_SHORT_MAX_OHM = const(50)
_PP_13A_MIN = const(1000)
_PP_20A_MIN = const(330)
_PP_32A_MIN = const(150)


def pp_rating_ma(ohm):
    """Cable current rating in mA, or 0 when PP is open, shorted or unreadable."""
    if ohm < PP_SHORT_MAX_OHM or ohm >= PP_OPEN_MIN_OHM:
        return 0
    if ohm >= _PP_13A_MIN:
        return 13000
    if ohm >= _PP_20A_MIN:
        return 20000
    if ohm >= _PP_32A_MIN:
        return 32000
    return 63000
