# ESP32-WROOM-32 DevKit (38-pin). Data only: pins, analog constants, features.
# Wiring and front ends: boards/README.md. Analog inputs are all on ADC1
# (ADC2 is unusable while WiFi runs).
NAME = "esp32_devkit"

# Control pilot: GPIO25 PWM -> non-inverting +-12 V op-amp stage -> 1 kOhm -> CP.
CP_PWM_PIN = 25
CP_INVERT = False
CP_ENABLE_PIN = None  # no 0 V: PILOT_OFF drives -12 V (state F) on this board
# CP divider 3V3-33k / 27k-GND / 150k-CP into GPIO36 (ADC1_CH0), 11 dB:
#   V_adc = 1351 mV + 0.09008 * V_cp   (-12 V: 270 mV, +12 V: 2432 mV)
CP_ADC_PIN = 36
CP_ADC_MV_AT_0V = 1351  # calibrate per board: ADC mV with CP at 0 V
CP_ADC_MV_AT_P12V = 2432  # ... and at +12 V (state A)
CP_ADC_RAIL_LO_MV = 60  # ESP32 reads ~0 below ~60-100 mV at 11 dB
CP_ADC_RAIL_HI_MV = 3050  # and saturates near 3.1 V
CP_SAMPLES = 100  # reads per sample() (~1.5-2 ms with read_uv)
CP_TOP = 3
ADC_USE_UV = True  # esp32 read_uv(): factory-calibrated, mV-linear
ADC_ATTEN = "ATTN_11DB"
ADC_FS_MV = 3300  # scale of read_u16 (only where ADC_USE_UV is False)

# Proximity: 1 kOhm pull-up to 3V3 on PP, GPIO39 (ADC1_CH3).
PP_ADC_PIN = 39
PP_PULLUP_OHM = 1000
PP_VPU_MV = 3300

# Contactor coil driver GPIO26; mirror contact (NC) on GPIO27 with pull-up:
# main contacts closed -> mirror open -> 1. Phase contactor (L2+L3) GPIO13.
CONTACTOR_PIN = 26
CONTACTOR_FB_PIN = 27
CONTACTOR_FB_CLOSED = 1
PHASE_PIN = 13
PHASES_FIXED = 3  # used when PHASE_PIN is None

# RDC-DD module (6 mA DC): fault output -> GPIO18 (active high), test in <- GPIO19.
RCD_FAULT_PIN = 18
RCD_FAULT_ACTIVE = 1
RCD_TEST_PIN = 19
RCD_TEST_ACTIVE = 1
RCD_HARD_IRQ = True  # ESP32 port accepts hard=True (runs at soft-IRQ level; see README)

# CTs: 100 A:50 mA, 22 ohm burden, biased to 1.65 V, ADC1 GPIO34/35/32.
CT_ADC_PINS = (34, 35, 32)
CT_UV_PER_A = 11000  # 22 ohm * 1 A / 2000 = 11 mV RMS per primary A
CT_CAL_PM = (1000, 1000, 1000)
MAINS_HZ = 50
NOMINAL_MV = 230000
METER = "internal"  # "internal" (CT x nominal V) or "sdm120"/"sdm630"
METER_UART = 2
METER_TX = 17
METER_RX = 16
METER_DE_PIN = None  # auto-direction RS-485 transceiver
METER_BAUD = 9600
METER_ADDR = 1

# NTC 10k B3950 to GND, 10k to 3V3, GPIO33 (ADC1_CH5).
NTC_ADC_PIN = 33
NTC_R_FIX = 10000
NTC_R25 = 10000
NTC_BETA = 3950

# Socket lock: motor via H-bridge GPIO21 (lock) / GPIO22 (unlock), switch GPIO23.
LOCK_PIN = 21
LOCK_UNLOCK_PIN = 22
LOCK_FB_PIN = 23
LOCK_FB_LOCKED = 1
LOCK_PULSE_MS = 600

LED_NEOPIXEL_PIN = 4  # one WS2812
LED_PINS = None
BUTTON_PIN = 0  # BOOT button, active low
WDT_TIMEOUT_MS = 2000
WIFI = True
OTA_IMAGE = True  # image A/B via esp32.Partition when the image has OTA partitions (docs/ota.md)
