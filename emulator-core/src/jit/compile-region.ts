// The region compiler: the code of one guest page reachable from some block starts becomes one WebAssembly
// module, a function per block, the blocks joined by tail calls.
//
// ABI of a compiled region (module imports: env.memory, the VM's shared memory; env.jitExec, the hart instance's
// export of that name; env.table, the hart's function table;
// module exports: each block's function, "b<k>" for block k (blockExportName; blocks in address order), and
// "region"):
//
//   b<k>(hart: i32, done: i32, budget: i32) -> i32        region(hart: i32, entry: i32, budget: i32) -> i32
//
//   hart    the wasm address of the hart's state block (hart-state.mjs)
//   done    the instructions retired so far in this call, not yet added to H.instret: 0 from run(); the blocks
//           pass it on among themselves and into other regions' blocks, and the exit that returns to run() adds it
//   entry   the entry state of the block to start at (CompiledRegion.entryState; H.pc is its first instruction)
//   budget  the most instructions the call may retire; the caller gives at least the entry block's length
//
// The host puts the functions of the blocks that are entered from outside the region in the hart's table, and
// run() and other regions' exits call them there directly; "region" (which finds the block by its entry state) is
// for tests that run a region without a table.
//
// On entry the caller guarantees what run() guarantees before an instruction: H.exc is 0, the TLB keys are
// current (H.keysEpoch == H.translationEpoch, no TLB flush or flush request pending), the code is what the region
// was compiled from, and the page's virtual address still maps to the physical page it was compiled from (the
// region bakes in its virtual pcs for AUIPC, links and exits).
//
// Guest registers stay in the hart state block: each instruction loads its operands there and stores its result
// (x0 reads as 0; a write to x0 is computed and dropped). Regions once kept them in locals across the whole
// region, in one function with a dispatch loop: V8's optimizing compiler then took up to 0.6 s for one region
// (every local live around the loop), which cost seconds of a boot. A function per block keeps each function
// small and straight, and V8 compiles lazily and optimizes only the functions that run often. Loads and stores
// use the same inline TLB fast path as the interpreter (hart.ts, tlbHit); anything else (a miss, a device,
// tohost, a page-crossing access, a fault) leaves the region at the access for run() to do it (EXIT_MISS). They
// once called the hart's slow paths instead: a call in every load and store made V8 keep the block's live values
// in stack slots around it and doubled their machine code, and a miss is rare enough that returning is cheaper.
// FP loads and stores and the AMOs other than min/max take the same fast path; LR, SC, the min/max AMOs and the
// other F and D instructions run through jitExec, the interpreter's own code.
//
// Control: a block whose successor (a branch target, a fall-through, a jump's target) is a block of the region
// tail-calls it with the instructions retired so far, so loops and calls within a page run without returning;
// a JALR goes through $go, which finds the block its target starts (by halfword offset in the page) or leaves.
// A block runs only when all of it fits in the budget left (counted exactly, at a trap too). Interrupts are the
// caller's: the budget bounds how long a call runs, and nothing a region runs changes interrupt enables,
// privilege or translation (it stops before any CSR or system instruction).
//
// Every exit sets H.pc, adds the instructions retired to H.instret, and returns:
//
//   EXIT_END  (0)  pc is where the region's code ends (sequentially, or a branch not taken), or the start of a
//                  block the budget left no room for
//   EXIT_JUMP (1)  a taken branch or a jump left the region: pc is its target
//   EXIT_EXC  (2)  jitExec left H.exc set: a trap (H.excCause/excTval as the interpreter set them, pc at the
//                  faulting instruction, which did not retire). The host finishes it with the hart's
//                  takePendingTrap(), as run() would have. (What jitExec runs touches no device: the FP loads and
//                  stores, which could, are the region's own, and leave at an access the TLB does not map.)
//   EXIT_MISS (3)  a load or store the TLB fast path could not do: pc is at it, not retired. run() interprets it
//                  before it enters compiled code again (it would only miss again).
//
// A block ends at the first branch or jump (compiled, and last), before the first instruction it does not compile
// (system, CSR, illegal: left to the interpreter), before the start of another block (into which it then goes
// on), before a 32-bit instruction that straddles the end of the page, at the page's end, or at 64 instructions
// (JIT_MAX_BLOCK in assembly/jit.ts). Blocks do not overlap.

import { HART_BLOCK, HART_FIELDS } from "../hart-state.ts";
import { OP, VALUE_EMITTERS, BRANCH_EMITTERS } from "./semantics.ts";
import { FunctionBody, ModuleBuilder, I32, I64, Op, VOID, uleb, type MemoryLimits } from "./wasm-module.ts";

export const EXIT_END = 0;
export const EXIT_JUMP = 1;
export const EXIT_EXC = 2;
export const EXIT_MISS = 3;

const TLB_ENTRIES = 8192;
const TLB_ENTRY_SIZE = 16;
const TLB_READ = HART_BLOCK.TLB;
const TLB_WRITE = HART_BLOCK.TLB + TLB_ENTRIES * TLB_ENTRY_SIZE;
const TLB_FETCH = HART_BLOCK.TLB + 2 * TLB_ENTRIES * TLB_ENTRY_SIZE;
/** The hart's lookup of compiled blocks (assembly/jit.ts): its header (epoch, chained count), its table of JIT_SETS
 *  sets of two 32-byte entries {u64 pc, u64 phys, u32 epoch, u32, u32 table index, u32}; the jump cache of
 *  JIT_JUMP_ENTRIES entries {u64 pc, u64 fetchKey, u32 epoch, u32 table index}; the used marks, a byte per table
 *  index modulo JIT_USED_BYTES. */
const JIT_HEADER = 512 * 1024 - 64;
const JIT_TABLE = 512 * 1024;
const JIT_SETS = 8192;
const JIT_JUMPS = 256 * 1024;
const JIT_JUMP_ENTRIES = 4096;
const JIT_USED = 384 * 1024;
const JIT_USED_BYTES = 65536;
const X_SCRATCH = 32; // the decoder's rd for x0
/** JIT_MAX_BLOCK (assembly/jit.ts): the most instructions in a block, the budget a region is entered with at least */
const MAX_BLOCK = 64;
/** the most blocks, and instructions, one function runs in a fall-through chain */
const MAX_CHAIN = 4;
const MAX_CHAIN_INSTRUCTIONS = 48;

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
  /** what to add to a host (wasm) address of RAM to get the guest physical address (RAM_BASE - the layout's
   *  ramOffset): with it, an exit to another page goes on into the compiled block there; without it, every exit
   *  returns to run() */
  ramHostToGuest?: bigint;
  /** the memory import's limits; the hart's own (build.mjs: 32 pages up to 65536, shared) by default */
  memory?: MemoryLimits;
}

const LOADS = new Map<number, { size: number; op: number; align: number }>([
  [OP.LB, { size: 1, op: Op.i64Load8S, align: 0 }],
  [OP.LBU, { size: 1, op: Op.i64Load8U, align: 0 }],
  [OP.LH, { size: 2, op: Op.i64Load16S, align: 1 }],
  [OP.LHU, { size: 2, op: Op.i64Load16U, align: 1 }],
  [OP.LW, { size: 4, op: Op.i64Load32S, align: 2 }],
  [OP.LWU, { size: 4, op: Op.i64Load32U, align: 2 }],
  [OP.LD, { size: 8, op: Op.i64Load, align: 3 }],
]);
const STORES = new Map<number, { size: number; op: number; align: number }>([
  [OP.SB, { size: 1, op: Op.i64Store8, align: 0 }],
  [OP.SH, { size: 2, op: Op.i64Store16, align: 1 }],
  [OP.SW, { size: 4, op: Op.i64Store32, align: 2 }],
  [OP.SD, { size: 8, op: Op.i64Store, align: 3 }],
]);
/** The AMOs a region does itself, with the write TLB's fast path and a wasm atomic read-modify-write (the
 *  interpreter's own, assembly/atomics.ts, does the same): the size and the atomic op (FunctionBody.atomic). LR,
 *  SC and the min/max AMOs go through jitExec. */
const AMOS = new Map<number, { size: number; rmw: number }>([
  [OP.AMOSWAP_W, { size: 4, rmw: 0x41 }], [OP.AMOADD_W, { size: 4, rmw: 0x1e }], [OP.AMOXOR_W, { size: 4, rmw: 0x3a }],
  [OP.AMOAND_W, { size: 4, rmw: 0x2c }], [OP.AMOOR_W, { size: 4, rmw: 0x33 }],
  [OP.AMOSWAP_D, { size: 8, rmw: 0x42 }], [OP.AMOADD_D, { size: 8, rmw: 0x1f }], [OP.AMOXOR_D, { size: 8, rmw: 0x3b }],
  [OP.AMOAND_D, { size: 8, rmw: 0x2d }], [OP.AMOOR_D, { size: 8, rmw: 0x34 }],
]);
/** FLW, FLD, FSW and FSD, done in the region with the TLB's fast path (assembly/hart.ts's own cases): the size. The
 *  decoded fp register is an index from the state block's FREGS. */
const FP_MEMORY = new Map<number, number>([[OP.FLW, 4], [OP.FLD, 8], [OP.FSW, 4], [OP.FSD, 8]]);
/** mstatus.FS (off: an FP instruction is illegal), FS dirty with SD (assembly/csr.ts markFsDirty) */
const MSTATUS_FS = 3n << 13n;
const MSTATUS_FS_DIRTY_SD = (3n << 13n) | (1n << 63n);
/** the NaN-boxing of a single in a 64-bit fp register */
const FP_BOX = 0xffffffff00000000n;
/** A, F and D instructions: a region runs them with the interpreter's own code (the hart's jitExec). */
const isExec = (op: number) => (op >= OP.LR_W && op <= OP.AMOMAXU_D) || (op >= OP.FLW && op <= OP.FCVT_D_S);
const isFpStore = (op: number) => op === OP.FSW || op === OP.FSD;
const isBranch = (op: number) => BRANCH_EMITTERS.has(op);
const endsBlock = (op: number) => isBranch(op) || op === OP.JAL || op === OP.JALR;
const compiles = (op: number) => VALUE_EMITTERS.has(op) || LOADS.has(op) || STORES.has(op) || isExec(op) || op === OP.FENCE || endsBlock(op);

/** A block of a region: its instructions, and where control goes after its last one. */
export interface RegionBlock {
  pc: bigint;
  instructions: BlockInst[];
}

export interface CompiledRegion {
  /** the module's bytes (imports and export: this file's header) */
  bytes: Uint8Array<ArrayBuffer>;
  /** the blocks, in address order (entryState gives the entry state that starts each) */
  blocks: RegionBlock[];
  /** page offsets of the code the region was compiled from: [lo, hi) covers every instruction of every block */
  lo: number;
  hi: number;
  /** instructions compiled */
  instructions: number;
  /** the entry state that starts the block at pc (a block start of the region) */
  entryState(pc: bigint): number;
}

/** The name of the export of the function of block k of a region (CompiledRegion.blocks[k]). */
export const blockExportName = (k: number) => `b${k}`;

export interface RegionOptions extends CompileOptions {
  /** follow direct branches, jumps and fall-throughs within the page from the roots (true by default); false
   *  compiles one block per root */
  follow?: boolean;
  /** the most blocks in one region (default 256) */
  maxBlocks?: number;
  /** the most instructions in one region (default 2048: more than a page can hold) */
  maxRegionInstructions?: number;
  /** name the functions in the module's name section, after the page ("r<pageVa hex>.b<k>"): for profilers */
  names?: boolean;
  /** which of the page's halfwords have been executed (nonzero), as far as the caller knows: a branch target, the
   *  fall-through of a branch, or a call's return point that has not is left out of the region (an exit), so
   *  that the region holds the code that runs rather than all the page's code that might. Without it everything
   *  reachable from the roots is compiled. */
  executed?: Uint8Array;
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

  // The block starts: the roots, then (following) the successors of each block's end, breadth first. A successor
  // reached only by a change of flow (a branch either way, a jump, a return) is followed only if it has run; the
  // straight-line continuation of a block cut at its size limit always is.
  const executed = options.executed;
  const ran = (off: number) => !executed || (off >= 0 && off < 4096 && executed[off >> 1] !== 0);
  const leaders = new Set<number>();
  const queue = roots.filter((t) => (t & ~0xfffn) === pageVa).map((t) => Number(t & 0xfffn));
  const follows = (off: number) => { if (ran(off)) queue.push(off); };
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
      if (isBranch(d.op)) { follows(off + d.imm); follows(next); }
      else if (d.op === OP.JAL) follows(off + d.imm);
      if (links(d)) follows(next);
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
  const execSlow = m.importFunction("env", "jitExec", [I32, I32, I32, I32, I32, I32], []);
  m.importTable("env", "table", 0);
  const REGION_TYPE = m.type([I32, I32, I32], [I32]);
  // Function indices: the blocks', then $exit, $go, $leave and the exported entry.
  const n = blocks.length;
  const firstBlock = execSlow + 1; // the imported functions come first
  const EXIT_FN = firstBlock + n, GO_FN = EXIT_FN + 1, LEAVE_FN = GO_FN + 1;
  const slots = (hi - lo) >> 1;

  blocks.forEach((b, k) => m.addFunction([I32, I32, I32], [I32], blockFunction(b, k), blockExportName(k)));
  m.addFunction([I32, I64, I32, I32], [I32], exitFunction());
  m.addFunction([I32, I32, I32, I32, I64], [I32], goFunction());
  m.addFunction([I32, I64, I32, I32, I32], [I32], leaveFunction());
  m.addFunction([I32, I32, I32], [I32], entryFunction(), "region");
  if (options.names) {
    const p = `r${pageVa.toString(16)}.`;
    blocks.forEach((b, k) => m.nameFunction(firstBlock + k, `${p}${blockExportName(k)}@${(b.pc & 0xfffn).toString(16)}`));
    m.nameFunction(EXIT_FN, `${p}exit`);
    m.nameFunction(GO_FN, `${p}go`);
    m.nameFunction(LEAVE_FN, `${p}leave`);
  }
  return { bytes: m.build(), blocks, lo, hi, instructions, entryState: stateOf };

  /** $exit(hart, pc, retired, code): sets H.pc, adds retired to H.instret, returns code. */
  function exitFunction(): FunctionBody {
    const f = new FunctionBody([I32, I64, I32, I32]);
    f.localGet(0);
    f.localGet(1);
    f.mem(Op.i64Store, 3, HART_FIELDS.pc.offset);
    addRetired(f, 0, 2);
    f.localGet(3);
    return f;
  }

  /** $leave(hart, pc, retired, budget, code): leaves the region for pc, after `retired` instructions of the
   *  call's budget (not yet added to H.instret). When pc starts a compiled block and at least a block's worth of
   *  budget is left, that block goes on with the count and the budget, as if run() had entered it (nothing run()
   *  looks at between regions can have changed: see hart.ts); else H.pc is set, the count added to H.instret and
   *  code returned to run(). The exits call it after their own probe of the jump cache missed: it looks the block
   *  up in the lookup (through the fetch TLB), and fills the jump cache's entry for the next time. */
  function leaveFunction(): FunctionBody {
    const HART = 0, PC = 1, RETIRED = 2, BUDGET = 3, CODE = 4;
    const f = new FunctionBody([I32, I64, I32, I32, I32]);
    const next = f.addLocal(I32), jump = f.addLocal(I32);
    if (options.ramHostToGuest !== undefined) {
      // budget - retired >= JIT_MAX_BLOCK (retired <= budget: the blocks only run within it)
      f.localGet(BUDGET);
      f.localGet(RETIRED);
      f.op(Op.i32Sub);
      f.i32Const(MAX_BLOCK);
      f.op(Op.i32GeS);
      f.op(Op.if); f.op(VOID);
      lookUpBlock(f, HART, PC, next, options.ramHostToGuest);
      f.localGet(next);
      f.op(Op.if); f.op(VOID);
      jumpEntryOffset(f, { local: PC });
      f.localSet(jump);
      f.localGet(jump); f.localGet(PC); f.mem(Op.i64Store, 3, JIT_JUMPS);
      f.localGet(jump); f.localGet(HART); f.mem(Op.i64Load, 3, HART_FIELDS.fetchKey.offset); f.mem(Op.i64Store, 3, JIT_JUMPS + 8);
      f.localGet(jump); f.i32Const(0); f.mem(Op.i32Load, 2, JIT_HEADER); f.mem(Op.i32Store, 2, JIT_JUMPS + 16);
      f.localGet(jump); f.localGet(next); f.mem(Op.i32Store, 2, JIT_JUMPS + 20);
      // mark the index used (the host's eviction spares it once: the jump cache's hits do not mark it)
      f.localGet(next); f.i32Const(JIT_USED_BYTES - 1); f.op(Op.i32And); f.i32Const(1); f.mem(Op.i32Store8, 0, JIT_USED);
      enterBlock(f, HART, () => f.localGet(RETIRED), BUDGET, () => f.localGet(next), REGION_TYPE);
      f.op(Op.end);
      f.op(Op.end);
    }
    addRetired(f, HART, RETIRED);
    f.localGet(HART);
    f.localGet(PC);
    f.mem(Op.i64Store, 3, HART_FIELDS.pc.offset);
    f.localGet(CODE);
    return f;
  }

  /** $go(hart, index, done, budget, pc): enters the block whose dispatch index is index (pc is its address), or,
   *  when no block starts there, leaves with pc (a JALR's target on this page that starts no block). */
  function goFunction(): FunctionBody {
    const f = new FunctionBody([I32, I32, I32, I32, I64]);
    f.op(Op.block); f.op(VOID); // $miss
    for (let i = 0; i < n; i++) { f.op(Op.block); f.op(VOID); }
    f.localGet(1);
    f.op(Op.brTable);
    const target = new Array<number>(slots).fill(n);
    blocks.forEach((b, i) => { target[stateOf(b.pc)] = i; });
    uleb(f.code, slots);
    for (const t of target) uleb(f.code, t);
    uleb(f.code, n);
    for (let k = 0; k < n; k++) {
      f.op(Op.end);
      f.localGet(0);
      f.localGet(2);
      f.localGet(3);
      f.op(Op.returnCall);
      uleb(f.code, firstBlock + k);
    }
    f.op(Op.end); // $miss
    f.localGet(0);
    f.localGet(4);
    f.localGet(2);
    f.localGet(3);
    f.i32Const(EXIT_JUMP);
    f.op(Op.returnCall);
    uleb(f.code, LEAVE_FN);
    return f;
  }

  /** region(hart, entry, budget): the exported entry; entry is the block's dispatch index. */
  function entryFunction(): FunctionBody {
    const f = new FunctionBody([I32, I32, I32]);
    f.localGet(0);
    f.localGet(1);
    f.i32Const(0);
    f.localGet(2);
    // its pc, for $go's miss (not reached: the caller only enters block starts)
    f.i64Const(pageVa + BigInt(lo));
    f.localGet(1);
    f.op(Op.i64ExtendI32U);
    f.i64Const(1n);
    f.op(Op.i64Shl);
    f.op(Op.i64Add);
    f.op(Op.returnCall);
    uleb(f.code, GO_FN);
    return f;
  }

  /** Block k: (hart, done, budget) -> exit code. `done` is what the blocks before it in this call retired. */
  function blockFunction(first: RegionBlock, k0: number): FunctionBody {
    const HART = 0, DONE = 1, BUDGET = 2;
    const f = new FunctionBody([I32, I32, I32]);
    // The function runs block k0 and the blocks it falls through into (after a branch not taken, or on into the
    // next start), up to a size: fewer calls and budget checks in straight-line code. (Those blocks also have
    // functions of their own, for the branches that reach them.)
    const chain = [k0];
    for (let size = first.instructions.length; ;) {
      const b = blocks[chain[chain.length - 1]];
      const last = b.instructions[b.instructions.length - 1];
      if (endsBlock(last.op) && !isBranch(last.op)) break;
      const j = index.get(last.pc + BigInt(last.len));
      if (j === undefined || chain.includes(j) || chain.length === MAX_CHAIN || size + blocks[j].instructions.length > MAX_CHAIN_INSTRUCTIONS) break;
      chain.push(j);
      size += blocks[j].instructions.length;
    }
    let b = first;
    let insts = b.instructions;
    let L = insts.length;
    const hasMemory = chain.some((j) => blocks[j].instructions.some((d) => LOADS.has(d.op) || STORES.has(d.op) || AMOS.has(d.op) || FP_MEMORY.has(d.op)));
    const key = hasMemory ? f.addLocal(I64) : -1;
    const va = hasMemory ? f.addLocal(I64) : -1;
    const te = hasMemory ? f.addLocal(I32) : -1;
    const jumpEntry = f.addLocal(I32);
    // A branch or jump of the chain back to its first block loops within the function instead of calling it.
    const loops = chain.some((j) => {
      const last = blocks[j].instructions[blocks[j].instructions.length - 1];
      return (isBranch(last.op) || last.op === OP.JAL) && last.pc + BigInt(last.imm) === first.pc;
    });

    // The registers the function uses are cached in locals: loaded when an instruction first reads one (always in
    // the function's straight line, never inside a branch, so every path after it has the value). A result goes to
    // its local and, at once, to the state block (write-through): the state block is then current at every
    // instruction, so an exit (a trap, a stop, the budget's end, a jump out) stores nothing. Deferring the stores to
    // the exits made every exit store every register written before it, which multiplied the code of a block with
    // many loads and stores (each has a trap exit) and kept the written values live across the slow-path calls.
    const cache = new Map<number, number>();
    const ensure = (r: number) => {
      if (r === 0 || r === X_SCRATCH || cache.has(r)) return;
      const l = f.addLocal(I64);
      f.localGet(HART);
      f.mem(Op.i64Load, 3, HART_BLOCK.XREGS + 8 * r);
      f.localSet(l);
      cache.set(r, l);
    };

    /** Pushes the instructions retired so far with k more of this block's (the count every way on passes on). */
    const pushDone = (k: number) => {
      f.localGet(DONE);
      if (k) { f.i32Const(k); f.op(Op.i32Add); }
    };
    /** Leaves the region: pc (a constant, or the value of an i64 local), the instructions retired in this block
     *  before the exit, the exit code. */
    const exit = (pcValue: bigint | { local: number }, retiredInBlock: number, code: number) => {
      f.localGet(HART);
      if (typeof pcValue === "bigint") f.i64Const(pcValue); else f.localGet(pcValue.local);
      pushDone(retiredInBlock);
      if (code === EXIT_EXC || retiredInBlock < L) {
        // a trap or a stop, or the budget's end: back to run()
        f.i32Const(code);
        f.op(Op.returnCall);
        uleb(f.code, EXIT_FN);
        return;
      }
      f.localGet(BUDGET);
      f.i32Const(code);
      f.op(Op.returnCall);
      uleb(f.code, LEAVE_FN);
    };
    /** Leaves the region for pc (a constant, or an i64 local) this block having retired all its instructions: first
     *  through the jump cache, here, then through $leave. The cache's probe is repeated at every exit rather than
     *  only in the region's shared $leave so that each exit has an indirect call of its own: from one shared site
     *  the call went to many targets, and the host's branch predictor missed it (a fifth of the shell loop's time
     *  went to $leave, with or without the cache, until the probe moved here). */
    const leave = (pcValue: bigint | { local: number }, code: number) => {
      if (options.ramHostToGuest !== undefined) {
        probeJumpCache(f, HART, pcValue, jumpEntry, () => pushDone(L), BUDGET);
        f.op(Op.if); f.op(VOID);
        enterBlock(f, HART, () => pushDone(L), BUDGET, () => { f.localGet(jumpEntry); f.mem(Op.i32Load, 2, JIT_JUMPS + 20); }, REGION_TYPE);
        f.op(Op.end);
      }
      exit(pcValue, L, code);
    };
    /** Goes on at t, this block having retired all its instructions: into the region's block there, or out. */
    const goTo = (t: bigint, code: number, depth = 0) => {
      const j = index.get(t);
      if (j === undefined) { leave(t, code); return; }
      if (j === k0 && loops) {
        // back to the function's first block: a loop within the function (its registers are reloaded where they
        // were loaded before, from the state block, which every write went through to)
        pushDone(L);
        f.localSet(DONE);
        f.op(Op.br);
        uleb(f.code, depth);
        return;
      }
      f.localGet(HART);
      pushDone(L);
      f.localGet(BUDGET);
      f.op(Op.returnCall);
      uleb(f.code, firstBlock + j);
    };
    /** Goes on at the address in local t (a JALR's target): off the page, out (leave); on it, through $go, to a
     *  block of this page's region or out. */
    const goToDynamic = (t: number) => {
      f.localGet(t);
      f.i64Const(~0xfffn);
      f.op(Op.i64And);
      f.i64Const(pageVa);
      f.op(Op.i64Ne);
      f.op(Op.if); f.op(VOID);
      leave({ local: t }, EXIT_JUMP);
      f.op(Op.end);
      f.localGet(HART);
      // index = ((t & 0xfff) - lo) >> 1 (a negative result is a huge unsigned index: a miss)
      f.localGet(t);
      f.op(Op.i32WrapI64);
      f.i32Const(0xfff);
      f.op(Op.i32And);
      f.i32Const(lo);
      f.op(Op.i32Sub);
      f.i32Const(1);
      f.op(Op.i32ShrS);
      pushDone(L);
      f.localGet(BUDGET);
      f.localGet(t);
      f.op(Op.returnCall);
      uleb(f.code, GO_FN);
    };
    const pushReg = (r: number) => () => {
      if (r === 0) { f.i64Const(0n); return; }
      const l = cache.get(r);
      if (l === undefined) throw new Error(`x${r} read before it was loaded`);
      f.localGet(l);
    };
    const setRd = (rd: number) => {
      if (rd === X_SCRATCH || rd === 0) { f.op(Op.drop); return; }
      forgetPages(rd);
      let l = cache.get(rd);
      if (l === undefined) cache.set(rd, (l = f.addLocal(I64)));
      f.localSet(l);
      f.localGet(HART);
      f.localGet(l);
      f.mem(Op.i64Store, 3, HART_BLOCK.XREGS + 8 * rd);
    };
    const excPending = () => {
      f.localGet(HART);
      f.mem(Op.i32Load, 2, HART_FIELDS.exc.offset);
    };
    /** Leaves the region (pc, the instructions of this block retired before, the code) when the i32 on the stack is
     *  not 0: a rare way out, hinted so. */
    const exitWhen = (pcValue: bigint, retiredInBlock: number, code: number) => {
      f.branchHint(false); f.op(Op.if); f.op(VOID);
      exit(pcValue, retiredInBlock, code);
      f.op(Op.end);
    };
    /** va = rs1 + imm; te = the TLB entry for va; leaves the fast path's condition (the tag matches) on the stack. */
    const tlbLookup = (d: BlockInst, tlb: number, size: number) => {
      pushReg(d.rs1)();
      f.i64Const(BigInt(d.imm));
      f.op(Op.i64Add);
      f.localTee(va);
      f.i64Const(12n);
      f.op(Op.i64ShrU);
      f.op(Op.i32WrapI64);
      f.i32Const(TLB_ENTRIES - 1);
      f.op(Op.i32And);
      f.i32Const(4); // * TLB_ENTRY_SIZE
      f.op(Op.i32Shl);
      f.localGet(HART);
      f.op(Op.i32Add);
      f.localTee(te);
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
    const hostAddress = (tlb: number, keepAddend = -1) => {
      f.localGet(va);
      f.localGet(te);
      f.mem(Op.i64Load, 3, tlb + 8);
      if (keepAddend >= 0) f.localTee(keepAddend);
      f.op(Op.i64Add);
      f.op(Op.i32WrapI64);
    };
    // An access through a base register that an earlier access of the function's straight line went through (the
    // register unchanged since) is most often on the same page (a stack frame, a structure's fields): the earlier
    // access's page offset and TLB addend are kept in locals, and the new access, when it falls in that page, needs
    // neither the TLB's index nor its tag (nothing a region runs changes a translation). Loads follow loads and
    // stores stores: a load after a store would be allowed (a writable page is readable), but the interpreter would
    // have filled the read TLB there, and the hart's state, TLBs included, is the interpreter's after every block.
    // Off that page, the full lookup, leaving the kept page as it was.
    /** by base register and kind (2 * register + 1 for stores) */
    const samePage = new Map<number, { imm: number; offset: number; addend: number }>();
    const forgetPages = (r: number) => { samePage.delete(2 * r); samePage.delete(2 * r + 1); };
    /** Pushes the host address of the access d (size bytes; a store when write), or leaves the region at it. */
    const accessAddress = (d: BlockInst, size: number, write: boolean, i: number) => {
      const tlb = write ? TLB_WRITE : TLB_READ;
      const full = (keep?: { offset: number; addend: number }) => {
        tlbLookup(d, tlb, size);
        f.op(Op.i32Eqz);
        exitWhen(d.pc, i, EXIT_MISS);
        if (keep) { f.localGet(va); f.op(Op.i32WrapI64); f.i32Const(0xfff); f.op(Op.i32And); f.localSet(keep.offset); }
        hostAddress(tlb, keep ? keep.addend : -1);
      };
      const kind = 2 * d.rs1 + (write ? 1 : 0);
      const kept = d.rs1 === 0 ? undefined : samePage.get(kind);
      if (kept) {
        // offset + (imm - kept.imm) in [0, 4096 - size] (unsigned: below 0 wraps high)
        f.localGet(kept.offset);
        f.i32Const(d.imm - kept.imm);
        f.op(Op.i32Add);
        f.i32Const(4096 - size);
        f.op(Op.i32LeU);
        f.branchHint(true); f.op(Op.if); f.op(I32);
        pushReg(d.rs1)();
        f.i64Const(BigInt(d.imm));
        f.op(Op.i64Add);
        f.localGet(kept.addend);
        f.op(Op.i64Add);
        f.op(Op.i32WrapI64);
        f.op(Op.else);
        full();
        f.op(Op.end);
        return;
      }
      if (d.rs1 === 0) { full(); return; }
      const keep = { imm: d.imm, offset: f.addLocal(I32), addend: f.addLocal(I64) };
      full(keep);
      samePage.set(kind, keep);
    };

    if (hasMemory) {
      f.localGet(HART);
      f.mem(Op.i64Load, 3, HART_FIELDS.dataKey.offset);
      f.localSet(key);
    }
    if (loops) {
      // Every register the chain reads is loaded before the loop, so that its locals carry the values around the
      // back edge: reloading them from the state block at the top of every iteration put a store-to-load
      // forwarding (about 5 cycles) on each iteration's dependency chains (a pointer bumped in the loop).
      for (const j of chain) {
        for (const d of blocks[j].instructions) {
          if (readsRs1(d.op)) ensure(d.rs1);
          if (readsRs2(d.op)) ensure(d.rs2);
        }
      }
      f.op(Op.loop); f.op(VOID);
    }
    chain.forEach((j, c) => {
      b = blocks[j];
      insts = b.instructions;
      L = insts.length;
      const inChain = c + 1 < chain.length;
      if (c > 0) {
        // the block before retired all of its instructions
        pushDone(blocks[chain[c - 1]].instructions.length);
        f.localSet(DONE);
      }
      // The budget: the block runs only when all of it fits in what the caller allowed.
      pushDone(L);
      f.localGet(BUDGET);
      f.op(Op.i32GtU);
      exitWhen(b.pc, 0, EXIT_END);

      insts.forEach((d, i) => {
        const after = d.pc + BigInt(d.len);
        const load = LOADS.get(d.op);
        const store = STORES.get(d.op);
        const amo = AMOS.get(d.op);
        const fpSize = FP_MEMORY.get(d.op);
        const value = VALUE_EMITTERS.get(d.op);
        const cond = BRANCH_EMITTERS.get(d.op);
        const operands = { rs1: pushReg(d.rs1), rs2: pushReg(d.rs2), imm: BigInt(d.imm), pc: d.pc };
        if (readsRs1(d.op)) ensure(d.rs1);
        if (readsRs2(d.op)) ensure(d.rs2);
        if (value) {
          value(f, operands);
          setRd(d.rd);
        } else if (load) {
          accessAddress(d, load.size, false, i);
          f.mem(load.op, load.align, 0);
          setRd(d.rd);
        } else if (store) {
          accessAddress(d, store.size, true, i);
          pushReg(d.rs2)();
          f.mem(store.op, store.align, 0);
        } else if (fpSize) {
          // FS off: the interpreter raises the illegal instruction
          f.localGet(HART);
          f.mem(Op.i64Load, 3, HART_FIELDS.mstatus.offset);
          f.i64Const(MSTATUS_FS);
          f.op(Op.i64And);
          f.op(Op.i64Eqz);
          exitWhen(d.pc, i, EXIT_MISS);
          if (isFpStore(d.op)) {
            accessAddress(d, fpSize, true, i);
            f.localGet(HART);
            f.mem(Op.i64Load, 3, HART_BLOCK.FREGS + 8 * d.rs2);
            f.mem(fpSize === 8 ? Op.i64Store : Op.i64Store32, fpSize === 8 ? 3 : 2, 0);
          } else {
            const v = f.tempLocal("i64");
            accessAddress(d, fpSize, false, i);
            if (fpSize === 8) f.mem(Op.i64Load, 3, 0);
            else { f.mem(Op.i64Load32U, 2, 0); f.i64Const(FP_BOX); f.op(Op.i64Or); }
            f.localSet(v);
            f.localGet(HART);
            f.localGet(v);
            f.mem(Op.i64Store, 3, HART_BLOCK.FREGS + 8 * d.rd);
            f.releaseLocal(v);
            // FS dirty (and SD), as markFsDirty: it almost always is already
            f.localGet(HART);
            f.mem(Op.i64Load, 3, HART_FIELDS.mstatus.offset);
            f.i64Const(MSTATUS_FS);
            f.op(Op.i64And);
            f.i64Const(MSTATUS_FS);
            f.op(Op.i64Ne);
            f.branchHint(false); f.op(Op.if); f.op(VOID);
            f.localGet(HART);
            f.localGet(HART);
            f.mem(Op.i64Load, 3, HART_FIELDS.mstatus.offset);
            f.i64Const(MSTATUS_FS_DIRTY_SD);
            f.op(Op.i64Or);
            f.mem(Op.i64Store, 3, HART_FIELDS.mstatus.offset);
            f.op(Op.end);
          }
        } else if (amo) {
          // (an AMO has no offset; one not naturally aligned is the interpreter's to raise: wasm's atomics would
          // trap on it)
          tlbLookup({ ...d, imm: 0 }, TLB_WRITE, amo.size);
          f.localGet(va);
          f.i64Const(BigInt(amo.size - 1));
          f.op(Op.i64And);
          f.op(Op.i64Eqz);
          f.op(Op.i32And);
          f.op(Op.i32Eqz);
          exitWhen(d.pc, i, EXIT_MISS);
          hostAddress(TLB_WRITE);
          pushReg(d.rs2)();
          if (amo.size === 4) f.op(Op.i32WrapI64);
          f.atomic(amo.rmw, amo.size === 4 ? 2 : 3, 0);
          if (amo.size === 4) f.op(Op.i64ExtendI32S);
          setRd(d.rd);
        } else if (isExec(d.op)) {
          // the interpreter's code runs it on the hart state block (current: write-through), and its rd (an x
          // register for some) is read from there again after
          f.i32Const(d.op);
          f.i32Const(8 * d.rd);
          f.i32Const(8 * d.rs1);
          f.i32Const(8 * d.rs2);
          f.i32Const(d.imm);
          f.i32Const(d.raw | 0);
          f.call(execSlow);
          excPending();
          exitWhen(d.pc, i, EXIT_EXC);
          // (rd may be an x register it wrote: the state block has it. In a loop its local is refreshed in place,
          // since the top of the loop reads that local; else it is loaded again where it is next read.)
          forgetPages(d.rd);
          const l = cache.get(d.rd);
          if (loops && l !== undefined) {
            f.localGet(HART);
            f.mem(Op.i64Load, 3, HART_BLOCK.XREGS + 8 * d.rd);
            f.localSet(l);
          } else {
            cache.delete(d.rd);
          }
        } else if (cond) {
          cond(f, operands);
          f.op(Op.if); f.op(VOID);
          goTo(d.pc + BigInt(d.imm), EXIT_JUMP, 1);
          f.op(Op.end);
          if (!inChain) goTo(after, EXIT_END); // else the next block of the chain follows
        } else if (d.op === OP.JAL) {
          f.i64Const(after);
          setRd(d.rd);
          goTo(d.pc + BigInt(d.imm), EXIT_JUMP);
        } else if (d.op === OP.JALR) {
          // the target first: rd may be rs1
          const target = f.addLocal(I64);
          pushReg(d.rs1)();
          f.i64Const(BigInt(d.imm));
          f.op(Op.i64Add);
          f.i64Const(~1n);
          f.op(Op.i64And);
          f.localSet(target);
          f.i64Const(after);
          setRd(d.rd);
          goToDynamic(target);
        } else if (d.op !== OP.FENCE) {
          throw new Error(`op ${d.op} was scanned but has no compiler`);
        }
      });
      const last = insts[L - 1];
      // the block ended before an instruction it does not compile, before another block's start, at the page's
      // end or at its size limit: it goes on at the next instruction (the chain's next block, or another function)
      if (!endsBlock(last.op) && !inChain) goTo(last.pc + BigInt(last.len), EXIT_END);
    });
    if (loops) {
      f.op(Op.end);
      f.op(Op.unreachable); // (every way out of the loop is a tail call)
    }
    return f;
  }
}

/** Goes on into another region's block: counts the hop (the lookup's header: jit.calls.chained) and tail-calls the
 *  table index pushSlot pushes, with the count pushRetired pushes and the budget (regionType: the blocks' type). */
function enterBlock(f: FunctionBody, hart: number, pushRetired: () => void, budget: number, pushSlot: () => void,
  regionType: number): void {
  f.i32Const(0); f.i32Const(0); f.mem(Op.i64Load, 3, JIT_HEADER + 8); f.i64Const(1n); f.op(Op.i64Add);
  f.mem(Op.i64Store, 3, JIT_HEADER + 8);
  f.localGet(hart);
  pushRetired();
  f.localGet(budget);
  pushSlot();
  f.op(Op.returnCallIndirect);
  uleb(f.code, regionType);
  uleb(f.code, 0); // the table
}

/** Pushes the offset of pc's entry in the jump cache, from JIT_JUMPS: ((u32)(pc >> 1) & (entries - 1)) * 32. */
function jumpEntryOffset(f: FunctionBody, pc: bigint | { local: number }): void {
  if (typeof pc === "bigint") { f.i32Const(Number((pc >> 1n) & BigInt(JIT_JUMP_ENTRIES - 1)) << 5); return; }
  f.localGet(pc.local); f.i64Const(1n); f.op(Op.i64ShrU); f.op(Op.i32WrapI64);
  f.i32Const(JIT_JUMP_ENTRIES - 1); f.op(Op.i32And); f.i32Const(5); f.op(Op.i32Shl);
}

/** Pushes whether the jump cache (assembly/jit.ts) holds a block for pc (a constant or an i64 local) in the
 *  current context and epoch, with a block's worth of the budget left after `pushRetired`'s count; leaves the
 *  entry's address, less JIT_JUMPS, in local `entry` (its table index is at JIT_JUMPS + 20 from there). */
function probeJumpCache(f: FunctionBody, hart: number, pc: bigint | { local: number }, entry: number,
  pushRetired: () => void, budget: number): void {
  jumpEntryOffset(f, pc);
  f.localTee(entry);
  f.mem(Op.i64Load, 3, JIT_JUMPS);
  if (typeof pc === "bigint") f.i64Const(pc); else f.localGet(pc.local);
  f.op(Op.i64Eq);
  f.localGet(entry); f.mem(Op.i64Load, 3, JIT_JUMPS + 8);
  f.localGet(hart); f.mem(Op.i64Load, 3, HART_FIELDS.fetchKey.offset);
  f.op(Op.i64Eq);
  f.op(Op.i32And);
  f.localGet(entry); f.mem(Op.i32Load, 2, JIT_JUMPS + 16);
  f.i32Const(0); f.mem(Op.i32Load, 2, JIT_HEADER);
  f.op(Op.i32Eq);
  f.op(Op.i32And);
  // budget - retired >= JIT_MAX_BLOCK (retired <= budget: the blocks only run within it)
  f.localGet(budget);
  pushRetired();
  f.op(Op.i32Sub);
  f.i32Const(MAX_BLOCK);
  f.op(Op.i32GeS);
  f.op(Op.i32And);
}

/** Leaves in local `next` the table index of the compiled block that starts at the i64 in local `pc`, or 0 when
 *  there is none (not compiled, not yet hot, stale), or pc's page is not in the fetch TLB (run() then translates
 *  it, and may trap): the lookup jitProbe (assembly/jit.ts) does, without counting or asking for a compile (run()
 *  does that when the region returns). Inline in each region's $leave rather than a call into the hart's
 *  instance, which cost about a third of a hop between pages. */
function lookUpBlock(f: FunctionBody, hart: number, pc: number, next: number, ramHostToGuest: bigint): void {
  const te = f.addLocal(I32), phys = f.addLocal(I64), set = f.addLocal(I32);
  f.i32Const(0);
  f.localSet(next);
  f.op(Op.block); f.op(VOID); // $out
  /** Pushes ((u32)(pc >> shift) & (count - 1)) << log2Size: the byte offset of pc's entry in a table. */
  const entryOffset = (shift: bigint, count: number, log2Size: number) => {
    f.localGet(pc);
    f.i64Const(shift);
    f.op(Op.i64ShrU);
    f.op(Op.i32WrapI64);
    f.i32Const(count - 1);
    f.op(Op.i32And);
    f.i32Const(log2Size);
    f.op(Op.i32Shl);
  };
  // the fetch TLB's entry for pc, in the current context: phys = pc + its addend + ramHostToGuest
  f.localGet(hart);
  entryOffset(12n, TLB_ENTRIES, 4);
  f.op(Op.i32Add);
  f.localTee(te);
  f.mem(Op.i64Load, 3, TLB_FETCH);
  f.localGet(pc);
  f.i64Const(12n);
  f.op(Op.i64ShrU);
  f.localGet(hart);
  f.mem(Op.i64Load, 3, HART_FIELDS.fetchKey.offset);
  f.op(Op.i64Or);
  f.op(Op.i64Ne);
  f.op(Op.brIf); uleb(f.code, 0);
  f.localGet(pc);
  f.localGet(te);
  f.mem(Op.i64Load, 3, TLB_FETCH + 8);
  f.op(Op.i64Add);
  f.i64Const(ramHostToGuest);
  f.op(Op.i64Add);
  f.localSet(phys);
  // the set of pc: (((pc >> 1) ^ (pc >> 14)) & (JIT_SETS - 1)) * 64 past JIT_TABLE (assembly/jit.ts setOf)
  f.localGet(pc); f.i64Const(1n); f.op(Op.i64ShrU);
  f.localGet(pc); f.i64Const(14n); f.op(Op.i64ShrU);
  f.op(Op.i64Xor);
  f.op(Op.i32WrapI64);
  f.i32Const(JIT_SETS - 1); f.op(Op.i32And); f.i32Const(6); f.op(Op.i32Shl);
  f.localSet(set);
  for (const way of [0, 32]) {
    const at = JIT_TABLE + way;
    f.op(Op.block); f.op(VOID); // $no: not this way
    const unless = (cmp: () => void) => { cmp(); f.op(Op.brIf); uleb(f.code, 0); };
    unless(() => { f.localGet(set); f.mem(Op.i64Load, 3, at); f.localGet(pc); f.op(Op.i64Ne); });
    unless(() => { f.localGet(set); f.mem(Op.i64Load, 3, at + 8); f.localGet(phys); f.op(Op.i64Ne); });
    unless(() => { f.localGet(set); f.mem(Op.i32Load, 2, at + 16); f.i32Const(0); f.mem(Op.i32Load, 2, JIT_HEADER); f.op(Op.i32Ne); });
    // a table index: neither 0 (not compiled yet) nor JIT_NONE, 0xffffffff (slot + 1 < 2 unsigned)
    unless(() => {
      f.localGet(set); f.mem(Op.i32Load, 2, at + 24); f.localTee(next);
      f.i32Const(1); f.op(Op.i32Add); f.i32Const(2); f.op(Op.i32LtU);
    });
    f.op(Op.br); uleb(f.code, 1); // $out, with next
    f.op(Op.end); // $no
    f.i32Const(0);
    f.localSet(next);
  }
  f.op(Op.end); // $out
}

/** H.instret += the i32 in local `retired` (hart: the local holding the state block's address). */
function addRetired(f: FunctionBody, hart: number, retired: number): void {
  f.localGet(hart);
  f.localGet(hart);
  f.mem(Op.i64Load, 3, HART_FIELDS.instret.offset);
  f.localGet(retired);
  f.op(Op.i64ExtendI32U);
  f.op(Op.i64Add);
  f.mem(Op.i64Store, 3, HART_FIELDS.instret.offset);
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
const RS1_USERS = new Set<number>();
{
  const probe = {
    op() {}, i32Const() {}, i64Const() {}, localGet() {}, localSet() {}, tempLocal: () => 0, releaseLocal() {},
  };
  for (const [op, emit] of VALUE_EMITTERS) emit(probe, { rs1() { RS1_USERS.add(op); }, rs2() {}, imm: 0n, pc: 0n });
}
/** Whether the compiled form of op reads rs1 / rs2 (what jitExec runs reads its registers from the state block). */
const readsRs1 = (op: number) => RS1_USERS.has(op) || LOADS.has(op) || STORES.has(op) || AMOS.has(op) || FP_MEMORY.has(op) || isBranch(op) || op === OP.JALR;
const readsRs2 = (op: number) => usesRs2(op) || STORES.has(op) || AMOS.has(op) || isBranch(op);

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
  jitExec: (op: number, rd: number, rs1: number, rs2: number, imm: number, raw: number) => void;
  table: WebAssembly.Table;
}

export type RegionFunction = (hartBase: number, entry: number, budget: number) => number;

/** Instantiates a compiled region against a hart instance on memory; returns its function. */
export function instantiateRegion(module: WebAssembly.Module, memory: WebAssembly.Memory, hart: RegionImports): RegionFunction {
  const inst = new WebAssembly.Instance(module, {
    env: { memory, jitExec: hart.jitExec, table: hart.table },
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
