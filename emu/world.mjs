// The world at the pins of boards/rp2040_pico_w.py, in emulated time.
//
// Analog front ends are modelled by their formulas (the board file's constants):
//   CP  (GP16 PWM -> inverting +-12 V stage -> 1 kOhm -> CP; GP17 stage enable):
//       V_cp = +12 V * Rev/(Rev+1k) while the pin is LOW (inverting stage),
//              -12 V while HIGH (EV diode), or -12 V * Rev/(Rev+1k) with no diode;
//       0 V when the stage is disabled or CP is shorted to PE.
//       ADC0 mV = 1713 + (3177 - 1713) * V_cp / 12 V          (iec61851.md section 7)
//   PP  ADC1: 1 kOhm pull-up to 3V3, cable resistor to PE (open = no cable).
//   NTC ADC2: 10 kOhm to 3V3, NTC 10k B3950 to GND.
//   RCD GP21 in (1 = tripped); contactor GP18 out, its mirror GP19 in follows after
//   MIRROR_NS; lock GP10 out, lock switch GP11 follows; button GP9 (pull-up, idle 1).
//   Meter: an SDM630 answering Modbus RTU function 0x04 on UART0 (GP0/GP1, 9600 Bd).
// Every ADC value is recomputed at each CP pin edge, so the firmware's readings
// inside the PWM period see what a real front end would at that instant.
const CP_PIN = 16, CP_EN_PIN = 17, CONTACTOR_PIN = 18, MIRROR_PIN = 19, RCD_PIN = 21;
const RCD_TEST_PIN = 22, LOCK_PIN = 10, LOCK_FB_PIN = 11, BUTTON_PIN = 9;
const LED_PINS = [13, 14, 15];
const AT0 = 1713, AT12 = 3177, FS = 3300;
const MIRROR_NS = 15e6; // contactor mechanics: mirror follows the coil after 15 ms
const RCD_TEST_NS = 25e6; // RDC-DD test winding: trips / clears 25 ms after the test input
const EV_OHM = { A: Infinity, B: 2740, C: 882, D: 246, E: 0 };
const BYTE_NS = 1e9 / 960; // 9600 Bd, 10 bits a byte
const REG = { V: 0x0000, I: 0x0006, P: 0x0034, E: 0x0048 };

export class World {
  constructor() {
    this.ev = 'A';          // A..E as the EV presents it (E = CP shorted to PE)
    this.diode = true;      // EV diode present
    this.evMaxMa = 32000;   // what the car would draw at most
    this.ppOhm = 220;       // cable coding (220 = 32 A); null = no cable
    this.tempC = 25;
    this.rcd = 0;           // 1 = RCD tripped
    this.meterOk = true;
    this.voltsMv = 230000;
    this.energyWh = 0;
    this.events = [];       // output pin changes [t_ns, pin, value]
    this.cpEdges = [];      // last CP pin edges [t_ns, level]
    this.listeners = [];
  }

  attach(mcu, now) {
    for (const off of this.listeners) off();
    this.listeners = [];
    this.mcu = mcu;
    this.now = now;
    this.pin = (n) => mcu.gpio[n];
    const watch = (n, fn) => this.listeners.push(mcu.gpio[n].addListener(fn));
    watch(CP_PIN, (s) => { this.cpEdge(s === 1 ? 1 : 0); });
    watch(CP_EN_PIN, () => this.updateAnalog());
    for (const n of [CONTACTOR_PIN, LOCK_PIN, RCD_TEST_PIN, CP_EN_PIN, ...LED_PINS]) {
      let last = -1;
      watch(n, (s) => {
        const v = s === 1 ? 1 : 0;
        if (v === last) return;
        last = v;
        this.events.push([this.now(), n, v]);
        if (this.events.length > 2000) this.events.splice(0, 1000);
        if (n === CONTACTOR_PIN) this.followContactor(v);
        if (n === LOCK_PIN) this.pin(LOCK_FB_PIN).setInputValue(!!v);
        if (n === RCD_TEST_PIN) { this.rcdTest = v; this.rcdAlarm.schedule(RCD_TEST_NS); }
      });
    }
    this.mirrorAlarm = mcu.clock.createAlarm(() => {
      this.pin(MIRROR_PIN).setInputValue(!!this.coil);
    });
    this.rcdAlarm = mcu.clock.createAlarm(() => this.rcdOutput());
    this.rcdTest = 0;
    this.coil = 0;
    this.pin(MIRROR_PIN).setInputValue(false);
    this.pin(LOCK_FB_PIN).setInputValue(false);
    this.pin(BUTTON_PIN).setInputValue(true);
    this.rcdOutput();
    this.attachMeter(mcu.uart[0]);
    this.attachTickRecorder(mcu.adc);
    this.updateAnalog();
  }

  // Each control tick samples CP (ADC0) for ~1.1 ms: the start of each burst of ADC0
  // reads marks a tick, seen from outside the firmware in emulated time.
  attachTickRecorder(adc) {
    const read = adc.onADCRead;
    let last = -1e12;
    if (!this.ticks) this.ticks = [];
    adc.onADCRead = (ch) => {
      if (ch === 0) {
        const t = this.now();
        if (t - last > 3e6) {
          this.ticks.push(t);
          if (this.ticks.length > 20000) this.ticks.splice(0, 10000);
        }
        last = t;
      }
      read(ch);
    };
  }

  followContactor(v) {
    this.coil = v;
    this.mirrorAlarm.schedule(MIRROR_NS);
  }

  set(p) {
    for (const k of ['ev', 'diode', 'evMaxMa', 'ppOhm', 'tempC', 'meterOk', 'voltsMv', 'rcdTestWorks']) {
      if (k in p) this[k] = p[k];
    }
    if ('rcd' in p) {
      this.rcd = p.rcd ? 1 : 0;
      this.rcdOutput();
    }
    this.updateAnalog();
  }

  // The RDC-DD fault output: a residual current, or its own test (unless the test
  // winding is broken: rcdTestWorks = false).
  rcdOutput() {
    const t = this.rcdTest && this.rcdTestWorks !== false;
    this.pin(RCD_PIN).setInputValue(!!(this.rcd || t));
  }

  cpEdge(level) {
    const e = this.cpEdges;
    e.push(this.now(), level);
    if (e.length > 64) e.splice(0, 2);
    this.cpLevel = level;
    this.updateAnalog();
  }

  cpVolts() {
    if (this.pin(CP_EN_PIN).value !== 1 || this.ev === 'E') return 0;
    const r = EV_OHM[this.ev];
    const k = r === Infinity ? 1 : r / (r + 1000);
    const pinHigh = this.pin(CP_PIN).value === 1;
    if (!pinHigh) return 12 * k;            // inverting stage: pin low = +12 V
    return this.diode ? -12 : -12 * k;      // negative half: the diode blocks the EV load
  }

  updateAnalog() {
    const adc = this.mcu.adc.channelValues;
    const counts = (mv) => Math.max(0, Math.min(4095, Math.round((mv * 4095) / FS)));
    adc[0] = counts(AT0 + ((AT12 - AT0) * this.cpVolts()) / 12);
    adc[1] = counts(this.ppOhm == null ? FS : (FS * this.ppOhm) / (this.ppOhm + 1000));
    const t = this.tempC + 273.15;
    const rNtc = 10000 * Math.exp(3950 * (1 / t - 1 / 298.15));
    adc[2] = counts((FS * rNtc) / (rNtc + 10000));
  }

  // The PWM as the car sees it: frequency and the fraction of the period at +12 V
  // (pin LOW: the stage inverts), from the last recorded edges.
  pwm() {
    const e = this.cpEdges;
    const rises = [];
    for (let i = 0; i < e.length; i += 2) if (e[i + 1] === 0) rises.push(i); // CP goes +
    if (rises.length < 2) return null;
    const a = rises[rises.length - 2], b = rises[rises.length - 1];
    const period = e[b] - e[a];
    let plus = 0;
    for (let i = a; i < b; i += 2) if (e[i + 1] === 0) plus += e[i + 2] - e[i];
    return { hz: 1e9 / period, duty: plus / period, at_ns: e[b] };
  }

  // Current the car draws: IEC 61851-1 Annex A duty -> A, while the contacts are
  // closed, the car is in C/D and the PWM is on.
  currentMa() {
    if (!this.pin(MIRROR_PIN).inputValue || (this.ev !== 'C' && this.ev !== 'D')) return 0;
    const p = this.pwm();
    if (!p || this.now() - p.at_ns > 3e6) return 0;   // no PWM: the car must not draw
    const d = p.duty * 100;
    let a = 0;
    if (d >= 8 && d < 10) a = 6;
    else if (d >= 10 && d <= 85) a = d * 0.6;
    else if (d > 85 && d <= 96) a = (d - 64) * 2.5;
    return Math.min(Math.round(a * 1000), this.evMaxMa);
  }

  attachMeter(uart) {
    this.rx = [];
    this.meterT = this.now();
    this.tx = [];
    this.txAlarm = this.mcu.clock.createAlarm(() => {
      if (this.tx.length) uart.feedByte(this.tx.shift());
      if (this.tx.length) this.txAlarm.schedule(BYTE_NS);
    });
    this.rxAlarm = this.mcu.clock.createAlarm(() => this.modbus());
    uart.onByte = (b) => {
      this.rx.push(b);
      this.rxAlarm.schedule(3.5 * BYTE_NS); // end of frame: 3.5 characters of silence
    };
  }

  modbus() {
    const f = this.rx;
    this.rx = [];
    if (!this.meterOk || f.length !== 8 || f[0] !== 1 || f[1] !== 4) return;
    if (crc16(f, 6) !== (f[6] | (f[7] << 8))) return;
    const reg = (f[2] << 8) | f[3], n = (f[4] << 8) | f[5];
    const ma = this.currentMa();
    const now = this.now();
    this.energyWh += ((3 * this.voltsMv / 1000) * (ma / 1000) * (now - this.meterT)) / 3.6e12;
    this.meterT = now;
    const val = (r) => {
      const k = (r >> 1) % 3;
      if (r < REG.I) return this.voltsMv / 1000;
      if (r < REG.I + 6) return [ma, ma, ma][k] / 1000;
      if (r === REG.P) return (3 * this.voltsMv / 1000) * (ma / 1000);
      if (r === REG.E) return this.energyWh / 1000;
      return 0;
    };
    const out = [1, 4, 2 * n];
    const dv = new DataView(new ArrayBuffer(4));
    for (let r = reg; r < reg + n; r += 2) {
      dv.setFloat32(0, val(r));
      for (let i = 0; i < 4; i++) out.push(dv.getUint8(i));
    }
    const c = crc16(out, out.length);
    out.push(c & 0xff, c >> 8);
    this.tx = out;
    this.txAlarm.schedule(2 * BYTE_NS);
  }

  status() {
    const g = (n) => (this.pin(n).value === 1 ? 1 : 0);
    return {
      ev: this.ev, diode: this.diode, rcd: this.rcd, temp_c: this.tempC, pp_ohm: this.ppOhm,
      contactor: g(CONTACTOR_PIN), mirror: this.pin(MIRROR_PIN).inputValue ? 1 : 0,
      cp_enable: g(CP_EN_PIN), lock: g(LOCK_PIN), rcd_test: g(RCD_TEST_PIN),
      leds: LED_PINS.map(g), pwm: this.pwm(), current_ma: this.currentMa(),
      energy_wh: this.energyWh, adc: [...this.mcu.adc.channelValues],
    };
  }
}

export function crc16(buf, n) {
  let crc = 0xffff;
  for (let i = 0; i < n; i++) {
    crc ^= buf[i];
    for (let j = 0; j < 8; j++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1;
  }
  return crc;
}
