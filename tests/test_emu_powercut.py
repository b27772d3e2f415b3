"""Power cuts during store writes on the emulated RP2040: the chip is stopped at random
emulated moments while the firmware's Store (firmware/services/store.py, from flash)
commits sessions to littlefs on the flash array (between two instructions: each
erase/program is whole in this model), then powered on from the flash as it was. littlefs mounts every time, and no committed
session is lost or duplicated. Bounded: 10 cuts."""
import random

import shutil

from emu_chip import MS, Chip, modules_flash, needs_node

pytestmark = needs_node

CUTS = 10
OPEN = "from firmware.services.store import Store\ns = Store('/pc', dev_id='pc')\n"
LIST = OPEN + "print('SIDS', [x['sid'] for x in s.sessions()])\n"
# Three sessions a run; each sid is printed only after its flush returned (committed).
WRITE = OPEN + ("s.boot('cut test')\n"
                "s.flush()\n"  # sids are '<id>-<boots>-<n>': the boot count first
                "for k in range(3):\n"
                "    s.session_start(16000)\n"
                "    s.add_energy(5, 16000)\n"
                "    s.session_stop('ev')\n"
                "    s.flush()\n"
                "    print('DONE', s.sessions(1)[0]['sid'])\n")


def _sids(chip):
    out = chip.exec(LIST)
    line = [l for l in out.splitlines() if l.startswith("SIDS")][-1]
    return eval(line[5:])


def test_power_cuts_during_store_writes_lose_and_duplicate_nothing(tmp_path):
    rng = random.Random(11)
    flash = str(tmp_path / "flash.bin")
    shutil.copyfile(modules_flash(), flash)
    committed = []  # sids the chip reported as flushed before its power was cut
    for cut in range(CUTS + 1):
        chip = Chip(flash=flash).start()
        chip.boot()  # littlefs mounted at boot: the REPL and the store's files are there
        try:
            sids = _sids(chip)
            assert len(sids) == len(set(sids)), "duplicated session after cut %d: %r" % (cut, sids)
            missing = [x for x in committed if x not in sids]
            assert not missing, "lost after cut %d: %r" % (cut, missing)
            committed = list(sids)  # whatever survived is what later cuts must keep
            if cut == CUTS:
                break
            ok = chip.exec_start(WRITE)
            # the three commits take ~250 ms emulated: cut somewhere in them, or after
            chip.cut(flash, at=chip.now() + rng.randint(5, 300) * MS)
            text = bytes(chip.out[ok:]).decode("utf-8", "replace")
            lines = text[2:].split("\r\n")[:-1] if text.startswith("OK") else []
            done = [l.split()[1] for l in lines if l.startswith("DONE ")]  # whole lines only
            committed += done
        finally:
            chip.stop()
    assert len(committed) >= 3  # the cuts did let some commits through
