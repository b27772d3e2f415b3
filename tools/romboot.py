# Boot the firmware from a ROMFS image held OUTSIDE the GC heap (MicroPython unix port).
#
#   WALLBOX_ROMFS=build/wallbox.romfs micropython -X heapsize=96k tools/romboot.py --data ...
#
# On an ESP32 without PSRAM the device code does not live in the 96 KB heap: it is frozen
# into the firmware image or sits in a ROMFS partition of memory-mapped flash, and the VM
# runs its bytecode in place. The unix port has no flash, and reading .py/.mpy files puts
# all bytecode into the GC heap. This loader emulates the ROMFS deployment:
#   1. park a thread with a big stack: pthread mmaps that stack outside the GC heap, and the
#      parked thread only ever touches its top few KB (the GC scans only the used part);
#   2. copy the image (tools/romfs.py build) into the bottom of that mapping, which
#      /proc/self/maps shows as the new rw mapping above its guard page;
#   3. mount it with vfs.VfsRom at /rom and import main from it: bytecode and qstr text
#      stay in the image (executed in place, as from a board's ROMFS partition); function
#      objects, raw-code records, the qstr pool, module dicts and all data use the heap.
# argv is passed through unchanged (firmware/app.py reads the options after argv[0]).
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
    _thread.start_new_thread(lock.acquire, ())  # parks forever (the lock is never released)
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


boot(os.getenv("WALLBOX_ROMFS") or "build/wallbox.romfs")
del boot, _flash, _rw_maps
gc.collect()
import main  # noqa: E402,F401  (/rom/main.mpy: from firmware import app; app.main())
