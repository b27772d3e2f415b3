# Boot-only code of the app (firmware/app.py): the options, the store, config, board and
# runtime, and the list of tasks the runtime starts. firmware/app.py imports it (so a slot
# whose boot code does not import fails at the loader's import and is rolled back), uses
# it once and drops it before the tasks run: its function objects and constants are not
# kept in a 96 KB heap that needs them no more (docs/design-notes.md, Memory).
import gc
import json
import os
import sys
import time
from micropython import const

import boards
from firmware.services.config import Config
from firmware.services.runtime import Runtime, VERSION
from firmware.services.store import Store

SAFE_FLAG = "safemode"  # a file of this name in the data dir: boot into safe mode


def options(argv):
    opts = {"data": "/store" if sys.platform != "linux" else "store",
            "board": None, "sim_port": 0, "config": None, "config_file": None, "console": True,
            "safe": False}
    i = 1
    while i < len(argv):
        a = argv[i]
        val = argv[i + 1] if i + 1 < len(argv) else None
        if a == "--data":
            opts["data"] = val
        elif a == "--board":
            opts["board"] = val
        elif a == "--sim-port":
            opts["sim_port"] = int(val)
        elif a == "--config":
            opts["config"] = val
        elif a == "--config-file":
            opts["config_file"] = val
        elif a == "--no-console":
            opts["console"] = False
            i -= 1
        elif a == "--safe":
            opts["safe"] = True
            i -= 1
        else:
            print("unknown option %r: see firmware/app.py" % a)
            i -= 1
        i += 2
    return opts


def _mkdirs(path):
    p = ""
    for part in path.split("/"):
        if not part:
            p = "/" if not p else p
            continue
        p = p + ("/" if p and p[-1] != "/" else "") + part
        try:
            os.mkdir(p)
        except OSError:
            pass


def _read(path):
    if not path:
        return None
    try:
        with open(path) as f:
            return f.read()
    except OSError as ex:
        print("config rejected: --config-file %s: %s" % (path, ex))
        return None


def build(opts):
    """Store, config, board and runtime, ready to run (no task started)."""
    _mkdirs(opts["data"])
    store = Store(opts["data"])
    config = Config(store)
    given = (("--config", opts.get("config")), ("--config-file", _read(opts.get("config_file"))))
    for opt, text in given:
        if text:
            try:
                err = config.update(json.loads(text))
            except ValueError as ex:
                err = "%s is not JSON: %s" % (opt, ex)
            if err:
                print("config rejected:", err)
    store.dev_id = config.get("id")
    for name, why in store.problems:
        print("store: %s was unreadable (%s): using defaults" % (name, why))
    board = boards.load(opts["board"] or config.get("board") or None)
    hw = boards.build(board, wifi=_wifi(config))
    store.boot("fw %s board %s" % (VERSION, board.NAME))
    rt = Runtime(hw, store, config)
    rt.board = board
    rt.board_name = board.NAME
    return rt


def _wifi(config):
    ssid = config.get("wifi_ssid")
    return (ssid, config.get("wifi_password")) if ssid else None


_SAFE_BUTTON_MS = const(60)  # the button's debounce (30 ms) and a margin


def safe_mode_requested(opts, hw):
    if opts["safe"]:
        return True
    try:
        os.stat(opts["data"] + "/" + SAFE_FLAG)
        return True
    except OSError:
        pass
    b = hw.button
    if b is None:
        return False
    # hal/button.py debounces: its first reading only starts the debounce time (30 ms), so
    # one call is never True. Sample it for that long and a margin; boot waits at most that.
    t0 = time.ticks_ms()
    while not b.pressed():
        if time.ticks_diff(time.ticks_ms(), t0) > _SAFE_BUTTON_MS:
            return False
        time.sleep_ms(2)
    return True


# Optional features: (module, config key that turns it on). A feature is imported only when
# its key is set, so an unconfigured one costs no heap (the 96 KB and RP2040 images rely on
# this). The module has start(rt) -> [(name, factory)], and may put an object with a
# status() method in rt.features[name] (status() shows it). A missing module (a build that
# left it out, a port without socket) is reported and skipped, never a crash.
FEATURES = (
    ("firmware.links.ocpp", "ocpp_url"),
    ("firmware.links.ota_feature", "ota"),  # signed A/B updates (docs/ota.md)
    ("firmware.links.web", "web_port"),
    ("firmware.links.lm_link", "lm_mode"),  # load management (docs/load-management.md),
    ("firmware.links.lm_link", "mains_source"),  # on when any of its keys is set
    ("firmware.links.lm_link", "dim_source"),
    ("firmware.links.lm_link", "group_id"),
)


def _feature_tasks(rt):
    out = []
    for mod, key in FEATURES:
        v = rt.config.peek(key)  # (an extension key never set is at its default: off)
        if not v or v == "off" or v == "none":
            continue
        try:
            m = __import__(mod, None, None, ("start",))
            out.extend(m.start(rt))
        except (ImportError, MemoryError) as ex:  # left out of the build, or no heap for it
            print("%s not available in this build (%r): %s stays off" % (mod, ex, key))
            rt.store.event("feature_missing", mod, 0)
    return out


def _board_tasks(rt, opts):
    """Tasks the board itself brings (boards/sim.py: the sim bench's control channel)."""
    fn = getattr(rt.board, "tasks", None)
    return fn(rt, opts) if fn is not None else ()


def _have(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


def tasks(rt, opts):
    """The tasks the runtime starts besides its own and the console's: the board's, the
    features', the MQTT link, Wi-Fi. Called from the app's running asyncio loop. Nothing
    it returns may be a function defined here (a closure keeps this module alive)."""
    extra = []
    extra.extend(_board_tasks(rt, opts))
    extra.extend(_feature_tasks(rt))
    if rt.config.get("mqtt_host") and not _have("socket"):
        # The plain-Pico image has no socket: importing the link's chain only to fail at
        # its transport costs the heap the console needs (MemoryError on the emulated
        # RP2040). No network: charge without it.
        print("MQTT link not available in this build: no socket module")
    elif rt.config.get("mqtt_host"):
        try:
            gc.collect()
            from firmware.links import mqtt_link as link
            rt.link = link.Link(rt)
            extra.append(("link", rt.link.run))
        except (ImportError, MemoryError) as ex:
            # No socket module (the plain-Pico image), or no heap for the link: charge
            # without it (found on the emulated RP2040: MemoryError, not ImportError, when
            # mqtt_host was set on RPI_PICO), never a crash.
            rt.link = None
            print("MQTT link not available in this build: %r" % (ex,))
    if rt.hw.wifi is not None:
        extra.append(("wifi", rt.hw.wifi.run))
    return extra
