# Runs in the MicroPython unix port: firmware.links.mqtt_client.MQTTClient driven by JSON
# lines on stdin, events as JSON lines on stdout (see tests/broker.py Device).
# A ticker task beside the client records the longest event-loop gap.
import sys
import json
import asyncio
from binascii import hexlify
from time import ticks_ms, ticks_us, ticks_diff
from firmware.links.mqtt_client import MQTTClient

cfg = json.loads(sys.argv[1])
tick_ms = cfg.pop("tick_ms", 10)
gate = [cfg.pop("gate", True)]
ca = cfg.pop("ca_file", None)
if ca:
    with open(ca, "rb") as f:
        cfg["tls"] = f.read()
if cfg.get("will"):
    cfg["will"] = tuple(cfg["will"])
gap = [0, 0, 0]  # longest tick gap outside host stalls (us), ticks, longest raw gap (us)


def emit(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")


def on_msg(topic, payload, retained):
    emit(ev="msg", t=topic, p=hexlify(payload).decode(), r=retained)


c = MQTTClient(may_connect=lambda: gate[0], on_message=on_msg,
               on_connect=lambda: emit(ev="connect", n=c.connects),
               on_puback=lambda pid: emit(ev="puback", pid=pid),
               on_disconnect=lambda: emit(ev="down"), **cfg)
c.on_oversize = lambda topic, size, retained: emit(ev="oversize", t=topic, n=size, r=retained)


def run_delay_us():
    """Time this process spent runnable but waiting for a CPU (Linux schedstat): a host
    stall, not the client's doing. 0 where /proc has no schedstat."""
    try:
        with open("/proc/self/schedstat") as f:
            return int(f.read().split()[1]) // 1000
    except (OSError, ValueError, IndexError):
        return 0


async def ticker():
    # gap[0]: the longest tick gap less the time the host kept the process off the CPU in it
    # (what the client itself held the loop for); gap[2]: the raw longest gap, for the report.
    last = ticks_us()
    last_rd = run_delay_us()
    while True:
        await asyncio.sleep_ms(tick_ms)
        now = ticks_us()
        rd = run_delay_us()
        raw = ticks_diff(now, last)
        d = raw - (rd - last_rd)
        last = now
        last_rd = rd
        gap[1] += 1
        if d > gap[0]:
            gap[0] = d
        if raw > gap[2]:
            gap[2] = raw


def stats():
    return dict(ev="stats", connected=c.connected, connects=c.connects, attempts=c.attempts,
                bytes_in=c.bytes_in, bytes_out=c.bytes_out, dropped=c.dropped,
                discarded=c.discarded, dropped_urgent=c.dropped_urgent,
                dropped_reply=c.dropped_reply,
                errors=c.errors, sub_failures=c.sub_failures, pending=c.pending(),
                last_error=c.last_error, gap_us=gap[0], ticks=gap[1], raw_gap_us=gap[2])


async def runner():
    await c.run()
    emit(ev="run_exit")


async def main():
    asyncio.create_task(ticker())
    asyncio.create_task(runner())
    rd = asyncio.StreamReader(sys.stdin)
    while True:
        line = await rd.readline()
        if not line:
            return
        m = json.loads(line)
        op = m["op"]
        if op == "pub":
            emit(ev="pub", ret=c.publish(m["t"], m["p"], m.get("q", 0), m.get("r", False),
                                         m.get("lane", 0)))
        elif op == "sub":
            emit(ev="sub", ret=c.subscribe(m["t"], m.get("q", 0)))
        elif op == "gate":
            gate[0] = m["v"]
            emit(ev="gate")
        elif op == "stats":
            emit(**stats())
        elif op == "reset_gap":
            gap[0] = gap[1] = gap[2] = 0
            emit(ev="reset_gap")
        elif op == "disconnect":
            await c.disconnect()
            emit(ev="disconnected")
        elif op == "quit":
            return


asyncio.run(main())
