"""The stock MicroPython v1.28.0 RPI_PICO image boots on the emulated RP2040, and each
rp2040js fix of the harness (emu/patches/) does what it says."""
import os
import subprocess

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


# dual-core: core 1 in the harness. Each program runs inside one function, so that no
# global is created while both cores run (no GIL on rp2: a dict growing under the other
# core's lookup is a real race, seen here as a NameError on core 1).
SIO, FIFO_ST, FIFO_WR, FIFO_RD = 0xd0000000, 0xd0000050, 0xd0000054, 0xd0000058
NVIC_ISER, NVIC_ICER = 0xe000e100, 0xe000e180


def _on_stock_chip(code):
    """Run code at the stock image's REPL; returns (its output, the chip's status)."""
    with Chip() as chip:
        chip.boot()
        return chip.exec(code), chip.status()


def test_dual_core_patch_thread_runs_on_core_1():
    out, status = _on_stock_chip(
            "import _thread, machine, time\n"
            "def run():\n"
            "    r = []\n"
            "    def f():\n"
            "        r.append((machine.mem32[%d], _thread.get_ident(), machine.mem32[%d]))\n"
            "    _thread.start_new_thread(f, ())\n"
            "    t = time.ticks_ms()\n"
            "    while not r and time.ticks_diff(time.ticks_ms(), t) < 1000:\n"
            "        time.sleep_ms(1)\n"
            "    print(machine.mem32[%d], _thread.get_ident(), machine.mem32[%d], r)\n"
            "run()\n" % (SIO, NVIC_ISER, SIO, NVIC_ISER))
    cpuid0, ident0, iser0, r = out.split(" ", 3)
    (cpuid1, ident1, iser1), = eval(r)
    assert (int(cpuid0), int(ident0)) == (0, 1) and (cpuid1, ident1) == (1, 2)
    # each core its own NVIC: its own SIO FIFO IRQ (15 core 0, 16 core 1) enabled by
    # MicroPython's multicore_lockout_victim_init on that core, not the other's
    assert int(iser0) & (1 << 15) and not int(iser0) & (1 << 16)
    assert iser1 & (1 << 16) and not iser1 & (1 << 15)
    st = status["cores"]
    assert st["held"] is False and st["fifo_words"][0] >= 6  # the launch: 0 0 1 VTOR SP PC


def test_dual_core_patch_fifo_status_and_irq():
    out, _ = _on_stock_chip(
            "import _thread, machine, time\n"
            "m = machine.mem32\n"
            "def run():\n"
            "    lock = _thread.allocate_lock()\n"
            "    lock.acquire()\n"
            "    st1 = []\n"
            "    def f():\n"  # core 1: 9 words into a FIFO that holds 8
            "        m[%(ICER)d] = 1 << 16\n"  # its FIFO IRQ off, or its handler clears WOF
            "        for i in range(9):\n"
            "            m[%(WR)d] = 100 + i\n"
            "            st1.append(m[%(ST)d])\n"
            "        m[%(ST)d] = 0xff\n"  # WOF is write-to-clear
            "        st1.append(m[%(ST)d])\n"
            "        m[%(ISER)d] = 1 << 16\n"
            "        lock.release()\n"
            "    m[%(ICER)d] = 1 << 15\n"  # core 0: its FIFO IRQ off (MicroPython's handler drains it)
            "    _thread.start_new_thread(f, ())\n"
            "    lock.acquire()\n"
            "    st0 = m[%(ST)d]\n"
            "    words = [m[%(RD)d] for i in range(8)]\n"
            "    empty = m[%(ST)d]\n"
            "    m[%(RD)d]\n"  # read on empty: ROE
            "    roe = m[%(ST)d]\n"
            "    m[%(ST)d] = 0xff\n"
            "    clear = m[%(ST)d]\n"
            "    m[%(ISER)d] = 1 << 15\n"  # IRQ back on: core 1's next word is taken by it
            "    def g():\n"
            "        m[%(WR)d] = 7\n"
            "        lock.release()\n"
            "    _thread.start_new_thread(g, ())\n"
            "    lock.acquire()\n"
            "    time.sleep_ms(1)\n"
            "    print(st1, st0, words, empty, roe, clear, m[%(ST)d])\n"
            "run()\n" % dict(WR=FIFO_WR, RD=FIFO_RD, ST=FIFO_ST, ISER=NVIC_ISER, ICER=NVIC_ICER))
    st1, rest = out.split("]", 1)
    st1 = eval(st1 + "]")
    st0, rest = rest.split("[", 1)
    words, rest = rest.split("]", 1)
    empty, roe, clear, after_irq = (int(x) for x in rest.split())
    VLD, RDY, WOF, ROE = 1, 2, 4, 8
    # core 1's view: RDY while there is room, none after the 8th word, WOF on the 9th
    assert [s & RDY for s in st1[:7]] == [RDY] * 7 and st1[7] & RDY == 0
    assert st1[8] & WOF and st1[9] & WOF == 0
    assert int(st0) & VLD  # core 0's view: words waiting
    assert [int(w) for w in words.split(",")] == list(range(100, 108))  # the 9th was dropped
    assert empty & VLD == 0 and empty & RDY and roe & ROE and clear & ROE == 0
    assert after_irq & VLD == 0  # SIO_IRQ_PROC0 went to core 0: its handler drained it


def test_dual_core_patch_divider_and_interpolator_per_core():
    # Each core has its own hardware divider (compiled code divides with it on both
    # cores; the SDK saves its state only against interrupts of the same core) and its
    # own interpolators. Operands written on core 1, then others on core 0: core 1 still
    # reads its own quotient.
    out, _ = _on_stock_chip(
            "import _thread, machine\n"
            "m = machine.mem32\n"
            "def run():\n"
            "    a, b, c = (_thread.allocate_lock() for i in range(3))\n"
            "    for k in (a, b, c):\n"
            "        k.acquire()\n"
            "    r = []\n"
            "    def f():\n"
            "        m[%(DIVIDEND)d] = 1000\n"
            "        m[%(DIVISOR)d] = 7\n"
            "        m[%(ACCUM0)d] = 5\n"
            "        a.release()\n"
            "        b.acquire()\n"
            "        r.extend((m[%(REMAINDER)d], m[%(QUOTIENT)d], m[%(ACCUM0)d]))\n"
            "        c.release()\n"
            "    _thread.start_new_thread(f, ())\n"
            "    a.acquire()\n"
            "    m[%(DIVIDEND)d] = 77\n"
            "    m[%(DIVISOR)d] = 10\n"
            "    m[%(ACCUM0)d] = 9\n"
            "    b.release()\n"
            "    c.acquire()\n"
            "    print(m[%(REMAINDER)d], m[%(QUOTIENT)d], m[%(ACCUM0)d], *r)\n"
            "run()\n" % dict(DIVIDEND=SIO + 0x60, DIVISOR=SIO + 0x64, QUOTIENT=SIO + 0x70,
                             REMAINDER=SIO + 0x74, ACCUM0=SIO + 0x80))
    assert out.split() == ["7", "7", "9", "6", "142", "5"]


def test_dual_core_patch_flash_writes_lock_core_1_out():
    # A littlefs write on core 0 while core 1 runs Python: MicroPython's flash functions
    # pause core 1 first (multicore_lockout over the FIFO, core 1's SIO IRQ, WFE/SEV).
    with Chip() as chip:
        chip.boot()
        chip.exec(
            "import _thread, time\n"
            "n = [0, 0]\n"
            "def f(n):\n"  # locals only: the REPL's next line adds globals
            "    while n[1] == 0:\n"
            "        n[0] += 1\n"
            "_thread.start_new_thread(f, (n,))\n"
            "time.sleep_ms(5)\n")
        before = chip.status()
        out = chip.exec(
            "def run():\n"
            "    a = n[0]\n"
            "    for i in range(4):\n"
            "        with open('/f%d' % i, 'w') as fh:\n"
            "            fh.write(str(i) * 3000)\n"
            "    ok = [open('/f%d' % i).read() == str(i) * 3000 for i in range(4)]\n"
            "    b = n[0]\n"
            "    time.sleep_ms(5)\n"
            "    print(all(ok), a > 0, b > a, n[0] > b)\n"
            "    n[1] = 1\n"
            "run()\n")
        after = chip.status()
        assert out.split() == ["True"] * 4  # core 1 ran before, during and after the writes
        assert after["flash"]["programmed"] > before["flash"]["programmed"]
        sent = [a - b for a, b in zip(after["cores"]["fifo_words"], before["cores"]["fifo_words"])]
        assert sent[0] >= 1 and sent[0] == sent[1]  # lockout requests, each echoed by core 1


def test_without_the_dual_core_patch_start_new_thread_hangs():
    # One core (rp2040js as shipped): multicore_launch_core1 polls a FIFO that is not
    # there (reads of FIFO_ST/FIFO_RD, SIO offsets 0x50/0x58) and never gets core 1's
    # answer. Bounded by emulated time: 200 ms (the patched launch takes < 1 ms).
    with Chip(no_patch=("dual-core",), stderr=subprocess.DEVNULL) as chip:
        chip.boot()
        start = chip.exec_start("import _thread\n_thread.start_new_thread(print, ('core1',))\n"
                                "print('started')\n")
        t0 = chip.now()
        assert chip.sleep(200, timeout=600) - t0 >= 200 * MS
        assert b"started" not in chip.out[start:] and b"core1" not in chip.out[start:]
        st = chip.status()
        assert "held" not in st["cores"]  # one core
        assert st["warnings"].get("Read from invalid SIO address: 50", 0) > 1000


def test_gdb_server_answers_at_the_reset_vector():
    """`node emu/chip.mjs --gdb PORT` (docs/emulator.md) serves gdb's remote protocol: the
    chip waits halted, '?' answers a stop, 'g' reads core 0's registers."""
    import json
    import socket
    import time
    a, b = socket.socketpair()
    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    emu = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "emu")
    p = subprocess.Popen(["node", "chip.mjs", "--gdb", str(port), "--cdc-fd", str(b.fileno())],
                         cwd=emu, pass_fds=(b.fileno(),), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        evs = []
        while not evs or evs[-1].get("ev") != "gdb":
            line = p.stdout.readline()
            assert line, "chip.mjs ended: %s" % p.stderr.read()[-500:]
            evs.append(json.loads(line))
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        got = b""
        s.sendall(b"$?#3f")
        end = time.monotonic() + 30
        while b"#" not in got.lstrip(b"+") and time.monotonic() < end:
            got += s.recv(100)
        assert b"$S05" in got, got  # stopped (SIGTRAP), waiting for "continue"
        s.close()
    finally:
        p.kill()
        p.wait()
        a.close()
        b.close()
