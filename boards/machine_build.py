# The generic board builder: a board file's pin map and constants -> hal drivers on
# `machine` (boards/__init__.py build() calls it for every board without its own build()).


def _get(b, name, default=None):
    return getattr(b, name, default)


def build_machine(b, hw, wifi, watchdog):
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
        hw.modbus = hw.meter.bus  # the mains meter shares it at its own address
    elif kind == "internal" and hw.current is not None:
        from hal.meter import InternalMeter
        hw.meter = InternalMeter(hw.current, b.NOMINAL_MV, 3)
    if _get(b, "RS485_UART") is not None or _get(b, "DIM_PIN") is not None:
        from boards import extras  # RS-485 bus for the mains meter, §14a input (load mgmt)
        extras.build(b, hw, opin, ipin)
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
    if _get(b, "OTA_IMAGE"):
        try:
            from hal.esp32_image import Esp32Image
            hw.image = Esp32Image()
        except (ImportError, OSError):  # no esp32 module, or no OTA partitions in the image
            pass
    if wifi and _get(b, "WIFI"):
        try:
            from hal.wifi import Wifi
        except ImportError:  # e.g. the plain-Pico MicroPython image: charge, no network
            hw.no_network = True
        else:
            hw.wifi = Wifi(*wifi)
    return hw
