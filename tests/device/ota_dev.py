# Device-side helpers for the OTA tests (run in the MicroPython unix port).
import asyncio
import binascii
import os


def install(ota_dir, slot, path, board="sim", floor=0, failed=(), max_bytes=1 << 20,
            sha=None, keys=None, on_write=None, bits=16):
    """['ok', version, writes] or ['rejected', message, writes]."""
    from firmware.services import ota_install as oi

    trusted = [binascii.unhexlify(k) for k in keys]
    inst = oi.Installer(ota_dir, slot, trusted, board, 1, floor, list(failed), max_bytes,
                        sha, on_write=on_write, bits_per_step=bits)

    class R:
        def __init__(self):
            self.f = open(path, "rb")

        async def read(self, n):
            return self.f.read(n)

    r = R()
    try:
        m = asyncio.run(inst.run(r))
        return ["ok", m["version"], inst.writes]
    except oi.Rejected as ex:
        return ["rejected", ex.args[0], inst.writes]
    finally:
        r.f.close()


def tree(path):
    """Sorted relative paths of the files under path."""
    out = []

    def walk(p, rel):
        try:
            entries = list(os.ilistdir(p))
        except OSError:
            return
        for e in entries:
            if e[1] & 0x4000:
                walk(p + "/" + e[0], rel + e[0] + "/")
            else:
                out.append(rel + e[0])
    walk(path, "")
    out.sort()
    return out


def stage_trial(ota_dir, path, keys, board="sim"):
    """Install a bundle into slot a and point the next boot at it on trial, as
    Ota._run + Ota.switch do (the rollback tests start from there)."""
    import json
    import loader
    from firmware.services import ota_ops as ota
    st = loader.read_state(ota_dir) or {}
    slot = st.get("slot")
    target = "b" if slot == "a" else "a"
    res = install(ota_dir, target, path, board, st.get("floor", 0), st.get("failed") or (),
                  keys=keys)
    if res[0] != "ok":
        return res
    with open(ota_dir + "/" + target + "/manifest.json") as f:
        m = json.loads(f.read())["manifest"]
    loader.write_state(ota_dir, ota.trial_pointer(target, m, st, slot,
                                                  st.get("version") or _factory_version()))
    return res


def _factory_version():
    from firmware.services.runtime import VERSION
    return VERSION
