// Unit tests of the instruction decoder (emulator-core/assembly/decode.ts), through the wasm export decodeForTest.
//
// Two kinds of check: hand-encoded instructions with the fields the ISA manual gives them, and an equivalence
// check of every compressed form against its 32-bit expansion, both assembled by binutils at test time.

import { describe, it, expect, beforeAll } from "vitest";
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadHartModule } from "../src/node/hart-module.ts";
import { computeLayout } from "../src/layout.ts";

const opsSource = readFileSync(new URL("../assembly/ops.ts", import.meta.url), "utf8");
const OP: Record<string, number> = {};
for (const m of opsSource.matchAll(/export const OP_(\w+): u8 = (\d+);/g)) OP[m[1]] = Number(m[2]);
const opName = (id: number) => Object.keys(OP).find((k) => OP[k] === id && k !== "D_OFFSET" && k !== "COUNT") ?? `#${id}`;

interface Decoded { op: string; len: number; rd: number; rs1: number; rs2: number; imm: number; raw: number }
let decode: (inst: number) => Decoded;

beforeAll(() => {
  const layout = computeLayout(1, 1);
  const memory = new WebAssembly.Memory({ initial: layout.pages, maximum: layout.pages, shared: true });
  const inst = new WebAssembly.Instance(loadHartModule(), { env: { memory, abort: () => { throw new Error("abort"); } } });
  const ex = inst.exports as unknown as { decodeForTest(i: number): number };
  const dv = new DataView(memory.buffer);
  decode = (i: number) => {
    const e = ex.decodeForTest(i >>> 0);
    return {
      op: opName(dv.getUint8(e)), len: dv.getUint8(e + 1),
      rd: dv.getUint16(e + 2, true) / 8, rs1: dv.getUint16(e + 4, true) / 8, rs2: dv.getUint16(e + 6, true) / 8,
      imm: dv.getInt32(e + 8, true), raw: dv.getUint32(e + 12, true),
    };
  };
});

describe("32-bit encodings", () => {
  it("decodes I-type fields and sign-extends the immediate", () => {
    expect(decode(0xfff10093)).toMatchObject({ op: "ADDI", rd: 1, rs1: 2, imm: -1, len: 4 }); // addi x1, x2, -1
  });
  it("stores writes to x0 in the scratch slot", () => {
    expect(decode(0x00000013).rd).toBe(32); // nop = addi x0, x0, 0
  });
  it("keeps f0 as a real destination for FP results", () => {
    expect(decode(0x00002007)).toMatchObject({ op: "FLW", rd: 0 }); // flw f0, 0(x0)
  });
  it("decodes branch offsets", () => {
    expect(decode(0xfe208ee3)).toMatchObject({ op: "BEQ", rs1: 1, rs2: 2, imm: -4 }); // beq x1, x2, -4
  });
  it("decodes JAL offsets", () => {
    expect(decode(0x0080006f)).toMatchObject({ op: "JAL", rd: 32, imm: 8 }); // j +8
    expect(decode(0xffdff0ef)).toMatchObject({ op: "JAL", rd: 1, imm: -4 });
  });
  it("decodes store offsets", () => {
    expect(decode(0xfe113c23)).toMatchObject({ op: "SD", rs1: 2, rs2: 1, imm: -8 }); // sd x1, -8(x2)
  });
  it("decodes RV64 6-bit shift amounts and tells SRLI from SRAI", () => {
    expect(decode(0x03f0d093)).toMatchObject({ op: "SRLI", imm: 63 });
    expect(decode(0x43f0d093)).toMatchObject({ op: "SRAI", imm: 63 });
  });
  it("decodes CSR numbers", () => {
    expect(decode(0x34202573)).toMatchObject({ op: "CSRRS", rd: 10, imm: 0x342 }); // csrr a0, mcause
  });
  it("rejects reserved static rounding modes and unknown encodings", () => {
    expect(decode(0x002090d3).op).toBe("FADD_S"); // fadd.s f1, f1, f2, rm=1
    expect(decode(0x002090d3 | (5 << 12)).op).toBe("ILLEGAL");
    expect(decode(0xffffffff).op).toBe("ILLEGAL");
    expect(decode(0x00000000).op).toBe("ILLEGAL"); // all-zero parcel is defined illegal
  });
  it("keeps the raw bits for mtval", () => {
    expect(decode(0xffffffff).raw >>> 0).toBe(0xffffffff);
  });
  it("requires rs2 = 0 for LR", () => {
    expect(decode(0x1005a52f).op).toBe("LR_W"); // lr.w a0, (a1)
    expect(decode(0x1015a52f).op).toBe("ILLEGAL");
  });
});

describe("compressed forms equal their expansions", () => {
  // Each line assembles to a compressed instruction with RVC on and to its 32-bit form with RVC off.
  const lines = [
    "addi x8, x2, 1020", "fld f9, 248(x10)", "lw x9, 124(x10)", "ld x9, 248(x10)", "fsd f9, 248(x10)",
    "sw x9, 124(x10)", "sd x9, 248(x10)", "addi x5, x5, -32", "addiw x5, x5, 31", "addi x5, x0, -1",
    "addi x2, x2, -512", "addi x2, x2, 496", "lui x5, 0xfffe1", "lui x5, 31", "srli x9, x9, 63", "srai x9, x9, 1",
    "andi x9, x9, -32", "sub x9, x9, x10", "xor x9, x9, x10", "or x9, x9, x10", "and x9, x9, x10",
    "subw x9, x9, x10", "addw x9, x9, x10", "slli x5, x5, 63", "fld f5, 504(x2)", "lw x5, 252(x2)",
    "ld x5, 504(x2)", "jr x5", "add x5, x0, x6", "ebreak", "jalr x5", "add x5, x5, x6",
    "fsd f5, 504(x2)", "sw x5, 252(x2)", "sd x5, 504(x2)",
  ];
  const jumps = ["1: j 1b", "2: beqz x9, 2b", "3: bnez x9, 3b"];

  function assemble(src: string, rvc: boolean): Buffer {
    const dir = mkdtempSync(join(tmpdir(), "tv-dec-"));
    try {
      writeFileSync(join(dir, "a.S"), `.option ${rvc ? "rvc" : "norvc"}\n${src}\n`);
      execFileSync("riscv64-linux-gnu-as", ["-march=rv64gc", "-o", join(dir, "a.o"), join(dir, "a.S")]);
      execFileSync("riscv64-linux-gnu-objcopy", ["-O", "binary", "-j", ".text", join(dir, "a.o"), join(dir, "a.bin")]);
      return readFileSync(join(dir, "a.bin"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  for (const line of [...lines, ...jumps]) {
    it(line, () => {
      const c = assemble(line, true);
      const w = assemble(line, false);
      expect(c.length).toBe(2);
      expect(w.length).toBe(4);
      const dc = decode(c.readUInt16LE(0));
      const dw = decode(w.readUInt32LE(0));
      expect(dc.len).toBe(2);
      expect({ ...dc, len: 4, raw: 0 }).toEqual({ ...dw, raw: 0 });
    });
  }

  it("treats reserved compressed encodings as illegal", () => {
    expect(decode(0x0000).op).toBe("ILLEGAL");          // c.addi4spn with nzuimm = 0
    expect(decode(0x6101 & ~0x107c).op).toBe("ILLEGAL"); // c.addi16sp with nzimm = 0
    expect(decode(0x4002).op).toBe("ILLEGAL");          // c.lwsp with rd = 0
    expect(decode(0x8002).op).toBe("ILLEGAL");          // c.jr with rs1 = 0
  });
});

describe("every 16-bit encoding", () => {
  // Which compressed encodings are reserved, as binutils sees them: all 49152 halfwords whose low two bits are not
  // 11 are written, in order, to a flat blob that riscv64-linux-gnu-objdump disassembles once at test time
  // (`-D -b binary -m riscv:rv64 -M no-aliases`; the RV64 default ISA includes C). objdump prints an encoding it
  // knows no instruction for as `.2byte 0x....`, and the defined-illegal all-zero parcel as `c.unimp`; every
  // other line names an instruction (HINTs such as `c.addi zero,1` or `c.slli64` are instructions: they execute
  // as no-ops). The decoder must say ILLEGAL for exactly the reserved ones, and decode the others as 2-byte
  // instructions.
  //
  // Where binutils and the ISA manual differ, the manual wins; those encodings are listed here:
  // - 0x6101, c.addi16sp with nzimm = 0: "the code point with nzimm=0 is reserved" (RVC chapter), but binutils
  //   2.40 prints it as `c.addi16sp sp,0`.
  const SPEC_RESERVED = new Set([0x6101]);

  function binutilsReserved(): Map<number, string> {
    const dir = mkdtempSync(join(tmpdir(), "tv-dec16-"));
    const halfwords: number[] = [];
    for (let h = 0; h < 0x10000; h++) if ((h & 3) !== 3) halfwords.push(h);
    const blob = Buffer.alloc(halfwords.length * 2);
    halfwords.forEach((h, i) => blob.writeUInt16LE(h, i * 2));
    writeFileSync(join(dir, "c16.bin"), blob);
    const out = execFileSync("riscv64-linux-gnu-objdump",
      ["-D", "-b", "binary", "-m", "riscv:rv64", "-M", "no-aliases", join(dir, "c16.bin")],
      { encoding: "utf8", maxBuffer: 64 << 20 });
    rmSync(dir, { recursive: true, force: true });
    const seen = new Map<number, string>(); // halfword -> objdump's text
    for (const line of out.split("\n")) {
      const m = /^\s*([0-9a-f]+):\s+([0-9a-f]{4})\s+(.*)$/.exec(line);
      if (!m) continue;
      const h = parseInt(m[2], 16);
      // one line per halfword, in order
      if (parseInt(m[1], 16) !== seen.size * 2 || h !== halfwords[seen.size]) throw new Error(`unexpected objdump line: ${line}`);
      seen.set(h, m[3].trim());
    }
    expect(seen.size).toBe(halfwords.length);
    return seen;
  }

  it("is illegal in the decoder exactly when binutils (or the ISA manual) calls it reserved", () => {
    const text = binutilsReserved();
    const mismatches: string[] = [];
    let reserved = 0;
    for (const [h, asm] of text) {
      const isReserved = asm.startsWith(".2byte") || asm === "c.unimp" || SPEC_RESERVED.has(h);
      if (isReserved) reserved++;
      const d = decode(h);
      if ((d.op === "ILLEGAL") !== isReserved) {
        mismatches.push(`0x${h.toString(16).padStart(4, "0")} binutils: ${asm}, decoder: ${d.op} imm=${d.imm}`);
      } else if (!isReserved && d.len !== 2) {
        mismatches.push(`0x${h.toString(16).padStart(4, "0")} (${asm}) decoded with length ${d.len}`);
      }
    }
    expect(mismatches.slice(0, 20), `${mismatches.length} mismatches`).toEqual([]);
    // the RVC reserved space (RV64): quadrant 0 funct3=100 (2048), c.addi4spn nzuimm=0 (8), c.addiw rd=0 (64),
    // c.lui nzimm=0 (31), c.addi16sp nzimm=0 (1), c.subw/c.addw's neighbours (128), c.lwsp/c.ldsp rd=0 (128),
    // c.jr rs1=0 (1)
    expect(reserved).toBe(2048 + 8 + 64 + 31 + 1 + 128 + 128 + 1);
  }, 30_000);

  it("raises illegal-instruction for the reserved quadrant-1 arithmetic forms (not a backward c.j)", () => {
    expect(decode(0x9c41).op).toBe("ILLEGAL");
    expect(decode(0x9ff5).op).toBe("ILLEGAL");
  });
});
