# The simulated bench board for the unix port: no pins, a World with physics instead
# (hal/sim.py). boards.build() calls build(hw) below instead of the generic builder.
NAME = "sim"
WDT_TIMEOUT_MS = 2000
HAS_LOCK = True  # the sim has a lock actuator; config "lock" decides if it is used


def build(hw):
    from hal import sim

    w = sim.World()
    _initial_world(w)
    hw.world = w
    hw.tick_lock = w.mutex  # the control thread and the bench share the world (hal/sim.py)
    hw.pilot = sim.SimPilot(w)
    hw.pp = sim.SimProximity(w)
    hw.contactor = sim.SimContactor(w)
    hw.rcd = sim.SimRcd(w)
    hw.current = sim.SimCurrent(w)
    hw.meter = sim.SimMeter(w, hw.current)
    hw.temp = sim.SimTemp(w)
    hw.lock = sim.SimLock(w)
    hw.led = sim.SimLed(w)
    hw.button = sim.SimButton(w)
    hw.wdt = sim.SimWatchdog(w, WDT_TIMEOUT_MS)
    return hw


def tasks(rt, opts):
    """The sim bench's control channel (hal/simctl.py) when --sim-port is given; the
    composition root (firmware/startup.py) runs what a board returns here."""
    c = rt.config  # load management on the sim: the house's SDM630 and grid relay
    if c.peek("mains_source") == "modbus" or c.peek("dim_source") == "input":
        from hal import sim_house
        sim_house.attach(rt.hw)
    port = opts.get("sim_port")
    if not port:
        return ()
    from hal import simctl

    return (("simctl", lambda: simctl.serve(rt, port)),)


def _initial_world(w):
    """WALLBOX_SIM_WORLD='{"button": true}': the world as it is at power-on (before main()
    looks at the button), for the bench's boot-time tests (SimBench(world=...))."""
    import os
    init = os.getenv("WALLBOX_SIM_WORLD")
    if not init:
        return
    import json
    for k, v in json.loads(init).items():
        err = w.set(k, v)
        if err:
            print("WALLBOX_SIM_WORLD:", err)
