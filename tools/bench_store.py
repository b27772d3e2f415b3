"""Benchmark section `store` (called by tools/bench.py): cost of persistence.

Runs in the MicroPython unix port: ms per record commit on VfsPosix and on
VfsLfs2 over a RAM block device (512 B and 4 KiB blocks), bytes per session
record, and a simulated day (one 2 h 11 kW session, a few events) with the
flush policy of docs/persistence.md, counting record commits, block programs
and erases.
"""
import json
import os
import shutil
import tempfile

from mp import run_script

DEVICE = r"""
import os, sys, time, gc, json
from tests.ramdisk import RamDisk, fresh_image, mount, umount
from firmware.services.store import Store, encode
from firmware.services.config import Config
out = {}

def commit_ms(path, n=200):
    s = Store(path)
    s.boot()
    t0 = time.ticks_us()
    for i in range(n):
        s.add_energy(100)            # crosses the step: one 'state' commit
        s.flush()
    state_ms = time.ticks_diff(time.ticks_us(), t0) / 1000 / n
    t0 = time.ticks_us()
    for i in range(n):
        s.session_start(16000); s.session_stop('ev_unplugged')
        s.flush(1)                   # one session chunk commit (state stays dirty)
    sess_ms = time.ticks_diff(time.ticks_us(), t0) / 1000 / n
    return round(state_ms, 3), round(sess_ms, 3)

posix = sys.argv[1]
out['posix_state_commit_ms'], out['posix_session_commit_ms'] = commit_ms(posix)
for nb, bs in ((256, 512), (48, 4096)):
    d = RamDisk(nb, bs, fresh_image(nb, bs)); mount(d)
    s_ms, c_ms = commit_ms('/lfs/st')
    tag = 'lfs%d' % bs
    out[tag + '_state_commit_ms'] = s_ms
    out[tag + '_session_commit_ms'] = c_ms
    # block operations of one small-record commit
    s = Store('/lfs/st'); w, e = d.writes, d.erases
    for i in range(50):
        s.add_energy(100); s.flush()
    out[tag + '_prog_per_commit'] = round((d.writes - w) / 50, 2)
    out[tag + '_erase_per_commit'] = round((d.erases - e) / 50, 2)
    umount(); gc.collect()

# bytes per session record (stored form inside a chunk file)
s = Store(posix + '2')
s.boot()
sid = s.session_start(16000); s.add_energy(22000, 16000); s.session_stop('ev_unplugged')
one = len(encode(s._sessions.items()[-1], 1))
out['session_record_bytes'] = one
for i in range(9):
    s.session_start(16000); s.add_energy(22000, 16000); s.session_stop('ev_unplugged')
out['session_chunk_bytes_10'] = len(encode(s._sessions.chunks[0], 1))
out['state_record_bytes'] = len(encode(s._state_obj(), 1))
c = Config(s)
out['config_record_bytes'] = len(encode(c.as_dict(False), 1))

# a simulated day on littlefs, 4 KiB blocks, runtime policy:
# contactor closed -> flush only when checkpoint_due(); open -> flush when flush_due()
class Clock:
    ms = 0
    def __call__(self):
        return self.ms
clk = Clock()
d = RamDisk(48, 4096, fresh_image(48, 4096)); mount(d)
s = Store('/lfs/day', clock_ms=clk, epoch_s=lambda: 1750000000 + clk.ms // 1000)
w0, e0, c0 = d.writes, d.erases, s.writes
closed = False
during = 0
wh_acc = 0
for sec in range(86400):
    clk.ms += 1000
    if sec == 7 * 3600:
        s.event('plug'); s.set_setpoints(16000, True, 3)
        s.session_start(16000); closed = True
    if closed:
        wh_acc += 11000            # 11 kW for one second, in Wh*3600
        s.add_energy(wh_acc // 3600, 16000); wh_acc %= 3600
        if sec == 7 * 3600 + 7200:
            closed = False
            s.session_stop('ev_full'); s.outbox_ack(s.outbox_pending()[0]['sid'])
    if sec in (3 * 3600, 12 * 3600, 20 * 3600):
        s.event('info', 'wifi reconnect')
    if closed:
        if s.checkpoint_due():
            n = s.writes; s.flush(); during += s.writes - n
    elif s.flush_due():
        s.flush()
out['day_record_commits'] = s.writes - c0
out['day_commits_while_charging'] = during
out['day_lfs4096_block_programs'] = d.writes - w0
out['day_lfs4096_block_erases'] = d.erases - e0
out['day_session_wh'] = s.sessions()[-1]['wh']
umount()
print(json.dumps(out))
"""


def run(progress):
    tmp = tempfile.mkdtemp(prefix="bench_store_")
    try:
        progress("commits on VfsPosix and VfsLfs2 (RAM), simulated day")
        out = run_script(DEVICE, heapsize="8m", timeout=300, args=[os.path.join(tmp, "st")])
        res = json.loads(out.splitlines()[-1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["note"] = ("unix-port timings on the host (RAM block device: no flash latency); on a "
                   "target each erase costs a sector erase (~45 ms typ, 400 ms max on SPI NOR)")
    progress("lfs4096 state commit %.2f ms, %s erases/commit; day: %d commits, %d erases" % (
        res["lfs4096_state_commit_ms"], res["lfs4096_erase_per_commit"], res["day_record_commits"],
        res["day_lfs4096_block_erases"]))
    return res
