"""The stock MicroPython v1.28.0 RPI_PICO image boots on the emulated RP2040, and each
rp2040js fix of the harness (emu/patches/) does what it says."""
import os

from emu_chip import MS, Chip, needs_node

pytestmark = needs_node


def test_boots_to_banner_over_usb_cdc():
    with Chip() as chip:
        chip.boot()
        start = len(chip.out)
        chip.write(b"\x04")  # soft reset at the friendly REPL prints the banner again
        chip.wait_text(b">>> ", 60, start)
        banner = bytes(chip.out[start:]).decode()
        assert "MicroPython v1.28.0" in banner and "Raspberry Pi Pico with RP2040" in banner
        out = chip.exec("import sys, gc\nprint(sys.platform, sys.implementation._mpy & 0xff, "
                        "gc.mem_free())")
        platform, mpy, free = out.split()
        assert platform == "rp2" and int(mpy) == 6  # bytecode v6: what mpy-cross 1.2x emits
        assert int(free) > 200_000  # of the 264 KB SRAM, before any import


def test_flash_patch_littlefs_formats_and_survives_power_off(tmp_path):
    flash = str(tmp_path / "flash.bin")
    with Chip() as chip:
        chip.boot()
        out = chip.exec("import os\nst = os.statvfs('/')\nprint(st[0] * st[2])\n"
                        "with open('/hello.txt', 'w') as f:\n    f.write('wallbox')\n")
        assert int(out) > 1_000_000  # the 1.4 MB littlefs partition of the 2 MB flash
        chip.save_flash(flash)
    with Chip(flash=flash) as chip:
        chip.boot()
        assert chip.exec("print(open('/hello.txt').read())").strip() == "wallbox"
        assert chip.status()["flash"]["programmed"] == 0  # nothing rewritten to read it


def test_without_the_flash_patch_littlefs_cannot_format():
    with Chip(no_patch=("flash-program",)) as chip:
        chip.boot()
        assert chip.exec("import os\nprint(os.statvfs('/')[2])").strip() == "0"


def test_uart_patch_init_and_loopback_through_the_world():
    # Without uart-txintr, UART init never returns (interrupt storm). UART0 is wired
    # to the emulated SDM630: a Modbus request for 2 registers gets 9 bytes back.
    with Chip() as chip:
        chip.boot()
        out = chip.exec(
            "import machine, time\n"
            "u = machine.UART(0, 9600, tx=machine.Pin(0), rx=machine.Pin(1))\n"
            "u.write(bytes([1, 4, 0, 0, 0, 2, 0x71, 0xcb]))\n"
            "t = time.ticks_ms()\n"
            "while u.any() < 9 and time.ticks_diff(time.ticks_ms(), t) < 500: time.sleep_ms(5)\n"
            "print(u.any())\n")
        assert int(out) == 9


def test_watchdog_patch_resets_once_and_keeps_flash():
    with Chip() as chip:
        chip.boot()
        chip.exec("with open('/mark', 'w') as f:\n    f.write('x')\n")
        t0 = chip.now()  # the idle chip runs far ahead of wall time: take t0 before
        chip.exec("import machine\nw = machine.WDT(timeout=300)")
        ev = chip.events.get(timeout=120)
        while ev.get("ev") != "watchdog":
            ev = chip.events.get(timeout=120)
        assert 300 * MS <= ev["t"] - t0 <= 1500 * MS
        chip.boot()
        out = chip.exec("import machine, os\nprint(machine.reset_cause() == machine.WDT_RESET, "
                        "'mark' in os.listdir('/'))")
        assert out.split() == ["True", "True"]
        assert chip.status()["resets"] == 1
