#!/usr/bin/env bash
# Build the stock MicroPython RPI_PICO image from pinned source commits.
#
# CI cannot fetch, so the image this writes is committed (tools/rp2/image/) with
# manifest.json (SHA-256, source commits, build command) and checked by
# tests/test_emu_image.py. Run this only to rebuild it.
#
#   tools/rp2/build_image.sh [MIRRORS]   MIRRORS: dir of bare git mirrors named
#                                       owner+name/repo (default /work/.mirror)
# Needs: gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib
# cmake, python3 (Debian packages). Measured: ~1 min on 2 cores.
set -euo pipefail

MIRRORS=${1:-/work/.mirror}
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${RP2_OUT:-$HERE/image}
WORK=${RP2_BUILD_DIR:-/tmp/wallbox-rp2-build}

# Pinned sources: MicroPython v1.28.0 and its submodule commits (the only four
# the RPI_PICO board needs; cyw43-driver/lwip/btstack are for the Pico W).
MP_URL=micropython+micropython;          MP_REV=e0e9fbb17ed6fd06bb76e266ae554784c9c80804
SDK_URL=raspberrypi+pico-sdk;            SDK_REV=a1438dff1d38bd9c65dbd693f0e5db4b9ae91779
TUSB_URL=hathach+tinyusb;                TUSB_REV=aa0fc2e08f1c2dd6f026a431e8989357fbb4c5bf
MBED_URL=Mbed-TLS+mbedtls;               MBED_REV=107ea89daaefb9867ea9121002fbbdf926780e98
MPLIB_URL=micropython+micropython-lib;   MPLIB_REV=8380c7bb8f9e5e5260e9539156742925e00366b2
BOARD=RPI_PICO

# shellcheck source=../mirror_checkout.sh
. "$HERE/../mirror_checkout.sh"

rm -rf "$WORK"; mkdir -p "$WORK"
checkout $MP_URL $MP_REV "$WORK/mp"
checkout $SDK_URL $SDK_REV "$WORK/mp/lib/pico-sdk"
checkout $TUSB_URL $TUSB_REV "$WORK/mp/lib/tinyusb"
checkout $MBED_URL $MBED_REV "$WORK/mp/lib/mbedtls"
checkout $MPLIB_URL $MPLIB_REV "$WORK/mp/lib/micropython-lib"
# pico-sdk's own tinyusb submodule: use MicroPython's pinned tinyusb.
rm -rf "$WORK/mp/lib/pico-sdk/lib/tinyusb"
ln -s ../../tinyusb "$WORK/mp/lib/pico-sdk/lib/tinyusb"

cd "$WORK/mp"
tag_release . v1.28.0

# Reproducible banner date: the release commit date, not today.
export SOURCE_DATE_EPOCH=$(git -C "$MIRRORS/$MP_URL/repo" log -1 --format=%ct $MP_REV)
BUILD_CMD="make -C ports/rp2 BOARD=$BOARD -j2 CMAKE_ARGS=-DPICO_NO_PICOTOOL=1"
nice make -C mpy-cross -j2 >/dev/null
nice $BUILD_CMD >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; exit 1; }

B=ports/rp2/build-$BOARD
UF2=micropython-v1.28.0-RPI_PICO.uf2
mkdir -p "$OUT"
python3 tools/uf2conv.py -c -b 0x10000000 -f RP2040 -o "$OUT/$UF2" $B/firmware.bin >/dev/null

# Only the .uf2 is committed (what a maker flashes); the .bin it carries is
# recorded too, so the harness and the test can check the payload.
python3 - "$OUT" "$UF2" $B/firmware.bin "$BUILD_CMD" "$(arm-none-eabi-gcc --version | head -1)" <<PY
import hashlib, json, os, sys
out, uf2, binf, cmd, gcc = sys.argv[1:6]
def sha(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()
json.dump({
    "board": "$BOARD", "micropython": "v1.28.0",
    "image": uf2, "image_sha256": sha(os.path.join(out, uf2)),
    "image_bytes": os.path.getsize(os.path.join(out, uf2)),
    "payload_sha256": sha(binf), "payload_bytes": os.path.getsize(binf),
    "load_address": "0x10000000",
    "sources": {
        "micropython/micropython": "$MP_REV",
        "raspberrypi/pico-sdk": "$SDK_REV",
        "hathach/tinyusb": "$TUSB_REV",
        "Mbed-TLS/mbedtls": "$MBED_REV",
        "micropython/micropython-lib": "$MPLIB_REV",
    },
    "build_command": cmd, "toolchain": gcc,
    "env": "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH",
    "notes": "pico-sdk lib/tinyusb replaced by micropython's lib/tinyusb; "
             "uf2 = micropython tools/uf2conv.py -c -b 0x10000000 -f RP2040 firmware.bin; "
             "rebuild: tools/rp2/build_image.sh (needs the git mirrors)",
}, open(os.path.join(out, "manifest.json"), "w"), indent=2)
open(os.path.join(out, "manifest.json"), "a").write("\n")
PY
echo "image: $OUT"; cat "$OUT/manifest.json"
