// rp2040js gap 4: the UART raises TXINTR on every interrupt check, even right
// after the firmware clears it in ICR, so machine.UART(n, ...) hangs in an
// interrupt storm from its first init.
// Fix: TXINTR is raised when a byte is written to DR (the TX FIFO then drains at
// once in this model), and cleared by ICR as on silicon.
const UARTTXINTR = 1 << 5;
export function apply(uart) {
  uart.checkInterrupts = function () {
    this.rp2040.setInterrupt(this.irq, !!(this.interruptStatus & this.interruptMask));
  };
  const write = uart.writeUint32.bind(uart);
  uart.writeUint32 = (offset, value) => {
    write(offset, value);
    if (offset === 0x000) { // UARTDR
      uart.interruptStatus |= UARTTXINTR;
      uart.checkInterrupts();
    }
  };
  return uart;
}
