"""firmware/links/net.py: the one URL splitter of the links (ws, OTA over HTTP, OCPP
diagnostics), run on the MicroPython unix port; each caller's own checks on top of it."""
import pytest

SPLIT = """
from firmware.links import net
try:
    result = list(net.split_url(data[0], tuple(tuple(s) for s in data[1])))
except ValueError as e:
    result = 'ValueError: %s' % e
"""
WS = [["ws", 80], ["wss", 443]]
HTTP = [["http", 80], ["https", 443]]


@pytest.mark.parametrize("url,schemes,want", [
    ("ws://h", WS, ["ws", "h", 80, "/"]),
    ("wss://h", WS, ["wss", "h", 443, "/"]),
    ("ws://csms.example:9000/ocpp/cp1", WS, ["ws", "csms.example", 9000, "/ocpp/cp1"]),
    ("wss://10.0.0.2:65535/", WS, ["wss", "10.0.0.2", 65535, "/"]),
    ("ws://[::1]:8180/o", WS, ["ws", "::1", 8180, "/o"]),
    ("wss://[fe80::2]/x", WS, ["wss", "fe80::2", 443, "/x"]),
    ("http://h/a/b?c=1", HTTP, ["http", "h", 80, "/a/b?c=1"]),
    ("https://h:8443", HTTP, ["https", "h", 8443, "/"]),
])
def test_split_url_good(mp, url, schemes, want):
    assert mp.run(SPLIT, [url, schemes]) == want


@pytest.mark.parametrize("url,schemes,why", [
    ("http://h/", WS, "must start with ws:// or wss://"),
    ("wsx://h/", WS, "must start with ws:// or wss://"),
    ("ftp://h/", [["http", 80]], "must start with http://"),
    ("ws:/h", WS, "must start with"),
    ("", HTTP, "must start with http:// or https://"),
    ("ws://", WS, "needs a host"),
    ("ws:///path", WS, "needs a host"),
    ("ws://:80/", WS, "needs a host"),
    ("ws://h:0/", WS, "port 1..65535"),
    ("ws://h:65536/", WS, "port 1..65535"),
    ("ws://h:/", WS, "port must be a number"),
    ("ws://h:x1/", WS, "port must be a number"),
    ("ws://h:-1/", WS, "port must be a number"),
    ("ws://[::1/", WS, "closing ]"),
    ("ws://[::1]x/", WS, "text after its IPv6 host"),
    ("ws://[]:80/", WS, "needs a host"),
    ("http://user:pw@h/", HTTP, "credentials"),
    ("http://user@h:80/", HTTP, "credentials"),
])
def test_split_url_bad(mp, url, schemes, why):
    r = mp.run(SPLIT, [url, schemes])
    assert isinstance(r, str) and r.startswith("ValueError: ") and why in r, r


def test_split_url_not_a_string(mp):
    assert "must be a string" in mp.run(SPLIT, [None, WS])


CALLERS = """
from firmware.links import ota_http, ocpp_diag
from firmware.links.ws import WSClient
def ask(f, u):
    try:
        return list(f(u))
    except ValueError as e:
        return 'ValueError: %s' % e
def ws(u):
    c = WSClient(u)
    return c.tls, c.host, c.port, c.path
result = [[ask(ota_http.split_url, u) for u in data[0]], [ask(ocpp_diag.split_http, u) for u in data[1]],
          [ask(ws, u) for u in data[2]]]
"""


def test_callers_keep_their_checks(mp):
    ota, diag, ws = mp.run(CALLERS, [
        ["http://h/b.bin", "https://h:8443/b", "http://[::1]/b", "http://u:p@h/b", "ws://h/"],
        ["http://h:8080/up", "http://[::1]:81/up", "https://h/up", "ftp://h/up"],
        ["ws://h/o/cp1", "wss://h/o", "wss://h:8443/o", "http://h/o"]])
    assert ota[:2] == [[False, "h", 80, "/b.bin"], [True, "h", 8443, "/b"]]
    assert "IPv6 literals are not supported" in ota[2]
    assert "credentials in the url are not supported" in ota[3]
    assert "must start with http:// or https://" in ota[4]
    assert diag[:2] == [["h", 8080, "/up"], ["::1", 81, "/up"]]  # IPv6 allowed here
    assert all("must start with http://" in d for d in diag[2:])
    assert ws[:3] == [[False, "h", 80, "/o/cp1"], [True, "h", 443, "/o"], [True, "h", 8443, "/o"]]
    assert "must start with ws:// or wss://" in ws[3]
