# Raspberry Pi Pico W (RP2040 + CYW43439). Data only. Only ADC0-2 (GP26-28)
# are free (ADC3/GP29 is shared with the WiFi chip): CP, PP and the NTC take
# them, so currents and energy come from an Eastron meter over RS-485.
NAME = "rp2040_pico_w"

# Control pilot: GP16 PWM -> inverting +-12 V op-amp stage; GP17 enables the
# stage's supply switch (0 = CP at 0 V through the 1 kOhm).
CP_PWM_PIN = 16
CP_INVERT = True
CP_ENABLE_PIN = 17
# CP divider 3V3-47k / 68k-GND / 200k-CP into GP26 (ADC0)  (iec61851.md section 7):
#   V_adc = 1713 mV + 0.1220 * V_cp   (-12 V: 249 mV, +12 V: 3177 mV)
CP_ADC_PIN = 26
CP_ADC_MV_AT_0V = 1713
CP_ADC_MV_AT_P12V = 3177
CP_ADC_RAIL_LO_MV = 20
CP_ADC_RAIL_HI_MV = 3290
CP_SAMPLES = 200  # read_u16 ~2-4 us each: 200 reads plus the 1.1 ms window
CP_TOP = 3
ADC_USE_UV = False
ADC_ATTEN = None
ADC_FS_MV = 3300  # ADC_VREF = 3V3 rail

PP_ADC_PIN = 27
PP_PULLUP_OHM = 1000
PP_VPU_MV = 3300

CONTACTOR_PIN = 18
CONTACTOR_FB_PIN = 19
CONTACTOR_FB_CLOSED = 1
PHASE_PIN = 20
PHASES_FIXED = 3

RCD_FAULT_PIN = 21
RCD_FAULT_ACTIVE = 1
RCD_TEST_PIN = 22
RCD_TEST_ACTIVE = 1
RCD_HARD_IRQ = True  # rp2 hard IRQ: runs in the interrupt itself

CT_ADC_PINS = None  # no free ADCs
METER = "sdm630"
METER_UART = 0
METER_TX = 0
METER_RX = 1
METER_DE_PIN = 2  # MAX3485 DE/RE
METER_BAUD = 9600
METER_ADDR = 1
MAINS_HZ = 50
NOMINAL_MV = 230000

NTC_ADC_PIN = 28
NTC_R_FIX = 10000
NTC_R25 = 10000
NTC_BETA = 3950

LOCK_PIN = 10  # level: solenoid held = locked
LOCK_UNLOCK_PIN = None
LOCK_FB_PIN = 11
LOCK_FB_LOCKED = 1
LOCK_PULSE_MS = 0

LED_NEOPIXEL_PIN = None
LED_PINS = (13, 14, 15)  # R, G, B, active high
BUTTON_PIN = 9
WDT_TIMEOUT_MS = 2000
WIFI = True
