// When the VM worker asks the guest for its memory statistics (web/vm/memory-stats-pacer.ts): an idle guest whose
// memory holds still is asked ever more rarely, up to once a minute; a guest that runs, or whose memory moves, is
// asked every second; a new balloon target or a reboot is asked about at once.

import { describe, it, expect } from "vitest";
import { MemoryStatsPacer, MEM_STATS_MAX_MS, MEM_STATS_MIN_MS } from "../vm/memory-stats-pacer.ts";

const MiB = 1 << 20;

/** Asks over `seconds` of host time, looked at every 100 ms (as the worker's loop turns), the guest running
 *  `ips` instructions a second with `available(t)` bytes available. */
function asks(p: MemoryStatsPacer, from: number, seconds: number, ips: number, available: (t: number) => number, instret0 = 0n): number[] {
  const at: number[] = [];
  for (let t = from; t < from + seconds * 1000; t += 100) {
    if (p.due(t, instret0 + BigInt(Math.round((ips * (t - from)) / 1000)), available(t))) at.push(t);
  }
  return at;
}

describe("memory statistics pacing", () => {
  it("an idle guest whose memory holds still is asked ever more rarely, then once a minute", () => {
    const p = new MemoryStatsPacer();
    const at = asks(p, 0, 600, 20_000, () => 40 * MiB);
    expect(at.slice(0, 6)).toEqual([0, 1000, 3000, 7000, 15000, 31000]);
    const gaps = at.slice(1).map((t, i) => t - at[i]);
    expect(Math.max(...gaps)).toBe(MEM_STATS_MAX_MS);
    // ten minutes idle: 12-13 requests, against 600 at one a second
    expect(at.length).toBeLessThanOrEqual(15);
    expect(gaps.slice(-3)).toEqual([MEM_STATS_MAX_MS, MEM_STATS_MAX_MS, MEM_STATS_MAX_MS]);
  });

  it("a guest that runs is asked every second, even while its memory holds still", () => {
    const p = new MemoryStatsPacer();
    asks(p, 0, 300, 20_000, () => 40 * MiB); // idle first: at the slow pace
    const busy = asks(p, 300_000, 10, 50_000_000, () => 40 * MiB, 10n ** 9n);
    expect(busy[0] - 300_000).toBeLessThanOrEqual(MEM_STATS_MIN_MS);
    expect(busy.slice(1).map((t, i) => t - busy[i])).toEqual(new Array(busy.length - 1).fill(MEM_STATS_MIN_MS));
    expect(busy.length).toBeGreaterThanOrEqual(9);
  });

  it("memory that moves brings back the quick pace", () => {
    const p = new MemoryStatsPacer();
    const at = asks(p, 0, 120, 20_000, (t) => (t < 60_000 ? 40 : 30 - Math.floor((t - 60_000) / 1000)) * MiB);
    const after = at.filter((t) => t > 64_000);
    // asked every second from the first answer that shows the change (the slow pace's next ask, at most a minute on)
    expect(after.length).toBeGreaterThanOrEqual(50);
    expect(Math.max(...after.slice(1).map((t, i) => t - after[i]))).toBe(MEM_STATS_MIN_MS);
  });

  it("a new balloon target is asked about at once, and a count that went back (a reboot) too", () => {
    const p = new MemoryStatsPacer();
    asks(p, 0, 300, 20_000, () => 40 * MiB);
    expect(p.due(300_500, 6_000_000n, 40 * MiB)).toBe(false); // idle, within the slow pace (6M over 300 s)
    p.quicken();
    expect(p.due(300_600, 6_000_000n, 40 * MiB)).toBe(true);
    expect(p.due(300_700, 6_000_000n, 40 * MiB)).toBe(false); // never more than once a second
    expect(p.due(302_000, 1_000n, 40 * MiB)).toBe(true); // rebooted: its count started again
  });
});
