#!/usr/bin/env python3
"""`make sim SCENARIO=solar`: a compressed solar day of the real firmware on the sim bench.

The house around the wallbox (hal/sim.py): a base load with a morning peak, a heat pump
cycling on L1, PV rising to 12 A per phase at 13:00 with two clouds, and an oven (9 A on
each phase) switched on at 12:00, at full PV. The house's SDM630 on the RS-485 bus is the
mains feed (mains_source=modbus), the wallbox runs lm_mode=pv on a 25 A fuse with a car that
stays plugged in all day. 24 h pass in `day_s` seconds (default 240: one simulated hour in
10 s); the load-management timers are scaled down with it (pv_start_s=3, pv_stop_s=6,
pv_min_charge_s=12, lm_min_pause_s=3, min_off_s=3: minutes of the day, not seconds; the
smoothing per 1 s reading likewise: pv_attack_pm=300, pv_decay_pm=700).
Writes sim_out/solar.png (house load, PV, mains per phase, the wallbox's current) and prints
a summary: energy from surplus and from the grid, contactor cycles, offer changes.
"""
import math
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from simbench import SimBench  # noqa: E402

OUT = os.path.join(ROOT, "sim_out")
FUSE_A = 25
# (the unix port dies on an argv element of >= 256 bytes: the rest via config_set)
BOOT = {"lm_mode": "pv", "mains_source": "modbus"}
CFG = {"mains_max_a": FUSE_A, "pv_start_s": 3, "pv_stop_s": 6, "pv_min_charge_s": 12,
       "lm_min_pause_s": 3, "min_off_s": 3, "ev_off_s": 0, "max_current_a": 16,
       "mains_timeout_s": 5, "pv_attack_pm": 300, "pv_decay_pm": 700}


def house(h):
    """Other loads (mA per phase) and PV (mA per phase) at hour h (0..24)."""
    base = 1500 + (2500 if 6.5 <= h < 8 else 0) + (2000 if 18 <= h < 21 else 0)
    heat = 6000 if (int(h * 2) % 3 == 0 and (h < 7 or h > 16)) else 0  # heat pump on L1
    oven = 9000 if 12 <= h < 13 else 0  # switched on at full PV
    pv = 0
    if 6 <= h <= 20:
        pv = int(12000 * math.sin(math.pi * (h - 6) / 14) ** 2)
        if 10.5 <= h < 11 or 15 <= h < 15.3:
            pv //= 4  # clouds
    return [base + heat + oven, base + oven, base + oven], pv


def run(day_s=240, png=True, progress=print):
    os.makedirs(OUT, exist_ok=True)
    b = SimBench(config=BOOT)
    rows = []  # hour, house[3], pv, mains[3], draw, contactor, offer_a, reason
    try:
        for k, v in CFG.items():
            b.config_set(k, v)
        b.set(want_ma=16000, delay_ms=300, plugged=True)
        t0 = time.time()
        last_h = -1
        while True:
            h = (time.time() - t0) * 24.0 / day_s
            if h >= 24:
                break
            load, pv = house(h)
            b.set(house_l1_ma=load[0], house_l2_ma=load[1], house_l3_ma=load[2], pv_ma=pv)
            r = b.read()
            w, st = r["world"], r["status"]
            lm = st.get("loadmgmt") or {}
            rows.append((h, load, pv, w["mains_ma"], w["draw_ma"] if w["contactor"] else 0,
                         w["contactor"], st["allowed_a"], lm.get("reason", "")))
            if int(h) != last_h:
                last_h = int(h)
                progress("%05.2f h  pv %4.1f A  house L1 %4.1f A  mains %s A  wallbox %4.1f A  %s" % (
                    h, pv / 1000, load[0] / 1000, "/".join("%.1f" % (x / 1000) for x in w["mains_ma"]),
                    rows[-1][4] / 1000, lm.get("limited_by", "")))
            time.sleep(0.1)
        lm = b.read()["status"]["loadmgmt"]
    finally:
        b.close()
    summary = summarize(rows, day_s, lm)
    if png:
        summary["png"] = plot(rows)
    return summary


def summarize(rows, day_s, lm):
    """Energy from surplus / grid (Wh at 230 V, simulated hours), cycles, offer changes,
    and the fuse: how long a phase was above it while the wallbox drew."""
    pv_wh = grid_wh = 0.0
    over_s = 0.0
    for i in range(1, len(rows)):
        dh = rows[i][0] - rows[i - 1][0]
        h, load, pv, mains, draw = rows[i][:5]
        ev_w = 3 * 230 * draw / 1000
        imp = max(0.0, sum(mains) / 1000 * 230)  # net import (W)
        from_grid = min(ev_w, imp)
        grid_wh += from_grid * dh
        pv_wh += (ev_w - from_grid) * dh
        if draw and max(mains) > FUSE_A * 1000 + 100:
            over_s += dh * day_s / 24  # in real seconds of the run
    return {"ev_kwh_surplus": round(pv_wh / 1000, 2), "ev_kwh_grid": round(grid_wh / 1000, 2),
            "contactor_cycles": lm["cycles"], "offer_changes": lm["offer_changes"],
            "fuse_exceeded_s": round(over_s, 2), "samples": len(rows)}


def plot(rows):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t = [r[0] for r in rows]
    fig, ax = plt.subplots(4, 1, figsize=(12, 10), sharex=True)
    for p, c in enumerate(("tab:brown", "tab:gray", "tab:olive")):
        ax[0].plot(t, [r[1][p] / 1000 for r in rows], color=c, label="house L%d" % (p + 1))
    ax[0].plot(t, [r[2] / 1000 for r in rows], color="gold", linewidth=2, label="PV per phase")
    ax[0].set_ylabel("A")
    ax[0].legend(loc="upper left", fontsize=8)
    ax[0].annotate("oven on at full PV", (12, 11), fontsize=8)
    for p, c in enumerate(("tab:red", "tab:blue", "tab:green")):
        ax[1].plot(t, [r[3][p] / 1000 for r in rows], color=c, label="mains L%d" % (p + 1))
    ax[1].axhline(FUSE_A, color="k", linestyle="--", linewidth=0.8, label="fuse %d A" % FUSE_A)
    ax[1].axhline(0, color="k", linewidth=0.5)
    ax[1].set_ylabel("A (import +, export -)")
    ax[1].legend(loc="upper left", fontsize=8)
    ax[2].step(t, [r[4] / 1000 for r in rows], where="post", color="tab:green",
               label="wallbox current per phase")
    ax[2].step(t, [r[6] for r in rows], where="post", color="tab:orange", alpha=0.7,
               label="offered (A)")
    ax[2].set_ylabel("A")
    ax[2].legend(loc="upper left", fontsize=8)
    ax[3].step(t, [1 if r[5] else 0 for r in rows], where="post", color="tab:red")
    ax[3].set_yticks([0, 1])
    ax[3].set_yticklabels(["open", "closed"])
    ax[3].set_ylabel("contactor")
    ax[3].set_xlabel("hour of the (compressed) day")
    for a in ax:
        a.grid(True, alpha=0.3)
    fig.suptitle("load management, lm_mode=pv: a solar day on the sim bench (25 A fuse)")
    fig.tight_layout()
    path = os.path.join(OUT, "solar.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main():
    day_s = int(os.environ.get("DAY_S", "240"))
    print("make sim SCENARIO=solar: a solar day in %d s on the sim bench" % day_s)
    s = run(day_s)
    print("summary:", s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
