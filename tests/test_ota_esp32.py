"""hal/esp32_image.py (the MicroPython image's own A/B update on ESP32) against a fake
`esp32` module: what the port API is asked to do. A real ESP32 and its bootloader's
rollback are not tested here (docs/ota.md "ESP32")."""
import hashlib

IMAGE = bytes((i * 31 + 7) % 251 for i in range(4096 * 2 + 1000))

PRELUDE = """
import esp32
esp32.Partition.store.clear(); esp32.log.clear(); esp32.Partition.boot = 'ota_0'
esp32.Partition.valid_calls = 0; esp32.Partition.rollback_enabled = True
from hal.esp32_image import Esp32Image
import binascii
img_bytes = binascii.unhexlify(data[0])
"""


def test_image_written_verified_and_booted(mp_fakes):
    r = mp_fakes.run(PRELUDE + """
img = Esp32Image()
img.begin(len(img_bytes))
for i in range(0, len(img_bytes), 700):
    img.write(img_bytes[i:i + 700])
img.end(data[1])
result = [esp32.Partition.boot, [x for x in esp32.log if x[0] == 'write'], img.mark_valid(),
          esp32.Partition.valid_calls]
""", [IMAGE.hex(), hashlib.sha256(IMAGE).hexdigest()])
    assert r[0] == "ota_1"
    assert r[1] == [["write", "ota_1", 0], ["write", "ota_1", 1], ["write", "ota_1", 2]]
    assert r[2] is True and r[3] == 1


def test_bad_image_is_not_booted(mp_fakes):
    r = mp_fakes.run(PRELUDE + """
out = []
img = Esp32Image()
try:
    img.begin(4096 * 9)
except ValueError as ex:
    out.append(str(ex))
img.begin(len(img_bytes))
img.write(img_bytes)
try:
    img.end('0' * 64)
except ValueError as ex:
    out.append(str(ex))
img.begin(len(img_bytes))
img.write(img_bytes[:100])
try:
    img.end(data[1])
except ValueError as ex:
    out.append(str(ex))
esp32.Partition.rollback_enabled = False
out.append(img.mark_valid())
out.append(esp32.Partition.boot)
result = out
""", [IMAGE.hex(), hashlib.sha256(IMAGE).hexdigest()])
    assert "does not fit" in r[0]
    assert "expected " + "0" * 64 in r[1]
    assert "ended after 100" in r[2]
    assert r[3] is False and r[4] == "ota_0"


def test_esp32_board_gets_the_image_updater_and_pico_does_not(mp_fakes):
    code = """
import boards
out = []
for name in ('esp32_devkit', 'rp2040_pico_w'):
    hw = boards.build(boards.load(name))
    out.append(type(hw.image).__name__ if hw.image is not None else None)
result = out
"""
    assert mp_fakes.run(code) == ["Esp32Image", None]
