import os
import signal
import sys
import warnings

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mp import MicroPython  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tools"))
import simbench  # noqa: E402

# Hypothesis profiles: "ci" keeps `make test` short; "soak" is for `make soak`.
settings.register_profile("ci", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=20, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("soak", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def mp():
    """One MicroPython unix-port process shared by the whole session (repo root on sys.path)."""
    vm = MicroPython()
    yield vm
    vm.close()


@pytest.fixture(scope="module")
def mp32():
    """A MicroPython process on the 32-bit VM (tools/mp32: the chip's 4-byte words, 31-bit
    small ints and 2**30 tick period), one per test module."""
    vm = MicroPython(vm="mp32")
    yield vm
    vm.close()


@pytest.fixture(scope="session")
def mp_fakes():
    """A MicroPython process with the fake `machine` module first on sys.path."""
    vm = MicroPython(fakes=True)
    yield vm
    vm.close()


# ---- no firmware process outlives its test -------------------------------------------------
# A test or a fixture that fails between starting a SimBench and its close() (a setup that
# raises before `yield`, an assert outside try/finally) would leave the firmware running for
# as long as the host is up. Whatever a test, or a module's fixtures, started and left running
# is closed when that test, or that module, ends; atexit and SIGTERM close the rest.

def _reaped(what):
    before = simbench.live()
    yield
    left = simbench.live() - before
    for b in left:
        b.close()
    if left:
        warnings.warn("%s left %d firmware process(es) running: closed" % (what, len(left)))


@pytest.fixture(autouse=True)
def _reap_test_benches(request):
    yield from _reaped(request.node.nodeid)


@pytest.fixture(scope="module", autouse=True)
def _reap_module_benches(request):
    yield from _reaped(request.node.nodeid)


def _on_sigterm(signum, frame):
    simbench._reap()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


signal.signal(signal.SIGTERM, _on_sigterm)
