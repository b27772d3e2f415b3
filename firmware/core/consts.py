# Values that mean the same thing on both sides of the core/hal boundary: one definition
# each (the core never imports hal; hal and the core both import this). Importing names from
# here costs one globals entry per name in the importing module; nothing is allocated per use.
from micropython import const

# Pilot drive modes: evse.Outputs.pilot -> hal.pilot.Pilot.set()  (reference/iec61851.md §2)
PILOT_OFF = const(0)  # 0 V (generator disabled), or -12 V on a board without an enable pin
PILOT_PLUS12 = const(1)  # steady +12 V: x1, EVSE not ready to supply
PILOT_PWM = const(2)  # 1 kHz PWM: x2, EVSE ready, duty = current limit
PILOT_MINUS12 = const(3)  # steady -12 V: state F, EVSE not available

TEMP_NONE = const(-32768)  # temperature (0.1 °C) when no sensor is fitted or it failed
PP_OPEN_OHM = const(100000)  # what a PP input with no cable reads (above iec61851.PP_OPEN_MIN_OHM)

# Claims on the offered current (evse.set_claim_ma). The offer is the minimum of the cable,
# the configured maximum, the thermal derating and every claim; evse.limited_by names the one
# that binds. A claim of 0 is a pause; CLAIM_NONE_MA means "no claim".
CLAIM_BACKEND = const(0)  # MQTT / console / evcc set_current
CLAIM_LOAD = const(1)  # load management: house fuse, solar, group share
CLAIM_OCPP = const(2)  # OCPP smart charging profiles
CLAIM_DIM = const(3)  # grid operator dimming (§14a EnWG)
N_CLAIMS = const(4)
CLAIM_NONE_MA = const(80000)  # = iec61851 MAX_CURRENT_MA: no limit from this claim

# What binds the offer (evse.limited_by): the claims above, then these.
LIMIT_CONFIG = const(4)  # max_current_a (installer's setting / breaker)
LIMIT_CABLE = const(5)  # the cable's PP rating or the fixed cable setting
LIMIT_THERMAL = const(6)  # over-temperature derating
LIMIT_NAMES = ("backend", "load management", "ocpp", "grid dimming", "config", "cable", "thermal")
