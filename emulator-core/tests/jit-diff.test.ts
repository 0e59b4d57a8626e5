// Differential test of the block compiler (src/jit/compile-region.ts) against the interpreter.
//
// Two harts on memories of their own start from the same state: the same registers, privilege and translation
// (M-mode with no translation, or S-mode under an Sv39 table with pages that fault in different ways), the same
// RAM and TLBs. A random straight-line block of the ops the compiler takes (RV64I and M, LUI/AUIPC, loads and
// stores of every size, compressed forms, x0 as destination, A and F/D instructions (run by the interpreter's
// code through jitExec) with the FPU on, off or dirty, a final branch or jump) runs on one hart through
// run(L), L being the compiled block's length, and on the other as the compiled block; when the block stops on a
// trap, takePendingTrap() finishes it and run() spends the rest of the L steps, as run(L) did on the first hart
// (the trap handlers are `j .`). Then the whole hart state block (registers, pc, instret, the trap CSRs, the
// exception and MMIO words, the TLBs) and the RAM the block can reach must be equal, and so must the reason run()
// stopped for. A failure prints the block's seed and its instructions.

import { describe, it, expect, beforeAll } from "vitest";
import { loadHartModule } from "../src/node/hart-module.ts";
import { computeLayout, RAM_BASE } from "../src/layout.ts";
import { Hart } from "../src/hart.ts";
import { HART_BLOCK } from "../src/hart-state.ts";
import { Rng, bType, jType, rType, iType, sType, uType } from "../src/fuzz/program.ts";
import { compileBlock, hartDecoder, instantiateRegion, EXIT_EXC, EXIT_MISS, type CompiledBlock } from "../src/jit/compile-region.ts";

const BLOCKS = Number(process.env.JIT_DIFF_BLOCKS ?? 2000);
const FIRST_SEED = Number(process.env.JIT_DIFF_SEED ?? 1);

// RAM layout (1 MiB of RAM at RAM_BASE)
const PAGE = 0x1000n;
const CODE = RAM_BASE;                 // the block
const HANDLER = RAM_BASE + PAGE;       // trap handlers: `j .`
const DATA = RAM_BASE + 2n * PAGE;     // four data pages
const TOHOST = RAM_BASE + 6n * PAGE;   // the HTIF page (tohost at its start)
const ROOT = RAM_BASE + 8n * PAGE;     // Sv39 tables: root, level 1, level 0
const L1 = RAM_BASE + 9n * PAGE;
const L0 = RAM_BASE + 10n * PAGE;
const RAM_BYTES = 1 << 20;
const RAM_END = RAM_BASE + BigInt(RAM_BYTES);
const MMIO = 0x1000_0000n;             // no RAM there: a device access, the hart stops for the host
// RAM the test compares: everything it lays out, and the last page (accesses that run past RAM's end)
const COMPARED: [number, number][] = [[0, 11 * 4096], [RAM_BYTES - 4096, RAM_BYTES]];

const PTE_V = 1n, PTE_R = 2n, PTE_W = 4n, PTE_X = 8n, PTE_U = 16n, PTE_A = 64n, PTE_D = 128n;
const leaf = (pa: bigint, flags: bigint) => ((pa >> 12n) << 10n) | flags | PTE_V;
const pointer = (pa: bigint) => ((pa >> 12n) << 10n) | PTE_V;
// The level-0 table maps virtual pages 0..7 (S-mode data addresses 0..0x7fff):
const VPAGES: bigint[] = [
  leaf(DATA, PTE_R | PTE_W | PTE_A | PTE_D),
  leaf(DATA + PAGE, PTE_R | PTE_W),            // A and D clear: the walk sets them (a RAM write to compare)
  leaf(DATA + 2n * PAGE, PTE_R | PTE_A),       // read-only: stores fault
  0n,                                          // unmapped
  leaf(DATA + 3n * PAGE, PTE_R | PTE_W | PTE_A | PTE_D),
  leaf(DATA, PTE_R | PTE_W | PTE_A | PTE_D),   // an alias of page 0
  leaf(DATA + 2n * PAGE, PTE_R | PTE_W | PTE_A | PTE_D | PTE_U), // a user page: S-mode needs SUM
  leaf(TOHOST, PTE_R | PTE_W | PTE_A | PTE_D),
];

const M64 = (1n << 64n) - 1n;
const u64 = (v: bigint) => v & M64;

// ---- instruction encoders -------------------------------------------------------------------------------------

const bit = (v: number, from: number, to: number) => ((v >> from) & 1) << to;
const bits = (v: number, hi: number, lo: number, to: number) => ((v >> lo) & ((1 << (hi - lo + 1)) - 1)) << to;

interface Inst { text: string; word: number; len: 2 | 4 }
const I = (text: string, word: number): Inst => ({ text, word: word >>> 0, len: 4 });
const C = (text: string, word: number): Inst => ({ text, word: word & 0xffff, len: 2 });

const R_OPS: [string, number, number, number][] = [ // name, opcode, funct3, funct7
  ["add", 0x33, 0, 0], ["sub", 0x33, 0, 0x20], ["sll", 0x33, 1, 0], ["slt", 0x33, 2, 0], ["sltu", 0x33, 3, 0],
  ["xor", 0x33, 4, 0], ["srl", 0x33, 5, 0], ["sra", 0x33, 5, 0x20], ["or", 0x33, 6, 0], ["and", 0x33, 7, 0],
  ["addw", 0x3b, 0, 0], ["subw", 0x3b, 0, 0x20], ["sllw", 0x3b, 1, 0], ["srlw", 0x3b, 5, 0], ["sraw", 0x3b, 5, 0x20],
  ["mul", 0x33, 0, 1], ["mulh", 0x33, 1, 1], ["mulhsu", 0x33, 2, 1], ["mulhu", 0x33, 3, 1], ["div", 0x33, 4, 1],
  ["divu", 0x33, 5, 1], ["rem", 0x33, 6, 1], ["remu", 0x33, 7, 1], ["mulw", 0x3b, 0, 1], ["divw", 0x3b, 4, 1],
  ["divuw", 0x3b, 5, 1], ["remw", 0x3b, 6, 1], ["remuw", 0x3b, 7, 1],
];
const I_OPS: [string, number, number][] = [
  ["addi", 0x13, 0], ["slti", 0x13, 2], ["sltiu", 0x13, 3], ["xori", 0x13, 4], ["ori", 0x13, 6], ["andi", 0x13, 7],
  ["addiw", 0x1b, 0],
];
const SHIFTS: [string, number, number, number, number][] = [ // name, opcode, funct3, high bits, shamt bits
  ["slli", 0x13, 1, 0, 6], ["srli", 0x13, 5, 0, 6], ["srai", 0x13, 5, 0x400, 6],
  ["slliw", 0x1b, 1, 0, 5], ["srliw", 0x1b, 5, 0, 5], ["sraiw", 0x1b, 5, 0x400, 5],
];
const LOADS: [string, number, number][] = [["lb", 0, 1], ["lh", 1, 2], ["lw", 2, 4], ["ld", 3, 8], ["lbu", 4, 1], ["lhu", 5, 2], ["lwu", 6, 4]];
const STORES: [string, number, number][] = [["sb", 0, 1], ["sh", 1, 2], ["sw", 2, 4], ["sd", 3, 8]];
const BRANCHES: [string, number][] = [["beq", 0], ["bne", 1], ["blt", 4], ["bge", 5], ["bltu", 6], ["bgeu", 7]];

const x = (r: number) => `x${r}`;
const r_ = (name: string, op: number, f3: number, f7: number, rd: number, rs1: number, rs2: number) =>
  I(`${name} ${x(rd)}, ${x(rs1)}, ${x(rs2)}`, rType(f7, rs2, rs1, f3, rd, op));

// ---- the random block ------------------------------------------------------------------------------------------

// x2, x8 and x9 hold the addresses loads and stores use (x2 for the sp-relative compressed forms, x8/x9 for the
// other compressed ones); the random part never writes them, so most accesses go where the set-up meant.
const BASES = [2, 8, 9];
const DESTS = [0, 1, 3, 4, 5, 6, 7, ...Array.from({ length: 22 }, (_, i) => 10 + i)];
const CDESTS = [10, 11, 12, 13, 14, 15]; // x8..x15 less the bases: rd' of compressed ALU ops and loads

const SPECIAL = [0n, 1n, 2n, M64, 1n << 63n, (1n << 63n) - 1n, 0x7fffffffn, 0x80000000n, 0xffffffffn,
  u64(-0x80000000n), u64(-2n), 31n, 32n, 63n, 64n];
function randomValue(rng: Rng): bigint {
  switch (rng.below(4)) {
    case 0: return rng.pick(SPECIAL);
    case 1: return BigInt(rng.below(200)) - 100n & M64;
    default: return (BigInt(rng.next()) << 32n) | BigInt(rng.next());
  }
}

function randomAlu(rng: Rng): Inst {
  const rd = rng.pick(DESTS), rs1 = rng.below(32), rs2 = rng.below(32);
  if (rng.below(50) === 0) return I("fence", 0x0ff0000f); // an ordering no-op for one hart: compiled as nothing
  switch (rng.below(6)) {
    case 0: case 1: { const [n, op, f3, f7] = rng.pick(R_OPS); return r_(n, op, f3, f7, rd, rs1, rs2); }
    case 2: {
      const [n, op, f3] = rng.pick(I_OPS);
      const imm = rng.below(2) ? rng.below(4096) - 2048 : rng.below(32) - 16;
      return I(`${n} ${x(rd)}, ${x(rs1)}, ${imm}`, iType(imm, rs1, f3, rd, op));
    }
    case 3: {
      const [n, op, f3, hi, w] = rng.pick(SHIFTS);
      const sh = rng.below(1 << w);
      return I(`${n} ${x(rd)}, ${x(rs1)}, ${sh}`, iType(hi | sh, rs1, f3, rd, op));
    }
    case 4: {
      const imm20 = rng.below(2) ? rng.next() & 0xfffff : rng.pick([0, 1, 0x80000, 0xfffff, 0x7ffff]);
      return rng.below(2)
        ? I(`lui ${x(rd)}, 0x${imm20.toString(16)}`, uType(imm20, rd, 0x37))
        : I(`auipc ${x(rd)}, 0x${imm20.toString(16)}`, uType(imm20, rd, 0x17));
    }
    default: return randomCompressedAlu(rng);
  }
}

function randomCompressedAlu(rng: Rng): Inst {
  const rd = rng.pick(DESTS.filter((r) => r !== 0)), rs2 = 1 + rng.below(31);
  const cd = rng.pick(CDESTS), cs = 8 + rng.below(8);
  const imm6 = rng.below(64); // its 6-bit two's complement value
  const simm = imm6 >= 32 ? imm6 - 64 : imm6;
  const ci = (f3: number, r: number, v: number) => (f3 << 13) | bit(v, 5, 12) | (r << 7) | bits(v, 4, 0, 2) | 1;
  switch (rng.below(9)) {
    case 0: return C(`c.addi ${x(rd)}, ${simm}`, ci(0, rd, imm6));
    case 1: return C(`c.li ${x(rd)}, ${simm}`, ci(2, rd, imm6));
    case 2: return C(`c.addiw ${x(rd)}, ${simm}`, ci(1, rd, imm6));
    case 3: {
      const v = imm6 || 1;
      const r = rng.pick(DESTS.filter((r) => r !== 0 && r !== 2));
      return C(`c.lui ${x(r)}, ${v}`, ci(3, r, v));
    }
    case 4: {
      const f2 = rng.below(3);
      const v = f2 === 2 ? imm6 : imm6 || 1;
      return C(`${["c.srli", "c.srai", "c.andi"][f2]} ${x(cd)}, ${v}`,
        (4 << 13) | bit(v, 5, 12) | (f2 << 10) | ((cd - 8) << 7) | bits(v, 4, 0, 2) | 1);
    }
    case 5: {
      const k = rng.below(6); // sub xor or and subw addw
      const hi = k >= 4 ? 1 : 0, f = k & 3;
      return C(`${["c.sub", "c.xor", "c.or", "c.and", "c.subw", "c.addw"][k]} ${x(cd)}, ${x(cs)}`,
        (4 << 13) | (hi << 12) | (3 << 10) | ((cd - 8) << 7) | ((hi ? f - 0 : f) << 5) | ((cs - 8) << 2) | 1);
    }
    case 6: { const v = 1 + rng.below(63); return C(`c.slli ${x(rd)}, ${v}`, (0 << 13) | bit(v, 5, 12) | (rd << 7) | bits(v, 4, 0, 2) | 2); }
    case 7: return C(`c.mv ${x(rd)}, ${x(rs2)}`, (4 << 13) | (rd << 7) | (rs2 << 2) | 2);
    default: return C(`c.add ${x(rd)}, ${x(rs2)}`, (4 << 13) | (1 << 12) | (rd << 7) | (rs2 << 2) | 2);
  }
}

// A, F and D: the region hands them to the interpreter's code (jitExec); what this checks is the hand-over of
// the integer registers, faults and stops in the middle of a block, and the FP state.
const AMOS: [string, number][] = [
  ["amoadd", 0x00], ["amoswap", 0x01], ["lr", 0x02], ["sc", 0x03], ["amoxor", 0x04], ["amoor", 0x08],
  ["amoand", 0x0c], ["amomin", 0x10], ["amomax", 0x14], ["amominu", 0x18], ["amomaxu", 0x1c],
];
// name, funct7, funct3 (-1: a rounding mode), rs2 (-1: a register), rd and rs1 kinds (f: FP, x: integer)
const FP_OPS: [string, number, number, number, "f" | "x", "f" | "x"][] = [
  ["fadd.d", 0x01, -1, -1, "f", "f"], ["fsub.d", 0x05, -1, -1, "f", "f"], ["fmul.d", 0x09, -1, -1, "f", "f"],
  ["fdiv.d", 0x0d, -1, -1, "f", "f"], ["fadd.s", 0x00, -1, -1, "f", "f"], ["fsgnj.d", 0x11, 0, -1, "f", "f"],
  ["fmin.d", 0x15, 0, -1, "f", "f"], ["feq.d", 0x51, 2, -1, "x", "f"], ["flt.d", 0x51, 1, -1, "x", "f"],
  ["fcvt.l.d", 0x61, -1, 2, "x", "f"], ["fcvt.d.l", 0x69, -1, 2, "f", "x"], ["fmv.x.d", 0x71, 0, 0, "x", "f"],
  ["fmv.d.x", 0x79, 0, 0, "f", "x"], ["fclass.d", 0x71, 1, 0, "x", "f"], ["fcvt.w.s", 0x60, -1, 0, "x", "f"],
];

function randomExec(rng: Rng): Inst {
  const base = rng.below(10) ? rng.pick(BASES) : rng.below(32);
  switch (rng.below(4)) {
    case 0: {
      const [n, f5] = rng.pick(AMOS);
      const d = rng.below(2), rd = rng.pick(DESTS), rs2 = n === "lr" ? 0 : rng.below(32);
      const name = `${n}.${d ? "d" : "w"} ${x(rd)}, ${n === "lr" ? "" : x(rs2) + ", "}(${x(base)})`;
      return I(name, rType((f5 << 2) | rng.below(4), rs2, base, d ? 3 : 2, rd, 0x2f));
    }
    case 1: {
      const d = rng.below(2), fr = rng.below(32), imm = rng.below(8) ? rng.below(48) - 24 : rng.below(4096) - 2048;
      return rng.below(2)
        ? I(`${d ? "fld" : "flw"} f${fr}, ${imm}(${x(base)})`, iType(imm, base, d ? 3 : 2, fr, 0x07))
        : I(`${d ? "fsd" : "fsw"} f${fr}, ${imm}(${x(base)})`, sType(imm, fr, base, d ? 3 : 2, 0x27));
    }
    case 2: {
      const rd = rng.below(32), rs1 = rng.below(32), rs2 = rng.below(32), rs3 = rng.below(32);
      const rm = rng.pick([0, 1, 2, 3, 4, 7]); // (5 and 6 decode as illegal: no block)
      return I(`fmadd.d f${rd}, f${rs1}, f${rs2}, f${rs3}, rm ${rm}`, ((rs3 << 27) | (1 << 25) | (rs2 << 20) | (rs1 << 15) | (rm << 12) | (rd << 7) | 0x43) >>> 0);
    }
    default: {
      const [n, f7, f3, fixed2, rdKind, rs1Kind] = rng.pick(FP_OPS);
      const rd = rdKind === "x" ? rng.pick(DESTS) : rng.below(32), rs1 = rng.below(32);
      const rs2 = fixed2 >= 0 ? fixed2 : rng.below(32);
      const rm = f3 >= 0 ? f3 : rng.pick([0, 1, 2, 3, 4, 7]);
      return I(`${n} ${rdKind}${rd}, ${rs1Kind}${rs1}, ${rs2}, rm ${rm}`, rType(f7, rs2, rs1, rm, rd, 0x53));
    }
  }
}

function randomMemory(rng: Rng): Inst {
  const store = rng.below(5) < 2;
  // mostly a base register and a small offset, so that accesses stay near where the base points
  const base = rng.below(20) ? rng.pick(BASES) : rng.below(32);
  const imm = rng.below(8) ? rng.below(48) - 24 : rng.below(4096) - 2048;
  if (rng.below(4) === 0) return randomCompressedMemory(rng, store);
  if (store) {
    const [n, f3] = rng.pick(STORES);
    const rs2 = rng.below(32);
    return I(`${n} ${x(rs2)}, ${imm}(${x(base)})`, sType(imm, rs2, base, f3, 0x23));
  }
  const [n, f3] = rng.pick(LOADS);
  const rd = rng.pick(DESTS);
  return I(`${n} ${x(rd)}, ${imm}(${x(base)})`, iType(imm, base, f3, rd, 0x03));
}

function randomCompressedMemory(rng: Rng, store: boolean): Inst {
  const cb = rng.pick([8, 9]), cr = store ? 8 + rng.below(8) : rng.pick(CDESTS);
  switch (rng.below(4)) {
    case 0: { // c.lw / c.sw: offset[5:3] 12:10, offset[2] 6, offset[6] 5
      const off = rng.below(32) * 4;
      const w = (bits(off, 5, 3, 10) | bit(off, 2, 6) | bit(off, 6, 5) | ((cb - 8) << 7) | ((cr - 8) << 2));
      return C(`${store ? "c.sw" : "c.lw"} ${x(cr)}, ${off}(${x(cb)})`, ((store ? 6 : 2) << 13) | w);
    }
    case 1: { // c.ld / c.sd: offset[5:3] 12:10, offset[7:6] 6:5
      const off = rng.below(32) * 8;
      const w = bits(off, 5, 3, 10) | bits(off, 7, 6, 5) | ((cb - 8) << 7) | ((cr - 8) << 2);
      return C(`${store ? "c.sd" : "c.ld"} ${x(cr)}, ${off}(${x(cb)})`, ((store ? 7 : 3) << 13) | w);
    }
    case 2: { // sp-relative words
      const off = rng.below(64) * 4;
      if (store) {
        const rs2 = rng.below(32);
        return C(`c.swsp ${x(rs2)}, ${off}(sp)`, (6 << 13) | bits(off, 5, 2, 9) | bits(off, 7, 6, 7) | (rs2 << 2) | 2);
      }
      const rd = rng.pick(DESTS.filter((r) => r !== 0));
      return C(`c.lwsp ${x(rd)}, ${off}(sp)`, (2 << 13) | bit(off, 5, 12) | (rd << 7) | bits(off, 4, 2, 4) | bits(off, 7, 6, 2) | 2);
    }
    default: { // sp-relative doublewords
      const off = rng.below(64) * 8;
      if (store) {
        const rs2 = rng.below(32);
        return C(`c.sdsp ${x(rs2)}, ${off}(sp)`, (7 << 13) | bits(off, 5, 3, 10) | bits(off, 8, 6, 7) | (rs2 << 2) | 2);
      }
      const rd = rng.pick(DESTS.filter((r) => r !== 0));
      return C(`c.ldsp ${x(rd)}, ${off}(sp)`, (3 << 13) | bit(off, 5, 12) | (rd << 7) | bits(off, 4, 3, 5) | bits(off, 8, 6, 2) | 2);
    }
  }
}

function randomEnd(rng: Rng): Inst {
  const off = (rng.below(64) - 32) * 2;
  const rs1 = rng.below(32), rs2 = rng.below(3) ? rng.below(32) : rs1;
  switch (rng.below(8)) {
    case 0: return I(`jal ${x(rng.pick(DESTS))}, ${off}`, jType(off, rng.pick(DESTS)));
    case 1: {
      const rd = rng.pick(DESTS), imm = rng.below(64) - 32;
      return I(`jalr ${x(rd)}, ${imm}(${x(rs1)})`, iType(imm, rs1, 0, rd, 0x67));
    }
    case 2: {
      const r = 8 + rng.below(8), o = rng.below(128) * 2 - 128, eq = rng.below(2);
      return C(`${eq ? "c.beqz" : "c.bnez"} ${x(r)}, ${o}`, ((eq ? 6 : 7) << 13) | bit(o, 8, 12) | bits(o, 4, 3, 10) |
        ((r - 8) << 7) | bits(o, 7, 6, 5) | bits(o, 2, 1, 3) | bit(o, 5, 2) | 1);
    }
    default: {
      const [n, f3] = rng.pick(BRANCHES);
      return I(`${n} ${x(rs1)}, ${x(rs2)}, ${off}`, bType(off, rs2, rs1, f3));
    }
  }
}

interface Setup {
  seed: number;
  supervisor: boolean;
  sum: boolean;
  medeleg: bigint;
  regs: bigint[];
  /** mstatus.FS (0 off: FP instructions are illegal, 1 initial, 3 dirty) and the FP registers */
  fs: bigint;
  fregs: bigint[];
  instret: bigint;
  codeOffset: number;
  insts: Inst[];
  /** addresses whose TLB entries are filled before the block (so its first accesses can hit) */
  warm: bigint[];
}

/** An address for a base register: in half the blocks (safe) one that should not fault, else anything. */
function baseValue(rng: Rng, supervisor: boolean, safe: boolean): bigint {
  const inPage = () => BigInt(rng.below(8) ? 32 + rng.below(4096 - 64) : 4096 - 1 - rng.below(8)); // near a page's end at times
  if (safe) return supervisor ? rng.pick([0n, 1n, 4n, 5n]) * PAGE + inPage() : DATA + BigInt(rng.below(4)) * PAGE + inPage();
  const k = rng.below(20);
  if (supervisor) {
    if (k < 12) return BigInt(rng.below(8)) * PAGE + inPage();               // the level-0 pages, some faulting
    if (k < 15) return DATA + BigInt(rng.below(4)) * PAGE + inPage();        // through the gigapage
    if (k < 16) return 0x4000_0000n + inPage();                              // an unmapped gigapage
    if (k < 17) return u64(1n << 40n) + inPage();                            // not canonical
    if (k < 18) return TOHOST + BigInt(rng.below(16));
    return randomValue(rng);
  }
  if (k < 14) return DATA + BigInt(rng.below(4)) * PAGE + inPage();
  if (k < 15) return TOHOST + BigInt(rng.below(16));
  if (k < 16) return MMIO + BigInt(rng.below(64));
  if (k < 17) return RAM_END - BigInt(rng.below(16));                         // accesses running past RAM
  if (k < 18) return 1n << 60n;                                               // beyond physical addresses
  return randomValue(rng);
}

function randomSetup(seed: number): Setup {
  const rng = new Rng(seed * 2654435761);
  const supervisor = rng.below(2) === 1;
  const regs = Array.from({ length: 32 }, () => randomValue(rng));
  regs[0] = 0n;
  const safe = rng.below(2) === 0;
  for (const b of BASES) regs[b] = baseValue(rng, supervisor, safe);
  const n = rng.below(8) === 0 ? 60 + rng.below(20) : 1 + rng.below(24);
  const insts: Inst[] = [];
  for (let i = 0; i < n; i++) {
    const k = rng.below(12);
    insts.push(k < 4 ? randomMemory(rng) : k === 4 ? randomExec(rng) : randomAlu(rng));
  }
  if (rng.below(3)) insts.push(randomEnd(rng));
  const size = insts.reduce((s, i) => s + i.len, 0);
  // anywhere on the page, at times so that the block runs into the page's end
  const codeOffset = rng.below(4) === 0
    ? Math.min(4096 - insts[0].len, Math.max(0, 4096 - size + 2 * rng.below(8))) & ~1
    : 2 * rng.below(Math.max(1, (4096 - size) / 2));
  // most bases' pages (and the pages an offset can reach from them) in the TLBs, so that most accesses take the
  // compiled fast path; the others leave the block for the interpreter
  const warm: bigint[] = [];
  for (const b of BASES) if (rng.below(4)) warm.push(regs[b] - 2048n, regs[b], regs[b] + 2047n);
  return {
    seed, supervisor, sum: rng.below(2) === 1, medeleg: rng.below(2) ? 0n : BigInt(rng.next() & 0xb3ff),
    regs, fs: rng.pick([0n, 1n, 1n, 3n]), fregs: Array.from({ length: 32 }, () => randomValue(rng)),
    instret: randomValue(rng) >> 8n, codeOffset, insts, warm,
  };
}

// ---- running one block both ways --------------------------------------------------------------------------------

let interp: Hart;
let jit: Hart;
let decode: ReturnType<typeof hartDecoder>;

function putPhys(h: Hart, addr: bigint, bytes: Uint8Array): void { h.ram.set(bytes, Number(addr - RAM_BASE)); }
function put64(h: Hart, addr: bigint, v: bigint): void {
  new DataView(h.ram.buffer, h.ram.byteOffset).setBigUint64(Number(addr - RAM_BASE), v, true);
}
function blockBytes(h: Hart): Uint8Array {
  return new Uint8Array(h.memory.buffer, h.layout.hartBase, HART_BLOCK.SIZE);
}
// The fetch TLB (the last of the three) is left out of the comparison: the interpreter fills it as it fetches,
// a compiled block fetches nothing.
const COMPARED_STATE = HART_BLOCK.TLB + 2 * 8192 * 16;

/** Lays out the block's world on the interpreter's hart, then copies it to the other. */
function prepare(s: Setup, code: Uint8Array): void {
  const h = interp;
  const rng = new Rng(s.seed ^ 0x5bd1e995);
  h.ex.reset(0, CODE + BigInt(s.codeOffset));
  h.ram.fill(0, 0, 11 * 4096);
  h.ram.fill(0, RAM_BYTES - 4096, RAM_BYTES);
  putPhys(h, CODE + BigInt(s.codeOffset), code);
  const words = new Uint32Array(h.ram.buffer, h.ram.byteOffset, RAM_BYTES / 4);
  words.fill(0x0000006f, Number(HANDLER - RAM_BASE) / 4, Number(HANDLER + PAGE - RAM_BASE) / 4); // j .
  for (let i = Number(DATA - RAM_BASE) / 4, n = i + 4096; i < n; i++) words[i] = rng.next();
  for (let i = (RAM_BYTES - 4096) / 4; i < RAM_BYTES / 4; i++) words[i] = rng.next();
  put64(h, ROOT + 0n, pointer(L1));
  put64(h, ROOT + 16n, leaf(RAM_BASE, PTE_R | PTE_W | PTE_X | PTE_A | PTE_D)); // the gigapage of RAM, identity
  put64(h, L1, pointer(L0));
  VPAGES.forEach((pte, i) => put64(h, L0 + 8n * BigInt(i), pte));
  h.ex.invalidateDecoded();
  s.regs.forEach((v, i) => h.setReg(i, v));
  h.state.instret = s.instret;
  h.state.mtvec = HANDLER;
  h.state.stvec = HANDLER + 0x100n;
  h.state.medeleg = s.medeleg;
  if (s.sum) h.state.mstatus = h.state.mstatus | (1n << 18n);
  h.state.mstatus = (h.state.mstatus & ~(3n << 13n)) | (s.fs << 13n);
  const fregs = new BigUint64Array(h.memory.buffer, h.layout.hartBase + HART_BLOCK.FREGS, 32);
  s.fregs.forEach((v, i) => { fregs[i] = v; });
  if (s.supervisor) {
    h.state.satp = (8n << 60n) | (ROOT >> 12n);
    h.priv = 1;
  }
  h.ex.setTohost(TOHOST); // also flushes the TLBs and brings the keys up to date
  for (const va of s.warm) {
    h.ex.fillTlbForTest(va, 0);
    h.ex.fillTlbForTest(va, 1);
  }
  h.state.excCause = 0n; h.state.excTval = 0n; h.state.mmioAddr = 0n; h.state.mmioSize = 0; h.state.mmioIsStore = 0;
  h.state.mmioData = 0n;
  blockBytes(jit).set(blockBytes(h));
  for (const [a, b] of COMPARED) jit.ram.set(h.ram.subarray(a, b), a);
  // which pages hold code and which write-TLB slot maps each (assembly/code-pages.ts) go with the TLBs
  const codeMapBytes = (h.layout.ramBytes / 4096) * 4;
  new Uint8Array(jit.memory.buffer, jit.layout.codeMap, codeMapBytes).set(new Uint8Array(h.memory.buffer, h.layout.codeMap, codeMapBytes));
  jit.ex.invalidateDecoded();
}

const STOP_NAMES = ["slice", "wfi", "mmio", "htif", "fatal", "ecall"];

/** Runs the block both ways and returns what differs ("" when nothing does). */
function runBoth(s: Setup): { diff: string; block: CompiledBlock | null; exit: number } {
  const code = new Uint8Array(s.insts.reduce((n, i) => n + i.len, 0));
  let o = 0;
  for (const i of s.insts) {
    code[o] = i.word & 0xff; code[o + 1] = (i.word >>> 8) & 0xff;
    if (i.len === 4) { code[o + 2] = (i.word >>> 16) & 0xff; code[o + 3] = i.word >>> 24; }
    o += i.len;
  }
  prepare(s, code.subarray(0, Math.min(code.length, 4096 - s.codeOffset)));
  const pc = CODE + BigInt(s.codeOffset);
  const block = compileBlock(interp.ram.subarray(0, 4096), pc, decode);
  if (!block) return { diff: "the block did not compile", block, exit: -1 };
  const L = block.instructions.length;
  const reasonI = interp.run(L);
  const { exit, reason: reasonJ } = runCompiled(block);
  return { diff: compareHarts(reasonI, reasonJ), block, exit };
}

/** Runs a compiled block on the second hart as run(L) would have run its L instructions: a trap is finished with
 *  takePendingTrap() and the rest of the L steps run in the handler, as they did on the first hart; after a load
 *  or store the block left to the interpreter (EXIT_MISS), the rest of the L steps are interpreted from it. */
function runCompiled(block: CompiledBlock): { exit: number; reason: number } {
  const L = block.instructions.length;
  const fn = instantiateRegion(new WebAssembly.Module(block.bytes), jit.memory, jit.ex);
  // the tier marks the page it compiles as code (its write-TLB entry goes), as the interpreter does the page it
  // decodes
  jit.ex.markCodePage(Number((CODE - RAM_BASE) >> 12n));
  const before = jit.state.instret;
  const exit = fn(jit.layout.hartBase, 0, L);
  let reason = 0;
  if (exit === EXIT_EXC) {
    const retired = Number(jit.state.instret - before);
    reason = jit.ex.takePendingTrap();
    // a trap spent a step of run(L) on the first hart, and the rest ran in the handler
    if (reason === 0 && L - retired - 1 > 0) reason = jit.run(L - retired - 1);
  } else if (exit === EXIT_MISS) {
    reason = jit.run(L - Number(jit.state.instret - before));
  }
  return { exit, reason };
}

/** What differs between the two harts' states and compared RAM ("" when nothing does). */
function compareHarts(reasonI: number, reasonJ: number): string {
  const diffs: string[] = [];
  if (reasonI !== reasonJ) diffs.push(`stop reason: interpreter ${STOP_NAMES[reasonI]}, compiled ${STOP_NAMES[reasonJ]}`);
  // the interpreter writes x0's results to a scratch slot the compiled code never does: not architectural
  const scratch = HART_BLOCK.XREGS + 32 * 8;
  blockBytes(interp).fill(0, scratch, scratch + 8);
  blockBytes(jit).fill(0, scratch, scratch + 8);
  const a = blockBytes(interp).subarray(0, COMPARED_STATE), b = blockBytes(jit).subarray(0, COMPARED_STATE);
  if (!Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length))) {
    diffs.push(`hart state differs: ${describeStateDiff(a, b)}`);
  }
  for (const [lo, hi] of COMPARED) {
    const ra = interp.ram.subarray(lo, hi), rb = jit.ram.subarray(lo, hi);
    if (!Buffer.from(ra.buffer, ra.byteOffset, ra.length).equals(Buffer.from(rb.buffer, rb.byteOffset, rb.length))) {
      let i = 0;
      while (ra[i] === rb[i]) i++;
      diffs.push(`RAM differs first at 0x${(RAM_BASE + BigInt(lo + i)).toString(16)}: ${ra[i]} / ${rb[i]}`);
    }
  }
  return diffs.join("; ");
}

function describeStateDiff(a: Uint8Array, b: Uint8Array): string {
  const out: string[] = [];
  const va = new DataView(a.buffer, a.byteOffset), vb = new DataView(b.buffer, b.byteOffset);
  for (let r = 0; r < 32; r++) {
    const p = va.getBigUint64(HART_BLOCK.XREGS + 8 * r, true), q = vb.getBigUint64(HART_BLOCK.XREGS + 8 * r, true);
    if (p !== q) out.push(`x${r} 0x${p.toString(16)} / 0x${q.toString(16)}`);
  }
  const sa = interp.state, sb = jit.state;
  for (const f of ["pc", "instret", "mepc", "mcause", "mtval", "sepc", "scause", "stval", "mstatus", "excCause", "excTval", "mmioAddr", "mmioData", "htifValue"] as const) {
    if (sa[f] !== sb[f]) out.push(`${f} 0x${sa[f].toString(16)} / 0x${sb[f].toString(16)}`);
  }
  for (const f of ["priv", "exc", "stopReason", "mmioSize", "mmioIsStore"] as const) if (sa[f] !== sb[f]) out.push(`${f} ${sa[f]} / ${sb[f]}`);
  if (!out.length) {
    let i = 0;
    while (a[i] === b[i]) i++;
    out.push(`first differing byte at block offset ${i}${i >= HART_BLOCK.TLB ? " (TLBs)" : ""}`);
  }
  return out.join(", ");
}

function explain(s: Setup, diff: string, block: CompiledBlock | null): string {
  return [
    s.seed ? `seed ${s.seed} (JIT_DIFF_SEED=${s.seed} JIT_DIFF_BLOCKS=1 reruns it): ${diff}` : `hand-written block: ${diff}`,
    `mode ${s.supervisor ? `S, Sv39${s.sum ? ", SUM" : ""}` : "M, bare"}, medeleg 0x${s.medeleg.toString(16)}, code at +0x${s.codeOffset.toString(16)}, compiled ${block?.instructions.length ?? 0} of ${s.insts.length}`,
    `bases: ${BASES.map((r) => `x${r}=0x${s.regs[r].toString(16)}`).join(" ")}`,
    ...s.insts.map((i, k) => `  ${k}: ${i.text}`),
  ].join("\n");
}

beforeAll(() => {
  const module = loadHartModule();
  const layout = computeLayout(1, 4);
  interp = new Hart(module, layout);
  jit = new Hart(module, layout);
  decode = hartDecoder(jit.memory, jit.ex.decodeForTest);
});

// ---- the tests --------------------------------------------------------------------------------------------------

describe("compiled blocks against the interpreter", () => {
  it(`agree on ${BLOCKS} random blocks`, () => {
    const exits = [0, 0, 0, 0];
    let instructions = 0;
    for (let seed = FIRST_SEED; seed < FIRST_SEED + BLOCKS; seed++) {
      const s = randomSetup(seed);
      const { diff, block, exit } = runBoth(s);
      if (diff) expect.fail(explain(s, diff, block));
      exits[exit]++;
      instructions += block!.instructions.length;
    }
    console.log(`jit-diff: ${BLOCKS} blocks, ${instructions} instructions compiled; exits: ${exits[0]} end, ${exits[1]} jump, ${exits[2]} exception or stop, ${exits[3]} left to the interpreter at a load or store`);
    // the mix is what the test means to cover
    if (BLOCKS >= 1000) for (const e of exits) expect(e).toBeGreaterThan(BLOCKS / 20);
  });

  // Hand-written blocks: each names what it checks.
  const hand = (name: string, insts: Inst[], regs: Record<number, bigint>, opts: Partial<Setup> = {}, check?: () => void) => {
    it(name, () => {
      const base = randomSetup(1);
      const s: Setup = { ...base, supervisor: false, sum: false, medeleg: 0n, codeOffset: 0x100, warm: [], instret: 1000n, ...opts, insts, seed: 0 };
      s.regs = Array.from({ length: 32 }, (_, i) => u64(regs[i] ?? 0n));
      const { diff, block } = runBoth(s);
      if (diff) expect.fail(explain(s, diff, block));
      check?.();
    });
  };
  const MIN = 1n << 63n;

  hand("division by zero and the signed overflow, 64 and 32 bits", [
    r_("div", 0x33, 4, 1, 10, 5, 6), r_("rem", 0x33, 6, 1, 11, 5, 6), r_("divu", 0x33, 5, 1, 12, 5, 0),
    r_("remu", 0x33, 7, 1, 13, 5, 0), r_("div", 0x33, 4, 1, 14, 5, 0), r_("rem", 0x33, 6, 1, 15, 5, 0),
    r_("divw", 0x3b, 4, 1, 16, 7, 6), r_("remw", 0x3b, 6, 1, 17, 7, 6), r_("divuw", 0x3b, 5, 1, 18, 7, 0),
    r_("remuw", 0x3b, 7, 1, 19, 7, 0), r_("mulh", 0x33, 1, 1, 20, 5, 6), r_("mulhsu", 0x33, 2, 1, 21, 6, 5),
    r_("mulhu", 0x33, 3, 1, 22, 6, 6),
  ], { 5: MIN, 6: -1n, 7: 0xffff_ffff_8000_0000n }, {}, () => {
    expect([jit.reg(10), jit.reg(11), jit.reg(12), jit.reg(13), jit.reg(14), jit.reg(15)]).toEqual([MIN, 0n, M64, MIN, M64, MIN]);
    expect([jit.reg(16), jit.reg(17), jit.reg(18), jit.reg(19)]).toEqual([0xffff_ffff_8000_0000n, 0n, M64, 0xffff_ffff_8000_0000n]);
    expect([jit.reg(20), jit.reg(21), jit.reg(22)]).toEqual([0n, M64, M64 - 1n]);
  });

  hand("a page fault after register writes: pc at the load, the writes kept, nothing retired past it", [
    I("addi x10, x0, 5", iType(5, 0, 0, 10, 0x13)), I("ld x11, 0(x8)", iType(0, 8, 3, 11, 0x03)),
    I("addi x12, x0, 7", iType(7, 0, 0, 12, 0x13)),
  ], { 8: 3n * PAGE + 8n, 11: 99n }, { supervisor: true }, () => {
    expect(jit.state.mepc).toBe(CODE + 0x104n);
    expect(jit.state.mcause).toBe(13n);
    expect(jit.state.mtval).toBe(3n * PAGE + 8n);
    expect([jit.reg(10), jit.reg(11), jit.reg(12)]).toEqual([5n, 99n, 0n]);
    expect(jit.state.instret).toBe(1000n + 1n + 1n); // addi, then a step of `j .` in the handler
  });

  hand("a store to tohost retires and stops for the host; a device load stops before it", [
    I("sd x10, 0(x8)", sType(0, 10, 8, 3, 0x23)), I("addi x11, x0, 1", iType(1, 0, 0, 11, 0x13)),
  ], { 8: TOHOST, 10: 0x4242n }, {}, () => {
    expect(jit.state.pc).toBe(CODE + 0x104n);
    expect(jit.state.htifValue).toBe(0x4242n);
  });
  hand("a device load", [I("addi x11, x0, 1", iType(1, 0, 0, 11, 0x13)), I("lw x12, 4(x8)", iType(4, 8, 2, 12, 0x03))],
    { 8: MMIO }, {}, () => {
      expect(jit.state.pc).toBe(CODE + 0x104n);
      expect(jit.state.mmioAddr).toBe(MMIO + 4n);
    });

  it("a device load the host answered: a block compiled at its pc leaves it to the interpreter, which finds the answer", () => {
    const s: Setup = { ...randomSetup(1), supervisor: false, sum: false, medeleg: 0n, codeOffset: 0x100, warm: [], instret: 0n, seed: 0 };
    s.insts = [I("addi x11, x0, 1", iType(1, 0, 0, 11, 0x13)), I("lw x12, 4(x8)", iType(4, 8, 2, 12, 0x03)),
      I("addi x13, x12, 1", iType(1, 12, 0, 13, 0x13))];
    s.regs = Array.from({ length: 32 }, (_, i) => (i === 8 ? MMIO : 0n));
    let r = runBoth(s);
    if (r.diff) expect.fail(explain(s, r.diff, r.block));
    expect(jit.state.pc).toBe(CODE + 0x104n);
    for (const h of [interp, jit]) h.mmioComplete(0xfffffff0n); // both harts' devices answer the same
    const reasonI = interp.run(2);
    const again = compileBlock(interp.ram.subarray(0, 4096), CODE + 0x104n, decode)!;
    expect(again.instructions.length).toBe(2);
    const { exit, reason } = runCompiled(again);
    const diff = compareHarts(reasonI, reason);
    if (diff) expect.fail(explain(s, diff, again));
    expect(exit).toBe(EXIT_MISS);
    expect([jit.reg(12), jit.reg(13), jit.state.instret]).toEqual([M64 - 15n, M64 - 14n, 3n]);
  });

  hand("misaligned accesses inside a page (fast path) and across pages (slow path), stores then loads", [
    I("sd x10, 3(x8)", sType(3, 10, 8, 3, 0x23)), I("ld x11, 3(x8)", iType(3, 8, 3, 11, 0x03)),
    I("sw x10, 2046(x9)", sType(2046, 10, 9, 2, 0x23)), I("lw x12, 2046(x9)", iType(2046, 9, 2, 12, 0x03)),
    I("lhu x13, 2047(x9)", iType(2047, 9, 5, 13, 0x03)), I("lh x14, 2047(x9)", iType(2047, 9, 1, 14, 0x03)),
  ], { 8: DATA, 9: DATA + PAGE - 2048n, 10: 0x8899aabbccddeeffn }, { warm: [DATA] }, () => {
    expect([jit.reg(11), jit.reg(12), jit.reg(13), jit.reg(14)]).toEqual([0x8899aabbccddeeffn, 0xffffffffccddeeffn, 0xddeen, 0xffffffffffffddeen]);
  });

  // Virtual pages 4 and 5 map to physical pages that are not adjacent (DATA + 3 pages, then DATA): an access that
  // leaves the page an earlier access through the same base found must not be made from that page's addend.
  hand("accesses through one base: the same page from the first's TLB entry, the next page and a straddling one not", [
    I("ld x10, 0(x8)", iType(0, 8, 3, 10, 0x03)),     // 4P + 4088: the TLB, the page kept
    I("ld x12, 8(x8)", iType(8, 8, 3, 12, 0x03)),     // 5P: the next page's entry
    I("ld x13, -8(x8)", iType(-8, 8, 3, 13, 0x03)),   // 4P + 4080: the kept page
    I("sd x13, -16(x8)", sType(-16, 13, 8, 3, 0x23)), // (a store keeps a page of its own)
    I("sd x12, 0(x8)", sType(0, 12, 8, 3, 0x23)),
    I("lw x11, 6(x8)", iType(6, 8, 2, 11, 0x03)),     // 4P + 4094: across into 5P, left to the interpreter
  ], { 8: 4n * PAGE + 4088n }, { supervisor: true, warm: [4n * PAGE + 4088n, 5n * PAGE] }, () => {
    expect(jit.state.pc).toBe(CODE + 0x118n);
    expect(jit.reg(12)).not.toBe(0n); // DATA's random words, not the zeros after DATA + 3 pages
  });
  hand("an access below the kept page's start goes to the page before it (unmapped: a fault)", [
    I("ld x10, 0(x8)", iType(0, 8, 3, 10, 0x03)),     // 4P + 8
    I("ld x11, -16(x8)", iType(-16, 8, 3, 11, 0x03)), // 3P + 4088: unmapped
  ], { 8: 4n * PAGE + 8n }, { supervisor: true, warm: [4n * PAGE + 8n] }, () => {
    expect(jit.state.mcause).toBe(13n); // load page fault
    expect(jit.state.mtval).toBe(4n * PAGE - 8n);
  });

  hand("a load to x0 still faults; loads of every size sign- or zero-extend", [
    I("lb x10, 0(x8)", iType(0, 8, 0, 10, 0x03)), I("lbu x11, 0(x8)", iType(0, 8, 4, 11, 0x03)),
    I("lh x12, 0(x8)", iType(0, 8, 1, 12, 0x03)), I("lhu x13, 0(x8)", iType(0, 8, 5, 13, 0x03)),
    I("lw x14, 0(x8)", iType(0, 8, 2, 14, 0x03)), I("lwu x15, 0(x8)", iType(0, 8, 6, 15, 0x03)),
    I("ld x0, 0(x9)", iType(0, 9, 3, 0, 0x03)),
  ], { 8: DATA + 16n, 9: 1n << 60n }, { warm: [DATA] }, () => {
    expect(jit.state.mcause).toBe(5n); // load access fault
    expect(jit.state.mepc).toBe(CODE + 0x118n);
  });

  hand("jalr whose rd is its rs1 jumps to the old value", [I("jalr x5, 8(x5)", iType(8, 5, 0, 5, 0x67))],
    { 5: CODE + 0x200n }, {}, () => {
      expect(jit.state.pc).toBe(CODE + 0x208n);
      expect(jit.reg(5)).toBe(CODE + 0x104n);
    });

  hand("a branch taken and the block's end at the page's end", [
    I("addi x10, x10, 1", iType(1, 10, 0, 10, 0x13)), I("beq x10, x11, -8", bType(-8, 11, 10, 0)),
  ], { 10: 4n, 11: 5n }, { codeOffset: 4096 - 8 }, () => expect(jit.state.pc).toBe(CODE + 4096n - 12n));

  hand("a 32-bit instruction straddling the page's end is left to the interpreter", [
    C("c.li x10, 3", (2 << 13) | (10 << 7) | (3 << 2) | 1), I("addi x11, x0, 1", iType(1, 0, 0, 11, 0x13)),
  ], {}, { codeOffset: 4096 - 4 }, () => expect(jit.state.pc).toBe(CODE + 4096n - 2n));
});
