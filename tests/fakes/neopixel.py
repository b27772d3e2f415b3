# Fake `neopixel`: NeoPixel(pin, n) with item assignment and write() records.
class NeoPixel:
    def __init__(self, pin, n, bpp=3, timing=1):
        self.pin = pin
        self.n = n
        self.buf = [(0, 0, 0)] * n
        self.writes = []

    def __setitem__(self, i, v):
        self.buf[i] = tuple(v)

    def __getitem__(self, i):
        return self.buf[i]

    def __len__(self):
        return self.n

    def fill(self, v):
        for i in range(self.n):
            self.buf[i] = tuple(v)

    def write(self):
        self.writes.append(list(self.buf))
