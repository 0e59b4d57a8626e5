// The core-local interruptor (SiFive CLINT layout): msip, mtimecmp and mtime for M-mode software. Linux in
// S-mode uses the SBI timer instead, but the registers exist as on QEMU's virt board.

import type { MmioDevice } from "./bus.ts";
import { StateReader, type StateValue, type Stateful } from "../snapshot/state-value.ts";

export const CLINT_SIZE = 0x10000;

export class Clint implements MmioDevice, Stateful {
  readonly size = CLINT_SIZE;
  msip = false;
  /** at reset: the largest signed 64-bit value, so no timer fires (~0n >> 1n would be -1n: a BigInt shift keeps the sign) */
  private mtimecmp = (1n << 63n) - 1n;

  constructor(private readonly now: () => bigint, private readonly changed: () => void) {}

  timerPending(now: bigint): boolean { return now >= this.mtimecmp; }

  /** msip and mtimecmp; mtime is the machine's clock, saved with the machine. */
  saveState(): StateValue {
    return { msip: this.msip, mtimecmp: this.mtimecmp };
  }

  restoreState(state: StateValue): void {
    const r = new StateReader(state, "clint");
    const msip = r.bool("msip");
    const mtimecmp = r.big("mtimecmp", 64);
    this.msip = msip;
    this.mtimecmp = mtimecmp;
    this.changed(); // MSIP and MTIP follow the restored registers
  }

  read(offset: number, size: 1 | 2 | 4): number {
    if (size !== 4) return 0;
    if (offset === 0) return this.msip ? 1 : 0;
    if (offset === 0x4000) return Number(this.mtimecmp & 0xffffffffn);
    if (offset === 0x4004) return Number(this.mtimecmp >> 32n);
    if (offset === 0xbff8) return Number(this.now() & 0xffffffffn);
    if (offset === 0xbffc) return Number(this.now() >> 32n);
    return 0;
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    if (size !== 4) return;
    const v = BigInt(value >>> 0);
    if (offset === 0) this.msip = (value & 1) !== 0;
    else if (offset === 0x4000) this.mtimecmp = (this.mtimecmp & ~0xffffffffn) | v;
    else if (offset === 0x4004) this.mtimecmp = (this.mtimecmp & 0xffffffffn) | (v << 32n);
    else return;
    this.changed();
  }
}
