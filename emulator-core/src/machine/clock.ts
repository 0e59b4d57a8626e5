// The machine's time base: mtime at 10 MHz, following host time, or (deterministic) retired instructions.
// A restored machine's clock runs on from the value it was saved with, so the guest sees no jump.

import type { StateValue } from "../snapshot/state-value.ts";
import { StateReader } from "../snapshot/state-value.ts";

export const TIMEBASE_HZ = 10_000_000;

export class MachineClock {
  /** host ms (performance.now() scale) at which mtime was `base` */
  private startMs = performance.now();
  private base = 0n;
  /** deterministic mode: ticks skipped over while the guest idled */
  private idleSkipTicks = 0n;

  constructor(readonly deterministic: boolean, private readonly instret: () => bigint) {}

  now(): bigint {
    if (this.deterministic) return this.instret() / 10n + this.idleSkipTicks;
    return this.base + BigInt(Math.floor((performance.now() - this.startMs) * (TIMEBASE_HZ / 1000)));
  }

  /** Deterministic mode: the guest idles until `deadline`; skip the wait. */
  skipTo(deadline: bigint): void {
    const now = this.now();
    if (deadline > now) this.idleSkipTicks += deadline - now;
  }

  /** Starts over at zero (boot). */
  reset(): void { this.startMs = performance.now(); this.base = 0n; this.idleSkipTicks = 0n; }

  static ticksToMs(ticks: bigint): number { return Number(ticks) / (TIMEBASE_HZ / 1000); }

  saveState(): StateValue {
    return { mtime: this.now(), idleSkipTicks: this.idleSkipTicks };
  }

  /** Call after the hart is restored (deterministic time follows its instret). */
  restoreState(state: StateValue): void {
    const r = new StateReader(state, "clock");
    const mtime = r.big("mtime");
    const skip = r.big("idleSkipTicks");
    this.idleSkipTicks = skip;
    this.base = mtime;
    this.startMs = performance.now();
  }
}
