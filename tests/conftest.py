import os
import sys

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mp import MicroPython  # noqa: E402

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


@pytest.fixture(scope="session")
def mp_fakes():
    """A MicroPython process with the fake `machine` module first on sys.path."""
    vm = MicroPython(fakes=True)
    yield vm
    vm.close()
