# Boot: build the board, open the store and config, start the runtime tasks.
# On a board main.py calls main(); on the unix port the same main() takes options:
#   micropython main.py [--data DIR] [--board NAME] [--sim-port N] [--config JSON]
#                       [--config-file PATH] [--no-console] [--safe]
# (the unix port dies with "FATAL: uncaught NLR" on an argument of 256 bytes or more:
# a longer config goes in a file, --config-file, as tools/simbench.py does)
# Whatever happens, the outputs end safe (contactor open, pilot off) before anything else.
# The boot-only code (options, composition, the task list, FEATURES) is
# firmware/startup.py, dropped once the tasks are made.
import asyncio
import sys

from firmware import startup as _startup  # noqa: F401 (imported with the app: see startup.py)
from firmware.services.runtime import VERSION

del _startup


def _startup_module():
    from firmware import startup
    return startup


def _drop_startup():
    """Forget firmware/startup.py: nothing holds its functions once the tasks are made."""
    sys.modules.pop("firmware.startup", None)
    pkg = sys.modules.get("firmware")
    if pkg is not None and "startup" in pkg.__dict__:
        delattr(pkg, "startup")


def main(argv=None):
    su = _startup_module()
    opts = su.options(argv if argv is not None else getattr(sys, "argv", []))
    rt = None
    try:
        rt = su.build(opts)
        if su.safe_mode_requested(opts, rt.hw):
            rt.hw.safe()
            rt.store.event("safe_mode", "application not started", 0)
            rt.store.flush()
            print("SAFE MODE: outputs off, application not started. Remove '%s/%s' or"
                  " release the button and reset to run the firmware." % (opts["data"], su.SAFE_FLAG))
            if opts["console"]:
                asyncio.run(_run_safe(rt, opts))
            return rt
        su = None
        asyncio.run(_run(rt, opts))
    except KeyboardInterrupt:
        print("stopped (Ctrl-C): outputs safe")
    finally:
        if rt is not None:
            rt.stop_control()  # the control thread (if any) ends first, then outputs safe
            rt.store.flush()
        con = sys.modules.get("firmware.technician.console")
        if con is not None:
            con.restore()  # the terminal as it was, even if the console task was dropped
    return rt


async def _run(rt, opts):
    extra = _startup_module().tasks(rt, opts)
    _drop_startup()
    if opts["console"]:
        try:
            from firmware.technician import console
            extra.append(("console", lambda: console.run(rt)))
        except ImportError:
            pass
    print("wallbox fw %s on %s: control every %d ms" % (VERSION, rt.board_name, rt.period_ms))
    await rt.run(extra)
    if rt.link is not None:  # clean stop: retained "offline" first (no will after DISCONNECT)
        try:
            await asyncio.wait_for_ms(rt.link.stop(), 2000)
        except Exception:
            pass


async def _run_safe(rt, opts):
    """Safe mode: only the console (and the sim bench channel); no control loop.
    exit() or Ctrl-D leaves the console; on a board the MicroPython REPL follows."""
    try:
        from firmware.technician import console
    except ImportError:
        return
    for _, factory in _startup_module()._board_tasks(rt, opts):
        asyncio.create_task(factory())
    task = asyncio.create_task(console.run(rt, True))
    while not rt.stopped and not task.done():
        await asyncio.sleep_ms(100)
    rt.hw.safe()
