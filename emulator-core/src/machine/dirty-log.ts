// Write logging for live migration: which RAM pages were written since the last look.
//
// The bitmap (one bit per 4 KiB page, layout.dirtyMap) lives in the VM's shared memory. The hart sets bits on
// every RAM write that does not go through its write TLB, and the write TLB only ever holds pages whose bit is
// already set: starting the log and every collect() ask each hart to flush its TLBs before its next instruction,
// so the first write to a page after that takes the slow path and marks it. Devices mark what they write through
// GuestMemory.onWrite. So the interpreter's fast path pays nothing, logging or not.

import { FLUSH_TLB, type Hart } from "../hart.ts";
import type { GuestMemory } from "./guest-memory.ts";

const PAGE_SHIFT = 12;

export class DirtyLog {
  private readonly bits: Uint8Array;
  private on = false;

  constructor(private readonly harts: Hart[], private readonly memory: GuestMemory) {
    const layout = harts[0].layout;
    this.bits = new Uint8Array(harts[0].memory.buffer, layout.dirtyMap, Math.ceil(layout.ramBytes / 4096 / 8));
  }

  /** Starts logging with no page marked. */
  start(): void {
    this.bits.fill(0);
    this.on = true;
    this.memory.onWrite = (off, len) => this.mark(off, len);
    for (const h of this.harts) { h.state.dirtyLog = 1; h.requestFlush(FLUSH_TLB); }
  }

  stop(): void {
    this.on = false;
    this.memory.onWrite = undefined;
    for (const h of this.harts) h.state.dirtyLog = 0;
  }

  /** Marks RAM bytes [off, off + len) written. */
  mark(off: number, len: number): void {
    if (len <= 0) return;
    const last = (off + len - 1) >>> PAGE_SHIFT;
    for (let p = off >>> PAGE_SHIFT; p <= last; p++) this.bits[p >> 3] |= 1 << (p & 7);
  }

  /** The pages written since start() or the last collect(), in order; clears them (and makes the harts mark
   *  again what they write next). Call between run() calls. */
  collect(): number[] {
    const pages: number[] = [];
    const bits = this.bits;
    for (let i = 0; i < bits.length; i++) {
      const b = bits[i];
      if (b === 0) continue;
      bits[i] = 0;
      for (let k = 0; k < 8; k++) if (b & (1 << k)) pages.push(i * 8 + k);
    }
    if (this.on) for (const h of this.harts) h.requestFlush(FLUSH_TLB);
    return pages;
  }
}
