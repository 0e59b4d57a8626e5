// The hart state block: its layout comes from one table (hart-state.mjs) for both the hart and TypeScript, the
// hart keeps all its state there (so two harts on one memory stay apart), and a hart's state saves and restores.

import { describe, it, expect } from "vitest";
import { readFileSync } from "node:fs";
import { loadHartModule } from "../src/node/hart-module.ts";
import { computeLayout, RAM_BASE } from "../src/layout.ts";
import { Hart } from "../src/hart.ts";
import { HART_BLOCK, HART_FIELDS } from "../src/hart-state.ts";
import { SnapshotError } from "../src/snapshot/state-value.ts";
// @ts-expect-error: a plain ESM build script without type declarations
import { assemblyText, typescriptText } from "../hart-state-gen.mjs";
import { sType } from "../src/fuzz/program.ts";

const csrrw = (csr: number, rs1: number) => ((csr << 20) | (rs1 << 15) | (1 << 12) | 0x73) >>> 0;
const JAL_SELF = 0x0000006f; // jal x0, 0: park the hart

/** Writes mscratch, pmpaddr0 and fflags from a0, a1, a2, then parks: state that used to sit in module globals
 *  and static data (which every instance on one memory shares). */
function program(): Uint8Array {
  const words = [csrrw(0x340, 10), csrrw(0x3b0, 11), csrrw(0x001, 12), JAL_SELF];
  return new Uint8Array(new Uint32Array(words).buffer);
}

function startAt(h: Hart, entry: bigint, a0: bigint, a1: bigint, a2: bigint): void {
  h.ex.reset(h.hartId, entry);
  h.state.mhartid = BigInt(h.hartId);
  h.state.mstatus = h.state.mstatus | (1n << 13n); // FS = Initial, so fflags is accessible
  h.setReg(10, a0); h.setReg(11, a1); h.setReg(12, a2);
}

describe("hart state block", () => {
  it("the generated layouts match the table", () => {
    expect(readFileSync(new URL("../assembly/hart-state.ts", import.meta.url), "utf8")).toBe(assemblyText());
    expect(readFileSync(new URL("../src/hart-state.ts", import.meta.url), "utf8")).toBe(typescriptText());
    // every field inside the FIELDS region, none overlapping
    const spans = Object.values(HART_FIELDS).map((f) => [f.offset, f.offset + f.size]).sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < spans.length; i++) expect(spans[i][0]).toBeGreaterThanOrEqual(spans[i - 1][1]);
    expect(spans[0][0]).toBeGreaterThanOrEqual(HART_BLOCK.FIELDS);
    expect(spans[spans.length - 1][1]).toBeLessThanOrEqual(HART_BLOCK.PMPCFG);
  });

  it("two harts on one memory share no state", () => {
    const layout = computeLayout(4, 8, 2);
    const module = loadHartModule();
    const h0 = new Hart(module, layout, undefined, 0);
    h0.writePhys(RAM_BASE, program());
    startAt(h0, RAM_BASE, 0x1111n, 0x2222n, 0x5n);
    h0.run(10);
    expect(h0.state.mscratch).toBe(0x1111n);
    // A second instance on the same memory: instantiating and resetting it must not touch hart 0.
    const h1 = new Hart(module, layout, h0.memory, 1);
    expect(h0.state.mscratch).toBe(0x1111n);
    const pmp0 = () => new DataView(h0.memory.buffer).getBigUint64(layout.hartBase + HART_BLOCK.PMPADDR, true);
    expect(pmp0()).toBe(0x2222n);
    expect(h0.state.fflags).toBe(5);
    startAt(h1, RAM_BASE, 0x3333n, 0x4444n, 0x12n);
    h1.run(10);
    expect([h1.state.mscratch, h1.state.fflags]).toEqual([0x3333n, 0x12]);
    expect([h0.state.mscratch, pmp0(), h0.state.fflags, h0.state.mhartid]).toEqual([0x1111n, 0x2222n, 5, 0n]);
    expect(h1.state.mhartid).toBe(1n);
    expect(h0.pc).toBe(RAM_BASE + 12n);
    expect(h1.pc).toBe(RAM_BASE + 12n);
  });

  it("saves and restores a hart's state; refuses a state of another layout or a corrupt one", () => {
    const module = loadHartModule();
    const a = Hart.create(module, 4);
    a.writePhys(RAM_BASE, program());
    startAt(a, RAM_BASE, 7n, 8n, 1n);
    a.run(10);
    const saved = a.saveState();
    expect(saved.block.length).toBe(HART_BLOCK.SAVED_BYTES);

    const b = Hart.create(module, 4);
    b.restoreState(saved);
    expect([b.pc, b.state.mscratch, b.state.fflags, b.instret, b.reg(10)]).toEqual([a.pc, 7n, 1, a.instret, 7n]);
    expect(b.saveState().block).toEqual(saved.block);

    const before = b.saveState().block;
    expect(() => b.restoreState({ ...saved, layoutVersion: saved.layoutVersion ^ 1 })).toThrow(SnapshotError);
    expect(() => b.restoreState({ ...saved, block: saved.block.subarray(0, 100) })).toThrow(/bytes/);
    const badPriv = saved.block.slice();
    new DataView(badPriv.buffer).setUint32(HART_FIELDS.priv.offset, 2, true);
    expect(() => b.restoreState({ ...saved, block: badPriv })).toThrow(/privilege/);
    expect(b.saveState().block).toEqual(before);
  });

  it("takes a flush request from another thread before its next instruction", () => {
    const h = Hart.create(loadHartModule(), 4);
    h.writePhys(RAM_BASE, program());
    startAt(h, RAM_BASE, 1n, 2n, 0n);
    h.requestFlush(2);
    expect(h.state.flushRequest).toBe(2);
    h.run(1);
    expect(h.state.flushRequest).toBe(0);
  });
});

describe("write logging (live migration)", () => {
  // sd a1, 0(a0); sd a1, 8(a0); sd a1, 0(a2); then park
  const sd = (rs2: number, rs1: number, imm: number) => sType(imm, rs2, rs1, 3, 0x23);
  const code = () => new Uint8Array(new Uint32Array([sd(11, 10, 0), sd(11, 10, 8), sd(11, 12, 0), JAL_SELF]).buffer);

  it("marks every page the hart or a device writes, and again after each collect", async () => {
    const { DirtyLog } = await import("../src/machine/dirty-log.ts");
    const { GuestMemory } = await import("../src/machine/guest-memory.ts");
    const h = Hart.create(loadHartModule(), 4);
    const mem = new GuestMemory(h.memory.buffer, h.layout.ramOffset, h.layout.ramBytes, RAM_BASE);
    h.writePhys(RAM_BASE, code());
    const log = new DirtyLog([h], mem);
    h.setReg(10, RAM_BASE + 0x5000n); h.setReg(11, 0x77n); h.setReg(12, RAM_BASE + 0x9008n);
    // the same three stores again, without a reset (which would empty the TLBs itself)
    const run = () => { h.pc = RAM_BASE; h.run(4); };
    run(); // not logging: nothing marked
    log.start();
    expect(log.collect()).toEqual([]);
    run();
    expect(log.collect()).toEqual([5, 9]);
    run(); // the write TLB now maps both pages, but collect() made the hart flush it: marked again
    expect(log.collect()).toEqual([5, 9]);
    mem.setU32(RAM_BASE + 0x3ffen, 1); // a device write straddling pages 3 and 4
    expect(log.collect()).toEqual([3, 4]);
    log.stop();
    run();
    mem.setU32(RAM_BASE + 0x3000n, 1);
    expect(log.collect()).toEqual([]);
  });
});
