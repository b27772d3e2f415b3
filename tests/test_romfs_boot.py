"""The firmware booted from a ROMFS image kept outside the GC heap (tools/romfs.py,
tools/romboot.py, SimBench(romfs=...)): how the heap benchmark emulates a board's flash."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import latency  # noqa: E402
import romfs  # noqa: E402
from simbench import SimBench  # noqa: E402

# The 96 KB heap (bench: runtime.heap96k): image + live heap would not fit it
# together, so this test checks where the code lives, and that a whole session runs in it
# (~85 KB live at boot on this 64-bit port, docs/design-notes.md, Memory).
HEAP_KB = 96


def test_session_from_romfs_outside_heap(tmp_path):
    img = str(tmp_path / "wallbox.romfs")
    size = romfs.build(img)
    with SimBench(config=latency.BENCH_CONFIG, heapsize="%dk" % HEAP_KB, romfs=img) as b:
        start = b.gc()["mem_alloc"]
        # image + what the firmware allocated do not fit the heap together: the image is not
        # in it (and the code came from /rom: there is no other copy on sys.path)
        assert start + size > HEAP_KB * 1024, (start, size)
        b.set(**latency.BENCH_WORLD)
        b.plug()
        latency.charge(b, timeout=60)
        b.unplug()
        b.wait_state("A", timeout=30)
        b.wait_for(lambda r: b.sessions()["open"] is None, timeout=30)
        rec = b.sessions()["sessions"][-1]
        assert rec["reason"] == "unplug"
        assert b.stats()["task_errors"] == 0 and b.alive()
        assert "Traceback" not in b.log()
