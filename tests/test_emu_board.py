"""boards/rp2040_pico_w.py, unmodified, on the plain-Pico MicroPython image (no
`network`, no `socket`): with WiFi and MQTT configured the firmware still boots; the
console's status says "no network"; nothing crashes. (WiFi and MQTT themselves are
tested on the unix port: the CYW43 is not emulated.)"""
from emu_chip import needs_node, boot_firmware
from scenarios import data

pytestmark = needs_node


def test_network_configured_on_an_image_without_network():
    chip = boot_firmware()
    try:
        out = chip.exec("print(set('wifi_ssid', 'home'), set('wifi_password', 'secret-pw'), "
                        "set('mqtt_host', '192.0.2.1'))")
        assert "Error" not in out, out
        chip.sleep(3000)  # the store writes the config on its next flush
        mark = len(chip.out)
        chip.call("reset")  # power cycle with the network configured
        chip.wait_usb(120)
        chip.write(b"\r")
        chip.wait_text(b"wb> ", 180, mark)
        boot = bytes(chip.out[mark:]).decode("utf-8", "replace")
        assert "Traceback" not in boot and "wallbox fw" in boot, boot
        mark = len(chip.out)
        chip.write(b"\x02\rstatus()\r")
        chip.wait_text(b"wb> ", 60, chip.wait_text(b"loop ", 60, mark))
        text = bytes(chip.out[mark:]).decode("utf-8", "replace")
        assert "no network" in text
        st = data(chip, "status")
        assert st["state"] == "A" and not st["faults"] and st["link"] == "off"
    finally:
        chip.stop()
