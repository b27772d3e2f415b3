#!/usr/bin/env bash
# Build the 32-bit MicroPython unix port (v1.28.0, the release of the committed chip image)
# that models the ESP32/RP2040 heap: 4-byte pointers and objects, 16-byte GC blocks and
# 31-bit small ints, where the PyPI unix port is 64-bit (docs/design-notes.md, Memory).
#
# CI cannot fetch, so the binary this writes is committed (tools/mp32/) with manifest.json
# (SHA-256, source commit, build command) and checked by tests/test_mp32_image.py. Run this
# only to rebuild it.
#
#   tools/mp32/build.sh [MIRRORS]   MIRRORS: dir of bare git mirrors named owner+name/repo
#                                   (default /work/.mirror)
# Needs: gcc-multilib, python3 (Debian packages). Linked statically: running it needs no
# i386 libraries. Measured: ~2.5 min on 2 cores. Reproducible: the same SHA-256 again when
# built in the same MP32_BUILD_DIR (the ELF build-id hashes the build paths in the debug
# info; the code is the same from any dir).
set -euo pipefail

MIRRORS=${1:-/work/.mirror}
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${MP32_OUT:-$HERE}
WORK=${MP32_BUILD_DIR:-/tmp/wallbox-mp32-build}

# Pinned sources: MicroPython v1.28.0 and the submodule commits the unix port uses here
# (the same as tools/rp2/build_image.sh's).
MP_URL=micropython+micropython;          MP_REV=e0e9fbb17ed6fd06bb76e266ae554784c9c80804
MBED_URL=Mbed-TLS+mbedtls;               MBED_REV=107ea89daaefb9867ea9121002fbbdf926780e98
MPLIB_URL=micropython+micropython-lib;   MPLIB_REV=8380c7bb8f9e5e5260e9539156742925e00366b2
BIN=micropython-v1.28.0-unix-x86

# shellcheck source=../mirror_checkout.sh
. "$HERE/../mirror_checkout.sh"

rm -rf "$WORK"; mkdir -p "$WORK"
checkout $MP_URL $MP_REV "$WORK/mp"
checkout $MBED_URL $MBED_REV "$WORK/mp/lib/mbedtls"
checkout $MPLIB_URL $MPLIB_REV "$WORK/mp/lib/micropython-lib"
cd "$WORK/mp"
tag_release . v1.28.0
export SOURCE_DATE_EPOCH=$(git -C "$MIRRORS/$MP_URL/repo" log -1 --format=%ct $MP_REV)

# The standard variant as the PyPI unix port has it, less ffi (needs an i386 libffi) and
# btree (berkeley-db is not mirrored; the firmware does not use it). -static: CI needs no
# i386 runtime.
BUILD_CMD="make -C ports/unix MICROPY_FORCE_32BIT=1 MICROPY_PY_FFI=0 MICROPY_PY_BTREE=0 \
LDFLAGS_EXTRA=-static -j2"
nice make -C mpy-cross -j2 >/dev/null
nice $BUILD_CMD >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; exit 1; }
B=ports/unix/build-standard/micropython
strip -o "$OUT/$BIN" $B
chmod 755 "$OUT/$BIN"

python3 - "$OUT" "$BIN" "$BUILD_CMD" "$(gcc --version | head -1)" <<PY
import hashlib, json, os, sys
out, binf, cmd, gcc = sys.argv[1:5]
p = os.path.join(out, binf)
json.dump({
    "port": "unix", "variant": "standard", "arch": "x86 (32-bit, -m32)",
    "micropython": "v1.28.0",
    "binary": binf, "binary_sha256": hashlib.sha256(open(p, "rb").read()).hexdigest(),
    "binary_bytes": os.path.getsize(p),
    "sources": {
        "micropython/micropython": "$MP_REV",
        "Mbed-TLS/mbedtls": "$MBED_REV",
        "micropython/micropython-lib": "$MPLIB_REV",
    },
    "build_command": cmd, "toolchain": gcc,
    "env": "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH",
    "notes": "statically linked, stripped; ffi and btree off (an i386 libffi / berkeley-db "
             "the firmware does not use); rebuild: tools/mp32/build.sh (needs the git mirrors)",
}, open(os.path.join(out, "manifest.json"), "w"), indent=2)
open(os.path.join(out, "manifest.json"), "a").write("\n")
PY
echo "binary: $OUT/$BIN"; cat "$OUT/manifest.json"
