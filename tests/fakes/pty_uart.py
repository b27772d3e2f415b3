# A machine.UART look-alike over a tty path (a pty in tests): write(), any(),
# readinto(). Lets hal/modbus.py talk to a real peer (pymodbus) from the unix port.
import select


class PtyUart:
    def __init__(self, path):
        self._f = open(path, "r+b")
        self._p = select.poll()
        self._p.register(self._f, select.POLLIN)

    def write(self, buf):
        n = self._f.write(buf)
        return n

    def any(self):
        return 1 if self._p.poll(0) else 0

    def read(self, n=-1):
        out = bytearray()
        while self.any() and (n < 0 or len(out) < n):
            out += self._f.read(1)
        return bytes(out) if out else None

    def readinto(self, buf):
        k = 0
        while k < len(buf) and self.any():
            buf[k] = self._f.read(1)[0]
            k += 1
        return k or None

    def close(self):
        self._f.close()
