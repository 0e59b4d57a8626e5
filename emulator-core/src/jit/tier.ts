// The host's side of the JIT (src/jit/README.md): when run() stops with STOP_JIT, the code of the page the hot block
// start is on is compiled into one region (compile-region.ts): every block reachable within the page from the hot
// starts seen there so far. The region is instantiated against the hart's own instance; the function of each hot
// start's block goes in the hart module's function table, and the start is recorded in the hart's lookup
// (assembly/jit.ts) with that table index, through which run() and other regions' exits call the block directly.
// Another block of the region that becomes hot (entered
// from outside it: a return point, a function called from another page) is recorded when asked for; a new hot
// start the region does not hold compiles the page's region again, with it among its roots, into the same index.
//
// Budgets: at most maxModules regions are held per hart (browsers kill a tab that makes too many wasm instances;
// v86 caps its table at 900), and at most maxCodeBytes bytes of WebAssembly (the code V8 makes of them grows with
// it: a VM's code memory is bounded). Table indices are reused in a clock order over that range: the hand passes
// over a region one of whose blocks ran since it last came by (once: it clears the marks), and evicts the first that
// did not (its lookup entries are dropped first, so it is never entered once the index holds another region). A
// region that would take the held bytes over their budget has the hand evict regions until it fits.
// The regions of a page written by a device, or by the guest before a FENCE.I, are dropped (dropRamPage,
// dropWrittenPages). Regions made stale by an invalidation of everything (host writes, restores) are installed
// again without compiling when the bytes they were compiled from are unchanged.

import { DECODED_ENTRY_BYTES, RAM_BASE } from "../layout.ts";
import { blockExportName, hartDecoder } from "./compile-region.ts";
import { RegionBuilder, type RegionBuilt, type RegionCompiler, type RegionJob } from "./region-compiler.ts";

export interface JitOptions {
  /** executions of a block start before its page's region is compiled (1: on first execution; default
   *  DEFAULT_JIT_THRESHOLD: a region costs about a millisecond to build and more to optimize, worth it for code that
   *  runs often) */
  threshold?: number;
  /** compiled regions held at once (default 900) */
  maxModules?: number;
  /** bytes of WebAssembly held at once over all regions (default DEFAULT_JIT_MAX_CODE_BYTES) */
  maxCodeBytes?: number;
  /** name each region's functions in a name section ("r<page>.b<k>", "r<page>.leave", ...) so that a profiler
   *  (perf with node --perf-basic-prof, DevTools) tells them apart; off by default (it adds bytes to every module).
   *  In Node, TABVISOR_JIT_NAMES=1 turns it on. */
  names?: boolean;
  /** builds regions off the VM's thread (region-compiler.ts); without one, a region is built when it is asked
   *  for, in run()'s stop */
  compiler?: RegionCompiler;
  /** instructions the hart retires before the JIT starts (default 0: at once). Until then run() interprets with
   *  the JIT off: no lookups, no counting (a Linux machine's default: DEFAULT_JIT_START_AFTER). */
  startAfter?: number;
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
  jitUsed(slot: number): number;
  jitInvalidations(): number;
  jitCallCount(): bigint;
  jitRetiredCount(): bigint;
  jitExec(op: number, rd: number, rs1: number, rs2: number, imm: number, raw: number): void;
  jitChainCount(): bigint;
  markCodePage(page: number): void;
  /** where RAM page `page`'s decoded entries are (16 bytes a halfword, the op first, 0 where nothing ran), or 0 */
  jitDecodedEntries(page: number): number;
  /** FENCE.I's pages: the count of pages written since the last one whose regions must go (codeWrittenPage) */
  fenceI(): number;
  codeWrittenPage(i: number): number;
  clearCodeWrites(): void;
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
  /** regions evicted to keep the held code within maxCodeBytes */
  evictedForCode: number;
  /** regions dropped because their page was written: by a device (DMA), or by the guest before a FENCE.I */
  dropped: number;
  /** instructions in the regions compiled (each compilation counts all of its region's) */
  instructions: number;
  /** bytes of WebAssembly compiled */
  codeBytes: number;
  /** host time spent compiling (building the module, WebAssembly compile, instantiate, install), ms */
  compileMs: number;
  /** of which: finding the blocks and building the module's bytes */
  buildMs: number;
  /** WebAssembly.Module (V8 validates it and compiles functions lazily, when they first run) */
  moduleMs: number;
  /** WebAssembly.Instance */
  instantiateMs: number;
  /** regions asked of the compiler off this thread (JitOptions.compiler), and its time there (build and module) */
  offThread: number;
  offThreadMs: number;
  /** regions built off this thread and dropped: their page changed while they were built */
  discarded: number;
  /** builds that failed off this thread (a bug: the starts are interpreted) */
  buildErrors: number;
}

/** A compiled region held at one table index: its page, the starts it was compiled from, its blocks. */
interface Held {
  key: string;
  pageVa: bigint;
  pagePhys: bigint;
  /** the block starts of the region, in address order (as its blocks) */
  starts: bigint[];
  /** the region's instance (its blocks' functions are its exports) */
  instance: WebAssembly.Instance;
  /** the table index holding the function of each start entered from outside the region */
  slots: Map<bigint, number>;
  /** the bytes [lo, hi) of the page it was compiled from */
  lo: number;
  code: Uint8Array;
  /** jitInvalidations() when its starts were last installed: they are stale once that moves */
  epoch: number;
  /** the wasm bytes of its module */
  bytes: number;
}

/** Executions of a block start before it is compiled, for kernel code (assembly/hart.ts USER_WEIGHT: user code is
 *  compiled after a thirtieth of it, 1000). */
export const DEFAULT_JIT_THRESHOLD = 30_000;
/** What a Linux machine (machine.ts) retires before its JIT starts. The default guest boots to its prompt in about
 *  56 million instructions of code that mostly runs a few times: the JIT only cost a boot. Counting block starts
 *  made run() about 8% slower (its lookups and loop probes) and what a boot compiled did not pay for itself (a boot
 *  through the page: 0.32-0.34 s with the interpreter, 0.38-0.40 s with the JIT from the first instruction). The
 *  programs run after it are compiled as before (the shell loop's time did not move). A machine built to be
 *  restored (Machine.blank: a snapshot, a template, a fork, a migration) starts its JIT at once. */
export const DEFAULT_JIT_START_AFTER = 60_000_000;
export const DEFAULT_JIT_MAX_MODULES = 900;
/** The held code's default budget: a Linux boot followed by bench:linux's shell loop, sha256 and gzip ends holding
 *  111 regions, 2.7 MB of WebAssembly (V8's machine code for it is larger still), so this is room for about three
 *  such working sets before the least used code goes. */
export const DEFAULT_JIT_MAX_CODE_BYTES = 8 * 1024 * 1024;

export class JitTier {
  readonly threshold: number;
  readonly maxModules: number;
  readonly maxCodeBytes: number;
  /** JitOptions.startAfter */
  readonly startAfter: number;
  readonly names: boolean;
  readonly stats: JitStats = { compiled: 0, notCompiled: 0, reinstalled: 0, evicted: 0, evictedForCode: 0, dropped: 0, instructions: 0, codeBytes: 0, compileMs: 0, buildMs: 0, moduleMs: 0, instantiateMs: 0, offThread: 0, offThreadMs: 0, discarded: 0, buildErrors: 0 };
  /** builds regions on this thread when there is no compiler (JitOptions.compiler) */
  private readonly builder: RegionBuilder;
  /** table indices free for block functions (the hart module's own functions come before them all) */
  private readonly freeSlots: number[] = [];
  private next = 0;
  /** the region each index of the range holds */
  private readonly held: (Held | undefined)[];
  /** the index (less base) holding the region of each "pageVa:pagePhys" */
  private readonly byPage = new Map<string, number>();
  /** the indices of the regions held per RAM page (guest physical, from RAM's start, in pages): more than one when
   *  the page is mapped at more than one virtual address */
  private readonly ramPages = new Map<number, Set<number>>();
  /** the hot starts seen on each page ("pageVa:pagePhys"), kept while its region is held */
  private readonly roots = new Map<string, Set<bigint>>();
  private readonly none: number;
  /** regions held, and their bytes of WebAssembly */
  private heldRegions = 0;
  private heldBytes = 0;
  /** builds off this thread (JitOptions.compiler) under way, by page; `again`: roots came since it was asked */
  private readonly building = new Map<string, { again: boolean }>();
  private jobs = 0;
  private readonly compiler: RegionCompiler | undefined;
  private readonly ramHostToGuest: bigint;
  private disabled = false;
  /** the instret at which the JIT starts (JitOptions.startAfter), while it has not: run() interprets alone */
  private startAt: bigint | undefined;

  constructor(private readonly ex: JitHartExports, private readonly memory: WebAssembly.Memory, private readonly ramOffset: number,
    private readonly ramBytes: number, opts: JitOptions = {}) {
    this.threshold = Math.max(1, Math.floor(opts.threshold ?? DEFAULT_JIT_THRESHOLD));
    this.maxModules = Math.max(1, Math.floor(opts.maxModules ?? DEFAULT_JIT_MAX_MODULES));
    this.maxCodeBytes = Math.max(1, Math.floor(opts.maxCodeBytes ?? DEFAULT_JIT_MAX_CODE_BYTES));
    this.compiler = opts.compiler;
    this.ramHostToGuest = RAM_BASE - BigInt(ramOffset);
    this.names = opts.names ?? (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.TABVISOR_JIT_NAMES === "1";
    this.builder = new RegionBuilder(hartDecoder(memory, (inst) => ex.decodeForTest(inst)));
    this.none = (ex.JIT_NONE.value as number) >>> 0;
    this.growTable(this.maxModules);
    this.held = new Array(this.maxModules).fill(undefined);
    if (!ex.setJit(1, this.threshold)) throw new Error("the JIT needs hart 0 of its memory (its lookup has room for one hart)");
    this.startAfter = Math.max(0, Math.floor(opts.startAfter ?? 0));
    if (this.startAfter > 0) {
      this.startAt = BigInt(this.startAfter);
      ex.setJit(0, this.threshold);
    }
  }

  /** The JIT waits for the hart to retire JitOptions.startAfter instructions (Hart.run calls startIfDue). */
  get waiting(): boolean { return this.startAt !== undefined; }

  /** Turns counting and compiling on once the hart's instret has reached JitOptions.startAfter. */
  startIfDue(instret: bigint): void {
    if (this.startAt === undefined || instret < this.startAt) return;
    this.startAt = undefined;
    if (!this.disabled) this.ex.setJit(1, this.threshold);
  }

  /** Turns the JIT off for good (run() no longer counts or enters blocks). */
  disable(): void {
    this.disabled = true;
    this.startAt = undefined;
    this.ex.setJit(0, this.threshold);
  }

  /** A device wrote RAM page `page` (counted from RAM's start): the regions compiled from it go (their starts are
   *  counted afresh, and compiled again from the new code once hot). */
  dropRamPage(page: number): void {
    const onPage = this.ramPages.get(page);
    if (onPage) for (const k of [...onPage]) this.evict(k, "written");
  }

  /** run() retired a FENCE.I after the guest stored into pages that held code (assembly/code-pages.ts): their
   *  regions go, as for a device's write; every other region stays. */
  dropWrittenPages(): void {
    const n = this.ex.fenceI();
    for (let i = 0; i < n; i++) this.dropRamPage(this.ex.codeWrittenPage(i));
    this.ex.clearCodeWrites();
  }

  /** Regions held now, and the bytes of WebAssembly they were compiled to. */
  get resident(): { regions: number; codeBytes: number } {
    return { regions: this.heldRegions, codeBytes: this.heldBytes };
  }

  /** run() stopped with STOP_JIT: compiles (or installs again) the region of the page holding the block start it
   *  asked for, or marks the start as not compiled. With a RegionCompiler the region is built off this thread: the
   *  start is interpreted (and not asked for again) until the region lands (landed). Returns the budget steps
   *  run() spent before stopping. */
  compileRequested(): number {
    const t0 = performance.now();
    const ex = this.ex;
    const pc = ex.jitRequestPc(), phys = ex.jitRequestPhys();
    const pageVa = pc & ~0xfffn, pagePhys = phys & ~0xfffn;
    const page = this.codePage(pagePhys);
    const key = `${pageVa}:${pagePhys}`;
    const k = this.byPage.get(key);
    const h = k === undefined ? undefined : this.held[k];
    const current = h !== undefined && h.epoch === ex.jitInvalidations();
    if (h && current && h.starts.includes(pc)) {
      // a block of the page's region, entered from outside it for the first time (only the hot starts are in the
      // lookup, which has room for the hot ones rather than for every block of every region)
      this.installStart(h, pc);
      this.roots.get(key)?.add(pc);
    } else if (h && !current && h.starts.includes(pc) && sameBytes(h.code, page, h.lo)) {
      // An invalidation made the region stale, but its code is what it was compiled from: the region is the same
      // (it depends on nothing but its page's virtual address and its bytes), so it is installed again.
      this.install(h);
      this.stats.reinstalled++;
    } else {
      let roots = this.roots.get(key);
      if (!roots) this.roots.set(key, (roots = new Set()));
      roots.add(pc);
      if (this.compiler) {
        // interpreted until the region lands, and not asked for again
        ex.jitInstall(pc, phys, this.none);
        this.requestBuild(key, pageVa, pagePhys, page);
      } else {
        const built = this.builder.build(this.jobFor(key, pageVa, pagePhys, page));
        if (built.error) throw new Error(built.error);
        this.stats.buildMs += built.buildMs;
        this.stats.moduleMs += built.moduleMs;
        this.adopt(key, pageVa, pagePhys, built.module ? built : null, page, [...roots]);
      }
    }
    this.stats.compileMs += performance.now() - t0;
    return ex.jitRequestSteps();
  }

  /** Installs a region built for the page (key) from the roots `considered`, or, without one, marks those roots it
   *  does not hold as not compiled (interpreted from then on, until an invalidation). page: the page's bytes now,
   *  which the region was built from. (Roots that came while it was built off this thread wait for the next.) */
  private adopt(key: string, pageVa: bigint, pagePhys: bigint, region: Omit<RegionBuilt, "id" | "buildMs" | "moduleMs"> | null,
    page: Uint8Array, considered: readonly bigint[]): void {
    const roots = this.roots.get(key) ?? new Set<bigint>();
    const starts = region?.starts ?? [];
    for (const pc of considered) {
      if (starts.includes(pc) || !roots.has(pc)) continue;
      roots.delete(pc);
      this.ex.jitInstall(pc, pagePhys | (pc & 0xfffn), this.none);
      this.stats.notCompiled++;
    }
    if (!region?.module) return;
    const tModule = performance.now();
    const instance = new WebAssembly.Instance(region.module, {
      env: { memory: this.memory, jitExec: this.ex.jitExec, table: this.ex.table },
    });
    this.stats.instantiateMs += performance.now() - tModule;
    const k = this.byPage.get(key);
    const slotIndex = k ?? this.clockHand();
    this.evict(slotIndex, k !== undefined ? "recompiled" : "reused");
    this.makeRoom(region.bytes);
    const fresh: Held = {
      key, pageVa, pagePhys, starts, instance, slots: new Map(),
      lo: region.lo, code: page.slice(region.lo, region.hi), epoch: 0, bytes: region.bytes,
    };
    this.held[slotIndex] = fresh;
    this.heldRegions++;
    this.heldBytes += fresh.bytes;
    this.byPage.set(key, slotIndex);
    const ramPage = ramPageOf(pagePhys);
    let onPage = this.ramPages.get(ramPage);
    if (!onPage) this.ramPages.set(ramPage, (onPage = new Set()));
    onPage.add(slotIndex);
    this.install(fresh);
    this.stats.compiled++;
    this.stats.instructions += region.instructions;
    this.stats.codeBytes += region.bytes;
  }

  /** Asks the compiler for the page's region from its roots now, unless a build of the page is under way: then
   *  again when that one lands (its roots are older). */
  private requestBuild(key: string, pageVa: bigint, pagePhys: bigint, page: Uint8Array): void {
    const pending = this.building.get(key);
    if (pending) { pending.again = true; return; }
    const job = this.jobFor(key, pageVa, pagePhys, page);
    this.building.set(key, { again: false });
    this.stats.offThread++;
    this.compiler!.compile(job, (built) => this.landed(key, pageVa, pagePhys, job, built));
  }

  /** What the builder needs for the page's region now: a copy of its bytes, its roots, what of it has run. */
  private jobFor(key: string, pageVa: bigint, pagePhys: bigint, page: Uint8Array): RegionJob {
    return {
      id: ++this.jobs, page: page.slice(), pageVa, roots: [...(this.roots.get(key) ?? [])],
      ramHostToGuest: this.ramHostToGuest, names: this.names, executed: this.executedOn(pagePhys),
    };
  }

  /** A region built off this thread came back (between slices): installed when the page still holds the bytes it
   *  was built from; else dropped, and its starts counted afresh (they compile again once hot). */
  private landed(key: string, pageVa: bigint, pagePhys: bigint, job: RegionJob, built: RegionBuilt): void {
    if (this.disabled) return;
    const t0 = performance.now();
    const again = this.building.get(key)?.again ?? false;
    this.building.delete(key);
    this.stats.offThreadMs += built.buildMs + built.moduleMs;
    if (built.error) this.stats.buildErrors++;
    // (marked code again: a store since the request took the page out of the code map)
    const page = this.codePage(pagePhys);
    const unchanged = built.module === null || sameBytes(job.page.subarray(built.lo, built.hi), page, built.lo);
    if (unchanged && !built.error) {
      // (a module built from the same bytes is the same region: it depends on nothing else)
      this.adopt(key, pageVa, pagePhys, built, page, job.roots);
    } else {
      // the page changed while it was built (or the build failed): its waiting starts go back to counting
      for (const pc of job.roots) this.ex.jitEvict(pc, pagePhys | (pc & 0xfffn), this.none);
      this.stats.discarded++;
    }
    if (again && !built.error) this.requestBuild(key, pageVa, pagePhys, page);
    this.stats.compileMs += performance.now() - t0;
  }

  /** The RAM page at pagePhys (its bytes in guest RAM), marked as holding code: whatever is installed from it is
   *  code of this page, and the hart's stores into it must be seen (code-pages.ts). */
  private codePage(pagePhys: bigint): Uint8Array {
    const off = Number(pagePhys - RAM_BASE);
    if (off < 0 || off + 4096 > this.ramBytes) throw new Error(`JIT request for 0x${pagePhys.toString(16)}, outside RAM`);
    this.ex.markCodePage(off >>> 12);
    return new Uint8Array(this.memory.buffer, this.ramOffset + off, 4096);
  }

  /** Which halfwords of the RAM page at pagePhys the interpreter has executed since their decoded entries were
   *  filled (a byte each, nonzero where it has), or undefined when the page has no decoded entries. */
  private executedOn(pagePhys: bigint): Uint8Array | undefined {
    const entries = this.ex.jitDecodedEntries(ramPageOf(pagePhys));
    if (!entries) return undefined;
    const all = new Uint8Array(this.memory.buffer, entries, 2048 * DECODED_ENTRY_BYTES);
    const executed = new Uint8Array(2048);
    for (let i = 0; i < 2048; i++) executed[i] = all[i * DECODED_ENTRY_BYTES];
    return executed;
  }

  /** Records a region in the hart's lookup: the starts of its page that were asked for. */
  private install(h: Held): void {
    h.epoch = this.ex.jitInvalidations();
    const roots = this.roots.get(h.key);
    if (roots) for (const pc of roots) if (h.starts.includes(pc)) this.installStart(h, pc);
  }

  /** Records one start of a region in the lookup, its block's function in a table index of its own. */
  private installStart(h: Held, pc: bigint): void {
    let slot = h.slots.get(pc);
    if (slot === undefined) {
      if (!this.freeSlots.length) this.growTable(256);
      slot = this.freeSlots.pop()!;
      this.ex.table.set(slot, h.instance.exports[blockExportName(h.starts.indexOf(pc))] as (...args: unknown[]) => unknown);
      h.slots.set(pc, slot);
    }
    this.ex.jitInstall(pc, h.pagePhys | (pc & 0xfffn), slot);
  }

  /** Adds n table indices for block functions. */
  private growTable(n: number): void {
    const first = this.ex.table.grow(n);
    for (let i = first + n - 1; i >= first; i--) this.freeSlots.push(i);
  }

  /** Drops the region at index k from the lookup (its page's roots go too unless it is being compiled again). */
  private evict(k: number, why: "reused" | "recompiled" | "written" | "code"): void {
    const h = this.held[k];
    if (!h) return;
    for (const [pc, slot] of h.slots) {
      this.ex.jitEvict(pc, h.pagePhys | (pc & 0xfffn), slot);
      this.ex.table.set(slot, null); // the region's instance can go
      this.freeSlots.push(slot);
    }
    this.held[k] = undefined;
    this.heldRegions--;
    this.heldBytes -= h.bytes;
    this.byPage.delete(h.key);
    const ramPage = ramPageOf(h.pagePhys);
    const onPage = this.ramPages.get(ramPage)!;
    onPage.delete(k);
    if (!onPage.size) this.ramPages.delete(ramPage);
    if (why !== "recompiled") this.roots.delete(h.key);
    if (why === "reused") this.stats.evicted++;
    if (why === "written") this.stats.dropped++;
    if (why === "code") this.stats.evictedForCode++;
  }

  /** Evicts regions in the hand's order until `bytes` more fit in the code budget (a region larger than the whole
   *  budget is still held, alone). */
  private makeRoom(bytes: number): void {
    while (this.heldRegions > 0 && this.heldBytes + bytes > this.maxCodeBytes) {
      const k = this.clockHand();
      if (this.held[k]) this.evict(k, "code");
    }
  }

  /** Whether a block of the region at index k ran since the hand last passed (clears the marks). */
  private used(k: number): boolean {
    const h = this.held[k];
    if (!h) return false;
    let any = false;
    for (const slot of h.slots.values()) if (this.ex.jitUsed(slot)) any = true;
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

  /** Compiled regions entered from run() so far, the instructions they retired (with the regions they went on
   *  into), and the regions entered from another region's exit. */
  get calls(): { blocks: number; instructions: number; chained: number } {
    return { blocks: Number(this.ex.jitCallCount()), instructions: Number(this.ex.jitRetiredCount()), chained: Number(this.ex.jitChainCount()) };
  }

  /** Invalidations (FENCE.I, host writes, restores) so far: each made every compiled region stale. */
  get invalidations(): number { return this.ex.jitInvalidations(); }
}

/** The RAM page (counted from RAM's start) of a guest physical page address. */
const ramPageOf = (pagePhys: bigint) => Number(pagePhys - RAM_BASE) >>> 12;

/** Whether page[at..] starts with the bytes code holds. */
function sameBytes(code: Uint8Array, page: Uint8Array, at: number): boolean {
  if (at + code.length > page.length) return false;
  for (let i = 0; i < code.length; i++) if (code[i] !== page[at + i]) return false;
  return true;
}
