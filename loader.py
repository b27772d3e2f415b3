# The boot loader (docs/ota.md "Slots and boot"): picks the application slot, counts the
# boots of a trial, rolls a failed trial back, imports the application and runs it.
# main.py calls run(). An update never replaces this file or main.py (a bundle may only
# hold firmware/, hal/ and boards/ files), so it stays small and changes rarely.
#
#   <ota>/boot.json   the boot pointer, rewritten only by write-to-temp + rename (atomic):
#                     {"slot": "a"|"b"|null, "version", "trial", "tries", "prev": {slot,
#                      version}|null, "failed": [versions], "floor": arb, "rollback": why}
#   <ota>/a/, <ota>/b/  the two app slots (firmware/ hal/ boards/ .mpy + manifest.json)
#   slot null = "factory": the app in the root, as `wbctl deploy` put it there.
# <ota> is beside the data directory: /ota on a board (data /store), <dir>/ota on the unix
# port for --data <dir>/store.
import os
import sys

VERSION = 1  # a bundle's min_loader must be <= this
MAX_TRIAL_BOOTS = 3  # a trial not marked healthy within this many boots is rolled back
REBOOT_EXIT = 75  # unix port: the exit status that asks the harness to "power-cycle"
_APP_PKGS = ("firmware", "hal", "boards")

booted = False  # set by run(): the app was started by this loader
ota_dir = None
slot = None  # the slot running now (None = factory)
state = None  # boot.json as read at this boot (after this loader's own changes)
note = None  # what the loader did, if anything worth reporting ("rolled back ...")


def dir_for(argv):
    """The ota directory from the app's --data option (see the header)."""
    data = None
    for i in range(len(argv) - 1):
        if argv[i] == "--data":
            data = argv[i + 1]
    if data is None:
        data = "store" if sys.platform == "linux" else "/store"
    data = data.rstrip("/") or "/"
    i = data.rfind("/")
    if i < 0:
        return "ota"
    return data[:i] + "/ota"


def read_state(d):
    """boot.json as a dict, or None (missing, unreadable, not ours: boot the factory app)."""
    p = d + "/boot.json"
    try:
        os.stat(p)
    except OSError:
        return None
    import json
    try:
        with open(p) as f:
            st = json.loads(f.read())
    except Exception as ex:  # noqa: a torn or bad file must not stop the boot
        print("loader: %s unreadable (%r): factory app" % (p, ex))
        return None
    if type(st) is not dict or st.get("slot") not in ("a", "b", None):
        print("loader: %s is not a boot pointer: factory app" % p)
        return None
    return st


def write_state(d, st):
    """Replace boot.json atomically: a power cut leaves the old or the new pointer."""
    import json
    p = d + "/boot.json"
    tmp = p + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(st))
    os.rename(tmp, p)


def rolled_back(st, why):
    """The pointer after a failed trial (or a slot that does not import): the previous
    slot, the failed version remembered (never tried again)."""
    prev = st.get("prev") or {}
    failed = list(st.get("failed") or ())
    v = st.get("version")
    if v and v not in failed:
        failed.append(v)
    return {"slot": prev.get("slot"), "version": prev.get("version"), "trial": False,
            "tries": 0, "prev": None, "failed": failed[-8:], "floor": st.get("floor", 0),
            "rollback": ("%s: %s" % (v, why))[:120]}


def _forget_app():
    for name in list(sys.modules):
        if name.split(".")[0] in _APP_PKGS:
            del sys.modules[name]


def _arm_watchdog():
    """A trial boot gets the hardware watchdog before the app is imported: an app that
    hangs at import resets the board, and the next boot counts as a failed try."""
    try:
        import machine
        return machine.WDT(timeout=8000)  # the app's own WDT (hal/watchdog.py) takes over
    except Exception:  # noqa: the unix port has none (tests kill the hung process)
        return None


def _import_app(d, st):
    """Import firmware.app from the pointer's slot; on failure fall back (and record it)."""
    global slot, state, note
    while True:
        s = st.get("slot") if st else None
        path = d + "/" + s if s else None
        if path:
            sys.path.insert(0, path)
        try:
            from firmware import app
            slot = s
            state = st
            return app
        except Exception as ex:  # noqa: SyntaxError, ImportError, whatever the module raised
            if path is None:
                raise  # the factory app itself is broken: nothing to fall back to
            sys.path.remove(path)
            _forget_app()
            why = "import failed: %r" % (ex,)
            print("loader: slot %s (%s) %s: back to %s" % (
                s, st.get("version"), why, (st.get("prev") or {}).get("slot") or "factory"))
            st = rolled_back(st, why)
            note = st["rollback"]
            try:
                write_state(d, st)
            except OSError as ex:
                print("loader: boot pointer not written (%r)" % (ex,))


def reset():
    try:
        import machine
        machine.reset()
    except (ImportError, AttributeError):  # the unix port: exit, the harness restarts us
        pass
    sys.exit(REBOOT_EXIT)


def run(argv=None):
    global booted, ota_dir, note
    argv = argv if argv is not None else getattr(sys, "argv", [])
    booted = True
    d = ota_dir = dir_for(argv)
    st = read_state(d)
    if st and st.get("trial"):
        st["tries"] = st.get("tries", 0) + 1
        if st["tries"] > MAX_TRIAL_BOOTS:
            st = rolled_back(st, "not healthy within %d boots" % MAX_TRIAL_BOOTS)
            note = st["rollback"]
            print("loader: rollback, " + note)
        else:
            print("loader: trial boot %d of %d for %s" % (st["tries"], MAX_TRIAL_BOOTS,
                                                         st.get("version")))
            _arm_watchdog()
        try:
            write_state(d, st)
        except OSError as ex:  # a full or failing flash must not stop the boot itself
            print("loader: boot pointer not written (%r)" % (ex,))
    app = _import_app(d, st)
    rt = app.main()
    if getattr(rt, "reboot", None):
        print("loader: reboot (%s)" % rt.reboot)
        reset()
    return rt
