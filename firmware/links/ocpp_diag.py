# OCPP 1.6 GetDiagnostics (§5.8): the event log uploaded to the CSMS's location with an HTTP
# PUT (chunked, one event line at a time: never the whole log in RAM), reported with
# DiagnosticsStatusNotification Uploading / Uploaded / UploadFailed. Imported on use.
import asyncio

from firmware.core import isotime
from firmware.links.net import is_ip, split_url


def split_http(url):
    """(host, port, path) of an http:// URL; ValueError otherwise (ftp:// is not supported)."""
    return split_url(url, (("http", 80),))[1:]


async def upload(oc, location, name, retries, interval_s):
    st = "UploadFailed"
    for attempt in range(retries + 1):
        oc.send_later("DiagnosticsStatusNotification", {"status": "Uploading"})
        try:
            if await _put(oc, location, name):
                st = "Uploaded"
                break
        except Exception as ex:
            oc.rt.store.event("ocpp_diag", repr(ex)[:70], 0)
        await asyncio.sleep_ms(interval_s * 1000)
    oc.diag_status = st
    oc.send_later("DiagnosticsStatusNotification", {"status": st})


async def _put(oc, location, name):
    host, port, path = split_http(location)
    while oc.rt.evse.outputs.contactor and not is_ip(host):
        await asyncio.sleep_ms(1000)  # a DNS look-up blocks in C: not while charging
    r, w = await asyncio.wait_for_ms(asyncio.open_connection(host, port), 10000)
    try:
        p = path.rstrip("/") + "/" + name
        w.write(("PUT %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: text/plain\r\n"
                 "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" % (p, host, port)).encode())
        await w.drain()
        for e in oc.rt.store.events():
            line = ("%s up=%d %s %s\n" % (isotime.iso(e["t"]) if e["t"] else "-", e["up"],
                                          e["type"], e["detail"])).encode()
            w.write(b"%x\r\n" % len(line) + line + b"\r\n")
            await asyncio.wait_for_ms(w.drain(), 10000)
        w.write(b"0\r\n\r\n")
        await asyncio.wait_for_ms(w.drain(), 10000)
        status = await asyncio.wait_for_ms(r.readline(), 10000)
        parts = status.split()
        return len(parts) >= 2 and parts[1][:1] == b"2"
    finally:
        w.close()
        await w.wait_closed()

