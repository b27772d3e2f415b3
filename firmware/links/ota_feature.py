# The OTA feature (firmware/startup.py FEATURES, config `ota`): builds the update manager
# (firmware/services/ota.py) and gives it the HTTP client; once the app has created the MQTT
# link, wires the manager to it (firmware/links/ota_mqtt.py: commands, state topic, HA
# entity). The glue is imported only then: a box without a link does not carry it (~2 KB of
# a 96 KB heap, tools/bench_runtime.py heap96k.breakdown). docs/ota.md has the rest.
import asyncio

from firmware.services.ota import Ota


def start(rt):
    ota = Ota(rt)
    rt.features["ota"] = ota
    ota.url_opener = _open_url
    tasks = [("ota_mqtt", lambda: _attach(rt, ota))]  # one-shot: ends once wired
    if ota.needs_worker():
        tasks.append(("ota", ota.worker))
    return tasks


async def _open_url(url, rt):
    from firmware.links import ota_http
    return await ota_http.open_url(url, rt)


async def _attach(rt, ota):
    await asyncio.sleep_ms(0)  # the app creates the link after the feature tasks
    link = rt.link
    if link is not None and hasattr(link, "cmd_hooks"):
        from firmware.links.ota_mqtt import OtaMqtt
        OtaMqtt(link, ota)
