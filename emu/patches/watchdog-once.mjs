// rp2040js gap 2: once the watchdog counter reaches 0 its alarm keeps firing
// (the periodic alarm re-arms), and the default handler only logs.
// Fix: on the first trigger disable the watchdog and hand over to the harness,
// which resets the chip (keeping the flash array and the watchdog REASON).
export function apply(mcu, onReset) {
  const wd = mcu.peripherals[0x40058];
  wd.onWatchdogTrigger = () => {
    wd.enable = false;
    wd.timer.enable = false;
    wd.alarm.enable = false;
    onReset(wd.reason);
  };
  return wd;
}
