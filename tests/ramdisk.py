# Device-side test helper (runs in the MicroPython unix port): a RAM block
# device for os.VfsLfs2 that can "cut power" at the N-th block operation.
#
# Block device protocol, extended interface: readblocks(block, buf, offset),
# writeblocks(block, buf, offset), ioctl(op, arg) with 4 = block count,
# 5 = block size, 6 = erase block. littlefs uses only the extended form.
import os


_EIO = -5  # an error code back to littlefs: no Python exception unwinds through its C code


class RamDisk:
    def __init__(self, nblocks=128, bsize=512, data=None):
        self.bsize = bsize
        self.nblocks = nblocks
        self.data = bytearray(data) if data is not None else bytearray(b"\xff" * (nblocks * bsize))
        self.ops = 0  # writes + erases so far
        self.writes = 0
        self.erases = 0
        self.cut_at = -1  # op index at which power fails (-1: never)
        self.dead = False

    def _op(self):
        n = self.ops
        self.ops += 1
        return n == self.cut_at

    def readblocks(self, block, buf, off=0):
        if self.dead:
            return _EIO
        a = block * self.bsize + off
        buf[:] = self.data[a:a + len(buf)]

    def writeblocks(self, block, buf, off=0):
        if self.dead:
            return _EIO
        cut = self._op()
        a = block * self.bsize + off
        n = len(buf) // 2 if cut else len(buf)  # a cut program leaves half of it
        self.data[a:a + n] = buf[:n]
        self.writes += 1
        if cut:
            self.dead = True
            return _EIO
        return 0

    def ioctl(self, op, arg):
        if op == 4:
            return self.nblocks
        if op == 5:
            return self.bsize
        if op == 6:
            if self.dead:
                return _EIO
            cut = self._op()
            a = arg * self.bsize
            n = self.bsize // 2 if cut else self.bsize  # a cut erase is half done
            self.data[a:a + n] = b"\xff" * n
            self.erases += 1
            if cut:
                self.dead = True
                return _EIO
            return 0
        return 0


def fresh_image(nblocks=128, bsize=512):
    d = RamDisk(nblocks, bsize)
    os.VfsLfs2.mkfs(d)
    return bytes(d.data)


def mount(disk, at="/lfs"):
    try:
        os.umount(at)
    except OSError:
        pass
    os.mount(os.VfsLfs2(disk), at)
    return at


def umount(at="/lfs"):
    try:
        os.umount(at)
    except OSError:
        pass
