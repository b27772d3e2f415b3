#!/usr/bin/env python3
"""OCPP benchmarks (tools/bench.py section `ocpp`), the firmware against the mobilityhouse
CSMS of the tests (tests/csms.py).

1. Heap of the OCPP client: live heap (gc.collect() then mem_alloc, through the sim channel)
   with OCPP connected and idle minus the same firmware without OCPP, both booted from a ROMFS
   image (tools/romfs.py: the bytecode stays outside the heap, as on a board's flash); and the highest live
   heap sampled every ~50 ms during a transaction (MeterValues every second) and during the
   replay of an offline backlog, minus the same baseline. Goal <= 20 KB (MicroOcpp: 21.9 KB
   peak on an ESP32). The unix port is 64-bit: pointers and GC blocks are twice the size of
   a 32-bit port's, so an ESP32/RP2040 needs roughly half (docs/ocpp.md "Heap").
2. Loop gap and fault latencies (unplug, rcd_trip; tools/latency.py) with OCPP charging and
   sending MeterValues every second, against the same without OCPP.
3. Bytes per hour on the WebSocket (both directions), idle and charging, at the defaults
   (HeartbeatInterval 300 s from the CSMS, MeterValueSampleInterval 60 s, ping after 60 s of
   silence): measured per message over a window with short intervals and scaled.
"""
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import latency  # noqa: E402
import romfs  # noqa: E402
from csms import Csms  # noqa: E402
from ocpp.v16 import call  # noqa: E402
from simbench import SimBench  # noqa: E402

N = int(os.environ.get("BENCH_OCPP_N", "60"))
KINDS = ("unplug", "rcd_trip")


_IMPORTS = """
import gc
gc.collect()
import json, asyncio
from firmware.core import evse
from firmware.links import commands
gc.collect()
a0 = gc.mem_alloc()
from firmware.links import ocpp
gc.collect()
print("IMPORT", gc.mem_alloc() - a0)
"""


def _import_cost(img):
    """Heap taken by importing the OCPP modules from the ROMFS image (function objects,
    qstrs, constant tables): what a frozen build (manifest.py) keeps in flash instead."""
    import subprocess
    from mp import micropython_bin
    boot = open(os.path.join(ROOT, "tools", "romboot.py")).read().replace(
        "import main  # noqa", "# import main  # noqa")
    env = dict(os.environ, WALLBOX_ROMFS=img)
    out = subprocess.run([micropython_bin(), "-c", boot + _IMPORTS], capture_output=True,
                         text=True, cwd=ROOT, env=env, timeout=60).stdout
    for line in out.splitlines():
        if line.startswith("IMPORT"):
            return int(line.split()[1])
    return None


def _live(b):
    return b.gc()["mem_alloc"]


def _baseline_heap(b, n=5):
    xs = []
    for _ in range(n):
        xs.append(_live(b))
        time.sleep(0.2)
    return min(xs)


def _peak_while(b, seconds):
    peak = 0
    t1 = time.time() + seconds
    while time.time() < t1:
        peak = max(peak, _live(b))
        time.sleep(0.05)
    return peak


def _latency(b, progress, label):
    out = {}
    b.reset_stats()
    for kind in KINDS:
        xs = latency.measure(b, kind, N, progress=lambda m: progress("%s %s" % (label, m)))
        out[kind] = latency.summary(xs)
    st = b.stats()
    out["max_gap_ms"] = st["max_gap_ms"]
    out["late_ticks"] = st["late"]
    progress("%s: unplug p99 %.1f ms, rcd_trip p99 %.1f ms, max loop gap %d ms" % (
        label, out["unplug"]["p99_ms"], out["rcd_trip"]["p99_ms"], st["max_gap_ms"]))
    return out


def _ws_bytes(b):
    o = b.read()["status"]["ocpp"]
    return o["bytes_out"] + o["bytes_in"]


def run(progress):
    res = {"n": N}
    cfg = dict(latency.BENCH_CONFIG)
    img = os.path.join(tempfile.mkdtemp(prefix="bench-ocpp-rom-"), "wallbox.romfs")
    res["romfs_b"] = romfs.build(img)
    with SimBench(config=cfg, romfs=img) as b:
        base = _baseline_heap(b)
        res["no_ocpp"] = _latency(b, progress, "no ocpp")
    res["heap_baseline_no_ocpp_b"] = base
    res["heap_import_b"] = imp = _import_cost(img)
    progress("importing the OCPP modules from ROMFS: %s B" % imp)
    c = Csms().start()
    port = c.port
    tmp = tempfile.mkdtemp(prefix="bench-ocpp-")
    try:
        b = SimBench(data_dir=tmp, config=dict(cfg, ocpp_url=c.url), romfs=img)
        try:
            c.wait(lambda: c.statuses(0), what="boot")
            time.sleep(1)
            idle = _baseline_heap(b) - base
            res["heap_idle_b"] = idle
            progress("heap idle: %d B over the firmware without OCPP" % idle)
            # bytes: the sizes of the idle and charging messages at short intervals
            for k, v in (("MeterValueSampleInterval", "1"), ("HeartbeatInterval", "10")):
                c.request(call.ChangeConfiguration(key=k, value=v))
            n0, hb0 = _ws_bytes(b), len(c.actions("Heartbeat"))
            time.sleep(21)
            per_hb = (_ws_bytes(b) - n0) / max(1, len(c.actions("Heartbeat")) - hb0)
            b.set(**latency.BENCH_WORLD)
            b.plug()
            latency.charge(b)
            time.sleep(2)
            n0, mv0 = _ws_bytes(b), len(c.meter_values)
            peak_tx = _peak_while(b, 8) - base
            per_mv = (_ws_bytes(b) - n0) / max(1, len(c.meter_values) - mv0)
            res["heap_peak_transaction_b"] = peak_tx
            progress("heap peak in a transaction: %d B" % peak_tx)
            res["bytes_per_heartbeat"] = int(per_hb)
            res["bytes_per_meter_values"] = int(per_mv)
            # defaults: heartbeat every 300 s (and a ws ping/pong after 60 s of silence, ~20 B)
            res["bytes_per_h_idle"] = int(per_hb * 3600 / 300 + 20 * 48)
            res["bytes_per_h_charging"] = int(per_mv * 3600 / 60 + per_hb * 3600 / 300)
            progress("bytes/h at the defaults: idle %d, charging %d" % (
                res["bytes_per_h_idle"], res["bytes_per_h_charging"]))
            res["ocpp_charging"] = _latency(b, progress, "ocpp charging")
            # replay: an offline backlog, then the CSMS comes back
            b.set(**latency.BENCH_WORLD)
            b.plug()
            latency.charge(b)
            c.stop()
            b.wait_for(lambda r: r["status"]["ocpp"]["conn"] != "connected", timeout=20)
            time.sleep(20)  # ~20 MeterValues queued on flash
            b.set(plugged=False)
            q = b.read()["status"]["ocpp"]["queue"]
            c = Csms(port=port).start()
            peak = 0
            t1 = time.time() + 60
            while time.time() < t1:
                peak = max(peak, _live(b))
                if b.read()["status"]["ocpp"]["queue"] == 0:
                    break
                time.sleep(0.05)
            res["replay_messages"] = q
            res["heap_peak_replay_b"] = peak - base
            progress("heap peak in a replay of %d messages: %d B" % (q, peak - base))
        finally:
            b.close()
    finally:
        c.stop()
    res["goal_b"] = 20 * 1024
    if imp:
        for k in ("heap_idle_b", "heap_peak_transaction_b", "heap_peak_replay_b"):
            if k in res:
                res[k.replace("heap_", "heap_frozen_")] = res[k] - imp
    res["note"] = ("unix port, 64-bit: a 32-bit port (ESP32, RP2040) needs about half (pointers "
                   "and GC blocks are half the size); heap_frozen_*: minus the import cost, as "
                   "in a frozen build (manifest.py) where bytecode, qstrs and constants are in flash")
    res["worst_p99_vs_no_ocpp_ms"] = round(max(res["ocpp_charging"][k]["p99_ms"] for k in KINDS)
                                           - max(res["no_ocpp"][k]["p99_ms"] for k in KINDS), 2)
    return res


if __name__ == "__main__":
    import json
    print(json.dumps(run(print), indent=2))
