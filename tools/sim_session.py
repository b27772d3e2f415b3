#!/usr/bin/env python3
"""`make sim`: one whole charging session of the real firmware on the simulated bench.

Plug in -> authorize -> RCD self-test -> charge at 16 A -> limit drops to 10 A ->
RCD trip (fault) -> retry after fault_retry_s -> charge again -> the car is full (C->B)
-> unplug. Prints a progress line per second, a summary (energy, duration, events, the
reaction latencies seen) and writes a PNG timeline to sim_out/session.png.

Timing configs that only shorten waits: fault_retry_s=5 (default 60), min_off_s=5
(default 60), ev_off_s=5. The simulated car reacts in 300 ms (hal/sim.py default).
If an MQTT broker answers on 127.0.0.1:1883 (and firmware/links/mqtt_link.py exists), the firmware
reports there too (mqtt_host=127.0.0.1).
"""
import os
import socket
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from simbench import SimBench  # noqa: E402

OUT = os.path.join(ROOT, "sim_out")
STATES = ["A", "B1", "B2", "C1", "C2", "D1", "D2", "E", "F"]
# (second, what, action): the script of the session.
SCRIPT = [
    (2, "plug in (car asks for power)", "plug"),
    (5, "authorize (require_auth)", "authorize"),
    (20, "limit 16 A -> 10 A", "limit"),
    (32, "RCD trip (residual current) for 1 s", "rcd"),
    (50, "car full: S2 opens (C -> B)", "full"),
    (55, "unplug", "unplug"),
]
END_S = 58


def broker_up(host="127.0.0.1", port=1883):
    try:
        socket.create_connection((host, port), timeout=0.3).close()
        return True
    except OSError:
        return False


def main():
    cfg = {"require_auth": True, "fault_retry_s": 5, "min_off_s": 5, "ev_off_s": 5}
    mqtt = broker_up() and os.path.exists(os.path.join(ROOT, "firmware", "links", "mqtt_link.py"))
    if mqtt:
        cfg["mqtt_host"] = "127.0.0.1"
    print("make sim: firmware on the sim bench%s" % (
        ", reporting to MQTT 127.0.0.1:1883" if mqtt else " (no MQTT broker on :1883: link off)"))
    os.makedirs(OUT, exist_ok=True)
    b = SimBench(config=cfg)
    rows = []  # t, state, duty_pm, allowed_a, ev_a, contactor, power_w, energy_wh
    marks = []  # (t, label)
    lat = {}  # kind -> ms
    pending = []  # (kind, t_us) scheduled physical changes to measure
    try:
        b.set(want_ma=16000)
        t0 = time.time()
        step = 0
        next_print = 0.0
        seq0 = b.events(1)[-1]["seq"]
        while True:
            t = time.time() - t0
            if t >= END_S:
                break
            while step < len(SCRIPT) and t >= SCRIPT[step][0]:
                _, label, act = SCRIPT[step]
                step += 1
                marks.append((t, label))
                print("%6.1f s  >>> %s" % (t, label))
                if act == "plug":
                    b.plug()
                elif act == "authorize":
                    b.cmd("authorize")
                elif act == "limit":
                    b.cmd("set_current", 10)
                elif act == "rcd":
                    tu = b.now_us(20000)
                    b.at(tu, rcd_fault=True)
                    b.at(tu + 1000000, rcd_fault=False)
                    pending.append(("rcd_trip", tu))
                elif act == "full":
                    tu = b.now_us(20000)
                    b.at(tu, s2=False)
                    # the car opens S2 delay_ms (300 ms) after it decides: that is the CP change
                    pending.append(("s2_open", tu + 300000))
                elif act == "unplug":
                    tu = b.now_us(20000)
                    b.at(tu, plugged=False)
                    pending.append(("unplug", tu))
            r = b.read()
            s, w = r["status"], r["world"]
            rows.append((t, s["state"], w["duty_pm"] if w["pilot"] == 2 else 0, s["allowed_a"],
                         w["draw_ma"] / 1000.0, 1 if w["contactor"] else 0,
                         s["power_w"], s["energy_wh"]))
            if t >= next_print:
                next_print += 1.0
                print("%6.1f s  %-3s duty %4.1f %%  allowed %4.1f A  EV %5.1f A  %s  %6.0f W  %5d Wh%s" % (
                    t, s["state"], rows[-1][2] / 10.0, s["allowed_a"], rows[-1][4],
                    "ON " if w["contactor"] else "off", s["power_w"], s["energy_wh"],
                    ("  faults: " + ",".join(s["faults"])) if s["faults"] else ""))
            time.sleep(0.1)
        # Latencies of the measured physical changes (contactor open after each).
        for kind, tu in pending:
            ms = b.latency_ms(tu, "contactor", 0)
            if ms is not None:
                lat[kind] = ms
        sess = b.sessions()
        events = [e for e in b.events() if e["seq"] > seq0]
        stats = b.stats()
    finally:
        b.close()
    rec = sess["sessions"][-1] if sess["sessions"] else {}
    print()
    print("summary")
    print("  session %s: %d Wh in %d s, max %.1f A, stop reason %s" % (
        rec.get("sid"), rec.get("wh", 0), rec.get("dur_s", 0), rec.get("max_ma", 0) / 1000.0,
        rec.get("reason")))
    print("  lifetime energy %d Wh" % sess["energy_wh"])
    print("  events: " + ", ".join("%s(%s)" % (e["type"], e["detail"]) if e["detail"] else e["type"]
                                   for e in events))
    print("  reaction latency, physical change -> contactor open: " + ", ".join(
        "%s %.1f ms" % (k, v) for k, v in lat.items()) +
        ("  (max %.1f ms; limit 100 ms)" % max(lat.values()) if lat else ""))
    # (mem_peak of the unix port counts allocation churn, not the live peak: not shown)
    print("  control loop: %d ticks, max gap %d ms, late ticks %d; heap in use %s B" % (
        stats["ticks"], stats["max_gap_ms"], stats["late"], stats.get("mem_alloc", "?")))
    path = plot(rows, marks)
    print("  timeline: %s" % os.path.relpath(path, ROOT))
    return 0


def plot(rows, marks):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r[0] for r in rows]
    fig, ax = plt.subplots(5, 1, figsize=(12, 10), sharex=True,
                           gridspec_kw={"height_ratios": [1.4, 1.2, 1.2, 0.6, 1.2]})
    ax[0].step(t, [STATES.index(r[1]) for r in rows], where="post", color="tab:blue")
    ax[0].set_yticks(range(len(STATES)))
    ax[0].set_yticklabels(STATES)
    ax[0].set_ylabel("CP state")
    ax[1].step(t, [r[2] / 10.0 for r in rows], where="post", color="tab:purple", label="PWM duty (%)")
    ax[1].step(t, [r[3] for r in rows], where="post", color="tab:orange", label="allowed current (A)")
    ax[1].set_ylabel("duty % / A")
    ax[1].legend(loc="upper right", fontsize=8)
    ax[2].step(t, [r[4] for r in rows], where="post", color="tab:green")
    ax[2].set_ylabel("EV current\nper phase (A)")
    ax[3].step(t, [r[5] for r in rows], where="post", color="tab:red")
    ax[3].set_yticks([0, 1])
    ax[3].set_yticklabels(["open", "closed"])
    ax[3].set_ylabel("contactor")
    ax[4].plot(t, [r[6] / 1000.0 for r in rows], color="tab:brown", label="power (kW, meter 1 s)")
    ax4b = ax[4].twinx()
    ax4b.plot(t, [r[7] for r in rows], color="tab:gray", linestyle="--", label="energy (Wh)")
    ax[4].set_ylabel("power (kW)")
    ax4b.set_ylabel("lifetime energy (Wh)")
    ax[4].set_xlabel("time (s)")
    for a in ax:
        a.grid(True, alpha=0.3)
        for mt, _ in marks:
            a.axvline(mt, color="k", alpha=0.25, linewidth=0.8)
    for i, (mt, label) in enumerate(marks):
        ax[0].annotate(label, (mt, len(STATES) - 0.6 - (i % 3) * 1.3), fontsize=8,
                       xytext=(3, 0), textcoords="offset points", va="top")
    ax[0].set_ylim(-0.5, len(STATES) - 0.2)
    fig.suptitle("wallbox firmware on the sim bench: one charging session")
    fig.tight_layout()
    path = os.path.join(OUT, "session.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


if __name__ == "__main__":
    sys.exit(main())
