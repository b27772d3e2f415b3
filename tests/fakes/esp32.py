# Fake `esp32` module: Partition with two OTA app partitions in RAM (hal/esp32_image.py tests).
_BLOCK = 4096
log = []


class Partition:
    RUNNING = 1
    BOOT = 0
    blocks = 8
    store = {}
    boot = "ota_0"
    valid_calls = 0
    rollback_enabled = True

    def __init__(self, which):
        self.label = Partition.boot if which in (Partition.RUNNING, Partition.BOOT) else which

    def get_next_update(self):
        return Partition("ota_1" if self.label == "ota_0" else "ota_0")

    def ioctl(self, op, arg):
        if op == 4:
            return Partition.blocks
        return None

    def writeblocks(self, n, buf):
        assert len(buf) == _BLOCK and 0 <= n < Partition.blocks
        Partition.store[(self.label, n)] = bytes(buf)
        log.append(("write", self.label, n))

    def readblocks(self, n, buf):
        buf[:] = Partition.store.get((self.label, n), b"\xff" * _BLOCK)

    def set_boot(self):
        Partition.boot = self.label
        log.append(("set_boot", self.label))

    @classmethod
    def mark_app_valid_cancel_rollback(cls):
        if not cls.rollback_enabled:
            raise OSError(-261)
        cls.valid_calls += 1
