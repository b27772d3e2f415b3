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
# The code that does it is tools/romflash.py, dropped before main starts.
# argv is passed through unchanged (firmware/startup.py reads the options after argv[0]).
import gc
import os
import sys

sys.path.append("tools")  # as a script its own directory is sys.path[0]; with -c
# (tools/bench_ocpp.py) it runs from the repo root
import romflash  # noqa: E402  (tools/romflash.py: the emulation itself)

romflash.boot(os.getenv("WALLBOX_ROMFS") or "build/wallbox.romfs")  # sys.path: /rom only
if os.getenv("WALLBOX_HEAP_TRACE"):
    romflash.trace_imports()
# A board runs none of the emulation: its bytecode (compiled from source, ~3 KB) leaves
# the heap (the tracer, if on, keeps the module alive)
del sys.modules["romflash"], romflash
gc.collect()
import main  # noqa: E402,F401  (/rom/main.mpy: from firmware import app; app.main())
