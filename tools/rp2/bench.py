#!/usr/bin/env python3
"""`make emu`: figures of the firmware on the emulated RP2040 into bench/rp2040.json.

Heap (gc.mem_free) after boot, after the firmware's imports, minimum during a session;
evse.step on the chip; the control loop's tick gaps (seen from outside: each tick's
CP sampling burst on ADC0, in emulated time); fault contactor-open latencies; flash
used; emulated-to-wall speed; the image's SHA-256. Everything but the speed is
emulated time, independent of the host."""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from emu import MS, Chip  # noqa: E402
from emu_chip import boot_firmware, deployed_flash  # noqa: E402
from scenarios import data, open_latency_ms, plug_and_charge, wait_state  # noqa: E402

OUT = os.path.join(ROOT, "bench", "rp2040.json")


def progress(msg):
    print("emu bench: " + msg, flush=True)


def stock():
    with Chip() as chip:
        t = time.monotonic()
        chip.boot()
        boot_wall = time.monotonic() - t
        free = int(chip.exec("import gc\ngc.collect()\nprint(gc.mem_free())"))
        w0, e0 = time.monotonic(), chip.now()
        busy = int(chip.exec("import time\nt = time.ticks_us()\nfor i in range(200000): pass\n"
                             "print(time.ticks_diff(time.ticks_us(), t))"))
        wall = time.monotonic() - w0
        emu_s = (chip.now() - e0) / 1e9
    return {"mem_free_repl": free, "boot_to_repl_wall_s": round(boot_wall, 2),
            "busy_loop_200k_ms": busy // 1000,
            "wall_s_per_emulated_s_busy": round(wall / emu_s, 2)}


def step_bench(flash):
    """evse.step on the chip: the firmware's modules from flash, main.py set aside (no
    watchdog, no tasks), tests/device/evse_sim.py + evse_bench.py pasted in."""
    import tempfile
    tmp = tempfile.mkdtemp(prefix="emu-bench-")
    off = os.path.join(tmp, "flash.bin")
    chip = boot_firmware(flash)
    chip.exec("import os\nos.rename('main.py', 'main_off.py')")
    chip.save_flash(off)
    chip.stop()
    with Chip(flash=off) as chip:
        chip.boot()
        for name in ("evse_sim", "evse_bench"):
            src = open(os.path.join(ROOT, "tests", "device", name + ".py")).read()
            chip.exec("f = open('/%s.py', 'w')\nf.write(%r)\nf.close()" % (name, src))
        out = chip.exec("import gc, evse_bench, json\ngc.collect()\nf0 = gc.mem_free()\n"
                        "r = evse_bench.bench(300)\nprint(json.dumps(r))", timeout=600)
    return json.loads(out.strip().splitlines()[-1])


def histogram(gaps_ms):
    bins = [(0, 11), (11, 15), (15, 20), (20, 50), (50, 100), (100, 10 ** 9)]
    return {("%d-%d ms" % b if b[1] < 10 ** 9 else ">=%d ms" % b[0]):
            sum(1 for g in gaps_ms if b[0] <= g < b[1]) for b in bins}


def session(flash):
    chip = boot_firmware(flash)
    try:
        st = data(chip, "status")
        heap = [st["mem_free"]]
        after_boot = st["mem_free"]
        w0, e0 = time.monotonic(), chip.now()
        t_b = chip.now()
        _b2, c2, close_ms = plug_and_charge(chip, heap)
        for _ in range(10):
            heap.append(data(chip, "status")["mem_free"])
            chip.sleep(200)
        chip.world(ev="B")
        wait_state(chip, ("B1", "B2"), 3000, heap)
        chip.world(ev="A")
        wait_state(chip, ("A",), 3000, heap)
        ticks = chip.call("ticks", since=t_b)["ticks"]
        gaps = [(b - a) / MS for a, b in zip(ticks, ticks[1:])]
        fs = chip.exec("import os\nst = os.statvfs('/')\nprint(st[0] * st[2], st[0] * st[3])")
        total, free = (int(x) for x in fs.split())
        wall = time.monotonic() - w0
        emu_s = (chip.now() - e0) / 1e9
        return {
            "mem_free_after_boot": after_boot, "mem_free_min_session": min(heap),
            "contactor_close_ms_after_C": round(close_ms, 1), "offered_a": c2["allowed_a"],
            "loop_ticks": len(ticks), "loop_gap_ms_max": round(max(gaps), 2),
            "loop_gap_ms_mean": round(sum(gaps) / len(gaps), 2),
            "loop_gap_histogram": histogram(gaps),
            "flash_fs_bytes": total, "flash_fs_used_bytes": total - free,
            "wall_s_per_emulated_s_firmware": round(wall / emu_s, 2),
        }
    finally:
        chip.stop()


FAULTS = (("unplug", {"ev": "A"}), ("rcd_trip", {"rcd": 1}), ("no_diode", {"diode": False}),
          ("overtemp", {"tempC": 80}), ("cp_short", {"ev": "E"}), ("c_to_b", {"ev": "B"}))


def faults(flash):
    out = {}
    for name, w in FAULTS:
        chip = boot_firmware(flash)
        try:
            plug_and_charge(chip)
            out[name] = round(open_latency_ms(chip, **w), 2)
        finally:
            chip.stop()
        progress("fault %s: %s ms" % (name, out[name]))
    return out


def main():
    manifest = json.load(open(os.path.join(ROOT, "tools", "rp2", "image", "manifest.json")))
    res = {"image": manifest["image"], "image_sha256": manifest["image_sha256"],
           "micropython": manifest["micropython"], "board": "rp2040_pico_w on " + manifest["board"]}
    t0 = time.monotonic()
    progress("stock image")
    res["stock"] = stock()
    progress("deploy (wbctl) or cached flash")
    flash = deployed_flash()
    progress("session")
    res["session"] = session(flash)
    progress("fault latencies")
    res["fault_open_ms"] = faults(flash)
    res["fault_open_ms_max"] = max(res["fault_open_ms"].values())
    progress("evse.step on the chip")
    res["evse_step"] = step_bench(flash)
    res["bench_wall_s"] = round(time.monotonic() - t0, 1)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(res, f, indent=2, sort_keys=True)
        f.write("\n")
    print(json.dumps(res, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
