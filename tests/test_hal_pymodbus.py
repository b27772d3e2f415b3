"""SdmMeter in the unix port against pymodbus (an independent Modbus RTU
implementation) acting as the SDM630 slave on the other end of a pty pair."""
import json

import pytest

from mp import run_script

pytest.importorskip("serial")
from modbus_peer import sdm_slave  # noqa: E402

VALUES = {0x00: 230.5, 0x02: 229.5, 0x04: 231.0, 0x06: 15.75, 0x08: 16.25, 0x0A: 0.5,
          0x34: 7424.0, 0x48: 4321.5}


@pytest.fixture
def pymodbus_slave():
    with sdm_slave(1, VALUES) as port:
        yield port


SCRIPT = """
import sys, json, asyncio, time
sys.path.insert(0, 'tests/fakes')
from pty_uart import PtyUart
from hal.meter import SdmMeter
m = SdmMeter(PtyUart(sys.argv[1]), 1, 'sdm630', timeout_ms=500, retries=2)
async def main():
    await asyncio.sleep_ms(300)     # let the server open its port
    for _ in range(3):
        ok = await m.poll()
        if ok:
            break
        await asyncio.sleep_ms(300)
    m2 = SdmMeter(m.bus, 7, 'sdm630')   # no such slave address
    m2.bus.retries = 0
    ok2 = await m2.poll()
    return [ok, m.error, m.v_mv, m.i_ma, m.p_w, m.e_wh, ok2, m2.error]
print(json.dumps(asyncio.run(main())))
"""


def test_sdm630_against_pymodbus(pymodbus_slave):
    out = run_script(SCRIPT, fakes=True, timeout=30, args=[pymodbus_slave])
    ok, err, v, i, p, e, ok2, err2 = json.loads(out.strip().splitlines()[-1])
    assert (ok, err) == (True, None)
    assert v == [230500, 229500, 231000] and i == [15750, 16250, 500]
    assert p == 7424 and e == 4321500
    # an unknown address: pymodbus answers with an exception frame (a real bus
    # stays silent); either way a named error, no exception out of the driver
    assert ok2 is False and err2 in ("meter_exception", "meter_timeout")
