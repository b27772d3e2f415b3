"""Helpers for the web page tests (tests/test_web_*.py): the firmware on the sim bench with
the web page on, a raw-socket HTTP client (for requests no polite client would send) and
headless Chromium through selenium (Debian's chromium + chromium-driver, `make setup`)."""
import json
import os
import re
import shutil
import socket
import time

from e2e import SimBench  # noqa: F401  (tests import it from here)
from simbench import _free_port


def setup_code(b, timeout=10):
    """The one-time setup code the firmware printed on its console at boot."""
    deadline = time.time() + timeout
    while True:
        m = re.findall(r"setup code (\d{8})", b.log())
        if m:
            return m[-1]
        if time.time() > deadline:
            raise AssertionError("no setup code printed:\n" + b.log())
        time.sleep(0.1)


def start_bench(data_dir=None, **config):
    port = _free_port()
    cfg = {"web_port": port, "min_off_s": 0, "ev_off_s": 0, "fault_retry_s": 5}
    cfg.update(config)
    b = SimBench(data_dir=data_dir, config=cfg)
    b.web_port = port
    return b


def raw(port, data, timeout=10, read=True):
    """Send bytes as they are, return (status or None, headers text, body bytes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        if data:
            s.sendall(data)
        if not read:
            return None, "", b""
        out = b""
        while True:
            try:
                c = s.recv(4096)
            except (ConnectionResetError, socket.timeout):
                break
            if not c:
                break
            out += c
    finally:
        s.close()
    return parse(out)


def parse(out):
    head, _, body = out.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    return (int(m.group(1)) if m else None), head.decode(errors="replace"), body


def request(port, method, path, body=None, headers=None, cookie=None, timeout=10):
    """A well-formed request; body a dict is sent as JSON. Returns (status, headers, body)."""
    h = {"Host": "127.0.0.1:%d" % port}
    data = b""
    if body is not None:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        h["Content-Type"] = "application/json"
        h["Content-Length"] = str(len(data))
    if cookie:
        h["Cookie"] = "wb_session=" + cookie
    h.update(headers or {})
    head = "%s %s HTTP/1.1\r\n" % (method, path) + "".join("%s: %s\r\n" % kv for kv in h.items())
    return raw(port, head.encode() + b"\r\n" + data, timeout)


def session_cookie(headers):
    m = re.search(r"wb_session=([0-9a-f]*)", headers)
    return m.group(1) if m else None


def login(port, password):
    """(cookie, csrf) of a fresh session."""
    st, hd, body = request(port, "POST", "/api/login", {"password": password})
    assert st == 200, (st, body)
    cookie = session_cookie(hd)
    st, hd, body = request(port, "GET", "/api/session", cookie=cookie)
    return cookie, json.loads(body)["csrf"]


def set_password(port, code, password):
    st, hd, body = request(port, "POST", "/api/setup", {"code": code, "password": password})
    assert st == 200, (st, body)
    return session_cookie(hd)


def chrome(download_dir, width=1280, height=900):
    """Headless Chromium (Debian's) driven by selenium; no driver download."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=%d,%d" % (width, height), "--no-first-run",
              "--disable-extensions", "--disable-background-networking"):
        opts.add_argument(a)
    opts.add_experimental_option("prefs", {"download.default_directory": download_dir,
                                           "download.prompt_for_download": False})
    svc = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    d = webdriver.Chrome(service=svc, options=opts)
    d.set_page_load_timeout(30)
    return d


def out_dir():
    d = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "test_out")
    os.makedirs(d, exist_ok=True)
    return d
