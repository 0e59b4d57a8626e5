// The page's side of one VM: its worker, the comlink proxy for control calls, the two console rings and the
// doorbell. One VmHandle per VM, so a dashboard can hold many.

import * as Comlink from "comlink";
import { ByteRing } from "../shared/ring.ts";
import { StatsBlockReader, STATS_BLOCK_BYTES } from "../shared/stats-block.ts";
import {
  CTRL, CTRL_WORDS, VM_STATES,
  type VmEvent, type VmIncoming, type VmDiskInit, type VmDiskBase, type VmBootImages, type VmMigrationReport, type VmOrigin, type VmState, type VmStats, type VmWorkerApi,
} from "../shared/protocol.ts";
import { bulkBuffers } from "../shared/saved-machine.ts";
import { compilerPort } from "./jit-compiler.ts";
import type { Template } from "./images.ts";
import type { NicInit } from "../net/nic-channel.ts";
import type { MachineSpec } from "../../emulator-core/src/machine/description.ts";
import { templateShape } from "../../emulator-core/src/snapshot/template.ts";
import { parseMac } from "../../emulator-core/src/net/packet.ts";
import type { ExecOptions, ExecResult } from "../../emulator-core/src/agent/client.ts";

/** Where a VM's console output goes (an xterm Terminal fits: write(data, callback)). */
export interface ConsoleSink {
  /** `done` is called once the sink has processed the bytes (flow control) */
  write(data: Uint8Array, done: () => void): void;
}

export interface VmHandleOptions {
  name: string;
  hart: WebAssembly.Module;
  images: VmBootImages;
  ramMiB?: number;
  /** kernel command line (default: serial console and the VM's name as hostname) */
  cmdline?: string;
  /** an in-memory disk of this many MiB (/dev/vda); 0 or absent: none */
  diskMiB?: number;
  /** keep the disk in the browser's storage (see VmInit.disk) */
  disk?: VmDiskInit;
  /** the disk is a system image's (a Debian VM's /dev/vda: diskMiB is then its size), fetched in chunks under the
   *  VM's own blocks; also what a disk of `machine` that names a base starts from */
  diskBase?: VmDiskBase;
  /** the VM cannot run here: why (see VmInit.unavailable) */
  unavailable?: string;
  /** CPU cap, percent of one core (default 100: none) */
  cpuCap?: number;
  /** memory the balloon asks back at boot (MiB) */
  balloonMiB?: number;
  /** build its machine with the JIT (VmInit.jit; default off) */
  jit?: boolean;
  /** the VM's network cards, made from its control block (see web/net/hub.ts: attachVm(...).nics) */
  nics?: (ctrl: SharedArrayBuffer) => NicInit[];
  /** the whole machine description, for a VM made from a snapshot of a machine the fields above do not describe
   *  (its cards get the VM's MACs; `cmdline` still wins when given) */
  machine?: MachineSpec;
  /** the template snapshot: a first start of a machine of its shape restores it instead of booting */
  template?: Template;
  /** a saved machine the first start restores instead of booting (a snapshot, the VM this one forks) */
  from?: VmOrigin;
  /** the machine comes by live migration from another tab instead (the first start receives it) */
  incoming?: VmIncoming;
  /** the worker's console backlog bound (VmInit.consoleBacklogBytes) */
  consoleBacklogBytes?: number;
}

const MiB = 1024 * 1024;

/** The machine a VM's options describe (the worker checks it: a bad one puts the VM in its error state). */
function machineSpecOf(opts: VmHandleOptions, nics: NicInit[]): MachineSpec {
  const cards = nics.map((n) => ({ mac: [...parseMac(n.mac)] }));
  if (opts.machine) return { ...opts.machine, cmdline: opts.cmdline ?? opts.machine.cmdline, nics: cards };
  const diskMiB = Math.floor(opts.diskMiB ?? 0);
  const base = opts.diskBase;
  return {
    ramMiB: opts.ramMiB ?? 128,
    cmdline: opts.cmdline ?? `console=ttyS0 hostname=${opts.name}`,
    deterministic: false,
    disks: base ? [{ sizeBytes: (base.manifest as { size: number }).size, serial: "tabvisor-disk", base: base.id }]
      : diskMiB > 0 ? [{ sizeBytes: diskMiB * MiB, serial: "tabvisor-disk" }] : [],
    nics: cards,
    rng: true,
    balloon: true,
    agent: true,
  };
}

/** A VM worker made ahead of time. Starting a worker and loading its modules is most of what a VM started from
 *  the template or a fork waits for (about 150 ms from a build, 400 ms from the dev server), so one is kept ready
 *  for the next VM; it costs no CPU while it waits (no machine, no memory of its own yet). */
let spareWorker: Worker | undefined;
let spareTimer: ReturnType<typeof setTimeout> | undefined;
/** after a VM is made: not in the way of its start, nor of its boot (a worker loading its modules meanwhile cost a
 *  boot through the page about 30 ms) */
const SPARE_DELAY_MS = 2000;

const newVmWorker = () => new Worker(new URL("../workers/vm-worker.ts", import.meta.url), { type: "module", name: "vm" });
/** spares that failed to load (their error came before any VM listened): not handed out */
const brokenSpares = new WeakSet<Worker>();

function takeVmWorker(): Worker {
  let w = spareWorker;
  spareWorker = undefined;
  if (!w || brokenSpares.has(w)) { w?.terminate(); w = newVmWorker(); }
  clearTimeout(spareTimer);
  spareTimer = setTimeout(prepareVmWorker, SPARE_DELAY_MS);
  return w;
}

/** Makes the spare VM worker now if there is none: the page calls it while it loads, so that the first VM (the
 *  saved lab's, or one made in the dialog) does not wait for a worker's start either (60-80 ms of a boot through
 *  the page's production build, measured from create to the worker's first line). */
export function prepareVmWorker(): void {
  if (spareWorker) return;
  const spare = spareWorker = newVmWorker();
  spare.addEventListener("error", () => brokenSpares.add(spare), { once: true });
}

/** The console pumps' safety net (see VmHandle's constructor): one timer for every VM of the page, not one each (every
 *  timer is a wake-up of the page's main thread), running while there is a VM. */
const safetyChecks = new Set<() => void>();
let safetyTimer: ReturnType<typeof setInterval> | undefined;

function addSafetyCheck(check: () => void): () => void {
  safetyChecks.add(check);
  safetyTimer ??= setInterval(() => { for (const c of safetyChecks) c(); }, 1000);
  return () => {
    safetyChecks.delete(check);
    if (safetyChecks.size === 0 && safetyTimer !== undefined) { clearInterval(safetyTimer); safetyTimer = undefined; }
  };
}

const OUTPUT_RING = 1 << 18; // 256 KiB
const INPUT_RING = 1 << 14;  // 16 KiB
/** At most this much console output is handed to the sink per animation frame... */
const MAX_DRAIN_PER_FRAME = 64 * 1024;
/** ...and none while the sink still has this much unprocessed. */
const SINK_HIGH_WATER = 256 * 1024;
/** Frames without console traffic before the pump stops requesting frames. */
const IDLE_FRAMES = 30;

export class VmHandle {
  readonly name: string;
  private readonly worker: Worker;
  private readonly remote: Comlink.Remote<VmWorkerApi>;
  private readonly ctrl: Int32Array;
  /** the worker's counters in shared memory (the meters read them without a message) */
  readonly statsBlock: StatsBlockReader;
  private readonly output: ByteRing;
  private readonly input: ByteRing;
  private readonly encoder = new TextEncoder();
  /** typed or pasted bytes that did not fit the input ring yet */
  private pendingInput: Uint8Array[] = [];
  private sink: ConsoleSink | undefined;
  private sinkPending = 0;
  private frame = 0;
  private removeSafetyCheck: (() => void) | undefined;
  private lastPump = 0;
  private disposed = false;
  private readonly listeners = new Set<(state: VmState, detail?: string) => void>();
  /** the worker failed (an uncaught error) and was terminated: this handle is done, make a new one */
  dead = false;
  private readyListeners = new Set<() => void>();
  private readonly diskListeners = new Set<(problem: string) => void>();
  /** the last problem the worker reported with the disk */
  diskProblem: string | undefined;
  private readonly transferListeners = new Map<string, (done: number, total: number) => void>();
  private transfers = 0;
  state: VmState = "created";
  stateDetail: string | undefined;
  ready = false;

  constructor(opts: VmHandleOptions) {
    this.name = opts.name;
    const ctrlBuf = new SharedArrayBuffer(CTRL_WORDS * 4);
    this.ctrl = new Int32Array(ctrlBuf);
    const statsBuf = new SharedArrayBuffer(STATS_BLOCK_BYTES);
    this.statsBlock = new StatsBlockReader(statsBuf);
    this.output = ByteRing.create(OUTPUT_RING);
    this.input = ByteRing.create(INPUT_RING);
    this.worker = takeVmWorker();
    this.remote = Comlink.wrap<VmWorkerApi>(this.worker);
    // Not enumerable: code that walks objects (React's dev-mode prop diffing does) must not touch the proxy, whose
    // every property access is a remote path (and throws once the proxy is released).
    Object.defineProperty(this, "remote", { enumerable: false });
    const onEvent = (e: VmEvent) => this.onEvent(e);
    // A worker that threw an uncaught error is in an unknown state: it is stopped for good (its guest with it) and
    // reported as crashed; the console keeps what it showed.
    const fail = (why: string) => {
      if (this.disposed || this.dead) return;
      this.dead = true;
      this.worker.terminate();
      this.abandonCalls();
      this.onEvent({ kind: "state", state: "error", detail: `the VM worker failed: ${why}` });
    };
    this.worker.addEventListener("error", (e) => fail(e.message || "it could not be loaded"));
    this.worker.addEventListener("messageerror", () => fail("a message could not be decoded"));
    const nics = opts.nics?.(ctrlBuf) ?? [];
    const spec = machineSpecOf(opts, nics);
    // the template goes only to VMs it may fit (the worker makes the final check): its state is copied to each
    const template = opts.template && templateShape(opts.template.spec) === templateShape(spec) ? opts.template : undefined;
    const jitPort = compilerPort();
    this.remote.init(Comlink.transfer({
      hart: opts.hart,
      images: opts.images,
      spec,
      ctrl: ctrlBuf,
      stats: statsBuf,
      output: this.output.buffer,
      input: this.input.buffer,
      cpuCap: opts.cpuCap,
      balloonMiB: opts.balloonMiB,
      jit: opts.jit,
      jitPort,
      nics,
      template,
      from: opts.from,
      incoming: opts.incoming,
      disk: opts.disk,
      diskBase: opts.diskBase,
      unavailable: opts.unavailable,
      consoleBacklogBytes: opts.consoleBacklogBytes,
    }, [jitPort, ...(opts.from ? bulkBuffers(opts.from.state) : [])]), Comlink.proxy(onEvent)).catch((e: Error) => fail(e.message));
    this.schedule();
    // The safety net should a wake-up of the sleeping pump ever be missed. A hidden page takes no output at all: the
    // worker keeps it (the guest runs on; the oldest is dropped past its backlog, with a mark) until it shows again.
    this.removeSafetyCheck = addSafetyCheck(() => {
      if (!pageHidden() && performance.now() - this.lastPump > 900 && this.pump() && this.asleep) this.wakePump();
    });
    document.addEventListener("visibilitychange", this.onVisibility);
  }

  start(): Promise<VmStats> { return this.call((r) => r.start()); }
  pause(): Promise<VmStats> { return this.call((r) => r.pause()); }
  resume(): Promise<VmStats> { return this.call((r) => r.resume()); }
  reset(): Promise<VmStats> { return this.call((r) => r.reset()); }
  powerOff(): Promise<VmStats> { return this.call((r) => r.powerOff()); }
  stats(): Promise<VmStats> { return this.call((r) => r.stats()); }
  /** caps the guest at `percent` of one core (100: no cap) */
  setCpuCap(percent: number): Promise<VmStats> { return this.call((r) => r.setCpuCap(percent)); }
  /** asks the guest to hand `mib` MiB back through its balloon (0: give it all back) */
  setBalloon(mib: number): Promise<VmStats> { return this.call((r) => r.setBalloon(mib)); }
  /** the JIT on or off for the machines the worker builds from now on (the next start) */
  setJit(on: boolean): Promise<VmStats> { return this.call((r) => r.setJit(on)); }
  /** test hook: makes the worker throw an uncaught error */
  injectFault(): Promise<void> { return this.call((r) => r.injectFault()); }
  /** test hook: makes the worker's thread spin for ever */
  injectHang(): Promise<void> { return this.call((r) => r.injectHang()); }
  /** a snapshot file of the running machine */
  snapshot(info: { name?: string; vmName: string }): Promise<Uint8Array> { return this.call((r) => r.snapshot(info)); }
  /** the running machine's state (for a fork) */
  saveState(): Promise<VmOrigin> { return this.call((r) => r.saveState()); }
  /** replaces the machine with one restored from `from` (the state's page and disk buffers are handed over) */
  restore(from: VmOrigin): Promise<VmStats> { return this.call((r) => r.restore(Comlink.transfer(from, bulkBuffers(from.state)))); }
  /** live-migrates the machine to the worker listening on `channel` in the tab named `to` (see VmWorkerApi) */
  migrateOut(channel: string, to: string): Promise<VmMigrationReport> { return this.call((r) => r.migrateOut(channel, to)); }
  /** the disk back to its base (the VM must be off) */
  resetDisk(): Promise<VmStats> { return this.call((r) => r.resetDisk()); }
  /** a raw image (exactly the disk's size) becomes the disk; the file is handed over, not read here */
  importDisk(image: Blob): Promise<VmStats> { return this.call((r) => r.importDisk(image)); }
  /** the disk as a raw image, a piece at a time (see VmWorkerApi.exportDisk) */
  exportDisk(onChunk: (bytes: Uint8Array) => void | Promise<void>): Promise<number> { return this.call((r) => r.exportDisk(Comlink.proxy(onChunk))); }

  /** Runs a shell command in the guest through its agent (the control channel): exit status and output. */
  agentExec(command: string, opts?: ExecOptions): Promise<ExecResult> { return this.call((r) => r.agentExec(command, opts)); }

  /** Writes `data` to `path` in the guest; its buffer moves to the worker (the caller must not use it after). */
  async agentPut(path: string, data: Uint8Array, opts: { mode?: number; onProgress?: (done: number, total: number) => void } = {}): Promise<void> {
    const transfer = this.watchTransfer(opts.onProgress);
    try {
      const moved = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer
        ? Comlink.transfer(data, [data.buffer]) : data;
      await this.call((r) => r.agentPut(path, moved, { mode: opts.mode, transfer }));
    } finally {
      if (transfer) this.transferListeners.delete(transfer);
    }
  }

  /** Reads a file from the guest. */
  async agentGet(path: string, opts: { maxBytes?: number; onProgress?: (done: number, total: number) => void } = {}): Promise<Uint8Array> {
    const transfer = this.watchTransfer(opts.onProgress);
    try {
      return await this.call((r) => r.agentGet(path, { maxBytes: opts.maxBytes, transfer }));
    } finally {
      if (transfer) this.transferListeners.delete(transfer);
    }
  }

  private watchTransfer(fn: ((done: number, total: number) => void) | undefined): string | undefined {
    if (!fn) return undefined;
    const id = `t${++this.transfers}`;
    this.transferListeners.set(id, fn);
    return id;
  }

  /** The state as the worker last published it in shared memory (no round trip). */
  get sharedState(): VmState { return VM_STATES[Atomics.load(this.ctrl, CTRL.STATE)] ?? "created"; }

  /** A control call: counted as pending (so an idle worker will not block with it undelivered), then the bell. */
  private async call<T>(fn: (r: Comlink.Remote<VmWorkerApi>) => Promise<T>): Promise<T> {
    if (this.disposed || this.dead) throw new Error(`VM ${this.name} is gone`);
    Atomics.add(this.ctrl, CTRL.PENDING_CALLS, 1);
    // a call to a worker that is then stopped would never settle: stopping it rejects the calls in flight
    let abandon!: (e: Error) => void;
    const gone = new Promise<never>((_, reject) => { abandon = reject; });
    this.inFlight.add(abandon);
    const p = fn(this.remote);
    this.ring();
    try {
      return await Promise.race([p, gone]);
    } finally {
      this.inFlight.delete(abandon);
    }
  }

  private readonly inFlight = new Set<(e: Error) => void>();

  private abandonCalls(): void {
    const err = new Error(`VM ${this.name}: its worker was stopped`);
    for (const abandon of this.inFlight) abandon(err);
    this.inFlight.clear();
  }

  private ring(): void {
    Atomics.add(this.ctrl, CTRL.DOORBELL, 1);
    Atomics.notify(this.ctrl, CTRL.DOORBELL);
  }

  onStateChange(fn: (state: VmState, detail?: string) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Hears of problems with the VM's disk (its storage is full, it could not be opened). */
  onDiskProblem(fn: (problem: string) => void): () => void {
    this.diskListeners.add(fn);
    return () => this.diskListeners.delete(fn);
  }

  onReady(fn: () => void): () => void {
    this.readyListeners.add(fn);
    return () => this.readyListeners.delete(fn);
  }

  private onEvent(e: VmEvent): void {
    if (e.kind === "ready") {
      this.ready = true;
      for (const fn of this.readyListeners) fn();
      return;
    }
    if (e.kind === "disk") {
      this.diskProblem = e.problem;
      for (const fn of this.diskListeners) fn(e.problem);
      return;
    }
    if (e.kind === "transfer") {
      this.transferListeners.get(e.id)?.(e.done, e.total);
      return;
    }
    if (e.state === "booting") this.ready = false;
    this.state = e.state;
    this.stateDetail = e.detail;
    for (const fn of this.listeners) fn(e.state, e.detail);
  }

  /** Sends keystrokes or pasted text to the guest's console. */
  sendInput(data: string | Uint8Array): void {
    const bytes = typeof data === "string" ? this.encoder.encode(data) : data;
    if (bytes.length === 0) return;
    this.pendingInput.push(bytes);
    this.pushInput();
    this.wakePump();
  }

  private pushInput(): void {
    let moved = false;
    while (this.pendingInput.length) {
      const b = this.pendingInput[0];
      const n = this.input.write(b);
      if (n > 0) moved = true;
      if (n < b.length) { this.pendingInput[0] = b.subarray(n); break; }
      this.pendingInput.shift();
    }
    if (moved) this.ring();
  }

  /** Where console output goes from now on; without a sink the output waits in the ring (and then holds the guest). */
  attachConsole(sink: ConsoleSink | undefined): void {
    this.sink = sink;
    this.sinkPending = 0;
    this.wakePump();
  }

  /** The sink attached now. */
  get attachedConsole(): ConsoleSink | undefined { return this.sink; }

  /** True while the output ring is full and the worker keeps more output in its backlog until the page drains it. */
  get outputHeld(): boolean { return Atomics.load(this.ctrl, CTRL.WANT_SPACE) === 1; }

  // The console pump runs once per animation frame while there is output (or queued input, or a sink still
  // digesting). After IDLE_FRAMES quiet frames it stops asking for frames, so an idle tab draws nothing, and
  // sleeps until the worker rings OUTPUT_BELL (Atomics.waitAsync; a 25 ms poll where that is missing).
  private quietFrames = 0;
  private asleep = false;

  private readonly onVisibility = (): void => { if (!pageHidden()) this.wakePump(); };

  private schedule(): void {
    if (this.disposed || this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      if (pageHidden()) {
        // nothing is drawn while hidden: stop until the page shows again (onVisibility), without asking the worker
        // for a bell (PAGE_ASLEEP stays clear), so its output costs this page nothing meanwhile
        if (this.pendingInput.length) this.pushInput();
        this.asleep = true;
        return;
      }
      if (this.pump()) this.quietFrames = 0;
      else if (++this.quietFrames >= IDLE_FRAMES) { this.sleepPump(); return; }
      this.schedule();
    });
  }

  private sleepPump(): void {
    if (this.disposed) return;
    this.asleep = true;
    const seen = Atomics.load(this.ctrl, CTRL.OUTPUT_BELL);
    Atomics.store(this.ctrl, CTRL.PAGE_ASLEEP, 1);
    // output that arrived before the flag was up would ring no bell: look once more
    if (this.output.available() > 0 || this.pendingInput.length) { this.wakePump(); return; }
    const waitAsync = (Atomics as { waitAsync?: (a: Int32Array, i: number, v: number) => { async: boolean; value: Promise<unknown> | string } }).waitAsync;
    if (waitAsync) {
      const r = waitAsync(this.ctrl, CTRL.OUTPUT_BELL, seen);
      if (r.async) void (r.value as Promise<unknown>).then(() => this.wakePump());
      else this.wakePump();
    } else {
      const poll = () => {
        if (!this.asleep) return;
        if (this.output.available() > 0) this.wakePump();
        else setTimeout(poll, 25);
      };
      setTimeout(poll, 25);
    }
  }

  private wakePump(): void {
    if (!this.asleep || this.disposed) return;
    this.asleep = false;
    Atomics.store(this.ctrl, CTRL.PAGE_ASLEEP, 0);
    this.quietFrames = 0;
    this.schedule();
  }

  /** Console output to the sink (bounded), queued input to the ring, the worker's bell if it waits for room.
   *  Returns whether there was anything to do. */
  private pump(): boolean {
    this.lastPump = performance.now();
    if (this.pendingInput.length) this.pushInput();
    const sink = this.sink;
    const busy = this.pendingInput.length > 0 || this.sinkPending > 0;
    if (!sink || this.sinkPending >= SINK_HIGH_WATER || this.output.available() === 0) return busy;
    const bytes = this.output.read(Math.min(MAX_DRAIN_PER_FRAME, SINK_HIGH_WATER - this.sinkPending));
    this.sinkPending += bytes.length;
    sink.write(bytes, () => { if (this.sink === sink) this.sinkPending -= bytes.length; });
    if (Atomics.load(this.ctrl, CTRL.WANT_SPACE)) {
      Atomics.store(this.ctrl, CTRL.WANT_SPACE, 0);
      this.ring();
    }
    return true;
  }

  /** Stops the worker for good. */
  dispose(): void {
    if (this.disposed) return; // (a worker stopped for not answering is disposed again when it is replaced)
    this.disposed = true;
    document.removeEventListener("visibilitychange", this.onVisibility);
    this.asleep = false;
    if (this.frame) cancelAnimationFrame(this.frame);
    this.removeSafetyCheck?.();
    this.remote[Comlink.releaseProxy]();
    this.worker.terminate();
    this.abandonCalls();
  }
}

/** The page is not shown (another tab in front, minimized): consoles are not drawn. */
function pageHidden(): boolean { return typeof document !== "undefined" && document.visibilityState === "hidden"; }
