# The backend link: MQTT topics of ../shared/reference/mqtt.md §6/§7 on top of
# firmware/links/mqtt_client.py. One asyncio task; it only reads runtime state and calls the
# command API (firmware/links/commands.py), so nothing here runs in the control tick.
# Topics, payloads and the reconnect gate are documented in docs/mqtt.md.
import asyncio
import json
import time
from micropython import const

from firmware.core import evse as E
from firmware.links.commands import Commands, json_strict, parse_payload, text_ok
from firmware.links.mqtt_client import LANE_REPLY, LANE_URGENT, MQTTClient

_POLL_MS = const(250)  # change detection / timers
_REPUBLISH_MS = const(25000)  # state/enabled re-sent: evcc `timeout: 90s` never fires
_OUTBOX_SCAN_MS = const(30000)  # outbox re-read even without a hint
_CHARGING_TELE_MS = const(5000)  # telemetry while the contactor is closed (evcc polls 30 s)
_MAX_PAYLOAD = const(64)  # a command payload longer than this is rejected unread
_OUTBOX_BATCH = const(4)
# The command rule (docs/mqtt.md "Commands under a burst"): a token bucket of _CMD_BURST
# commands, refilled at _CMD_PER_S; a command beyond it is not run and gets a "busy" reply.
_CMD_BURST = const(30)
_CMD_PER_S = const(10)
_URGENT = ("fault", "fault_clear", "plug", "unplug", "fallback", "fallback_end")


def fmt_a(ma):
    """'16' or '10.5' from mA (what HA's number and evcc send back)."""
    if ma % 1000 == 0:
        return "%d" % (ma // 1000)
    return "%d.%d" % (ma // 1000, ma % 1000 // 100)


def load_ca(path):
    """CA file (PEM or DER) -> DER bytes; raises OSError/ValueError."""
    with open(path, "rb") as f:
        data = f.read()
    if b"-----BEGIN" not in data:
        return data
    import binascii
    lines = []
    inside = False
    for ln in data.split(b"\n"):
        ln = ln.strip()
        if ln.startswith(b"-----BEGIN"):
            inside = True
        elif ln.startswith(b"-----END"):
            break
        elif inside:
            lines.append(ln)
    if not lines:
        raise ValueError("no certificate in PEM")
    return binascii.a2b_base64(b"".join(lines))


class Link:
    def __init__(self, rt, client_cls=MQTTClient):
        self.rt = rt
        cfg = rt.config
        self.cmds = Commands(rt)
        self.id = cfg.get("id")
        b = cfg.base_topic()
        self.base = b
        self.t_status = b + "/status"
        self.t_state = b + "/state"
        self.t_enabled = b + "/enabled"
        self.t_limit = b + "/current_limit"
        self.t_phases = b + "/phases"
        self.t_json = b + "/json/status"
        self.t_tele = b + "/telemetry"
        self.t_session = b + "/session"
        self.t_last = b + "/session/last"
        self.t_event = b + "/event"
        self.t_reply = b + "/reply"
        self._pset = b + "/set/"
        self._pcmd = b + "/cmd/"
        self.ha = cfg.get("ha_discovery")
        self.ha_components = []  # f(add, base) per feature: its HA entities (ha_discovery.py)
        self.connect_hooks = []  # f() after every connect: a feature's retained state
        self.cmd_hooks = {}  # cmd/<name> -> f(payload) -> (req, ok, value|error): a feature's
        # own commands, validated by the feature (firmware/links/ota_mqtt.py: update, rollback)
        self.set_hooks = {}  # name -> f(value) -> (ok, value|error): a feature's set/<name>
        self.topic_hooks = []  # (prefix, f(topic, payload)): a feature's own subscriptions
        self.msg_retained = False  # the message being handled came retained (for hooks)
        self.ha_prefix = cfg.get("ha_prefix")
        self.t_ha_status = self.ha_prefix + "/status"
        self.tls = cfg.get("mqtt_tls")
        self.error = None  # a configuration problem that keeps the link down
        tls = None
        if self.tls:
            path = cfg.get("mqtt_ca")
            if path:
                try:
                    tls = load_ca(path)  # at start: file reads block too
                except Exception as ex:
                    self.error = "mqtt_ca %s unreadable: %s" % (path, type(ex).__name__)
                    rt.store.event("mqtt_ca", self.error, 0)
            else:
                tls = True  # encrypted, server not verified: documented in docs/mqtt.md
        user = cfg.get("mqtt_user") or None
        self.client = client_cls(
            cfg.client_id(), cfg.get("mqtt_host"), cfg.get("mqtt_port"), user=user,
            password=(cfg.get("mqtt_password") or None) if user else None,
            keepalive_s=30, clean_session=True, will=(self.t_status, "offline", 1, True),
            tls=tls, queue_len=24, max_inflight=8, may_connect=self.may_connect,
            on_message=self.on_message, on_connect=self.on_connect,
            on_puback=self.on_puback, on_disconnect=self.on_disconnect)
        c = self.client
        c.subscribe(b + "/set/#", 1)
        c.subscribe(b + "/cmd/#", 1)
        if self.ha:
            c.subscribe(self.t_ha_status, 1)
        self._out = {}  # pid -> (sid, payload) of session records in flight
        self._sids = set()
        self._scan = True  # read the outbox on the next poll
        self._scan_ms = 0
        self._live = set()  # set/* topics that got a live command this boot
        self._pub_state = None  # last published values (identity/equality checks)
        self._pub_enabled = None
        self._pub_ma = -1
        self._pub_ph = 0
        self._pub_fault = -1
        self._rep_ms = 0
        self._tele_ms = 0
        self._dirty = False  # on_state(): publish soon
        self._retry = False  # a state publish found the queue full
        self._event_seq = 0
        self._fallback = False
        self._fb_saved_ma = 0
        self._fb_ma = 0
        self._fb_cmd_ms = 0
        self.commands = 0
        self.rejected = 0
        self.busy = 0  # commands answered "busy" (the rate rule)
        self.lost = 0  # replies/events that found no room (should stay 0; shown in status)
        self._tokens = _CMD_BURST * 1000  # the command bucket, in 1/1000 command
        self._tok_ms = time.ticks_ms()
        self.client.on_oversize = self.on_oversize

    # ---- the reconnect gate (DESIGN.md "Calls that block inside C") ----

    def may_connect(self):
        if self.error:
            return False
        if not self.rt.evse.outputs.contactor:
            return True
        # Contactor closed: only a plain TCP connect to an address resolved before
        # (no DNS, no TLS handshake) may start; both of those block in C.
        return not self.tls and self.client._ip is not None

    # ---- runtime hooks (sessions task; cheap, never block) ----

    def on_state(self):
        self._dirty = True

    def on_session(self, rec):
        self._scan = True

    def on_event(self, kind, detail):
        # Fault, plug and fallback events take the urgent lane (sent first, never crowded out
        # by replies or state; QoS 1, queued across a short outage); others the normal one.
        urgent = kind in _URGENT
        if urgent or self.client.connected:
            self._event_seq += 1
            ok = self.client.publish(self.t_event, json.dumps(
                {"seq": self._event_seq, "ts": self.rt.store._epoch(), "type": kind,
                 "detail": detail}), 1, False, LANE_URGENT if urgent else 0)
            if not ok and urgent:
                self.lost += 1
        if kind == "fault" or kind == "fault_clear":
            self._dirty = True

    def status(self):
        """'<state>; tx <bytes> rx <bytes> conn <n>' for status dicts and the console."""
        c = self.client
        if self.error:
            st = "error: " + self.error
        elif c.connected:
            st = "connected"
        elif not self.may_connect():
            st = "waiting: contactor closed"
        else:
            st = "connecting (%d tries)" % c.attempts
        return "%s; tx %d rx %d conn %d drop %d busy %d lost %d" % (
            st, c.bytes_out, c.bytes_in, c.connects, c.dropped, self.busy, self.lost)

    # ---- MQTT callbacks ----

    def on_connect(self):
        self.publish_all()
        self._scan = True
        for f in self.connect_hooks:
            f()

    def on_disconnect(self):
        # In-flight records stay in the client and go again (DUP) on reconnect.
        pass

    def on_puback(self, pid):
        o = self._out.pop(pid, None)
        if o is None:
            return
        self._sids.discard(o[0])
        self.rt.store.outbox_ack(o[0])
        self.client.publish(self.t_last, o[1], 1, True)
        self._scan = True

    def on_message(self, topic, payload, retained):
        if topic == self.t_ha_status:
            if bytes(payload) == b"online":
                self.publish_all()
            return
        if topic.startswith(self._pcmd):
            if retained:
                return  # a stale command must never run late
            name = topic[len(self._pcmd):]
        elif topic.startswith(self._pset):
            name = topic[len(self._pset):]
            if retained and name in self._live:
                return  # a newer live command wins over the retained one
            if not retained:
                self._live.add(name)
        else:
            for prefix, fn in self.topic_hooks:  # a feature's topics (load-sharing group)
                if topic.startswith(prefix) and not retained:
                    fn(topic, payload)
            return
        short = topic[len(self.base) + 1:]
        if not retained and not self._take_token():
            self.busy += 1
            self._reply(short, _req_of(payload), False, "busy: more than %d commands in a burst, %d/s after;"
                        " not run, send it again" % (_CMD_BURST, _CMD_PER_S), True)
            return
        self.msg_retained = retained
        hook = self.cmd_hooks.get(name) if topic.startswith(self._pcmd) else None
        if hook is not None:
            req, ok, val = hook(payload)
        else:
            req, ok, val = self.command(topic[len(self.base) + 1:len(self.base) + 4], name,
                                        payload)
        if ok:
            self.commands += 1
        else:
            self.rejected += 1
        self._reply(short, req, ok, val)
        if not ok and self.client.connected:
            self.on_event("cmd_rejected", short)
        self._dirty = True

    def on_oversize(self, topic, size, retained):
        """An incoming publish above max_packet, read past by the client: an error reply
        where the topic has a reply path (set/* and live cmd/*); nothing else happens."""
        if not topic.startswith(self._pset) and not (topic.startswith(self._pcmd) and not retained):
            return
        self.rejected += 1
        self._reply(topic[len(self.base) + 1:], None, False,
                    "payload too long (%d bytes, max %d)" % (size, _MAX_PAYLOAD))

    def _take_token(self):
        now = time.ticks_ms()
        d = time.ticks_diff(now, self._tok_ms)
        # ticks wrap every 2**30 ms: after > 6.2 days without a command d is negative (or
        # meaningless); any gap of 3 s or more refills the bucket, so cap it there
        if d < 0 or d > _CMD_BURST * 1000 // _CMD_PER_S:
            d = _CMD_BURST * 1000 // _CMD_PER_S
        t = self._tokens + d * _CMD_PER_S
        self._tok_ms = now
        if t > _CMD_BURST * 1000:
            t = _CMD_BURST * 1000
        if t < 1000:
            self._tokens = t
            return False
        self._tokens = t - 1000
        return True

    def _reply(self, short, req, ok, val, busy=False):
        rep = {"topic": short, "ok": ok, "value": val if ok else None,
               "err": None if ok else val}
        if req is not None:
            rep["req"] = req
        if busy:
            rep["busy"] = True
        # QoS 0 on the reply lane: sent in order, before the command's PUBACK (docs/mqtt.md)
        if not self.client.publish(self.t_reply, json.dumps(rep), 0, False, LANE_REPLY):
            self.lost += 1

    def command(self, kind, name, payload):
        """(req, ok, value|error). Validation is in firmware/links/commands.py."""
        req, val, err = parse_payload(payload, _MAX_PAYLOAD)
        if err:
            return req, False, err
        c = self.cmds
        if kind == "set":
            if val is None:
                return req, False, "missing value"
            if type(val) is str and not val:
                return req, False, "empty payload"
            if name == "current":
                ok, v = c.set_current(val)
            elif name == "enable":
                ok, v = c.enable(val)
            elif name == "phases":
                if type(val) is not int and type(val) is not str:
                    return req, False, "phases must be 1 or 3"
                ok, v = c.set_phases(val)
            elif name in self.set_hooks:  # a feature's setting (e.g. load management)
                ok, v = self.set_hooks[name](val)
            else:
                return req, False, "unknown setting %r: current, enable, phases%s" % (
                    name, "".join(", " + k for k in self.set_hooks))
            return req, ok, v
        if name == "reset_fault":
            ok, v = c.reset_faults()
        elif name == "authorize":
            ok, v = c.authorize()
        elif name == "status":
            self.rt.note_command()  # a status poll is a backend heartbeat
            self.publish_all(False)
            ok, v = True, "published"
        else:
            return req, False, "unknown command %r: reset_fault, authorize, status" % name
        return req, ok, v

    # ---- publishing (link task only) ----

    def _pub(self, topic, payload, retain=True):
        pid = self.client.publish(topic, payload, 1, retain)
        if not pid:
            self._retry = True  # queue full (a burst): the next poll sends the state again
        return pid

    def publish_state(self, force=True):
        """Retained state topics; force=False sends only the ones that changed."""
        e = self.rt.evse
        o = e.outputs
        if force or o.state is not self._pub_state:
            self._pub_state = o.state
            self._pub(self.t_state, o.state)
        if force or e.enabled != self._pub_enabled:
            self._pub_enabled = e.enabled
            self._pub(self.t_enabled, "true" if e.enabled else "false")
        if force or e.backend_ma != self._pub_ma:
            self._pub_ma = e.backend_ma
            self._pub(self.t_limit, fmt_a(self.limit_ma()))
        if force or o.phases != self._pub_ph:
            self._pub_ph = o.phases
            self._pub(self.t_phases, "%d" % o.phases)
        self._pub_fault = o.fault
        self._pub(self.t_json, self.status_json())
        if force:
            self._rep_ms = time.ticks_ms()
        if self._retry:
            self._retry = False
            self._pub_state = self._pub_enabled = None  # all of it again on the next poll
            self._pub_ma = -1

    def publish_all(self, discovery=True):
        if not self.client.connected:
            return
        self._pub(self.t_status, "online")
        if discovery and self.ha:
            self._pub(self.ha_prefix + "/device/wallbox_" + self.id + "/config", self.discovery())
        self.publish_state()
        self.publish_telemetry()

    def limit_ma(self):
        """The applied backend limit, at most the installation's (runtime.limit_ma: one
        definition for status() and MQTT)."""
        return self.rt.limit_ma()

    def status_json(self):
        rt = self.rt
        e = rt.evse
        o = e.outputs
        return json.dumps({
            "ts": rt.store._epoch(), "state": o.state, "enabled": e.enabled,
            "limit_a": self.limit_ma() / 1000, "allowed_a": o.allowed_ma / 1000,
            "phases": o.phases, "contactor": o.contactor, "fault_code": o.fault,
            "faults": E.fault_names(o.fault), "authorized": e.authorized,
            "fallback": self._fallback, "mqtt_dropped": self.client.dropped,
            "cmd_busy": self.busy, "mqtt_lost": self.lost,
            "uptime_s": rt.store.uptime_s(),  # wrap-safe (a ticks_diff turns negative after 6.2 days)
            "fw": _fw()})

    def publish_telemetry(self):
        if not self.client.connected:
            return
        rt = self.rt
        st = rt.store
        i = rt.i_ma
        v = rt.v_mv
        o = st._open
        swh = o[3] if o else 0
        ss = st.uptime_s() - o[2] if o else 0
        t = rt.temp_dc
        self._tele_ms = time.ticks_ms()
        ewh = st.energy_wh
        self.client.publish(self.t_tele, (
            '{"ts":%d,"power_w":%d,"energy_kwh":%d.%03d,"currents_a":[%s,%s,%s],'
            '"voltages_v":[%s,%s,%s],"temp_c":%s,"session_wh":%d,"session_s":%d}') % (
            st._epoch(), rt.power_w, ewh // 1000, ewh % 1000, _d2(i[0]), _d2(i[1]), _d2(i[2]),
            _d1(v[0]), _d1(v[1]), _d1(v[2]),
            "null" if t == E.TEMP_NONE else "%d.%d" % (t // 10, t % 10) if t >= 0 else "%.1f" % (t / 10),
            swh, ss), 0)

    def publish_outbox(self):
        if not self.client.connected or len(self._out) >= _OUTBOX_BATCH:
            return
        self._scan = False
        self._scan_ms = time.ticks_ms()
        for rec in self.rt.store.outbox_pending(_OUTBOX_BATCH + len(self._out)):
            sid = rec["sid"]
            if sid in self._sids:
                continue
            p = json.dumps({"sid": sid, "start": rec["start_s"], "end": rec["stop_s"],
                            "dur_s": rec["dur_s"], "wh": rec["wh"],
                            "max_a": rec["max_ma"] / 1000, "reason": rec["reason"]})
            pid = self.client.publish(self.t_session, p, 1)
            if not pid:
                self._scan = True  # queue full: try again later
                return
            self._out[pid] = (sid, p)
            self._sids.add(sid)

    def discovery(self):
        """The HA discovery payload (firmware/links/ha_discovery.py: imported on use and
        dropped after, its tables cost no heap between connects)."""
        from firmware.links import ha_discovery
        try:
            return ha_discovery.payload(self)
        finally:
            del ha_discovery
            import sys
            sys.modules.pop("firmware.links.ha_discovery", None)

    # ---- the task ----

    def _poll(self, now):
        rt = self.rt
        e = rt.evse
        o = e.outputs
        c = self.client
        self._check_fallback(now)
        if not c.connected:
            return
        if (self._dirty or o.state is not self._pub_state or e.enabled != self._pub_enabled
                or e.backend_ma != self._pub_ma or o.phases != self._pub_ph
                or o.fault != self._pub_fault):
            changed = o.state is not self._pub_state
            self._dirty = False
            self.publish_state(False)
            if changed:
                self.publish_telemetry()  # state change: fresh numbers at once
        elif time.ticks_diff(now, self._rep_ms) >= _REPUBLISH_MS:
            self.publish_state()
        period = _CHARGING_TELE_MS if o.contactor else rt.config.get("telemetry_s") * 1000
        if time.ticks_diff(now, self._tele_ms) >= period:
            self.publish_telemetry()
        if self._scan or time.ticks_diff(now, self._scan_ms) >= _OUTBOX_SCAN_MS:
            self.publish_outbox()

    def _check_fallback(self, now):
        """No command for fallback_timeout_s -> fallback_current_a (OpenEVSE heartbeat)."""
        rt = self.rt
        e = rt.evse
        to = rt.config.get("fallback_timeout_s")
        if self._fallback:
            if rt.last_command_ms != self._fb_cmd_ms or not to:
                self._fallback = False
                if e.backend_ma == self._fb_ma:
                    # back to the last commanded current (persisted), else the one before
                    sp = rt.store.setpoints()["current_ma"]
                    e.set_backend_limit_ma(sp if sp is not None else self._fb_saved_ma)
                rt.store.event("fallback_end", "")
                self.on_event("fallback_end", "")
            return
        d = time.ticks_diff(now, rt.last_command_ms)
        # d < 0: the last command is 6.2..12.4 days old (ticks wrap every 2**30 ms; it is not
        # refreshed while fallback_timeout_s is 0): long overdue, not "just now"
        if to and (d < 0 or d >= to * 1000):
            fb = rt.config.get("fallback_current_a") * 1000
            self._fb_saved_ma = e.backend_ma
            self._fb_ma = fb if fb < e.backend_ma else e.backend_ma
            self._fb_cmd_ms = rt.last_command_ms
            self._fallback = True
            e.set_backend_limit_ma(self._fb_ma)
            rt.store.event("fallback", fmt_a(self._fb_ma))
            self.on_event("fallback", fmt_a(self._fb_ma))

    async def run(self):
        task = asyncio.create_task(self.client.run())
        try:
            while True:
                await asyncio.sleep_ms(_POLL_MS)
                self._poll(time.ticks_ms())
        finally:
            task.cancel()

    async def stop(self):
        """Clean stop: `offline` first (the broker sends no will after DISCONNECT)."""
        c = self.client
        if c.connected:
            c.publish(self.t_status, "offline", 1, True)
        await c.disconnect()


def _req_of(payload):
    """The "req" of a JSON payload, for a busy reply (None if there is none or it is bad)."""
    if len(payload) > 512 or not bytes(payload[:1]) == b"{":
        return None
    obj, err = json_strict(payload)
    req = obj.get("req") if type(obj) is dict else None
    return req if text_ok(req, 32) is None else None


def _d2(ma):
    return "%d.%02d" % (ma // 1000, ma % 1000 // 10)


def _d1(mv):
    return "%d.%d" % (mv // 1000, mv % 1000 // 100)


def _fw():
    from firmware.services.runtime import VERSION
    return VERSION
