"""The web page's build: the committed gzip page is what web/ builds, the vendored microdot
is the pinned PyPI release byte for byte, and the feature costs nothing while it is off."""
import glob
import json
import os
import subprocess
import sys

from mp import ROOT, run_script


def test_committed_page_is_what_web_builds():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "web_assets.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_vendored_microdot_is_the_pinned_release():
    pin = [ln for ln in open(os.path.join(ROOT, "requirements.txt")) if ln.startswith("microdot==")]
    assert pin == ["microdot==2.7.0\n"]
    import microdot  # the venv's copy, installed from the pin
    assert microdot.__version__ == "2.7.0"
    wheel = open(os.path.join(os.path.dirname(microdot.__file__), "microdot.py"), "rb").read()
    assert open(os.path.join(ROOT, "firmware", "vendor", "microdot.py"), "rb").read() == wheel


def test_page_needs_nothing_from_outside():
    html = open(os.path.join(ROOT, "web", "index.html")).read()
    js = open(os.path.join(ROOT, "web", "app.js")).read()
    for src in (html, js, open(os.path.join(ROOT, "web", "app.css")).read()):
        assert "http://" not in src and "https://" not in src  # no CDN, no fonts from elsewhere
    assert glob.glob(os.path.join(ROOT, "web", "*")) and "/*JS*/" in html


def test_web_is_not_imported_while_web_port_is_off():
    out = run_script(
        "import sys, json\n"
        "from firmware import startup as app\n"
        "from firmware.services.config import Config\n"
        "c = Config()\n"
        "on = [m for m, k in app.FEATURES if c.get(k)]\n"
        "print(json.dumps([('firmware.links.web', 'web_port') in app.FEATURES, 'firmware.links.web' in on,"
        " [m for m in sys.modules if 'web' in m or 'microdot' in m]]))")
    assert json.loads(out.strip().splitlines()[-1]) == [True, False, []]
