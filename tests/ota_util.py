"""Helpers for the OTA tests: signing keys made per test session (no private key is in the
repo), the app compiled once, and bundles built from it (tools/release.py)."""
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import release  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: E402

_BASE = {}


def new_key():
    return ed25519.Ed25519PrivateKey.generate()


def pub_hex(key):
    return release.public_hex(key)


def base_files():
    """{board path: .mpy bytes} of this repo's app, compiled once per session."""
    if not _BASE:
        _BASE.update(release.compile_tree(ROOT))
    return dict(_BASE)


def app_files(version, replace=None):
    """The app as version `version`; replace = {path.py: source text} swaps modules."""
    files = base_files()
    src = open(os.path.join(ROOT, "firmware", "services", "runtime.py")).read()
    src = release._VERSION_RE.sub('VERSION = "%s"' % version, src, 1)
    files["firmware/services/runtime.mpy"] = release.compile_source(
        src, "firmware/services/runtime.py")
    for rel, text in (replace or {}).items():
        if rel == "firmware/services/runtime.py":
            text = release._VERSION_RE.sub('VERSION = "%s"' % version, text, 1)
        files[rel[:-3] + ".mpy"] = release.compile_source(text, rel)
    return files


def bundle(key, version, arb=0, board="sim", replace=None, files=None, keys=None,
           trust=None, summary="test release"):
    """Bundle bytes signed by `key` (or by every key in `keys`)."""
    files = files if files is not None else app_files(version, replace)
    m = release.manifest(files, version, arb, board, summary, trust)
    return release.pack(m, files, keys=keys if keys is not None else [key])


def sha(data):
    return hashlib.sha256(data).hexdigest()


def provision(root_dir, *keys):
    """The box's trusted keys: <dir>/ota/keys.json (what a maker puts on at production)."""
    d = os.path.join(root_dir, "ota")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "keys.json"), "w") as f:
        json.dump({"keys": [pub_hex(k) for k in keys]}, f)
    return d


def boot_state(root_dir):
    try:
        with open(os.path.join(root_dir, "ota", "boot.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def runtime_source(patch_from, patch_to):
    """runtime.py with one piece of text replaced (a version that misbehaves)."""
    src = open(os.path.join(ROOT, "firmware", "services", "runtime.py")).read()
    assert patch_from in src, patch_from
    return src.replace(patch_from, patch_to, 1)


def tmpdir():
    return tempfile.mkdtemp(prefix="wallbox-ota-")


def rmtree(d):
    shutil.rmtree(d, ignore_errors=True)


def rebooted(b, timeout=30):
    """Wait for the firmware of SimBench b to ask for a reboot (loader.REBOOT_EXIT, exit
    code 75), then power it up again."""
    deadline = time.time() + timeout
    while b.proc.poll() is None:
        if time.time() > deadline:
            raise AssertionError("no reboot within %d s:\n%s" % (timeout, b.log()[-2000:]))
        time.sleep(0.05)
    assert b.proc.returncode == 75, (b.proc.returncode, b.log()[-2000:])
    b.restart()
