# The ROMFS emulation behind tools/romboot.py (its header says how it works): imported,
# used and dropped before the firmware starts, so none of this bytecode (compiled from
# source into the heap) stays in the heap a 96 KB session runs in; with
# WALLBOX_HEAP_TRACE it stays (the import tracer lives here).
import gc
import sys
import os
import uctypes
import vfs
import _thread

_MAPS = "/proc/self/maps"


def _rw_maps():
    out = []
    with open(_MAPS) as f:
        for line in f:
            p = line.split()
            if p[1].startswith("rw"):
                a, b = p[0].split("-")
                out.append((int(a, 16), int(b, 16)))
    return out


def _flash(size):
    """size bytes of process memory outside the GC heap (the emulated flash)."""
    before = _rw_maps()
    lock = _thread.allocate_lock()
    lock.acquire()
    stack = ((size + 4095) & ~4095) + (256 << 10)  # the parked thread uses only the top
    _thread.stack_size(stack)
    # parks forever (the lock is never released). A thread keeps the globals of the code
    # that started it: started from here, it would keep this module (dropped before the
    # firmware starts) alive; exec starts it from a dict of two names.
    exec("_thread.start_new_thread(lock.acquire, ())", {"_thread": _thread, "lock": lock})
    _thread.stack_size(0)
    for a, b in _rw_maps():
        if (a, b) not in before and b - a >= stack:
            return uctypes.bytearray_at(a, size)
    raise OSError("romboot: thread stack mapping not found in " + _MAPS)


def boot(path):
    size = os.stat(path)[6]
    rom = _flash(size)
    with open(path, "rb") as f:
        if f.readinto(rom) != size:
            raise OSError("romboot: short read " + path)
    vfs.mount(vfs.VfsRom(rom), "/rom")
    sys.path[:] = ["/rom", ".frozen"]  # nothing from the source tree
    gc.collect()


# The boot steps whose heap WALLBOX_HEAP_TRACE reports, as (module, attribute, label): the
# app's composition root (firmware/startup.py) calls each of them once at boot.
_STEPS = (("firmware.startup", "Store", "Store()"), ("firmware.startup", "Config", "Config()"),
          ("boards", "build", "boards.build"), ("firmware.startup", "Runtime", "Runtime()"),
          ("firmware.startup", "_board_tasks", "board_tasks"),
          ("firmware.startup", "_feature_tasks", "feature_tasks"))


def trace_imports():
    """WALLBOX_HEAP_TRACE=1: print 'heap-import <name> <total> <self>' for every import
    statement: what it left live in the heap after a collection (total, with what it
    imported; self, without), and 'heap-step <label> <total> <self>' for each boot step of
    _STEPS (self: without the imports it made). tools/bench_runtime.py heap96k.breakdown
    reads these."""
    import builtins
    orig = builtins.__import__
    stack = []
    steps = _STEPS

    def measured(kind, label, fn, args, kw):
        gc.collect()
        m0 = gc.mem_alloc()
        stack.append(0)
        try:
            return fn(*args, **kw)
        finally:
            inner = stack.pop()
            gc.collect()
            d = gc.mem_alloc() - m0
            if stack:
                stack[-1] += d
            if d >= 32 or kind == "step":
                print("heap-%s %s %d %d" % (kind, label, d, d - inner))

    def step(label, fn):
        return lambda *a, **kw: measured("step", label, fn, a, kw)

    def traced(name, *args):
        fl = args[2] if len(args) > 2 else None
        label = name + ((":" + ",".join(fl)[:40]) if isinstance(fl, tuple) else "")
        mod = measured("import", label, orig, (name,) + args, {})
        for m, attr, lbl in steps:
            mo = sys.modules.get(m)
            fn = getattr(mo, attr, None) if mo is not None else None
            if fn is not None and not hasattr(mo, "_traced_" + attr):
                setattr(mo, "_traced_" + attr, fn)
                setattr(mo, attr, step(lbl, fn))
        return mod

    builtins.__import__ = traced
