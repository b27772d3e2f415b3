#!/usr/bin/env python3
"""MQTT client benchmark: the longest event-loop stall seen by a 1 ms ticker task
running beside firmware/links/mqtt_client.py in the MicroPython unix port while it connects to a
healthy, silent, dead, flapping and TLS broker. Numbers only, no pass/fail
(`make bench`, or `python tools/bench_mqtt.py`)."""
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from broker import Broker, Device, FakeBroker, connack, dead_port, make_tls  # noqa: E402


def _measure(cfg, seconds, until=None):
    """Start a device (gate closed), reset the gap, open the gate, measure."""
    d = Device(tick_ms=1, gate=False, **cfg)
    try:
        time.sleep(0.3)  # imports and compile done
        d.cmd("reset_gap", "reset_gap")
        t0 = time.time()
        d.cmd("gate", "gate", v=True)
        if until:
            d.wait(until, timeout=10)
        time.sleep(max(0.0, seconds - (time.time() - t0)))
        s = d.stats()
    finally:
        d.close()
    return {"max_gap_ms": round(s["gap_us"] / 1000, 2), "ticks": s["ticks"],
            "attempts": s["attempts"], "connects": s["connects"], "last_error": s["last_error"]}


def run(progress):
    out = {"ticker_ms": 1}
    tmp = tempfile.mkdtemp(prefix="bench_mqtt_")
    tls = make_tls(tmp)
    b = Broker(tmp, tls=tls).start()
    try:
        progress("healthy broker (plain TCP)")
        out["healthy"] = _measure({"port": b.port}, 1.0, "connect")
        progress("TLS handshake (ECDSA P-256, CA checked), 3 runs")
        runs = [_measure({"port": b.tls_port, "host": "localhost", "ca_file": tls["ca_der"]},
                         1.0, "connect") for _ in range(3)]
        out["tls"] = {"max_gap_ms": [r["max_gap_ms"] for r in runs], "connects": sum(
            r["connects"] for r in runs)}
        progress("TLS broker flapping (a second client with the same id kicks it), 3 s")
        # mosquitto kicks a client that reuses an id: two devices, same id, fight
        kick = Device(port=b.tls_port, host="localhost", ca_file=tls["ca_der"],
                      client_id="flap", backoff_min_ms=100, backoff_max_ms=200)
        try:
            out["tls_flapping"] = _measure(
                {"port": b.tls_port, "host": "localhost", "ca_file": tls["ca_der"],
                 "client_id": "flap", "backoff_min_ms": 100, "backoff_max_ms": 200}, 3.0)
        finally:
            kick.close()
    finally:
        b.stop()
    progress("silent broker (accepts TCP, never answers), 3 s")
    fb = FakeBroker(lambda conn: time.sleep(30))
    try:
        out["silent"] = _measure({"port": fb.port, "connect_timeout_ms": 300,
                                  "backoff_min_ms": 50, "backoff_max_ms": 100}, 3.0)
    finally:
        fb.close()
    progress("dead broker (closed port), 2 s")
    hold = dead_port()
    out["dead"] = _measure({"port": hold.getsockname()[1], "backoff_min_ms": 20,
                            "backoff_max_ms": 50}, 2.0)
    hold.close()
    progress("flapping broker (CONNACK, then closes after 100 ms), 3 s")

    def flap(conn):
        if connack(conn):
            time.sleep(0.1)
        conn.close()

    fb = FakeBroker(flap)
    try:
        out["flapping"] = _measure({"port": fb.port, "backoff_min_ms": 50,
                                    "backoff_max_ms": 100}, 3.0)
    finally:
        fb.close()
    return out


if __name__ == "__main__":
    import json
    print(json.dumps(run(print), indent=2))
