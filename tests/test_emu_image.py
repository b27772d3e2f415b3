"""The committed RP2040 chip image and bootrom are the ones their manifests name
(tools/rp2/build_image.sh builds the image from pinned commits; CI cannot fetch, so
the bytes are committed and checked here)."""
import hashlib
import json
import os
import re
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE_DIR = os.path.join(ROOT, "tools", "rp2", "image")
BOOTROM = os.path.join(ROOT, "emu", "bootrom", "rp2040-bootrom-b1.bin")

UF2_MAGIC = (0x0A324655, 0x9E5D5157, 0x0AB16F30)
RP2040_FAMILY = 0xE48BFF56


def _manifest():
    return json.load(open(os.path.join(IMAGE_DIR, "manifest.json")))


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def uf2_payload(data):
    """The flash bytes a UF2 file carries, from its lowest target address."""
    blocks = []
    for off in range(0, len(data), 512):
        m0, m1, flags, addr, size, _no, _n, fam = struct.unpack_from("<8I", data, off)
        assert (m0, m1) == UF2_MAGIC[:2]
        assert struct.unpack_from("<I", data, off + 508)[0] == UF2_MAGIC[2]
        assert flags & 0x2000 and fam == RP2040_FAMILY, "not an RP2040 UF2 block"
        blocks.append((addr, data[off + 32:off + 32 + size]))
    base = min(a for a, _ in blocks)
    out = bytearray(max(a + len(b) for a, b in blocks) - base)
    for a, b in blocks:
        out[a - base:a - base + len(b)] = b
    return base, bytes(out)


def test_image_sha_matches_manifest():
    m = _manifest()
    data = open(os.path.join(IMAGE_DIR, m["image"]), "rb").read()
    assert len(data) == m["image_bytes"]
    assert _sha(data) == m["image_sha256"]


def test_image_payload_is_the_built_binary():
    m = _manifest()
    base, payload = uf2_payload(open(os.path.join(IMAGE_DIR, m["image"]), "rb").read())
    assert base == int(m["load_address"], 16)
    # uf2conv pads the last 256-byte block: the build's firmware.bin is a prefix.
    body = payload[:m["payload_bytes"]]
    assert _sha(body) == m["payload_sha256"]
    assert b"MicroPython v1.28.0" in body and b"Raspberry Pi Pico" in body


def test_manifest_pins_every_source_and_the_build():
    m = _manifest()
    for repo in ("micropython/micropython", "raspberrypi/pico-sdk", "hathach/tinyusb",
                 "Mbed-TLS/mbedtls", "micropython/micropython-lib"):
        assert re.fullmatch("[0-9a-f]{40}", m["sources"][repo]), repo
    assert "BOARD=RPI_PICO" in m["build_command"]
    script = open(os.path.join(ROOT, "tools", "rp2", "build_image.sh")).read()
    for rev in m["sources"].values():
        assert rev in script, "build_image.sh and the manifest disagree on " + rev


def test_bootrom_matches_its_provenance():
    data = open(BOOTROM, "rb").read()
    assert len(data) == 16 * 1024
    prov = open(os.path.join(os.path.dirname(BOOTROM), "PROVENANCE.md")).read()
    assert _sha(data) in prov
    # Word 0 is the initial stack pointer, word 1 the reset vector (into the ROM).
    sp, reset = struct.unpack_from("<2I", data)
    assert sp == 0x20041F00 and reset < 0x4000
