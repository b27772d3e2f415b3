# Frozen-code manifest for a board build: firmware/, hal/ and boards/ are compiled into the
# MicroPython firmware image, so their bytecode, constants and qstrs live in flash and the
# GC heap is left for data. This is how the firmware fits an ESP32 without PSRAM (~96 KB
# heap): the unix port loads every imported module into its heap (~95 KB of bytecode);
# see bench/results.json "heap96k" (tools/bench_runtime.py).
#
# Build (MicroPython source tree, ESP-IDF set up; the board's own manifest is included):
#   cd micropython/ports/esp32
#   make BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/wallbox/manifest.py
#   (RP2040: cd ports/rp2 && make BOARD=RPI_PICO_W FROZEN_MANIFEST=/path/to/wallbox/manifest.py)
# Then flash the image and copy nothing but the store: main.py is frozen too (a main.py on
# the filesystem would take precedence over the frozen one; remove it).
#
# Without a custom build, a ROMFS partition (MicroPython >= 1.25) gives most of the gain:
#   .venv/bin/python tools/romfs.py -o build/wallbox.romfs
#   mpremote romfs deploy build/wallbox.romfs      (bytecode runs in place from flash)

include("$(PORT_DIR)/boards/manifest.py")  # the port's own frozen modules (asyncio, ...)

# Paths are relative to this file. opt=3: no line numbers or asserts in the frozen bytecode
# (smaller image; tracebacks show no line numbers). hal/sim.py, hal/simctl.py and
# boards/sim.py come along (~20 KB of flash) but are never imported on a board.
package("firmware", opt=3)
package("hal", opt=3)
package("boards", opt=3)
module("loader.py", opt=3)  # the A/B boot loader (docs/ota.md)
module("main.py", opt=3)
