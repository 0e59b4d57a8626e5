// Compiling regions off the VM's thread. Building a region (finding its blocks, writing the module's bytes) and
// WebAssembly.Module's validation take about a millisecond each time, on the thread that runs the guest: a fifth of
// a boot with the JIT, and the reason the threshold has to stay high, so that code runs interpreted for long before
// it is compiled. A RegionCompiler takes the work elsewhere (a worker: the page's Worker, Node's worker_threads)
// and hands back a compiled WebAssembly.Module, which can be posted between threads; the tier (tier.ts) only
// instantiates and installs it, between slices, after checking that the page still holds the bytes it was built
// from.
//
// The messages (RegionJob in, RegionBuilt out, both structured-cloneable), the builder and the server a compiler
// thread runs are here. One thread serves every VM of a page or a process, each over a channel of its own; the
// thread adapters are thin: emulator-core/src/node/jit-compile-worker.ts (Node) and web/workers/jit-compile-worker.ts
// with web/src/jit-compiler.ts (the page).

import { compileRegion, hartDecoder, type Decoder } from "./compile-region.ts";

/** A region to build: the page's bytes when it was asked for (a copy), its virtual address, the block starts. */
export interface RegionJob {
  id: number;
  page: Uint8Array;
  pageVa: bigint;
  roots: bigint[];
  /** compile-region.ts CompileOptions.ramHostToGuest: the VM's layout */
  ramHostToGuest: bigint;
  /** a name section for profilers (JitOptions.names) */
  names: boolean;
  /** compile-region.ts RegionOptions.executed */
  executed?: Uint8Array;
}

/** What came of a RegionJob: the module (null when no root's first instruction compiles, or on an error) and what
 *  the tier needs of the region without its blocks' instructions. */
export interface RegionBuilt {
  id: number;
  module: WebAssembly.Module | null;
  /** the block starts, in address order (the module's exports b0, b1, ...) */
  starts: bigint[];
  /** the page offsets [lo, hi) the region was built from */
  lo: number;
  hi: number;
  instructions: number;
  /** bytes of WebAssembly */
  bytes: number;
  /** where the builder's time went (on its own thread) */
  buildMs: number;
  moduleMs: number;
  /** why the build failed (a bug: the tier reports it and interprets the starts) */
  error?: string;
}

/** Builds regions wherever it runs; `done` is called later on the VM's thread, from its event loop (between
 *  slices: never while run() runs), with the result. */
export interface RegionCompiler {
  compile(job: RegionJob, done: (built: RegionBuilt) => void): void;
  /** ends the compiler's thread (pending jobs are dropped) */
  close(): void;
}

/** The building itself: a region's bytes and its WebAssembly.Module, wherever it runs (the tier's own thread, or a
 *  compiler thread's). */
export class RegionBuilder {
  constructor(private readonly decode: Decoder) {}

  /** A builder with a decoder of its own, for another thread: a private instance of the hart module over a memory
   *  of its own (the decoder is pure, and the VM's memory is not needed). */
  static forHart(hartModule: WebAssembly.Module): RegionBuilder {
    // the hart's limits (build.mjs): 32 to 65536 pages, shared; only the first pages are ever touched here
    const memory = new WebAssembly.Memory({ initial: 32, maximum: 65536, shared: true });
    const instance = new WebAssembly.Instance(hartModule, { env: { memory } });
    const ex = instance.exports as unknown as { decodeForTest(inst: number): number };
    return new RegionBuilder(hartDecoder(memory, (inst) => ex.decodeForTest(inst)));
  }

  build(job: RegionJob): RegionBuilt {
    const t0 = performance.now();
    const base = { id: job.id, module: null, starts: [], lo: 0, hi: 0, instructions: 0, bytes: 0, buildMs: 0, moduleMs: 0 };
    try {
      const region = compileRegion(job.page, job.pageVa, job.roots, this.decode, { ramHostToGuest: job.ramHostToGuest, names: job.names, executed: job.executed });
      const t1 = performance.now();
      if (!region) return { ...base, buildMs: t1 - t0 };
      const module = new WebAssembly.Module(region.bytes);
      return {
        id: job.id, module, starts: region.blocks.map((b) => b.pc), lo: region.lo, hi: region.hi,
        instructions: region.instructions, bytes: region.bytes.length, buildMs: t1 - t0, moduleMs: performance.now() - t1,
      };
    } catch (e) {
      return { ...base, buildMs: performance.now() - t0, error: (e as Error).message };
    }
  }
}

/** The two ends of a message channel as both platforms have them (a Worker, a worker_threads Worker or its
 *  parentPort, after the adapter's wrapping). */
export interface MessageEnd {
  postMessage(message: unknown): void;
  onMessage(handler: (message: unknown) => void): void;
}

/** A MessagePort (the web platform's) as a MessageEnd. */
export function messagePortEnd(port: MessagePort): MessageEnd {
  return { postMessage: (m) => port.postMessage(m), onMessage: (h) => { port.onmessage = (e) => h(e.data); } };
}

/** The first message on a channel to a compiler's thread: the hart module its builder decodes with. */
export interface CompilerHello { hart: WebAssembly.Module }

/** A compiler thread's side. One thread can serve the VMs of a whole page or process, each over a channel of its
 *  own (serve): its builder's code, which V8 optimizes as it runs, is then warm for every VM after the first, and
 *  the builds of all of them take one core at most. The first hello makes the builder (the VMs of a host share
 *  one hart module); every RegionJob gets its RegionBuilt back on its own channel, in order. */
export class RegionBuildServer {
  private builder: RegionBuilder | undefined;
  /** jobs served so far: a warm-up gives way once one comes */
  private jobsSeen = 0;

  serve(end: MessageEnd): void {
    let greeted = false;
    end.onMessage((m) => {
      if (!greeted) {
        greeted = true;
        this.builder ??= RegionBuilder.forHart((m as CompilerHello).hart);
        return;
      }
      this.jobsSeen++;
      end.postMessage(this.builder!.build(m as RegionJob));
    });
  }

  /** Builds these regions and throws them away, one per task, until they run out or a VM's job comes: V8 then
   *  has optimized the builder's code by the time the first VM needs it (a builder's first thousands of
   *  instructions take it several times longer each than later ones, and its optimizing compiler's threads compete
   *  with the guest's for the cores). */
  warm(hart: WebAssembly.Module, jobs: RegionJob[], next: (step: () => void) => void): void {
    this.builder ??= RegionBuilder.forHart(hart);
    const seen = this.jobsSeen;
    const queue = jobs.slice();
    const step = (): void => {
      const job = queue.shift();
      if (!job || this.jobsSeen !== seen) return;
      this.builder!.build(job);
      next(step);
    };
    next(step);
  }
}

/** Warm-up work for RegionBuildServer.warm: regions of `count` pages spread over the first `span` bytes of a
 *  guest's code (a Linux Image: its text comes first), each from a few roots across the page, at the kernel's
 *  virtual addresses. What they compile to does not matter, only that the builder runs on real code. */
export function warmupJobs(code: Uint8Array, count = 40, span = 2 << 20): RegionJob[] {
  const pages = Math.floor(Math.min(code.length, span) / 4096);
  const jobs: RegionJob[] = [];
  for (let i = 0; i < count && pages > 1; i++) {
    const at = (1 + Math.floor((i * (pages - 1)) / count)) * 4096;
    const pageVa = 0xffff_ffff_8000_0000n + BigInt(at);
    jobs.push({
      id: -1, page: code.slice(at, at + 4096), pageVa, ramHostToGuest: 0n, names: false,
      roots: [0, 0x100, 0x300, 0x600, 0x900, 0xc00].map((o) => pageVa + BigInt(o)),
    });
  }
  return jobs;
}

/** A channel to a compiler thread, as its adapter opens it: its end, and how to close it. */
export interface CompilerThread { end: MessageEnd; stop(): void }

/** A RegionCompiler over a channel to a thread that runs a RegionBuildServer, opened when the first region is
 *  asked for (`start` gives the channel's end, and how to close it): jobs go out in order, results come back in
 *  order. */
export class ThreadRegionCompiler implements RegionCompiler {
  private readonly waiting = new Map<number, (built: RegionBuilt) => void>();
  private thread: CompilerThread | undefined;
  private closed = false;

  constructor(private readonly start: () => CompilerThread, private readonly hart: WebAssembly.Module) {}

  compile(job: RegionJob, done: (built: RegionBuilt) => void): void {
    if (this.closed) return;
    if (!this.thread) {
      const thread = (this.thread = this.start());
      thread.end.postMessage({ hart: this.hart } satisfies CompilerHello);
      thread.end.onMessage((m) => {
        const built = m as RegionBuilt;
        const take = this.waiting.get(built.id);
        this.waiting.delete(built.id);
        if (take && !this.closed) take(built);
      });
    }
    this.waiting.set(job.id, done);
    this.thread.end.postMessage(job);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.waiting.clear();
    this.thread?.stop();
  }
}

/** A RegionCompiler on the VM's own thread that answers only when told to (deliver()): for tests of the tier's
 *  asynchronous path, which choose what happens between a request and its answer. */
export class DeferredRegionCompiler implements RegionCompiler {
  private readonly builder: RegionBuilder;
  private readonly queue: { job: RegionJob; done: (built: RegionBuilt) => void }[] = [];
  jobs = 0;

  constructor(hart: WebAssembly.Module) { this.builder = RegionBuilder.forHart(hart); }

  compile(job: RegionJob, done: (built: RegionBuilt) => void): void {
    this.jobs++;
    this.queue.push({ job: { ...job, page: job.page.slice() }, done });
  }

  /** Builds the jobs asked for so far and delivers their results (the test decides when: between run() calls). */
  deliver(): number {
    const n = this.queue.length;
    for (const { job, done } of this.queue.splice(0)) done(this.builder.build(job));
    return n;
  }

  close(): void { this.queue.length = 0; }
}
