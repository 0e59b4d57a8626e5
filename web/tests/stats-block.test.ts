// The stats block (web/shared/stats-block.ts): what the worker publishes is what the page reads, absent fields stay
// absent, GEN moves only when something that is not a number changed, and a block being written is never read.

import { describe, it, expect } from "vitest";
import { StatsBlockReader, StatsBlockWriter, STATS_BLOCK_BYTES } from "../shared/stats-block.ts";
import type { VmStats } from "../shared/protocol.ts";

const stats = (over: Partial<VmStats> = {}): VmStats => ({
  state: "running", instret: 123_456_789, busyMs: 1500.25, idleMs: 98_000, atMs: 5000.5, throttledMs: 0, cpuCap: 100,
  uptimeMs: 60_000, net: { cards: 2, rxBytes: 10, txBytes: 20, rxPackets: 1, txPackets: 2 },
  disk: { sizeBytes: 64 << 20, persistent: true, storedBytes: 4096, ownBytes: 8192, sharedBytes: 0, readBytes: 1, writeBytes: 2, reads: 3, writes: 4 },
  balloon: { ramPages: 16384, targetPages: 0, actualPages: 0, inflatedPages: 0, deflateOnOom: true, memTotal: 60 << 20 },
  startedFrom: "template", startMs: 12,
  ...over,
});

describe("stats block", () => {
  it("reads back what was published, numbers from the block and the rest from the last whole stats", () => {
    const buf = new SharedArrayBuffer(STATS_BLOCK_BYTES);
    const w = new StatsBlockWriter(buf);
    const r = new StatsBlockReader(buf);
    const base = stats();
    expect(r.read(base)).toBeUndefined(); // nothing published yet
    expect(r.age()).toBe(Infinity);
    w.publish(base);
    expect(r.read(base)).toEqual(base);
    expect(r.age()).toBeLessThan(100);
    const later = stats({ instret: 999_999_999, busyMs: 2000, atMs: 6000, net: { cards: 2, rxBytes: 11, txBytes: 22, rxPackets: 3, txPackets: 4 },
      balloon: { ...base.balloon!, memTotal: undefined, memFree: 1 << 20 } });
    const gen = r.gen;
    w.publish(later);
    expect(r.gen).toBe(gen); // only numbers changed
    const got = r.read(base)!;
    expect(got).toEqual(later);
    expect(got.balloon!.memTotal).toBeUndefined();
    expect(got.startedFrom).toBe("template"); // from the base
  });

  it("moves GEN when the state, a halt, how the guest started or the disk's problem changes", () => {
    const buf = new SharedArrayBuffer(STATS_BLOCK_BYTES);
    const w = new StatsBlockWriter(buf);
    const r = new StatsBlockReader(buf);
    w.publish(stats());
    let gen = r.gen;
    for (const over of [{ state: "paused" as const }, { haltReason: "powered off" }, { startedFrom: "snapshot" as const },
      { disk: { ...stats().disk!, problem: "the storage is full" } }, { balloon: undefined }, { lastHoldMs: 40 }]) {
      w.publish(stats(over));
      expect(r.gen, JSON.stringify(over)).toBeGreaterThan(gen);
      gen = r.gen;
    }
  });

  it("carries the JIT's counters when the machine has a JIT, and moves GEN when it gets one or loses it", () => {
    const buf = new SharedArrayBuffer(STATS_BLOCK_BYTES);
    const w = new StatsBlockWriter(buf);
    const r = new StatsBlockReader(buf);
    w.publish(stats());
    const gen = r.gen;
    expect(r.read(stats())!.jit).toBeUndefined(); // none: absent, not zeros
    const withJit = stats({ jit: { compiled: 6600, compileMs: 7123.5, instret: 4_500_000_123 } });
    w.publish(withJit);
    expect(r.gen).toBeGreaterThan(gen); // the page fetches the whole stats: its base then has a jit
    expect(r.read(withJit)).toEqual(withJit);
    const later = stats({ instret: 999_999_999, jit: { compiled: 6700, compileMs: 7200, instret: 5_000_000_000 } });
    const gen2 = r.gen;
    w.publish(later);
    expect(r.gen).toBe(gen2); // only numbers changed
    expect(r.read(withJit)!.jit).toEqual(later.jit); // the numbers from the block, over the last whole stats
    w.publish(stats()); // a new machine without one (the JIT turned off, then a start)
    expect(r.gen).toBeGreaterThan(gen2);
    expect(r.read(stats())!.jit).toBeUndefined();
  });

  it("never hands out a block the worker is writing", () => {
    const buf = new SharedArrayBuffer(STATS_BLOCK_BYTES);
    const w = new StatsBlockWriter(buf);
    const r = new StatsBlockReader(buf);
    w.publish(stats());
    const seq = new Int32Array(buf, 0, 1);
    Atomics.add(seq, 0, 1); // as if the worker were half way through a publish
    expect(r.read(stats())).toBeUndefined();
    expect(r.age()).toBe(Infinity);
    Atomics.add(seq, 0, 1);
    expect(r.read(stats())).toEqual(stats());
  });
});
