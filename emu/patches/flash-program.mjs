// rp2040js gap 1: flash programming is a stub (the SSI model ignores erase and
// program commands), so littlefs cannot format: os.statvfs('/') reads all zeros
// and open(..., 'w') raises ENODEV.
// Fix: the SDK erases/programs through the bootrom's flash_range_erase ('RE') and
// flash_range_program ('RP'). Put a BKPT at the entry of each (found through the
// ROM function table) and, on that BKPT, do the operation on the flash array in
// JS and return to LR. NOR semantics: erase sets bytes to 0xff, program ANDs.
// Worth upstreaming as an SSI flash model.
const BKPT_ERASE = 0xf0;
const BKPT_PROGRAM = 0xf1;
const FLASH_BYTES = 2 * 1024 * 1024; // the Pico's W25Q16

function romLookup(mcu, c1, c2) {
  const code = c1.charCodeAt(0) | (c2.charCodeAt(0) << 8);
  let p = mcu.readUint16(0x14); // rom_func_table
  for (;;) {
    const c = mcu.readUint16(p);
    if (c === 0) throw new Error(`bootrom function ${c1}${c2} not found`);
    if (c === code) return mcu.readUint16(p + 2) & ~1;
    p += 4;
  }
}

function putBkpt(mcu, addr, imm8) {
  const w = mcu.bootrom[addr >> 2];
  const op = 0xbe00 | imm8;
  mcu.bootrom[addr >> 2] = addr & 2 ? (w & 0xffff) | (op << 16) : (w & 0xffff0000) | op;
}

export function apply(mcu, stats = { erased: 0, programmed: 0 }) {
  putBkpt(mcu, romLookup(mcu, 'R', 'E'), BKPT_ERASE);
  putBkpt(mcu, romLookup(mcu, 'R', 'P'), BKPT_PROGRAM);
  let previous = mcu.onBreak;
  const handler = (code) => {
    const core = mcu.core;
    const r = core.registers;
    if (code === BKPT_ERASE) {
      const addr = r[0] >>> 0, count = r[1] >>> 0; // flash offsets, sector aligned
      if (addr + count <= FLASH_BYTES) mcu.flash.fill(0xff, addr, addr + count);
      stats.erased += count;
    } else if (code === BKPT_PROGRAM) {
      const addr = r[0] >>> 0, data = r[1] >>> 0, count = r[2] >>> 0;
      for (let i = 0; i < count && addr + i < FLASH_BYTES; i++) {
        mcu.flash[addr + i] &= mcu.readUint8(data + i);
      }
      stats.programmed += count;
    } else {
      previous(code);
      return;
    }
    core.PC = core.LR & ~1; // return from the ROM routine
  };
  // Stay first in line when someone (the GDB server) installs its own handler.
  Object.defineProperty(mcu, 'onBreak', { get: () => handler, set: (f) => { previous = f; } });
  return stats;
}
