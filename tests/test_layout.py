"""The package layout (docs/interfaces.md "Layout"): the core imports nothing above it,
only the composition root and the sim entry points know boards and the sim channel, the
shared constants have one definition, and no core function outgrows a reviewer's screen."""
import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = ("PILOT_OFF", "PILOT_PLUS12", "PILOT_PWM", "PILOT_MINUS12", "TEMP_NONE", "PP_OPEN_OHM")


def _device_files():
    for d in ("firmware", "hal", "boards"):
        for base, _, files in os.walk(os.path.join(ROOT, d)):
            for f in files:
                if f.endswith(".py"):
                    yield os.path.relpath(os.path.join(base, f), ROOT)


def _imports(path):
    tree = ast.parse(open(os.path.join(ROOT, path)).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            for a in node.names:
                yield node.module + "." + a.name


def test_core_imports_nothing_above_it():
    for f in _device_files():
        if f.startswith("firmware/core/"):
            bad = [m for m in _imports(f) if m.split(".")[0] in ("hal", "boards", "machine", "socket",
                                                                  "network", "asyncio")
                   or (m.startswith("firmware.") and not m.startswith("firmware.core"))]
            assert not bad, "%s imports %s" % (f, bad)


def test_only_the_composition_root_knows_boards_and_the_sim_channel():
    allowed = {"firmware/app.py", "firmware/startup.py", "boards/sim.py", "boards/__init__.py"}
    for f in _device_files():
        if f in allowed or f.startswith("boards/"):
            continue
        bad = [m for m in _imports(f) if m == "boards" or m.startswith("boards.")
               or m in ("hal.simctl", "hal.sim")]
        if f == "hal/simctl.py":
            bad = [m for m in bad if m != "hal.sim"]
        assert not bad, "%s imports %s" % (f, bad)


def test_links_services_technician_do_not_import_hal():
    for f in _device_files():
        if f.startswith(("firmware/services/", "firmware/links/", "firmware/technician/")):
            bad = [m for m in _imports(f) if m.split(".")[0] in ("hal", "boards", "machine")]
            assert not bad, "%s imports %s" % (f, bad)


def test_shared_constants_have_one_definition():
    pat = re.compile(r"^(%s)\s*=" % "|".join(SHARED), re.M)
    defs = {}
    for f in _device_files():
        for m in pat.finditer(open(os.path.join(ROOT, f)).read()):
            defs.setdefault(m.group(1), []).append(f)
    assert set(defs) == set(SHARED)
    for name, where in defs.items():
        assert where == ["firmware/core/consts.py"], (name, where)


def test_no_core_function_over_80_lines():
    for f in _device_files():
        if not f.startswith("firmware/core/"):
            continue
        tree = ast.parse(open(os.path.join(ROOT, f)).read())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                assert n <= 80, "%s: %s is %d lines" % (f, node.name, n)
