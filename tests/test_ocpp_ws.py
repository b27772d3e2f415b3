"""The firmware's WebSocket client (firmware/links/ws.py) in the MicroPython unix port against
the `websockets` library (PyPI) as the server: upgrade with subprotocol ocpp1.6 and basic auth,
masked frames both ways, fragmented messages, pings, close codes, the message-size bound and
reconnect after the server drops the link."""
import json

import pytest
import websockets

from mp import run_script
from ws_server import WsServer

CLIENT = r"""
import asyncio, json, sys
from firmware.links.ws import WSClient
url, sends, want, extra = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
got = []
opens = [0]
c = None
async def on_msg(t):
    got.append(t)
def on_open():
    opens[0] += 1
    for m in sends:  # "*y70000": 70000 times "y" (argv stays short)
        asyncio.create_task(c.send(m[1] * int(m[2:]) if m.startswith("*") else m))
async def main():
    global c
    c = WSClient(url, auth=tuple(extra["auth"]) if extra.get("auth") else None,
                 max_msg=extra.get("max_msg", 8192), ping_s=extra.get("ping_s", 60),
                 backoff_min_ms=200, backoff_max_ms=400, on_message=on_msg, on_open=on_open)
    t = asyncio.create_task(c.run())
    for _ in range(int(extra.get("secs", 5) * 20)):
        await asyncio.sleep_ms(50)
        if len(got) >= want and opens[0] >= extra.get("opens", 1):
            break
    print(json.dumps({"got": got, "opens": opens[0], "code": c.close_code,
                      "err": c.last_error, "connects": c.connects}))
    await c.stop()
    t.cancel()
asyncio.run(main())
"""


def _run(url, sends=(), want=1, **extra):
    out = run_script(CLIENT, args=[url, json.dumps(list(sends)), str(want), json.dumps(extra)],
                     timeout=60)
    return json.loads(out.strip().splitlines()[-1])


def test_echo_with_subprotocol_and_basic_auth():
    async def echo(ws):
        async for m in ws:
            await ws.send("echo:" + m)

    with WsServer(echo) as srv:
        r = _run("ws://127.0.0.1:%d/ocpp/CP1" % srv.port, ["héllo", "*x300", "*y70000"],
                 want=3, auth=["CP1", "secret-password-16"], max_msg=80000)
        assert r["got"] == ["echo:héllo", "echo:" + "x" * 300, "echo:" + "y" * 70000]
        h = srv.requests[0]
        assert h["Sec-WebSocket-Protocol"] == "ocpp1.6"
        import base64
        assert h["Authorization"] == "Basic " + base64.b64encode(b"CP1:secret-password-16").decode()


def test_fragmented_message_and_server_ping():
    async def frag(ws):
        await ws.ping(b"p1")  # the client must answer (websockets waits for the pong)
        await ws.send(["part1-", "part2-", "part3"])  # one message in three frames
        await ws.recv()

    with WsServer(frag) as srv:
        r = _run("ws://127.0.0.1:%d/x" % srv.port, want=1)
        assert r["got"] == ["part1-part2-part3"]


def test_oversize_message_closes_with_1009_and_reconnects():
    n = [0]

    async def big(ws):
        n[0] += 1
        if n[0] == 1:
            await ws.send("z" * 5000)
            try:
                await ws.recv()
            except websockets.ConnectionClosed as e:
                srv.closes.append(e.rcvd.code if e.rcvd else None)
        else:
            await ws.send("small")
            await ws.wait_closed()

    with WsServer(big) as srv:
        srv.closes = []
        r = _run("ws://127.0.0.1:%d/x" % srv.port, want=1, max_msg=4096, opens=2)
        assert r["got"] == ["small"]
        assert srv.closes == [1009]
        assert r["opens"] == 2


def test_server_close_code_is_echoed_and_client_reconnects():
    n = [0]

    async def closer(ws):
        n[0] += 1
        if n[0] == 1:
            await ws.close(4001, "go away")
        else:
            await ws.send("again")
            await ws.wait_closed()

    with WsServer(closer) as srv:
        r = _run("ws://127.0.0.1:%d/x" % srv.port, want=1, opens=2)
        assert r["got"] == ["again"] and r["opens"] == 2


def test_wrong_subprotocol_is_refused():
    async def h(ws):
        await ws.send("should not arrive")

    with WsServer(h, subprotocols=("ocpp2.0.1",)) as srv:
        r = _run("ws://127.0.0.1:%d/x" % srv.port, want=1, secs=1.5)
        assert r["got"] == [] and r["opens"] == 0
        assert "subprotocol" in (r["err"] or "") or "refused" in (r["err"] or "")
