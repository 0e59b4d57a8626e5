// The host's side of the JIT (src/jit/README.md): when run() stops with STOP_JIT, the code of the page the hot block
// start is on is compiled into one region (compile-region.ts): every block reachable within the page from the hot
// starts seen there so far. The region is instantiated against the hart's own instance and installed in the hart
// module's function table, and each of its block starts is recorded in the hart's lookup (assembly/jit.ts) with
// its table index and entry state, through which run() enters it. A new hot start on a page whose region does
// not hold it compiles the page's region again, with the new start among its roots, into the same table index.
//
// Budget: at most maxModules regions are held per hart (browsers kill a tab that makes too many wasm instances;
// v86 caps its table at 900). Table indices are reused in a clock order over that range: the hand passes over a
// region one of whose blocks ran since it last came by (once: it clears the marks), and evicts the first that did
// not (its lookup entries are dropped first, so it is never entered once the index holds another region).
// Regions made stale by an invalidation (FENCE.I, host writes: every region at once) are installed again without
// compiling when the bytes they were compiled from are unchanged.

import { RAM_BASE } from "../layout.ts";
import { compileRegion, hartDecoder, type Decoder } from "./compile-region.ts";

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
  jitInstall(pc: bigint, phys: bigint, slot: number, state: number): void;
  jitEvict(pc: bigint, phys: bigint, slot: number): void;
  jitUsed(pc: bigint, phys: bigint, slot: number): number;
  jitInvalidations(): number;
  jitCallCount(): bigint;
  jitRetiredCount(): bigint;
  jitLoadSlow(va: bigint, size: number): bigint;
  jitStoreSlow(va: bigint, size: number, v: bigint): void;
  jitExec(op: number, rd: number, rs1: number, rs2: number, imm: number, raw: number): void;
  decodeForTest(inst: number): number;
  JIT_NONE: WebAssembly.Global;
}

export interface JitStats {
  /** regions compiled and installed (a page compiled again for a new start counts again) */
  compiled: number;
  /** requests for a block start whose first instruction is not compiled (interpreted from then on) */
  notCompiled: number;
  /** stale regions installed again, their code unchanged, instead of being compiled again */
  reinstalled: number;
  /** regions evicted to reuse their table index */
  evicted: number;
  /** instructions in the regions compiled (each compilation counts all of its region's) */
  instructions: number;
  /** bytes of WebAssembly compiled */
  codeBytes: number;
  /** host time spent compiling (building the module, WebAssembly compile, instantiate, install), ms */
  compileMs: number;
}

/** A compiled region held at one table index: its page, the starts it was compiled from, its blocks. */
interface Held {
  key: string;
  pageVa: bigint;
  pagePhys: bigint;
  /** the block starts of the region, and the entry state of each */
  starts: bigint[];
  states: number[];
  /** the bytes [lo, hi) of the page it was compiled from */
  lo: number;
  code: Uint8Array;
  /** jitInvalidations() when its starts were last installed: they are stale once that moves */
  epoch: number;
  /** the wasm bytes of its module */
  bytes: number;
}

export const DEFAULT_JIT_THRESHOLD = 50;
export const DEFAULT_JIT_MAX_MODULES = 900;

export class JitTier {
  readonly threshold: number;
  readonly maxModules: number;
  readonly stats: JitStats = { compiled: 0, notCompiled: 0, reinstalled: 0, evicted: 0, instructions: 0, codeBytes: 0, compileMs: 0 };
  private readonly decode: Decoder;
  /** the first table index of the range regions use (the hart module's own functions come before it) */
  private readonly base: number;
  private next = 0;
  /** the region each index of the range holds */
  private readonly held: (Held | undefined)[];
  /** the index (less base) holding the region of each "pageVa:pagePhys" */
  private readonly byPage = new Map<string, number>();
  /** the hot starts seen on each page ("pageVa:pagePhys"), kept while its region is held */
  private readonly roots = new Map<string, Set<bigint>>();
  private readonly none: number;

  constructor(private readonly ex: JitHartExports, private readonly memory: WebAssembly.Memory, private readonly ramOffset: number,
    private readonly ramBytes: number, opts: JitOptions = {}) {
    this.threshold = Math.max(1, Math.floor(opts.threshold ?? DEFAULT_JIT_THRESHOLD));
    this.maxModules = Math.max(1, Math.floor(opts.maxModules ?? DEFAULT_JIT_MAX_MODULES));
    this.decode = hartDecoder(memory, (inst) => ex.decodeForTest(inst));
    this.none = (ex.JIT_NONE.value as number) >>> 0;
    this.base = ex.table.length;
    ex.table.grow(this.maxModules);
    this.held = new Array(this.maxModules).fill(undefined);
    if (!ex.setJit(1, this.threshold)) throw new Error("the JIT needs hart 0 of its memory (its lookup has room for one hart)");
  }

  /** Turns the JIT off for good (run() no longer counts or enters blocks). */
  disable(): void { this.ex.setJit(0, this.threshold); }

  /** Regions held now, and the bytes of WebAssembly they were compiled to. */
  get resident(): { regions: number; codeBytes: number } {
    let regions = 0, codeBytes = 0;
    for (const h of this.held) if (h) { regions++; codeBytes += h.bytes; }
    return { regions, codeBytes };
  }

  /** run() stopped with STOP_JIT: compiles (or installs again) the region of the page holding the block start it
   *  asked for, or marks the start as not compiled. Returns the budget steps run() spent before stopping. */
  compileRequested(): number {
    const t0 = performance.now();
    const ex = this.ex;
    const pc = ex.jitRequestPc(), phys = ex.jitRequestPhys();
    const off = Number(phys - RAM_BASE) & ~0xfff;
    if (off < 0 || off + 4096 > this.ramBytes) throw new Error(`JIT request for 0x${phys.toString(16)}, outside RAM`);
    const page = new Uint8Array(this.memory.buffer, this.ramOffset + off, 4096);
    const pageVa = pc & ~0xfffn, pagePhys = phys & ~0xfffn;
    const key = `${pageVa}:${pagePhys}`;
    const k = this.byPage.get(key);
    const h = k === undefined ? undefined : this.held[k];
    if (h && h.epoch !== ex.jitInvalidations() && h.starts.includes(pc) && sameBytes(h.code, page, h.lo)) {
      // An invalidation made the region stale, but its code is what it was compiled from: the region is the same
      // (it depends on nothing but its page's virtual address and its bytes), so it is installed again.
      this.install(k!, h);
      this.stats.reinstalled++;
    } else {
      let roots = this.roots.get(key);
      if (!roots) this.roots.set(key, (roots = new Set()));
      roots.add(pc);
      const tA = performance.now();
      const region = compileRegion(page, pageVa, [...roots], this.decode);
      const G = globalThis as any; G.__tb = (G.__tb ?? 0) + performance.now() - tA;
      if (!region || !region.blocks.some((b) => b.pc === pc)) {
        roots.delete(pc);
        ex.jitInstall(pc, phys, this.none, 0);
        this.stats.notCompiled++;
      } else {
        const tB = performance.now();
        const mod = new WebAssembly.Module(region.bytes);
        G.__tm = (G.__tm ?? 0) + performance.now() - tB;
        const instance = new WebAssembly.Instance(mod, {
          env: { memory: this.memory, jitLoadSlow: ex.jitLoadSlow, jitStoreSlow: ex.jitStoreSlow, jitExec: ex.jitExec },
        });
        G.__ti = (G.__ti ?? 0) + performance.now() - tB;
        const slotIndex = k ?? this.clockHand();
        this.evict(slotIndex, k !== undefined);
        ex.table.set(this.base + slotIndex, instance.exports.region as (...args: unknown[]) => unknown);
        const fresh: Held = {
          key, pageVa, pagePhys, starts: region.blocks.map((b) => b.pc), states: region.blocks.map((b) => region.entryState(b.pc)), lo: region.lo,
          code: page.slice(region.lo, region.hi), epoch: 0, bytes: region.bytes.length,
        };
        this.held[slotIndex] = fresh;
        this.byPage.set(key, slotIndex);
        this.install(slotIndex, fresh);
        this.stats.compiled++;
        this.stats.instructions += region.instructions;
        this.stats.codeBytes += region.bytes.length;
      }
    }
    this.stats.compileMs += performance.now() - t0;
    return ex.jitRequestSteps();
  }

  /** Records every block start of the region at index k in the hart's lookup. */
  private install(k: number, h: Held): void {
    const physOf = (pc: bigint) => h.pagePhys | (pc & 0xfffn);
    h.starts.forEach((pc, i) => this.ex.jitInstall(pc, physOf(pc), this.base + k, h.states[i]));
    h.epoch = this.ex.jitInvalidations();
  }

  /** Drops the region at index k from the lookup (its page's roots go too unless it is being compiled again). */
  private evict(k: number, recompiling: boolean): void {
    const h = this.held[k];
    if (!h) return;
    for (const pc of h.starts) this.ex.jitEvict(pc, h.pagePhys | (pc & 0xfffn), this.base + k);
    this.held[k] = undefined;
    this.byPage.delete(h.key);
    if (!recompiling) {
      this.roots.delete(h.key);
      this.stats.evicted++;
    }
  }

  /** Whether a block of the region at index k ran since the hand last passed (clears the marks). */
  private used(k: number): boolean {
    const h = this.held[k];
    if (!h) return false;
    let any = false;
    for (const pc of h.starts) if (this.ex.jitUsed(pc, h.pagePhys | (pc & 0xfffn), this.base + k)) any = true;
    return any;
  }

  /** The table index to reuse: the first from the hand on that is free or whose region has not run since the
   *  hand last passed (at most one turn: by then every mark is cleared). */
  private clockHand(): number {
    for (let i = 0; i <= this.maxModules; i++) {
      const k = this.next;
      this.next = (k + 1) % this.maxModules;
      if (!this.held[k] || !this.used(k)) return k;
    }
    return this.next;
  }

  /** Compiled regions entered from run() so far, and the instructions they retired. */
  get calls(): { blocks: number; instructions: number } {
    return { blocks: Number(this.ex.jitCallCount()), instructions: Number(this.ex.jitRetiredCount()) };
  }

  /** Invalidations (FENCE.I, host writes, restores) so far: each made every compiled region stale. */
  get invalidations(): number { return this.ex.jitInvalidations(); }
}

/** Whether page[at..] starts with the bytes code holds. */
function sameBytes(code: Uint8Array, page: Uint8Array, at: number): boolean {
  if (at + code.length > page.length) return false;
  for (let i = 0; i < code.length; i++) if (code[i] !== page[at + i]) return false;
  return true;
}
