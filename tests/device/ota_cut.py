# Power-cut helper for tests/test_ota_powercut.py (MicroPython unix port):
#   micropython tests/device/ota_cut.py OTA_DIR DATA_DIR BUNDLE KEYHEX K
# Opens the store as the firmware does, logs an event, installs BUNDLE into the inactive slot
# and switches the boot pointer like Ota.switch. After filesystem change number K it prints
# "CUT K" and freezes there until the test kills it (kill -9: a power cut right after that
# write). K = 0: run to the end and print "DONE <number of changes>".
import sys
import time

sys.path.insert(0, "tests/device")
ota_dir, data_dir, path, key, k = sys.argv[1:6]
k = int(k)

from firmware.services.store import Store  # noqa: E402

store = Store(data_dir)
store.event("ota_request", "power-cut test", 0)
store.flush()


def on_write(n):
    if n == k:
        print("CUT %d" % n)
        while True:
            time.sleep(1)


import ota_dev  # noqa: E402
import loader  # noqa: E402
from firmware.services import ota_ops as ota  # noqa: E402
import json  # noqa: E402

res = ota_dev.install(ota_dir, "a", path, keys=[key], on_write=on_write)
if res[0] != "ok":
    print("FAILED", res)
    sys.exit(1)
with open(ota_dir + "/a/manifest.json") as f:
    m = json.loads(f.read())["manifest"]
loader.write_state(ota_dir, ota.trial_pointer("a", m, {}, None, "0.3.0"))
on_write(res[2] + 1)
store.event("ota_switch", "power-cut test", 0)
store.flush()
print("DONE %d" % (res[2] + 1))
