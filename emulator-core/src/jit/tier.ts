// The host's side of the JIT (src/jit/README.md): when run() stops with STOP_JIT, the block it names is compiled
// (compile-block.ts), instantiated against the hart's own instance and installed in the hart module's function
// table, and its index recorded in the hart's lookup (assembly/jit.ts), through which run() enters it.
//
// Budget: at most maxModules compiled blocks are held per hart (browsers kill a tab that makes too many wasm
// instances; v86 caps its table at 900). Table indices are reused in a clock order over that range: the hand
// passes over a block that ran since it last came by (once: it clears the mark), and evicts the first that did not
// (its lookup entry is dropped first, so it is never entered once the index holds another block). A Linux boot
// runs several thousand blocks often enough to compile; the clock keeps the ones still in use. Blocks made stale
// by an invalidation are no longer in the lookup (the lookup's epoch no longer matches) and are the first taken.

import { RAM_BASE } from "../layout.ts";
import { compileBlock, hartDecoder, type Decoder } from "./compile-block.ts";

export interface JitOptions {
  /** executions of a block start before it is compiled (1: everything, on first execution; default 50) */
  threshold?: number;
  /** compiled blocks held at once (default 900) */
  maxModules?: number;
}

/** The hart exports the tier uses (assembly/index.ts). */
export interface JitHartExports {
  memory?: WebAssembly.Memory;
  table: WebAssembly.Table;
  setJit(on: number, threshold: number): number;
  jitRequestPc(): bigint;
  jitRequestPhys(): bigint;
  jitRequestSteps(): number;
  jitInstall(pc: bigint, phys: bigint, slot: number): void;
  jitEvict(pc: bigint, phys: bigint, slot: number): void;
  jitUsed(pc: bigint, phys: bigint, slot: number): number;
  jitInvalidations(): number;
  jitCallCount(): bigint;
  jitRetiredCount(): bigint;
  jitLoadSlow(va: bigint, size: number): bigint;
  jitStoreSlow(va: bigint, size: number, v: bigint): void;
  decodeForTest(inst: number): number;
  JIT_NONE: WebAssembly.Global;
}

export interface JitStats {
  /** blocks compiled and installed */
  compiled: number;
  /** requests for a block start whose first instruction is not compiled (interpreted from then on) */
  notCompiled: number;
  /** stale blocks installed again, their code unchanged, instead of being compiled again */
  reinstalled: number;
  /** blocks evicted to reuse their table index */
  evicted: number;
  /** instructions in the compiled blocks */
  instructions: number;
  /** host time spent compiling (building the module, WebAssembly compile, instantiate, install), ms */
  compileMs: number;
}

export const DEFAULT_JIT_THRESHOLD = 50;
export const DEFAULT_JIT_MAX_MODULES = 900;

export class JitTier {
  readonly threshold: number;
  readonly maxModules: number;
  readonly stats: JitStats = { compiled: 0, notCompiled: 0, reinstalled: 0, evicted: 0, instructions: 0, compileMs: 0 };
  private readonly decode: Decoder;
  /** the first table index of the range blocks use (the hart module's own functions come before it) */
  private readonly base: number;
  private next = 0;
  /** the block start each index of the range holds (for eviction) */
  private readonly heldPc: (bigint | undefined)[];
  private readonly heldPhys: bigint[];
  /** the bytes each index's block was compiled from */
  private readonly heldCode: Uint8Array[];
  /** the table index (less base) holding the block of each "pc:phys" */
  private readonly byStart = new Map<string, number>();
  private readonly none: number;

  constructor(private readonly ex: JitHartExports, private readonly memory: WebAssembly.Memory, private readonly ramOffset: number,
    private readonly ramBytes: number, opts: JitOptions = {}) {
    this.threshold = Math.max(1, Math.floor(opts.threshold ?? DEFAULT_JIT_THRESHOLD));
    this.maxModules = Math.max(1, Math.floor(opts.maxModules ?? DEFAULT_JIT_MAX_MODULES));
    this.decode = hartDecoder(memory, (inst) => ex.decodeForTest(inst));
    this.none = (ex.JIT_NONE.value as number) >>> 0;
    this.base = ex.table.length;
    ex.table.grow(this.maxModules);
    this.heldPc = new Array(this.maxModules).fill(undefined);
    this.heldPhys = new Array(this.maxModules).fill(0n);
    this.heldCode = new Array(this.maxModules).fill(new Uint8Array(0));
    if (!ex.setJit(1, this.threshold)) throw new Error("the JIT needs hart 0 of its memory (its lookup has room for one hart)");
  }

  /** Turns the JIT off for good (run() no longer counts or enters blocks). */
  disable(): void { this.ex.setJit(0, this.threshold); }

  /** run() stopped with STOP_JIT: compiles the block it asked for and installs it (or marks its start as not
   *  compiled). Returns the budget steps run() spent before stopping. */
  compileRequested(): number {
    const t0 = performance.now();
    const ex = this.ex;
    const pc = ex.jitRequestPc(), phys = ex.jitRequestPhys();
    const off = Number(phys - RAM_BASE) & ~0xfff;
    if (off < 0 || off + 4096 > this.ramBytes) throw new Error(`JIT request for 0x${phys.toString(16)}, outside RAM`);
    const page = new Uint8Array(this.memory.buffer, this.ramOffset + off, 4096);
    const key = `${pc}:${phys}`;
    const held = this.byStart.get(key);
    const at = Number(pc & 0xfffn);
    if (held !== undefined && sameBytes(this.heldCode[held], page, at)) {
      // An invalidation (FENCE.I, a host write) made the block stale, or it lost its lookup entry, but its code is
      // what it was compiled from: the block is the same, so it is installed again without compiling. (A block
      // depends on nothing but its virtual pc and its instructions' bytes.)
      ex.jitInstall(pc, phys, this.base + held);
      this.stats.reinstalled++;
    } else {
      const block = compileBlock(page, pc, this.decode);
      if (!block) {
        ex.jitInstall(pc, phys, this.none);
        this.stats.notCompiled++;
      } else {
        const instance = new WebAssembly.Instance(new WebAssembly.Module(block.bytes), {
          env: { memory: this.memory, jitLoadSlow: ex.jitLoadSlow, jitStoreSlow: ex.jitStoreSlow },
        });
        const k = held ?? this.clockHand();
        const slot = this.base + k;
        const old = this.heldPc[k];
        if (old !== undefined) {
          ex.jitEvict(old, this.heldPhys[k], slot);
          this.byStart.delete(`${old}:${this.heldPhys[k]}`);
          if (held === undefined) this.stats.evicted++;
        }
        ex.table.set(slot, instance.exports.block as (...args: unknown[]) => unknown);
        this.heldPc[k] = pc;
        this.heldPhys[k] = phys;
        this.heldCode[k] = page.slice(at, at + Number(block.endPc - pc));
        this.byStart.set(key, k);
        ex.jitInstall(pc, phys, slot);
        this.stats.compiled++;
        this.stats.instructions += block.instructions.length;
      }
    }
    this.stats.compileMs += performance.now() - t0;
    return ex.jitRequestSteps();
  }

  /** The table index to reuse: the first from the hand on that is free or whose block has not run since the hand
   *  last passed (at most one turn: by then every mark is cleared). */
  private clockHand(): number {
    for (let i = 0; i <= this.maxModules; i++) {
      const k = this.next;
      this.next = (k + 1) % this.maxModules;
      const pc = this.heldPc[k];
      if (pc === undefined || !this.ex.jitUsed(pc, this.heldPhys[k], this.base + k)) return k;
    }
    return this.next;
  }

  /** Compiled blocks entered from run() so far, and the instructions they retired. */
  get calls(): { blocks: number; instructions: number } {
    return { blocks: Number(this.ex.jitCallCount()), instructions: Number(this.ex.jitRetiredCount()) };
  }

  /** Invalidations (FENCE.I, host writes, restores) so far: each made every compiled block stale. */
  get invalidations(): number { return this.ex.jitInvalidations(); }
}

/** Whether page[at..] starts with the bytes code holds. */
function sameBytes(code: Uint8Array, page: Uint8Array, at: number): boolean {
  if (at + code.length > page.length) return false;
  for (let i = 0; i < code.length; i++) if (code[i] !== page[at + i]) return false;
  return true;
}
