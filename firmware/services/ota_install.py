# Install a release bundle into the inactive slot (docs/ota.md "Bundle", "Every failure").
# Imported only while an update runs. The bundle is read from a stream in small chunks and
# written file by file straight into the slot: never whole in RAM. The manifest is checked
# and its signature verified (Ed25519, in steps that await between them) before the first
# byte goes to flash; each file is hashed as it streams and must match the manifest. The
# running slot and the boot pointer are never touched here: the switch is a separate step
# (Ota.switch), so a rejected or interrupted install changes nothing that boots.
import asyncio
import binascii
import gc
import hashlib
import json
import os
import struct
import time
from micropython import const

from firmware.services import ota_ed25519

MAGIC = b"WBU1"
FORMAT = const(1)
CHUNK = const(512)  # bytes per read from the stream
WRITE = const(2048)  # bytes per flash write (a few reads gathered)
MAX_MANIFEST = const(12288)
MAX_SIGS = const(1024)
MAX_FILES = const(160)
_APP_DIRS = ("firmware", "hal", "boards")
_NAME_OK = "abcdefghijklmnopqrstuvwxyz0123456789_."


class Rejected(Exception):
    """The bundle is refused; args[0] says what is wrong."""


class Interrupted(Exception):
    """The install stopped for a reason outside the bundle (contactor closed, cancel)."""


def key_id(pub):
    return binascii.hexlify(hashlib.sha256(pub).digest()[:8]).decode()


def path_ok(p):
    """A manifest path may only name an app module inside the slot."""
    if type(p) is not str or not p or len(p) > 80 or p[0] == "/" or not p.endswith(".mpy"):
        return False
    parts = p.split("/")
    if parts[0] not in _APP_DIRS or len(parts) < 2:
        return False
    for part in parts:
        if part in ("", ".", "..") or part[0] == ".":
            return False
        for c in part:
            if c not in _NAME_OK:
                return False
    return True


def check_manifest(m, board, loader_version, floor, failed):
    """None, or what is wrong with the manifest for this box."""
    if type(m) is not dict:
        return "manifest is not a JSON object"
    if m.get("format") != FORMAT:
        return "bundle format %r not supported (this box reads format %d)" % (
            m.get("format"), FORMAT)
    v = m.get("version")
    if type(v) is not str or not v or len(v) > 24:
        return "manifest version missing or too long"
    if m.get("board") != board:
        return "bundle is for board %r, this box is %r" % (m.get("board"), board)
    ml = m.get("min_loader")
    if type(ml) is not int or ml > loader_version:
        return "bundle needs loader %r, this box has loader %d (deploy it over USB)" % (
            ml, loader_version)
    arb = m.get("arb")
    if type(arb) is not int or arb < 0 or arb > 65535:
        return "manifest arb (anti-rollback level) must be an int 0..65535"
    if arb < floor:
        return "downgrade refused: %s has anti-rollback level %d, this box requires >= %d" % (
            v, arb, floor)
    if v in failed:
        return "version %s failed its trial on this box before: not tried again" % v
    files = m.get("files")
    if type(files) is not list or not files or len(files) > MAX_FILES:
        return "manifest must list 1..%d files" % MAX_FILES
    seen = set()
    total = 0
    for f in files:
        if type(f) is not list or len(f) != 3:
            return "manifest file entries are [path, size, sha256]"
        p, n, h = f
        if not path_ok(p):
            return "manifest path %r refused: only firmware/, hal/, boards/ .mpy files" % (p,)
        if p in seen:
            return "manifest names %s twice" % p
        seen.add(p)
        if type(n) is not int or n < 0 or type(h) is not str or len(h) != 64:
            return "manifest entry for %s needs a size and a 64-hex sha256" % p
        total += n
    if "firmware/app.mpy" not in seen:
        return "bundle has no firmware/app.mpy"
    if m.get("size") != total:
        return "manifest size %r is not the sum of its files (%d)" % (m.get("size"), total)
    keys = m.get("keys")
    if keys is not None and (type(keys) is not list or not 1 <= len(keys) <= 2 or
                             any(type(k) is not str or len(k) != 64 for k in keys)):
        return "manifest keys must be 1 or 2 public keys (64 hex)"
    return None


async def verify_signature(mb, sigs, trusted, bits_per_step=16):
    """None if one signature in sigs is by a trusted key and valid, else the reason.
    trusted: [public key bytes]. Awaits between steps (the loop keeps running)."""
    if type(sigs) is not list or not sigs:
        return "bundle is not signed"
    by_id = {}
    for pub in trusted:
        by_id[key_id(pub)] = pub
    digest = hashlib.sha256(mb).digest()
    known = False
    for s in sigs[:2]:
        if type(s) is not dict:
            return "signature entries are {key, sig}"
        pub = by_id.get(s.get("key"))
        if pub is None:
            continue
        known = True
        try:
            sig = binascii.unhexlify(s.get("sig") or "")
        except Exception:
            return "signature is not hex"
        for r in ota_ed25519.verify_steps(pub, sig, digest, bits_per_step):
            if r:
                break
            await asyncio.sleep_ms(0)
        if r > 0:
            return None
        return "signature by key %s does not match the manifest" % s.get("key")
    if not known:
        return "signed by key %s, not trusted by this box (trusted: %s)" % (
            ",".join(str(s.get("key")) for s in sigs[:2] if type(s) is dict),
            ",".join(by_id) or "none")
    return "no valid signature"


def _mkdirs(path):
    p = ""
    for part in path.split("/"):
        p = p + "/" + part if p else (part or "/")
        if part:
            try:
                os.mkdir(p)
            except OSError:
                pass


def _isdir(p):
    try:
        return os.stat(p)[0] & 0x4000 != 0
    except OSError:
        return False


class Installer:
    """One install: run(reader) -> manifest dict, or raises Rejected / Interrupted.

    reader: object with `async read(n) -> bytes` (b"" at the end). on_write(k) is called
    after every change to the filesystem (the power-cut test stops the process there);
    guard() -> None or a reason to stop (the contactor closed); progress(state, done, total)."""

    def __init__(self, ota_dir, slot, trusted, board, loader_version, floor=0, failed=(),
                 max_bytes=1 << 20, sha256_hex=None, on_write=None, guard=None,
                 progress=None, bits_per_step=16):
        self.dir = ota_dir
        self.slot = slot
        self.slot_dir = ota_dir + "/" + slot
        self.trusted = trusted
        self.board = board
        self.loader_version = loader_version
        self.floor = floor
        self.failed = failed
        self.max_bytes = max_bytes
        self.sha256_hex = sha256_hex
        self.on_write = on_write
        self.guard = guard
        self.progress = progress
        self.bits = bits_per_step
        self.writes = 0
        self.verify_ms = 0
        self.heap_peak = 0  # live heap (after a collection) at the file boundaries
        self.pos = 0
        self.total = 0
        self._h = hashlib.sha256() if sha256_hex else None
        self._buf = bytearray(WRITE)

    def _wrote(self):
        self.writes += 1
        if self.on_write is not None:
            self.on_write(self.writes)

    def _step(self, state):
        if self.guard is not None:
            why = self.guard()
            if why:
                raise Interrupted(why)
        if self.progress is not None:
            self.progress(state, self.pos, self.total)

    async def _read(self, n):
        """Up to n bytes (at least 1) of the stream, hashed and counted; Rejected at its end."""
        b = await self.rd.read(n)
        if not b:
            raise Rejected("bundle truncated: it ended after %d bytes" % self.pos)
        self.pos += len(b)
        if self.pos > self.max_bytes:
            raise Rejected("bundle larger than %d bytes (the most this box takes)" %
                           self.max_bytes)
        if self._h is not None:
            self._h.update(b)
        return b

    async def _exactly(self, n):
        out = bytearray()
        while len(out) < n:
            out.extend(await self._read(n - len(out)))
        return bytes(out)

    async def run(self, reader):
        self.rd = reader
        head = await self._exactly(8)
        if head[:4] != MAGIC:
            raise Rejected("not a wallbox update bundle (bad magic)")
        (ml,) = struct.unpack("<I", head[4:8])
        if ml > MAX_MANIFEST:
            raise Rejected("manifest of %d bytes is larger than %d" % (ml, MAX_MANIFEST))
        mb = await self._exactly(ml)
        (sl,) = struct.unpack("<I", await self._exactly(4))
        if sl > MAX_SIGS:
            raise Rejected("signature block of %d bytes is larger than %d" % (sl, MAX_SIGS))
        sb = await self._exactly(sl)
        try:
            m = json.loads(mb)
        except ValueError:
            raise Rejected("manifest is not JSON")
        err = check_manifest(m, self.board, self.loader_version, self.floor, self.failed)
        if err:
            raise Rejected(err)
        self.total = 12 + ml + sl + m["size"]
        if self.total > self.max_bytes:
            raise Rejected("bundle of %d bytes is larger than %d (the most this box takes)" % (
                self.total, self.max_bytes))
        self._step("verifying")
        try:
            sigs = json.loads(sb) if sl else None
        except ValueError:
            raise Rejected("signature block is not JSON")
        t0 = time.ticks_ms()
        err = await verify_signature(mb, sigs, self.trusted, self.bits)
        self.verify_ms = time.ticks_diff(time.ticks_ms(), t0)
        if err:
            raise Rejected(err)
        self._space(m["size"])
        await self._write_slot(m)
        # Nothing may follow the last file; the whole-bundle hash, when given, must match.
        extra = await self.rd.read(1)
        if extra:
            raise Rejected("bundle longer than its manifest says")
        if self._h is not None:
            got = binascii.hexlify(self._h.digest()).decode()
            if got != self.sha256_hex.lower():
                raise Rejected("bundle SHA-256 %s is not the expected %s" % (
                    got, self.sha256_hex))
        with open(self.slot_dir + "/manifest.json", "w") as f:  # last: the slot is complete
            f.write(json.dumps({"manifest": m, "sigs": sigs}))
        self._wrote()
        return m

    def _space(self, need):
        try:
            s = os.statvfs(self.dir)
            free = s[0] * s[4]
        except (OSError, AttributeError):
            return
        have = free + slot_bytes(self.slot_dir)  # the inactive slot is wiped first
        if need + 8192 > have:
            raise Rejected("not enough flash: the bundle needs %d KB, %d KB free" % (
                (need + 8192) // 1024, have // 1024))

    async def _write_slot(self, m):
        self._step("installing")
        wipe(self.slot_dir, self._wrote)
        _mkdirs(self.slot_dir)
        self._wrote()
        made = set()
        buf = self._buf
        mv = memoryview(buf)
        for p, n, want in m["files"]:
            d = self.slot_dir + "/" + p[:p.rfind("/")]
            if d not in made:
                _mkdirs(d)
                made.add(d)
            h = hashlib.sha256()
            with open(self.slot_dir + "/" + p, "wb") as f:
                left = n
                fill = 0
                while left:
                    want_n = WRITE - fill
                    if want_n > CHUNK:
                        want_n = CHUNK
                    if want_n > left:
                        want_n = left
                    b = await self._read(want_n)
                    left -= len(b)
                    h.update(b)
                    buf[fill:fill + len(b)] = b
                    fill += len(b)
                    if fill == WRITE or not left:
                        f.write(mv[:fill])
                        fill = 0
                        self._wrote()
                    self._step("installing")
            if binascii.hexlify(h.digest()).decode() != want:
                raise Rejected("%s: SHA-256 does not match the manifest (corrupted bundle)" % p)
            # A collection per file keeps the garbage small (one long GC would stall the
            # loop) and measures what the install really holds.
            gc.collect()
            a = gc.mem_alloc()
            if a > self.heap_peak:
                self.heap_peak = a
            await asyncio.sleep_ms(0)


def slot_bytes(path):
    n = 0
    try:
        for e in os.ilistdir(path):
            p = path + "/" + e[0]
            if e[1] & 0x4000:
                n += slot_bytes(p)
            else:
                n += os.stat(p)[6]
    except OSError:
        pass
    return n


def wipe(path, on_write=None):
    """Remove path and everything below it (a slot that is not running)."""
    if not _isdir(path):
        return
    for e in list(os.ilistdir(path)):
        p = path + "/" + e[0]
        if e[1] & 0x4000:
            wipe(p, on_write)
        else:
            os.remove(p)
            if on_write is not None:
                on_write()
    os.rmdir(path)
    if on_write is not None:
        on_write()


def read_slot_manifest(slot_dir):
    """The manifest of a complete slot, or None."""
    try:
        with open(slot_dir + "/manifest.json") as f:
            return json.loads(f.read()).get("manifest")
    except (OSError, ValueError, AttributeError):
        return None
