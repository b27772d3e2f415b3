#!/usr/bin/env python3
"""wbctl: the wallbox host tool (CPython) over mpremote.

    wbctl.py --port /dev/ttyUSB0 status            the board's status() report
    wbctl.py --port P config get [KEY]             settings (secrets shown as ***)
    wbctl.py --port P config set max_current_a 20  validated on the board
    wbctl.py --port P logs [-n 50]                 event log
    wbctl.py --port P sessions [-n 100] [--csv]    charging sessions (CSV for billing)
    wbctl.py --port P selftest                     exit status 1 if a check failed
    wbctl.py --port P console                      the technician console (Ctrl-] leaves)
    wbctl.py --port P update BUNDLE                signed update (tools/release.py, docs/ota.md)
    wbctl.py --port P keys PUBKEY [PUBKEY2]        trust these update keys (production)
    wbctl.py --port A --port B deploy              compile, copy, verify; one row per board
    wbctl.py --ports-file boards.txt deploy        one port per line (# comments)

Every board call is `mpremote connect PORT resume exec CODE`: `resume` because the
firmware keeps running (and the unix port has no soft reset). An error raised on the
board is shown as its message ("board: ..."), not as a traceback; exit status 2.
"""
import argparse
import concurrent.futures
import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICE_DIRS = ("firmware", "hal", "boards")
_ERR_LINE = re.compile(r"^(\w*(?:Error|Exception)|ConsoleError): ?(.*)$")


class BoardError(Exception):
    """The board raised: .args[0] is its message."""


class LinkError(Exception):
    """mpremote could not talk to the board."""


def _tool(name):
    venv = os.path.join(ROOT, ".venv", "bin", name)
    if os.path.exists(venv):
        return venv
    found = shutil.which(name)
    if not found:
        raise SystemExit("%s not found: run `make setup`" % name)
    return found


class Board:
    def __init__(self, port, timeout=60):
        self.port = port
        self.timeout = timeout
        self.mpremote = _tool("mpremote")

    def mpremote_run(self, *args, timeout=None):
        cmd = [self.mpremote, "connect", self.port, "resume"] + list(args)
        try:
            r = subprocess.run(cmd, capture_output=True, text=True,
                               timeout=timeout or self.timeout)
        except subprocess.TimeoutExpired:
            raise LinkError("%s: no answer within %d s" % (self.port, timeout or self.timeout))
        if r.returncode == 0:
            return r.stdout
        board_err = _board_error(r.stdout)
        if board_err is not None:
            raise BoardError(board_err)
        msg = (r.stderr.strip() or r.stdout.strip() or "mpremote failed").splitlines()[-1]
        raise LinkError("%s: %s" % (self.port, msg))

    def exec(self, code, timeout=None):
        return self.mpremote_run("exec", code, timeout=timeout)

    def data(self, what, n=0):
        out = self.exec("data(%r, %d)" % (what, n))
        return json.loads(out.strip().splitlines()[-1])


def _board_error(out):
    """The message of a board-side traceback in mpremote's output, or None."""
    if "Traceback (most recent call last)" not in out:
        return None
    for line in reversed(out.strip().splitlines()):
        m = _ERR_LINE.match(line.strip())
        if m:
            return m.group(2) if m.group(1) == "ConsoleError" else "%s: %s" % m.groups()
    return out.strip().splitlines()[-1]


# --- deploy ---------------------------------------------------------------------------

def device_files():
    """(local source path, path on the board) for every device module, loader.py, main.py."""
    out = []
    for d in DEVICE_DIRS:
        for dirpath, _, files in os.walk(os.path.join(ROOT, d)):
            for f in sorted(files):
                if f.endswith(".py"):
                    src = os.path.join(dirpath, f)
                    out.append((src, os.path.relpath(src, ROOT)))
    out.sort(key=lambda x: x[1])
    out.append((os.path.join(ROOT, "loader.py"), "loader.py"))  # A/B boot loader (docs/ota.md)
    out.append((os.path.join(ROOT, "main.py"), "main.py"))
    return out


def build(compile_mpy=True, out_dir=None):
    """Compile with mpy-cross into out_dir: [(local file, board path)]."""
    out_dir = out_dir or tempfile.mkdtemp(prefix="wbctl-build-")
    mpy_cross = _tool("mpy-cross") if compile_mpy else None
    files = []
    for src, rel in device_files():
        if compile_mpy and rel != "main.py":  # main.py stays source: the board runs it
            rel = rel[:-3] + ".mpy"
            dst = os.path.join(out_dir, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            r = subprocess.run([mpy_cross, "-o", dst, src], capture_output=True, text=True)
            if r.returncode:
                raise SystemExit("mpy-cross failed on %s:\n%s" % (rel, r.stderr))
        else:
            dst = os.path.join(out_dir, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(src, dst)
        files.append((dst, rel))
    return files


def _sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# Runs on the board: make the folders, delete stale .py shadowing a new .mpy
# (a .py is found before the .mpy), then hash what is there.
_PREP = """
import os
def _mk(p):
    try:
        os.mkdir(p)
    except OSError:
        pass
for _d in %r:
    _mk(_d)
for _p in %r:
    try:
        os.remove(_p)
    except OSError:
        pass
"""
_HASH = """
import hashlib, binascii
def _h(p):
    try:
        f = open(p, 'rb')
    except OSError:
        return None
    h = hashlib.sha256()
    while True:
        b = f.read(512)
        if not b:
            break
        h.update(b)
    f.close()
    return binascii.hexlify(h.digest()).decode()
print(repr([(_p, _h(_p)) for _p in %r]))
"""


def deploy_one(port, files, dest, timeout=120):
    """Copy files to one board and verify by hash; returns a result row (dict)."""
    t0 = time.time()
    row = {"port": port, "files": len(files), "result": "FAIL", "detail": "", "fw": "", "id": ""}
    b = Board(port, timeout)
    d = dest.rstrip("/")
    join = (lambda rel: d + "/" + rel) if d else (lambda rel: rel)
    try:
        dirs = []
        parts = d.split("/")
        for i in range(1, len(parts) + 1):  # the destination itself, with its parents
            p = "/".join(parts[:i])
            if p:
                dirs.append(p)
        for _, rel in files:
            parts = rel.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                p = join("/".join(parts[:i]))
                if p not in dirs:
                    dirs.append(p)
        stale = [join(rel[:-4] + ".py") for _, rel in files if rel.endswith(".mpy")]
        b.exec(_PREP % (dirs, stale))
        by_dir = {}
        for local, rel in files:
            by_dir.setdefault(os.path.dirname(rel), []).append(local)
        for sub, locals_ in sorted(by_dir.items()):
            target = ":" + (join(sub) if sub else (d or "")) + "/"
            b.mpremote_run("fs", "cp", *locals_, target, timeout=timeout)
        got = dict(eval_literal(b.exec(_HASH % ([join(rel) for _, rel in files],))))
        bad = [rel for local, rel in files if got.get(join(rel)) != _sha(local)]
        if bad:
            row["detail"] = "hash mismatch: " + ", ".join(bad[:3])
        else:
            row["result"] = "OK"
            row["detail"] = "%d files verified (sha256)" % len(files)
        try:  # identify the board if the firmware console is running
            st = b.data("status")
            row["fw"] = st.get("fw", "")
            cfg = b.data("config")
            row["id"] = cfg.get("id", "")
        except (BoardError, LinkError, ValueError):
            pass
    except (BoardError, LinkError) as ex:
        row["detail"] = str(ex)
    row["seconds"] = round(time.time() - t0, 1)
    return row


def eval_literal(text):
    import ast
    return ast.literal_eval(text.strip().splitlines()[-1])


def print_table(rows, cols, out=sys.stdout):
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols]
    out.write("  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip() + "\n")
    for r in rows:
        out.write("  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(cols, widths)).rstrip()
                  + "\n")


# --- commands ---------------------------------------------------------------------------

def cmd_deploy(args, ports):
    files = build(not args.no_compile)
    print("built %d files (%s); deploying to %d board(s)" % (
        len(files), "source" if args.no_compile else "mpy-cross", len(ports)))
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, len(ports))) as ex:
        rows = list(ex.map(lambda p: deploy_one(p, files, args.dest), ports))
    print_table(rows, ("port", "result", "id", "fw", "files", "seconds", "detail"))
    ok = sum(1 for r in rows if r["result"] == "OK")
    print("%d of %d boards OK%s" % (ok, len(rows), "" if ok == len(rows) else
                                    ": re-run deploy for the failed ports"))
    if ok:
        print("reset the boards (power cycle) to start the new firmware")
    return 0 if ok == len(rows) else 1


def cmd_status(args, b):
    if args.json:
        print(json.dumps(b.data("status"), indent=1, sort_keys=True))
    else:
        sys.stdout.write(b.exec("status()"))
    return 0


def cmd_config(args, b):
    if args.action == "get":
        cfg = b.data("config")
        if args.key:
            if args.key not in cfg:
                raise BoardError("unknown key %r: `config get` lists them" % args.key)
            print(json.dumps(cfg[args.key]))
        else:
            for k, v in cfg.items():
                print("%-20s %s" % (k, json.dumps(v)))
        return 0
    if args.key is None or args.value is None:
        raise SystemExit("usage: config set KEY VALUE")
    # the board parses the text for the key's type (int, bool, list...) and validates
    sys.stdout.write(b.exec("set(%r, %r)" % (args.key, args.value)))
    return 0


def cmd_logs(args, b):
    if args.json:
        print(json.dumps(b.data("log", args.n), indent=1))
    else:
        sys.stdout.write(b.exec("log(%d)" % args.n))
    return 0


SESSION_FIELDS = ("sid", "start_s", "stop_s", "start_up_s", "stop_up_s", "dur_s", "wh",
                  "max_ma", "reason", "sent")


def cmd_sessions(args, b):
    if args.csv:
        rows = b.data("sessions", args.n)
        w = csv.DictWriter(sys.stdout, fieldnames=SESSION_FIELDS, extrasaction="ignore",
                           lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    else:
        sys.stdout.write(b.exec("sessions(%d)" % (args.n or 100)))
    return 0


def cmd_selftest(args, b):
    try:
        sys.stdout.write(b.exec("selftest()"))
    except BoardError as ex:
        if "selftest failed" not in str(ex):
            raise
        print("selftest FAILED: %s" % ex)
        return 1
    return 0


def cmd_console(args, b):
    print("console on %s: Ctrl-] leaves, help() lists the commands" % b.port)
    return subprocess.call([b.mpremote, "connect", b.port, "resume", "repl"])


def cmd_update(args, b):
    """Copy a signed bundle to the board, start the update, follow it (docs/ota.md)."""
    with open(args.bundle, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    try:
        st = b.data("ota")
    except BoardError as ex:
        raise BoardError("no update support on the board (config ota off, or old firmware):"
                         " %s" % ex)
    remote = st["dir"] + "/incoming.wbu"
    b.exec(_PREP % ([st["dir"]], [remote]))
    t0 = time.time()
    b.mpremote_run("fs", "cp", args.bundle, ":" + remote, timeout=max(args.timeout, 300))
    print("copied %s (%d bytes) in %.1f s" % (args.bundle, os.path.getsize(args.bundle),
                                             time.time() - t0))
    sys.stdout.write(b.exec("update(%r, %r)" % (remote, digest)))
    last = None
    poll = Board(b.port, timeout=5)
    deadline = time.time() + args.wait
    while time.time() < deadline:
        time.sleep(1)
        try:
            st = poll.data("ota")
        except LinkError:
            if last is None or last["state"] != "failed":
                # it switched slots and reboots (the console goes away with it)
                print("the board stopped answering: it reboots into the new version"
                      " (trial until healthy; `wbctl status` once it is back)")
                return 0
            raise
        line = "%s%s%s" % (st["state"], " %d %%" % st["progress"] if st["progress"] is not
                           None else "", " (%s)" % st["waiting"] if st["waiting"] else "")
        if last is None or line != last["line"]:
            print("update: " + line)
        st["line"] = line
        last = st
        if st["state"] == "failed":
            print("update FAILED: %s" % st["error"])
            return 1
    print("update still %s after %d s (see `wbctl logs`)" % (last and last["state"], args.wait))
    return 1


_KEYS = """
import json, os
_p = %r
with open(_p + '.tmp', 'w') as f:
    f.write(json.dumps({'keys': %r}))
os.rename(_p + '.tmp', _p)
print('trusted update keys: %%d' %% len(%r))
"""


def cmd_keys(args, b):
    """Provision the public keys the board trusts for updates (production, over USB)."""
    keys = [k.strip().lower() for k in args.pubkey]
    if not 1 <= len(keys) <= 2 or any(len(k) != 64 or set(k) - set("0123456789abcdef")
                                      for k in keys):
        raise SystemExit("give 1 or 2 public keys, 64 hex digits each (release.py pubkey)")
    st = b.data("ota")
    b.exec(_PREP % ([st["dir"]], []))
    sys.stdout.write(b.exec(_KEYS % (st["dir"] + "/keys.json", keys, keys)))
    return 0


def _ports(args):
    ports = list(args.port or [])
    if args.ports_file:
        with open(args.ports_file) as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                if line:
                    ports.append(line)
    if not ports and os.environ.get("WBCTL_PORT"):
        ports.append(os.environ["WBCTL_PORT"])
    seen = []
    for p in ports:  # a board listed twice is deployed once
        if p not in seen:
            seen.append(p)
    return seen


def main(argv=None):
    ap = argparse.ArgumentParser(prog="wbctl", description="wallbox host tool over mpremote")
    ap.add_argument("--port", action="append", help="serial port (repeat for batch deploy);"
                    " default $WBCTL_PORT")
    ap.add_argument("--ports-file", help="file with one port per line (batch deploy)")
    ap.add_argument("--timeout", type=int, default=60, help="seconds per board call")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("deploy", help="compile, copy firmware/hal/boards/main.py, verify")
    p.add_argument("--dest", default="", help="folder on the board (default: its root)")
    p.add_argument("--no-compile", action="store_true", help="copy .py sources, not .mpy")
    p = sub.add_parser("status", help="state, currents, contactor, RCD, network...")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("config", help="config get [KEY] | config set KEY VALUE")
    p.add_argument("action", choices=("get", "set"))
    p.add_argument("key", nargs="?")
    p.add_argument("value", nargs="?")
    p = sub.add_parser("logs", help="event log")
    p.add_argument("-n", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("sessions", help="charging sessions")
    p.add_argument("-n", type=int, default=0, help="last N (default all kept, up to 100)")
    p.add_argument("--csv", action="store_true")
    sub.add_parser("selftest", help="RCD, contactor, CP, lock, meter (no EV connected)")
    sub.add_parser("console", help="the interactive technician console")
    p = sub.add_parser("keys", help="the public keys the board trusts for updates (1 or 2)")
    p.add_argument("pubkey", nargs="+")
    p = sub.add_parser("update", help="signed firmware update from a bundle (tools/release.py)")
    p.add_argument("bundle")
    p.add_argument("--wait", type=int, default=600, help="seconds to follow the update")
    args = ap.parse_args(argv)
    ports = _ports(args)
    if not ports:
        ap.error("no port: give --port PORT (or --ports-file, or set WBCTL_PORT)")
    try:
        if args.cmd == "deploy":
            return cmd_deploy(args, ports)
        if len(ports) > 1:
            ap.error("%s talks to one board: give one --port" % args.cmd)
        b = Board(ports[0], args.timeout)
        return globals()["cmd_" + args.cmd](args, b)
    except BoardError as ex:
        sys.stderr.write("board: %s\n" % ex)
        return 2
    except LinkError as ex:
        sys.stderr.write("link: %s\n" % ex)
        return 3


if __name__ == "__main__":
    sys.exit(main())
