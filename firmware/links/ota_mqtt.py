# The OTA feature's MQTT glue: firmware/links/ota_feature.py (the FEATURES entry) wires the
# update manager (firmware/services/ota.py) to the MQTT link with it, once there is a link:
#   <base>/cmd/update    {"url", "sha256"[, "version", "summary", "install": true, "req"]}
#                        or "install" (Home Assistant's update entity: the offered release)
#   <base>/cmd/rollback  {} : back to the previous slot
#   <base>/ota/state     retained JSON: ota.status() (the HA update entity reads it)
# Replies go to <base>/reply like every command (docs/mqtt.md). docs/ota.md has the rest.
import json
import time
from micropython import const

_MAX_PAYLOAD = const(600)
_PROGRESS_MS = const(2000)  # progress is published at most this often


class OtaMqtt:
    """No task of its own: it publishes when the update's state changes (progress at most
    every 2 s) and on every connect."""

    def __init__(self, link, ota):
        self.link = link
        self.ota = ota
        self.t_state = link.base + "/ota/state"
        link.cmd_hooks["update"] = self.cmd_update
        link.cmd_hooks["rollback"] = self.cmd_rollback
        link.ha_components.append(self.ha)
        hooks = getattr(link, "connect_hooks", None)
        if hooks is not None:
            hooks.append(self.publish)
        ota.on_change.append(self._changed)
        self._state = None
        self._last_ms = 0
        self.publish()

    def _changed(self, ota):
        now = time.ticks_ms()
        if ota.state != self._state or time.ticks_diff(now, self._last_ms) >= _PROGRESS_MS:
            self.publish()

    def publish(self):
        c = self.link.client
        if c.connected:
            self._state = self.ota.state
            self._last_ms = time.ticks_ms()
            c.publish(self.t_state, json.dumps(self.ota.status()), 1, True)

    # ---- commands: (req, ok, value|error), as Link.command ----

    def _payload(self, payload):
        # the link imported commands.py already: not carried by a box without one
        from firmware.links.commands import json_strict, utf8
        if len(payload) > _MAX_PAYLOAD:
            return None, "payload too long (max %d bytes)" % _MAX_PAYLOAD
        text = utf8(payload)  # strict UTF-8 and JSON: the one input path (commands.py)
        if text is None:
            return None, "payload must be valid UTF-8 text"
        text = text.strip()
        if not text.startswith("{"):
            return text, None
        obj, err = json_strict(text)
        if err:
            return None, "payload: " + err
        if type(obj) is not dict:
            return None, "payload: not a JSON object"
        return obj, None

    def cmd_update(self, payload):
        obj, err = self._payload(payload)
        if err:
            return None, False, err
        ota = self.ota
        if obj == "install":  # HA's update entity: install what was offered
            lt = ota.latest
            if not lt or not lt.get("url"):
                return None, False, "no release offered: send {url, sha256} first"
            ok, v = ota.start_url(lt["url"], lt.get("sha256"), origin="mqtt")
            return None, ok, v
        if type(obj) is not dict:
            return None, False, 'payload: {"url": ..., "sha256": ...} or "install"'
        req = obj.get("req")
        if req is not None and (type(req) is not str or len(req) > 32):
            return None, False, "req must be a string of at most 32 chars"
        url = obj.get("url")
        sha = obj.get("sha256")
        if type(url) is not str or len(url) > 400:
            return req, False, "url missing (http:// or https://, at most 400 chars)"
        if sha is None:
            return req, False, "sha256 missing (64 hex digits of the whole bundle)"
        if obj.get("install", True) is False:  # announce only: HA shows "update available"
            ver = obj.get("version")
            if type(ver) is not str or not ver or len(ver) > 24:
                return req, False, "an offer needs a version (at most 24 chars)"
            summ = obj.get("summary") or ""
            ota.latest = {"version": ver, "summary": str(summ)[:120], "url": url,
                          "sha256": sha}
            self.publish()
            return req, True, "offered %s" % ver
        ok, v = ota.start_url(url, sha, origin="mqtt")
        return req, ok, v

    def cmd_rollback(self, payload):
        obj, err = self._payload(payload)
        if err:
            return None, False, err
        req = obj.get("req") if type(obj) is dict else None
        ok, v = self.ota.rollback()
        return req, ok, v

    # ---- Home Assistant: an `update` entity (MQTT update platform) ----

    def ha(self, add, base):
        add("firmware", "update", "Firmware", "fw", dev_cla="firmware",
            stat_t=self.t_state, cmd_t=base + "/cmd/update", pl_inst="install",
            val_tpl="{{ {'installed_version': value_json.installed, "
                    "'latest_version': value_json.latest, "
                    "'title': 'open-wallbox firmware', "
                    "'release_summary': value_json.summary, "
                    "'in_progress': value_json.progress is not none, "
                    "'update_percentage': value_json.progress} | tojson }}")
