// The dashboard's CPU sharing by weight (web/src/scheduler.ts) and its meter arithmetic (web/src/meters.ts), in Node.

import { describe, it, expect } from "vitest";
import { shareCpu, HOST_SHARE, MIN_SHARE, HEADROOM, type SchedVm } from "../src/scheduler.ts";
import { sampleBetween, MeterHistory, HISTORY_SECONDS, restingSample } from "../src/meters.ts";
import { jitFields, jitHint } from "../src/jit-meter.ts";
import type { VmStats } from "../shared/protocol.ts";

const vm = (id: number, o: Partial<SchedVm> = {}): SchedVm => ({ id, cap: 100, weight: 100, used: 0, allowed: 100, throttled: false, ...o });
const busy = (id: number, o: Partial<SchedVm> = {}) => vm(id, { used: 100, throttled: true, ...o });

describe("CPU sharing by weight", () => {
  it("leaves every VM its own cap while the demand fits the host", () => {
    const caps = shareCpu([busy(1), vm(2, { used: 3 }), vm(3, { cap: 25, used: 25, allowed: 25 })], 2);
    expect([...caps]).toEqual([[1, 100], [2, 100], [3, 25]]);
  });

  it("splits the cores evenly among equally weighted busy VMs", () => {
    const caps = shareCpu([busy(1), busy(2), busy(3), busy(4)], 2);
    const each = (2 * 100 * HOST_SHARE) / 4;
    for (const id of [1, 2, 3, 4]) expect(caps.get(id)).toBeCloseTo(each, 5);
  });

  it("splits by weight", () => {
    const caps = shareCpu([busy(1, { weight: 300 }), busy(2), busy(3), busy(4)], 2);
    const capacity = 200 * HOST_SHARE;
    expect(caps.get(1)).toBeCloseTo((capacity * 3) / 6, 5);
    for (const id of [2, 3, 4]) expect(caps.get(id)).toBeCloseTo(capacity / 6, 5);
  });

  it("gives what an idle VM leaves, and what a capped VM cannot take, to the busy ones", () => {
    const caps = shareCpu([busy(1, { weight: 300 }), busy(2), busy(3), vm(4, { used: 1, allowed: 45 })], 2);
    const capacity = 200 * HOST_SHARE;
    // the idle VM keeps what it uses (1); the heavy one is offered 107 and takes its whole cap (100)
    expect(caps.get(1)).toBe(100);
    expect(caps.get(2)).toBeCloseTo((capacity - 1 - 100) / 2, 5);
    expect(caps.get(3)).toBeCloseTo((capacity - 1 - 100) / 2, 5);
    // the idle one may still grow to its plain fair share at once
    expect(caps.get(4)).toBeCloseTo((capacity * 100) / 600, 5);
  });

  it("many idle VMs do not starve a busy one", () => {
    const idle = Array.from({ length: 60 }, (_, i) => vm(i + 2, { used: 0.2, allowed: 100 }));
    const caps = shareCpu([busy(1), ...idle], 2);
    expect(caps.get(1)).toBe(100); // 100 + 60 x 0.2 fits in 180: nobody competes
    const caps2 = shareCpu([busy(1), busy(99), busy(98), ...idle], 2);
    const left = 200 * HOST_SHARE - 60 * 0.2;
    for (const id of [1, 99, 98]) expect(caps2.get(id)).toBeCloseTo(left / 3, 5);
    expect(caps2.get(2)).toBeCloseTo(Math.max(0.2 + HEADROOM, (200 * HOST_SHARE) / 63), 5);
  });

  it("never gives more than a VM's own cap, never less than the minimum", () => {
    const caps = shareCpu([busy(1, { cap: 20, allowed: 20, used: 20 }), busy(2), busy(3), busy(4, { weight: 1 })], 1);
    expect(caps.get(1)).toBeLessThanOrEqual(20);
    expect(caps.get(4)).toBeGreaterThanOrEqual(MIN_SHARE);
    const total = [...caps.values()].reduce((a, b) => a + b, 0);
    expect(total).toBeLessThanOrEqual(100 * HOST_SHARE + MIN_SHARE + 1e-9);
  });
});

const stats = (o: Partial<VmStats>): VmStats => ({
  state: "running", instret: 0, busyMs: 0, idleMs: 0, atMs: 0, throttledMs: 0, cpuCap: 100, uptimeMs: 1000,
  net: { cards: 0, rxBytes: 0, txBytes: 0, rxPackets: 0, txPackets: 0 }, ...o,
});

describe("meters", () => {
  it("turns counters into rates over the worker's clock", () => {
    const a = stats({ atMs: 1000, busyMs: 100, instret: 1e6, disk: { sizeBytes: 1 << 24, ownBytes: 0, sharedBytes: 0, readBytes: 0, writeBytes: 0, reads: 0, writes: 0 } });
    const b = stats({
      atMs: 3000, busyMs: 600, instret: 101e6, throttledMs: 400,
      disk: { sizeBytes: 1 << 24, ownBytes: 0, sharedBytes: 0, readBytes: 4096, writeBytes: 2e6, reads: 1, writes: 10 },
      net: { cards: 1, rxBytes: 3000, txBytes: 1000, rxPackets: 4, txPackets: 2 },
    });
    const s = sampleBetween(a, b, 64);
    expect(s.cpu).toBeCloseTo(25);
    expect(s.mips).toBeCloseTo(50);
    expect(s.diskRead).toBeCloseTo(2048);
    expect(s.diskWrite).toBeCloseTo(1e6);
    expect(s.netRx).toBeCloseTo(1500);
    expect(s.netTxPkts).toBeCloseTo(1);
    expect(s.throttled).toBeCloseTo(200);
    expect(s.memUsed).toBeUndefined(); // no balloon statistics yet
    expect(s.memAvail).toBe(64);
  });

  it("reads guest memory from the balloon statistics, not counting the balloon as used", () => {
    const MiB = 1 << 20;
    const balloon = {
      ramPages: 16384, targetPages: 2048, actualPages: 2048, inflatedPages: 2048, deflateOnOom: true,
      memTotal: 60 * MiB, memFree: 40 * MiB, memAvailable: 42 * MiB,
    };
    const s = sampleBetween(stats({ atMs: 0 }), stats({ atMs: 1000, balloon }), 64);
    expect(s.balloon).toBe(8);
    expect(s.memUsed).toBeCloseTo(60 - 42 - 8);
    expect(s.memFree).toBe(40);
    expect(s.memAvail).toBe(56);
    // a guest that takes balloon pages off MemTotal instead
    const s2 = sampleBetween(stats({ atMs: 0 }), stats({ atMs: 1000, balloon: { ...balloon, deflateOnOom: false, memTotal: 52 * MiB } }), 64);
    expect(s2.memUsed).toBeCloseTo(52 - 42);
  });

  it("survives a reboot (counters start over) and keeps a bounded history", () => {
    const s = sampleBetween(stats({ atMs: 0, instret: 5e9 }), stats({ atMs: 1000, instret: 2e6 }), 64);
    expect(s.mips).toBeCloseTo(2);
    const h = new MeterHistory();
    for (let i = 0; i < HISTORY_SECONDS + 20; i++) h.push({ ...restingSample(), cpu: i });
    expect(h.t.length).toBe(HISTORY_SECONDS);
    expect(h.cpu[0]).toBe(20);
    expect(h.memUsed.length).toBe(HISTORY_SECONDS);
  });

  it("with the JIT: compile time as a share of the worker's busy time, blocks compiled, instructions run compiled", () => {
    const a = stats({ atMs: 0, busyMs: 1000, instret: 50e6, jit: { compiled: 100, compileMs: 40, instret: 20e6 } });
    const b = stats({ atMs: 1000, busyMs: 1400, instret: 150e6, jit: { compiled: 180, compileMs: 140, instret: 95e6 } });
    const s = sampleBetween(a, b, 64);
    expect(s.jitCompile).toBeCloseTo(25); // 100 ms of 400 ms busy
    expect(s.jitBlocks).toBe(180);
    expect(s.jitShare).toBeCloseTo(75); // 75 M of 100 M instructions
    const shown = Object.fromEntries(jitFields(s).map(([name, , v]) => [name, v]));
    expect(shown).toEqual({ "meter-jit-now": "25% compiling", "meter-jit": "25", "meter-jit-sub": "180 blocks compiled · 75% of instructions compiled" });
    // without a JIT: nothing of it, and the meter's figures say so
    const off = sampleBetween(stats({ atMs: 0 }), stats({ atMs: 1000, busyMs: 500, instret: 1e8 }), 64);
    expect([off.jitCompile, off.jitBlocks, off.jitShare]).toEqual([undefined, undefined, undefined]);
    expect(jitFields(off).map(([, , v]) => v)).toEqual(["—", "", ""]);
    expect(jitFields(restingSample()).map(([, , v]) => v)).toEqual(["—", "", ""]);
  });

  it("with the JIT: an idle guest shows no share (it would wander with every sample), and a reboot or a new machine stays within 0..100", () => {
    const a = stats({ atMs: 0, busyMs: 1000, instret: 50e6, jit: { compiled: 100, compileMs: 40, instret: 20e6 } });
    const idle = sampleBetween(a, stats({ atMs: 1000, busyMs: 1001, instret: 50.2e6, jit: { compiled: 100, compileMs: 40, instret: 20.1e6 } }), 64);
    expect(idle.jitShare).toBeUndefined();
    expect(idle.jitCompile).toBe(0);
    expect(jitFields(idle)[2][2]).toBe("100 blocks compiled · guest idle");
    // a reboot in place: instret starts over, the JIT's counters do not
    const rebooted = sampleBetween(a, stats({ atMs: 1000, busyMs: 1500, instret: 3e6, jit: { compiled: 150, compileMs: 90, instret: 60e6 } }), 64);
    expect(rebooted.jitShare).toBeGreaterThanOrEqual(0);
    expect(rebooted.jitShare).toBeLessThanOrEqual(100);
    // the first sample of a machine built with the JIT: its counters from zero, over the new machine's busy time
    const fresh = sampleBetween(stats({ atMs: 0, busyMs: 9000, instret: 8e9 }), stats({ atMs: 1000, busyMs: 800, instret: 40e6, jit: { compiled: 900, compileMs: 600, instret: 10e6 } }), 64);
    expect(fresh.jitCompile).toBeCloseTo(75);
    expect(fresh.jitShare).toBeCloseTo(25);
    const h = new MeterHistory();
    h.push(fresh);
    h.push(restingSample());
    expect(h.jitCompile).toEqual([75, null]);
  });

  it("the JIT setting says when a change waits for the next start", () => {
    expect(jitHint(false, undefined)).toBe("off: the interpreter");
    expect(jitHint(true, undefined)).toBe("hot code compiled to WebAssembly");
    expect(jitHint(true, true)).toBe("hot code compiled to WebAssembly");
    expect(jitHint(true, false)).toMatch(/^on from the next start/);
    expect(jitHint(false, true)).toMatch(/^off from the next start/);
  });
});
