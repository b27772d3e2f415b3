"use strict";
// The wallbox page: talks to the firmware's JSON API (docs/web.md) and its live stream.
var $ = function (id) { return document.getElementById(id); };
var csrf = null, es = null, lastEvent = 0, lastCheck = 0, st = null;
var STATES = {A: "No car connected", B: "Car connected", B1: "Car connected, waiting",
  B2: "Car connected, ready", C1: "Car waiting for current", C2: "Charging",
  D1: "Car waiting (ventilation)", D2: "Charging (ventilation)", E: "Error: no pilot signal",
  F: "Fault: charging stopped"};
var FAULTS = {pilot_short: "The charging cable's pilot wire is shorted",
  diode: "The car's pilot diode is missing or faulty", rcd_trip: "Residual current detected: power cut for safety",
  rcd_selftest: "The residual current device failed its self-test", welded: "The contactor is stuck closed (welded)",
  contactor: "The contactor did not close", lock: "The socket lock did not move",
  overtemp: "Too hot: charging stopped", overcurrent: "The car drew more current than allowed",
  cp_reading: "The pilot signal cannot be read", pp_reading: "The cable's current rating cannot be read",
  no_ventilation: "The car asks for ventilation, which this wallbox does not have",
  lockout: "Too many faults in a row: reset needed"};
var GROUPS = [["WiFi", /^wifi_/], ["MQTT / Home Assistant", /^(mqtt_|ha_|telemetry_s)/], ["OCPP", /^ocpp_/],
  ["Limits", /^(max_current_a|cable_fixed_a|fallback_|lm_|mains_|pv_|phases$|phase_switch)/],
  ["Web page", /^web_/], ["Installer", /./]];

function show(id, on) { $(id).hidden = !on; }
function text(id, t) { $(id).textContent = t; }

function api(method, path, body) {
  var h = {};
  if (body !== undefined) { h["Content-Type"] = "application/json"; }
  if (csrf) { h["X-CSRF-Token"] = csrf; }
  return fetch(path, {method: method, headers: h, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body)}).then(function (r) {
    return r.json().catch(function () { return {error: "HTTP " + r.status}; }).then(function (j) {
      if (!r.ok && !j.error) { j.error = "HTTP " + r.status; }
      if (r.status === 401 && csrf) { csrf = null; start(); }
      return j;
    });
  }, function () { return {error: "the wallbox does not answer"}; });
}

function fmtTime(s) {
  var h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
  return (h ? h + " h " : "") + m + " min";
}

function render(s) {
  st = s;
  var name = STATES[s.state] || STATES[s.state.charAt(0)] || s.state;
  if (!s.enabled && s.state !== "A" && s.state.charAt(0) !== "F") { name += " (charging disabled)"; }
  text("s-state", name);
  $("s-state").dataset.state = s.state;
  var f = $("s-faults");
  f.hidden = !s.faults.length;
  f.textContent = s.faults.map(function (k) { return FAULTS[k] || k; }).join(". ");
  text("s-offered", s.offered_a.toFixed(1) + " A");
  text("s-limit", s.limit);
  text("s-current", s.current_a.map(function (a) { return a.toFixed(1); }).join(" / ") + " A");
  text("s-power", (s.power_w / 1000).toFixed(2) + " kW");
  text("s-session", s.session ? (s.session.wh / 1000).toFixed(2) + " kWh, " + fmtTime(s.session.s) : "none");
  text("s-energy", (s.energy_wh / 1000).toFixed(1) + " kWh");
  text("fw", s.fw);
  if (s.ota) {
    show("f-update", !!csrf);
    text("ota-state", "(" + (s.ota.slot || "") + (s.ota.trial ? ", on trial" : "") +
      (s.ota.state !== "idle" ? ", update " + s.ota.state + (s.ota.progress !== null ? " " + s.ota.progress + " %" : "") : "") + ")");
  }
  var en = $("c-enable");
  en.textContent = s.enabled ? "Enabled: tap to disable" : "Disabled: tap to enable";
  en.className = s.enabled ? "on" : "";
  $("c-ph1").className = s.phases === 1 ? "sel" : "";
  $("c-ph3").className = s.phases === 3 ? "sel" : "";
  if (document.activeElement !== $("c-current") && !$("c-current").dataset.touched) {
    $("c-current").value = s.limit_a;
  }
  if (s.lm_mode !== undefined) {
    var sel = $("c-lm");
    if (!sel.options.length) {
      (s.lm_modes || [s.lm_mode]).forEach(function (m) { sel.add(new Option(m, m)); });
    }
    show("lm-row", true);
    if (document.activeElement !== sel) { sel.value = s.lm_mode; }
  }
}

function setConn(ok, why) {
  var c = $("conn");
  c.className = ok ? "conn" : "conn off";
  c.textContent = ok ? "live" : why;
}

function stream() {
  if (es) { es.close(); }
  es = new EventSource("/api/events");
  lastEvent = Date.now();
  es.onmessage = function (e) { lastEvent = Date.now(); setConn(true); render(JSON.parse(e.data)); };
  es.onerror = function () { setConn(false, "connection lost: retrying…"); };
}
setInterval(function () {
  if (es && Date.now() - lastEvent > 5000 && Date.now() - lastCheck > 3000) {
    lastCheck = Date.now();
    setConn(false, "connection lost: retrying…");
    if (es.readyState === 2) { es.close(); es = null; start(); }  // refused (e.g. logged out by a reboot)
  }
}, 1000);

function msg(okId, errId, j, okText) {
  text(errId, j.error || "");
  text(okId, j.error ? "" : okText);
}

function cmd(name, value) {
  var body = {cmd: name};
  if (value !== undefined) { body.value = value; }
  return api("POST", "/api/cmd", body).then(function (j) { msg("c-ok", "c-err", j, "done"); return j; });
}

function loadSessions() {
  api("GET", "/api/sessions").then(function (j) {
    var tb = $("sessions").tBodies[0];
    tb.textContent = "";
    (j.sessions || []).slice().reverse().forEach(function (s) {
      var tr = tb.insertRow();
      var t = s.start_s ? new Date(s.start_s * 1000).toLocaleString() : "boot " + s.sid.split("-").slice(-2).join("/");
      [t, (s.wh / 1000).toFixed(2), fmtTime(s.dur_s), s.reason].forEach(function (v) {
        tr.insertCell().textContent = v;
      });
    });
  });
}

function loadSettings() {
  api("GET", "/api/config").then(function (j) {
    var box = $("settings"), seen = {};
    box.textContent = "";
    GROUPS.forEach(function (g) {
      var rows = (j.settings || []).filter(function (r) { return !seen[r[0]] && g[1].test(r[0]); });
      if (!rows.length) { return; }
      var h = document.createElement("h3");
      h.textContent = g[0];
      box.appendChild(h);
      rows.forEach(function (r) {
        seen[r[0]] = 1;
        var d = document.createElement("label"), i = document.createElement("input"), sm = document.createElement("small");
        d.className = "set";
        d.appendChild(document.createTextNode(r[0]));
        i.name = r[0];
        if (r[2]) { i.type = "password"; i.placeholder = r[1] ? "set (leave empty to keep)" : "not set"; i.value = ""; }
        else { i.value = String(r[1]); }
        i.dataset.orig = i.value;
        sm.textContent = r[3];
        d.appendChild(i);
        d.appendChild(sm);
        box.appendChild(d);
      });
    });
  });
}

function start() {
  api("GET", "/api/session").then(function (j) {
    csrf = j.csrf;
    text("title", "Wallbox " + (j.id || ""));
    show("v-setup", !j.password);
    show("v-login", j.password && !j.user);
    show("v-main", j.user || j.public);
    show("logout", j.user);
    document.querySelectorAll(".owner").forEach(function (e) { e.hidden = !j.user; });
    if (j.user || j.public) { stream(); } else if (es) { es.close(); es = null; setConn(false, "logged out"); }
    if (j.user) { loadSessions(); loadSettings(); }
    if (!j.password || (!j.user && !j.public)) { setConn(false, j.password ? "log in" : "setup"); }
  });
}

$("f-setup").onsubmit = function (e) {
  e.preventDefault();
  api("POST", "/api/setup", {code: $("setup-code").value.trim(), password: $("setup-pw").value}).then(function (j) {
    text("setup-err", j.error || "");
    if (!j.error) { start(); }
  });
};
$("f-login").onsubmit = function (e) {
  e.preventDefault();
  api("POST", "/api/login", {password: $("login-pw").value}).then(function (j) {
    text("login-err", j.error || "");
    if (!j.error) { $("login-pw").value = ""; start(); }
  });
};
$("logout").onclick = function () {
  api("POST", "/api/logout", {}).then(function () { csrf = null; start(); });
};
$("c-enable").onclick = function () { cmd("enable", st ? !st.enabled : true); };
$("f-current").onsubmit = function (e) {
  e.preventDefault();
  cmd("set_current", $("c-current").value).then(function (j) { if (!j.error) { delete $("c-current").dataset.touched; } });
};
$("c-current").oninput = function () { $("c-current").dataset.touched = "1"; };
$("c-ph1").onclick = function () { cmd("set_phases", 1); };
$("c-ph3").onclick = function () { cmd("set_phases", 3); };
$("c-reset").onclick = function () { cmd("reset_faults"); };
$("c-lm").onchange = function () {
  api("POST", "/api/config", {lm_mode: $("c-lm").value}).then(function (j) { msg("c-ok", "c-err", j, "done"); });
};
$("f-settings").onsubmit = function (e) {
  e.preventDefault();
  var body = {}, n = 0;
  $("settings").querySelectorAll("input").forEach(function (i) {
    if (i.value !== i.dataset.orig) { body[i.name] = i.value; n++; }
  });
  if (!n) { msg("set-ok", "set-err", {}, "nothing changed"); return; }
  api("POST", "/api/config", body).then(function (j) {
    msg("set-ok", "set-err", j, "saved: " + Object.keys(body).join(", "));
    if (!j.error) { loadSettings(); }
  });
};
$("f-update").onsubmit = function (e) {
  e.preventDefault();
  var f = $("u-file").files[0];
  if (!f) { msg("u-ok", "u-err", {error: "choose a .wbu file first"}, ""); return; }
  text("u-ok", "uploading " + f.name + "…");
  text("u-err", "");
  fetch("/api/update", {method: "POST", body: f, credentials: "same-origin",
    headers: {"Content-Type": "application/octet-stream", "X-CSRF-Token": csrf}}).then(function (r) {
    return r.json().catch(function () { return {error: "HTTP " + r.status}; });
  }, function () { return {error: "the wallbox does not answer"}; }).then(function (j) {
    msg("u-ok", "u-err", j, j.message || "");
  });
};
start();
