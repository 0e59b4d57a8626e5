// A short fuzzing campaign in the suite (`npm run fuzz` runs longer ones): random bare-metal programs must each end
// through tohost, a fatal stop or the timeout, in time, without a host exception, with bounded memory.

import { describe, it, expect } from "vitest";
import { fuzzProgram } from "../src/fuzz/program.ts";
import { fuzzCampaign, parseSeeds } from "../src/fuzz/campaign.ts";
import { runBareElfWith } from "../src/bare.ts";
import { loadHartModule } from "../src/node/hart-module.ts";

const module = loadHartModule();

describe("fuzzing the hart", () => {
  it("a program is the same for the same seed, and its frame alone (no random instructions) passes", () => {
    expect(Buffer.compare(fuzzProgram(7).elf, fuzzProgram(7).elf)).toBe(0);
    expect(Buffer.compare(fuzzProgram(7).elf, fuzzProgram(8).elf)).not.toBe(0);
    const r = runBareElfWith(module, fuzzProgram(1, { instructions: 0 }).elf, { timeoutMs: 2000, ramMiB: 16 });
    expect(r.status).toBe("pass");
  });

  it("150 random programs of 2000 instructions each end cleanly, in time, on a whole host", () => {
    const report = fuzzCampaign(module, { from: 1, to: 150, instructions: 2000, timeoutMs: 2000 });
    expect(report.failures).toEqual([]);
    expect(report.runs).toBe(150);
    expect(Object.values(report.statuses).reduce((a, b) => a + b, 0)).toBe(150);
    expect(report.executed).toBeGreaterThan(150 * 2000); // they ran (the frame and the traps add to the count)
  }, 120_000);

  it("the campaign notices a host that throws", () => {
    // a module that is not the hart: building a hart from it throws, as a host bug would
    const notTheHart = new WebAssembly.Module(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
    const report = fuzzCampaign(notTheHart, { from: 1, to: 2, instructions: 10, timeoutMs: 100 });
    expect(report.failures.map((f) => f.seed)).toEqual([1, 2]);
    expect(report.failures[0].problem).toMatch(/^the host threw/);
    expect(() => parseSeeds("5-1")).toThrow(/empty/);
    expect(parseSeeds("3")).toEqual({ from: 3, to: 3 });
  });
});
