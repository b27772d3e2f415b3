# Boot entry point on the device (copied to the board's root as main.py). loader.py picks the
# app slot (A/B updates, docs/ota.md); neither file is ever replaced by an update.
import loader

loader.run()
