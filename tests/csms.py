"""A CSMS for the OCPP tests, written with the mobilityhouse `ocpp` library (PyPI 2.1.0) on
`websockets`: every message the charge point sends is validated against the OCPP 1.6 JSON
schemas by the library and recorded with its unique id; StartTransaction ids are handed out
once per unique id (a retry of the same message gets the same id back, as a CSMS that
deduplicates does), so a test can check that each transaction is seen exactly once.

    with Csms() as c:                      # ws://127.0.0.1:<c.port>/ocpp
        ...firmware with ocpp_url=c.url...
        c.wait(lambda: c.actions("BootNotification"))
        r = c.request(call.RemoteStartTransaction(id_tag="TAG1"))
"""
import asyncio
import json
import threading
import time
from datetime import datetime, timezone

from ocpp.exceptions import OCPPError
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action

from ws_server import WsServer


def _now():
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class _CP(ChargePoint):
    def __init__(self, cp_id, ws, csms):
        ChargePoint.__init__(self, cp_id, ws, response_timeout=15)
        self.csms = csms

    async def route_message(self, raw):
        c = self.csms
        with c.lock:
            c.raw.append(raw)
            try:
                m = json.loads(raw)
                if isinstance(m, list) and m and m[0] == 2:
                    c.msgs.append((m[1], m[2], m[3]))
            except ValueError:
                pass
        if not c.answer:
            return  # a CSMS that never answers
        await ChargePoint.route_message(self, raw)

    async def _handle_call(self, msg):
        try:
            return await ChargePoint._handle_call(self, msg)
        except OCPPError as e:
            with self.csms.lock:
                self.csms.schema_errors.append((msg.action, repr(e)))
            raise

    @on(Action.boot_notification)
    def boot(self, **kw):
        c = self.csms
        st = c.boot_statuses.pop(0) if len(c.boot_statuses) > 1 else c.boot_statuses[0]
        return call_result.BootNotification(current_time=_now(), interval=c.interval, status=st)

    @on(Action.heartbeat)
    def heartbeat(self, **kw):
        return call_result.Heartbeat(current_time=_now())

    @on(Action.status_notification)
    def status(self, **kw):
        return call_result.StatusNotification()

    @on(Action.authorize)
    def authorize(self, id_tag, **kw):
        return call_result.Authorize(id_tag_info={"status": self.csms.tags.get(id_tag, "Invalid")})

    @on(Action.start_transaction)
    def start_tx(self, id_tag, connector_id, meter_start, timestamp, call_unique_id, **kw):
        c = self.csms
        with c.lock:
            if call_unique_id not in c.tx_by_uid:
                c.next_txid += 1
                c.tx_by_uid[call_unique_id] = c.next_txid
                c.starts[c.next_txid] = {"id_tag": id_tag, "meter_start": meter_start,
                                         "timestamp": timestamp}
            txid = c.tx_by_uid[call_unique_id]
        st = c.tags.get(id_tag, "Accepted" if c.accept_unknown else "Invalid")
        return call_result.StartTransaction(transaction_id=txid, id_tag_info={"status": st})

    @on(Action.stop_transaction)
    def stop_tx(self, transaction_id, meter_stop, timestamp, call_unique_id, **kw):
        c = self.csms
        with c.lock:
            c.stops.setdefault(transaction_id, {})[call_unique_id] = {
                "meter_stop": meter_stop, "reason": kw.get("reason"), "timestamp": timestamp,
                "transaction_data": kw.get("transaction_data")}
        return call_result.StopTransaction(id_tag_info={"status": "Accepted"})

    @on(Action.meter_values)
    def meter_values(self, connector_id, meter_value, call_unique_id, **kw):
        c = self.csms
        with c.lock:
            c.meter_values.append((call_unique_id, kw.get("transaction_id"), meter_value))
        return call_result.MeterValues()

    @on(Action.data_transfer)
    def data_transfer(self, **kw):
        return call_result.DataTransfer(status="UnknownVendorId")

    @on(Action.firmware_status_notification)
    def fw_status(self, **kw):
        return call_result.FirmwareStatusNotification()

    @on(Action.diagnostics_status_notification)
    def diag_status(self, **kw):
        return call_result.DiagnosticsStatusNotification()


class Csms:
    def __init__(self, boot=("Accepted",), interval=300, port=0, subprotocols=("ocpp1.6",),
                 **server_kw):
        self.lock = threading.Lock()
        self.boot_statuses = list(boot)
        self.interval = interval
        self.tags = {}  # idTag -> Authorize/Start status ("Accepted", "Blocked", ...)
        self.accept_unknown = True  # StartTransaction of an unknown tag (free charging)
        self.answer = True
        self.raw = []
        self.msgs = []  # (unique_id, action, payload) of every CALL from the charge point
        self.schema_errors = []
        self.next_txid = 1000
        self.tx_by_uid = {}
        self.starts = {}  # txid -> start fields
        self.stops = {}  # txid -> {unique_id: stop fields}
        self.meter_values = []  # (unique_id, transaction_id, meter_value)
        self.cp = None
        self.connections = 0
        self.paths = []
        self.srv = WsServer(self._handler, subprotocols=subprotocols, port=port, **server_kw)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self.srv.start()
        self.port = self.srv.port
        return self

    def stop(self):
        self.srv.stop()

    @property
    def url(self):
        return "%s://127.0.0.1:%d/ocpp" % ("wss" if self.srv.kw.get("ssl") else "ws", self.port)

    async def _handler(self, ws):
        path = ws.request.path
        self.paths.append(path)
        cp = _CP(path.rsplit("/", 1)[-1], ws, self)
        self.cp = cp
        self.connections += 1
        try:
            await cp.start()
        except Exception:
            pass

    # ---- test API (test thread) ----

    def actions(self, action=None):
        with self.lock:
            return [m for m in self.msgs if action is None or m[1] == action]

    def wait(self, pred, timeout=20, what="condition"):
        deadline = time.time() + timeout
        while True:
            r = pred()
            if r:
                return r
            if time.time() > deadline:
                raise AssertionError("CSMS: timed out waiting for %s; got %s" % (
                    what, [(m[1], m[2]) for m in self.actions()][-12:]))
            time.sleep(0.05)

    def request(self, payload, timeout=15):
        """A CSMS -> charge point CALL; returns the validated call_result."""
        cp = self.cp
        return self.srv.call(cp.call(payload), timeout)

    def send_raw(self, text):
        cp = self.cp
        self.srv.call(cp._connection.send(text))

    def statuses(self, connector=1):
        return [m[2]["status"] for m in self.actions("StatusNotification")
                if m[2]["connectorId"] == connector]
