// Random bare-metal programs for fuzzing the hart: a straight line of random instructions (integer, M, A, F/D,
// CSR accesses that leave the machine where it is, compressed, FENCE, loads and stores at RAM, edge-of-RAM,
// beyond-RAM and device addresses, and now and then a wholly random word), framed so that the run ends through
// tohost: a trap handler that skips the faulting instruction and gives up after a number of traps, and an epilogue
// that reports success. A program has no jumps or branches of its own (its random words are drawn without them),
// so it runs from start to end unless it rewrites itself; whatever it does, the host must stay whole: the run ends
// by tohost, a clean fatal stop or the timeout, without a host exception.
//
// Deterministic from its seed (the same seed gives the same program), so a failure can be replayed, and usable by a
// differential test (the JIT issue) as well as by `npm run fuzz` (cli/fuzz.ts).

import { RAM_BASE } from "../layout.ts";

/** A seeded generator (xorshift32: fast, and the same everywhere). */
export class Rng {
  private s: number;
  constructor(seed: number) { this.s = (seed >>> 0) || 0x9e3779b9; }
  next(): number {
    let x = this.s;
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    this.s = x;
    return x;
  }
  below(n: number): number { return this.next() % n; }
  pick<T>(xs: readonly T[]): T { return xs[this.below(xs.length)]; }
}

// Registers: x1-x5 hold the addresses loads and stores go to (set once, never written by the random part), x6-x25
// are the random part's, x26-x31 the harness's (trap count, handler scratch, tohost address).
const BASES = [1, 2, 3, 4, 5];
const FIRST_RD = 6, LAST_RD = 25;
const TRAPS = 27; // s11: traps taken so far
const T4 = 29, T5 = 30, T6 = 31;

const r = (rng: Rng) => FIRST_RD + rng.below(LAST_RD - FIRST_RD + 1);
const anyReg = (rng: Rng) => rng.below(32);
const f = (rng: Rng) => rng.below(32);

/** Instruction encoders (R, I, S, U, B, J formats). */
export const rType = (f7: number, rs2: number, rs1: number, f3: number, rd: number, op: number) =>
  ((f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;
export const iType = (imm: number, rs1: number, f3: number, rd: number, op: number) =>
  (((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;
export const sType = (imm: number, rs2: number, rs1: number, f3: number, op: number) =>
  ((((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 0x1f) << 7) | op) >>> 0;
export const uType = (imm20: number, rd: number, op: number) => (((imm20 & 0xfffff) << 12) | (rd << 7) | op) >>> 0;
/** B-type branch and J-type jump by `imm` bytes. */
export const bType = (imm: number, rs2: number, rs1: number, f3: number) =>
  ((((imm >> 12) & 1) << 31) | (((imm >> 5) & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) |
    (((imm >> 1) & 0xf) << 8) | (((imm >> 11) & 1) << 7) | 0x63) >>> 0;
export const jType = (imm: number, rd: number) =>
  ((((imm >> 20) & 1) << 31) | (((imm >> 1) & 0x3ff) << 21) | (((imm >> 11) & 1) << 20) | (((imm >> 12) & 0xff) << 12) |
    (rd << 7) | 0x6f) >>> 0;

/** CSRs the random part may read and write without moving the machine: the FP status, scratch registers, the
 *  counters, trap values; never mtvec, mstatus, satp, PMP or the privilege. */
const SAFE_CSRS = [0x001, 0x002, 0x003, 0x340, 0x140, 0x343, 0x143, 0xb00, 0xb02, 0xc00, 0xc01, 0xc02, 0xf14];

/** 32-bit opcodes a wholly random word must not have: jumps, branches and SYSTEM (mret, wfi, CSR writes anywhere). */
const FORBIDDEN_OPCODES = new Set([0x63, 0x67, 0x6f, 0x73]);

function randomWord(rng: Rng): number {
  for (;;) {
    const w = rng.next();
    if ((w & 3) !== 3) continue; // a 32-bit one here (16-bit ones come from compressed())
    if (FORBIDDEN_OPCODES.has(w & 0x7f)) continue;
    // its destination must not be a base or harness register (for the formats that have rd)
    const rd = (w >> 7) & 31;
    if (rd !== 0 && (rd < FIRST_RD || rd > LAST_RD)) continue;
    return w;
  }
}

/** A compressed instruction that is not a jump or branch and writes no base or harness register. */
function compressed(rng: Rng): number {
  for (;;) {
    const h = rng.next() & 0xffff;
    const q = h & 3, f3 = h >> 13;
    if (q === 3) continue;
    if (q === 1 && (f3 === 5 || f3 === 6 || f3 === 7)) continue; // c.j, c.beqz, c.bnez
    if (q === 2 && f3 === 4) continue; // c.jr, c.jalr, c.mv, c.add, c.ebreak: c.mv/c.add come from the 32-bit side
    // rd in bits 11:7 (full-register forms) or rd' in 9:7 (x8-x15, all in the random range)
    const rdFull = (h >> 7) & 31;
    const fullForm = (q === 1 && (f3 === 0 || f3 === 1 || f3 === 2 || f3 === 3)) || (q === 2 && (f3 === 0 || f3 === 2 || f3 === 3));
    if (fullForm && rdFull !== 0 && (rdFull < FIRST_RD || rdFull > LAST_RD)) continue;
    if (q === 1 && f3 === 3 && rdFull === 2) continue; // c.addi16sp moves sp (x2: a base register)
    return h;
  }
}

function aluR(rng: Rng): number {
  const ops: [number, number][] = [[0, 0], [0x20, 0], [0, 1], [0, 2], [0, 3], [0, 4], [0, 5], [0x20, 5], [0, 6], [0, 7],
    [1, 0], [1, 1], [1, 2], [1, 3], [1, 4], [1, 5], [1, 6], [1, 7]]; // base ALU and M
  const [f7, f3] = rng.pick(ops);
  const word = rng.below(3) === 0; // the *W forms
  return rType(f7, anyReg(rng), anyReg(rng), f3, r(rng), word ? 0x3b : 0x33);
}

function aluI(rng: Rng): number {
  const f3 = rng.below(8);
  let imm = rng.next() & 0xfff;
  if (f3 === 1) imm &= 0x3f;
  if (f3 === 5) imm = (imm & 0x3f) | (rng.below(2) ? 0x400 : 0);
  if (rng.below(4) === 0) return iType(f3 === 0 || f3 === 1 || f3 === 5 ? imm & 0x41f : imm, anyReg(rng), f3 === 0 || f3 === 1 || f3 === 5 ? f3 : 0, r(rng), 0x1b);
  return iType(imm, anyReg(rng), f3, r(rng), 0x13);
}

function memory(rng: Rng): number {
  const base = rng.pick(BASES);
  const off = (rng.below(2) ? rng.below(64) - 32 : (rng.next() & 0xfff) - 0x800) & 0xfff;
  switch (rng.below(6)) {
    case 0: return iType(off, base, rng.below(7), r(rng), 0x03); // lb..lwu, ld
    case 1: return sType(off, anyReg(rng), base, rng.below(4), 0x23); // sb..sd
    case 2: return iType(off, base, rng.pick([2, 3]), f(rng), 0x07); // flw, fld
    case 3: return sType(off, f(rng), base, rng.pick([2, 3]), 0x27); // fsw, fsd
    default: {
      // A: lr, sc, amo*.w/.d at the base address itself
      const f5 = rng.pick([0x02, 0x03, 0x01, 0x00, 0x04, 0x0c, 0x08, 0x10, 0x14, 0x18, 0x1c]);
      const aq = rng.below(4);
      return rType((f5 << 2) | aq, f5 === 0x02 ? 0 : anyReg(rng), base, rng.pick([2, 3]), r(rng), 0x2f);
    }
  }
}

function float(rng: Rng): number {
  const fmt = rng.below(2); // .s or .d
  const rm = rng.pick([0, 1, 2, 3, 4, 7, 7, 5]); // 5 (and 6) are reserved: illegal
  switch (rng.below(5)) {
    case 0: return rType((rng.pick([0x00, 0x04, 0x08, 0x0c, 0x2c]) | fmt), rng.below(32), f(rng), rm, f(rng), 0x53); // fadd/fsub/fmul/fdiv/fsqrt
    case 1: return (((f(rng) << 27) | (fmt << 25) | (f(rng) << 20) | (f(rng) << 15) | (rm << 12) | (f(rng) << 7) | rng.pick([0x43, 0x47, 0x4b, 0x4f])) >>> 0); // fmadd..fnmadd
    case 2: return rType(0x60 | fmt, rng.below(4), f(rng), rm, r(rng), 0x53); // fcvt to integer
    case 3: return rType(0x68 | fmt, rng.below(4), anyReg(rng), rm, f(rng), 0x53); // fcvt from integer
    default: return rType(rng.pick([0x10, 0x14, 0x50, 0x70, 0x20]) | fmt, f(rng), f(rng), rng.below(3), rng.below(2) ? r(rng) : f(rng), 0x53); // sgnj, min/max, cmp, class/mv, cvt.s.d
  }
}

function csr(rng: Rng): number {
  const c = rng.pick(SAFE_CSRS);
  const f3 = rng.pick([1, 2, 3, 5, 6, 7]);
  return iType(c, f3 >= 5 ? rng.below(32) : anyReg(rng), f3, r(rng), 0x73);
}

/** One random instruction, as halfwords (one for compressed, two for 32-bit). */
function instruction(rng: Rng): number[] {
  const k = rng.below(100);
  let w: number;
  if (k < 15) return [compressed(rng)];
  if (k < 35) w = aluR(rng);
  else if (k < 50) w = aluI(rng);
  else if (k < 72) w = memory(rng);
  else if (k < 85) w = float(rng);
  else if (k < 90) w = csr(rng);
  else if (k < 92) w = uType(rng.next() >>> 12, r(rng), rng.pick([0x37, 0x17])); // lui, auipc
  else if (k < 94) w = iType(0, 0, rng.below(2), 0, 0x0f); // fence, fence.i
  else if (k < 95) w = rng.pick([0x00000073, 0x00100073]); // ecall, ebreak: traps
  else w = randomWord(rng);
  return [w & 0xffff, w >>> 16];
}

export interface FuzzProgram {
  elf: Uint8Array;
  /** random instructions in it */
  instructions: number;
}

export interface FuzzOptions {
  /** random instructions (default 2000) */
  instructions?: number;
  /** guest RAM the program runs in (MiB, default 16): the base registers point at its edges */
  ramMiB?: number;
  /** traps the handler takes before it gives up and reports (default 20 000) */
  maxTraps?: number;
}

const CODE = RAM_BASE; // the program starts at the bottom of RAM
const DATA_OFFSET = 0x100000; // 1 MiB in: what loads and stores aim at within RAM

/** Loads a 64-bit constant into `rd`: the top 9 bits, then five times 11 more (slli, ori with a positive
 *  immediate, which is not sign-extended into the upper bits): 11 instructions. */
function li(rd: number, v: bigint): number[] {
  const x = BigInt.asUintN(64, v);
  const out = [iType(Number(x >> 55n), 0, 0, rd, 0x13)]; // addi rd, x0, top
  for (let s = 44; s >= 0; s -= 11) {
    out.push(iType(11, rd, 1, rd, 0x13)); // slli rd, rd, 11
    out.push(iType(Number((x >> BigInt(s)) & 0x7ffn), rd, 6, rd, 0x13)); // ori rd, rd, chunk
  }
  return out;
}

const LI_WORDS = 11;
const EPILOGUE_WORDS = LI_WORDS + 3;
const HANDLER_WORDS = 64;


/** The trap handler: counts the trap; past `maxTraps` it reports through tohost (3: a failed run, ended cleanly);
 *  otherwise it skips the instruction at mepc (2 or 4 bytes, read from the code) and returns. */
function handler(maxTraps: number, tohost: bigint): number[] {
  const h: number[] = [iType(1, TRAPS, 0, TRAPS, 0x13)]; // addi s11, s11, 1
  h.push(...li(T5, BigInt(maxTraps)));
  const branchAt = h.length;
  h.push(0); // bltu s11, t5, skip (below)
  h.push(...li(T6, tohost));
  h.push(iType(3, 0, 0, T5, 0x13)); // li t5, 3
  h.push(sType(0, T5, T6, 3, 0x23)); // sd t5, 0(t6)
  h.push(0x0000006f); // j .
  const skipAt = h.length;
  h.push(iType(0x341, 0, 2, T6, 0x73)); // csrr t6, mepc
  h.push(iType(0, T6, 5, T4, 0x03)); // lhu t4, 0(t6)
  h.push(iType(3, T4, 7, T4, 0x13)); // andi t4, t4, 3
  h.push(iType(-3 & 0xfff, T4, 0, T4, 0x13)); // addi t4, t4, -3: zero for a 32-bit instruction
  h.push(iType(2, T6, 0, T6, 0x13)); // addi t6, t6, 2
  h.push(bType(8, 0, T4, 1)); // bnez t4, +8: a 16-bit one is skipped by 2
  h.push(iType(2, T6, 0, T6, 0x13)); // addi t6, t6, 2
  h.push(iType(0x341, T6, 1, 0, 0x73)); // csrw mepc, t6
  h.push(0x30200073); // mret
  h[branchAt] = bType((skipAt - branchAt) * 4, T5, TRAPS, 6); // bltu s11, t5
  if (h.length > HANDLER_WORDS) throw new Error("the fuzz handler outgrew its room");
  while (h.length < HANDLER_WORDS) h.push(0x00000013);
  return h;
}

/** A random program: the same `seed` and options give the same bytes. Layout: prologue (base registers, mtvec,
 *  FP on), the random instructions, the epilogue (tohost = 1), the trap handler, tohost. */
export function fuzzProgram(seed: number, opts: FuzzOptions = {}): FuzzProgram {
  const rng = new Rng(seed);
  const n = opts.instructions ?? 2000;
  const ramBytes = BigInt((opts.ramMiB ?? 16) << 20);
  const maxTraps = opts.maxTraps ?? 20_000;
  const body: number[] = []; // halfwords of the random part
  for (let i = 0; i < n; i++) body.push(...instruction(rng));
  if (body.length % 2) body.push(0x0001); // c.nop: what follows stays word-aligned

  // addresses: data within RAM, the last bytes of RAM (accesses that straddle its end), just beyond RAM, a device
  // address (the CLINT's, on the Linux machine; nothing here), and address 0
  const bases = [CODE + BigInt(DATA_OFFSET), CODE + ramBytes - 4n, CODE + ramBytes, 0x0200bff8n, 0n];
  const prologueWords = BASES.length * LI_WORDS + LI_WORDS + 1 + LI_WORDS + 1 + 1;
  const epilogueAt = CODE + BigInt(prologueWords * 4 + body.length * 2);
  const handlerAt = epilogueAt + BigInt(EPILOGUE_WORDS * 4);
  const tohost = handlerAt + BigInt(HANDLER_WORDS * 4);

  const prologue: number[] = [];
  BASES.forEach((reg, i) => prologue.push(...li(reg, bases[i])));
  prologue.push(...li(T6, handlerAt), iType(0x305, T6, 1, 0, 0x73)); // csrw mtvec, t6
  prologue.push(...li(T5, 0x6000n), iType(0x300, T5, 2, 0, 0x73)); // csrs mstatus, t5: FS on
  prologue.push(iType(0, 0, 0, TRAPS, 0x13)); // li s11, 0
  if (prologue.length !== prologueWords) throw new Error("fuzz prologue size is off");
  const epilogue = [...li(T6, tohost), iType(1, 0, 0, T5, 0x13), sType(0, T5, T6, 3, 0x23), 0x0000006f];

  const halves: number[] = [];
  const words = (ws: number[]) => { for (const w of ws) halves.push(w & 0xffff, w >>> 16); };
  words(prologue);
  halves.push(...body);
  words(epilogue);
  words(handler(maxTraps, tohost));
  words([0, 0]); // tohost
  const code = new Uint8Array(halves.length * 2);
  const dv = new DataView(code.buffer);
  halves.forEach((v, i) => dv.setUint16(i * 2, v, true));
  if (CODE + BigInt(code.length) !== tohost + 8n) throw new Error("fuzz program layout is off");
  return { elf: elfOf(code, CODE, tohost), instructions: n };
}

/** A static ELF64 RISC-V executable: one loadable segment at `addr`, entry there, and a `tohost` symbol. */
export function elfOf(code: Uint8Array, addr: bigint, tohost: bigint): Uint8Array {
  const strtab = new TextEncoder().encode("\0tohost\0");
  const codeOff = 0x1000;
  const symOff = codeOff + code.length;
  const strOff = symOff + 48;
  const shOff = (strOff + strtab.length + 7) & ~7;
  const out = new Uint8Array(shOff + 3 * 64);
  const dv = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  dv.setUint16(16, 2, true); // ET_EXEC
  dv.setUint16(18, 243, true); // EM_RISCV
  dv.setUint32(20, 1, true);
  dv.setBigUint64(24, addr, true); // entry
  dv.setBigUint64(32, 64n, true); // phoff
  dv.setBigUint64(40, BigInt(shOff), true);
  dv.setUint16(52, 64, true); // ehsize
  dv.setUint16(54, 56, true); dv.setUint16(56, 1, true); // one program header
  dv.setUint16(58, 64, true); dv.setUint16(60, 3, true); // three section headers
  // PT_LOAD, RWX
  dv.setUint32(64, 1, true); dv.setUint32(68, 7, true);
  dv.setBigUint64(72, BigInt(codeOff), true);
  dv.setBigUint64(80, addr, true); dv.setBigUint64(88, addr, true);
  dv.setBigUint64(96, BigInt(code.length), true); dv.setBigUint64(104, BigInt(code.length), true);
  out.set(code, codeOff);
  // symbols: the null one, then tohost
  dv.setUint32(symOff + 24, 1, true); out[symOff + 24 + 4] = 0x11; dv.setUint16(symOff + 24 + 6, 0xfff1, true);
  dv.setBigUint64(symOff + 24 + 8, tohost, true); dv.setBigUint64(symOff + 24 + 16, 8n, true);
  out.set(strtab, strOff);
  // section headers: null, .symtab (link 2), .strtab
  const sh = (i: number, type: number, off: number, size: number, link: number, entsize: number) => {
    const s = shOff + i * 64;
    dv.setUint32(s + 4, type, true);
    dv.setBigUint64(s + 24, BigInt(off), true); dv.setBigUint64(s + 32, BigInt(size), true);
    dv.setUint32(s + 40, link, true); dv.setBigUint64(s + 56, BigInt(entsize), true);
  };
  sh(1, 2, symOff, 48, 2, 24);
  sh(2, 3, strOff, strtab.length, 0, 0);
  return out;
}
