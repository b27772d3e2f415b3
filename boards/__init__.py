# Board selection and driver construction.
#   load(name=None) -> board module: `name` (config), else by sys.platform:
#       esp32 -> esp32_devkit, rp2 -> rp2040_pico_w, linux -> sim
#   build(board, wifi=None) -> Hardware: attributes pilot, pp, contactor, rcd,
#       current, meter, temp, lock, led, button, wdt, wifi (None where absent).
# A board module may define its own build(hw) (boards/sim.py does): it is then
# called with an empty Hardware and fills it instead of the generic builder.
import sys

_BY_PLATFORM = {"esp32": "esp32_devkit", "rp2": "rp2040_pico_w", "linux": "sim"}


class Hardware:
    def __init__(self, board=None):
        self.board = board
        self.pilot = None
        self.pp = None
        self.contactor = None
        self.rcd = None
        self.current = None
        self.meter = None
        self.temp = None
        self.lock = None
        self.led = None
        self.button = None
        self.wdt = None
        self.wifi = None
        self.tick_lock = None  # a lock the control tick holds (the sim's world); None on boards

    def safe(self):
        """Contactor open, pilot off: callable from any `finally`."""
        if self.contactor is not None:
            self.contactor.set(False)
        if self.pilot is not None:
            self.pilot.set(0, 0)
        if self.lock is not None and getattr(self.lock, "busy", False):
            self.lock.update()


def load(name=None):
    if not name:
        name = _BY_PLATFORM.get(sys.platform)
        if name is None:
            raise ValueError("no board for platform %r" % sys.platform)
    mod = __import__("boards." + name, None, None, ("NAME",))
    return mod


def build(board, wifi=None, watchdog=True):
    """Construct every driver the board lists. `wifi` = (ssid, password[, gate])
    from config, or None. The WDT starts only if `watchdog`."""
    hw = Hardware(board)
    own = getattr(board, "build", None)
    if own is not None:
        return own(hw) or hw
    return _build_machine(board, hw, wifi, watchdog)


def _get(b, name, default=None):
    return getattr(b, name, default)


def _build_machine(b, hw, wifi, watchdog):
    import machine
    from hal.pilot import Pilot, Proximity
    from hal.contactor import Contactor
    from hal.rcd import Rcd

    Pin = machine.Pin
    atten = _get(b, "ADC_ATTEN")
    uv = _get(b, "ADC_USE_UV", False)
    fs = _get(b, "ADC_FS_MV", 3300)

    def adc(pin):
        a = machine.ADC(Pin(pin))
        if atten:
            a.atten(getattr(machine.ADC, atten))
        return a

    def opin(n, v=0):
        return None if n is None else Pin(n, Pin.OUT, value=v)

    def ipin(n, pull=None):
        if n is None:
            return None
        return Pin(n, Pin.IN, pull) if pull is not None else Pin(n, Pin.IN)

    pwm = machine.PWM(Pin(b.CP_PWM_PIN), freq=1000, duty_u16=65535 if b.CP_INVERT else 0)
    hw.pilot = Pilot(pwm, adc(b.CP_ADC_PIN), b.CP_ADC_MV_AT_0V, b.CP_ADC_MV_AT_P12V,
                     invert=b.CP_INVERT, enable=opin(b.CP_ENABLE_PIN), use_uv=uv,
                     adc_fs_mv=fs, rail_lo_mv=b.CP_ADC_RAIL_LO_MV,
                     rail_hi_mv=b.CP_ADC_RAIL_HI_MV, n_samples=b.CP_SAMPLES, top=b.CP_TOP)
    if _get(b, "PP_ADC_PIN") is not None:
        hw.pp = Proximity(adc(b.PP_ADC_PIN), b.PP_PULLUP_OHM, b.PP_VPU_MV, use_uv=uv,
                          adc_fs_mv=fs)
    hw.contactor = Contactor(opin(b.CONTACTOR_PIN), ipin(_get(b, "CONTACTOR_FB_PIN"), Pin.PULL_UP),
                             _get(b, "CONTACTOR_FB_CLOSED", 1), opin(_get(b, "PHASE_PIN")),
                             _get(b, "PHASES_FIXED", 3))
    if _get(b, "RCD_FAULT_PIN") is not None:
        hw.rcd = Rcd(ipin(b.RCD_FAULT_PIN), opin(_get(b, "RCD_TEST_PIN")),
                     b.RCD_FAULT_ACTIVE, _get(b, "RCD_TEST_ACTIVE", 1))
        trig = Pin.IRQ_RISING if b.RCD_FAULT_ACTIVE else Pin.IRQ_FALLING
        hw.rcd.attach(hw.contactor, trig if _get(b, "RCD_HARD_IRQ") else None)
    if _get(b, "CT_ADC_PINS"):
        from hal.current import CurrentSensor
        hw.current = CurrentSensor([adc(p) for p in b.CT_ADC_PINS], b.CT_UV_PER_A,
                                   _get(b, "CT_CAL_PM", (1000, 1000, 1000)), fs,
                                   _get(b, "MAINS_HZ", 50))
    kind = _get(b, "METER")
    if kind in ("sdm120", "sdm630"):
        from hal.meter import SdmMeter
        uart = machine.UART(b.METER_UART, baudrate=b.METER_BAUD, tx=Pin(b.METER_TX),
                            rx=Pin(b.METER_RX))
        hw.meter = SdmMeter(uart, b.METER_ADDR, kind, b.METER_BAUD,
                            de=opin(_get(b, "METER_DE_PIN")))
    elif kind == "internal" and hw.current is not None:
        from hal.meter import InternalMeter
        hw.meter = InternalMeter(hw.current, b.NOMINAL_MV, 3)
    if _get(b, "NTC_ADC_PIN") is not None:
        from hal.temp import Ntc
        hw.temp = Ntc(adc(b.NTC_ADC_PIN), b.NTC_R_FIX, b.NTC_R25, b.NTC_BETA, 3300, fs)
    if _get(b, "LOCK_PIN") is not None:
        from hal.lock import Lock
        hw.lock = Lock(opin(b.LOCK_PIN), opin(_get(b, "LOCK_UNLOCK_PIN")),
                       ipin(_get(b, "LOCK_FB_PIN"), Pin.PULL_UP), _get(b, "LOCK_FB_LOCKED", 1),
                       _get(b, "LOCK_PULSE_MS", 600))
    from hal.led import Led
    if _get(b, "LED_NEOPIXEL_PIN") is not None:
        import neopixel
        hw.led = Led(np=neopixel.NeoPixel(Pin(b.LED_NEOPIXEL_PIN, Pin.OUT), 1))
    elif _get(b, "LED_PINS"):
        r, g, bl = b.LED_PINS
        hw.led = Led(opin(r), opin(g), opin(bl))
    if _get(b, "BUTTON_PIN") is not None:
        from hal.button import Button
        hw.button = Button(ipin(b.BUTTON_PIN, Pin.PULL_UP), 0)
    if watchdog and _get(b, "WDT_TIMEOUT_MS"):
        from hal.watchdog import Watchdog
        hw.wdt = Watchdog(b.WDT_TIMEOUT_MS)
    if wifi and _get(b, "WIFI"):
        from hal.wifi import Wifi
        hw.wifi = Wifi(*wifi)
    return hw
