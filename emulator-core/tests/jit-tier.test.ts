// The JIT's tiering: compiled regions run from run(), loops within a page run inside one call within run()'s
// budget, and everything that drops decoded instructions drops them too. Small M-mode programs, encoded here, run on a hart with the JIT on at threshold 1 (every block
// compiled on its first execution); the same program on the interpreter gives the reference instret.

import { describe, expect, it } from "vitest";
import { Hart, StopReason } from "../src/hart.ts";
import { computeLayout, RAM_BASE } from "../src/layout.ts";
import { loadHartModule } from "../src/node/hart-module.ts";
import type { JitOptions } from "../src/jit/tier.ts";
import { discoverRegion, hartDecoder } from "../src/jit/compile-region.ts";

// ---- a few RV64 encodings -----------------------------------------------------------------------------------
const I = (imm: number, rs1: number, f3: number, rd: number, opc: number) => (((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | opc) >>> 0;
const S = (imm: number, rs2: number, rs1: number, f3: number) => ((((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 0x1f) << 7) | 0x23) >>> 0;
const addi = (rd: number, rs1: number, imm: number) => I(imm, rs1, 0, rd, 0x13);
const lw = (rd: number, rs1: number, imm: number) => I(imm, rs1, 2, rd, 0x03);
const sw = (rs2: number, rs1: number, imm: number) => S(imm, rs2, rs1, 2);
const sd = (rs2: number, rs1: number, imm: number) => S(imm, rs2, rs1, 3);
const jalr = (rd: number, rs1: number, imm: number) => I(imm, rs1, 0, rd, 0x67);
const auipc = (rd: number) => (rd << 7) | 0x17;
const fenceI = 0x0000100f;
const jal = (rd: number, off: number) =>
  ((((off >> 20) & 1) << 31) | (((off >> 1) & 0x3ff) << 21) | (((off >> 11) & 1) << 20) | (((off >> 12) & 0xff) << 12) | (rd << 7) | 0x6f) >>> 0;
const B = (f3: number) => (rs1: number, rs2: number, off: number) =>
  ((((off >> 12) & 1) << 31) | (((off >> 5) & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (((off >> 1) & 0xf) << 8) | (((off >> 11) & 1) << 7) | 0x63) >>> 0;
const bne = B(1);
const blt = B(4);
const [ZERO, RA, T0, T1, S0, S1, A0] = [0, 1, 5, 6, 8, 9, 10];

const F = 0x100; // the function the programs call, rewritten while they run
const DATA = 0x200;
const TOHOST = 0x300;

/** A hart with words placed at byte offsets from RAM_BASE, tohost at RAM_BASE + TOHOST, pc at RAM_BASE; with the JIT
 *  at threshold 1 (jit true, or these options). */
function hartWith(words: Map<number, number>, jit: boolean | JitOptions): Hart {
  const h = new Hart(loadHartModule(), computeLayout(4));
  if (jit) h.enableJit({ threshold: 1, ...(jit === true ? {} : jit) });
  for (const [off, w] of words) h.writePhys(RAM_BASE + BigInt(off), new Uint8Array(new Uint32Array([w]).buffer));
  h.ex.reset(0, RAM_BASE);
  h.ex.setTohost(RAM_BASE + BigInt(TOHOST));
  return h;
}
const program = (code: number[], more: [number, number][] = []) => new Map<number, number>([...code.map((w, i) => [4 * i, w] as [number, number]), ...more]);

/** loop: a0 = f(); tohost = a0, with f (a0 = 1) on a page of its own, at FD */
const FD = 0x1000;
const callFOnItsPage = () => program([
  auipc(S0),                 // 0x00
  jal(RA, FD - 0x04),        // 0x04
  sd(A0, S0, TOHOST),        // 0x08
  jal(ZERO, -8),             // 0x0c
], [[FD, addi(A0, ZERO, 1)], [FD + 4, jalr(ZERO, RA, 0)]]);

/** Runs to the next tohost write; its value. */
function untilTohost(h: Hart): bigint {
  for (let i = 0; i < 100; i++) {
    const why = h.run(1_000_000);
    if (why === StopReason.Htif) return h.state.htifValue;
    expect(why, `pc 0x${h.pc.toString(16)}`).toBe(StopReason.Slice);
  }
  throw new Error("no tohost write");
}

describe("JIT tiering", () => {
  it("runs compiled blocks from run(), with the interpreter's instret, and FENCE.I makes rewritten code seen", () => {
    // calls f three times (compiled on its first call), rewrites f's first instruction, FENCE.I, calls f again
    const smc = program([
      auipc(S0),                 // 0x00 s0 = RAM_BASE
      addi(S1, ZERO, 3),         // 0x04
      jal(RA, F - 0x08),         // 0x08 loop: f()
      addi(S1, S1, -1),          // 0x0c
      bne(S1, ZERO, -8),         // 0x10
      addi(A0, A0, 100),         // 0x14 a0 = 101 when the old f ran
      sd(A0, S0, TOHOST),        // 0x18 tohost = 101
      lw(T0, S0, DATA),          // 0x1c the new instruction
      sw(T0, S0, F),             // 0x20 over f's first instruction
      fenceI,                    // 0x24
      jal(RA, F - 0x28),         // 0x28 f()
      sd(A0, S0, TOHOST),        // 0x2c tohost = 2 when the new f ran
      jal(ZERO, 0),              // 0x30
    ], [[F, addi(A0, ZERO, 1)], [F + 4, jalr(ZERO, RA, 0)], [DATA, addi(A0, ZERO, 2)]]);
    const ref = hartWith(smc, false);
    const h = hartWith(smc, true);
    expect(untilTohost(ref)).toBe(101n);
    expect(untilTohost(h)).toBe(101n);
    expect(h.instret).toBe(ref.instret);
    // the page's region holds the loop, f and the return point after the call: one compilation
    const compiled = h.jit!.stats.compiled;
    expect(compiled).toBe(1);
    expect(h.jit!.calls.instructions).toBeGreaterThan(10);
    expect(untilTohost(ref)).toBe(2n);
    expect(untilTohost(h)).toBe(2n);
    expect(h.instret).toBe(ref.instret);
    expect(h.jit!.stats.compiled).toBeGreaterThan(compiled); // the page again, after the FENCE.I made it stale
  });

  it("a host write to guest RAM (invalidateDecoded) drops the compiled block of the code it overwrote", () => {
    // loop: a0 = f(); tohost = a0
    const loop = program([
      auipc(S0),                 // 0x00
      jal(RA, F - 0x04),         // 0x04
      sd(A0, S0, TOHOST),        // 0x08
      jal(ZERO, -8),             // 0x0c
    ], [[F, addi(A0, ZERO, 1)], [F + 4, jalr(ZERO, RA, 0)]]);
    const h = hartWith(loop, true);
    for (let i = 0; i < 5; i++) expect(untilTohost(h)).toBe(1n);
    const compiled = h.jit!.stats.compiled;
    expect(compiled).toBeGreaterThan(0);
    for (let i = 0; i < 5; i++) expect(untilTohost(h)).toBe(1n); // from the compiled blocks: nothing new compiled
    expect(h.jit!.stats.compiled).toBe(compiled);
    h.writePhys(RAM_BASE + BigInt(F), new Uint8Array(new Uint32Array([addi(A0, ZERO, 7)]).buffer));
    expect(untilTohost(h)).toBe(7n);
    expect(untilTohost(h)).toBe(7n);
    // a remote flush request from another thread does the same
    h.ram.set(new Uint8Array(new Uint32Array([addi(A0, ZERO, 9)]).buffer), F);
    h.requestFlush(2 /* FLUSH_DECODED */);
    expect(untilTohost(h)).toBe(9n);
  });

  for (const jit of [true, false]) {
    it(`code a device rewrites (DMA through GuestMemory) runs at once, without FENCE.I (${jit ? "compiled" : "interpreted"})`, async () => {
      const { GuestMemory } = await import("../src/machine/guest-memory.ts");
      const h = hartWith(callFOnItsPage(), jit);
      const mem = new GuestMemory(h.memory.buffer, h.layout.ramOffset, h.layout.ramBytes, RAM_BASE);
      h.watchDeviceWrites(mem);
      for (let i = 0; i < 5; i++) expect(untilTohost(h)).toBe(1n);
      if (jit) expect(h.jit!.calls.instructions).toBeGreaterThan(0);
      // a device write to a page that holds no code drops nothing
      const invalidations = h.jit?.invalidations;
      mem.write(RAM_BASE + 0x3000n, new Uint8Array(64));
      expect(h.jit?.invalidations).toBe(invalidations);
      // the device writes f's first instruction, as a disk read into that page would: that page's decoded and
      // compiled code goes, and only that page's (no invalidation of everything; the loop's page stays compiled)
      const regions = h.jit?.resident.regions;
      mem.write(RAM_BASE + BigInt(FD), new Uint8Array(new Uint32Array([addi(A0, ZERO, 7)]).buffer));
      if (jit) {
        expect(h.jit!.stats.dropped).toBe(1);
        expect(h.jit!.resident.regions).toBe(regions! - 1);
      }
      expect(h.jit?.invalidations).toBe(invalidations);
      expect(untilTohost(h)).toBe(7n);
      expect(untilTohost(h)).toBe(7n);
      // and through a view marked written (how the virtqueue fills a device-writable buffer)
      mem.view(RAM_BASE + BigInt(FD), 4).set(new Uint8Array(new Uint32Array([addi(A0, ZERO, 9)]).buffer));
      mem.markWritten(FD, 4);
      expect(untilTohost(h)).toBe(9n);
    });
  }

  const amoswapW = (rd: number, rs2: number, rs1: number) => ((1 << 27) | (rs2 << 20) | (rs1 << 15) | (2 << 12) | (rd << 7) | 0x2f) >>> 0;
  for (const [jit, writer] of [[true, "store"], [false, "store"], [true, "AMO"], [false, "AMO"]] as const) {
    it(`FENCE.I after ${writer === "AMO" ? "an AMO" : "a store"} into code drops that page's code only, even when the page was in the write TLB before it held code (${jit ? "compiled" : "interpreted"})`, () => {
      // (AMOs take the write TLB's fast path too: an AMO is a store)
      const write = writer === "AMO" ? (rs2: number, rs1: number) => amoswapW(ZERO, rs2, rs1) : (rs2: number, rs1: number) => sw(rs2, rs1, 0);
      // f is on its own page. The program writes f's first instruction before f ever ran (the write TLB then maps
      // f's page), runs f, writes it again through the same address, FENCE.I, runs f again. The second store must
      // be seen: if the write TLB still mapped f's page once it held code, the store would take the fast path and
      // f's old code would run after the FENCE.I (which no longer drops all code).
      const smc = program([
        auipc(S0),                 // 0x00 s0 = RAM_BASE
        addi(S1, S0, 2047),        // 0x04
        addi(S1, S1, 2047),        // 0x08
        addi(S1, S1, 2),           // 0x0c s1 = f
        lw(T0, S0, DATA),          // 0x10 addi a0, zero, 1
        write(T0, S1),             // 0x14 f's first instruction, before f ran
        fenceI,                    // 0x18
        jalr(RA, S1, 0),           // 0x1c f()
        sd(A0, S0, TOHOST),        // 0x20 tohost = 1
        lw(T0, S0, DATA + 4),      // 0x24 addi a0, zero, 2
        write(T0, S1),             // 0x28 f's first instruction again, through the same address
        fenceI,                    // 0x2c
        jalr(RA, S1, 0),           // 0x30 f()
        sd(A0, S0, TOHOST),        // 0x34 tohost = 2
        jal(ZERO, 0),              // 0x38
      ], [[FD + 4, jalr(ZERO, RA, 0)], [DATA, addi(A0, ZERO, 1)], [DATA + 4, addi(A0, ZERO, 2)]]);
      const h = hartWith(smc, jit);
      const invalidations = h.jit?.invalidations;
      expect(untilTohost(h)).toBe(1n);
      const regions = h.jit?.resident.regions;
      if (jit) expect(regions).toBe(2); // the program's page and f's
      expect(untilTohost(h)).toBe(2n);
      if (jit) {
        // the regions of the pages written before the second FENCE.I went then, and only theirs: f's, and the
        // program's own (tohost is on it); nothing made every region stale
        expect(h.jit!.stats.dropped).toBe(2);
        expect(h.jit!.invalidations).toBe(invalidations);
        expect(h.jit!.resident.regions).toBe(2); // the program's page, and f's compiled again from its new code
      }
    });
  }

  it("holds at most maxModules regions, evicting one not used since the clock passed, and stays correct", () => {
    // main on page 0 calls f1 on page 1 and f2 on page 2: three regions for two table indices
    const F1 = 0x1000, F2 = 0x2000;
    const loop = program([
      auipc(S0),                 // 0x00
      jal(RA, F1 - 0x04),        // 0x04
      jal(RA, F2 - 0x08),        // 0x08
      sd(A0, S0, TOHOST),        // 0x0c
      jal(ZERO, -12),            // 0x10
    ], [[F1, addi(A0, ZERO, 2)], [F1 + 4, jalr(ZERO, RA, 0)], [F2, addi(A0, A0, 3)], [F2 + 4, jalr(ZERO, RA, 0)]]);
    const h = new Hart(loadHartModule(), computeLayout(4));
    h.enableJit({ threshold: 1, maxModules: 2 });
    for (const [off, w] of loop) h.writePhys(RAM_BASE + BigInt(off), new Uint8Array(new Uint32Array([w]).buffer));
    h.ex.reset(0, RAM_BASE);
    h.ex.setTohost(RAM_BASE + BigInt(TOHOST));
    for (let i = 0; i < 10; i++) expect(untilTohost(h)).toBe(5n);
    expect(h.jit!.stats.evicted).toBeGreaterThan(0);
    expect(h.jit!.resident.regions).toBe(2);
    // an evicted region's table indices (one per block function entered from outside it) are reused
    const tableLength = h.ex.table.length;
    const evicted = h.jit!.stats.evicted;
    for (let i = 0; i < 10; i++) expect(untilTohost(h)).toBe(5n);
    expect(h.jit!.stats.evicted).toBeGreaterThan(evicted);
    expect(h.ex.table.length).toBe(tableLength);
  });

  it("holds at most maxCodeBytes of WebAssembly, evicting regions until a new one fits, and stays correct", () => {
    // the same three regions as above, with table indices to spare: the code budget is what evicts
    const F1 = 0x1000, F2 = 0x2000;
    const words = program([
      auipc(S0), jal(RA, F1 - 0x04), jal(RA, F2 - 0x08), sd(A0, S0, TOHOST), jal(ZERO, -12),
    ], [[F1, addi(A0, ZERO, 2)], [F1 + 4, jalr(ZERO, RA, 0)], [F2, addi(A0, A0, 3)], [F2 + 4, jalr(ZERO, RA, 0)]]);
    const run = (maxCodeBytes?: number) => {
      const h = new Hart(loadHartModule(), computeLayout(4));
      h.enableJit({ threshold: 1, maxCodeBytes });
      for (const [off, w] of words) h.writePhys(RAM_BASE + BigInt(off), new Uint8Array(new Uint32Array([w]).buffer));
      h.ex.reset(0, RAM_BASE);
      h.ex.setTohost(RAM_BASE + BigInt(TOHOST));
      for (let i = 0; i < 10; i++) {
        expect(untilTohost(h)).toBe(5n);
        // within the budget at every point (a region larger than the whole budget is held alone)
        const { regions, codeBytes } = h.jit!.resident;
        if (maxCodeBytes !== undefined) expect(regions === 1 || codeBytes <= maxCodeBytes, `${regions} regions, ${codeBytes} bytes`).toBe(true);
      }
      return h.jit!;
    };
    const all = run();
    expect(all.resident.regions).toBe(3);
    expect(all.stats.evictedForCode).toBe(0);
    // room for two of the three at most
    const budget = all.resident.codeBytes - 1;
    const two = run(budget);
    expect(two.stats.evictedForCode).toBeGreaterThan(0);
    expect(two.calls.blocks).toBeGreaterThan(0);
    // a budget smaller than any region: each is held alone while it runs
    const one = run(1);
    expect(one.resident.regions).toBe(1);
    expect(one.stats.evictedForCode).toBeGreaterThan(10);
  });

  it("two block starts that share a set of the lookup are both counted to the threshold and compiled", () => {
    // f (page 1) and g (page 5) are 16 KiB apart: their starts fall in the same set of the lookup (by pc), whose
    // other way stays empty. Called in turn, neither start may push out the other's count.
    const FA = 0x1000, FB = 0x5000;
    const calls = program([
      auipc(S0),                 // 0x00
      addi(S1, ZERO, 200),       // 0x04
      jal(RA, FA - 0x08),        // 0x08 loop: f()
      jal(RA, FB - 0x0c),        // 0x0c g()
      addi(S1, S1, -1),          // 0x10
      bne(S1, ZERO, -12),        // 0x14
      sd(A0, S0, TOHOST),        // 0x18
      jal(ZERO, 0),              // 0x1c
    ], [[FA, addi(A0, A0, 1)], [FA + 4, jalr(ZERO, RA, 0)], [FB, addi(A0, A0, 2)], [FB + 4, jalr(ZERO, RA, 0)]]);
    const h = new Hart(loadHartModule(), computeLayout(4));
    h.enableJit({ threshold: 50 });
    for (const [off, w] of calls) h.writePhys(RAM_BASE + BigInt(off), new Uint8Array(new Uint32Array([w]).buffer));
    h.ex.reset(0, RAM_BASE);
    h.ex.setTohost(RAM_BASE + BigInt(TOHOST));
    expect(untilTohost(h)).toBe(600n);
    // the loop's page, f's and g's: each compiled once its start was counted 50 times
    expect(h.jit!.stats.compiled).toBe(3);
    expect(h.jit!.resident.regions).toBe(3);
    // the calls and returns between the three pages go from region to region, without run() (the regions' own
    // lookup of the block they leave for)
    expect(h.jit!.calls.chained).toBeGreaterThan(400);
  });

  it("runs a loop within a page inside one region call, and stops exactly where the budget ends", () => {
    // a0 counts to 3000 in a loop of three instructions
    const count = program([
      auipc(S0),                 // 0x00
      addi(S1, ZERO, 1000),      // 0x04
      addi(A0, A0, 3),           // 0x08 loop
      addi(S1, S1, -1),          // 0x0c
      bne(S1, ZERO, -8),         // 0x10
      sd(A0, S0, TOHOST),        // 0x14
      jal(ZERO, 0),              // 0x18
    ]);
    const h = hartWith(count, true);
    expect(untilTohost(h)).toBe(3000n);
    expect(h.instret).toBe(2n + 3000n + 1n);
    // entered at most a few times (the first probe compiles; the loop then runs in the region)
    expect(h.jit!.calls.blocks).toBeLessThan(5);
    expect(h.jit!.calls.instructions).toBeGreaterThan(2900);
    // in slices of odd sizes, pc and instret after every slice are the interpreter's
    const ref = hartWith(count, false);
    const sliced = hartWith(count, true);
    for (const slice of [1, 5, 64, 65, 97, 130, 7, 200]) {
      for (let i = 0; i < 6; i++) {
        expect(sliced.run(slice)).toBe(ref.run(slice));
        expect([sliced.pc, sliced.instret, sliced.reg(A0)]).toEqual([ref.pc, ref.instret, ref.reg(A0)]);
      }
    }
    expect(sliced.jit!.calls.instructions).toBeGreaterThan(1000);
  });

  it("an exit to another page follows the page's current mapping after an SFENCE.VMA (the jump cache is keyed by it)", () => {
    // S-mode under Sv39: RAM identity-mapped by a gigapage; the virtual page at 0x40005000 maps to F1 (a function
    // returning 1), then the guest points it at F2 (returning 2) and runs SFENCE.VMA. LOOP calls the function 40
    // times: its calls and returns between the pages go through the jump cache. Nothing is compiled again or
    // evicted between the two rounds (either would empty the cache): no block starts in the middle of a compiled
    // block, and the code after the SFENCE.VMA is a block of page C's region from the start (a branch reaches it).
    // tohost = (first round's result << 4) | second round's.
    const F1 = 0x1000, F2 = 0x2000, ROOT = 0x3000, L1 = 0x4000, L0 = 0x5000, C = 0x7000, LOOP = 0x40, NEWPTE = 0x208;
    const VA = 0x40005000; // (its fetch TLB slot is not RAM_BASE's: the exits find the page's translation there)
    const leaf = (off: number) => ((RAM_BASE + BigInt(off)) >> 12n << 10n) | 0xcfn; // V R W X A D
    const pointer = (off: number) => ((RAM_BASE + BigInt(off)) >> 12n << 10n) | 1n;
    const lui = (rd: number, imm20: number) => ((imm20 << 12) | (rd << 7) | 0x37) >>> 0;
    const ld = (rd: number, rs1: number, imm: number) => I(imm, rs1, 3, rd, 0x03);
    const slli = (rd: number, rs1: number, sh: number) => I(sh, rs1, 1, rd, 0x13);
    const R = (f3: number) => (rd: number, rs1: number, rs2: number) => ((rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | 0x33) >>> 0;
    const [add, or] = [R(0), R(6)];
    const sfenceVma = 0x12000073;
    const [T1, T2, T3, S2, S3, S4] = [6, 7, 28, 18, 19, 20];
    const at = (base: number, words: number[]) => words.map((w, i) => [base + 4 * i, w] as [number, number]);
    const code = program([
      auipc(S0),                 // 0x00 s0 = RAM_BASE
      lui(T1, VA >>> 12),        // 0x04 t1 = VA (page-aligned: lui's 20 bits)
      jal(RA, LOOP - 0x08),      // 0x08 a0 = loop()
      addi(S4, A0, 0),           // 0x0c s4 = 1
      jal(ZERO, C - 0x10),       // 0x10 on to page C
    ], [
      ...at(LOOP, [
        addi(S2, RA, 0),         // loop: s2 = ra
        addi(S1, ZERO, 40),
        jalr(RA, T1, 0),         // a0 = f()
        addi(S1, S1, -1),
        bne(S1, ZERO, -8),
        jalr(ZERO, S2, 0),
      ]),
      ...at(C, [
        bne(S3, ZERO, 0x18),     // C+0x00 never taken (s3 = 0): makes C+0x18 a block of the region
        ld(T0, S0, NEWPTE),      // C+0x04
        lui(T2, L0 >>> 12),      // C+0x08
        add(T2, T2, S0),         // C+0x0c t2 = L0's address
        sd(T0, T2, 40),          // C+0x10 the leaf of VA (vpn0 5): F2
        sfenceVma,               // C+0x14
        jal(RA, LOOP - (C + 0x18)), // C+0x18 a0 = loop()
        slli(T3, S4, 4),         // C+0x1c
        or(A0, A0, T3),          // C+0x20
        sd(A0, S0, TOHOST),      // C+0x24 tohost = 0x12
        jal(ZERO, 0),            // C+0x28
      ]),
      [F1, addi(A0, ZERO, 1)], [F1 + 4, jalr(ZERO, RA, 0)], [F2, addi(A0, ZERO, 2)], [F2 + 4, jalr(ZERO, RA, 0)],
    ]);
    const run = (jit: boolean) => {
      const h = hartWith(code, jit);
      const put64 = (off: number, v: bigint) => h.writePhys(RAM_BASE + BigInt(off), new Uint8Array(new BigUint64Array([v]).buffer));
      put64(ROOT + 8, pointer(L1));           // VA: vpn2 1, vpn1 0, vpn0 5
      put64(ROOT + 16, leaf(0));              // 0x80000000: the gigapage of RAM, identity
      put64(L1, pointer(L0));
      put64(L0 + 40, leaf(F1));
      put64(NEWPTE, leaf(F2));
      h.state.satp = (8n << 60n) | ((RAM_BASE + BigInt(ROOT)) >> 12n);
      h.priv = 1;
      h.ex.setTohost(RAM_BASE + BigInt(TOHOST)); // also flushes the TLBs and brings the keys up to date
      return h;
    };
    const ref = run(false);
    const h = run(true);
    expect(untilTohost(ref)).toBe(0x12n);
    expect(untilTohost(h)).toBe(0x12n);
    expect(h.instret).toBe(ref.instret);
    expect(h.jit!.calls.chained).toBeGreaterThan(100); // the calls and returns went from region to region
    // the page holding F1, then F2, and pages A and C: each compiled once, nothing evicted or dropped
    expect([h.jit!.stats.compiled, h.jit!.stats.evicted, h.jit!.stats.dropped]).toEqual([4, 0, 0]);
  });

  it("builds regions off the VM's thread: interpreted until a region lands, installed only if its page is unchanged", async () => {
    const { DeferredRegionCompiler } = await import("../src/jit/region-compiler.ts");
    const compiler = new DeferredRegionCompiler(loadHartModule());
    const h = hartWith(callFOnItsPage(), { compiler });
    for (let i = 0; i < 3; i++) expect(untilTohost(h)).toBe(1n);
    // asked for, not built yet: everything ran interpreted, and each start was asked for once
    expect(compiler.jobs).toBeGreaterThan(0);
    const asked = compiler.jobs;
    expect(h.jit!.stats.compiled).toBe(0);
    expect(h.jit!.calls.instructions).toBe(0);
    for (let i = 0; i < 3; i++) expect(untilTohost(h)).toBe(1n);
    expect(compiler.jobs).toBe(asked);
    // the regions land (between run() calls) and run
    compiler.deliver();
    expect(h.jit!.stats.compiled).toBeGreaterThan(0);
    for (let i = 0; i < 5; i++) expect(untilTohost(h)).toBe(1n);
    compiler.deliver(); // (starts asked for after the first regions landed)
    for (let i = 0; i < 5; i++) expect(untilTohost(h)).toBe(1n);
    expect(h.jit!.calls.instructions).toBeGreaterThan(10);
    // f's page is rewritten by a device while its new region is built: the region built from the old bytes is
    // dropped when it lands, and the new code runs
    const { GuestMemory } = await import("../src/machine/guest-memory.ts");
    const mem = new GuestMemory(h.memory.buffer, h.layout.ramOffset, h.layout.ramBytes, RAM_BASE);
    h.watchDeviceWrites(mem);
    mem.write(RAM_BASE + BigInt(FD), new Uint8Array(new Uint32Array([addi(A0, ZERO, 7)]).buffer));
    expect(untilTohost(h)).toBe(7n); // f's start is asked for again (its page's region went with the write)
    mem.write(RAM_BASE + BigInt(FD), new Uint8Array(new Uint32Array([addi(A0, ZERO, 8)]).buffer));
    const discarded = h.jit!.stats.discarded;
    compiler.deliver();
    expect(h.jit!.stats.discarded).toBe(discarded + 1);
    for (let i = 0; i < 3; i++) expect(untilTohost(h)).toBe(8n);
    compiler.deliver();
    for (let i = 0; i < 3; i++) expect(untilTohost(h)).toBe(8n);
    // the interpreter's instret, compiled or not
    const ref = hartWith(callFOnItsPage(), false);
    for (let i = 0; i < 6 + 5 + 5; i++) untilTohost(ref);
    ref.writePhys(RAM_BASE + BigInt(FD), new Uint8Array(new Uint32Array([addi(A0, ZERO, 8)]).buffer));
    for (let i = 0; i < 7; i++) expect(untilTohost(ref)).toBe(8n);
    expect(h.instret).toBe(ref.instret);
  });

  it("a region holds the code that has run: a branch's side that has not is left out, and taken in once it runs", () => {
    // the page's bytes, and which of its halfwords ran: f's region from its first block
    const code = [
      addi(A0, A0, 1),           // 0x00 f
      bne(S1, ZERO, 0x10),       // 0x04 -> 0x14
      addi(A0, A0, 2),           // 0x08
      jal(ZERO, 0x0c),           // 0x0c -> 0x18
      addi(A0, A0, 4),           // 0x10 (reached by nothing)
      addi(A0, A0, 3),           // 0x14
      jalr(ZERO, RA, 0),         // 0x18
    ];
    const page = new Uint8Array(4096);
    new Uint32Array(page.buffer, 0, code.length).set(code);
    const hart = hartWith(new Map(), false);
    const decode = hartDecoder(hart.memory, hart.ex.decodeForTest);
    const starts = (executed?: number[]) => {
      let flags: Uint8Array | undefined;
      if (executed) { flags = new Uint8Array(2048); for (const off of executed) flags[off >> 1] = 1; }
      return discoverRegion(page, 0x4000n, [0x4000n], decode, { executed: flags }).map((b) => Number(b.pc & 0xfffn));
    };
    expect(starts()).toEqual([0x00, 0x08, 0x14, 0x18]); // all that is reachable
    expect(starts([0x00, 0x04, 0x14, 0x18])).toEqual([0x00, 0x14]); // the branch was always taken (0x14 runs on into 0x18)
    expect(starts([0x00, 0x04, 0x08, 0x0c, 0x18])).toEqual([0x00, 0x08, 0x18]); // never taken
    expect(starts([0x00])).toEqual([0x00]); // the root's own block runs to its end whatever ran
    expect(starts([])).toEqual([0x00]);

    // On a hart: a loop whose branch goes one way for 250 iterations, then the other way. The region first
    // compiled holds only the way that ran, so the page is compiled again once the other way is hot (counted
    // where the region leaves for it, at every iteration that enters the region: one in LOOP_SAMPLE); the
    // result and instret are the interpreter's.
    const flip = program([
      auipc(S0),                 // 0x00
      addi(S1, ZERO, 500),       // 0x04
      addi(T1, ZERO, 250),       // 0x08
      blt(S1, T1, 0x0c),         // 0x0c loop: -> 0x18 once s1 < 250
      addi(A0, A0, 5),           // 0x10
      jal(ZERO, 0x08),           // 0x14 -> 0x1c
      addi(A0, A0, 7),           // 0x18
      addi(S1, S1, -1),          // 0x1c
      bne(S1, ZERO, -0x14),      // 0x20 -> 0x0c
      sd(A0, S0, TOHOST),        // 0x24
      jal(ZERO, 0),              // 0x28
    ]);
    const h = hartWith(flip, { threshold: 16 });
    const ref = hartWith(flip, false);
    expect(untilTohost(h)).toBe(untilTohost(ref));
    expect(h.instret).toBe(ref.instret);
    expect(h.jit!.stats.compiled).toBe(2);
    expect(h.jit!.calls.instructions).toBeGreaterThan(1500); // (1087 with the first region alone)
  });

  it("stays off unless asked for: no block is compiled and run() never stops for one", () => {
    const loop = program([auipc(S0), jal(RA, F - 0x04), sd(A0, S0, TOHOST), jal(ZERO, -8)], [[F, addi(A0, ZERO, 1)], [F + 4, jalr(ZERO, RA, 0)]]);
    const h = hartWith(loop, false);
    for (let i = 0; i < 3; i++) expect(untilTohost(h)).toBe(1n);
    expect(h.jit).toBeUndefined();
  });

  it("with startAfter, interprets alone (nothing counted, compiled or entered) until that many instructions retired", () => {
    const h = hartWith(callFOnItsPage(), { startAfter: 5000 });
    const jit = h.jit!;
    expect(jit.waiting).toBe(true);
    while (h.instret < 4000n) h.run(500);
    expect(jit.stats.compiled).toBe(0);
    expect(h.ex.jitCallCount()).toBe(0n);
    while (h.instret < 9000n) h.run(500);
    expect(jit.waiting).toBe(false);
    expect(jit.stats.compiled).toBeGreaterThan(0);
    expect(h.ex.jitCallCount()).toBeGreaterThan(0n);
    expect(untilTohost(h)).toBe(1n);
  });
});
