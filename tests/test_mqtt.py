"""firmware/links/mqtt_client.py in the MicroPython unix port against a real mosquitto, with
paho-mqtt as the peer, plus silent/dead/hostile fake brokers."""
import signal
import time

from broker import (FakeBroker, Peer, broker_factory, connack, dead_port, device,  # noqa: F401
                    read_packet, tls_files)

GAP_BOUND_US = 100_000  # generous: a 10 ms ticker must never stall this long (the driver
# subtracts the time the host kept the process off the CPU: tests/mqtt_driver.py run_delay_us)


def test_publish_qos0_qos1_retained(broker_factory, device):
    b = broker_factory()
    peer = Peer(b.port)
    d = device(port=b.port)
    d.wait("connect")
    assert d.pub("t/q0", "zero", 0) is True
    pid = d.pub("t/q1", "one", 1)
    assert isinstance(pid, int) and pid > 0
    d.wait("puback", pid=pid)
    pid2 = d.pub("t/state", "B2", 1, True)
    d.wait("puback", pid=pid2)
    got = {}
    for _ in range(3):
        m = peer.get()
        assert m is not None, "peer missed a message"
        got[m.topic] = (m.payload, m.qos)
    assert got == {"t/q0": (b"zero", 0), "t/q1": (b"one", 1), "t/state": (b"B2", 1)}
    peer.close()
    late = Peer(b.port, client_id="late", topics=("t/state",))
    m = late.get()
    assert m.payload == b"B2" and m.retain
    late.close()
    s = d.stats()
    assert s["connects"] == 1 and s["pending"] == 0 and s["errors"] == 0
    assert s["bytes_out"] > 0 and s["bytes_in"] > 0


def test_subscribe_receive_qos0_qos1_and_retained(broker_factory, device):
    b = broker_factory()
    peer = Peer(b.port)
    peer.publish("cmd/set/current", b"16", 1, True)  # retained before the device subscribes
    d = device(port=b.port)
    d.wait("connect")
    d.cmd("sub", "sub", t="cmd/#", q=1)
    m = d.wait("msg", t="cmd/set/current")
    assert bytes.fromhex(m["p"]) == b"16" and m["r"] is True
    peer.publish("cmd/a", b"\x00\xffbin", 0)
    peer.publish("cmd/b", b"q1", 1)
    m = d.wait("msg", t="cmd/a")
    assert bytes.fromhex(m["p"]) == b"\x00\xffbin" and m["r"] is False
    m = d.wait("msg", t="cmd/b")
    assert bytes.fromhex(m["p"]) == b"q1"
    time.sleep(0.3)
    assert "Received PUBACK from dev1" in b.read_log()  # the device acked the QoS 1 message
    peer.close()


def test_bounded_queue_offline_then_flushed_in_order(broker_factory, device):
    b = broker_factory()
    peer = Peer(b.port)
    d = device(port=b.port, gate=False, queue_len=3)  # gate shut: stays offline
    big = "x" * 2000  # larger than the 512-byte output buffer: written in pieces
    pids = [d.pub("q/1", "a", 1), d.pub("q/2", big, 1), d.pub("q/3", "c", 1)]
    assert all(isinstance(p, int) for p in pids) and len(set(pids)) == 3
    assert d.pub("q/4", "d", 1) is False  # full
    assert d.pub("q/t", "t", 0) is False  # QoS 0 while offline
    assert d.pub("bad/#", "w", 1) is False  # wildcard in a publish topic
    s = d.stats()
    assert s["dropped"] == 3 and s["pending"] == 3 and s["attempts"] == 0
    d.cmd("gate", "gate", v=True)
    d.wait("connect")
    for pid in pids:
        d.wait("puback", pid=pid)
    got = [peer.get() for _ in range(3)]
    assert [(m.topic, m.payload) for m in got] == [
        ("q/1", b"a"), ("q/2", big.encode()), ("q/3", b"c")]
    assert d.stats()["pending"] == 0
    peer.close()


def test_last_will_on_kill_and_not_on_clean_disconnect(broker_factory, device):
    b = broker_factory()
    peer = Peer(b.port, topics=("wb/+/status",))
    will = ["wb/1/status", "offline", 1, True]
    d = device(port=b.port, will=will)
    d.wait("connect")
    d.kill()
    m = peer.get(topic="wb/1/status")
    assert m is not None and m.payload == b"offline"
    d2 = device(port=b.port, will=["wb/2/status", "offline", 1, False], client_id="dev2")
    d2.wait("connect")
    d2.cmd("disconnect", "disconnected")
    d2.wait("run_exit")
    assert peer.get(timeout=1.0, topic="wb/2/status") is None
    assert "Client dev2 disconnected." in b.read_log()
    peer.close()


def test_password_accepted_and_refused(broker_factory, device):
    b = broker_factory(users={"wb": "s3cret", "peer": "p"})
    ok = device(port=b.port, user="wb", password="s3cret")
    ok.wait("connect")
    bad = device(port=b.port, user="wb", password="wrong", client_id="bad",
                 backoff_min_ms=100, backoff_max_ms=200)
    time.sleep(1.5)
    s = bad.stats()
    assert s["connects"] == 0 and s["attempts"] >= 3 and "refused 5" in s["last_error"]
    assert bad.alive()
    assert ok.stats()["connected"]


def test_acl_denied_topic_keeps_running(broker_factory, device):
    acl = "user wb\ntopic readwrite ok/#\ntopic read cmd/#\n"
    b = broker_factory(users={"wb": "pw", "peer": "p"}, acl=acl + "user peer\ntopic readwrite #\n")
    peer = Peer(b.port, user="peer", password="p")
    d = device(port=b.port, user="wb", password="pw")
    d.wait("connect")
    d.cmd("sub", "sub", t="secret/#", q=1)  # mosquitto 2.0 grants it, filters on delivery
    pid = d.pub("secret/x", "no", 1)  # denied: mosquitto drops it (still PUBACKs in 3.1.1)
    d.wait("puback", pid=pid)
    pid = d.pub("ok/x", "yes", 1)
    d.wait("puback", pid=pid)
    m = peer.get()
    assert m.topic == "ok/x" and m.payload == b"yes"
    assert peer.get(timeout=0.5, topic="secret/x") is None
    # the packet id of the denied one depends on whether the SUBSCRIBE took an id first
    import re
    assert re.search(r"Denied PUBLISH from dev1 \(d0, q1, r0, m\d+, 'secret/x'", b.read_log())
    peer.publish("secret/y", b"hidden", 1)
    peer.publish("cmd/z", b"allowed", 1)
    d.cmd("sub", "sub", t="cmd/#", q=1)
    time.sleep(0.2)
    peer.publish("cmd/z", b"allowed", 1)
    d.wait("msg", t="cmd/z")
    assert not [e for e in d.seen if e.get("t") == "secret/y"]
    s = d.stats()
    assert s["connected"] and s["connects"] == 1 and s["errors"] == 0
    peer.close()


def test_suback_failure_counted_link_stays_up(device):
    def handler(conn):
        if not connack(conn):
            return
        while True:
            p = read_packet(conn, timeout=10)
            if p is None:
                return
            if p[0] == 0x82:  # SUBSCRIBE -> refuse it
                conn.sendall(b"\x90\x03" + p[1][:2] + b"\x80")
            elif p[0] == 0xC0:
                conn.sendall(b"\xd0\x00")

    fb = FakeBroker(handler)
    try:
        d = device(port=fb.port, keepalive_s=1)
        d.wait("connect")
        d.cmd("sub", "sub", t="no/#", q=1)
        time.sleep(1.2)  # and a couple of pings answered
        s = d.stats()
        assert s["sub_failures"] == 1 and s["connected"] and s["connects"] == 1
    finally:
        fb.close()


def test_broker_restart_resubscribes_and_resends_unacked_with_dup(broker_factory, device):
    b = broker_factory()
    d = device(port=b.port, keepalive_s=2, backoff_min_ms=100, backoff_max_ms=300)
    d.wait("connect")
    d.cmd("sub", "sub", t="cmd/#", q=1)
    time.sleep(0.2)
    b.freeze()  # half-open: TCP accepts our bytes, nothing answers
    sent = [d.pub("s/rec", "r%d" % i, 1) for i in range(3)]
    assert all(sent)
    d.wait("down", timeout=6)  # ping timeout noticed the dead broker
    d.cmd("gate", "gate", v=False)  # hold the reconnect until the peer listens again
    b.stop(signal.SIGKILL)  # the frozen broker dies: a crash
    queued = d.pub("s/rec", "r3", 1)  # offline: queued, sent after reconnect
    assert queued and d.pub("s/tele", "x", 0) is False  # QoS 0 offline is refused
    b.start()
    peer = Peer(b.port)
    d.cmd("gate", "gate", v=True)
    d.wait("connect", n=2, timeout=5)
    for pid in sent + [queued]:
        d.wait("puback", pid=pid)
    got = sorted(peer.get().payload for _ in range(4))
    assert got == [b"r0", b"r1", b"r2", b"r3"]
    log = b.read_log().split("mosquitto version 2")[-1]  # this run's log only
    assert log.count("Received PUBLISH from dev1 (d1, q1") == 3  # re-sent with DUP
    assert "Received PUBLISH from dev1 (d0, q1, r0, m%d" % queued in log
    peer.publish("cmd/after", b"1", 1)  # resubscribed
    d.wait("msg", t="cmd/after")
    peer.close()


def test_tls_with_ca_connects(broker_factory, device, tls_files):
    b = broker_factory(tls=tls_files)
    peer = Peer(b.port)
    d = device(port=b.tls_port, host="localhost", ca_file=tls_files["ca_der"])
    d.wait("connect")
    pid = d.pub("tls/x", "secure", 1)
    d.wait("puback", pid=pid)
    assert peer.get().payload == b"secure"
    d.cmd("sub", "sub", t="in/#", q=1)
    time.sleep(0.3)
    for i in range(5):  # several packets per TLS read: the poll must see buffered records
        peer.publish("in/%d" % i, b"m%d" % i, i % 2)
    for i in range(5):
        assert bytes.fromhex(d.wait("msg", t="in/%d" % i)["p"]) == b"m%d" % i
    peer.close()


def test_tls_wrong_ca_refused_keeps_retrying(broker_factory, device, tls_files):
    b = broker_factory(tls=tls_files)
    d = device(port=b.tls_port, host="127.0.0.1", ca_file=tls_files["wrong_der"],
               backoff_min_ms=100, backoff_max_ms=200)
    time.sleep(1.5)
    s = d.stats()
    assert s["connects"] == 0 and s["attempts"] >= 3 and s["errors"] >= 3
    assert d.alive() and not s["connected"]


def _ticker_bound(d, seconds):
    d.cmd("reset_gap", "reset_gap")
    time.sleep(seconds)
    s = d.stats()
    assert s["ticks"] > 0.5 * seconds * 100, s  # 10 ms ticker kept running
    assert s["gap_us"] < GAP_BOUND_US, s
    return s


def test_silent_broker_does_not_stall_the_loop(device):
    fb = FakeBroker(lambda conn: time.sleep(30))  # accepts TCP, never answers
    try:
        d = device(port=fb.port, connect_timeout_ms=300, backoff_min_ms=50, backoff_max_ms=100)
        s = _ticker_bound(d, 2.0)
        assert s["connects"] == 0 and s["attempts"] >= 3 and fb.accepted >= 3
        assert "Timeout" in s["last_error"]
    finally:
        fb.close()


def test_unreachable_port_does_not_stall_the_loop(device):
    hold = dead_port()
    d = device(port=hold.getsockname()[1], backoff_min_ms=20, backoff_max_ms=50)
    s = _ticker_bound(d, 1.5)
    hold.close()
    assert s["connects"] == 0 and s["attempts"] >= 5


def test_gate_blocks_connect(broker_factory, device):
    b = broker_factory()
    d = device(port=b.port, gate=False)
    time.sleep(0.5)
    assert d.stats()["attempts"] == 0
    d.cmd("gate", "gate", v=True)
    d.wait("connect")


def _malformed_closes(device, blob, hold=True):
    """Fake broker: CONNACK, then `blob`, then keeps the socket open; the client must
    close it itself and reconnect."""
    closed_by_client = []

    def handler(conn):
        if not connack(conn):
            return
        conn.sendall(blob)
        if hold and read_packet(conn, timeout=3.0) is None:
            closed_by_client.append(conn.recv(1) == b"")
        time.sleep(5)

    fb = FakeBroker(handler)
    try:
        d = device(port=fb.port, backoff_min_ms=50, backoff_max_ms=100, response_ms=500)
        d.wait("connect", n=2, timeout=5)
        assert d.alive()
        return closed_by_client, d.stats()
    finally:
        fb.close()


def test_malformed_packets_close_and_reconnect(device):
    cases = {
        "remaining length > 4 bytes": b"\x30\xff\xff\xff\xff\x01",
        "unknown type 15": b"\xf0\x00",
        "reserved type 0": b"\x00\x00",
        "second CONNACK": b"\x20\x02\x00\x00",
        "QoS 2 publish": b"\x34\x05\x00\x01a\x00\x01",
        "topic longer than packet": b"\x30\x03\x00\x09a",
        "oversize, truncated": b"\x30\xff\xff\x03",
        "truncated": b"\x30\x0a\x00\x01a",
        "bad PUBACK length": b"\x40\x03\x00\x01\x00",
        "bad UTF-8 topic": b"\x30\x04\x00\x02\xff\xfe",
    }
    for name, blob in cases.items():
        closed, s = _malformed_closes(device, blob)
        assert closed and all(closed), name
        assert s["errors"] >= 1, name


def test_oversize_publish_read_past_link_stays_up(broker_factory, device):
    """An incoming publish above max_packet (retained too) is read past and acknowledged;
    the connection stays up and the next message arrives (issue 12 item 3)."""
    b = broker_factory()
    peer = Peer(b.port)
    peer.publish("cmd/big", b"x" * 3000, 1, True)  # retained: sent on every subscribe
    d = device(port=b.port, max_packet=256)
    d.wait("connect")
    d.cmd("sub", "sub", t="cmd/#", q=1)
    ev = d.wait("oversize", t="cmd/big")
    assert ev["r"] is True and ev["n"] == 3000
    for i in range(3):
        peer.publish("cmd/big", b"y" * 1000, i % 2)  # live, QoS 0 and 1
        peer.publish("cmd/small", b"ok%d" % i, 1)
        m = d.wait("msg", t="cmd/small")
        assert bytes.fromhex(m["p"]) == b"ok%d" % i
    time.sleep(0.3)
    s = d.stats()
    assert s["connects"] == 1 and s["errors"] == 0 and s["connected"], s
    assert s["discarded"] == 4, s
    assert "Received PUBACK from dev1" in b.read_log()
    peer.close()


def test_lanes_urgent_and_reply_room_beyond_a_full_queue(broker_factory, device):
    b = broker_factory()
    peer = Peer(b.port)
    d = device(port=b.port, gate=False, queue_len=3)  # offline: nothing drains
    for i in range(3):
        assert d.pub("n/%d" % i, "x", 1)
    assert d.pub("n/full", "x", 1) is False  # the normal lane is full ...
    assert d.pub("u/ev", "fault", 1, lane=2)  # ... the urgent lane has its own room
    assert d.pub("r/rep", "reply", 1, lane=1)  # ... and so has the reply lane
    s = d.stats()
    assert s["dropped"] == 1 and s["dropped_urgent"] == 0 and s["dropped_reply"] == 0
    d.cmd("gate", "gate", v=True)
    d.wait("connect")
    got = [peer.get() for _ in range(5)]
    topics = [m.topic for m in got if m is not None]
    assert topics[0] == "u/ev" and sorted(topics[1:]) == ["n/0", "n/1", "n/2", "r/rep"], topics
    peer.close()


def _packet():
    from hypothesis import strategies as st

    def enc(body, first, raw_rl):
        n, rl = len(body), bytearray()
        while True:
            b, n = n & 0x7F, n >> 7
            rl.append(b | 0x80 if n else b)
            if not n:
                break
        return bytes([first]) + (raw_rl if raw_rl is not None else bytes(rl)) + body

    return st.builds(enc, st.binary(max_size=40), st.integers(0, 255),
                     st.one_of(st.none(), st.binary(min_size=1, max_size=5)))


def test_property_hostile_broker_never_crashes_client():
    import queue
    from hypothesis import given, settings, strategies as st
    from broker import Device

    blobs = queue.Queue()

    def handler(conn):
        if not connack(conn):
            return
        conn.sendall(blobs.get(timeout=20))
        time.sleep(0.05)  # let the client react before we close (it may close first)
        conn.close()

    n = [0]
    fb = FakeBroker(handler)
    d = Device(port=fb.port, backoff_min_ms=10, backoff_max_ms=20, response_ms=200,
               max_packet=256)
    try:
        d.wait("connect")

        @settings(max_examples=40)
        @given(st.one_of(st.binary(max_size=80),
                         st.lists(_packet(), max_size=4).map(b"".join)))
        def example(blob):
            n[0] += 1
            k = fb.accepted
            blobs.put(blob)
            end = time.time() + 5
            while fb.accepted <= k and time.time() < end and d.alive():
                time.sleep(0.005)
            assert d.alive(), d.stderr()
            assert fb.accepted > k, "client did not reconnect"

        example()
        # the last reconnect may still be between TCP accept and CONNACK: wait for it
        end = time.time() + 5
        s = d.stats()
        while s["connects"] <= n[0] and time.time() < end:
            time.sleep(0.05)
            s = d.stats()
        assert n[0] >= 10
        assert s["connects"] > n[0], (s, n[0])
        assert s["gap_us"] < GAP_BOUND_US, s
    finally:
        d.close()
        fb.close()
