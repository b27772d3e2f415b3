"""The web page in a real browser (headless Chromium via selenium) against the firmware on
the sim bench: first-visit password with the console's setup code, login, the live state
following the simulated EV, setting the current and seeing the EV follow, a bad value
showing the firmware's own error text, the CSV download, a phone viewport, logout.
The steps share one firmware and one browser and run in file order."""
import os
import tempfile
import time

import pytest

from web_client import chrome, out_dir, setup_code, start_bench

PASSWORD = "correct horse 42"


@pytest.fixture(scope="module")
def bench():
    b = start_bench()
    yield b
    b.close()


@pytest.fixture(scope="module")
def browser(bench):
    dl = tempfile.mkdtemp(prefix="wallbox-dl-")
    d = chrome(dl)
    d.download_dir = dl
    d.get("http://127.0.0.1:%d/" % bench.web_port)
    yield d
    d.quit()


def by_id(d, i):
    return d.find_element("id", i)


def wait(pred, what, timeout=20):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = pred()
            if last:
                return last
        except Exception as ex:  # element not there yet, stale, ...
            last = ex
        time.sleep(0.1)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def visible(d, i):
    return by_id(d, i).is_displayed()


def text(d, i):
    return by_id(d, i).text


def test_first_visit_sets_the_password_with_the_setup_code(bench, browser):
    d = browser
    wait(lambda: visible(d, "v-setup"), "setup form")
    assert not visible(d, "v-main")
    by_id(d, "setup-code").send_keys("00000000")  # wrong code: refused, nothing set
    by_id(d, "setup-pw").send_keys(PASSWORD)
    by_id(d, "f-setup").submit()
    wait(lambda: "wrong setup code" in text(d, "setup-err"), "wrong-code error")
    assert bench.status()["web"]["password"] is False
    by_id(d, "setup-code").clear()
    by_id(d, "setup-code").send_keys(setup_code(bench))
    by_id(d, "f-setup").submit()
    wait(lambda: visible(d, "v-main"), "main view after setup")
    assert bench.status()["web"]["password"] is True


def test_login_after_logout_and_live_state(bench, browser):
    d = browser
    by_id(d, "logout").click()
    wait(lambda: visible(d, "v-login"), "login form")
    by_id(d, "login-pw").send_keys("wrong password")
    by_id(d, "f-login").submit()
    wait(lambda: "wrong password" in text(d, "login-err"), "wrong-password error")
    by_id(d, "login-pw").clear()
    by_id(d, "login-pw").send_keys(PASSWORD)
    by_id(d, "f-login").submit()
    wait(lambda: visible(d, "v-main"), "main view after login")
    wait(lambda: text(d, "conn") == "live", "live stream")
    wait(lambda: text(d, "s-state") == "No car connected", "state A")
    bench.plug()
    wait(lambda: text(d, "s-state") == "Charging", "state C2 after plug-in")
    wait(lambda: text(d, "s-current").startswith("16.0 / 16.0 / 16.0"), "16 A per phase")
    wait(lambda: text(d, "s-session") != "none", "open session")


def test_setting_the_current_and_the_ev_follows(bench, browser):
    d = browser
    box = by_id(d, "c-current")
    box.clear()
    box.send_keys("10")
    by_id(d, "f-current").submit()
    wait(lambda: text(d, "s-offered") == "10.0 A", "offer 10 A on the page")
    wait(lambda: abs(bench.read()["world"]["draw_ma"] - 10000) <= 100, "EV draws 10 A")  # duty granularity
    wait(lambda: text(d, "s-current").startswith("10.0 / 10.0 / 10.0"), "10 A shown")
    assert text(d, "s-limit") == "backend"


def test_a_bad_value_shows_the_firmwares_error_text(bench, browser):
    d = browser
    box = by_id(d, "c-current")
    box.clear()
    box.send_keys("40")
    by_id(d, "f-current").submit()
    # the same text the console and MQTT give (firmware/links/commands.py)
    want = bench.cmd("set_current", "40")  # the firmware's own answer (commands.py)
    assert want[0] is False and "6..16 A" in want[1]
    wait(lambda: text(d, "c-err") == want[1], "range error")
    assert bench.status()["limit_a"] == 10.0  # nothing changed
    d.save_screenshot(os.path.join(out_dir(), "web_main.png"))


def test_csv_download_lists_the_session(bench, browser):
    d = browser
    bench.unplug()
    wait(lambda: text(d, "s-state") == "No car connected", "state A after unplug")
    wait(lambda: bench.sessions()["sessions"], "session record")
    d.refresh()
    wait(lambda: text(d, "conn") == "live", "live after reload")
    wait(lambda: len(d.find_elements("css selector", "#sessions tbody tr")) >= 1, "session row")
    by_id(d, "csv").click()
    path = os.path.join(d.download_dir, "sessions.csv")
    wait(lambda: os.path.exists(path) and open(path).read().endswith("\n"), "downloaded CSV")
    lines = open(path).read().splitlines()
    assert lines[0].startswith("session,start_utc,stop_utc,energy_wh")
    sid = bench.sessions()["sessions"][-1]["sid"]
    assert any(ln.startswith(sid + ",") for ln in lines[1:]), lines


def test_update_upload_shows_the_firmwares_verdict(bench, browser):
    d = browser
    wait(lambda: visible(d, "f-update"), "update form (ota on by default)")
    junk = os.path.join(d.download_dir, "not-a-bundle.wbu")
    with open(junk, "wb") as f:
        f.write(b"this is not a signed bundle" * 20)
    by_id(d, "u-file").send_keys(junk)
    by_id(d, "f-update").submit()
    wait(lambda: text(d, "u-err"), "rejection text")
    assert bench.alive() and bench.read()["status"]["ota"]["state"] in ("idle", "failed")


def test_phone_viewport_fits(bench, browser):
    d = browser
    d.set_window_size(390, 844)
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
    try:
        d.refresh()
        wait(lambda: text(d, "conn") == "live", "live on the phone")
        # nothing wider than the screen: no sideways scrolling
        w = d.execute_script("return document.documentElement.scrollWidth")
        assert w <= 390, w
        for i in ("s-state", "c-enable", "c-current", "c-reset", "logout"):
            r = d.execute_script("var r=arguments[0].getBoundingClientRect();"
                                 "return [r.left, r.right, r.height]", by_id(d, i))
            assert r[0] >= 0 and r[1] <= 390 and r[2] > 0, (i, r)
        d.save_screenshot(os.path.join(out_dir(), "web_phone.png"))
    finally:
        d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        d.set_window_size(1280, 900)


def test_the_page_shows_when_the_connection_drops(bench, browser):
    d = browser
    wait(lambda: text(d, "conn") == "live", "live")
    bench.kill()
    try:
        wait(lambda: "connection lost" in text(d, "conn"), "connection-lost badge")
    finally:
        bench.start()
    # the password survived the restart; the session did not (RAM only): log in again
    wait(lambda: visible(d, "v-login") or text(d, "conn") == "live", "back after restart", 30)


def test_logout_ends_the_session(bench, browser):
    d = browser
    if visible(d, "v-login"):
        by_id(d, "login-pw").send_keys(PASSWORD)
        by_id(d, "f-login").submit()
        wait(lambda: visible(d, "v-main"), "main view")
    by_id(d, "logout").click()
    wait(lambda: visible(d, "v-login"), "login form after logout")
    assert not visible(d, "v-main")
    assert d.execute_async_script(
        "var cb=arguments[0]; fetch('/api/state').then(function(r){cb(r.status)})") == 401
