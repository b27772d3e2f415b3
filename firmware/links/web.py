# The local web page (docs/web.md): one gzip page (firmware/links/web_assets.py, built from
# web/ by tools/web_assets.py), a JSON API and a Server-Sent Events stream of the live state.
# Turned on by config web_port (firmware/startup.py FEATURES): nothing here is imported otherwise.
#
# Every change goes through the same paths as the console and MQTT: commands through
# firmware/links/commands.py, settings through Config (config.parse/check), with their error
# texts. Nothing here touches the control tick; the HTTP front (web_http.py) bounds
# connections, sizes and time; web_auth.py decides who may do what.
import asyncio
import json
import sys
import time
from micropython import const

from firmware.core import evse as E
from firmware.links.commands import Commands, json_strict
from firmware.links import web_http as H
from firmware.links.web_auth import Auth
from firmware.services import config as C
from firmware.services.runtime import VERSION
from firmware.vendor import microdot as md

COOKIE = "wb_session"
MAX_STREAMS = const(2)  # live streams at once (of web_http.MAX_CONN): a newer one ends the oldest
STREAM_MS = const(1000)  # a state event at least this often
_STREAM_POLL_MS = const(100)  # ... and within this of a state/contactor/fault change
_JSON = "application/json"
_SECRET = const(1)  # config.py SCHEMA flag for secrets (its own const is module-private)
_CMDS = ("set_current", "enable", "set_phases", "reset_faults", "authorize")
_EPOCH_2000 = const(946684800)
MAX_BUNDLE = const(4 * 1024 * 1024)  # the largest upload accepted (a release bundle is ~200 KB)


def _err(status, msg):
    return md.Response({"error": msg}, status)


class _Stream:
    """The SSE body: an async iterator (MicroPython has no async generators). Each event is
    the page's state; the writer is flushed after each, so the browser sees it at once."""

    def __init__(self, web, writer, token):
        self.web = web
        self.w = writer
        self.token = token
        self.open = True
        self.first = True
        self.seen = -1

    def __aiter__(self):
        return self

    async def __anext__(self):
        web = self.web
        if not self.first:
            await self.w.flush()
            waited = 0
            while self.open and waited < STREAM_MS and web.changes == self.seen:
                await asyncio.sleep_ms(_STREAM_POLL_MS)
                waited += _STREAM_POLL_MS
        if not self.open or not web.may_read_token(self.token):
            raise StopAsyncIteration
        self.first = False
        self.seen = web.changes
        return b"data: " + json.dumps(web.state()).encode() + b"\n\n"

    async def aclose(self):
        self.open = False
        if self in self.web.streams:
            self.web.streams.remove(self)


class Web:
    def __init__(self, rt):
        self.rt = rt
        self.cmds = Commands(rt)
        self.auth = Auth(rt.config, rt.store, rt.config.get("web_session_h") * 3600)
        self.streams = []
        self.changes = 0  # bumped by watch() when state/contactor/fault/limit change
        self.app = md.Microdot()
        self._routes()
        host = "127.0.0.1" if sys.platform == "linux" else "0.0.0.0"  # the sim bench stays local
        self.error = None
        self.http = H.Server(self.app, rt.config.get("web_port"), host, self._body_limit,
                             self._tls())

    def _tls(self):
        """Server TLS context from web_cert/web_key, None for http. A cert that cannot be
        loaded raises: the page stays off rather than falling back to plain http."""
        cert, key = self.rt.config.get("web_cert"), self.rt.config.get("web_key")
        if not cert and not key:
            return None
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(_read(cert), _read(key))  # at start: file reads block too
        return ctx

    def status(self):
        st = self.http.status()
        st["password"] = self.auth.has_password()
        st["sessions"] = len(self.auth.sessions)
        st["streams"] = len(self.streams)
        return st

    def _body_limit(self, method, path):
        if path == "/api/update" and method == "POST":
            return -MAX_BUNDLE  # streamed into the inactive slot (docs/ota.md), never whole in RAM
        return H.MAX_BODY

    # --- who may do what --------------------------------------------------------------
    def _token(self, req):
        return req.cookies.get(COOKIE)

    def may_read_token(self, token):
        return self.rt.config.get("web_public_status") or self.auth.session(token) is not None

    def _guard(self, req, post, ctype=_JSON):
        """None if the request may go on, else the error Response. Every POST needs the
        session's CSRF token in X-CSRF-Token, a JSON body (the upload: octet-stream) and
        (if sent) our own Origin."""
        s = self.auth.session(self._token(req))
        if s is None:
            return _err(401, "log in first")
        if post:
            bad = self._post_checks(req, ctype)
            if bad is not None:
                return bad
            tok = req.headers.get("X-CSRF-Token", "")
            if len(tok) != len(s[1]) or tok != s[1]:
                return _err(403, "missing or wrong CSRF token: reload the page")
        return None

    def _post_checks(self, req, ctype=_JSON):
        origin = req.headers.get("Origin")
        host = req.headers.get("Host", "")
        if origin is not None and origin.split("://", 1)[-1] != host:
            return _err(403, "cross-site request refused")
        if (req.content_type or "").split(";")[0].strip() != ctype:
            return _err(415, "send %s (Content-Type: %s)" % ("JSON" if ctype == _JSON else "the file", ctype))
        if ctype != _JSON:
            return None
        # the strict parser MQTT, the console and OCPP use (firmware/links/commands.py):
        # a trailing comma, a duplicate key or invalid UTF-8 is an error, not a value
        req.g.data, err = json_strict(req.body) if req.body else ({}, None)
        if err:
            return _err(400, "body is not valid JSON: %s" % err)
        if type(req.g.data) is not dict:
            return _err(400, "body must be a JSON object")
        return None

    def _cookie(self, res, token, age_s):
        res.set_cookie(COOKIE, token, path="/", max_age=age_s, http_only=True,
                       secure=self.http.tls is not None)
        # SameSite=Strict: the browser never sends the session from another site's page
        c = res.headers["Set-Cookie"]
        c[-1] += "; SameSite=Strict"
        return res

    # --- what the page shows ------------------------------------------------------------
    def state(self):
        rt = self.rt
        e = rt.evse
        o = e.outputs
        s = rt.store.session_open()
        if s is not None:
            s = {"wh": s["wh"], "s": rt.store.uptime_s() - s["start_up_s"]}
        st = {"state": o.state, "enabled": e.enabled, "contactor": o.contactor,
              "offered_a": o.allowed_ma / 1000, "limit_a": e.backend_ma / 1000,
              "max_a": rt.config.get("max_current_a"), "phases": o.phases,
              "current_a": [x / 1000 for x in rt.i_ma], "power_w": rt.power_w,
              "faults": E.fault_names(o.fault), "limit": e.limit_name(),
              "session": s, "energy_wh": rt.store.energy_wh, "fw": VERSION,
              "uptime_s": rt.store.uptime_s(), "authorized": e.authorized,
              "temp_c": rt.temp_dc / 10 if rt.temp_dc != E.TEMP_NONE else None}
        ota = rt.features.get("ota")
        if ota is not None:  # signed updates (docs/ota.md): state and progress for the page
            o2 = ota.status()
            st["ota"] = {"state": o2.get("state"), "progress": o2.get("progress"),
                         "slot": o2.get("slot"), "error": o2.get("error"),
                         "trial": o2.get("trial")}
        lm = C._row("lm_mode")
        if lm is not None:  # load management (helper "load"), once it is there
            st["lm_mode"] = rt.config.get("lm_mode")
            if type(lm[2]) is tuple:
                st["lm_modes"] = lm[2]
        return st

    def settings(self):
        cfg = self.rt.config
        out = []
        hlp = C.helps()
        rows = C.rows()  # (SCHEMA and the features' extension schemas, e.g. load management)
        for i in range(len(rows)):
            r = rows[i]
            if r[0] == "web_password":
                continue  # set by the setup form; cleared at the console
            v = cfg.get(r[0])
            if type(v) is tuple:
                v = ",".join(str(x) for x in v)
            if r[5] & _SECRET:
                v = "set" if v else ""  # secrets never leave the box
            out.append([r[0], v, bool(r[5] & _SECRET), hlp[i] if i < len(hlp) else ""])
        return out

    async def watch(self):
        """Bumps `changes` when what the page shows changes, so streams send at once."""
        e = self.rt.evse
        o = e.outputs
        last = None
        while True:
            now = (o.state, o.contactor, o.fault, o.allowed_ma, e.enabled, o.phases)
            if now != last:
                last = now
                self.changes += 1
            await asyncio.sleep_ms(_STREAM_POLL_MS)

    # --- routes ---------------------------------------------------------------------------
    def _routes(self):
        app = self.app
        web = self

        @app.get("/")
        async def page(req):
            from firmware.links.web_assets import PAGE
            return md.Response(PAGE, 200, {
                "Content-Type": "text/html; charset=UTF-8", "Content-Encoding": "gzip",
                "Cache-Control": "no-cache", "X-Frame-Options": "DENY",
                "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline';"
                " style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})

        @app.get("/api/session")
        async def session(req):
            web.auth.code_for()  # cleared at the console meanwhile: print a new code
            s = web.auth.session(web._token(req))
            return {"password": web.auth.has_password(), "user": s is not None,
                    "csrf": s[1] if s is not None else None,
                    "public": web.rt.config.get("web_public_status"), "fw": VERSION,
                    "id": web.rt.config.get("id")}

        @app.post("/api/setup")
        async def setup(req):
            bad = web._post_checks(req)
            if bad is not None:
                return bad
            d = req.g.data
            tok, err = await web.auth.setup(d.get("code"), d.get("password"))
            if err:
                return _err(429 if "try again" in err else 400, err)
            return web._cookie(md.Response({"ok": True}), tok, web.auth.session_s)

        @app.post("/api/login")
        async def login(req):
            bad = web._post_checks(req)
            if bad is not None:
                return bad
            tok, err = await web.auth.login(req.g.data.get("password"))
            if err:
                return _err(429 if "try again" in err else 401, err)
            return web._cookie(md.Response({"ok": True}), tok, web.auth.session_s)

        @app.post("/api/logout")
        async def logout(req):
            bad = web._guard(req, True)
            if bad is not None:
                return bad
            web.auth.logout(web._token(req))
            return web._cookie(md.Response({"ok": True}), "", 0)

        @app.get("/api/state")
        async def state(req):
            if not web.may_read_token(web._token(req)):
                return _err(401, "log in first")
            return web.state()

        @app.get("/api/events")
        async def events(req):
            tok = web._token(req)
            if not web.may_read_token(tok):
                return _err(401, "log in first")
            while len(web.streams) >= MAX_STREAMS:
                web.streams.pop(0).open = False  # the oldest (a closed tab, most likely) ends
            st = _Stream(web, req.sock[1], tok)
            web.streams.append(st)
            return md.Response(st, 200, {"Content-Type": "text/event-stream",
                                         "Cache-Control": "no-cache"})

        @app.post("/api/cmd")
        async def cmd(req):
            bad = web._guard(req, True)
            if bad is not None:
                return bad
            d = req.g.data
            name = d.get("cmd")
            if name not in _CMDS:
                return _err(400, "unknown command %r, one of %s" % (name, " ".join(_CMDS)))
            fn = getattr(web.cmds, name)
            ok, val = fn(d["value"]) if "value" in d else fn()
            if not ok:
                return _err(400, val)
            web.rt.store.event("web_cmd", name)
            return {"ok": True, "value": val}

        @app.get("/api/config")
        async def get_config(req):
            bad = web._guard(req, False)
            return bad if bad is not None else {"settings": web.settings()}

        @app.post("/api/config")
        async def set_config(req):
            bad = web._guard(req, True)
            if bad is not None:
                return bad
            values = {}
            if "web_password" in req.g.data:
                return _err(400, "web_password: not here (clear it at the console to set a new one)")
            for k, text in req.g.data.items():
                if type(text) is not str:
                    text = str(text)
                v, err = C.parse(k, text)
                if err:
                    return _err(400, err)
                values[k] = v
            err = web.rt.config.update(values)
            if err:
                return _err(400, err)
            return {"ok": True, "changed": sorted(values)}

        @app.get("/api/sessions")
        async def sessions(req):
            bad = web._guard(req, False)
            return bad if bad is not None else {"sessions": web.rt.store.sessions(20)}

        @app.get("/api/sessions.csv")
        async def sessions_csv(req):
            bad = web._guard(req, False)
            if bad is not None:
                return bad
            lines = ["session,start_utc,stop_utc,energy_wh,duration_s,max_current_a,stop_reason"]
            for s in web.rt.store.sessions():
                lines.append("%s,%s,%s,%d,%d,%s,%s" % (
                    s["sid"], _iso(s["start_s"]), _iso(s["stop_s"]), s["wh"], s["dur_s"],
                    s["max_ma"] / 1000, str(s["reason"]).replace(",", ";")))
            return md.Response("\r\n".join(lines) + "\r\n", 200, {
                "Content-Type": "text/csv; charset=UTF-8",
                "Content-Disposition": "attachment; filename=\"sessions.csv\""})

        @app.post("/api/update")
        async def update(req):
            """The body is a signed release bundle (tools/release.py), streamed to ota.install."""
            bad = web._guard(req, True, "application/octet-stream")
            if bad is not None:
                return bad
            ota = web.rt.features.get("ota")
            if ota is None:
                return _err(409, "updates are off on this wallbox (config ota)")
            why = ota.busy()
            if not why and web.rt.evse.outputs.contactor:
                why = "the contactor is closed (charging): update when the session has ended"
            if why:
                return _err(409, why)  # refused before a byte of the body is read
            n = req.content_length
            if not n:
                return _err(400, "no file: send the bundle as the body")
            web.rt.store.event("web_update", "%d bytes" % n)
            try:
                ok, msg = await ota.install(req.stream, n, None, None, "web")
            except H.HttpError as ex:
                return _err(ex.status, ex.why)
            return {"ok": True, "message": msg} if ok else _err(400, msg)

        @app.errorhandler(404)
        async def not_found(req):
            return _err(404, "no such page")

        @app.errorhandler(405)
        async def not_allowed(req):
            return _err(405, "method not allowed here")


def _iso(t):
    """UTC 'YYYY-MM-DDTHH:MM:SSZ' of Unix seconds, '' when the clock was not set."""
    if not t:
        return ""
    if time.gmtime(0)[0] == 2000:
        t -= _EPOCH_2000
    y, mo, d, h, mi, s = time.gmtime(t)[:6]
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (y, mo, d, h, mi, s)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def start(rt):
    """FEATURES entry (config web_port): the server task and the change watcher. A TLS
    certificate or key that cannot be read keeps the page off (reported, never plain http)."""
    try:
        web = Web(rt)
    except Exception as ex:
        why = "web_cert/web_key unusable (%s): web page off" % type(ex).__name__
        print(why)
        rt.store.event("web_tls", why[:60], 0)
        return []
    rt.features["web"] = web
    return [("web", web.http.run), ("web_watch", web.watch)]
