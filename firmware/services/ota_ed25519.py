# Ed25519 signature verification (RFC 8032 §5.1.7) in plain MicroPython big ints, in small
# steps: verify_steps() is a generator the caller drives one step at a time, awaiting between
# steps, so a verification never holds the event loop for long (docs/ota.md, bench `ota`).
# SHA-512 (FIPS 180-4) is here too: MicroPython's hashlib has only sha1/sha256.
# Verification only: the device never holds a private key.
_P = (1 << 255) - 19
_L = (1 << 252) + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_D2 = 2 * _D % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
_BY = 4 * pow(5, _P - 2, _P) % _P
_M64 = (1 << 64) - 1

# SHA-512 constants (FIPS 180-4 §4.2.3, §5.3.5) as hex text: bytes in the bytecode, parsed
# into ints on first use only (no heap until an update runs).
_K_HEX = (
    "428a2f98d728ae227137449123ef65cdb5c0fbcfec4d3b2fe9b5dba58189dbbc"
    "3956c25bf348b53859f111f1b605d019923f82a4af194f9bab1c5ed5da6d8118"
    "d807aa98a303024212835b0145706fbe243185be4ee4b28c550c7dc3d5ffb4e2"
    "72be5d74f27b896f80deb1fe3b1696b19bdc06a725c71235c19bf174cf692694"
    "e49b69c19ef14ad2efbe4786384f25e30fc19dc68b8cd5b5240ca1cc77ac9c65"
    "2de92c6f592b02754a7484aa6ea6e4835cb0a9dcbd41fbd476f988da831153b5"
    "983e5152ee66dfaba831c66d2db43210b00327c898fb213fbf597fc7beef0ee4"
    "c6e00bf33da88fc2d5a79147930aa72506ca6351e003826f142929670a0e6e70"
    "27b70a8546d22ffc2e1b21385c26c9264d2c6dfc5ac42aed53380d139d95b3df"
    "650a73548baf63de766a0abb3c77b2a881c2c92e47edaee692722c851482353b"
    "a2bfe8a14cf10364a81a664bbc423001c24b8b70d0f89791c76c51a30654be30"
    "d192e819d6ef5218d69906245565a910f40e35855771202a106aa07032bbd1b8"
    "19a4c116b8d2d0c81e376c085141ab532748774cdf8eeb9934b0bcb5e19b48a8"
    "391c0cb3c5c95a634ed8aa4ae3418acb5b9cca4f7763e373682e6ff3d6b2b8a3"
    "748f82ee5defb2fc78a5636f43172f6084c87814a1f0ab728cc702081a6439ec"
    "90befffa23631e28a4506cebde82bde9bef9a3f7b2c67915c67178f2e372532b"
    "ca273eceea26619cd186b8c721c0c207eada7dd6cde0eb1ef57d4f7fee6ed178"
    "06f067aa72176fba0a637dc5a2c898a6113f9804bef90dae1b710b35131c471b"
    "28db77f523047d8432caab7b40c724933c9ebe0a15c9bebc431d67c49c100d4c"
    "4cc5d4becb3e42b6597f299cfc657e2a5fcb6fab3ad6faec6c44198c4a475817"
)
_H_HEX = (
    "6a09e667f3bcc908bb67ae8584caa73b3c6ef372fe94f82ba54ff53a5f1d36f1"
    "510e527fade682d19b05688c2b3e6c1f1f83d9abfb41bd6b5be0cd19137e2179"
)
_K512 = None


def _k512():
    global _K512
    if _K512 is None:
        import binascii
        kb = binascii.unhexlify(_K_HEX)
        _K512 = [int.from_bytes(kb[i:i + 8], "big") for i in range(0, 640, 8)]
    return _K512


def _h512():
    import binascii
    hb = binascii.unhexlify(_H_HEX)
    return [int.from_bytes(hb[i:i + 8], "big") for i in range(0, 64, 8)]


def _rotr(x, n):
    return ((x >> n) | (x << (64 - n))) & _M64


def _sha512_block(h, blk, k):
    w = [int.from_bytes(blk[i:i + 8], "big") for i in range(0, 128, 8)]
    for i in range(16, 80):
        a = w[i - 15]
        b = w[i - 2]
        s0 = _rotr(a, 1) ^ _rotr(a, 8) ^ (a >> 7)
        s1 = _rotr(b, 19) ^ _rotr(b, 61) ^ (b >> 6)
        w.append((w[i - 16] + s0 + w[i - 7] + s1) & _M64)
    a, b, c, d, e, f, g, hh = h
    for i in range(80):
        s1 = _rotr(e, 14) ^ _rotr(e, 18) ^ _rotr(e, 41)
        ch = (e & f) ^ (~e & _M64 & g)
        t1 = (hh + s1 + ch + k[i] + w[i]) & _M64
        s0 = _rotr(a, 28) ^ _rotr(a, 34) ^ _rotr(a, 39)
        maj = (a & b) ^ (a & c) ^ (b & c)
        t2 = (s0 + maj) & _M64
        hh = g
        g = f
        f = e
        e = (d + t1) & _M64
        d = c
        c = b
        b = a
        a = (t1 + t2) & _M64
    for i, v in enumerate((a, b, c, d, e, f, g, hh)):
        h[i] = (h[i] + v) & _M64


def sha512(data):
    """SHA-512 digest (64 bytes) of bytes `data` (short messages: a signature's R||A||M)."""
    k = _k512()
    h = _h512()
    n = len(data)
    pad = bytearray(data)
    pad.append(0x80)
    while len(pad) % 128 != 112:
        pad.append(0)
    pad.extend((n * 8).to_bytes(16, "big"))
    for i in range(0, len(pad), 128):
        _sha512_block(h, pad[i:i + 128], k)
    out = bytearray()
    for v in h:
        out.extend(v.to_bytes(8, "big"))
    return bytes(out)


# --- the curve (twisted Edwards, extended coordinates X, Y, Z, T; x = X/Z, y = Y/Z) ---

def _add(p1, p2):
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = t1 * _D2 * t2 % _P
    d = 2 * z1 * z2 % _P
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _double(p1):
    x1, y1, z1, _ = p1
    a = x1 * x1 % _P
    b = y1 * y1 % _P
    c = 2 * z1 * z1 % _P
    h = a + b
    e = h - (x1 + y1) * (x1 + y1) % _P
    g = a - b
    f = c + g
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _recover_x(y, sign):
    """x from y and the sign bit, or None when y is not on the curve (RFC 8032 §5.1.3)."""
    if y >= _P:
        return None
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P) % _P, (_P - 5) // 8, _P) % _P
    vx2 = v * x * x % _P
    if vx2 != u:
        if vx2 != (_P - u) % _P:
            return None
        x = x * _SQRT_M1 % _P
    if x == 0 and sign:
        return None
    if (x & 1) != sign:
        x = _P - x
    return x


def _decode(b):
    """Point from 32 bytes, or None."""
    if len(b) != 32:
        return None
    y = int.from_bytes(b, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % _P)


def _encode(pt):
    x, y, z, _ = pt
    zi = pow(z, _P - 2, _P)
    x = x * zi % _P
    y = y * zi % _P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _base():
    x = _recover_x(_BY, 0)
    return (x, _BY, 1, x * _BY % _P)


def verify_steps(pub, sig, msg, bits_per_step=16):
    """Generator: yields 0 while working (about bits_per_step doublings+adds per step), then
    1 if `sig` (64 bytes) is a valid Ed25519 signature of `msg` by `pub` (32 bytes), else -1."""
    if len(pub) != 32 or len(sig) != 64:
        yield -1
        return
    a = _decode(pub)
    yield 0
    r = _decode(sig[:32])
    s = int.from_bytes(sig[32:], "little")
    if a is None or r is None or s >= _L:
        yield -1
        return
    yield 0
    k = int.from_bytes(sha512(sig[:32] + pub + msg), "little") % _L
    yield 0
    # [s]B - [k]A by one double-and-add over both scalars (Straus-Shamir): compare with R
    b = _base()
    na = ((_P - a[0]) % _P, a[1], a[2], (_P - a[3]) % _P)
    both = _add(b, na)
    acc = (0, 1, 1, 0)  # neutral element
    for i in range(252, -1, -1):  # s, k < L < 2**253
        acc = _double(acc)
        bs = (s >> i) & 1
        bk = (k >> i) & 1
        if bs and bk:
            acc = _add(acc, both)
        elif bs:
            acc = _add(acc, b)
        elif bk:
            acc = _add(acc, na)
        if i % bits_per_step == 0:
            yield 0
    yield 1 if _encode(acc) == bytes(sig[:32]) else -1


def verify(pub, sig, msg):
    """Blocking form (host tests, tools): True if valid."""
    for r in verify_steps(pub, sig, msg):
        if r:
            return r > 0
    return False
