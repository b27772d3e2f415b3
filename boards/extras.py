# Board parts for load management, built by boards._build_machine (imported there only, so
# the sim board and the ROMFS image do not carry their names): the RS-485 bus when the board
# has one but no SDM wallbox meter on it (RS485_UART, RS485_TX, RS485_RX, RS485_BAUD,
# RS485_DE_PIN), and the grid operator's dimming input (DIM_PIN, DIM_ACTIVE 0 = a relay
# contact to ground) as hw.dim_input with value() 1 = dimmed.


def build(b, hw, opin, ipin):
    import machine
    Pin = machine.Pin
    if getattr(hw, "modbus", None) is None and getattr(b, "RS485_UART", None) is not None:
        from hal.modbus import ModbusRtu
        hw.modbus = ModbusRtu(machine.UART(b.RS485_UART, baudrate=b.RS485_BAUD,
                                           tx=Pin(b.RS485_TX), rx=Pin(b.RS485_RX)),
                              b.RS485_BAUD, de=opin(getattr(b, "RS485_DE_PIN", None)))
    if getattr(b, "DIM_PIN", None) is not None:
        pin = ipin(b.DIM_PIN, Pin.PULL_UP)
        hw.dim_input = pin if getattr(b, "DIM_ACTIVE", 0) else _Inverted(pin)


class _Inverted:
    def __init__(self, pin):
        self._pin = pin

    def value(self):
        return 0 if self._pin.value() else 1
