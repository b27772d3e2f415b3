"""Control-loop benchmarks (issue 12 items 1 and 5) on the sim bench, thread mode (the
default where the port has _thread) against single-loop mode (control_thread off):

  hard_overcurrent      load 40 A at an offer of 16 A -> contactor open (half-cycle peak)
  console_blocking      unplug while the technician console runs time.sleep(1): the
                        contactor-open latency (single loop: held until the call returns)
  mqtt_burst            unplug and RCD trip while a backend publishes set/current commands
                        as fast as it can (real mosquitto)

Each row: p50/p99/max and the figures without the samples that fell in a host stall
(tools/latency.py, tools/hoststall.py).
"""
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

import latency  # noqa: E402
from simbench import SimBench, Terminal  # noqa: E402

N = int(os.environ.get("BENCH_CONTROL_N", "60"))
N_CONSOLE = int(os.environ.get("BENCH_CONTROL_CONSOLE_N", "8"))
MODES = (("thread", True), ("loop", False))


def _overcurrent(progress):
    import hoststall
    out = {}
    for name, on in MODES:
        with SimBench(config=dict(latency.BENCH_CONFIG, control_thread=on)) as b, \
                hoststall.HostStalls() as hs:
            xs = latency.measure(b, "overcurrent", N, progress, stalls=hs)
            out[name] = latency.summary(xs)
            progress("hard over-current, %s: %s" % (name, out[name]))
    return out


def _console_blocking(progress):
    out = {}
    for name, on in MODES:
        lats = latency.Samples()
        with SimBench(console=True, config=dict(latency.BENCH_CONFIG, control_thread=on)) as b:
            with Terminal(b.console_path) as t:
                time.sleep(0.3)
                t.command("1+1")
                b.set(**latency.BENCH_WORLD)
                for _ in range(N_CONSOLE):
                    b.plug()
                    latency.charge(b)
                    t.drain()
                    t_us = b.now_us(300000)
                    b.at(t_us, plugged=False)
                    t.write("import time; time.sleep(1); print('slept')\r")
                    t.read_until(b"slept", 15)
                    b.wait_for(lambda r: not r["world"]["contactor"], timeout=10, poll=0.01)
                    lat = b.latency_ms(t_us, "contactor", 0)
                    if lat is not None:
                        lats.append(lat)
                    b.wait_state("A", timeout=5)
                    time.sleep(0.05)
        out[name] = latency.summary(lats)
        progress("unplug during a blocking console call, %s: %s" % (name, out[name]))
    out["how"] = ("unplug scheduled 300 ms into a 1 s time.sleep typed at the console "
                  "(pty); latency from the unplug to the contactor-open edge")
    return out


def _mqtt_burst(progress):
    from broker import Broker, mosquitto_bin
    if not mosquitto_bin():
        return {"skipped": "mosquitto not installed"}
    import paho.mqtt.client as mqtt
    out = {}
    d = tempfile.mkdtemp(prefix="bench-control-")
    br = Broker(d).start()
    try:
        for name, on in MODES:
            cfg = dict(latency.BENCH_CONFIG, control_thread=on, mqtt_host="127.0.0.1",
                       mqtt_port=br.port)
            with SimBench(config=cfg) as b:
                b.wait_for(lambda r: r["status"]["link"].startswith("connected;"), timeout=15)
                c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="burst-" + name)
                c.connect("127.0.0.1", br.port, 30)
                c.loop_start()
                stop = threading.Event()
                sent = [0]

                def burst():
                    i = 0
                    while not stop.is_set():
                        c.publish("wallbox/wb1/set/current", b"16" if i % 2 else b"15", 0)
                        i += 1
                        sent[0] = i
                        if i % 50 == 0:
                            time.sleep(0.001)  # paho's queue drains; still thousands/s

                th = threading.Thread(target=burst, daemon=True)
                th.start()
                row = {}
                try:
                    b.reset_stats()
                    for kind in ("unplug", "rcd_trip"):
                        xs = latency.measure(b, kind, max(10, N // 3))
                        row[kind] = latency.summary(xs)
                        b.cmd("reset_faults")
                        b.set(plugged=False, rcd_fault=False)
                        b.wait_state("A", timeout=10)
                    st = b.stats()
                    row["loop_max_gap_ms"] = st["max_gap_ms"]
                    row["late_ticks"] = st["late"]
                finally:
                    stop.set()
                    th.join(5)
                    c.loop_stop()
                    c.disconnect()
                row["commands_sent"] = sent[0]
                out[name] = row
                progress("MQTT burst, %s: %s" % (name, row))
    finally:
        br.stop()
    out["how"] = "a paho client publishes set/current (QoS 0) in a loop during the samples"
    return out


def run(progress):
    t0 = time.time()
    out = {"hard_overcurrent": _overcurrent(progress),
           "console_blocking": _console_blocking(progress),
           "mqtt_burst": _mqtt_burst(progress)}
    out["seconds"] = round(time.time() - t0, 1)
    return out


if __name__ == "__main__":
    import json
    print(json.dumps(run(lambda m: print("  " + m, flush=True)), indent=2))
