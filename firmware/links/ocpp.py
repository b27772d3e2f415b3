# OCPP 1.6J charge point (one connector) on firmware/links/ws.py. See docs/ocpp.md.
#
#   framing    OCPP-J 1.6 §4: [2,id,action,payload] / [3,id,payload] / [4,id,code,text,{}];
#              one outstanding CALL at a time, each bounded by ocpp_timeout_s
#   sender     BootNotification until Accepted, then status/authorize/heartbeat calls and the
#              persisted queue of transaction messages (firmware/links/ocpp_queue.py), in order
#   poll       250 ms: cable, authorization, faults -> transactions, StatusNotification,
#              MeterValues; never blocks (the only flash writes are the queue's small commits)
# It reads runtime state and acts through the command API (firmware/links/commands.py) and
# the OCPP claim on the offered current (evse.set_claim_ma(CLAIM_OCPP, ...)) only.
import asyncio
import json
import time
from micropython import const

from firmware.core import evse as E
from firmware.core import isotime
from firmware.core.consts import CLAIM_OCPP, CLAIM_NONE_MA, PILOT_PWM
from firmware.links.commands import Commands, json_head, json_strict
from firmware.links.ocpp_keys import Keys
from firmware.links.ocpp_queue import TxQueue
from firmware.links.ws import WSClient

_POLL_MS = const(250)
_OUTQ_MAX = const(8)  # non-transaction CALLs waiting (status, authorize, triggered)
_MAX_MSG = const(8192)  # a bigger CSMS frame is refused with close 1009 (docs/ocpp.md)
_BOOT_RETRY_S = const(30)  # Pending/Rejected with interval 0
# BootNotification.conf interval: at most 86400 s, as the HeartbeatInterval key (ocpp_keys.py),
# since interval * 1000 must stay < 2**29 ms for ticks_add/ticks_diff (tick period 2**30 ms);
# as the heartbeat (Accepted) at least 10 s, as that key; Pending/Rejected: from 1 s.
_IV_MIN_S = const(10)
_IV_MAX_S = const(86400)
_MV_DUE_MS = const(86400001)  # longer ago than the longest MeterValueSampleInterval
_VENDOR = "OpenWallbox"
_MODEL = "wallbox-mpy"

# Connector status (OCPP 1.6 §7.7 ChargePointStatus)
AVAILABLE = "Available"
PREPARING = "Preparing"
CHARGING = "Charging"
SUSP_EV = "SuspendedEV"
SUSP_EVSE = "SuspendedEVSE"
FINISHING = "Finishing"
UNAVAILABLE = "Unavailable"
FAULTED = "Faulted"

# evse fault bit -> ChargePointErrorCode (§7.6), first match wins
_ERRORS = (
    (E.F_RCD_TRIP | E.F_RCD_TEST, "GroundFailure"),
    (E.F_OVERCURRENT, "OverCurrentFailure"),
    (E.F_WELDED | E.F_CONTACTOR, "PowerSwitchFailure"),
    (E.F_OVERTEMP, "HighTemperature"),
    (E.F_LOCK, "ConnectorLockFailure"),
    (E.F_PILOT_SHORT | E.F_DIODE | E.F_CP_READING, "EVCommunicationError"),
    (E.F_LOCKOUT, "InternalError"),
)


class CallError(Exception):
    """An incoming CALL gets [4, id, code, description, {}] (OCPP-J §4.2.3)."""

    def __init__(self, code, text):
        super().__init__(text)
        self.code = code
        self.text = text


# ---- payload checks: one small schema per incoming action (the library on the CSMS side
# validates against the OCPP JSON schemas; a CSMS that does not gets the spec's CALLERROR)
_STR = const(0)
_INT = const(1)
_NUM = const(2)
_OBJ = const(3)
_ARR = const(4)


def check(p, spec):
    """spec: ((name, type, required, extra), ...); extra = max length or allowed values."""
    if type(p) is not dict:
        raise CallError("FormationViolation", "payload must be a JSON object")
    for name, t, req, extra in spec:
        if name not in p:
            if req:
                raise CallError("OccurenceConstraintViolation", "%s is required" % name)
            continue
        v = p[name]
        ok = ((t == _STR and type(v) is str) or (t == _INT and type(v) is int)
              or (t == _NUM and type(v) in (int, float)) or (t == _OBJ and type(v) is dict)
              or (t == _ARR and type(v) is list))
        if not ok:
            raise CallError("TypeConstraintViolation", "%s has the wrong type" % name)
        if type(extra) is tuple and v not in extra:
            raise CallError("PropertyConstraintViolation", "%s: %r not allowed" % (name, v))
        if type(extra) is int and t == _STR and len(v) > extra:
            raise CallError("PropertyConstraintViolation", "%s longer than %d" % (name, extra))
        if type(extra) is int and t == _INT and v < 0:
            raise CallError("PropertyConstraintViolation", "%s must be >= 0" % name)


def _fmt_ma(ma):
    return "%d.%02d" % (ma // 1000, ma % 1000 // 10)


class Ocpp:
    def __init__(self, rt):
        self.rt = rt
        cfg = rt.config
        self.cmds = Commands(rt)
        self.cp_id = cfg.get("ocpp_id") or cfg.get("id")
        self.keys = Keys(rt.store, cfg)
        self.q = TxQueue(rt.store)
        self.error = None
        self.timeout_ms = cfg.get("ocpp_timeout_s") * 1000
        url = cfg.get("ocpp_url").rstrip("/") + "/" + self.cp_id
        pw = cfg.get("ocpp_password")
        tls = None
        if cfg.get("ocpp_ca"):
            try:
                from firmware.links.mqtt_link import load_ca
                tls = load_ca(cfg.get("ocpp_ca"))  # at start: file reads block too
            except Exception as ex:
                self.error = "ocpp_ca unreadable: %s" % type(ex).__name__
        try:
            self.ws = WSClient(url, "ocpp1.6", auth=(self.cp_id, pw) if pw else None, tls=tls,
                               max_msg=_MAX_MSG, ping_s=self.keys.get("WebSocketPingInterval"),
                               io_ms=self.timeout_ms, may_connect=self.may_connect,
                               on_message=self._on_text, on_open=self._on_open)
        except ValueError as ex:
            self.error = "ocpp_url: %s" % ex
            self.ws = None
        if self.error:
            rt.store.event("ocpp_error", self.error, 0)
        self.boot = None  # None (not yet answered), "Pending", "Accepted", "Rejected"
        self._boot_at = 0
        self.hb_ms = self.keys.get("HeartbeatInterval") * 1000
        self._last_call_ms = 0
        self._clock_off = None  # CSMS time - uptime, when the device has no clock
        self._outq = []  # [(action, payload)] non-transaction CALLs
        self._wait = None  # outstanding CALL: [msg_id, action, Event, result]
        self._n = 0
        self._wake = asyncio.Event()
        self._tx_attempts = 0
        self._tx_retry_at = 0
        # (action or "CALLRESULT", store.uptime_s()) of the last CSMS message: the uptime,
        # not a tick, which would read wrong after 2**29 ms (tick period 2**30 ms)
        self.last_rx = None
        self.calls_in = self.calls_out = self.call_errors = self.timeouts = 0
        self.bad_frames = 0  # frames that were not valid JSON
        self._bad_log = None  # ticks of the last such event logged
        # transaction state: the open one is in self.tx (and persisted as q.open)
        self.tx = None  # dict ref, tag, start_wh, start_s, txid
        self._auth_tag = None  # the tag that authorized the next transaction
        self._auth_until = 0  # ConnectionTimeOut for a tag presented before the cable
        self._auth_wait = False
        self._hold = False  # after a stop while plugged: claim 0 until unplug or a new tag
        self.unavailable = bool(rt.store.get("ocppavail"))  # ChangeAvailability persists
        self._seen_unplugs = rt.unplugs
        self._status = None  # last StatusNotification sent (connector 1)
        self._st0 = None
        self._prev_fault = 0
        self._mv_at = 0
        self._align_at = 0
        self.profiles = None  # firmware/links/ocpp_smart.py when a profile is set
        if rt.store.get("ocppprof"):
            self._smart()
        self._claim_at = 0
        self._cache = {}  # authorization cache: idTag -> status
        self.diag_status = "Idle"
        self.fw_status = "Idle"
        self._power_loss()

    # ---- reconnect gate (DESIGN.md "Calls that block inside C"), as mqtt_link.py ----

    def may_connect(self):
        if self.error:
            return False
        if not self.rt.evse.outputs.contactor:
            return True
        return not self.ws.tls and self.ws._ip is not None

    # ---- status for runtime.status() / console ----

    def status(self):
        w = self.ws
        if self.error:
            conn = "error: " + self.error
        elif w.connected:
            conn = "connected" if self.boot == "Accepted" else "boot %s" % (self.boot or "sent")
        elif not self.may_connect():
            conn = "waiting: contactor closed"
        else:
            conn = "connecting (%d tries)" % w.attempts
        last = None
        if self.last_rx is not None:
            last = "%s %d s ago" % (self.last_rx[0],
                                    self.rt.store.uptime_s() - self.last_rx[1])
        return {"conn": conn, "last_csms": last, "queue": len(self.q),
                "tx": self.tx["txid"] if self.tx else None, "status": self._status,
                "bytes_out": w.bytes_out if w else 0, "bytes_in": w.bytes_in if w else 0}

    # ---- time ----

    def now_s(self):
        e = self.rt.store._epoch()
        if e:
            return e
        up = self.rt.store.uptime_s()
        if self._clock_off is not None:
            return up + self._clock_off
        return 1704067200 + up  # no clock yet: 2024-01-01 + uptime (documented)

    def ts(self):
        return isotime.iso(self.now_s())

    # ---- boot: transactions a power cut interrupted ----

    def _power_loss(self):
        """Decision (docs/ocpp.md): a transaction open at a reboot is stopped with reason
        PowerLoss at the last energy checkpoint (OCPP 1.6 §4.10; compliance test
        TC_032_2_CS), never resumed: the EV may have gone, and the contactor opened."""
        st = self.rt.store
        floor = self.q.max_wh()
        if floor > st.energy_wh:
            # The CSMS was told of energy the last checkpoint did not reach: the lifetime
            # register catches up, so it never runs backwards (docs/ocpp.md).
            st.add_energy(floor - st.energy_wh)
        for ref in self.q.unstopped():
            self.q.put("StopTransaction", {
                "transactionId": 0, "meterStop": self.rt.store.energy_wh,
                "timestamp": self.ts(), "reason": "PowerLoss"}, ref, closes=True)
            self.rt.store.event("ocpp_power_loss", "tx ref %d" % ref, 0)
        self.q.close_open()

    # ---- outgoing CALLs ----

    def _next_id(self):
        self._n += 1
        return "c%d-%d" % (self.rt.store.boots, self._n)

    def send_later(self, action, payload):
        """Queue a non-transaction CALL; False when the small queue is full."""
        if len(self._outq) >= _OUTQ_MAX:
            return False
        self._outq.append((action, payload))
        self._wake.set()
        return True

    async def _call(self, action, payload, msg_id=None):
        """('ok', payload) | ('error', code) | ('timeout', None) | ('down', None)."""
        w = self.ws
        msg_id = msg_id or self._next_id()
        ev = asyncio.Event()
        self._wait = [msg_id, action, ev, None]
        self._last_call_ms = time.ticks_ms()
        try:
            if not await w.send(json.dumps([2, msg_id, action, payload])):
                return "down", None
            self.calls_out += 1
            t0 = time.ticks_ms()
            while not ev.is_set():
                if not w.connected:
                    return "down", None
                if time.ticks_diff(time.ticks_ms(), t0) >= self.timeout_ms:
                    self.timeouts += 1
                    return "timeout", None
                try:
                    await asyncio.wait_for_ms(ev.wait(), 200)
                except asyncio.TimeoutError:
                    pass
            return self._wait[3]
        finally:
            self._wait = None

    async def _sender(self):
        while True:
            self._wake.clear()
            if self.ws.connected:
                try:
                    await self._send_one()
                except Exception as ex:
                    self.rt.store.event("ocpp_error", repr(ex)[:70], 0)
                    await asyncio.sleep_ms(1000)
            if not self._wake.is_set():
                try:
                    await asyncio.wait_for_ms(self._wake.wait(), _POLL_MS)
                except asyncio.TimeoutError:
                    pass

    async def _send_one(self):
        now = time.ticks_ms()
        if self.boot != "Accepted":
            if time.ticks_diff(now, self._boot_at) >= 0:
                await self._boot()
            return
        if self._outq:
            action, p = self._outq.pop(0)
            r = await self._call(action, p)
            self._result(action, p, r)
            return
        head = self.q.peek()
        # _tx_retry_at is only meaningful while an attempt failed: a kept tick older than
        # 2**29 ms reads as the future (tick period 2**30 ms)
        if head is not None and (self._tx_attempts == 0
                                 or time.ticks_diff(now, self._tx_retry_at) >= 0):
            await self._send_tx(head)
            return
        if self.hb_ms and time.ticks_diff(now, self._last_call_ms) >= self.hb_ms:
            r = await self._call("Heartbeat", {})
            self._result("Heartbeat", {}, r)

    async def _boot(self):
        p = {"chargePointVendor": _VENDOR, "chargePointModel": _MODEL,
             "firmwareVersion": _fw(), "chargePointSerialNumber": self.rt.config.get("id")}
        kind, r = await self._call("BootNotification", p)
        if kind != "ok":
            self._boot_at = time.ticks_add(time.ticks_ms(), _BOOT_RETRY_S * 1000)
            return
        st = r.get("status")
        iv = r.get("interval")
        iv = (iv if iv < _IV_MAX_S else _IV_MAX_S) if type(iv) is int and iv > 0 else 0
        self._clock(r.get("currentTime"))
        if st == "Accepted":
            self.boot = "Accepted"
            if iv:
                self.hb_ms = (iv if iv > _IV_MIN_S else _IV_MIN_S) * 1000
            self._status = None  # everything is sent afresh
            self._st0 = None
        else:  # Pending / Rejected: only BootNotification again after the interval
            self.boot = "Rejected" if st == "Rejected" else "Pending"
            self._boot_at = time.ticks_add(time.ticks_ms(), (iv or _BOOT_RETRY_S) * 1000)

    def _clock(self, text):
        t = isotime.parse(text)
        if t is not None and not self.rt.store._epoch():
            self._clock_off = t - self.rt.store.uptime_s()

    async def _send_tx(self, head):
        msg_id, action, p, ref = head
        kind, r = await self._call(action, p, msg_id)
        if kind == "down":
            return  # not an attempt: the same message id goes again after the reconnect
        if kind == "ok":
            self._tx_attempts = 0
            if action == "StartTransaction":
                txid = r.get("transactionId")
                self.q.confirm(txid if type(txid) is int else None, ref)
                if self.tx is not None and self.tx["ref"] == ref:
                    self.tx["txid"] = txid
                info = r.get("idTagInfo") or {}
                self._tag_status(p.get("idTag"), info)
                if info.get("status") != "Accepted" and self.tx is not None \
                        and self.tx["ref"] == ref and self.keys.get("StopTransactionOnInvalidId"):
                    self.stop_tx("DeAuthorized")
            else:
                self.q.confirm(ref=ref, ends=action == "StopTransaction")
            self._wake.set()
            return
        # CALLERROR or no answer: TransactionMessageAttempts / RetryInterval (§4.x)
        self._tx_attempts += 1
        if self._tx_attempts >= self.keys.get("TransactionMessageAttempts"):
            self.rt.store.event("ocpp_tx_dropped", "%s %s" % (action, msg_id), 0)
            self._tx_attempts = 0
            self.q.confirm(ref=ref, ends=action == "StopTransaction")
        else:
            self._tx_retry_at = time.ticks_add(time.ticks_ms(), self._tx_attempts * 1000
                                               * self.keys.get("TransactionMessageRetryInterval"))

    def _result(self, action, p, res):
        kind, r = res
        if kind != "ok":
            return
        if action == "Heartbeat":
            self._clock(r.get("currentTime"))
        elif action == "Authorize":
            info = r.get("idTagInfo") or {}
            self._tag_status(p["idTag"], info)
            self._authorized(p["idTag"], info.get("status") == "Accepted")
        elif action == "StatusNotification" and p["connectorId"] == 1:
            pass

    # ---- incoming messages ----

    def _on_open(self):
        self.boot = None if self.boot != "Accepted" else "Accepted"
        if self.boot == "Accepted":
            self._status = None  # re-announce after a reconnect
            self._st0 = None
        self._boot_at = time.ticks_ms()
        # a retry that fell due while offline goes now (its due time may be > 2**29 ms old
        # by now, read as the future: tick period 2**30 ms)
        self._tx_retry_at = self._boot_at
        self._wake.set()

    async def _on_text(self, text):
        m, err = json_strict(text)  # the one strict reading (issue 12 item 4)
        if err is not None:
            await self._bad_json(text, err)
            return
        if type(m) is not list or len(m) < 3 or type(m[1]) is not str or m[0] not in (2, 3, 4):
            # Not OCPP-J: the id cannot be trusted; answer the way §4.2.3 allows ("-1")
            await self._send_error(m[1] if type(m) is list and len(m) > 1 and type(m[1]) is str
                                   else "-1", "FormationViolation", "not an OCPP-J message")
            return
        self.last_rx = ("CALLRESULT" if m[0] != 2 else str(m[2])[:32],
                        self.rt.store.uptime_s())
        if m[0] == 2:
            await self._incoming(m)
            return
        w = self._wait
        if w is None or m[1] != w[0]:
            return  # a late answer to a call that timed out: dropped
        if m[0] == 3:
            w[3] = ("ok", m[2] if type(m[2]) is dict else {})
        else:
            self.call_errors += 1
            w[3] = ("error", m[2] if type(m[2]) is str else "GenericError")
        w[2].set()

    async def _bad_json(self, text, err):
        # Invalid JSON: a CALL whose id can still be read gets its CALLERROR, an unreadable id
        # the id "-1" (as for any frame that is not OCPP-J); a broken CALLRESULT/CALLERROR has
        # nobody to answer: dropped (our call times out). Logged at most once a minute.
        self.bad_frames += 1
        now = time.ticks_ms()
        # a negative age: the last one was logged > 2**29 ms ago (tick period 2**30 ms)
        if self._bad_log is None or not 0 <= time.ticks_diff(now, self._bad_log) < 60000:
            self._bad_log = now
            self.rt.store.event("ocpp_bad_json", err[:60])
        h = json_head(text, 2)  # [type, id, ... read as far as they are valid
        if h is not None and type(h[1]) is str:
            if h[0] != 2:
                return
            uid = h[1]
        else:
            uid = "-1"
        await self._send_error(uid, "FormationViolation", err)

    async def _send_error(self, msg_id, code, text):
        await self.ws.send(json.dumps([4, msg_id, code, text[:80], {}]))

    async def _incoming(self, m):
        msg_id = m[1]
        self.calls_in += 1
        if len(m) != 4 or type(m[2]) is not str:
            await self._send_error(msg_id, "FormationViolation", "CALL is [2,id,action,payload]")
            return
        if self.boot == "Rejected":
            return  # §4.2: while Rejected the charge point does not respond
        fn = getattr(self, "on_" + m[2], None) if m[2].isalpha() else None
        if fn is None:
            await self._send_error(msg_id, "NotImplemented", "%s is not supported" % m[2][:40])
            return
        try:
            r = fn(m[3])
        except CallError as ex:
            await self._send_error(msg_id, ex.code, ex.text)
            return
        except Exception as ex:  # a bug here must answer, not drop the link
            self.rt.store.event("ocpp_error", "%s: %r" % (m[2], ex), 0)
            await self._send_error(msg_id, "InternalError", "%s failed" % m[2])
            return
        await self.ws.send(json.dumps([3, msg_id, r]))

    # ---- Core profile: CSMS -> charge point ----

    def on_ChangeAvailability(self, p):
        check(p, (("connectorId", _INT, True, 1), ("type", _STR, True, ("Inoperative", "Operative"))))
        if p["connectorId"] > 1:
            return {"status": "Rejected"}
        off = p["type"] == "Inoperative"
        if off != self.unavailable:
            self.unavailable = off
            self.rt.store.put("ocppavail", off, 0)
        if off and self.tx is not None:
            return {"status": "Scheduled"}  # §5.2: takes effect when the transaction ends
        self._apply_claim()
        return {"status": "Accepted"}

    def on_GetConfiguration(self, p):
        check(p, (("key", _ARR, False, None),))
        keys = p.get("key")
        if keys is not None:
            if any(type(k) is not str or len(k) > 50 for k in keys):
                raise CallError("TypeConstraintViolation", "key: list of strings (<= 50)")
            if len(keys) > self.keys.get("GetConfigurationMaxKeys"):
                raise CallError("OccurenceConstraintViolation", "too many keys")
        known, unknown = self.keys.read(keys)
        r = {"configurationKey": known}
        if unknown:
            r["unknownKey"] = unknown
        return r

    def on_ChangeConfiguration(self, p):
        check(p, (("key", _STR, True, 50), ("value", _STR, True, 500)))
        st = self.keys.change(p["key"], p["value"])
        if st == "Accepted":
            k = p["key"]
            if k == "HeartbeatInterval":
                self.hb_ms = self.keys.get(k) * 1000
            elif k == "WebSocketPingInterval":
                self.ws.ping_ms = self.keys.get(k) * 1000
            elif k in ("MeterValueSampleInterval", "ClockAlignedDataInterval"):
                # the next sample due at once, as a relative tick (an absolute 0 reads as the
                # future 2**29..2**30 ms after boot: tick period 2**30 ms); the key <= 86400 s
                self._mv_at = time.ticks_add(time.ticks_ms(), -_MV_DUE_MS)
                self._align_at = 0
        return {"status": st}

    def on_ClearCache(self, p):
        check(p, ())
        self._cache = {}
        return {"status": "Accepted"}

    def on_DataTransfer(self, p):
        check(p, (("vendorId", _STR, True, 255), ("messageId", _STR, False, 50),
                  ("data", _STR, False, None)))
        return {"status": "UnknownVendorId"}  # no vendor extensions (§5.6)

    def on_RemoteStartTransaction(self, p):
        check(p, (("connectorId", _INT, False, 1), ("idTag", _STR, True, 20),
                  ("chargingProfile", _OBJ, False, None)))
        if p.get("connectorId", 1) != 1 or self.tx is not None or self.unavailable \
                or self.rt.evse.fault:
            return {"status": "Rejected"}
        if "chargingProfile" in p:
            sm = self._smart()
            prof = sm.parse(p["chargingProfile"])  # a bad profile: CALLERROR, nothing changed
            if prof["chargingProfilePurpose"] != "TxProfile":
                return {"status": "Rejected"}
            sm.pending_tx = prof  # installed when the transaction starts
        if self.keys.get("AuthorizeRemoteTxRequests"):
            if not self.send_later("Authorize", {"idTag": p["idTag"]}):
                return {"status": "Rejected"}
            self._auth_wait = True
        else:
            self._authorized(p["idTag"], True)
        return {"status": "Accepted"}

    def on_RemoteStopTransaction(self, p):
        check(p, (("transactionId", _INT, True, None),))
        t = self.tx
        if t is None or t["txid"] != p["transactionId"]:
            return {"status": "Rejected"}
        self.stop_tx("Remote")
        return {"status": "Accepted"}

    def on_Reset(self, p):
        check(p, (("type", _STR, True, ("Hard", "Soft")),))
        if self.tx is not None:
            self.stop_tx("HardReset" if p["type"] == "Hard" else "SoftReset")
        asyncio.create_task(self._reset())
        return {"status": "Accepted"}

    async def _reset(self):
        # The Stop is on flash already; give the CSMS a moment to get it, then reboot.
        t0 = time.ticks_ms()
        while len(self.q) and time.ticks_diff(time.ticks_ms(), t0) < 10000:
            await asyncio.sleep_ms(100)
        await asyncio.sleep_ms(300)
        self.rt.store.event("ocpp_reset", "", 0)
        self.rt.store.flush()
        fn = getattr(self.rt, "reboot", None)
        if fn is not None:
            fn()
        else:
            self.rt.stopped = True  # unix port: the process ends (the bench restarts it)

    # ---- Smart Charging (firmware/links/ocpp_smart.py, imported on first use) ----

    def _smart(self):
        if self.profiles is None:
            from firmware.links.ocpp_smart import Smart
            self.profiles = Smart(self)
        return self.profiles

    def on_SetChargingProfile(self, p):
        check(p, (("connectorId", _INT, True, None), ("csChargingProfiles", _OBJ, True, None)))
        st = self._smart().set(p)
        self._apply_claim()
        return {"status": st}

    def on_ClearChargingProfile(self, p):
        check(p, (("id", _INT, False, None), ("connectorId", _INT, False, None),
                  ("chargingProfilePurpose", _STR, False, (
                      "ChargePointMaxProfile", "TxDefaultProfile", "TxProfile")),
                  ("stackLevel", _INT, False, None)))
        st = self._smart().clear(p)
        self._apply_claim()
        return {"status": st}

    def on_GetCompositeSchedule(self, p):
        check(p, (("connectorId", _INT, True, None), ("duration", _INT, True, None),
                  ("chargingRateUnit", _STR, False, ("A", "W"))))
        return self._smart().composite(p)

    # ---- Local Auth List Management (§5.10, §5.15): store record "ocpplist" ----

    def _list(self):
        d = self.rt.store.get("ocpplist")
        return d if type(d) is dict and type(d.get("tags")) is dict else {"v": 0, "tags": {}}

    def local_status(self, tag):
        """Status of tag in the local list (enabled) or the cache, or None."""
        if self.keys.get("LocalAuthListEnabled"):
            st = self._list()["tags"].get(tag)
            if st is not None:
                return st
        if self.keys.get("AuthorizationCacheEnabled"):
            return self._cache.get(tag)
        return None

    def on_GetLocalListVersion(self, p):
        check(p, ())
        if not self.keys.get("LocalAuthListEnabled"):
            return {"listVersion": -1}
        return {"listVersion": self._list()["v"]}

    def on_SendLocalList(self, p):
        check(p, (("listVersion", _INT, True, None), ("localAuthorizationList", _ARR, False, None),
                  ("updateType", _STR, True, ("Differential", "Full"))))
        if not self.keys.get("LocalAuthListEnabled"):
            return {"status": "NotSupported"}
        entries = p.get("localAuthorizationList") or []
        if len(entries) > self.keys.get("SendLocalListMaxLength"):
            return {"status": "Failed"}
        for e in entries:
            check(e, (("idTag", _STR, True, 20), ("idTagInfo", _OBJ, False, None)))
            if "idTagInfo" in e:
                check(e["idTagInfo"], (("status", _STR, True, (
                    "Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx")),
                    ("expiryDate", _STR, False, None), ("parentIdTag", _STR, False, 20)))
        cur = self._list()
        if p["updateType"] == "Full":
            tags = {}
        else:
            if p["listVersion"] <= cur["v"]:
                return {"status": "VersionMismatch"}
            tags = dict(cur["tags"])
        for e in entries:
            info = e.get("idTagInfo")
            if info is None:
                tags.pop(e["idTag"], None)
            else:
                tags[e["idTag"]] = info["status"]
        if len(tags) > self.keys.get("LocalAuthListMaxLength"):
            return {"status": "Failed"}
        self.rt.store.put("ocpplist", {"v": p["listVersion"], "tags": tags}, 0)
        return {"status": "Accepted"}

    # ---- Firmware Management ----

    def on_GetDiagnostics(self, p):
        check(p, (("location", _STR, True, 512), ("retries", _INT, False, None),
                  ("retryInterval", _INT, False, None), ("startTime", _STR, False, None),
                  ("stopTime", _STR, False, None)))
        from firmware.links import ocpp_diag
        try:
            ocpp_diag.split_http(p["location"])
        except ValueError:
            return {}  # no fileName: nothing will be uploaded (§6.29)
        name = "diag-%s-%d.txt" % (self.cp_id, self.now_s())
        asyncio.create_task(ocpp_diag.upload(self, p["location"], name,
                                             min(p.get("retries", 0), 3),
                                             min(p.get("retryInterval", 10), 600)))
        return {"fileName": name}

    def on_UpdateFirmware(self, p):
        check(p, (("location", _STR, True, 512), ("retrieveDate", _STR, True, None),
                  ("retries", _INT, False, None), ("retryInterval", _INT, False, None)))
        ota = self.rt.features.get("ota")  # the signed A/B update (docs/ota.md)
        if ota is None:
            # UpdateFirmware.conf has no status field: the honest answer is a CALLERROR
            raise CallError("NotSupported", "updates are off on this wallbox (config ota)")
        when = isotime.parse(p["retrieveDate"])
        if when is None:
            raise CallError("PropertyConstraintViolation", "retrieveDate is not a date-time")
        asyncio.create_task(self._update(ota, p["location"], when, min(p.get("retries", 1), 5),
                                         min(max(p.get("retryInterval", 30), 1), 3600)))
        return {}

    async def _update(self, ota, url, when, retries, interval_s):
        while self.now_s() < when:  # retrieveDate (§5.19)
            await asyncio.sleep_ms(1000)
        for _ in range(retries + 1):
            ok, msg = ota.start_url(url, None, self._fw_progress, origin="ocpp")
            if ok:  # runs in its own task, waits for the session to end (docs/ota.md)
                return
            self.rt.store.event("ocpp_update", msg[:70], 0)
            self._fw_status("DownloadFailed")
            await asyncio.sleep_ms(interval_s * 1000)

    def _fw_progress(self, state, done, total, error):
        # docs/ota.md "API": the OTA states as FirmwareStatusNotification (§7.25)
        if state in ("downloading", "verifying"):
            self._fw_status("Downloading")
        elif state in ("installing", "switching"):
            self._fw_status("Installing")
        elif state == "trial":
            self._fw_status("Installed")
        elif state == "failed":
            self._fw_status("DownloadFailed" if not done else "InstallationFailed")

    def _fw_status(self, st):
        if st != self.fw_status:
            self.fw_status = st
            self.send_later("FirmwareStatusNotification", {"status": st})

    def on_UnlockConnector(self, p):
        check(p, (("connectorId", _INT, True, None),))
        if p["connectorId"] != 1 or not self.rt.config.get("lock"):
            return {"status": "NotSupported"}
        if self.tx is not None:
            self.stop_tx("UnlockCommand")
        return {"status": "Unlocked" if not self.rt.evse.outputs.lock else "UnlockFailed"}

    def on_TriggerMessage(self, p):
        check(p, (("requestedMessage", _STR, True, (
            "BootNotification", "DiagnosticsStatusNotification", "FirmwareStatusNotification",
            "Heartbeat", "MeterValues", "StatusNotification")), ("connectorId", _INT, False, None)))
        c = p.get("connectorId")
        if c is not None and c > 1:
            return {"status": "Rejected"}
        what = p["requestedMessage"]
        if what == "BootNotification":
            self.boot = None
            self._boot_at = time.ticks_ms()
            self._wake.set()
        elif what == "Heartbeat":
            self._last_call_ms = time.ticks_add(time.ticks_ms(), -self.hb_ms - 1)
            self._wake.set()
        elif what == "StatusNotification":
            if c in (None, 1):
                self._status = None
            if c in (None, 0):
                self._st0 = None
        elif what == "MeterValues":
            self.send_later("MeterValues", self._meter_values("Trigger", None))
        elif what == "DiagnosticsStatusNotification":
            self.send_later("DiagnosticsStatusNotification", {"status": self.diag_status})
        else:
            self.send_later("FirmwareStatusNotification", {"status": self.fw_status})
        return {"status": "Accepted"}

    # ---- authorization ----

    def _tag_status(self, tag, info):
        if tag and self.keys.get("AuthorizationCacheEnabled") and type(info) is dict:
            st = info.get("status")
            if type(st) is str:
                if len(self._cache) >= 20 and tag not in self._cache:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[tag] = st

    def present_tag(self, tag):
        """A local idTag (RFID reader, console): start, or stop the transaction it started.
        Returns (ok, what happened)."""
        if type(tag) is not str or not 0 < len(tag) <= 20:
            return False, "idTag must be 1..20 characters"
        if self.tx is not None:
            if tag == self.tx["tag"]:
                self.stop_tx("Local")
                return True, "stopping"
            return False, "another transaction is running"
        if self.unavailable:
            return False, "unavailable"
        online = self.ws is not None and self.ws.connected and self.boot == "Accepted"
        known = self.local_status(tag)  # local list first, then the cache
        if online:
            if self.keys.get("LocalPreAuthorize") and known == "Accepted":
                self._authorized(tag, True)  # at once; the StartTransaction.conf may revoke it
                return True, "authorized (local)"
            self.send_later("Authorize", {"idTag": tag})
            self._auth_wait = True
            return True, "authorizing"
        if known == "Accepted" and self.keys.get("LocalAuthorizeOffline"):
            self._authorized(tag, True)
            return True, "authorized offline (local)"
        if known is None and self.keys.get("AllowOfflineTxForUnknownId"):
            self._authorized(tag, True)
            return True, "authorized offline (unknown id allowed)"
        return False, "not authorized (offline, %s)" % (known or "unknown")

    def _authorized(self, tag, ok):
        self._auth_wait = False
        if not ok:
            self.rt.store.event("ocpp_auth_rejected", tag, 0)
            return
        self._auth_tag = tag
        self._auth_until = time.ticks_add(time.ticks_ms(),
                                          self.keys.get("ConnectionTimeOut") * 1000)
        self._hold = False
        self.cmds.authorize()  # the one command path (sets evse.authorized if required)
        self._apply_claim()
        o = self.rt.evse.outputs
        if self.tx is None and o.state != "A" and not o.fault and not self.unavailable:
            self.start_tx(tag)  # cable already in: the transaction starts with the authorization

    # ---- transactions ----

    def _require_auth(self):
        return self.rt.config.get("require_auth")

    def start_tx(self, tag):
        rt = self.rt
        ref = self.q.new_ref()
        wh = rt.store.energy_wh
        st = self.ts()
        self.tx = {"ref": ref, "tag": tag, "start_wh": wh, "start_ts": st, "txid": None,
                   "start_s": self.now_s()}
        self.q.put("StartTransaction", {"connectorId": 1, "idTag": tag, "meterStart": wh,
                                        "timestamp": st}, ref, opens=True)
        self._mv_at = time.ticks_ms()
        if self.profiles is not None:
            self.profiles.tx_started()
            self._apply_claim()
        rt.store.event("ocpp_tx_start", "ref %d %s" % (ref, tag), 0)
        self._wake.set()

    def stop_tx(self, reason, hold=True):
        t = self.tx
        if t is None:
            return
        rt = self.rt
        wh = rt.store.energy_wh
        p = {"transactionId": 0, "meterStop": wh, "timestamp": self.ts(), "reason": reason,
             "idTag": t["tag"]}
        sd = self.keys.measurands("StopTxnSampledData")
        if sd:
            p["transactionData"] = [
                {"timestamp": t["start_ts"], "sampledValue": self._sampled(
                    sd, "Transaction.Begin", t["start_wh"])},
                {"timestamp": p["timestamp"], "sampledValue": self._sampled(
                    sd, "Transaction.End", wh)}]
        self.q.put("StopTransaction", p, t["ref"], closes=True)
        self.tx = None
        self._auth_tag = None
        if self.profiles is not None:
            self.profiles.tx_ended()
        rt.store.event("ocpp_tx_stop", "ref %d %s" % (t["ref"], reason), 0)
        if rt.evse.outputs.state != "A":
            # no energy outside a transaction: deauthorized, and (but after a fault, which
            # blocks charging by itself) the OCPP claim is 0 until unplug or a new tag
            rt.evse.authorized = False
            self._hold = hold
        self._apply_claim()
        self._wake.set()

    def _apply_claim(self):
        ma = CLAIM_NONE_MA
        if self._hold or self.unavailable:
            ma = 0
        elif self.profiles is not None:
            ma = self.profiles.limit_ma()
            if ma < 0:  # no profile in effect
                ma = CLAIM_NONE_MA
        self.rt.evse.set_claim_ma(CLAIM_OCPP, ma)  # 0 or 6000..80000 (ocpp_schedule)

    # ---- meter values ----

    def _sampled(self, measurands, context, wh=None):
        rt = self.rt
        out = []
        for m in measurands:
            if m == "Energy.Active.Import.Register":
                out.append({"value": str(rt.store.energy_wh if wh is None else wh),
                            "context": context, "measurand": m, "unit": "Wh"})
            elif wh is not None:
                continue  # Begin/End of a transaction: the register only is known then
            elif m == "Power.Active.Import":
                out.append({"value": str(rt.power_w), "context": context, "measurand": m,
                            "unit": "W"})
            elif m == "Current.Import":
                for i in range(self._phases()):
                    out.append({"value": _fmt_ma(rt.i_ma[i]), "context": context,
                                "measurand": m, "phase": "L%d" % (i + 1), "unit": "A"})
            elif m == "Voltage":
                for i in range(self._phases()):
                    out.append({"value": _fmt_ma(rt.v_mv[i]), "context": context,
                                "measurand": m, "phase": "L%d-N" % (i + 1), "unit": "V"})
            elif m == "Temperature" and rt.temp_dc != E.TEMP_NONE:
                out.append({"value": "%d.%d" % (rt.temp_dc // 10, rt.temp_dc % 10),
                            "context": context, "measurand": m, "location": "Body",
                            "unit": "Celsius"})
        return out

    def _phases(self):
        return 3 if self.rt.config.get("phases") == 3 else 1

    def _meter_values(self, context, key):
        ms = self.keys.measurands(key) if key else ["Energy.Active.Import.Register",
                                                     "Power.Active.Import", "Current.Import"]
        p = {"connectorId": 1, "meterValue": [
            {"timestamp": self.ts(), "sampledValue": self._sampled(ms, context)}]}
        if self.tx is not None:
            p["transactionId"] = self.tx["txid"] or 0
        return p

    def _meter_tick(self, now):
        iv = self.keys.get("MeterValueSampleInterval")
        if self.tx is not None and iv and time.ticks_diff(now, self._mv_at) >= iv * 1000:
            self._mv_at = now
            p = self._meter_values("Sample.Periodic", "MeterValuesSampledData")
            p["transactionId"] = 0
            self.q.put("MeterValues", p, self.tx["ref"])
            self._wake.set()
        al = self.keys.get("ClockAlignedDataInterval")
        if al:
            t = self.now_s()
            slot = t - t % al
            if slot != self._align_at:
                first = self._align_at == 0
                self._align_at = slot
                if not first:
                    p = self._meter_values("Sample.Clock", "MeterValuesAlignedData")
                    if self.tx is not None:
                        p["transactionId"] = 0
                        self.q.put("MeterValues", p, self.tx["ref"])
                    else:
                        self.send_later("MeterValues", p)
                    self._wake.set()

    # ---- connector status ----

    def connector_status(self):
        """(status, errorCode) of connector 1 from the charging state and faults (§7.7)."""
        rt = self.rt
        o = rt.evse.outputs
        err = "NoError"
        for bits, code in _ERRORS:
            if o.fault & bits:
                err = code
                break
        if err == "NoError" and rt.meter_error:
            err = "PowerMeterFailure"
        if o.fault or o.state in ("E", "F"):
            return FAULTED, err if err != "NoError" else "OtherError"
        plugged = o.state != "A"
        if self.unavailable and self.tx is None:
            return UNAVAILABLE, err
        if self.tx is not None:
            if o.contactor:
                return CHARGING, err
            # PWM offered and the EV does not take it / the charge point offers nothing
            return (SUSP_EV if o.pilot == PILOT_PWM else SUSP_EVSE), err
        if plugged:
            return (FINISHING if self._hold else PREPARING), err
        return AVAILABLE, err

    def _status_tick(self):
        if self.boot != "Accepted" or not self.ws.connected:
            return
        st, err = self.connector_status()
        if (st, err) != self._status:
            if self.send_later("StatusNotification", {"connectorId": 1, "errorCode": err,
                                                      "status": st, "timestamp": self.ts()}):
                self._status = (st, err)
        s0 = UNAVAILABLE if self.unavailable else AVAILABLE
        if s0 != self._st0:
            if self.send_later("StatusNotification", {"connectorId": 0, "errorCode": "NoError",
                                                      "status": s0, "timestamp": self.ts()}):
                self._st0 = s0

    # ---- the poll task ----

    def poll(self, now):
        rt = self.rt
        o = rt.evse.outputs
        unplugged = rt.unplugs != self._seen_unplugs
        self._seen_unplugs = rt.unplugs
        plugged = o.state != "A"
        if unplugged or not plugged:
            if self.tx is not None:
                self.stop_tx("EVDisconnected")
            if self._hold:
                self._hold = False
                self._apply_claim()
        if self.tx is not None and o.fault and not self._prev_fault:
            self.stop_tx("Other", False)  # a fault ends the transaction (docs/ocpp.md)
        self._prev_fault = o.fault
        if self.tx is None and plugged and not o.fault and not self._hold \
                and not self.unavailable:
            if self._auth_tag is not None:
                self.start_tx(self._auth_tag)
            elif not self._require_auth() or rt.evse.authorized:
                # free charging, or authorized without a tag (console/MQTT authorize):
                # the charge point's own id stands for the idTag
                self.start_tx(self.cp_id[:20])
        if self.tx is None and self._auth_tag is not None and not plugged \
                and time.ticks_diff(now, self._auth_until) >= 0:
            # ConnectionTimeOut: no cable in time, the authorization lapses (§5.11)
            self._auth_tag = None
            rt.evse.authorized = False
            rt.store.event("ocpp_auth_timeout", "", 0)
        # a negative age: _claim_at was kept > 2**29 ms while no profile was set (or is the
        # initial 0): due now (tick period 2**30 ms)
        if (self.unavailable and self.tx is None) or (
                self.profiles is not None
                and not 0 <= time.ticks_diff(now, self._claim_at) < 1000):
            self._claim_at = now
            self._apply_claim()  # profiles change with the clock: once a second
        self._meter_tick(now)
        self._status_tick()

    async def run(self):
        self._apply_claim()
        if self.ws is None:
            return
        t1 = asyncio.create_task(self.ws.run())
        t2 = asyncio.create_task(self._sender())
        try:
            while True:
                await asyncio.sleep_ms(_POLL_MS)
                self.poll(time.ticks_ms())
        finally:
            t1.cancel()
            t2.cancel()


def _fw():
    from firmware.services.runtime import VERSION
    return VERSION


def start(rt):
    """startup.FEATURES entry: imported only when ocpp_url is set."""
    o = Ocpp(rt)
    rt.features["ocpp"] = o
    return [("ocpp", o.run)]
