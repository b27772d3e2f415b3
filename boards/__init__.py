# Board selection and driver construction.
#   load(name=None) -> board module: `name` (config), else by sys.platform:
#       esp32 -> esp32_devkit, rp2 -> rp2040_pico_w, linux -> sim
#   build(board, wifi=None) -> Hardware: attributes pilot, pp, contactor, rcd,
#       current, meter, temp, lock, led, button, wdt, wifi (None where absent), and where a
#       board has them: modbus (the RS-485 bus, EV + mains meters), dim_input (§14a relay).
# A board module may define its own build(hw) (boards/sim.py does): it is then
# called with an empty Hardware and fills it instead of the generic builder.
import sys

_BY_PLATFORM = {"esp32": "esp32_devkit", "rp2": "rp2040_pico_w", "linux": "sim"}


class Hardware:
    def __init__(self, board=None):
        self.board = board
        self.pilot = None
        self.pp = None
        self.contactor = None
        self.rcd = None
        self.current = None
        self.meter = None
        self.temp = None
        self.lock = None
        self.led = None
        self.button = None
        self.wdt = None
        self.wifi = None
        self.no_network = False  # the image has no `network` module (RPI_PICO on a Pico W)
        self.tick_lock = None  # a lock the control tick holds (the sim's world); None on boards
        self.image = None  # the MicroPython image's own A/B update (ESP32: hal/esp32_image.py)

    def safe(self):
        """Contactor open, pilot off: callable from any `finally`."""
        if self.contactor is not None:
            self.contactor.set(False)
        if self.pilot is not None:
            self.pilot.set(0, 0)
        if self.lock is not None and getattr(self.lock, "busy", False):
            self.lock.update()


def load(name=None):
    if not name:
        name = _BY_PLATFORM.get(sys.platform)
        if name is None:
            raise ValueError("no board for platform %r" % sys.platform)
    mod = __import__("boards." + name, None, None, ("NAME",))
    return mod


def build(board, wifi=None, watchdog=True):
    """Construct every driver the board lists. `wifi` = (ssid, password[, gate])
    from config, or None. The WDT starts only if `watchdog`."""
    hw = Hardware(board)
    own = getattr(board, "build", None)
    if own is not None:
        return own(hw) or hw
    # The generic builder (pins -> hal drivers) lives in its own module: a board that
    # builds itself (the sim) does not carry it in its heap.
    from boards.machine_build import build_machine
    return build_machine(board, hw, wifi, watchdog)
