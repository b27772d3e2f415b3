// One emulated RP2040 (rp2040js) running the stock MicroPython image, with the
// harness's patches (patches/*.mjs), the world at its pins (world.mjs) and
// its USB CDC REPL on a socket (--cdc-fd N; tools/rp2/emu.py bridges it to a pty).
//
//   node emu/chip.mjs --image IMG.uf2 [--flash FLASH.bin] [--gdb PORT] [--no-patch NAME]
//
// Control: JSON lines on stdin ({"id":1,"cmd":"world","set":{...}}), replies and
// events as JSON lines on stdout. Every time is emulated nanoseconds since the first
// power-on ("t"), continuous across watchdog resets, so latencies do not depend on
// how loaded the host is.
import fs from 'fs';
import net from 'net';
import readline from 'readline';
import { RP2040, USBCDC, ConsoleLogger, LogLevel } from 'rp2040js';
import * as flashProgram from './patches/flash-program.mjs';
import * as watchdogOnce from './patches/watchdog-once.mjs';
import * as usbCdcNak from './patches/usb-cdc-nak.mjs';
import * as uartTxintr from './patches/uart-txintr.mjs';
import * as dualCore from './patches/dual-core.mjs';
import { World } from './world.mjs';

const HERE = new URL('.', import.meta.url).pathname;
const FLASH_BYTES = 2 * 1024 * 1024;
const CYCLE_NS = 8; // 125 MHz
const SLICE_NS = 2e6; // run 2 ms of chip time between host I/O turns

function arg(name, dflt = null) {
  const i = process.argv.indexOf('--' + name);
  return i < 0 ? dflt : process.argv[i + 1];
}
const disabled = new Set(process.argv.flatMap((a, i) => (a === '--no-patch' ? [process.argv[i + 1]] : [])));

function uf2Flash(path) {
  const data = fs.readFileSync(path);
  const flash = new Uint8Array(FLASH_BYTES).fill(0xff);
  for (let off = 0; off + 512 <= data.length; off += 512) {
    const addr = data.readUInt32LE(off + 12), size = data.readUInt32LE(off + 16);
    if (data.readUInt32LE(off) !== 0x0a324655) throw new Error('not a UF2 file');
    flash.set(data.subarray(off + 32, off + 32 + size), addr - 0x10000000);
  }
  return flash;
}

const bootrom = new Uint32Array(new Uint8Array(fs.readFileSync(HERE + 'bootrom/rp2040-bootrom-b1.bin')).buffer);
let flash = arg('flash') && fs.existsSync(arg('flash')) ? new Uint8Array(fs.readFileSync(arg('flash'))) : null;
if (!flash) flash = uf2Flash(arg('image', HERE + '../tools/rp2/image/micropython-v1.28.0-RPI_PICO.uf2'));

// rp2040js also warns with console.warn, once per access (e.g. "Read from invalid SIO
// address" in a loop that polls it): counted by message (status "warnings"), the first
// of each written to stderr, so a polling loop cannot flood the host.
const warnings = {};
console.warn = (...a) => {
  const m = a.join(' ').slice(0, 120);
  if (m in warnings) warnings[m]++;
  else if (Object.keys(warnings).length < 50) {
    warnings[m] = 1;
    process.stderr.write(m + '\n');
  }
};

const world = new World();
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const cdcSock = new net.Socket({ fd: Number(arg('cdc-fd', 3)), readable: true, writable: true });
const hostBytes = []; // host -> chip bytes not yet in the CDC FIFO
let mcu, cdc, dual = null, epochNs = 0, resets = 0, pendingReset = null;
const flashStats = { erased: 0, programmed: 0 };
const now = () => epochNs + mcu.clock.nanos;

function powerOn(reason = 0) {
  if (mcu) {
    epochNs += mcu.clock.nanos;
    flash = mcu.flash.slice(0, FLASH_BYTES);
  }
  mcu = new RP2040();
  mcu.logger = new ConsoleLogger(LogLevel.Error); // the default logger floods stdout
  mcu.loadBootrom(bootrom);
  mcu.flash.set(flash);
  if (!disabled.has('flash-program')) flashProgram.apply(mcu, flashStats);
  if (!disabled.has('watchdog-once')) {
    const wd = watchdogOnce.apply(mcu, (r) => { pendingReset = r; });
    wd.reason = reason; // machine.reset_cause() reads it after a watchdog reset
  }
  if (!disabled.has('uart-txintr')) for (const u of mcu.uart) uartTxintr.apply(u);
  dual = disabled.has('dual-core') ? null : dualCore.apply(mcu);
  // V8: accessors defined on an object (flash-program's onBreak, dual-core's core/ppb)
  // put it in dictionary mode, and every bus access reads mcu.*: busy code emulated
  // at half speed (measured). An object used as a prototype is made fast again.
  Object.create(mcu);
  cdc = new USBCDC(mcu.usbCtrl);
  if (!disabled.has('usb-cdc-nak')) usbCdcNak.apply(cdc);
  cdc.onDeviceConnected = () => out({ ev: 'usb', t: now() });
  cdc.onSerialData = (buf) => cdcSock.write(Buffer.from(buf));
  world.attach(mcu, now);
  mcu.core.PC = 0x10000000;
  out({ ev: 'boot', t: now(), reason, resets });
}

function feedHost() {
  while (hostBytes.length && cdc.txFIFO.itemCount < cdc.txFIFO.size) cdc.sendSerialByte(hostBytes.shift());
}

let running = true, stopped = false, cutAt = null;
function runSlice() {
  const clock = mcu.clock;
  let end = clock.nanos + SLICE_NS;
  if (cutAt) {
    if (now() >= cutAt.t) {
      running = false;
      stopped = true;
      if (cutAt.path) saveFlash(cutAt.path);
      cutAt.reply({ t: now() });
      setTimeout(() => process.exit(0), 10);
      return;
    }
    end = Math.min(end, cutAt.t - epochNs);
  }
  const c0 = dual ? dual.cores[0] : mcu.core, c1 = dual ? dual.cores[1] : null;
  // Two cores: each has its own emulated time (t0, t1 ns); the one behind steps next
  // and the clock (every peripheral, the world) follows the one behind, so each core
  // runs at 125 MHz of emulated time. A sleeping core (WFE/WFI) or one held in reset
  // does not hold the clock back; both asleep: the clock jumps to the next alarm.
  let t0 = clock.nanos, t1 = clock.nanos;
  while (clock.nanos < end && running) {
    const run1 = c1 !== null && !c1.waiting && !dual.held;
    if (!run1 || c0.waiting) {
      if (run1) {
        dual.current = 1;
        clock.tick(c1.executeInstruction() * CYCLE_NS);
      } else if (!c0.waiting) {
        if (dual) dual.current = 0;
        clock.tick(c0.executeInstruction() * CYCLE_NS);
      } else {
        const n = clock.nanosToNextAlarm;
        clock.tick(n > 0 ? Math.min(n, end - clock.nanos + CYCLE_NS) : CYCLE_NS);
      }
      t0 = t1 = clock.nanos;
    } else {
      if (t0 <= t1) {
        dual.current = 0;
        t0 += c0.executeInstruction() * CYCLE_NS;
      } else {
        dual.current = 1;
        t1 += c1.executeInstruction() * CYCLE_NS;
      }
      const behind = t0 < t1 ? t0 : t1;
      if (behind > clock.nanos) clock.tick(behind - clock.nanos);
    }
    if (pendingReset !== null) {
      const r = pendingReset;
      pendingReset = null;
      resets++;
      out({ ev: 'watchdog', t: now(), reason: r });
      powerOn(r);
      return;
    }
  }
  if (dual) dual.current = 0; // between slices (gdb, the control channel): core 0
}

function loop() {
  if (stopped) return;
  if (running) {
    feedHost();
    runSlice();
  }
  setImmediate(loop);
}

function coreStatus() {
  const cs = dual ? dual.cores : [mcu.core];
  return {
    pc: cs.map((c) => c.PC >>> 0), waiting: cs.map((c) => c.waiting),
    ...(dual ? { held: dual.held, sev: dual.sev, fifo_words: dual.words } : {}),
  };
}

function saveFlash(path) {
  // Pico flash is 2 MB: save only that, atomically (rename), for a power cut.
  fs.writeFileSync(path + '.tmp', mcu.flash.subarray(0, FLASH_BYTES));
  fs.renameSync(path + '.tmp', path);
}

const commands = {
  world: (c) => { world.set(c.set || {}); return { t: now() }; },
  status: () => ({ t: now(), world: world.status(), flash: flashStats, resets, cores: coreStatus(), warnings }),
  events: (c) => ({ t: now(), events: world.events.filter((e) => e[0] >= (c.since || 0)) }),
  ticks: (c) => ({ t: now(), ticks: world.ticks.filter((t) => t >= (c.since || 0)) }),
  save_flash: (c) => { saveFlash(c.path); return { t: now() }; },
  // A power cut: stop the chip between two instructions (now, or at emulated time
  // c.at) and keep the flash as it is.
  cut: (c, reply) => {
    cutAt = { t: c.at || 0, path: c.path, reply };
    return undefined;
  },
  reset: () => { powerOn(0); return { t: now() }; },
  // Wait until emulated time t (ns) has passed; the reply comes then.
  until: (c, reply) => {
    const check = () => (now() >= c.t ? reply({ t: now() }) : setTimeout(check, 5));
    check();
    return undefined;
  },
};

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  let c;
  try { c = JSON.parse(line); } catch (e) { out({ error: 'bad json' }); return; }
  const reply = (r) => out({ id: c.id, ...r });
  const f = commands[c.cmd];
  if (!f) { reply({ error: 'unknown command ' + c.cmd }); return; }
  try {
    const r = f(c, reply);
    if (r !== undefined) reply(r);
  } catch (e) { reply({ error: String(e) }); }
});
process.stdin.on('end', () => process.exit(0));

cdcSock.on('data', (d) => {
  for (const b of d) hostBytes.push(b);
});

powerOn(0);
if (arg('gdb')) {
  // rp2040js's GDB server drives a Simulator-like object: give it our loop.
  const sim = {
    rp2040: mcu,
    get executing() { return running; },
    execute() { running = true; },
    stop() { running = false; },
  };
  const { GDBTCPServer } = await import('rp2040js/gdb-tcp-server');
  const gdb = new GDBTCPServer(sim, Number(arg('gdb')));
  running = false; // wait for gdb's "continue"
  out({ ev: 'gdb', port: gdb.port });
}
loop();
