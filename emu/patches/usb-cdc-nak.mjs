// rp2040js gap 5: the USB CDC "host" answers every OUT-endpoint read at once,
// with 0 bytes when it has nothing to send; TinyUSB re-arms at once, and USB
// interrupts plus tud_task then take ~80 % of the emulated CPU (every device-side
// timing ~3x too slow). A real host NAKs until it has data.
// Fix: defer the answer while the TX FIFO is empty; answer on the next byte.
export function apply(cdc) {
  const usb = cdc.usb;
  let pending = null; // [endpoint, size] of a read waiting for data
  const answer = (endpoint, size) => {
    const buffer = new Uint8Array(Math.min(size, cdc.txFIFO.itemCount));
    for (let i = 0; i < buffer.length; i++) buffer[i] = cdc.txFIFO.pull();
    usb.endpointReadDone(endpoint, buffer);
  };
  usb.onEndpointRead = (endpoint, size) => {
    if (endpoint !== cdc.outEndpoint) return;
    if (cdc.txFIFO.itemCount === 0) pending = [endpoint, size];
    else answer(endpoint, size);
  };
  const send = cdc.sendSerialByte.bind(cdc);
  cdc.sendSerialByte = (b) => {
    send(b);
    if (pending && !cdc.txFIFO.full) {
      const [e, s] = pending;
      pending = null;
      answer(e, s);
    }
  };
  // The TX FIFO holds 512 bytes: callers check room before pushing more.
  cdc.txRoom = () => cdc.txFIFO.size - cdc.txFIFO.itemCount;
  return cdc;
}
