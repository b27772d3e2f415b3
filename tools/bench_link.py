#!/usr/bin/env python3
"""Backend link benchmarks (tools/bench.py section `link`).

1. Fault reaction latency (unplug, rcd_trip; tools/latency.py) with the MQTT link
   against a healthy mosquitto, a dead port, a silent broker (accepts TCP, never
   answers) and a flapping one (mosquitto killed and restarted every ~1.5 s), and
   with no MQTT configured at all as the baseline. Target: no worse than the baseline.
2. MQTT bytes per hour, idle and while charging: the client's bytes_out over a
   measured window, scaled to an hour (read through the link status in the bench).
3. `burst`: the same fault latencies while a paho-mqtt backend sends commands without
   pause (batches of 200, each waiting for its replies); with the commands sent, replies,
   busy replies and lost ones (docs/mqtt.md "Commands under a burst").
"""
import json
import os
import signal
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import latency  # noqa: E402
from broker import Broker, FakeBroker, dead_port  # noqa: E402
from simbench import SimBench  # noqa: E402

N = int(os.environ.get("BENCH_LINK_N", "100"))
KINDS = ("unplug", "rcd_trip")


def link_stats(b):
    """bytes_out/bytes_in/connects of the firmware's MQTT client (from its link status)."""
    parts = b.status()["link"].rsplit(";", 1)[1].split()
    return {"bytes_out": int(parts[1]), "bytes_in": int(parts[3]), "connects": int(parts[5])}


def _bench(port=None, **extra):
    c = dict(latency.BENCH_CONFIG)
    if port:
        c.update(mqtt_host="127.0.0.1", mqtt_port=port)
    c.update(extra)
    return SimBench(config=c)


def _measure(b, progress, label):
    out = {}
    b.reset_stats()
    for kind in KINDS:
        xs = latency.measure(b, kind, N, progress=lambda m: progress("%s %s" % (label, m)))
        out[kind] = latency.summary(xs)
    st = b.stats()
    out["max_gap_ms"] = st["max_gap_ms"]
    out["late_ticks"] = st["late"]
    out["link"] = b.status()["link"]
    progress("%s: unplug p99 %.1f ms, rcd_trip p99 %.1f ms, max loop gap %d ms" % (
        label, out["unplug"]["p99_ms"], out["rcd_trip"]["p99_ms"], st["max_gap_ms"]))
    return out


class Flapper:
    """Kill and restart a mosquitto every `period` s in a thread."""

    def __init__(self, br, period=1.5):
        self.br = br
        self.period = period
        self.stop = False
        self.flaps = 0
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop:
            time.sleep(self.period)
            self.br.stop(signal.SIGKILL)
            time.sleep(0.3)
            if not self.stop:
                self.br.start()
                self.flaps += 1

    def close(self):
        self.stop = True
        self.t.join(10)


class Burster:
    """A paho-mqtt backend that keeps sending commands in a thread (batches of 200, each
    waiting for its replies, at most 10 s) and counts the replies."""

    def __init__(self, port, base="wallbox/wb1/"):
        import paho.mqtt.client as mqtt
        self.base = base
        self.sent = self.replies = self.busy = self.bad = 0
        self.stop = False
        self.cv = threading.Condition()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-burst")
        self.c.max_queued_messages_set(0)
        ready = threading.Event()
        self.c.on_message = self._on
        self.c.on_subscribe = lambda *a: ready.set()
        self.c.on_connect = lambda c, u, f, rc, p=None: c.subscribe(base + "reply", 0)
        self.c.connect("127.0.0.1", port, 30)
        self.c.loop_start()
        ready.wait(5)
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _on(self, c, u, m):
        r = json.loads(m.payload)
        with self.cv:
            self.replies += 1
            if r.get("busy"):
                self.busy += 1
            elif not r.get("ok"):
                self.bad += 1
            self.cv.notify_all()

    def _run(self):
        subs = ("set/current", "cmd/status", "set/enable")
        vals = (b'{"value": 16}', b"{}", b"true")
        while not self.stop:
            for i in range(200):
                self.c.publish(self.base + subs[i % 3], vals[i % 3], 1)
            with self.cv:
                self.sent += 200
                end = time.time() + 10
                while self.replies < self.sent and time.time() < end and not self.stop:
                    self.cv.wait(0.2)

    def close(self):
        self.stop = True
        self.t.join(15)
        time.sleep(1)
        self.c.loop_stop()
        self.c.disconnect()
        return {"commands": self.sent, "replies": self.replies, "busy": self.busy,
                "rejected": self.bad, "unanswered": self.sent - self.replies}


def _bytes(b, seconds, charging, progress):
    """bytes_out of the MQTT client over a window, per hour."""
    if charging:
        latency.charge(b)
    time.sleep(2)  # past the state change burst
    s0 = link_stats(b)
    t0 = time.time()
    time.sleep(seconds)
    s1 = link_stats(b)
    dt = time.time() - t0
    out = {"window_s": round(dt, 1), "bytes_out_per_h": int((s1["bytes_out"] - s0["bytes_out"]) * 3600 / dt),
           "bytes_in_per_h": int((s1["bytes_in"] - s0["bytes_in"]) * 3600 / dt)}
    progress("%s: %d bytes/h out, %d in" % ("charging" if charging else "idle",
                                            out["bytes_out_per_h"], out["bytes_in_per_h"]))
    return out


def run(progress):
    res = {"n": N}
    tmp = tempfile.mkdtemp(prefix="bench-link-")
    with _bench() as b:
        res["no_mqtt"] = _measure(b, progress, "no mqtt")
    br = Broker(tmp).start()
    try:
        with _bench(br.port) as b:
            b.wait_for(lambda r: r["status"]["link"].startswith("connected;"), timeout=10)
            res["healthy"] = _measure(b, progress, "healthy")
            bu = Burster(br.port)
            try:
                res["burst"] = _measure(b, progress, "command burst")
            finally:
                res["burst"]["commands"] = bu.close()
            progress("command burst: %s" % res["burst"]["commands"])
            b.unplug()
            b.wait_for(lambda r: r["status"]["state"] == "A")
            window = float(os.environ.get("BENCH_LINK_WINDOW_S", "60"))
            res["bytes_idle"] = _bytes(b, window, False, progress)
            b.plug()
            res["bytes_charging"] = _bytes(b, window, True, progress)
        hold = dead_port()
        try:
            with _bench(hold.getsockname()[1]) as b:
                res["dead"] = _measure(b, progress, "dead port")
        finally:
            hold.close()
        fb = FakeBroker(lambda conn: time.sleep(120))
        try:
            with _bench(fb.port) as b:
                res["silent"] = _measure(b, progress, "silent broker")
        finally:
            fb.close()
        with _bench(br.port) as b:
            b.wait_for(lambda r: r["status"]["link"].startswith("connected;"), timeout=10)
            fl = Flapper(br)
            try:
                res["flapping"] = _measure(b, progress, "flapping broker")
            finally:
                fl.close()
            res["flapping"]["flaps"] = fl.flaps
            res["flapping"]["connects"] = link_stats(b)["connects"]
    finally:
        br.stop(signal.SIGKILL)
    base = max(res["no_mqtt"][k]["p99_ms"] for k in KINDS)
    res["worst_p99_vs_no_mqtt_ms"] = round(max(
        res[c][k]["p99_ms"] for c in ("healthy", "burst", "dead", "silent", "flapping")
        for k in KINDS) - base, 2)
    return res


if __name__ == "__main__":
    print(json.dumps(run(print), indent=2))
