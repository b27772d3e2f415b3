"""Optional HTTPS for the web page (web_cert/web_key): a real TLS client (CPython ssl) gets
the page and a Secure session cookie; plain HTTP on the TLS port, a client that never
finishes its handshake and an unreadable certificate are handled without harm."""
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

from web_client import parse, session_cookie, setup_code, start_bench

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


@pytest.fixture(scope="module")
def certs():
    d = tempfile.mkdtemp(prefix="wallbox-tls-")
    key, cert = os.path.join(d, "web_key.der"), os.path.join(d, "web_cert.der")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "30", "-subj", "/CN=wallbox.local", "-keyout", key + ".pem",
                    "-out", cert + ".pem"], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", key + ".pem", "-outform", "DER", "-out", key],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-in", cert + ".pem", "-outform", "DER", "-out", cert],
                   check=True, capture_output=True)
    yield cert, key
    shutil.rmtree(d, ignore_errors=True)


def https(port, data, timeout=20):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # self-signed: the owner pins it in the browser
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw) as s:
            s.sendall(data)
            out = b""
            while True:
                try:
                    c = s.recv(4096)
                except (ssl.SSLError, OSError):
                    break
                if not c:
                    break
                out += c
    return parse(out)


def test_https_serves_the_page_with_a_secure_cookie(certs):
    b = start_bench(web_cert=certs[0], web_key=certs[1])
    try:
        p = b.web_port
        st, hd, body = https(p, b"GET /api/session HTTP/1.1\r\nHost: x\r\n\r\n")
        assert st == 200 and json.loads(body)["password"] is False
        data = json.dumps({"code": setup_code(b), "password": "tls-password-1"}).encode()
        st, hd, body = https(p, b"POST /api/setup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                b"Content-Length: %d\r\n\r\n" % len(data) + data)
        assert st == 200, body
        assert session_cookie(hd) and "Secure" in hd and "HttpOnly" in hd
        assert b.status()["web"]["https"] is True
        # plain HTTP to the TLS port: no answer, nothing breaks
        with socket.create_connection(("127.0.0.1", p), timeout=20) as s:
            s.sendall(b"GET / HTTP/1.1\r\n\r\n")
            t0 = time.time()
            try:
                got = s.recv(100)
            except OSError:
                got = b""
            assert not got.startswith(b"HTTP/")
            assert time.time() - t0 < 15  # closed, not left open (it once leaked the socket)
        # a client that opens TCP and never starts its handshake is cut off
        with socket.create_connection(("127.0.0.1", p), timeout=30) as s:
            t0 = time.time()
            try:
                s.recv(100)
            except OSError:
                pass
            assert time.time() - t0 < 25
        assert https(p, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200
        assert b.alive() and b.status()["state"] == "A"
    finally:
        b.close()


def test_unreadable_certificate_keeps_the_page_off():
    b = start_bench(web_cert="/nonexistent/cert.der", web_key="/nonexistent/key.der")
    try:
        deadline = time.time() + 10
        while "web page off" not in b.log() and time.time() < deadline:
            time.sleep(0.1)
        assert "web page off" in b.log()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", b.web_port), timeout=2).recv(1)
        assert b.alive() and "web" not in b.status()
    finally:
        b.close()
