# Load management's feature entry (firmware/startup.py FEATURES) and its MQTT side: starts the
# service (firmware/services/mains.py), takes set/mains, set/dim and set/<lm key> through the
# link's set hooks, publishes <base>/lm/status (retained JSON) and adds its Home Assistant
# entities (mode select, mains currents, surplus, binding limit, dimming) through
# Link.ha_components. Topics: docs/load-management.md.
import asyncio
import json
import time
from micropython import const

from firmware.core import loadmgmt as L
from firmware.links.commands import parse_bool
from firmware.services.mains import Mains, parse_mains

_POLL_MS = const(500)
_PUB_MS = const(10000)  # lm/status at least this often (on change at once)
# Config keys MQTT set/<key> may change (validated by config.parse like the console's set).
KEYS = ("lm_mode", "mains_max_a", "pv_import_a", "pv_start_s", "pv_stop_s", "pv_min_charge_s",
        "lm_min_pause_s", "lm_safe_a", "phase_auto")

_started = []  # start() once, whichever FEATURES key brought the module in


def start(rt):
    if _started:
        return []
    _started.append(1)
    m = Mains(rt)
    rt.features["loadmgmt"] = m
    tasks = [("loadmgmt", m.run)]
    if m.source == "modbus":
        tasks.append(("mains", m.poll_modbus))
    if rt.config.get("mqtt_host"):
        tasks.append(("lm_mqtt", LmLink(rt, m).run))
    if rt.config.get("group_id"):
        from firmware.links.group import Group
        g = Group(rt, m.lm)
        m.group = g
        tasks.append(("group", g.run))
    return tasks


class LmLink:
    def __init__(self, rt, m):
        self.rt = rt
        self.m = m
        self.link = None
        self._pub = None
        self._pub_ms = 0

    def _hooks(self, link):
        h = link.set_hooks
        h["mains"] = self.set_mains
        h["dim"] = self.set_dim
        for k in KEYS:
            h[k] = self._config_setter(k)
        link.ha_components.append(self.ha)

    def _config_setter(self, key):
        cfg = self.rt.config

        def set_key(val):
            err = cfg.set_text(key, val) if type(val) is str else cfg.set(key, val)
            return (False, err) if err else (True, cfg.get(key))
        return set_key

    def set_mains(self, val):
        if self.m.source != "mqtt":
            return False, "mains: mains_source is %r, not mqtt" % self.m.source
        if getattr(self.link, "msg_retained", False):
            return False, "mains: a retained reading is stale, ignored"
        v, err = parse_mains(val)
        if err:
            self.m.missing(err)
            return False, err
        err = self.m.reading(v[0], ts=v[1])
        return (False, err) if err else (True, [x / 1000 for x in v[0]])

    def set_dim(self, val):
        if self.m.dim_source != "mqtt":
            return False, "dim: dim_source is %r, not mqtt" % self.m.dim_source
        on = parse_bool(val)
        if on is None:
            return False, "dim: use true|false|1|0|on|off"
        self.m.set_dim(on)
        return True, on

    def ha(self, add, b):
        """HA entities of load management (firmware/links/ha_discovery.py add())."""
        t = b + "/lm/status"
        add("lm_mode", "select", "Load management mode", "lmm", ops=list(L.MODE_NAMES),
            cmd_t=b + "/set/lm_mode", stat_t=t, val_tpl="{{value_json.mode}}")
        for n in (1, 2, 3):
            add("mains_l%d" % n, "sensor", "Mains L%d" % n, "mi%d" % n, dev_cla="current",
                stat_cla="measurement", unit_of_meas="A", stat_t=t,
                val_tpl="{{value_json.mains_a[%d]}}" % (n - 1))
        add("surplus", "sensor", "Solar surplus", "sur", dev_cla="current",
            stat_cla="measurement", unit_of_meas="A", stat_t=t,
            val_tpl="{{value_json.surplus_a}}")
        add("limited_by", "sensor", "Limited by", "lby", stat_t=t,
            val_tpl="{{value_json.limited_by}}")
        add("mains_feed", "binary_sensor", "Mains feed", "mfd", dev_cla="connectivity",
            stat_t=t, val_tpl="{{'ON' if value_json.feed_ok else 'OFF'}}",
            ent_cat="diagnostic")
        add("dimmed", "binary_sensor", "Grid dimming (§14a)", "dim", stat_t=t,
            val_tpl="{{'ON' if value_json.dim else 'OFF'}}")

    async def run(self):
        rt = self.rt
        while rt.link is None:  # the link is built after the feature tasks (startup.tasks)
            await asyncio.sleep_ms(_POLL_MS)
        self.link = rt.link
        self._hooks(self.link)
        while True:
            await asyncio.sleep_ms(_POLL_MS)
            self.poll(time.ticks_ms())

    def poll(self, now):
        c = self.link.client
        if not c.connected:
            self._pub = None
            return
        st = self.m.status()
        if st != self._pub or time.ticks_diff(now, self._pub_ms) >= _PUB_MS:
            self._pub = st
            self._pub_ms = now
            c.publish(self.link.base + "/lm/status", json.dumps(st), 0, True)
