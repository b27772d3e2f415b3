"""Release bundles and their checks on the device (firmware/services/ota_install.py,
ota_ed25519.py) in the MicroPython unix port: the device's Ed25519 against the
`cryptography` package, and every rejection with a clear error and no change."""
import hashlib
import json
import os
import struct

import pytest

import ota_util as U

KEY = U.new_key()
OTHER = U.new_key()


@pytest.fixture(scope="module")
def good():
    return U.bundle(KEY, "0.9.0", arb=2)


def _install(mp, tmp_path, data, **kw):
    p = str(tmp_path / "b.wbu")
    with open(p, "wb") as f:
        f.write(data)
    ota = str(tmp_path / "ota")
    os.makedirs(ota, exist_ok=True)
    kw.setdefault("keys", [U.pub_hex(KEY)])
    return mp.run("import ota_dev\nresult = ota_dev.install(data[0], 'b', data[1], **data[2])",
                  [ota, p, kw]), ota


def _nothing_complete(ota):
    """A rejected install leaves no complete slot and no boot pointer."""
    assert not os.path.exists(os.path.join(ota, "b", "manifest.json"))
    assert not os.path.exists(os.path.join(ota, "boot.json"))


def test_ed25519_matches_cryptography_and_rfc8032(mp):
    # RFC 8032 §7.1 test 1 (empty message) and test 2 (one byte), then our own keys
    vectors = [
        ("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
         "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
        ("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
         "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ]
    for i in range(6):
        k = U.new_key()
        msg = hashlib.sha256(b"manifest %d" % i).digest()
        vectors.append((U.pub_hex(k), msg.hex(), k.sign(msg).hex()))
    r = mp.run("""
import binascii
from firmware.services import ota_ed25519 as e
u = binascii.unhexlify
out = []
for pub, msg, sig in data:
    good = e.verify(u(pub), u(sig), u(msg))
    bad = bytearray(u(sig)); bad[len(bad) // 3] ^= 4
    flipped = e.verify(u(pub), bytes(bad), u(msg))
    wrong_msg = e.verify(u(pub), u(sig), u(msg) + b'x')
    out.append([good, flipped, wrong_msg])
result = out
""", vectors)
    assert r == [[True, False, False]] * len(vectors)


def test_sha512_matches_hashlib(mp):
    msgs = [b"", b"abc", b"x" * 111, b"y" * 112, b"z" * 300]
    r = mp.run("""
import binascii
from firmware.services import ota_ed25519 as e
result = [binascii.hexlify(e.sha512(binascii.unhexlify(m))).decode() for m in data]
""", [m.hex() for m in msgs])
    assert r == [hashlib.sha512(m).hexdigest() for m in msgs]


def test_good_bundle_installs_every_file(mp, tmp_path, good):
    (res, msg, writes), ota = _install(mp, tmp_path, good, sha=U.sha(good))
    assert res == "ok" and msg == "0.9.0", msg
    m, _, files = U.release.unpack(good)
    got = mp.call("ota_dev", "tree", os.path.join(ota, "b"))
    assert sorted(got) == sorted(list(files) + ["manifest.json"])
    for p, data in files.items():
        with open(os.path.join(ota, "b", p), "rb") as f:
            assert f.read() == data, p
    assert writes > len(files)
    assert not os.path.exists(os.path.join(ota, "boot.json"))  # the switch is a later step


def _resign(manifest, files, keys=(KEY,), sigs=None):
    return U.release.pack(manifest, files, sigs=sigs, keys=list(keys))


def test_flipped_bit_in_any_file_is_rejected(mp, tmp_path, good):
    m, _, files = U.release.unpack(good)
    for i, (p, data) in enumerate(files.items()):
        bad = dict(files)
        b = bytearray(data)
        b[(i * 7919) % len(b)] ^= 1 << (i % 8)
        bad[p] = bytes(b)
        # the signed manifest is the original one: only the file changed
        (res, msg, _), ota = _install(mp, tmp_path, _resign(m, bad))
        assert res == "rejected" and p in msg and "SHA-256" in msg, (p, msg)
        _nothing_complete(ota)


def test_signature_problems_are_rejected(mp, tmp_path, good):
    m, sigs, files = U.release.unpack(good)
    mb = json.dumps(m, separators=(",", ":")).encode()
    cases = {
        "missing": (_resign(m, files, sigs=[]), "not signed"),
        "unknown key": (_resign(m, files, keys=(OTHER,)), "not trusted by this box"),
        "wrong signature": (_resign(m, files, sigs=[{"key": sigs[0]["key"],
                                                      "sig": OTHER.sign(mb).hex()}]),
                            "does not match the manifest"),
        "flipped bit in the manifest": (None, "does not match the manifest"),
    }
    # a manifest changed after signing (one bit of its summary) with the old signature
    mb2 = bytearray(mb)
    at = mb.index(b"test release")
    mb2[at] ^= 1
    cases["flipped bit in the manifest"] = (
        U.release.pack(m, files, sigs=sigs, manifest_bytes=bytes(mb2)), cases[
            "flipped bit in the manifest"][1])
    for name, (data, want) in cases.items():
        (res, msg, writes), ota = _install(mp, tmp_path, data)
        assert res == "rejected" and want in msg, (name, msg)
        assert writes == 0, name  # nothing written before the signature holds
        _nothing_complete(ota)


def test_second_key_rotation_either_trusted_key_verifies(mp, tmp_path):
    data = U.bundle(None, "0.9.1", keys=[OTHER, KEY])  # signed by the new and the old key
    (res, msg, _), _ = _install(mp, tmp_path, data, keys=[U.pub_hex(KEY)])
    assert res == "ok", msg
    (res, msg, _), _ = _install(mp, tmp_path, data, keys=[U.pub_hex(U.new_key()),
                                                         U.pub_hex(OTHER)])
    assert res == "ok", msg


def test_truncated_and_oversized_bundles_are_rejected(mp, tmp_path, good):
    m, _, _ = U.release.unpack(good)
    (ml,) = struct.unpack_from("<I", good, 4)
    cuts = [0, 3, 6, 8 + ml // 2, 12 + ml, len(good) // 2, len(good) - 1]
    for n in cuts:
        (res, msg, _), ota = _install(mp, tmp_path, good[:n])
        assert res == "rejected" and ("truncated" in msg or "magic" in msg), (n, msg)
        _nothing_complete(ota)
    (res, msg, _), ota = _install(mp, tmp_path, good, max_bytes=len(good) - 1)
    assert res == "rejected" and "larger than" in msg, msg
    (res, msg, _), ota = _install(mp, tmp_path, good + b"\0")
    assert res == "rejected" and "longer than its manifest" in msg, msg
    _nothing_complete(ota)
    (res, msg, _), ota = _install(mp, tmp_path, good, sha="0" * 64)
    assert res == "rejected" and "is not the expected" in msg, msg
    _nothing_complete(ota)


def test_manifest_rules(mp, tmp_path, good):
    m0, _, files = U.release.unpack(good)

    def variant(**change):
        m = json.loads(json.dumps(m0))
        m.update(change)
        return m

    def with_path(p):
        m = json.loads(json.dumps(m0))
        m["files"][0][0] = p
        f = dict(files)
        f[p] = f.pop(m0["files"][0][0])
        return m, f

    cases = []
    for p in ("../main.py", "/main.py", "firmware/../../main.py", "main.mpy",
              "firmware/./x.mpy", "loader.mpy", "firmware/app.py", "lib/evil.mpy"):
        m, f = with_path(p)
        cases.append((p, m, f, "refused"))
    cases += [
        ("other board", variant(board="esp32_devkit"), files, "for board 'esp32_devkit'"),
        ("downgrade", variant(arb=1), files, "downgrade refused"),
        ("failed before", variant(version="0.8.0"), files, "failed its trial"),
        ("new loader", variant(min_loader=2), files, "needs loader 2"),
        ("format", variant(format=2), files, "format 2 not supported"),
        ("size", variant(size=m0["size"] + 1), files, "not the sum"),
    ]
    for name, m, f, want in cases:
        data = _resign(m, f)
        (res, msg, writes), ota = _install(mp, tmp_path, data, floor=2, failed=["0.8.0"])
        assert res == "rejected" and want in msg, (name, msg)
        assert writes == 0, name
        _nothing_complete(ota)


def test_release_tool_keygen_build_show(tmp_path):
    import subprocess
    import sys
    tool = os.path.join(U.ROOT, "tools", "release.py")
    key = str(tmp_path / "release.pem")
    r = subprocess.run([sys.executable, tool, "keygen", key], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert oct(os.stat(key).st_mode & 0o777) == "0o600"
    pub = r.stdout.split("public key:")[1].split()[0]
    out = str(tmp_path / "wb.wbu")
    r = subprocess.run([sys.executable, tool, "build", "--key", key, "--version", "1.2.3",
                        "--arb", "4", "--summary", "fixes", "-o", out],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    m, sigs, files = U.release.unpack(open(out, "rb").read())
    assert m["version"] == "1.2.3" and m["arb"] == 4 and m["board"] == "sim"
    assert sigs[0]["key"] == U.release.key_id(pub)
    assert b"1.2.3" in files["firmware/services/runtime.mpy"]
    assert not any(p.endswith((".py", "main.mpy", "loader.mpy")) for p in files)
    r = subprocess.run([sys.executable, tool, "show", out], capture_output=True, text=True)
    assert '"version": "1.2.3"' in r.stdout and U.release.key_id(pub) in r.stdout
