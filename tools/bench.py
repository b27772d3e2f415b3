#!/usr/bin/env python3
"""`make bench`: run every benchmark section and write bench/results.json.

Each section is a module tools/bench_<name>.py with a function `run(progress)`
returning a JSON-able dict; `progress(msg)` prints a progress line. Sections
run in name order; one that fails is recorded with its error, the others still run.
`tools/bench.py <section>.<part>` runs one part of a section that lists it in its
PARTS dict (e.g. runtime.heap96k) and replaces only that part's figures.
"""
import glob
import importlib
import json
import os
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, ROOT)


def main(argv):
    only = argv[1:]  # optional section names (or section.part)
    names = sorted(os.path.basename(p)[6:-3] for p in glob.glob(os.path.join(ROOT, "tools", "bench_*.py")))
    parts = {}
    for o in only:
        if "." in o:
            sec, part = o.split(".", 1)
            parts.setdefault(sec, []).append(part)
    if only:
        names = [n for n in names if n in only or n in parts]
    out_path = os.path.join(ROOT, "bench", "results.json")
    results = {}
    if only and os.path.exists(out_path):
        with open(out_path) as f:
            results = json.load(f)
    results["_meta"] = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "host": os.uname().nodename,
                        "cpus": os.cpu_count()}
    failed = 0
    for name in names:
        t0 = time.time()
        print("bench %s ..." % name, flush=True)
        mod = importlib.import_module("bench_" + name)
        progress = (lambda msg, n=name: print("  [%s] %s" % (n, msg), flush=True))
        try:
            if name in parts and name not in only:
                sec = results.get(name)
                sec = results[name] = sec if isinstance(sec, dict) and "error" not in sec else {}
                for part in parts[name]:
                    try:  # a failed part keeps its error, the section's other figures stay
                        sec[part] = mod.PARTS[part](progress)
                    except Exception:
                        failed += 1
                        sec[part] = {"error": traceback.format_exc()}
                        print(sec[part]["error"])
            else:
                results[name] = mod.run(progress)
        except Exception:
            failed += 1
            results[name] = {"error": traceback.format_exc()}
            print(results[name]["error"])
        print("bench %s done in %.1f s" % (name, time.time() - t0), flush=True)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
    print("wrote", out_path)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
