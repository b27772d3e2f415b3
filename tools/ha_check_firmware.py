#!/usr/bin/env python3
"""`make ha-check`: the real Home Assistant (../shared/tools/ha_check) against the
firmware itself, running on the sim board in the MicroPython unix port.

ha_check.py starts mosquitto and HA; `--bg-cmd` starts the firmware against that broker.
HA then calls the wallbox's number/switch/button services, and this script prints the
entities HA made and exits non-zero if the device is missing, HA logged an MQTT
warning/error, or a command did not come back as the applied state.
Needs `bash ../shared/tools/ha_check/setup.sh` once (~80 s).
"""
import json
import os
import shlex
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HA_CHECK = os.path.normpath(os.path.join(ROOT, "..", "shared", "tools", "ha_check", "ha_check.py"))
EXPECTED = {  # unique_id -> (entity_id, state after the calls or None)
    "wb1_state": ("sensor.wallbox_wb1_state", "A"),
    "wb1_p": ("sensor.wallbox_wb1_power", "0"),
    "wb1_e": ("sensor.wallbox_wb1_energy", None),
    "wb1_en": ("switch.wallbox_wb1_enable", "off"),
    "wb1_cur": ("number.wallbox_wb1_current_limit", "10.5"),
    "wb1_ph": ("sensor.wallbox_wb1_phases", "3"),
    "wb1_rst": ("button.wallbox_wb1_reset_fault", None),
    "wb1_plug": ("binary_sensor.wallbox_wb1_plug", "off"),
    "wb1_err": ("binary_sensor.wallbox_wb1_problem", "off"),
    "wb1_temp": ("sensor.wallbox_wb1_temperature", None),
    "wb1_fw": ("update.wallbox_wb1_firmware", "off"),  # OTA: up to date (docs/ota.md)
}


def main():
    data = tempfile.mkdtemp(prefix="ha-check-fw-")
    mp = os.path.join(ROOT, ".venv", "bin", "micropython")
    if not os.path.exists(mp):
        mp = "micropython"
    conf = '{"mqtt_host": "127.0.0.1", "mqtt_port": {port}}'
    bg = "%s main.py --data %s --no-console --config %s" % (
        shlex.quote(mp), shlex.quote(os.path.join(data, "store")), shlex.quote(conf))
    out = os.path.join(data, "report.json")
    env = dict(os.environ, MICROPYPATH=ROOT + ":.frozen")
    cmd = [sys.executable, HA_CHECK,  # ha_check.py re-execs into HA's venv
           "--device-id", "wallbox_wb1", "--wait", "8", "--bg-cmd", bg, "--out", out,
           "--call", "number.set_value", "uid:wb1_cur", '{"value": 10.5}',
           "--call", "switch.turn_off", "uid:wb1_en",
           "--call", "button.press", "uid:wb1_rst"]
    print("running:", " ".join(shlex.quote(c) for c in cmd), flush=True)
    r = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        with open(out) as f:
            rep = json.load(f)
    except (OSError, ValueError):
        print("ha_check wrote no report (exit %d)" % r.returncode)
        return 1
    problems = []
    if rep.get("error"):
        problems.append("ha_check: " + rep["error"])
    dev = rep.get("device")
    if not dev:
        problems.append("device wallbox_wb1 not found in HA")
    ents = rep.get("entities", [])
    print("HA %s: device %r, %d entities" % (rep.get("ha_version"), dev and dev.get("name"), len(ents)))
    print("%-42s %-12s %-6s %-18s %s" % ("entity_id", "state", "unit", "device_class", "state_class"))
    for e in ents:
        print("%-42s %-12s %-6s %-18s %s" % (e["entity_id"], e.get("state"), e.get("unit") or "",
                                             e.get("device_class") or "", e.get("state_class") or ""))
    by_uid = {e.get("unique_id"): e for e in ents}
    after = rep.get("states_after_calls", {})
    for uid, (eid, want) in EXPECTED.items():
        e = by_uid.get(uid)
        if e is None:
            problems.append("entity %s missing" % uid)
            continue
        if e["entity_id"] != eid:
            problems.append("%s is %s, expected %s" % (uid, e["entity_id"], eid))
        if want is not None and after.get(e["entity_id"]) != want:
            problems.append("%s after the calls is %r, expected %r" % (
                e["entity_id"], after.get(e["entity_id"]), want))
    for c in rep.get("service_calls", []):
        if c.get("http_status") != 200:
            problems.append("service call failed: %s" % c)
    log = rep.get("log", {})
    for w in log.get("mqtt_warnings_errors", []):
        problems.append("HA MQTT log: %s" % str(w)[:300])
    print("service calls -> states:", json.dumps(after))
    if rep.get("bg_cmd_rc") not in (None,):
        problems.append("firmware exited early (rc %s): %s" % (rep.get("bg_cmd_rc"), rep.get("bg_cmd_tail")))
    if problems:
        print("HA CHECK FAILED:")
        for p in problems:
            print("  -", p)
        print("report:", out)
        return 1
    print("HA CHECK OK (%d entities, no MQTT warnings; report %s)" % (len(ents), out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
