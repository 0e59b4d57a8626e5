// Console input that waits until the guest can read it. Bytes put into the UART too early are lost: Linux's 8250
// driver clears the receive FIFO when it opens the port, which happens after the kernel has printed for a while,
// and bytes that arrive while nothing reads the port are dropped. So the host holds typed or piped input and
// hands it over only while the guest is ready for it: the port is open (receive interrupt enabled, RTS raised,
// divisor latch closed), or the guest reads the console through the SBI instead (an hvc0 console polls for it),
// and the guest has emptied what it was given last.
//
// The guest's tty layer keeps what the driver reads (the shell finds it when it starts); a guest that turns on
// hardware flow control (stty crtscts) drops RTS when that buffer fills, and input waits here meanwhile.

import { REG_IER, REG_LCR, REG_MCR, IER_RDI, LCR_DLAB, MCR_RTS, type Uart16550 } from "./uart.ts";

/** Most bytes handed over at once: one tty buffer's worth, so a paste never outruns a guest that reads slowly. */
export const INPUT_BATCH = 4096;

/** What the input goes into (a Machine). */
export interface ConsoleInputSink {
  readonly uart: Uart16550;
  /** the guest reads console input through the SBI (legacy getchar) rather than from the UART's registers */
  readonly sbiConsoleInput: boolean;
  sendInput(bytes: Uint8Array): void;
}

/** How many bytes of console input the guest can take now without losing them (0: hold them). Reads only
 *  registers whose reads have no side effects. */
export function consoleInputRoom(sink: ConsoleInputSink): number {
  const uart = sink.uart;
  if (uart.rxPending > 0) return 0;
  if (sink.sbiConsoleInput) return INPUT_BATCH; // polled through the firmware: no port to wait for
  if (uart.read(REG_LCR, 1) & LCR_DLAB) return 0; // the guest is setting the baud rate: IER's address is the divisor's
  if ((uart.read(REG_IER, 1) & IER_RDI) === 0) return 0;
  if ((uart.read(REG_MCR, 1) & MCR_RTS) === 0) return 0;
  return INPUT_BATCH;
}

/** A host-side queue of console input that feeds the guest as fast as it reads, and never drops a byte. */
export class ConsoleInput {
  private chunks: Uint8Array[] = [];
  private pendingBytes = 0;

  get pending(): number { return this.pendingBytes; }

  push(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.chunks.push(bytes.slice());
    this.pendingBytes += bytes.length;
  }

  /** Whether pump() would hand bytes over now. */
  ready(sink: ConsoleInputSink): boolean {
    return this.pendingBytes > 0 && consoleInputRoom(sink) > 0;
  }

  /** Hands the guest as much as it can take now; returns whether anything moved. */
  pump(sink: ConsoleInputSink): boolean {
    if (this.pendingBytes === 0) return false;
    const room = consoleInputRoom(sink);
    if (room === 0) return false;
    sink.sendInput(this.take(room));
    return true;
  }

  clear(): void {
    this.chunks = [];
    this.pendingBytes = 0;
  }

  private take(max: number): Uint8Array {
    const n = Math.min(max, this.pendingBytes);
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const c = this.chunks[0];
      const k = Math.min(c.length, n - at);
      out.set(c.subarray(0, k), at);
      at += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.pendingBytes -= n;
    return out;
  }
}
