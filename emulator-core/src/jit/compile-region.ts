// The region compiler: the code of one guest page reachable from some block starts becomes one WebAssembly
// function, its blocks joined by wasm control flow.
//
// ABI of a compiled region (module imports: env.memory, the VM's shared memory; env.jitLoadSlow and
// env.jitStoreSlow, the hart instance's exports of the same names; module export: "region"):
//
//   region(hart: i32, entry: i32, budget: i32) -> i32
//
//   hart    the wasm address of the hart's state block (hart-state.mjs)
//   entry   the index of the block to start at (CompiledRegion.blocks; H.pc is that block's first instruction)
//   budget  the most instructions the call may retire; the caller gives at least the entry block's length
//
// On entry the caller guarantees what run() guarantees before an instruction: H.exc is 0, the TLB keys are
// current (H.keysEpoch == H.translationEpoch, no TLB flush or flush request pending), the code is what the region
// was compiled from, and the page's virtual address still maps to the physical page it was compiled from (the
// region bakes in its virtual pcs for AUIPC, links and exits).
//
// The region keeps every guest register it names in an i64 local (all loaded on entry; x0 is the constant 0; a
// write to x0 is computed and dropped, as the scratch slot the interpreter writes is not architectural), reads
// H.dataKey once, and does loads and stores through the same inline TLB fast path as the interpreter (hart.ts,
// tlbHit), calling the hart's slow paths on a miss and checking H.exc after them.
//
// Control: a dispatch loop (br_table on the block index) enters the blocks; a block whose successor (a branch
// target, a fall-through, a jump's target) is a block of the region goes on there (falling into the next
// block's code when it follows in the function, else through the dispatch), so loops within a page run without
// leaving the function. A block runs only when all of it fits in the budget left (the instructions retired so
// far are counted per block, and exactly at a trap). Interrupts are the caller's: the budget bounds how long a
// call runs, and nothing a region runs changes interrupt enables (it stops before any CSR or system instruction).
//
// Every exit stores the registers the region writes, sets H.pc, adds the instructions retired to H.instret,
// and returns:
//
//   EXIT_END  (0)  pc is where the region's code ends (sequentially, or a branch not taken), or the start of a
//                  block the budget left no room for
//   EXIT_JUMP (1)  a taken branch or a jump left the region: pc is its target
//   EXIT_EXC  (2)  a slow path left H.exc set: a trap (H.excCause/excTval as the slow path set them, pc at the
//                  faulting instruction, which did not retire) or a stop (STOP_MMIO: pc at the access, which did
//                  not complete; STOP_HTIF: the store completed and retired, pc is past it). The host finishes it
//                  with the hart's takePendingTrap(), as run() would have.
//
// A block ends at the first branch or jump (compiled, and last), before the first instruction it does not compile
// (system, CSR, FP, atomic, illegal: left to the interpreter), before a 32-bit instruction that straddles the end
// of the page, at the page's end, or at 64 instructions (JIT_MAX_BLOCK in assembly/jit.ts). Blocks may overlap
// (a branch into the middle of another block starts a block of its own).

import { HART_BLOCK, HART_FIELDS } from "../hart-state.ts";
import { OP, VALUE_EMITTERS, BRANCH_EMITTERS } from "./semantics.ts";
import { FunctionBody, ModuleBuilder, I32, I64, Op, VOID, uleb, type MemoryLimits } from "./wasm-module.ts";

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
  /** the module's bytes: a region of this one block (entry 0) */
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

/** A block of a region: its instructions, and where control goes after its last one. */
export interface RegionBlock {
  pc: bigint;
  instructions: BlockInst[];
}

export interface CompiledRegion {
  /** the module's bytes (imports env.memory, env.jitLoadSlow, env.jitStoreSlow; exports "region") */
  bytes: Uint8Array<ArrayBuffer>;
  /** the blocks, in address order; a block's index is the entry state that starts it */
  blocks: RegionBlock[];
  /** page offsets of the code the region was compiled from: [lo, hi) covers every instruction of every block */
  lo: number;
  hi: number;
  /** instructions compiled (a block that overlaps another counts its own) */
  instructions: number;
  /** the entry state that starts the block at pc (a block start of the region) */
  entryState(pc: bigint): number;
}

export interface RegionOptions extends CompileOptions {
  /** follow direct branches, jumps and fall-throughs within the page from the roots (true by default); false
   *  compiles one block per root */
  follow?: boolean;
  /** the most blocks in one region (default 256) */
  maxBlocks?: number;
  /** the most instructions in one region (default 2048: more than a page can hold) */
  maxRegionInstructions?: number;
}

/** Whether a jump links (a call: its return point is likely to start a block). */
const links = (d: BlockInst) => (d.op === OP.JAL || d.op === OP.JALR) && d.rd !== 0 && d.rd !== X_SCRATCH;

/** The blocks reachable within the page from the roots: each root, and (following) the targets of direct
 *  branches and jumps, fall-throughs, and the return points of calls, in page. Blocks do not overlap: a block
 *  ends where another starts (and falls through into it), so every instruction is compiled once. */
export function discoverRegion(page: Uint8Array, pageVa: bigint, roots: readonly bigint[], decode: Decoder,
  options: RegionOptions = {}): RegionBlock[] {
  const follow = options.follow ?? true;
  const maxBlocks = options.maxBlocks ?? 256;
  const maxInstructions = options.maxRegionInstructions ?? 2048;
  const blockLimit = Math.min(options.maxInstructions ?? 64, 64);
  // Each offset is decoded once: the instruction there, or null where nothing is compiled.
  const decoded = new Map<number, BlockInst | null>();
  const at = (off: number): BlockInst | null => {
    let d = decoded.get(off);
    if (d !== undefined) return d;
    d = null;
    if (off >= 0 && off + 2 <= 4096) {
      const lo = page[off] | (page[off + 1] << 8);
      let word = lo;
      // a 32-bit instruction whose upper half is on the next page (whose mapping may differ) is not compiled
      if ((lo & 3) !== 3 || off + 4 <= 4096) {
        if ((lo & 3) === 3) word = (lo | (page[off + 2] << 16) | (page[off + 3] << 24)) >>> 0;
        const x = decode(word);
        if (compiles(x.op)) d = { op: x.op, len: x.len, rd: x.rd, rs1: x.rs1, rs2: x.rs2, imm: x.imm, raw: x.raw, pc: pageVa + BigInt(off) };
      }
    }
    decoded.set(off, d);
    return d;
  };

  // The block starts: the roots, then (following) the successors of each block's end, breadth first.
  const leaders = new Set<number>();
  const queue = roots.filter((t) => (t & ~0xfffn) === pageVa).map((t) => Number(t & 0xfffn));
  let scanned = 0;
  for (let i = 0; i < queue.length && leaders.size < maxBlocks && scanned < maxInstructions; i++) {
    const start = queue[i];
    if (leaders.has(start) || !at(start)) continue;
    leaders.add(start);
    if (!follow) continue;
    // walk to the end of the block from start (stopping at a known start, whose successors are queued already)
    let off = start;
    for (let count = 0; ;) {
      const d = at(off)!;
      count++;
      scanned++;
      const next = off + d.len;
      if (isBranch(d.op)) queue.push(off + d.imm, next);
      else if (d.op === OP.JAL) queue.push(off + d.imm);
      if (links(d)) queue.push(next);
      if (endsBlock(d.op)) break;
      if (next >= 4096 || !at(next)) break;
      if (count === blockLimit) { queue.push(next); break; }
      if (leaders.has(next)) break;
      off = next;
    }
  }

  // The blocks: from each start to its end, or up to the next start (into which it falls through).
  const starts = [...leaders].sort((a, b) => a - b);
  return starts.map((start) => {
    const insts: BlockInst[] = [];
    for (let off = start; ;) {
      const d = at(off)!;
      insts.push(d);
      off += d.len;
      if (endsBlock(d.op) || insts.length === blockLimit || off >= 4096 || !at(off) || leaders.has(off)) break;
    }
    return { pc: pageVa + BigInt(start), instructions: insts };
  });
}

/** Compiles the region of the page at pageVa reached from roots (page: the page's 4 KiB); null when no root's
 *  first instruction is compiled. The function's ABI is in this file's header. */
export function compileRegion(page: Uint8Array, pageVa: bigint, roots: readonly bigint[], decode: Decoder,
  options: RegionOptions = {}): CompiledRegion | null {
  const blocks = discoverRegion(page, pageVa, roots, decode, options);
  if (!blocks.length) return null;
  const index = new Map<bigint, number>(blocks.map((b, i) => [b.pc, i]));
  let lo = 4096, hi = 0, instructions = 0;
  for (const b of blocks) {
    const last = b.instructions[b.instructions.length - 1];
    lo = Math.min(lo, Number(b.pc & 0xfffn));
    hi = Math.max(hi, Number((last.pc & 0xfffn) + BigInt(last.len)));
    instructions += b.instructions.length;
  }
  /** The entry state of the block at pc: its dispatch index. */
  const stateOf = (pc: bigint) => (Number(pc & 0xfffn) - lo) >> 1;

  const m = new ModuleBuilder();
  m.importMemory("env", "memory", options.memory ?? { min: 32, max: 65536, shared: true });
  const loadSlow = m.importFunction("env", "jitLoadSlow", [I64, I32], [I64]);
  const storeSlow = m.importFunction("env", "jitStoreSlow", [I64, I32, I64], []);
  const HART = 0, ENTRY = 1, BUDGET = 2;
  const f = new FunctionBody([I32, I32, I32]);

  // Registers: a local for each one the region names, loaded on entry (every one: a register one path writes
  // and another does not is stored back at every exit, so it must hold the guest's value on every path).
  const regLocal = new Map<number, number>();
  let hasMemory = false;
  for (const b of blocks) {
    for (const d of b.instructions) {
      const rs = [d.rs1];
      if (STORES.has(d.op) || isBranch(d.op) || (VALUE_EMITTERS.has(d.op) && usesRs2(d.op))) rs.push(d.rs2);
      for (const r of [...rs, d.rd]) if (r !== 0 && r !== X_SCRATCH && !regLocal.has(r)) regLocal.set(r, f.addLocal(I64));
      if (LOADS.has(d.op) || STORES.has(d.op)) hasMemory = true;
    }
  }
  const regs = [...regLocal.keys()].sort((a, b) => a - b);
  const written = new Set<number>();
  for (const b of blocks) for (const d of b.instructions) if (d.rd !== 0 && d.rd !== X_SCRATCH) written.add(d.rd);
  for (const r of regs) {
    f.localGet(HART);
    f.mem(Op.i64Load, 3, HART_BLOCK.XREGS + 8 * r);
    f.localSet(regLocal.get(r)!);
  }
  const key = hasMemory ? f.addLocal(I64) : -1;
  const va = hasMemory ? f.addLocal(I64) : -1;
  const te = hasMemory ? f.addLocal(I32) : -1;
  if (hasMemory) {
    f.localGet(HART);
    f.mem(Op.i64Load, 3, HART_FIELDS.dataKey.offset);
    f.localSet(key);
  }
  const done = f.addLocal(I32); // instructions retired by the blocks finished so far in this call
  const next = f.addLocal(I32); // the dispatch's index: (the block's page offset - lo) / 2
  const dispatchPc = f.addLocal(I64); // the target of a JALR going through the dispatch
  const exitPc = f.addLocal(I64);
  const exitRetired = f.addLocal(I32);
  const exitCode = f.addLocal(I32);
  f.localGet(ENTRY);
  f.localSet(next);

  // Structured control: block $exit { loop $dispatch { block $miss { block $B(n-1) { ... block $B0 { br_table }
  // code0 } code1 ... } code(n-1) } miss } } epilogue. The br_table is indexed by halfword offset from lo: a block
  // start goes to its block's code, anything else to $miss, which leaves with pc = dispatchPc (only a JALR's
  // target can be anything else). `depth` counts the labels opened inside the current block's code, so a branch
  // to $dispatch from block k's code is br (n-k + depth), and to $exit one more.
  const n = blocks.length;
  let k = 0;
  let depth = 0;
  const open = (kind: number, type: number) => { f.op(kind); f.op(type); depth++; };
  const close = () => { f.op(Op.end); depth--; };
  const brDispatch = () => { f.op(Op.br); uleb(f.code, n - k + depth); };
  const brExit = () => { f.op(Op.br); uleb(f.code, n - k + 1 + depth); };

  /** Leaves the region: pc (a constant, or an i64 local), the instructions retired in the current block before
   *  the exit (added to `done`), the exit code. The epilogue stores the registers. */
  const exit = (pcValue: bigint | { local: number }, retiredInBlock: number, code: number) => {
    if (typeof pcValue === "bigint") f.i64Const(pcValue); else f.localGet(pcValue.local);
    f.localSet(exitPc);
    f.localGet(done);
    if (retiredInBlock) { f.i32Const(retiredInBlock); f.op(Op.i32Add); }
    f.localSet(exitRetired);
    f.i32Const(code);
    f.localSet(exitCode);
    brExit();
  };
  /** Goes on at t after a block whose instructions all retired (`done` already counts them): into the region's
   *  block there (falling into the next block's code when it is the next in the function), or out. */
  const goTo = (t: bigint, code: number) => {
    const j = index.get(t);
    if (j === undefined) { exit(t, 0, code); return; }
    if (j === k + 1 && depth === 0) return; // the next block's code follows this one's
    f.i32Const(stateOf(blocks[j].pc));
    f.localSet(next);
    brDispatch();
  };
  /** Goes on at the address in local t (a JALR's target): through the dispatch when it is on this page, where a
   *  block start enters its block and anything else leaves by $miss; else out. */
  const goToDynamic = (t: number) => {
    f.localGet(t);
    f.localSet(dispatchPc);
    // next = ((t & 0xfff) - lo) >> 1 (a negative result is a huge unsigned index: $miss), or -1 off the page
    f.localGet(t);
    f.op(Op.i32WrapI64);
    f.i32Const(0xfff);
    f.op(Op.i32And);
    f.i32Const(lo);
    f.op(Op.i32Sub);
    f.i32Const(1);
    f.op(Op.i32ShrS);
    f.i32Const(-1);
    f.localGet(t);
    f.i64Const(~0xfffn);
    f.op(Op.i64And);
    f.i64Const(pageVa);
    f.op(Op.i64Eq);
    f.op(Op.select);
    f.localSet(next);
    brDispatch();
  };

  f.op(Op.block); f.op(VOID); // $exit
  f.op(Op.loop); f.op(VOID); // $dispatch
  f.op(Op.block); f.op(VOID); // $miss
  for (let i = 0; i < n; i++) { f.op(Op.block); f.op(VOID); }
  f.localGet(next);
  f.op(Op.brTable);
  const slots = (hi - lo) >> 1;
  const target = new Array<number>(slots).fill(n); // $miss
  blocks.forEach((b, i) => { target[stateOf(b.pc)] = i; });
  uleb(f.code, slots);
  for (const t of target) uleb(f.code, t);
  uleb(f.code, n); // the default: $miss

  const pushReg = (r: number) => () => { if (r === 0) f.i64Const(0n); else f.localGet(regLocal.get(r)!); };
  const setRd = (rd: number) => {
    if (rd === X_SCRATCH || rd === 0) { f.op(Op.drop); return; }
    f.localSet(regLocal.get(rd)!);
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

  for (k = 0; k < n; k++) {
    f.op(Op.end); // $Bk: block k's code follows
    const b = blocks[k];
    const insts = b.instructions;
    const L = insts.length;
    // The budget: a block runs only when all of it fits in what the caller allowed.
    f.localGet(done);
    f.i32Const(L);
    f.op(Op.i32Add);
    f.localGet(BUDGET);
    f.op(Op.i32GtU);
    open(Op.if, VOID);
    exit(b.pc, 0, EXIT_END);
    close();

    insts.forEach((d, i) => {
      const after = d.pc + BigInt(d.len);
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
        open(Op.if, I64);
        hostAddress(TLB_READ);
        f.mem(load.op, load.align, 0);
        f.op(Op.else);
        f.localGet(va);
        f.i32Const(load.size);
        f.call(loadSlow);
        if (load.ext !== null) f.op(load.ext);
        excPending();
        open(Op.if, VOID);
        exit(d.pc, i, EXIT_EXC);
        close();
        close();
        setRd(d.rd);
      } else if (store) {
        tlbLookup(d, TLB_WRITE, store.size);
        open(Op.if, VOID);
        hostAddress(TLB_WRITE);
        pushReg(d.rs2)();
        f.mem(store.op, store.align, 0);
        f.op(Op.else);
        f.localGet(va);
        f.i32Const(store.size);
        pushReg(d.rs2)();
        f.call(storeSlow);
        excPending();
        open(Op.if, VOID);
        // a store to tohost completed before the hart stopped for the host: it retires, as in run()
        excPending();
        f.i32Const(EXC_STOP);
        f.op(Op.i32Eq);
        f.localGet(HART);
        f.mem(Op.i32Load, 2, HART_FIELDS.stopReason.offset);
        f.i32Const(STOP_HTIF);
        f.op(Op.i32Eq);
        f.op(Op.i32And);
        open(Op.if, VOID);
        exit(after, i + 1, EXIT_EXC);
        close();
        exit(d.pc, i, EXIT_EXC);
        close();
        close();
      } else if (cond) {
        cond(f, operands);
        f.localGet(done);
        f.i32Const(L);
        f.op(Op.i32Add);
        f.localSet(done);
        open(Op.if, VOID);
        goTo(d.pc + BigInt(d.imm), EXIT_JUMP);
        close();
        goTo(after, EXIT_END);
      } else if (d.op === OP.JAL) {
        f.i64Const(after);
        setRd(d.rd);
        f.localGet(done);
        f.i32Const(L);
        f.op(Op.i32Add);
        f.localSet(done);
        goTo(d.pc + BigInt(d.imm), EXIT_JUMP);
      } else if (d.op === OP.JALR) {
        // the target first: rd may be rs1
        const target = f.tempLocal("i64");
        pushReg(d.rs1)();
        f.i64Const(BigInt(d.imm));
        f.op(Op.i64Add);
        f.i64Const(~1n);
        f.op(Op.i64And);
        f.localSet(target);
        f.i64Const(after);
        setRd(d.rd);
        f.localGet(done);
        f.i32Const(L);
        f.op(Op.i32Add);
        f.localSet(done);
        goToDynamic(target);
      } else if (d.op !== OP.FENCE) {
        throw new Error(`op ${d.op} was scanned but has no compiler`);
      }
    });
    const last = insts[L - 1];
    if (!endsBlock(last.op)) {
      // the block ended before an instruction it does not compile, at the page's end or at its size limit
      f.localGet(done);
      f.i32Const(L);
      f.op(Op.i32Add);
      f.localSet(done);
      goTo(last.pc + BigInt(last.len), EXIT_END);
    }
    // A block whose code does not fall into the next one's has branched away above; the end of the last block's
    // code falls out of the dispatch loop only if it fell through, which goTo never leaves it to do.
  }
  f.op(Op.unreachable); // every block's code ends in a branch (to the dispatch or the exit) or falls into the next
  f.op(Op.end); // $miss: a JALR's target that starts no block of the region
  k = n - 1; // (the depths below are those of the last block's code, one label further out)
  depth = -1;
  exit({ local: dispatchPc }, 0, EXIT_JUMP);
  f.op(Op.end); // $dispatch
  f.op(Op.end); // $exit
  for (const r of [...written].sort((a, b) => a - b)) {
    f.localGet(HART);
    f.localGet(regLocal.get(r)!);
    f.mem(Op.i64Store, 3, HART_BLOCK.XREGS + 8 * r);
  }
  f.localGet(HART);
  f.localGet(exitPc);
  f.mem(Op.i64Store, 3, HART_FIELDS.pc.offset);
  f.localGet(HART);
  f.localGet(HART);
  f.mem(Op.i64Load, 3, HART_FIELDS.instret.offset);
  f.localGet(exitRetired);
  f.op(Op.i64ExtendI32U);
  f.op(Op.i64Add);
  f.mem(Op.i64Store, 3, HART_FIELDS.instret.offset);
  f.localGet(exitCode);

  m.addFunction([I32, I32, I32], [I32], f, "region");
  return { bytes: m.build(), blocks, lo, hi, instructions, entryState: stateOf };
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

/** Compiles one block at pc alone (a region of one block that follows nothing): for tests that compare a block
 *  with the interpreter. */
export function compileBlock(page: Uint8Array, pc: bigint, decode: Decoder, options: CompileOptions = {}): CompiledBlock | null {
  const r = compileRegion(page, pc & ~0xfffn, [pc], decode, { ...options, follow: false });
  if (!r) return null;
  const insts = r.blocks[0].instructions;
  const last = insts[insts.length - 1];
  return { bytes: r.bytes, instructions: insts, endPc: last.pc + BigInt(last.len) };
}

/** The exports of a hart instance a compiled region imports. */
export interface RegionImports {
  jitLoadSlow: (va: bigint, size: number) => bigint;
  jitStoreSlow: (va: bigint, size: number, v: bigint) => void;
}

export type RegionFunction = (hartBase: number, entry: number, budget: number) => number;

/** Instantiates a compiled region against a hart instance on memory; returns its function. */
export function instantiateRegion(module: WebAssembly.Module, memory: WebAssembly.Memory, hart: RegionImports): RegionFunction {
  const inst = new WebAssembly.Instance(module, {
    env: { memory, jitLoadSlow: hart.jitLoadSlow, jitStoreSlow: hart.jitStoreSlow },
  });
  return inst.exports.region as RegionFunction;
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
