"""MQTT test helpers (CPython): a real mosquitto per test, TLS material made with
the openssl CLI, fake brokers, and `Device`, the MicroPython MQTT client under test
(tests/mqtt_driver.py in a micropython subprocess, JSON lines both ways)."""
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from mp import ROOT, micropython_bin, mp_env


def mosquitto_bin():
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(p)), None)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dead_port():
    """A socket bound to a loopback port but not listening: connects to it are refused,
    and no other process can take the port while the socket is held."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s


def wait_port(port, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


class Broker:
    """mosquitto on a free loopback port with a generated config."""

    def __init__(self, tmp, users=None, acl=None, tls=None):
        self.exe = mosquitto_bin()
        self.tmp = str(tmp)
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.log = os.path.join(self.tmp, "mosquitto.log")
        lines = ["user root", "persistence false", "log_dest file %s" % self.log,
                 "log_type all", "connection_messages true",
                 "listener %d 127.0.0.1" % self.port]
        if users:
            pw = os.path.join(self.tmp, "passwd")
            open(pw, "w").close()
            for u, p in users.items():
                subprocess.run(["mosquitto_passwd", "-b", pw, u, p], check=True,
                               capture_output=True)
            lines += ["allow_anonymous false", "password_file " + pw]
        else:
            lines.append("allow_anonymous true")
        if acl:
            path = os.path.join(self.tmp, "acl")
            with open(path, "w") as f:
                f.write(acl)
            lines.append("acl_file " + path)
        if tls:
            lines += ["listener %d 127.0.0.1" % self.tls_port, "cafile " + tls["ca_pem"],
                      "certfile " + tls["cert"], "keyfile " + tls["key"]]
        # per_listener_settings false (default): auth/ACL settings apply to both listeners
        self.conf = os.path.join(self.tmp, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([self.exe, "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        for p in (self.port, self.tls_port):
            if p and not wait_port(p):
                self.stop()
                raise RuntimeError("mosquitto did not start: %s" % self.read_log())
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            if sig == signal.SIGKILL:
                os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.send_signal(sig)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def freeze(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def read_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


@pytest.fixture
def broker_factory(tmp_path):
    """broker_factory(users=, acl=, tls=) -> started Broker; all stopped at teardown."""
    if not mosquitto_bin():
        pytest.skip("mosquitto not installed (apt-get install mosquitto; `make setup` does it)")
    made = []

    def make(**kw):
        d = tmp_path / ("b%d" % len(made))
        d.mkdir()
        b = Broker(d, **kw)
        made.append(b)
        return b.start()

    yield make
    for b in made:
        b.stop(signal.SIGKILL)


def _ssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True)


def make_ca(d, name):
    """EC P-256 CA in d: <name>.key, <name>.pem, <name>.der."""
    _ssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", name + ".key", cwd=d)
    _ssl("req", "-x509", "-new", "-key", name + ".key", "-days", "2", "-subj", "/CN=" + name,
         "-out", name + ".pem", cwd=d)
    _ssl("x509", "-in", name + ".pem", "-outform", "DER", "-out", name + ".der", cwd=d)
    return os.path.join(d, name + ".der")


def make_tls(d):
    """CA + server cert (localhost, 127.0.0.1) and an unrelated CA in dir d (openssl CLI)."""
    ca_der = make_ca(d, "ca")
    wrong_der = make_ca(d, "wrongca")
    with open(os.path.join(d, "san.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _ssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "srv.key", cwd=d)
    _ssl("req", "-new", "-key", "srv.key", "-subj", "/CN=localhost", "-out", "srv.csr", cwd=d)
    _ssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "srv.pem", cwd=d)
    return {"ca_pem": os.path.join(d, "ca.pem"), "ca_der": ca_der, "wrong_der": wrong_der,
            "cert": os.path.join(d, "srv.pem"), "key": os.path.join(d, "srv.key")}


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    """TLS material from make_tls, made once per session."""
    if not shutil.which("openssl"):
        pytest.skip("openssl CLI not installed")
    return make_tls(str(tmp_path_factory.mktemp("tls")))


class Device:
    """The MicroPython client in a subprocess; events arrive on a queue."""

    def __init__(self, **cfg):
        cfg.setdefault("client_id", "dev1")
        cfg.setdefault("host", "127.0.0.1")
        self.proc = subprocess.Popen(
            [micropython_bin(), os.path.join(ROOT, "tests", "mqtt_driver.py"), json.dumps(cfg)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=ROOT, env=mp_env(), text=True, bufsize=1)
        self.events = queue.Queue()
        self.seen = []  # every event read, for failure messages
        self.backlog = []  # read but not consumed by a wait()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                self.events.put({"ev": "junk", "line": line})
        self.events.put({"ev": "eof"})

    def wait(self, ev, timeout=10.0, **match):
        """First unconsumed event named `ev` with all fields in `match` equal (events
        that do not match stay for later waits)."""
        def ok(e):
            return e["ev"] == ev and all(e.get(k) == v for k, v in match.items())

        for e in self.backlog:
            if ok(e):
                self.backlog.remove(e)
                return e
        end = time.time() + timeout
        while True:
            left = end - time.time()
            if left <= 0:
                raise AssertionError("no %s %s in %.1fs; seen %s; stderr %s" % (
                    ev, match, timeout, self.seen[-20:], self.stderr()))
            try:
                e = self.events.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(e)
            if e["ev"] == "eof" and ev != "eof":
                raise AssertionError("device exited: %s" % self.stderr())
            if ok(e):
                return e
            self.backlog.append(e)

    def cmd(self, op, reply=None, **kw):
        kw["op"] = op
        self.proc.stdin.write(json.dumps(kw) + "\n")
        self.proc.stdin.flush()
        if reply:
            return self.wait(reply)

    def pub(self, t, p, q=0, r=False, lane=0):
        return self.cmd("pub", "pub", t=t, p=p, q=q, r=r, lane=lane)["ret"]

    def stats(self):
        return self.cmd("stats", "stats")

    def alive(self):
        return self.proc.poll() is None

    def stderr(self):
        if self.proc.poll() is None:
            return "(running)"
        return self.proc.stderr.read()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.cmd("quit")
                self.proc.wait(3)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()


@pytest.fixture
def device():
    """device(**cfg) -> Device; all killed at teardown."""
    made = []

    def make(**cfg):
        d = Device(**cfg)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


class Peer:
    """paho-mqtt client collecting messages (thread loop)."""

    def __init__(self, port, client_id="peer", topics=("#",), **kw):
        import paho.mqtt.client as mqtt
        self.msgs = queue.Queue()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        if kw.get("user"):
            self.c.username_pw_set(kw["user"], kw.get("password"))
        self.subscribed = threading.Event()
        self.c.on_message = lambda c, u, m: self.msgs.put(m)
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.c.on_connect = lambda c, u, f, rc, p=None: [c.subscribe(t, 1) for t in topics]
        self.c.connect("127.0.0.1", port, 30)
        self.c.loop_start()
        assert self.subscribed.wait(5), "paho could not subscribe"

    def get(self, timeout=5.0, topic=None):
        end = time.time() + timeout
        while time.time() < end:
            try:
                m = self.msgs.get(timeout=max(0.01, end - time.time()))
            except queue.Empty:
                break
            if topic is None or m.topic == topic:
                return m
        return None

    def publish(self, topic, payload, qos=0, retain=False):
        self.c.publish(topic, payload, qos, retain).wait_for_publish(5)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


class FakeBroker:
    """TCP server on loopback; `handler(conn)` runs per accepted connection in a thread."""

    def __init__(self, handler):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.accepted = 0
        self.conns = []
        self._stop = False
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.conns.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn):
        try:
            self.handler(conn)
        except OSError:
            pass

    def close(self):
        self._stop = True
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def read_packet(conn, timeout=5.0):
    """One MQTT packet from a socket: (first byte, body) or None on EOF/timeout."""
    conn.settimeout(timeout)
    try:
        h = conn.recv(1)
        if not h:
            return None
        n, shift = 0, 0
        while True:
            b = conn.recv(1)
            if not b:
                return None
            n |= (b[0] & 0x7F) << shift
            shift += 7
            if not b[0] & 0x80:
                break
        body = b""
        while len(body) < n:
            chunk = conn.recv(n - len(body))
            if not chunk:
                return None
            body += chunk
        return h[0], body
    except (socket.timeout, OSError):
        return None


def connack(conn, rc=0):
    """Read CONNECT and answer CONNACK; True if a CONNECT came."""
    p = read_packet(conn)
    if not p or p[0] != 0x10:
        return False
    conn.sendall(bytes((0x20, 2, 0, rc)))
    return True
