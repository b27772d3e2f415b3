# Config rows of load management (docs/load-management.md): an extension schema of
# firmware/services/config.py (EXT_SCHEMAS), in its row format ("key|kind|lo|hi|default|
# flags", kind: 0 int, 1 0-or-int, 2 bool, 5 id, 7 one of; the every-rule test in
# tests/test_config.py checks each key against them), imported only to look a key up or to
# list the keys, so an unconfigured wallbox spends no heap on them.

SCHEMA = """
lm_mode|7|off,normal,pv,minpv|0|off|0
mains_source|7|none,modbus,mqtt|0|none|0
mains_addr|0|1|247|2|0
mains_poll_ms|0|1000|2000|1000|0
mains_max_a|0|10|200|25|0
mains_timeout_s|0|3|600|11|0
lm_safe_a|1|6|80|6|0
lm_min_pause_s|0|0|3600|60|0
pv_import_a|0|0|100|0|0
pv_start_s|0|0|3600|60|0
pv_stop_s|0|0|3600|300|0
pv_min_charge_s|0|0|7200|600|0
pv_attack_pm|0|1|1000|50|0
pv_decay_pm|0|1|1000|400|0
phase_auto|2|0|0|0|0
phase_switch_min_s|0|60|3600|300|0
dim_source|7|none,mqtt,input|0|none|0
dim_power_w|0|4200|22000|4200|0
group_id|5|0|24||0
group_max_a|0|6|400|32|0
group_size|0|2|16|3|0
group_rotate_s|0|60|7200|900|0
"""

HELP = (
    "load management: off|normal (house fuse)|pv (surplus only)|minpv (6 A + surplus)\n"
    "mains feed: none|modbus (SDM630/SDM72 on RS-485)|mqtt (set/mains)\n"
    "Modbus address of the mains meter\n"
    "mains meter read period (ms)\n"
    "house fuse per phase (A)\n"
    "mains feed silent this long: safe current (s)\n"
    "current while the mains feed is lost (A), 0 = pause\n"
    "minimum pause by load management (s)\n"
    "grid import allowed in pv/minpv (A, sum of phases)\n"
    "pv: surplus >= 6 A x phases this long to start (s)\n"
    "pv: surplus below 6 A this long to stop (s)\n"
    "pv: minimum charge time before a solar stop (s)\n"
    "rising surplus smoothing per reading (permille)\n"
    "falling surplus smoothing per reading (permille)\n"
    "automatic 1p/3p in pv/minpv (needs phase_switch)\n"
    "at most one automatic phase switch per (s)\n"
    "grid-operator dimming (§14a) input: none|mqtt (set/dim)|input (board pin)\n"
    "power while dimmed (W)\n"
    "load-sharing group over MQTT, '' = none\n"
    "supply shared by the group, per phase (A)\n"
    "wallboxes in the group (safe share = group_max_a / group_size)\n"
    "a box holding a slot gives it up after (s) when others wait"
)
