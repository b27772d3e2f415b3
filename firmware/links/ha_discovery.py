# Home Assistant MQTT discovery for the wallbox (reference/mqtt.md §6/§7; checked with a
# real HA by `make ha-check`). One device message with every component; the link imports
# this module only to publish it. Features add components through Link.ha_components:
# callables f(add, base) where add(key, platform, name, uid, **fields).
import json

from firmware.services.runtime import VERSION

STATES = ("A", "B1", "B2", "C1", "C2", "D1", "D2", "E", "F")


def payload(link):
    """Device-based HA discovery (reference/mqtt.md §6/§7, checked with ha_check)."""
    i = link.id
    b = link.base
    rt = link.rt
    ent = "wallbox_" + i
    cmps = {}

    def add(key, p, name, uid, **kw):
        kw["p"] = p
        kw["name"] = name
        kw["def_ent_id"] = "%s.%s_%s" % (p, ent, key)
        kw["uniq_id"] = "%s_%s" % (i, uid)
        cmps[key] = kw

    tele = b + "/telemetry"
    st = b + "/state"
    js = b + "/json/status"
    add("state", "sensor", "State", "state", dev_cla="enum", ops=list(STATES), stat_t=st)
    add("power", "sensor", "Power", "p", dev_cla="power", stat_cla="measurement",
        unit_of_meas="W", stat_t=tele, val_tpl="{{value_json.power_w}}")
    add("energy", "sensor", "Energy", "e", dev_cla="energy", stat_cla="total_increasing",
        unit_of_meas="kWh", stat_t=tele, val_tpl="{{value_json.energy_kwh}}")
    add("session_energy", "sensor", "Session energy", "se", dev_cla="energy",
        stat_cla="total_increasing", unit_of_meas="Wh", stat_t=tele,
        val_tpl="{{value_json.session_wh}}")
    add("session_time", "sensor", "Session time", "ss", dev_cla="duration",
        stat_cla="measurement", unit_of_meas="s", stat_t=tele,
        val_tpl="{{value_json.session_s}}")
    add("temperature", "sensor", "Temperature", "temp", dev_cla="temperature",
        stat_cla="measurement", unit_of_meas="°C", stat_t=tele,
        val_tpl="{{value_json.temp_c}}")
    for n in (1, 2, 3):
        add("current_l%d" % n, "sensor", "Current L%d" % n, "i%d" % n, dev_cla="current",
            stat_cla="measurement", unit_of_meas="A", stat_t=tele,
            val_tpl="{{value_json.currents_a[%d]}}" % (n - 1))
        add("voltage_l%d" % n, "sensor", "Voltage L%d" % n, "u%d" % n, dev_cla="voltage",
            stat_cla="measurement", unit_of_meas="V", stat_t=tele,
            val_tpl="{{value_json.voltages_v[%d]}}" % (n - 1), ent_cat="diagnostic")
    add("plug", "binary_sensor", "Plug", "plug", dev_cla="plug", stat_t=st,
        val_tpl="{{'ON' if value[:1] in ['B','C','D'] else 'OFF'}}")
    add("charging", "binary_sensor", "Charging", "chg", dev_cla="battery_charging",
        stat_t=st, val_tpl="{{'ON' if value in ['C2','D2'] else 'OFF'}}")
    add("problem", "binary_sensor", "Problem", "err", dev_cla="problem", stat_t=st,
        val_tpl="{{'ON' if value[:1] in ['E','F'] else 'OFF'}}",
        json_attr_t=js, json_attr_tpl="{{ {'faults': value_json.faults} | tojson }}")
    add("enable", "switch", "Charging enabled", "en", cmd_t=b + "/set/enable",
        stat_t=b + "/enabled", pl_on="true", pl_off="false", stat_on="true",
        stat_off="false")
    add("current_limit", "number", "Current limit", "cur", dev_cla="current",
        unit_of_meas="A", min=6, max=rt.config.get("max_current_a"), step=0.1,
        mode="box", cmd_t=b + "/set/current", stat_t=b + "/current_limit")
    if rt.config.get("phase_switch"):
        add("phases", "select", "Phases", "ph", ops=["1", "3"], cmd_t=b + "/set/phases",
            stat_t=b + "/phases")
    else:
        add("phases", "sensor", "Phases", "ph", stat_t=b + "/phases")
    add("reset_fault", "button", "Reset fault", "rst", ent_cat="config",
        cmd_t=b + "/cmd/reset_fault", pl_prs="{}")
    if rt.config.get("require_auth"):
        add("authorize", "button", "Authorize", "auth", cmd_t=b + "/cmd/authorize",
            pl_prs="{}")
    for extra in link.ha_components:  # features add their entities (load mgmt, OTA, ...)
        extra(add, b)
    fw = VERSION
    return json.dumps({
        "dev": {"ids": [ent], "name": "Wallbox " + i, "mf": "open-wallbox",
                "mdl": getattr(rt, "board_name", "wallbox"), "sw": fw},
        "o": {"name": "open-wallbox-fw", "sw": fw},
        "avty_t": link.t_status, "qos": 1, "cmps": cmps})
