// The run loop every embedder shares: run the guest a slice at a time, sleep while it idles until its next timer
// deadline or a wake-up, and report halts, reboots and failures. What differs between platforms comes in as a
// RunnerHost: how to sleep (a Node timer, Atomics.wait in a worker), how to let the event loop in, and a hook
// before each slice that feeds input and frames and decides how long the guest may run, or holds it (a CPU cap,
// console output the page has not taken yet: the embedder's policies).
//
// The guest's time is spent inside wasm; this loop turns once per slice (milliseconds), so a promise per turn
// costs nothing that matters.

import type { Machine } from "./machine.ts";

/** What to do before the next slice: run the guest for up to `ms` of host time, or hold it for `ms` (the sleep
 *  ends early on a wake-up) and then ask again; `held` is told how long the hold lasted. */
export type SliceDecision =
  | { run: true; ms: number }
  | { run: false; ms: number; held?: (ms: number) => void };

export const runSlice = (ms: number): SliceDecision => ({ run: true, ms });
export const hold = (ms: number, held?: (ms: number) => void): SliceDecision => ({ run: false, ms, held });

export interface RunnerHost {
  /** The wake-up count. The runner reads it before looking for work, and a sleep given that value ends at once
   *  if a wake-up came since: no wake-up is missed between looking and sleeping. */
  wakeToken(): number;
  /** Sleeps until `ms` have passed or the wake-up count moves past `token`. */
  sleep(token: number, ms: number): void | Promise<void>;
  /** Wakes a sleep (used by stop()). */
  wake(): void;
  /** Lets the event loop run: messages, timers, I/O. Called after every slice and every sleep. */
  yieldToEvents(): Promise<void>;
  /** Before each slice: hand the machine its input and frames, and decide the slice. Also called while the runner
   *  has no machine (the decision is then always a hold). */
  beforeSlice(machine: Machine | undefined): SliceDecision;
  /** After each slice, with the host time it ran. */
  afterSlice?(machine: Machine, ranMs: number): void;
  /** The guest idles: is something waiting that it should get now (input it can take, frames)? Then the runner
   *  does not sleep. */
  hasWork?(machine: Machine): boolean;
  /** The guest rebooted; the machine has started over in place. */
  rebooted?(machine: Machine): void;
  /** The guest powered off or crashed (machine.exitStatus, machine.haltReason). The runner does not run a halted
   *  machine again until it is rebooted. */
  halted(machine: Machine): void;
  /** The emulator threw. The runner does not run this machine again until it is rebooted. */
  failed(machine: Machine, error: unknown): void;
}

export interface RunnerOptions {
  /** longest single sleep: a safety net, every reason to wake up should also call wake() (default 1000 ms) */
  maxSleepMs?: number;
}

export class MachineRunner {
  /** The machine this loop drives; the embedder may set it later or swap it. Without one the loop only sleeps. */
  machine: Machine | undefined;
  private readonly maxSleepMs: number;
  private stopped = false;
  /** a machine that failed: not run again until it reboots */
  private broken: { machine: Machine; reboots: number } | undefined;

  constructor(private readonly host: RunnerHost, machine?: Machine, opts: RunnerOptions = {}) {
    this.machine = machine;
    this.maxSleepMs = opts.maxSleepMs ?? 1000;
  }

  /** Ends run() after the current slice or sleep. */
  stop(): void {
    this.stopped = true;
    this.host.wake();
  }

  /** Runs until stop(). */
  async run(): Promise<void> {
    const host = this.host;
    while (!this.stopped) {
      const token = host.wakeToken();
      const m = this.machine;
      const d = host.beforeSlice(m);
      if (!d.run || !m || !this.runnable(m)) {
        const ms = Math.min(d.run ? this.maxSleepMs : d.ms, this.maxSleepMs);
        if (ms > 0) {
          const t0 = performance.now();
          await host.sleep(token, ms);
          if (!d.run) d.held?.(performance.now() - t0);
        }
        await host.yieldToEvents();
        continue;
      }
      const busy0 = m.busyMs;
      let outcome;
      try {
        outcome = m.runFor(d.ms);
      } catch (e) {
        this.broken = { machine: m, reboots: m.reboots };
        host.failed(m, e);
        await host.yieldToEvents();
        continue;
      }
      host.afterSlice?.(m, m.busyMs - busy0);
      switch (outcome.kind) {
        case "halted": host.halted(m); break;
        case "rebooted": host.rebooted?.(m); break;
        case "idle":
          if (!host.hasWork?.(m)) {
            const t0 = performance.now();
            const ms = Math.min(this.maxSleepMs, (outcome.wakeAtMs ?? Infinity) - t0);
            if (ms > 0) await host.sleep(token, ms);
            m.idleMs += performance.now() - t0;
          }
          break;
      }
      await host.yieldToEvents();
    }
  }

  private runnable(m: Machine): boolean {
    if (m.halted) return false;
    if (this.broken?.machine === m && this.broken.reboots === m.reboots) return false;
    return true;
  }
}
