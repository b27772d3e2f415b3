# A simulated Eastron SDM meter for the fake UART (tests only). Answers Modbus
# RTU function 0x04 from a dict of float registers. Its CRC is table-driven,
# written apart from hal/modbus.py's bitwise one.
#   mode: "ok", "silent", "crc" (last byte flipped), "short" (frame cut),
#         "exception" (illegal data address), "wrong_addr", "raw" (send .raw)
import struct

_T = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0xA001 if _c & 1 else _c >> 1
    _T.append(_c)


def crc(data):
    c = 0xFFFF
    for b in data:
        c = (c >> 8) ^ _T[(c ^ b) & 0xFF]
    return bytes((c & 0xFF, c >> 8))


class Sdm:
    def __init__(self, addr=1, values=None):
        self.addr = addr
        self.regs = dict(values or {})  # register address -> float (2 registers each)
        self.mode = "ok"
        self.raw = b""
        self.requests = []
        self.fail_first = 0  # answer the next n requests with fail_mode, then with mode
        self.fail_mode = "crc"

    def reply(self, req):
        self.requests.append(bytes(req))
        mode = self.mode
        if self.fail_first:
            self.fail_first -= 1
            mode = self.fail_mode
        if mode == "raw":
            return self.raw
        if len(req) != 8 or crc(req[:6]) != req[6:] or req[0] != self.addr or mode == "silent":
            return None
        reg = (req[2] << 8) | req[3]
        n = (req[4] << 8) | req[5]
        if mode == "exception" or req[1] != 4:
            body = bytes((self.addr, req[1] | 0x80, 2))
            return body + crc(body)
        data = bytearray()
        for r in range(reg, reg + n, 2):
            data += struct.pack(">f", self.regs.get(r, 0.0))
        body = bytes((0x09 if mode == "wrong_addr" else self.addr, 4, len(data))) + data
        out = body + crc(body)
        if mode == "crc":
            out = out[:-1] + bytes((out[-1] ^ 0x5A,))
        if mode == "short":
            out = out[:len(out) // 2]
        return out
