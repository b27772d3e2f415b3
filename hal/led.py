# Status LED: three GPIOs (on/off per colour) or one WS2812 via neopixel.
# show(rgb) takes 0xRRGGBB and writes only on change.


class Led:
    def __init__(self, r=None, g=None, b=None, np=None, active=1):
        self._pins = (r, g, b)
        self._np = np  # neopixel.NeoPixel with >= 1 pixel, or None
        self._act = active
        self.rgb = -1
        self.show(0)

    def show(self, rgb):
        if rgb == self.rgb:
            return
        self.rgb = rgb
        r = (rgb >> 16) & 0xFF
        g = (rgb >> 8) & 0xFF
        b = rgb & 0xFF
        if self._np is not None:
            self._np[0] = (r, g, b)
            self._np.write()
            return
        for pin, c in zip(self._pins, (r, g, b)):
            if pin is not None:
                pin.value(self._act if c >= 128 else 1 - self._act)
