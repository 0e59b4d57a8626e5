// An NS16550A UART: the VM's console. Transmitted bytes go to onOutput in batches (flushed by the machine at the
// end of each slice); received bytes wait in a FIFO and raise the receive interrupt when enabled.
//
// The transmit FIFO holds the bytes the guest wrote until the host "sends" them, which it does in batches: once
// the FIFO is full (16 bytes), or TX_DRAIN_INSTRUCTIONS guest instructions after the first byte went in (on the
// machine's instruction clock: the machine calls drainTx() then, and at once when the guest idles), or when the
// guest polls LSR. Only THRE and its interrupt follow this; the bytes themselves leave for onOutput as they are
// written, so nothing is late on the console. Why: a FIFO that empties the moment a byte is written costs Linux a
// THRE interrupt per write() of its tty layer, two per line of text (the line, then "\r\n": about 20 MMIO exits and
// 3,000 guest instructions a line); with the FIFO emptying later its driver finds the next lines queued already
// and sends them in the same interrupt, as it would on a real 16550, whose FIFO empties at the line's pace.

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
/** Guest instructions from the first byte into an empty transmit FIFO to the FIFO empty again (its THRE
 *  interrupt), unless it fills first. Long enough for a program writing lines to have queued several by then,
 *  short enough (well under a millisecond of guest time) that output the guest's driver holds back for the
 *  interrupt is not noticeably late; a guest that idles gets the interrupt at once. */
export const TX_DRAIN_INSTRUCTIONS = 50_000;
/** the transmit FIFO's size with FIFOs enabled (FCR bit 0); a 16450's holding register without */
const TX_FIFO = 16;

export interface UartOptions {
  /** the machine's instruction clock (retired instructions); without one the transmit FIFO empties only when
   *  full, by drainTx() or on an LSR read */
  clock?: () => number;
}

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
  /** the level the interrupt line was last driven to */
  private irqLevel = false;
  /** clock value at which the transmit FIFO is empty again; Infinity while it is empty */
  private due = Infinity;
  /** bytes in the transmit FIFO */
  private txLevel = 0;
  txBytes = 0;
  private readonly clock: () => number;

  constructor(private readonly irq: IrqLine, private readonly onOutput: (bytes: Uint8Array) => void, opts: UartOptions = {}) {
    this.clock = opts.clock ?? (() => 0);
  }

  /** Queues bytes typed at the console. Returns how many were accepted (the FIFO is bounded). */
  input(bytes: Uint8Array): number {
    const room = RX_LIMIT - (this.rx.length - this.rxHead);
    const n = Math.min(room, bytes.length);
    for (let i = 0; i < n; i++) this.rx.push(bytes[i]);
    this.update();
    return n;
  }

  get rxPending(): number { return this.rx.length - this.rxHead; }

  /** Whether the transmit FIFO still holds bytes (as far as the guest can tell: LSR.THRE is clear). */
  get txBusy(): boolean { return this.due !== Infinity; }
  /** When (on the clock) the transmit FIFO empties unless the guest fills it first: the machine's slice ends there.
   *  Infinity while it is empty. */
  get txDue(): number { return this.due; }

  /** Empties the transmit FIFO if its time has come (now on the clock; by default: whatever the time). */
  drainTx(now = Infinity): void {
    if (now < this.due) return;
    this.due = Infinity;
    this.txLevel = 0;
    this.thrIrqPending = true;
    this.update();
  }

  /** Hands buffered output to onOutput. */
  flush(): void {
    if (this.tx.length === 0) return;
    const out = Uint8Array.from(this.tx);
    this.tx.length = 0;
    this.onOutput(out);
  }

  /**
   * The registers, the unread receive FIFO, whether a THR-empty interrupt is owed and how long the transmit FIFO
   * takes yet to empty. Output still buffered is handed to onOutput first: it left the guest already, and a
   * snapshot must not repeat or lose it.
   */
  saveState(): StateValue {
    this.flush();
    return {
      ier: this.ier, lcr: this.lcr, mcr: this.mcr, scr: this.scr, dll: this.dll, dlm: this.dlm, fcr: this.fcr,
      thrIrqPending: this.thrIrqPending,
      rx: Uint8Array.from(this.rx.slice(this.rxHead)),
      txBytes: this.txBytes,
      txLevel: this.txLevel,
      txDueIn: this.txBusy ? Math.max(0, this.due - this.clock()) : 0,
    };
  }

  /** Restores saveState()'s output and drives the interrupt line to the restored level. A state from before the
   *  transmit FIFO was modelled has it empty. */
  restoreState(state: StateValue): void {
    const r = new StateReader(state, "uart");
    const ier = r.num("ier", 0, 0x0f);
    const [lcr, mcr, scr, dll, dlm, fcr] = ["lcr", "mcr", "scr", "dll", "dlm", "fcr"].map((k) => r.num(k, 0, 0xff));
    const thrIrqPending = r.bool("thrIrqPending");
    const rx = r.bytes("rx", { maxLength: RX_LIMIT });
    const txBytes = r.num("txBytes", 0);
    const txLevel = r.has("txLevel") ? r.num("txLevel", 0, TX_FIFO - 1) : 0;
    const txDueIn = txLevel > 0 ? r.num("txDueIn", 0, TX_DRAIN_INSTRUCTIONS) : 0;
    this.flush(); // output from before the restore still belongs to the console
    this.ier = ier; this.lcr = lcr; this.mcr = mcr; this.scr = scr; this.dll = dll; this.dlm = dlm; this.fcr = fcr;
    this.thrIrqPending = thrIrqPending;
    this.txBytes = txBytes;
    this.txLevel = txLevel;
    this.due = txLevel > 0 ? this.clock() + txDueIn : Infinity;
    this.rx = Array.from(rx);
    this.rxHead = 0;
    this.update(true);
  }

  /** Drives the interrupt line; only a change goes to the PLIC (each change costs it a recomputation), unless
   *  `always` (a restore, whose PLIC may hold another level). */
  private update(always = false): void {
    const level = ((this.ier & IER_RDI) !== 0 && this.rxHead < this.rx.length)
      || ((this.ier & IER_THRI) !== 0 && this.thrIrqPending);
    if (level === this.irqLevel && !always) return;
    this.irqLevel = level;
    this.irq.set(level);
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
      case 5:
        // A guest polling for THRE (a console write waiting for room, a close waiting for the line to drain)
        // finds the FIFO empty: the host took the bytes long since, and a poll should not spin until the clock
        // says so.
        if (this.txBusy) this.drainTx();
        return LSR_THRE | LSR_TEMT | (this.rxPending > 0 ? LSR_DR : 0);
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
        // Writing THR clears a THRE interrupt; the next one comes when the FIFO has emptied.
        if (this.txLevel++ === 0) this.due = this.clock() + TX_DRAIN_INSTRUCTIONS;
        if (this.thrIrqPending) { this.thrIrqPending = false; this.update(); }
        if (this.txLevel >= (this.fcr & 1 ? TX_FIFO : 1)) this.drainTx();
        return;
      case 1:
        if (this.lcr & LCR_DLAB) { this.dlm = value; return; }
        // Enabling THRI with the FIFO empty raises the interrupt at once (as a real 16550 does, and Linux checks
        // for at start-up); with bytes still in it, the interrupt comes when it empties.
        if ((value & IER_THRI) && !(this.ier & IER_THRI)) this.thrIrqPending = !this.txBusy;
        this.ier = value & 0x0f;
        this.update();
        return;
      case 2:
        this.fcr = value;
        if (value & 2) { this.rx = []; this.rxHead = 0; this.update(); }
        if ((value & 4) && this.txBusy) this.drainTx(); // clearing the transmit FIFO empties it
        return;
      case 3: this.lcr = value; return;
      case 4: this.mcr = value; return;
      case 7: this.scr = value; return;
    }
  }
}
