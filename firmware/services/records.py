# The record format on flash (docs/persistence.md): a record file is one header line
# 'WBR1 <ver> <len> <crc32>' and a compact JSON body, written atomically by the store.
import json

try:
    from binascii import crc32
except ImportError:  # port built without it: slow but small records only
    def crc32(data, crc=0):
        crc ^= 0xFFFFFFFF
        for b in data:
            crc ^= b
            for _ in range(8):
                crc = (crc >> 1) ^ (0xEDB88320 & -(crc & 1))
        return crc ^ 0xFFFFFFFF

_MAGIC = "WBR1"
_SEP = (",", ":")  # compact: littlefs inlines small files (<= its cache size, 128 B
# by default) into the directory log, which saves a block erase per commit
def encode(obj, ver):
    """Record bytes: header line 'WBR1 <ver> <len> <crc32>' + JSON body."""
    body = json.dumps(obj, separators=_SEP).encode()
    head = "%s %d %d %08x\n" % (_MAGIC, ver, len(body), crc32(body) & 0xFFFFFFFF)
    return head.encode() + body


def decode(data):
    """(obj, ver) from record bytes; ValueError names what is wrong."""
    nl = data.find(b"\n")
    if nl < 0:
        raise ValueError("truncated")
    head = data[:nl].split()
    if len(head) != 4 or head[0] != _MAGIC.encode():
        raise ValueError("bad header")
    try:
        ver, n, crc = int(head[1]), int(head[2]), int(head[3], 16)
    except ValueError:
        raise ValueError("bad header")
    body = data[nl + 1:]
    if len(body) != n:
        raise ValueError("truncated" if len(body) < n else "bad length")
    if crc32(body) & 0xFFFFFFFF != crc:
        raise ValueError("bad checksum")
    return json.loads(body), ver
