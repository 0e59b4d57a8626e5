// An NS16550A UART: the VM's console. Transmitted bytes go to onOutput in batches (flushed by the machine at the
// end of each slice); received bytes wait in a FIFO and raise the receive interrupt when enabled.

import type { MmioDevice } from "./bus.ts";
import type { IrqLine } from "./guest-memory.ts";
import { StateReader, type StateValue, type Stateful } from "../snapshot/state-value.ts";

/** register offsets (with DLAB clear) */
export const REG_IER = 1;
export const REG_LCR = 3;
export const REG_MCR = 4;
export const IER_RDI = 0x01;  // received data available
const IER_THRI = 0x02; // transmitter holding register empty
const LSR_DR = 0x01;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;
export const LCR_DLAB = 0x80;
export const MCR_RTS = 0x02;
const IIR_NONE = 0x01;
const IIR_THRI = 0x02;
const IIR_RDI = 0x04;
const IIR_FIFO = 0xc0;
const RX_LIMIT = 1 << 16;

export class Uart16550 implements MmioDevice, Stateful {
  readonly size = 0x100;
  private ier = 0;
  private lcr = 0;
  private mcr = 0;
  private scr = 0;
  private dll = 0;
  private dlm = 0;
  private fcr = 0;
  private thrIrqPending = false;
  private rx: number[] = [];
  private rxHead = 0;
  private tx: number[] = [];
  txBytes = 0;

  constructor(private readonly irq: IrqLine, private readonly onOutput: (bytes: Uint8Array) => void) {}

  /** Queues bytes typed at the console. Returns how many were accepted (the FIFO is bounded). */
  input(bytes: Uint8Array): number {
    const room = RX_LIMIT - (this.rx.length - this.rxHead);
    const n = Math.min(room, bytes.length);
    for (let i = 0; i < n; i++) this.rx.push(bytes[i]);
    this.update();
    return n;
  }

  get rxPending(): number { return this.rx.length - this.rxHead; }

  /** Hands buffered output to onOutput. */
  flush(): void {
    if (this.tx.length === 0) return;
    const out = Uint8Array.from(this.tx);
    this.tx.length = 0;
    this.onOutput(out);
  }

  /**
   * The registers, the unread receive FIFO and whether a THR-empty interrupt is owed. Output still buffered is
   * handed to onOutput first: it left the guest already, and a snapshot must not repeat or lose it.
   */
  saveState(): StateValue {
    this.flush();
    return {
      ier: this.ier, lcr: this.lcr, mcr: this.mcr, scr: this.scr, dll: this.dll, dlm: this.dlm, fcr: this.fcr,
      thrIrqPending: this.thrIrqPending,
      rx: Uint8Array.from(this.rx.slice(this.rxHead)),
      txBytes: this.txBytes,
    };
  }

  /** Restores saveState()'s output and drives the interrupt line to the restored level. */
  restoreState(state: StateValue): void {
    const r = new StateReader(state, "uart");
    const ier = r.num("ier", 0, 0x0f);
    const [lcr, mcr, scr, dll, dlm, fcr] = ["lcr", "mcr", "scr", "dll", "dlm", "fcr"].map((k) => r.num(k, 0, 0xff));
    const thrIrqPending = r.bool("thrIrqPending");
    const rx = r.bytes("rx", { maxLength: RX_LIMIT });
    const txBytes = r.num("txBytes", 0);
    this.flush(); // output from before the restore still belongs to the console
    this.ier = ier; this.lcr = lcr; this.mcr = mcr; this.scr = scr; this.dll = dll; this.dlm = dlm; this.fcr = fcr;
    this.thrIrqPending = thrIrqPending;
    this.txBytes = txBytes;
    this.rx = Array.from(rx);
    this.rxHead = 0;
    this.update();
  }

  private update(): void {
    const rxIrq = (this.ier & IER_RDI) !== 0 && this.rxPending > 0;
    const txIrq = (this.ier & IER_THRI) !== 0 && this.thrIrqPending;
    this.irq.set(rxIrq || txIrq);
  }

  read(offset: number, _size: 1 | 2 | 4): number {
    switch (offset) {
      case 0: {
        if (this.lcr & LCR_DLAB) return this.dll;
        if (this.rxPending === 0) return 0;
        const b = this.rx[this.rxHead++];
        if (this.rxHead > 4096 && this.rxHead * 2 > this.rx.length) { this.rx = this.rx.slice(this.rxHead); this.rxHead = 0; }
        this.update();
        return b;
      }
      case 1: return this.lcr & LCR_DLAB ? this.dlm : this.ier;
      case 2: {
        let iir = IIR_NONE;
        if ((this.ier & IER_RDI) && this.rxPending > 0) iir = IIR_RDI;
        else if ((this.ier & IER_THRI) && this.thrIrqPending) { iir = IIR_THRI; this.thrIrqPending = false; this.update(); }
        return iir | (this.fcr & 1 ? IIR_FIFO : 0);
      }
      case 3: return this.lcr;
      case 4: return this.mcr;
      case 5: return LSR_THRE | LSR_TEMT | (this.rxPending > 0 ? LSR_DR : 0);
      case 6: return 0xb0; // DCD, DSR, CTS asserted
      case 7: return this.scr;
      default: return 0;
    }
  }

  write(offset: number, _size: 1 | 2 | 4, value: number): void {
    value &= 0xff;
    switch (offset) {
      case 0:
        if (this.lcr & LCR_DLAB) { this.dll = value; return; }
        this.tx.push(value);
        this.txBytes++;
        if (this.tx.length >= 4096) this.flush();
        this.thrIrqPending = true; // the byte is sent at once, so the holding register is empty again
        this.update();
        return;
      case 1:
        if (this.lcr & LCR_DLAB) { this.dlm = value; return; }
        // Enabling THRI with an empty holding register raises the interrupt at once (as a real 16550 does).
        if ((value & IER_THRI) && !(this.ier & IER_THRI)) this.thrIrqPending = true;
        this.ier = value & 0x0f;
        this.update();
        return;
      case 2:
        this.fcr = value;
        if (value & 2) { this.rx = []; this.rxHead = 0; this.update(); }
        return;
      case 3: this.lcr = value; return;
      case 4: this.mcr = value; return;
      case 7: this.scr = value; return;
    }
  }
}
