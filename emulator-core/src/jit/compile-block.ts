// The block compiler: straight-line RISC-V code from one guest page becomes one WebAssembly function.
//
// ABI of a compiled block (module imports: env.memory, the VM's shared memory; env.jitLoadSlow and
// env.jitStoreSlow, the hart instance's exports of the same names; module export: "block"):
//
//   block(hart: i32) -> i32     hart = the wasm address of the hart's state block (hart-state.mjs)
//
// On entry the caller guarantees what run() guarantees before an instruction: H.pc is the block's first
// instruction, H.exc is 0, the TLB keys are current (H.keysEpoch == H.translationEpoch, no TLB flush or flush
// request pending: a later milestone calls blocks from inside run(), after its bookkeeping), the code it was
// compiled from is unchanged, and the block's virtual pc still maps to the page it was compiled from (the block
// bakes in its virtual pc for AUIPC, links and exits). Interrupts and the slice budget are the caller's: a block
// runs at most `instructions.length` instructions.
//
// The block keeps the guest registers it reads in i64 locals (loaded on entry; x0 is the constant 0; a write to
// x0 is computed and dropped, as the scratch slot the interpreter writes is not architectural), reads H.dataKey
// once, and does loads and stores through the same inline TLB fast path as the interpreter (hart.ts, tlbHit),
// calling the hart's slow paths on a miss and checking H.exc after them. Every exit stores the registers written
// so far, sets H.pc, adds the instructions retired to H.instret, and returns:
//
//   EXIT_END  (0)  ran to the block's end: pc is the next instruction (sequential, or a branch not taken)
//   EXIT_JUMP (1)  a taken branch or a jump ended the block: pc is its target
//   EXIT_EXC  (2)  a slow path left H.exc set: a trap (H.excCause/excTval as the slow path set them, pc at the
//                  faulting instruction, which did not retire) or a stop (STOP_MMIO: pc at the access, which did
//                  not complete; STOP_HTIF: the store completed and retired, pc is past it). The host finishes it
//                  with the hart's takePendingTrap(), as run() would have.
//
// A block ends at the first branch or jump (compiled, and last), before the first instruction it does not compile
// (system, CSR, FP, atomic, illegal: left to the interpreter), before a 32-bit instruction that straddles the end
// of the page, at the page's end, or at maxInstructions.

import { HART_BLOCK, HART_FIELDS } from "../hart-state.ts";
import { OP, VALUE_EMITTERS, BRANCH_EMITTERS } from "./semantics.ts";
import { FunctionBody, ModuleBuilder, I32, I64, Op, VOID, type MemoryLimits } from "./wasm-module.ts";

export const EXIT_END = 0;
export const EXIT_JUMP = 1;
export const EXIT_EXC = 2;

const TLB_ENTRIES = 8192;
const TLB_ENTRY_SIZE = 16;
const TLB_READ = HART_BLOCK.TLB;
const TLB_WRITE = HART_BLOCK.TLB + TLB_ENTRIES * TLB_ENTRY_SIZE;
const X_SCRATCH = 32; // the decoder's rd for x0
const EXC_STOP = 2;
const STOP_HTIF = 3;

/** A decoded instruction (the fields of a decoded entry, registers as numbers 0..32). */
export interface DecodedInst {
  op: number;
  len: number;
  rd: number;
  rs1: number;
  rs2: number;
  imm: number;
  raw: number;
}

export type Decoder = (inst: number) => DecodedInst;

export interface BlockInst extends DecodedInst {
  pc: bigint;
}

export interface CompiledBlock {
  /** the module's bytes (imports env.memory, env.jitLoadSlow, env.jitStoreSlow; exports "block") */
  bytes: Uint8Array<ArrayBuffer>;
  instructions: BlockInst[];
  /** the address after the last instruction */
  endPc: bigint;
}

export interface CompileOptions {
  maxInstructions?: number;
  /** the memory import's limits; the hart's own (build.mjs: 32 pages up to 65536, shared) by default */
  memory?: MemoryLimits;
}

const LOADS = new Map<number, { size: number; op: number; align: number; ext: number | null }>([
  // the fast path's load, and what makes the slow path's zero-extended value the same
  [OP.LB, { size: 1, op: Op.i64Load8S, align: 0, ext: Op.i64Extend8S }],
  [OP.LBU, { size: 1, op: Op.i64Load8U, align: 0, ext: null }],
  [OP.LH, { size: 2, op: Op.i64Load16S, align: 1, ext: Op.i64Extend16S }],
  [OP.LHU, { size: 2, op: Op.i64Load16U, align: 1, ext: null }],
  [OP.LW, { size: 4, op: Op.i64Load32S, align: 2, ext: Op.i64Extend32S }],
  [OP.LWU, { size: 4, op: Op.i64Load32U, align: 2, ext: null }],
  [OP.LD, { size: 8, op: Op.i64Load, align: 3, ext: null }],
]);
const STORES = new Map<number, { size: number; op: number; align: number }>([
  [OP.SB, { size: 1, op: Op.i64Store8, align: 0 }],
  [OP.SH, { size: 2, op: Op.i64Store16, align: 1 }],
  [OP.SW, { size: 4, op: Op.i64Store32, align: 2 }],
  [OP.SD, { size: 8, op: Op.i64Store, align: 3 }],
]);
const isBranch = (op: number) => BRANCH_EMITTERS.has(op);
const endsBlock = (op: number) => isBranch(op) || op === OP.JAL || op === OP.JALR;
const compiles = (op: number) => VALUE_EMITTERS.has(op) || LOADS.has(op) || STORES.has(op) || op === OP.FENCE || endsBlock(op);

/** The instructions of the block starting at pc: page holds the 4 KiB page pc is on. */
export function scanBlock(page: Uint8Array, pc: bigint, decode: Decoder, maxInstructions = 64): BlockInst[] {
  const out: BlockInst[] = [];
  let off = Number(pc & 0xfffn);
  while (out.length < maxInstructions && off < 4096) {
    const lo = page[off] | (page[off + 1] << 8);
    let word = lo;
    if ((lo & 3) === 3) {
      if (off + 4 > 4096) break; // its upper half is on the next page, whose mapping may differ
      word = (lo | (page[off + 2] << 16) | (page[off + 3] << 24)) >>> 0;
    }
    const d = decode(word);
    if (!compiles(d.op)) break;
    out.push({ ...d, pc: (pc & ~0xfffn) + BigInt(off) });
    off += d.len;
    if (endsBlock(d.op)) break;
  }
  return out;
}

/** Compiles the block at pc (page: the 4 KiB page pc is on); null when its first instruction is not compiled. */
export function compileBlock(page: Uint8Array, pc: bigint, decode: Decoder, options: CompileOptions = {}): CompiledBlock | null {
  const insts = scanBlock(page, pc, decode, options.maxInstructions ?? 64);
  if (!insts.length) return null;
  const last = insts[insts.length - 1];
  const endPc = last.pc + BigInt(last.len);

  const m = new ModuleBuilder();
  m.importMemory("env", "memory", options.memory ?? { min: 32, max: 65536, shared: true });
  const loadSlow = m.importFunction("env", "jitLoadSlow", [I64, I32], [I64]);
  const storeSlow = m.importFunction("env", "jitStoreSlow", [I64, I32, I64], []);
  const f = new FunctionBody([I32]);
  const HART = 0;

  // Registers: a local for each one the block names; loaded on entry when read.
  const regLocal = new Map<number, number>();
  const read = new Set<number>();
  for (const d of insts) {
    const rs = [d.rs1];
    if (STORES.has(d.op) || isBranch(d.op) || (VALUE_EMITTERS.has(d.op) && usesRs2(d.op))) rs.push(d.rs2);
    for (const r of rs) if (r !== 0) read.add(r);
    for (const r of [...rs, d.rd]) if (r !== 0 && r !== X_SCRATCH && !regLocal.has(r)) regLocal.set(r, f.addLocal(I64));
  }
  for (const r of [...read].sort((a, b) => a - b)) {
    f.localGet(HART);
    f.mem(Op.i64Load, 3, HART_BLOCK.XREGS + 8 * r);
    f.localSet(regLocal.get(r)!);
  }
  const hasMemory = insts.some((d) => LOADS.has(d.op) || STORES.has(d.op));
  const key = hasMemory ? f.addLocal(I64) : -1;
  const va = hasMemory ? f.addLocal(I64) : -1;
  const te = hasMemory ? f.addLocal(I32) : -1;
  if (hasMemory) {
    f.localGet(HART);
    f.mem(Op.i64Load, 3, HART_FIELDS.dataKey.offset);
    f.localSet(key);
  }

  const written = new Set<number>();
  const pushReg = (r: number) => () => { if (r === 0) f.i64Const(0n); else f.localGet(regLocal.get(r)!); };
  const setRd = (rd: number) => {
    if (rd === X_SCRATCH || rd === 0) { f.op(Op.drop); return; }
    f.localSet(regLocal.get(rd)!);
    written.add(rd);
  };

  /** Stores the registers written so far, sets pc (a constant, or the value of an i64 local), counts retired
   *  instructions, returns code. */
  const exit = (pcValue: bigint | { local: number }, retired: number, code: number) => {
    for (const r of [...written].sort((a, b) => a - b)) {
      f.localGet(HART);
      f.localGet(regLocal.get(r)!);
      f.mem(Op.i64Store, 3, HART_BLOCK.XREGS + 8 * r);
    }
    f.localGet(HART);
    if (typeof pcValue === "bigint") f.i64Const(pcValue); else f.localGet(pcValue.local);
    f.mem(Op.i64Store, 3, HART_FIELDS.pc.offset);
    if (retired) {
      f.localGet(HART);
      f.localGet(HART);
      f.mem(Op.i64Load, 3, HART_FIELDS.instret.offset);
      f.i64Const(BigInt(retired));
      f.op(Op.i64Add);
      f.mem(Op.i64Store, 3, HART_FIELDS.instret.offset);
    }
    f.i32Const(code);
    f.op(Op.return);
  };
  const excPending = () => {
    f.localGet(HART);
    f.mem(Op.i32Load, 2, HART_FIELDS.exc.offset);
  };

  /** va = rs1 + imm; te = the TLB entry for va; leaves the fast path's condition (the tag matches) on the stack. */
  const tlbLookup = (d: BlockInst, tlb: number, size: number) => {
    pushReg(d.rs1)();
    f.i64Const(BigInt(d.imm));
    f.op(Op.i64Add);
    f.localSet(va);
    f.localGet(va);
    f.i64Const(12n);
    f.op(Op.i64ShrU);
    f.op(Op.i32WrapI64);
    f.i32Const(TLB_ENTRIES - 1);
    f.op(Op.i32And);
    f.i32Const(4); // * TLB_ENTRY_SIZE
    f.op(Op.i32Shl);
    f.localGet(HART);
    f.op(Op.i32Add);
    f.localSet(te);
    f.localGet(te);
    f.mem(Op.i64Load, 3, tlb);
    // the tag is compared with the page of the access's last byte, so an access crossing a page misses
    f.localGet(va);
    if (size > 1) { f.i64Const(BigInt(size - 1)); f.op(Op.i64Add); }
    f.i64Const(12n);
    f.op(Op.i64ShrU);
    f.localGet(key);
    f.op(Op.i64Or);
    f.op(Op.i64Eq);
  };
  const hostAddress = (tlb: number) => {
    f.localGet(va);
    f.localGet(te);
    f.mem(Op.i64Load, 3, tlb + 8);
    f.op(Op.i64Add);
    f.op(Op.i32WrapI64);
  };

  insts.forEach((d, k) => {
    const next = d.pc + BigInt(d.len);
    const load = LOADS.get(d.op);
    const store = STORES.get(d.op);
    const value = VALUE_EMITTERS.get(d.op);
    const cond = BRANCH_EMITTERS.get(d.op);
    const operands = { rs1: pushReg(d.rs1), rs2: pushReg(d.rs2), imm: BigInt(d.imm), pc: d.pc };
    if (value) {
      value(f, operands);
      setRd(d.rd);
    } else if (load) {
      tlbLookup(d, TLB_READ, load.size);
      f.op(Op.if); f.op(I64);
      hostAddress(TLB_READ);
      f.mem(load.op, load.align, 0);
      f.op(Op.else);
      f.localGet(va);
      f.i32Const(load.size);
      f.call(loadSlow);
      if (load.ext !== null) f.op(load.ext);
      excPending();
      f.op(Op.if); f.op(VOID);
      exit(d.pc, k, EXIT_EXC);
      f.op(Op.end);
      f.op(Op.end);
      setRd(d.rd);
    } else if (store) {
      tlbLookup(d, TLB_WRITE, store.size);
      f.op(Op.if); f.op(VOID);
      hostAddress(TLB_WRITE);
      pushReg(d.rs2)();
      f.mem(store.op, store.align, 0);
      f.op(Op.else);
      f.localGet(va);
      f.i32Const(store.size);
      pushReg(d.rs2)();
      f.call(storeSlow);
      excPending();
      f.op(Op.if); f.op(VOID);
      // a store to tohost completed before the hart stopped for the host: it retires, as in run()
      excPending();
      f.i32Const(EXC_STOP);
      f.op(Op.i32Eq);
      f.localGet(HART);
      f.mem(Op.i32Load, 2, HART_FIELDS.stopReason.offset);
      f.i32Const(STOP_HTIF);
      f.op(Op.i32Eq);
      f.op(Op.i32And);
      f.op(Op.if); f.op(VOID);
      exit(next, k + 1, EXIT_EXC);
      f.op(Op.end);
      exit(d.pc, k, EXIT_EXC);
      f.op(Op.end);
      f.op(Op.end);
    } else if (cond) {
      cond(f, operands);
      f.op(Op.if); f.op(VOID);
      exit(d.pc + BigInt(d.imm), k + 1, EXIT_JUMP);
      f.op(Op.end);
    } else if (d.op === OP.JAL) {
      f.i64Const(next);
      setRd(d.rd);
      exit(d.pc + BigInt(d.imm), k + 1, EXIT_JUMP);
    } else if (d.op === OP.JALR) {
      // the target first: rd may be rs1
      const target = f.tempLocal("i64");
      pushReg(d.rs1)();
      f.i64Const(BigInt(d.imm));
      f.op(Op.i64Add);
      f.i64Const(~1n);
      f.op(Op.i64And);
      f.localSet(target);
      f.i64Const(next);
      setRd(d.rd);
      exit({ local: target }, k + 1, EXIT_JUMP);
    } else if (d.op !== OP.FENCE) {
      throw new Error(`op ${d.op} was scanned but has no compiler`);
    }
  });
  if (!(last.op === OP.JAL || last.op === OP.JALR)) exit(endPc, insts.length, EXIT_END);
  else f.op(Op.unreachable); // the jump's exit returned; the function still has to end typed

  m.addFunction([I32], [I32], f, "block");
  return { bytes: m.build(), instructions: insts, endPc };
}

// Whether an op writing rd reads rs2: the generated emitters read it through the operands, so they are asked
// once, with a sink that records nothing.
const RS2_USERS = new Set<number>();
{
  const probe = {
    op() {}, i32Const() {}, i64Const() {}, localGet() {}, localSet() {}, tempLocal: () => 0, releaseLocal() {},
  };
  for (const [op, emit] of VALUE_EMITTERS) emit(probe, { rs1() {}, rs2() { RS2_USERS.add(op); }, imm: 0n, pc: 0n });
}
const usesRs2 = (op: number) => RS2_USERS.has(op);

/** The exports of a hart instance a compiled block imports. */
export interface BlockImports {
  jitLoadSlow: (va: bigint, size: number) => bigint;
  jitStoreSlow: (va: bigint, size: number, v: bigint) => void;
}

/** Instantiates a compiled block against a hart instance on memory; returns its function. */
export function instantiateBlock(module: WebAssembly.Module, memory: WebAssembly.Memory, hart: BlockImports): (hartBase: number) => number {
  const inst = new WebAssembly.Instance(module, {
    env: { memory, jitLoadSlow: hart.jitLoadSlow, jitStoreSlow: hart.jitStoreSlow },
  });
  return inst.exports.block as (hartBase: number) => number;
}

/** A Decoder over the hart's own decoder (its decodeForTest export writes one entry into static data). */
export function hartDecoder(memory: WebAssembly.Memory, decodeForTest: (inst: number) => number): Decoder {
  let dv = new DataView(memory.buffer);
  return (inst: number) => {
    const e = decodeForTest(inst >>> 0);
    if (dv.buffer !== memory.buffer) dv = new DataView(memory.buffer); // the memory grew
    return {
      op: dv.getUint8(e), len: dv.getUint8(e + 1), rd: dv.getUint16(e + 2, true) / 8,
      rs1: dv.getUint16(e + 4, true) / 8, rs2: dv.getUint16(e + 6, true) / 8, imm: dv.getInt32(e + 8, true),
      raw: dv.getUint32(e + 12, true),
    };
  };
}
