# The MicroPython image's own A/B update on ESP32 (ESP-IDF "ota_0"/"ota_1" app partitions,
# exposed by MicroPython as esp32.Partition) behind a small interface: docs/ota.md "ESP32".
# The app update (A/B slots of .mpy files) does not need this; this is for replacing the
# MicroPython firmware image itself. Untested on hardware: tests use tests/fakes/esp32.py.
#   img = Esp32Image(); img.begin(size); img.write(chunk)...; img.end(sha256_hex)
#   -> the next boot runs the new image; once the app there is healthy: img.mark_valid()
import binascii
import hashlib
from micropython import const

import esp32

BLOCK = const(4096)  # esp32.Partition block size


class Esp32Image:
    def __init__(self):
        P = esp32.Partition
        self.running = P(P.RUNNING)
        self.target = None
        self._buf = None
        self.size = 0
        self._fill = 0
        self._block = 0
        self._n = 0

    def begin(self, size):
        """Start writing an image of `size` bytes into the next OTA partition."""
        nxt = self.running.get_next_update()  # OSError: the image has no OTA partitions
        cap = nxt.ioctl(4, 0) * BLOCK  # block count
        if size <= 0 or size > cap:
            raise ValueError("image of %d bytes does not fit the %d-byte partition" % (size, cap))
        self.target = nxt
        self._buf = bytearray(BLOCK)
        self.size = size
        self._fill = 0
        self._block = 0
        self._n = 0

    def write(self, data):
        """Append image bytes; a full 4 KB block goes to flash (writeblocks erases it first)."""
        mv = memoryview(data)
        i = 0
        while i < len(mv):
            take = BLOCK - self._fill
            if take > len(mv) - i:
                take = len(mv) - i
            if self._n + take > self.size:
                raise ValueError("more image bytes than announced (%d)" % self.size)
            self._buf[self._fill:self._fill + take] = mv[i:i + take]
            self._fill += take
            self._n += take
            i += take
            if self._fill == BLOCK:
                self._flush()

    def _flush(self):
        if self._fill == 0:
            return
        for j in range(self._fill, BLOCK):
            self._buf[j] = 0xFF  # erased flash
        self.target.writeblocks(self._block, self._buf)
        self._block += 1
        self._fill = 0

    def end(self, sha256_hex):
        """Check what flash holds against the expected SHA-256, then boot it next time."""
        if self._n != self.size:
            raise ValueError("image ended after %d of %d bytes" % (self._n, self.size))
        self._flush()
        h = hashlib.sha256()
        left = self.size
        for blk in range(self._block):
            self.target.readblocks(blk, self._buf)
            n = BLOCK if left > BLOCK else left
            h.update(memoryview(self._buf)[:n])
            left -= n
        got = binascii.hexlify(h.digest()).decode()
        if got != sha256_hex:
            raise ValueError("image read back with SHA-256 %s, expected %s" % (got, sha256_hex))
        self.target.set_boot()
        self._buf = None

    def mark_valid(self):
        """Confirm the running image (ESP-IDF app rollback): True if it was needed and done."""
        try:
            esp32.Partition.mark_app_valid_cancel_rollback()
            return True
        except OSError:  # the image was built without app rollback, or is already valid
            return False
