// rp2040js gap 3: one Cortex-M0+ and no SIO inter-core FIFO, so
// _thread.start_new_thread hangs in multicore_launch_core1 (its FIFO handshake with
// the bootrom on core 1 never gets an answer).
// Fix: a second CortexM0Core on the same bus (the sketch of wokwi/rp2040js#109),
// started like silicon: from reset in the real bootrom, which parks it in its
// wait-for-vector loop until core 0's launch sequence (0, 0, 1, VTOR, SP, PC,
// each word echoed) arrives over the FIFO. Per core: the PPB (NVIC, SysTick,
// VTOR, SCB), SIO CPUID, the hardware divider and the interpolators; shared:
// GPIO, spinlocks. Inter-core FIFOs (8 words each way, FIFO_ST VLD/RDY/WOF/ROE),
// SIO_IRQ_PROC0 (IRQ 15) to core 0 and SIO_IRQ_PROC1 (IRQ 16) to core 1 only,
// every other IRQ line to both NVICs. SEV sets the event register of both cores
// and wakes the other from WFE. PSM FRCE_OFF.proc1 holds core 1 in reset; its
// release restarts core 1 in the bootrom (multicore_reset_core1).
// `mcu.core` becomes the core now executing: the harness's run loop sets
// `dual.current` before each step (emu/chip.mjs), so peripherals and the other
// patches (a flash-program BKPT) act on the core that made the access.
const CPUID = 0x000;
const FIFO_ST = 0x050, FIFO_WR = 0x054, FIFO_RD = 0x058;
const PER_CORE_FIRST = 0x060, PER_CORE_LAST = 0x0fc; // divider + interpolators
const FIFO_DEPTH = 8;
const ST_VLD = 1, ST_RDY = 2, ST_WOF = 4, ST_ROE = 8;
const IRQ_SIO_PROC0 = 15, IRQ_SIO_PROC1 = 16;
const PSM_FRCE_OFF = 0x04, PSM_PROC1 = 1 << 16;
const OP_WFE = 0xbf20;

export function apply(mcu) {
  const Core = mcu.core.constructor, PPB = mcu.ppb.constructor, SIO = mcu.sio.constructor;
  // A view of the chip whose `core` is fixed: what a per-core peripheral sees.
  const viewOf = (core) => Object.create(mcu, { core: { value: core, writable: true } });
  const core0 = mcu.core, core1 = new Core(mcu);
  const cores = [core0, core1];
  const views = [viewOf(core0), viewOf(core1)];
  const dual = { cores, current: 0, held: false, sev: 0, words: [0, 0] }; // words: FIFO pushes by core

  // Per-core PPB: core 0 keeps rp2040js's instance, rebound to its own core.
  const ppbs = [mcu.ppb, new PPB(views[1], 'PPB1')];
  ppbs[0].rp2040 = views[0];
  mcu.addClockListener((hz) => { ppbs[1].systickTimer.frequency = hz; });

  // Per-core divider and interpolators: core 1 gets a second SIO for those.
  const sio = mcu.sio, sio1 = new SIO(views[1]);
  const read = sio.readUint32.bind(sio), write = sio.writeUint32.bind(sio);
  const fifo = [[], []]; // fifo[n]: written by core n, read by the other
  const flags = [0, 0]; // sticky WOF/ROE per core
  const irqLevel = (n) => {
    cores[n].setInterrupt(IRQ_SIO_PROC0 + n, fifo[1 - n].length > 0 || flags[n] !== 0);
  };
  sio.readUint32 = (offset) => {
    const n = dual.current;
    if (offset >= PER_CORE_FIRST && offset <= PER_CORE_LAST && n === 1) return sio1.readUint32(offset);
    switch (offset) {
      case CPUID: return n;
      case FIFO_ST:
        return (fifo[1 - n].length ? ST_VLD : 0) | (fifo[n].length < FIFO_DEPTH ? ST_RDY : 0) | flags[n];
      case FIFO_RD: {
        const rx = fifo[1 - n];
        let v = 0;
        if (rx.length) v = rx.shift();
        else flags[n] |= ST_ROE;
        irqLevel(n);
        return v >>> 0;
      }
      case FIFO_WR: return 0;
    }
    return read(offset);
  };
  sio.writeUint32 = (offset, value) => {
    const n = dual.current;
    if (offset >= PER_CORE_FIRST && offset <= PER_CORE_LAST && n === 1) { sio1.writeUint32(offset, value); return; }
    switch (offset) {
      case FIFO_ST: flags[n] &= ~value; irqLevel(n); return; // WOF/ROE: write 1 to clear
      case FIFO_WR:
        if (fifo[n].length < FIFO_DEPTH) {
          fifo[n].push(value >>> 0);
          dual.words[n]++;
        } else flags[n] |= ST_WOF;
        irqLevel(n);
        irqLevel(1 - n);
        return;
      case FIFO_RD: return;
    }
    write(offset, value);
  };

  // IRQ lines: every line to both NVICs, the SIO FIFO IRQs to their own core only.
  mcu.setInterrupt = (irq, value) => {
    if (irq !== IRQ_SIO_PROC1) core0.setInterrupt(irq, value);
    if (irq !== IRQ_SIO_PROC0) core1.setInterrupt(irq, value);
  };

  // SEV: rp2040js only logs it (CortexM0Core: logger.info(.., 'SEV')), so each core
  // gets its own logger that turns that line into the event: the event register of
  // both cores is set, and the other core, asleep in WFE (not WFI), wakes.
  const sev = (n) => {
    dual.sev++;
    cores[n].eventRegistered = true;
    const other = cores[1 - n];
    if (other.waiting && !(n === 0 && dual.held) && mcu.readUint16((other.PC - 2) >>> 0) === OP_WFE) {
      other.waiting = false; // woken by the event: the event is consumed
    } else {
      other.eventRegistered = true;
    }
  };
  cores.forEach((core, n) => {
    const logger = {
      info: (name, msg) => { if (msg === 'SEV') sev(n); else mcu.logger.info(name, msg); },
      debug: (name, msg) => mcu.logger.debug(name, msg),
      warn: (name, msg) => mcu.logger.warn(name, msg),
      error: (name, msg) => mcu.logger.error(name, msg),
    };
    Object.defineProperty(core, 'logger', { value: logger });
  });

  // `mcu.core` / `mcu.ppb`: the executing core's.
  Object.defineProperty(mcu, 'core', { get: () => cores[dual.current], configurable: true });
  Object.defineProperty(mcu, 'ppb', { get: () => ppbs[dual.current], configurable: true });

  // Core 1 from reset: fresh core state (VTOR 0: the bootrom's vectors), into the bootrom.
  const resetCore1 = () => {
    Object.assign(core1, new Core(mcu));
    core1.reset();
  };
  const psm = mcu.peripherals[0x40010];
  const psmWrite = psm.writeUint32.bind(psm);
  psm.writeUint32 = (offset, value) => {
    psmWrite(offset, value);
    if (offset !== PSM_FRCE_OFF) return;
    const held = !!(value & PSM_PROC1);
    if (dual.held && !held) resetCore1();
    dual.held = held;
  };
  resetCore1();
  return dual;
}
