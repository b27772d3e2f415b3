"""bench `web`: the web page's cost and its effect on the control loop (docs/web.md).

  heap        firmware heap in use (after gc) without the page, with it idle, while it
              serves (a live stream open), and microdot's own import cost on the unix port;
              the same with the code in a ROMFS image under -X heapsize=96k (a board
              without PSRAM), 128k and 192k, and whether a whole session still passes there
  page        page weight (gzip and raw), time to first byte of GET / and /api/state
  latency     fault reaction (unplug, rcd_trip, overcurrent) and the control loop's longest
              gap, in three conditions: page on but idle (baseline), a headless Chromium
              showing the page (live stream) plus a client polling /api/state every 200 ms,
              and under hostile load (3 slowloris clients, a flood of connections, oversized
              heads) -- the last two must not be worse than the baseline
"""
import gzip
import json
import os
import socket
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import latency  # noqa: E402
from mp import run_script  # noqa: E402
from simbench import SimBench, _free_port  # noqa: E402
from web_client import chrome, login, request, set_password, setup_code  # noqa: E402

KINDS = ("unplug", "rcd_trip", "overcurrent")
N = int(os.environ.get("BENCH_WEB_N", "20"))
PASSWORD = "bench-password"


def _heap(b):
    return b.gc()["mem_alloc"]


def _ttfb(port, path, cookie=None, n=20):
    out = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        req = "GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (
            path, ("Cookie: wb_session=%s\r\n" % cookie) if cookie else "")
        t0 = time.perf_counter()
        s.sendall(req.encode())
        s.recv(1)
        out.append((time.perf_counter() - t0) * 1000)
        while s.recv(4096):
            pass
        s.close()
    out.sort()
    return {"p50_ms": round(out[len(out) // 2], 2), "max_ms": round(out[-1], 2), "n": n}


def _microdot_import():
    # what the rest of the firmware imports anyway comes first: only the web's own modules count
    src = ("import gc\nfrom firmware.services import runtime, config\nfrom firmware.links import commands\n"
           "gc.collect()\na = gc.mem_alloc()\nfrom firmware.vendor import microdot\n"
           "gc.collect()\nb = gc.mem_alloc()\nfrom firmware.links import web, web_assets\ngc.collect()\n"
           "print(b - a, gc.mem_alloc() - a)")
    md, allweb = run_script(src).split()
    return {"microdot_import_bytes": int(md), "web_modules_with_microdot_import_bytes": int(allweb),
            "note": "unix port: bytecode is loaded into the heap; from ROMFS/frozen it stays in flash"}


def _open_stream(port, cookie):
    sse = socket.create_connection(("127.0.0.1", port), timeout=10)
    sse.sendall(("GET /api/events HTTP/1.1\r\nCookie: wb_session=%s\r\n\r\n" % cookie).encode())
    sse.recv(4096)
    return sse


def _romfs(progress, heapsize):
    """The device code from a ROMFS image (outside the heap, as on a board), -X heapsize=96k:
    heap in use without the page, with it idle and while it serves, and whether a whole
    charging session still passes while the page streams."""
    import romfs as romfs_tool
    img = tempfile.mktemp(prefix="wallbox-web-", suffix=".romfs")
    out = {"romfs_image_bytes": romfs_tool.build(img), "heapsize": heapsize}
    try:
        for label in ("no_web", "web"):
            # ota off in both runs: with it on, the 96k ROMFS boot already fails importing
            # firmware/services/ota.py (MemoryError), page or not (reported in the notes)
            cfg = dict(latency.BENCH_CONFIG, ota=False)
            port = _free_port()
            if label == "web":
                cfg["web_port"] = port
            r = {}
            try:
                with SimBench(config=cfg, heapsize=heapsize, romfs=img) as b:
                    time.sleep(1)
                    g = b.gc()
                    r["idle_mem_alloc"], r["idle_mem_free"] = g["mem_alloc"], g["mem_free"]
                    sse = None
                    if label == "web":
                        set_password(port, setup_code(b), PASSWORD)
                        cookie, _ = login(port, PASSWORD)
                        assert request(port, "GET", "/", cookie=cookie)[0] == 200
                        sse = _open_stream(port, cookie)
                        time.sleep(1.5)
                        g = b.gc()
                        r["serving_mem_alloc"], r["serving_mem_free"] = g["mem_alloc"], g["mem_free"]
                    b.set(**latency.BENCH_WORLD)
                    b.plug()
                    latency.charge(b)
                    time.sleep(2)
                    b.unplug()
                    b.wait_for(lambda x: x["status"]["state"] == "A", timeout=10)
                    b.wait_for(lambda x: b.sessions()["open"] is None, timeout=10, what="session closed")
                    st = b.stats()
                    r["pass"] = b.alive() and st["task_errors"] == 0 and bool(b.sessions()["sessions"])
                    r["task_errors"] = st["task_errors"]
                    if sse is not None:
                        sse.close()
            except Exception as ex:
                r.update({"pass": False, "error": repr(ex)[-300:]})
            out[label] = r
            progress("romfs %s %s: %s" % (heapsize, label, r))
    finally:
        if os.path.exists(img):
            os.remove(img)
    return out


def _latencies(b, progress, label):
    out = {}
    b.reset_stats()
    for k in KINDS:
        out[k] = latency.summary(latency.measure(b, k, N))
        progress("%s %s: %s" % (label, k, out[k].get("max_ms")))
    st = b.stats()
    out["max_gap_ms"] = st.get("max_gap_ms")
    out["late_ticks"] = st.get("late")
    return out


class Hostile:
    """Slowloris x3, a connection flood and oversized heads until stop() (bounded)."""

    def __init__(self, port):
        self.port = port
        self.stop_at = time.time() + 600
        self.sent = 0
        self.ts = [threading.Thread(target=self._slow, daemon=True) for _ in range(3)]
        self.ts += [threading.Thread(target=self._flood, daemon=True) for _ in range(4)]
        for t in self.ts:
            t.start()

    def running(self):
        return time.time() < self.stop_at

    def _slow(self):
        while self.running():
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
                s.sendall(b"GET / HTTP/1.1\r\n")
                while self.running():
                    s.sendall(b"X")
                    time.sleep(0.5)
            except OSError:
                time.sleep(0.05)

    def _flood(self):
        big = b"GET / HTTP/1.1\r\nX: " + b"a" * 4000 + b"\r\n\r\n"
        while self.running():
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
                s.sendall(big if self.sent % 2 else b"GET /api/state HTTP/1.1\r\n\r\n")
                self.sent += 1
                s.recv(256)
                s.close()
            except OSError:
                time.sleep(0.01)
            time.sleep(0.005)

    def stop(self):
        self.stop_at = 0
        for t in self.ts:
            t.join(5)


class Poller:
    def __init__(self, port, cookie):
        self.port, self.cookie, self.on, self.n = port, cookie, True, 0
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        t_end = time.time() + 600
        while self.on and time.time() < t_end:
            try:
                request(self.port, "GET", "/api/state", cookie=self.cookie)
                self.n += 1
            except OSError:
                pass
            time.sleep(0.2)

    def stop(self):
        self.on = False
        self.t.join(5)


def run(progress):
    res = {"heap": {}, "page": {}, "latency": {}}
    cfg = dict(latency.BENCH_CONFIG)
    with SimBench(config=cfg) as b:
        res["heap"]["no_web_bytes"] = _heap(b)
    port = _free_port()
    cfg["web_port"] = port
    with SimBench(config=cfg) as b:
        time.sleep(1)
        res["heap"]["web_idle_bytes"] = _heap(b)
        set_password(port, setup_code(b), PASSWORD)
        cookie, _ = login(port, PASSWORD)
        st, hd, body = request(port, "GET", "/", cookie=cookie)
        res["page"]["gzip_bytes"] = len(body)
        res["page"]["raw_bytes"] = len(gzip.decompress(body))
        res["page"]["ttfb_page"] = _ttfb(port, "/")
        res["page"]["ttfb_state"] = _ttfb(port, "/api/state", cookie)
        sse = _open_stream(port, cookie)
        time.sleep(1.5)
        res["heap"]["web_serving_bytes"] = _heap(b)  # a live stream open, page served
        sse.close()
        res["heap"].update(_microdot_import())
        progress("heap %s" % res["heap"])

        res["latency"]["baseline"] = _latencies(b, progress, "baseline")
        dl = tempfile.mkdtemp(prefix="wallbox-bench-")
        d = chrome(dl)
        try:
            d.get("http://127.0.0.1:%d/" % port)
            t_end = time.time() + 20
            while not d.find_element("id", "login-pw").is_displayed() and time.time() < t_end:
                time.sleep(0.1)
            d.find_element("id", "login-pw").send_keys(PASSWORD)
            d.find_element("id", "f-login").submit()
            t_end = time.time() + 20
            while d.find_element("id", "conn").text != "live" and time.time() < t_end:
                time.sleep(0.1)
            poll = Poller(port, cookie)
            try:
                res["latency"]["browser"] = _latencies(b, progress, "browser")
            finally:
                poll.stop()
            res["latency"]["browser"]["state_polls"] = poll.n
        finally:
            d.quit()
        h = Hostile(port)
        try:
            res["latency"]["hostile"] = _latencies(b, progress, "hostile")
        finally:
            h.stop()
        res["latency"]["hostile"]["hostile_requests"] = h.sent
        res["web_status_after"] = b.status().get("web")
        res["alive_after"] = b.alive()
    for hs in ("96k", "128k", "192k"):
        res["heap"]["romfs_" + hs] = _romfs(progress, hs)
    r = res["heap"]["romfs_192k"]
    if "serving_mem_alloc" in r.get("web", {}) and "idle_mem_alloc" in r.get("no_web", {}):
        res["heap"]["romfs_web_cost_bytes"] = {
            "idle": r["web"]["idle_mem_alloc"] - r["no_web"]["idle_mem_alloc"],
            "serving": r["web"]["serving_mem_alloc"] - r["no_web"]["idle_mem_alloc"]}
    base = res["latency"]["baseline"]
    res["verdict"] = {
        c: {k: (res["latency"][c][k]["max_ms"] is not None and base[k]["max_ms"] is not None
                and res["latency"][c][k]["max_ms"] <= max(base[k]["max_ms"] * 1.5, base[k]["max_ms"] + 5))
            for k in KINDS}
        for c in ("browser", "hostile")}
    return res


if __name__ == "__main__":
    print(json.dumps(run(print), indent=2))
