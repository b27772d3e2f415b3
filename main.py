# Boot entry point on the device (copied to the board's root as main.py).
from firmware import app

app.main()
