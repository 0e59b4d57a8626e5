// One VM: the machine (whose shared WebAssembly.Memory is the guest's RAM), the console's ends of the two byte
// rings and the network cards, driven by the shared run loop (emulator-core/src/machine/runner.ts). Its worker
// (web/workers/vm-worker.ts) exposes it to the page through comlink (see VmWorkerApi); console bytes and wake-ups go
// through shared memory (see web/shared/protocol.ts). Nothing here needs a worker: Node tests drive it directly.
//
// It keeps one machine, built from the description the page sent at the first start; resets, reboots and power
// cycles all happen in place, because a tab may only have so many wasm memories (but for a start after the JIT
// setting changed, which builds the machine anew: a hart's JIT cannot be turned off). The first start may restore a
// saved machine instead of booting (the template, a snapshot, the VM a fork copies) or receive one by live
// migration from another tab, and a restore builds a new machine beside the running one and swaps it in only once
// it is whole, so a snapshot that does not fit leaves the VM as it was. Whatever awaits with the machine (a
// snapshot, a restore into the board) holds the run loop first: the guest must not run while its state is read or
// written.
//
// What is its own here is policy, in the run loop's hooks: slices of SLICE_MS so comlink calls are answered in
// time, the CPU cap, and the console's backlog: output the page has not taken waits here, up to CONSOLE_BACKLOG, the
// oldest dropped past that with a mark in the console saying how much, so that a guest in a hidden or throttled tab
// runs on instead of waiting for its console to be drawn. When the guest idles
// the loop sleeps in Atomics.wait on the doorbell until the guest's next timer deadline or until the page rings
// (typed input, freed output room, a control call).

import { Machine, BootError, MachineSpecError, type MachineOptions } from "../../emulator-core/src/machine/machine.ts";
import { validateSpec, type DiskSpec, type MachineAttachments, type MachineSpec } from "../../emulator-core/src/machine/description.ts";
import { SnapshotError } from "../../emulator-core/src/snapshot/snapshot.ts";
import { writeSnapshotFile } from "../../emulator-core/src/snapshot/file.ts";
import { sendHostTime, startAs, templateShape, type RestoreFn } from "../../emulator-core/src/snapshot/template.ts";
import { MachineRunner, runSlice, hold, type RunnerHost, type SliceDecision } from "../../emulator-core/src/machine/runner.ts";
import { consoleInputRoom } from "../../emulator-core/src/machine/console-input.ts";
import { LayeredDisk, DISK_BLOCK, type DiskBase, type SharedDisk } from "../../emulator-core/src/machine/virtio/layered-disk.ts";
import { ChunkedImage, checkManifest } from "../../emulator-core/src/machine/virtio/chunked-disk.ts";
import { HttpChunkSource, CacheStorageChunks } from "./http-chunk-source.ts";
import { DiskVolume, type OverlayFile } from "./disk-store.ts";
import { opfsDiskDir } from "./disk-opfs.ts";
import { migrateOut, MigrationTarget } from "../../emulator-core/src/snapshot/migration.ts";
import { broadcastPort, MigrationReceiver, MigrationSender } from "../../emulator-core/src/snapshot/migration-link.ts";
import { ANNOUNCE_DELAYS_MS } from "../../emulator-core/src/net/announce.ts";
import { ByteRing } from "../shared/ring.ts";
import { StatsBlockWriter } from "../shared/stats-block.ts";
import { VmNics } from "../net/vm-nics.ts";
import {
  CTRL, GUEST_READY_MARKER, VM_STATES,
  type VmEvent, type VmInit, type VmState, type VmStats, type VmWorkerApi, type VmNetStats, type VmOrigin, type VmStart,
  type VmIncoming, type VmMigrationReport, type VmDiskInit,
} from "../shared/protocol.ts";
import { shapeMismatch, sameIdentity } from "../shared/saved-machine.ts";
import { VmAgent } from "./vm-agent.ts";
import { hasJit, jitStats } from "./vm-jit.ts";
import type { RegionCompiler } from "../../emulator-core/src/jit/region-compiler.ts";
import { MemoryStatsPacer } from "./memory-stats-pacer.ts";
import type { ExecOptions, ExecResult } from "../../emulator-core/src/agent/client.ts";

/** Host time per slice while the guest is busy. */
const SLICE_MS = 16;
/** Longest single sleep (a safety net: every reason to wake up also rings the doorbell). Each of these wake-ups costs
 *  an idle VM about as much as everything else it does (measured: 8 idle VMs' workers 1.0% of a core at 1 s, 0.2-0.5%
 *  at 5 s); the page knows a sleeping worker is alive from its stats block (stats-block.ts SLEEPING). Timers of the
 *  worker's own (an agent request's time limit, the announcements after a migration) may fire this much late. */
const MAX_SLEEP_MS = 5000;
/** Console output kept here beyond the ring while the page does not take it (a hidden or busy tab): the oldest is
 *  dropped past this, and the console says how much (the guest never waits for its console to be drawn). */
export const CONSOLE_BACKLOG = 4 * 1024 * 1024;
/** Nor more lines than this: the page's terminal keeps 5000 lines of scrollback (web/src/console-host.ts), so a
 *  longer backlog would only scroll its own start, and the skip mark before it, out of the terminal as the page
 *  catches up (4 MiB of `seq` is over half a million lines). Lines are dropped whole, so the first line after the
 *  mark is a whole line. */
export const CONSOLE_BACKLOG_LINES = 4000;
/** The least backlog a VM may be given (VmInit.consoleBacklogBytes, VmHostOptions.consoleBacklog): room for a few
 *  screens, so that even a test's small backlog keeps the end of the output whole. */
export const CONSOLE_BACKLOG_MIN = 16 * 1024;
/** ESC c: resets the terminal (sent in-band ahead of a reset guest's output). */
const TERMINAL_RESET = new Uint8Array([0x1b, 0x63]);
/** CPU cap: the guest may run cap% of each window of this many ms; the rest of the window the worker sleeps. */
const CAP_WINDOW_MS = 100;
const MiB = 1024 * 1024;
/** Console output kept to show again after a restore (from the first line start within it). */
const CONSOLE_TAIL = 16 * 1024;
/** A command line the template can stand for: nothing but the console and the host name (which the guest is told). */
const PLAIN_CMDLINE = /^console=ttyS0 hostname=\S+$/;
/** The base image of a dashboard VM's disk: none (a blank disk). A chunked system image would name itself here. */
const BLANK_BASE = "blank";
/** Bytes per piece of an exported or imported disk image. */
const IMAGE_CHUNK = 1024 * 1024;
/** A busy guest's cached disk writes go out to the disk's store at least this often (ms). */
const WRITEBACK_MS = 1000;

const encoder = new TextEncoder();
const waitAsync = (Atomics as unknown as {
  waitAsync(a: Int32Array, i: number, v: number, ms: number): { async: boolean; value: Promise<unknown> | string };
}).waitAsync;

export interface VmHostOptions {
  /** The thread is not the VM's alone (a Node test drives the class from the thread it runs on): the run loop
   *  sleeps in Atomics.waitAsync instead of blocking in Atomics.wait, and lets the event loop in through
   *  setImmediate (Node drains a MessagePort's messages in one go, new ones included, so a MessageChannel
   *  ping-pong would starve its timers and other channels). A worker has the thread to itself: the default. */
  sharedThread?: boolean;
  /** bytes of console output kept beyond the ring for a page that does not take it (default CONSOLE_BACKLOG; at
   *  least CONSOLE_BACKLOG_MIN); VmInit.consoleBacklogBytes, when given, wins */
  consoleBacklog?: number;
  /** the JIT's channel to a compiler thread (web/workers/vm-worker.ts: the page's), asked for once, when a machine
   *  with the JIT is first built; without it (or when it gives none), regions are built on the VM's thread */
  jitCompiler?: (hart: WebAssembly.Module) => RegionCompiler | undefined;
}

/** A backlog bound as asked for, made whole and at least CONSOLE_BACKLOG_MIN. */
export function consoleBacklogBytes(asked: number | undefined): number {
  if (asked === undefined || Number.isNaN(asked)) return CONSOLE_BACKLOG;
  return Math.max(CONSOLE_BACKLOG_MIN, Math.floor(asked));
}

/** One VM: what its worker does (web/workers/vm-worker.ts only exposes it through comlink). */
export class VmHost implements VmWorkerApi {
  private cfg: VmInit | undefined;
  /** the checked description, or why it cannot be built */
  private spec: MachineSpec | undefined;
  private specProblem = "";
  private nics = new VmNics();
  private onEvent: (e: VmEvent) => void = () => {};
  private ctrl!: Int32Array;
  private output!: ByteRing;
  private input!: ByteRing;
  private machine: Machine | undefined;
  private runner!: MachineRunner;
  private state: VmState = "created";
  private ready = false;
  /** console output that did not fit the ring, oldest first (at most CONSOLE_BACKLOG bytes; see emitBytes) */
  private overflow: Uint8Array[] = [];
  private overflowBytes = 0;
  /** line feeds in `overflow` */
  private overflowLines = 0;
  /** bytes dropped from the backlog's front since the last skip mark went out */
  private skippedBytes = 0;
  /** the most bytes the backlog holds (consoleBacklogBytes) */
  private backlogLimit = CONSOLE_BACKLOG;
  private markerTail = "";
  private readonly channel = new MessageChannel();
  private yieldResolve: (() => void) | undefined;
  /** percent of one core the guest may use (100: no cap) */
  private cpuCap = 100;
  private capWindowStart = 0;
  /** host ms the guest ran in the current cap window (plus any overrun carried from the last) */
  private capWindowBusy = 0;
  private throttledMs = 0;
  private readonly countThrottled = (ms: number) => { this.throttledMs += ms; };
  /** the control channel to the guest's agent (commands, files in and out) */
  private readonly agent = new VmAgent(() => this.wakeLoop(),
    () => (this.state === "running" || this.state === "booting" ? undefined : `the VM is ${this.state === "created" ? "not started" : this.state}`));
  /** the in-memory disks: their contents survive resets and power cycles (a restore brings new ones, with the
   *  saved contents) */
  private disks: LayeredDisk[] = [];
  /** where each persistent disk is kept (VmInit.disk); undefined for a disk in memory only */
  private volumes: (DiskVolume | undefined)[] = [];
  /** the persistent disks are being opened: the first start waits for it */
  private diskOpening: Promise<void> | undefined;
  /** what is wrong with the disk, as last reported to the page */
  private diskProblem: string | undefined;
  /** the disk is being replaced (reset, import) or exported: the VM may not start meanwhile */
  private diskBusy = false;
  /** asynchronous disk operations under way (the run loop must not block the thread meanwhile) */
  private diskWork = 0;
  private lastWriteBack = 0;
  /** balloon target (4 KiB pages), kept across reboots */
  private balloonPages = 0;
  /** machines built from now on get the JIT (VmInit.jit, setJit) */
  private jit = false;
  /** the JIT's compiler thread (VmHostOptions.jitCompiler), asked for when a machine with the JIT is first built */
  private regionCompiler: RegionCompiler | undefined;
  private regionCompilerAsked = false;
  private bootAt = 0;
  /** the opened template, when the page offered one */
  private template: VmInit["template"];
  /** what the first start restores instead of booting */
  private origin: VmOrigin | undefined;
  /** the first start receives the machine by live migration instead */
  private incoming: VmIncoming | undefined;
  /** a live migration out is under way: the loop must not block in Atomics.wait (the other side's messages
   *  have to get in) */
  private migrating = false;
  /** the machine was migrated away: it never runs here again */
  private departed = false;
  /** a start from a saved machine is under way (asynchronous); `built` settles when it is over */
  private building = false;
  private built: Promise<void> = Promise.resolve();
  private startedFrom: VmStart | undefined;
  private startMs = 0;
  private lastHoldMs: number | undefined;
  /** while above zero the run loop is parked (see holding) */
  private holds = 0;
  private parked: Promise<void> | undefined;
  private unpark: (() => void) | undefined;
  /** the end of the console output, for the next snapshot */
  private readonly tail = new Uint8Array(CONSOLE_TAIL);
  private tailLength = 0;

  constructor(private readonly opts: VmHostOptions = {}) {
    this.backlogLimit = consoleBacklogBytes(opts.consoleBacklog);
    this.channel.port1.onmessage = () => { const r = this.yieldResolve; this.yieldResolve = undefined; r?.(); };
  }

  init(init: VmInit, onEvent: (e: VmEvent) => void): void {
    if (this.cfg) throw new Error("the VM worker is already initialised");
    this.cfg = init;
    this.onEvent = onEvent;
    if (init.consoleBacklogBytes !== undefined) this.backlogLimit = consoleBacklogBytes(init.consoleBacklogBytes);
    this.ctrl = new Int32Array(init.ctrl);
    if (init.stats) this.statsOut = new StatsBlockWriter(init.stats);
    this.output = new ByteRing(init.output);
    this.input = new ByteRing(init.input);
    this.nics = new VmNics(init.nics);
    try {
      if (init.unavailable) throw new Error(init.unavailable);
      const spec = validateSpec(init.spec);
      if (spec.nics.length !== this.nics.count) {
        throw new MachineSpecError("nics", `lists ${spec.nics.length} cards but the VM was given ${this.nics.count}`);
      }
      this.disks = spec.disks.map((d) => new LayeredDisk(d.sizeBytes, { readOnly: d.readOnly, base: this.baseFor(d) }));
      this.spec = spec;
      if (init.disk && spec.disks.some((d) => !d.readOnly)) {
        this.diskOpening = this.diskTask(() => this.openDisks(init.disk!, spec)).finally(() => { this.diskOpening = undefined; });
      }
    } catch (e) {
      this.specProblem = e instanceof RangeError
        ? `the browser could not give this VM its disk (${e.message})`
        : (e as Error).message;
    }
    this.cpuCap = clampCap(init.cpuCap ?? 100);
    this.balloonPages = Math.max(0, Math.floor(((init.balloonMiB ?? 0) * MiB) / 4096));
    this.jit = init.jit === true;
    this.origin = init.from;
    this.incoming = init.incoming;
    this.template = init.template;
    this.runner = new MachineRunner(this.runnerHost(), undefined, { maxSleepMs: MAX_SLEEP_MS });
    this.setState("created");
    void this.runner.run();
  }

  // Each control call first takes itself off the page's count of pending calls (see CTRL.PENDING_CALLS).
  /** The counters for the page's meters, in shared memory (stats-block.ts): published as the loop turns, so the
   *  page reads them without a message. */
  private statsOut: StatsBlockWriter | undefined;
  private publishStats(force = false): void {
    const out = this.statsOut;
    if (!out || (!force && !out.due())) return;
    this.askMemoryStats();
    out.publish(this.stats(false));
  }

  // The guest's memory statistics (virtio-balloon's stats queue) cost the guest more to gather than anything else an
  // idle VM does: memory-stats-pacer.ts decides when they are asked for.
  private readonly memStats = new MemoryStatsPacer();
  private askMemoryStats(): void {
    const m = this.poweredOn ? this.machine : undefined;
    const b = m?.balloon;
    if (!m || !b || !this.memStats.due(performance.now(), m.hart.instret, b.stats?.memAvailable ?? b.stats?.memFree)) return;
    b.requestStats();
  }

  /** A timer of the worker's own: the loop does not block in Atomics.wait while one is due (it would fire only when
   *  the sleep ends, up to MAX_SLEEP_MS late). */
  private timersPending = 0;
  private later(fn: () => void, ms: number): void {
    this.timersPending++;
    setTimeout(() => { this.timersPending--; fn(); }, ms);
  }

  private took(): void {
    if (!this.cfg) throw new Error("the VM worker is not initialised");
    Atomics.sub(this.ctrl, CTRL.PENDING_CALLS, 1);
  }

  start(): VmStats {
    this.took();
    if (this.departed) return this.stats(false);
    if (this.diskBusy) {
      this.emit("\r\n\x1b[33m[the disk is being replaced or exported: power on when that is done]\x1b[0m\r\n");
      return this.stats(false);
    }
    if (this.state === "created" || this.state === "stopped" || this.state === "error") this.boot(false);
    return this.stats(false);
  }

  pause(): VmStats {
    this.took();
    if (this.state === "running" || this.state === "booting") this.setState("paused");
    return this.stats(false);
  }

  resume(): VmStats {
    this.took();
    if (this.state === "paused") this.setState(this.ready ? "running" : "booting");
    return this.stats(false);
  }

  reset(): VmStats {
    this.took();
    if (!this.building && !this.departed && !this.migrating) this.boot(true); // a start from a saved machine is about to finish: it is the reset
    return this.stats(false);
  }

  powerOff(): VmStats {
    this.took();
    if (this.poweredOn && !this.migrating) {
      this.emit("\r\n\x1b[2m[powered off]\x1b[0m\r\n");
      this.setState("stopped", "powered off");
    }
    return this.stats(false);
  }

  stats(counted = true): VmStats {
    // the page asks once a second: have the guest refresh its memory statistics for the next
    if (counted) {
      this.took();
      if (this.poweredOn) this.machine?.balloon?.requestStats();
    }
    const m = this.machine;
    const on = this.poweredOn ? m : undefined;
    const halted = m?.halted && (this.state === "stopped" || this.state === "error");
    return {
      state: this.state,
      instret: on ? Number(on.hart.instret) : 0,
      busyMs: m?.busyMs ?? 0,
      idleMs: m?.idleMs ?? 0,
      haltReason: halted ? m.haltReason : undefined,
      exitStatus: halted ? m.exitStatus : undefined,
      atMs: performance.now(),
      throttledMs: this.throttledMs,
      cpuCap: this.cpuCap,
      uptimeMs: on ? performance.now() - this.bootAt : 0,
      disk: this.diskStats(),
      net: this.netStats(on),
      balloon: on ? this.balloonStats(on) : undefined,
      startedFrom: m ? this.startedFrom : undefined,
      startMs: m ? this.startMs : undefined,
      lastHoldMs: this.lastHoldMs,
      jit: on ? jitStats(on) : undefined,
    };
  }

  setCpuCap(percent: number): VmStats {
    this.took();
    this.cpuCap = clampCap(percent);
    return this.stats(false);
  }

  setJit(on: boolean): VmStats {
    this.took();
    this.jit = on === true;
    return this.stats(false);
  }

  setBalloon(mib: number): VmStats {
    this.took();
    this.balloonPages = Math.max(0, Math.floor(((Number.isFinite(mib) ? mib : 0) * MiB) / 4096));
    this.machine?.balloon?.setTarget(this.balloonPages);
    // the guest's memory is about to move: its statistics are asked for at the quick pace again
    this.memStats.quicken();
    return this.stats(false);
  }

  injectHang(): void {
    this.took();
    this.later(() => { for (;;) { /* never yields: the page must notice and replace the worker */ } }, 0);
  }

  injectFault(): void {
    this.took();
    this.later(() => { throw new Error("fault injected into the VM worker (test)"); }, 0);
  }

  agentExec(command: string, opts?: ExecOptions): Promise<ExecResult> {
    return this.agent.exec(command, opts);
  }

  async agentPut(path: string, data: Uint8Array, opts: { mode?: number; transfer?: string } = {}): Promise<void> {
    await this.agent.put(path, data, opts.mode, this.progress(opts.transfer));
  }

  async agentGet(path: string, opts: { maxBytes?: number; transfer?: string } = {}): Promise<Uint8Array> {
    return this.agent.get(path, opts.maxBytes, this.progress(opts.transfer));
  }

  /** Transfer progress as events, at most every 100 ms and at the end. */
  private progress(transfer: string | undefined): ((done: number, total: number) => void) | undefined {
    if (!transfer) return undefined;
    let last = 0;
    return (done, total) => {
      const now = performance.now();
      if (done < total && now - last < 100) return;
      last = now;
      this.event({ kind: "transfer", id: transfer, done, total });
    };
  }

  async snapshot(info: { name?: string; vmName: string }): Promise<Uint8Array> {
    this.took();
    const m = this.liveMachine();
    // takeSnapshot (snapshot.ts), with the console's last lines in the header so a restore can show them again.
    // The guest is held while its state is read; the state is a copy (RAM pages, device fields), so the guest runs
    // on while it is encoded and compressed (about 0.3 s for a booted 128 MiB VM).
    const createdAt = new Date().toISOString();
    const { state, console } = await this.holding(async () => ({ state: await m.saveState(), console: this.consoleTail() }), true);
    const file = await writeSnapshotFile({ machine: m.spec, createdAt, ...info, console }, state);
    return file;
  }

  async saveState(): Promise<VmOrigin> {
    this.took();
    const m = this.liveMachine();
    // the disks are not copied: what was written since the last fork is frozen into a shared layer that this VM
    // and the fork both read from (copy-on-write)
    const { state, disks } = await this.holding(async () => {
      const state = await m.saveState({ withoutDisks: true });
      return { state, disks: this.disks.map((d) => d.fork()) };
    }, true);
    return { spec: m.spec, state, console: this.consoleTail(), disks };
  }

  async restore(from: VmOrigin): Promise<VmStats> {
    this.took();
    if (this.migrating || this.departed) throw new Error("the VM is being migrated to another tab");
    await this.built; // a start from the template or a snapshot finishes first: this one replaces it
    // The running machine goes on meanwhile: the new one has its own memory and its own disks.
    const t0 = performance.now();
    const { machine, disks, pending, renamed } = await this.buildFrom(from);
    this.commitDisks(pending);
    this.install(machine, disks, "snapshot", performance.now() - t0);
    this.input.clear(); // typed for the machine that is gone
    this.dropBacklog();
    this.showRestored(from);
    this.bootAt = performance.now();
    const paused = this.state === "paused";
    // a guest told a new identity prints its ready marker again; one that keeps its own is up already
    this.ready = !renamed;
    this.markerTail = "";
    this.setState(paused ? "paused" : renamed ? "booting" : "running");
    if (this.ready) this.event({ kind: "ready" });
    return this.stats(false);
  }

  async migrateOut(channel: string, to: string): Promise<VmMigrationReport> {
    this.took();
    const m = this.liveMachine();
    if (this.migrating) throw new Error("the VM is being migrated already");
    const port = broadcastPort(channel);
    const sender = new MigrationSender(port);
    let release: (() => void) | undefined;
    let heldAt = 0;
    this.migrating = true;
    try {
      // migrateOut (migration.ts): RAM goes while the guest runs (the run loop goes on between messages: each send
      // waits for room in the link's window, and the loop gives the event loop a turn after every slice)
      const stats = await migrateOut(m, {
        hold: () => { release ??= this.hold(); heldAt = performance.now(); },
        release: () => { release?.(); release = undefined; },
        yield: () => new Promise((r) => setTimeout(r, 0)),
      }, (msg) => sender.send(msg, msg.kind === "end" ? this.consoleTail() : undefined));
      await sender.finished();
      const downtimeMs = performance.now() - heldAt;
      // it runs in the other tab now: this copy stays held for good, and lets its disks' files go (the page removes
      // them with the VM: the disk went with the machine)
      this.departed = true;
      for (const v of this.volumes) v?.close();
      for (const d of this.disks) d.detach();
      this.emit(`\r\n\x1b[2m[migrated to ${to}]\x1b[0m\r\n`);
      this.setState("stopped", `migrated to ${to}`);
      return { ...stats, downtimeMs };
    } catch (e) {
      sender.abort((e as Error).message);
      release?.(); // the guest runs on here
      throw new Error(`the migration to ${to} failed: ${(e as Error).message}`);
    } finally {
      this.migrating = false;
      port.close();
    }
  }

  /** The guest is booting, running or paused (not off, crashed or never started). */
  private get poweredOn(): boolean {
    return this.state === "booting" || this.state === "running" || this.state === "paused";
  }

  /** The first disk's counters (they count from the worker's start: the device lives as long as the machine). */
  private diskStats(): VmStats["disk"] {
    const backend = this.disks[0];
    if (!backend) return undefined;
    const blk = this.machine?.disks[0];
    return {
      sizeBytes: backend.size, ownBytes: backend.ownBytes, sharedBytes: backend.sharedBytes,
      persistent: backend.persistent, storedBytes: backend.storedBytes, problem: this.diskProblem,
      readBytes: blk?.readBytes ?? 0, writeBytes: blk?.writeBytes ?? 0, reads: blk?.reads ?? 0, writes: blk?.writes ?? 0,
    };
  }

  private netStats(m: Machine | undefined): VmNetStats {
    const n: VmNetStats = { cards: 0, rxBytes: 0, txBytes: 0, rxPackets: 0, txPackets: 0 };
    for (const nic of this.machine?.nics ?? []) {
      n.rxBytes += nic.rxBytes; n.txBytes += nic.txBytes; n.rxPackets += nic.rxPackets; n.txPackets += nic.txPackets;
    }
    n.cards = m?.nics.length ?? 0;
    return n;
  }

  private balloonStats(m: Machine): VmStats["balloon"] {
    const b = m.balloon;
    if (!b) return undefined;
    const s = b.stats;
    return {
      ramPages: b.ramPages, targetPages: b.targetPages, actualPages: b.actualPages, inflatedPages: b.inflatedPages,
      deflateOnOom: b.deflateOnOom,
      memTotal: s?.memTotal, memFree: s?.memFree, memAvailable: s?.memAvailable, diskCaches: s?.diskCaches,
      statsAgeMs: b.statsAt === undefined ? undefined : performance.now() - b.statsAt,
    };
  }

  /** Powers the guest on: the machine is built the first time (or restored from a saved one), power-cycled in
   *  place after that. */
  private boot(clearScreen: boolean): void {
    this.ready = false;
    this.markerTail = "";
    this.input.clear();
    // Output the old guest had not got out yet is dropped; the terminal is reset in-band so the page needs no
    // separate message that could overtake the bytes still in the ring.
    this.dropBacklog();
    if (clearScreen) { this.overflow = [TERMINAL_RESET]; this.overflowBytes = TERMINAL_RESET.length; this.overflowLines = 0; }
    const opening = this.diskOpening;
    if (opening) {
      // the disks come from the browser's storage first (a few ms); then this start goes on as it would have
      this.building = true;
      this.setState("booting");
      const after: Promise<void> = opening.then(() => {
        this.building = false;
        if (this.state !== "booting") return undefined; // powered off meanwhile
        this.boot(false);
        // a start from a saved machine goes on asynchronously: `built` settles when it does
        return this.built !== after ? this.built : undefined;
      });
      this.built = after;
      return;
    }
    if (!this.machine && (this.origin || this.incoming || this.templateFits())) {
      const origin = this.origin, incoming = this.incoming;
      this.origin = this.incoming = undefined; // only the first start: a power cycle boots
      this.tailLength = 0;
      this.nics.booted();
      this.bootAt = performance.now();
      this.setState("booting");
      this.built = incoming ? this.arrive(incoming) : this.startFrom(origin);
      return;
    }
    let failure: string | undefined;
    try {
      const t0 = performance.now();
      // a machine built with the other JIT setting is replaced by a new one (its disks and cards go over to it): a
      // hart's JIT cannot be turned off, and the setting is the user's to compare the two
      if (this.machine && hasJit(this.machine) === this.jit) this.machine.reboot();
      else this.install(this.build(), this.disks, "boot", 0);
      this.startedFrom = "boot";
      this.startMs = performance.now() - t0;
    } catch (e) {
      failure = this.buildFailure(e);
    }
    if (failure !== undefined) {
      this.emit(`\r\n\x1b[31m${failure}\x1b[0m\r\n`);
      this.setState("error", failure);
      return;
    }
    this.tailLength = 0;
    this.nics.booted();
    this.bootAt = performance.now();
    this.setState("booting");
  }

  /** What to say when a machine cannot be built. */
  private buildFailure(e: unknown): string {
    // a memory the browser cannot give (too large, or too many VMs in this tab) says so
    return e instanceof RangeError && /allocate/i.test(e.message)
      ? `the browser could not give this VM its ${this.cfg!.spec.ramMiB} MiB of RAM (${e.message}): delete other VMs or give it less`
      : e instanceof BootError || e instanceof MachineSpecError || e instanceof RangeError || e instanceof SnapshotError ? e.message
      : `the VM could not be built: ${(e as Error).message}`;
  }

  private build(): Machine {
    const cfg = this.cfg!;
    if (!this.spec) throw new MachineSpecError("the description", `cannot be built: ${this.specProblem}`);
    return Machine.create(cfg.hart, this.spec, this.attachments(this.disks), this.machineOptions());
  }

  /** What every machine built here is built with (boot, template, snapshot, fork, migration alike). */
  private machineOptions(): MachineOptions {
    if (this.jit && !this.regionCompilerAsked && this.opts.jitCompiler) {
      this.regionCompilerAsked = true;
      this.regionCompiler = this.opts.jitCompiler(this.cfg!.hart);
    }
    return { jit: this.jit, jitCompiler: this.regionCompiler };
  }

  private attachments(disks: LayeredDisk[]): MachineAttachments {
    return {
      boot: this.cfg!.images, disks, nics: this.nics.attachments(), onConsole: (bytes) => this.onConsole(bytes),
      // a disk request that completes later (a base fetched on first use) must wake a guest idling in WFI
      wake: () => this.wakeLoop(),
    };
  }

  /** Makes `m` the VM's machine (the one before it, if any, is dropped). */
  private install(m: Machine, disks: LayeredDisk[], from: VmStart, ms: number): void {
    this.machine = m;
    this.agent.bind(m);
    // the disks of a machine replaced: their stores were closed when the new ones were committed
    for (const d of this.disks) if (!disks.includes(d)) d.detach();
    this.disks = disks;
    this.nics.bind(m.nics);
    m.balloon?.setTarget(this.balloonPages);
    this.runner.machine = m;
    this.startedFrom = from;
    this.startMs = ms;
  }

  /** The template fits this VM: same shape, and a command line that says nothing the template would not do. */
  private templateFits(): boolean {
    const t = this.template, spec = this.spec;
    return !!t && !!spec && PLAIN_CMDLINE.test(spec.cmdline) && templateShape(t.spec) === templateShape(spec);
  }

  private readonly restoreFn: RestoreFn = (spec, att, state, opts) => Machine.restore(this.cfg!.hart, spec, att, state, opts, this.machineOptions());

  /** The first start from a saved machine (or the template), asynchronously; the VM shows "booting" meanwhile. */
  private async startFrom(origin: VmOrigin | undefined): Promise<void> {
    this.building = true;
    const t0 = performance.now();
    const build = async (): Promise<void> => {
      if (origin) {
        const { machine, disks, pending, renamed } = await this.buildFrom(origin);
        this.commitDisks(pending);
        this.install(machine, disks, "snapshot", performance.now() - t0);
        this.showRestored(origin);
        this.ready = !renamed;
        return;
      }
      // startFromTemplate (template.ts), with the template the page opened once for every VM
      let m: Machine;
      try {
        m = await startAs(this.restoreFn, this.template!, this.spec!, this.attachments(this.disks), { skipDisks: true, freshPrompt: true });
      } catch (e) {
        if (!(e instanceof SnapshotError)) throw e;
        console.warn(`the template snapshot does not restore, the VM boots instead: ${e.message}`);
        this.install(this.build(), this.disks, "boot", performance.now() - t0);
        return;
      }
      this.install(m, this.disks, "template", performance.now() - t0);
    };
    try {
      // the state and the ready event go out while the guest is held: once it runs, the loop may sleep in
      // Atomics.wait (an idle guest) and what came after would wait for the guest's next timer
      await this.holding(async () => {
        await build();
        this.building = false;
        this.bootAt = performance.now();
        if (this.ready && this.state === "booting") this.setState("running");
        if (this.ready) this.event({ kind: "ready" });
      });
    } catch (e) {
      const failure = this.buildFailure(e);
      this.emit(`\r\n\x1b[31m${failure}\x1b[0m\r\n`);
      this.setState("error", failure);
    } finally {
      this.building = false;
    }
  }

  /** The first start of a VM live-migrated here: the machine comes in pages over the link (migration-link.ts)
   *  into a blank board of this VM's description, which must be the source's (the same shape, host name and
   *  MACs: it is the same VM, moved). */
  private async arrive(incoming: VmIncoming): Promise<void> {
    this.building = true;
    const t0 = performance.now();
    const port = broadcastPort(incoming.channel);
    // the disks are written from the arriving state: persistent ones into new generations, made current once the
    // machine is whole
    let fresh: { disks: LayeredDisk[]; pending: (OverlayFile | undefined)[] } = { disks: [], pending: [] };
    try {
      if (this.spec) fresh = await this.diskTask(() => this.newDisks());
    } catch (e) {
      const failure = `the migration from ${incoming.from} failed: ${(e as Error).message}`;
      this.emit(`\r\n\x1b[31m${failure}\x1b[0m\r\n`);
      this.setState("error", failure);
      this.building = false;
      port.close();
      return;
    }
    const disks = fresh.disks;
    const target = new MigrationTarget((spec) => {
      const own = this.spec;
      if (!own) throw new MachineSpecError("the description", `cannot be built: ${this.specProblem}`);
      const why = shapeMismatch(spec, own, "this VM") ?? (sameIdentity(spec, own) ? undefined : "the arriving machine has another host name or other MACs than this VM");
      if (why) throw new SnapshotError(why);
      return Machine.blank(this.cfg!.hart, own, this.attachments(disks), this.machineOptions());
    });
    const link = new MigrationReceiver(port, target);
    try {
      // Everything up to the guest's first instruction happens while it is held: once the hold is released the run
      // loop may sleep in Atomics.wait (an idle guest), and what came after would wait for its next timer.
      await this.holding(async () => {
        const { machine, console } = await link.arrival;
        this.commitDisks(fresh.pending);
        this.install(machine, disks, "migration", performance.now() - t0);
        this.showRestored({ console, label: `migrated from ${incoming.from}` });
        link.confirm();
        // the switches learn where the cards are now (the guest itself may stay quiet for a long time); repeated a
        // few times in case one is lost
        this.nics.announce();
        for (const ms of ANNOUNCE_DELAYS_MS) this.later(() => { if (this.runs) this.nics.announce(); }, ms);
        this.bootAt = performance.now();
        this.ready = true;
        if (this.state === "booting") this.setState(incoming.paused ? "paused" : "running");
        this.event({ kind: "ready" });
      });
    } catch (e) {
      link.fail((e as Error).message);
      await this.discardDisks(fresh.pending);
      const failure = `the migration from ${incoming.from} failed: ${(e as Error).message}`;
      this.emit(`\r\n\x1b[31m${failure}\x1b[0m\r\n`);
      this.setState("error", failure);
      return;
    } finally {
      this.building = false;
      port.close();
    }
  }

  /** A new machine (with new disks) from a saved one, beside whatever runs now. A guest that gets another host
   *  name or MAC than it had is told so by its agent (it then takes its own DHCP lease): `renamed`. */
  private async buildFrom(from: VmOrigin): Promise<{ machine: Machine; disks: LayeredDisk[]; pending: (OverlayFile | undefined)[]; renamed: boolean }> {
    const spec = this.spec;
    if (!spec) throw new MachineSpecError("the description", `cannot be built: ${this.specProblem}`);
    const why = shapeMismatch(from.spec, spec, "this VM");
    if (why) throw new SnapshotError(why);
    // a fork's disks start on the original's shared layers; a snapshot's are written in by the restore. Persistent
    // ones are new generations of the VM's disks, made current only once the machine is whole (commitDisks).
    const fresh = await this.diskTask(() => this.newDisks(from.disks));
    try {
      const att = this.attachments(fresh.disks);
      if (sameIdentity(from.spec, spec)) {
        const machine = await Machine.restore(this.cfg!.hart, spec, att, from.state, {}, this.machineOptions());
        sendHostTime(machine);
        return { machine, ...fresh, renamed: false };
      }
      const machine = await startAs(this.restoreFn, from, spec, att, { skipDisks: false, freshPrompt: false });
      return { machine, ...fresh, renamed: true };
    } catch (e) {
      await this.discardDisks(fresh.pending);
      throw e;
    }
  }

  /** Disks for a machine that replaces the VM's (a restore, a fork's copy, a migration's arrival): in memory, or
   *  for persistent ones over new generations of their stores (`pending`), which commitDisks makes current. */
  private async newDisks(shared?: SharedDisk[]): Promise<{ disks: LayeredDisk[]; pending: (OverlayFile | undefined)[] }> {
    const spec = this.spec!;
    const pending: (OverlayFile | undefined)[] = [];
    try {
      const disks: LayeredDisk[] = [];
      for (let i = 0; i < spec.disks.length; i++) {
        const d = spec.disks[i];
        const store = pending[i] = await this.volumes[i]?.begin();
        let disk: LayeredDisk;
        try {
          disk = new LayeredDisk(d.sizeBytes, { readOnly: d.readOnly, from: shared?.[i], base: this.baseFor(d), store, onFull: this.onDiskFull });
        } catch (e) {
          throw new SnapshotError(`the forked disk cannot be used: ${(e as Error).message}`);
        }
        // a fork's contents go into the copy's own store before it runs (they are not kept in memory)
        disk.absorbLayers();
        disks.push(disk);
      }
      return { disks, pending };
    } catch (e) {
      await this.discardDisks(pending);
      throw e;
    }
  }

  /** Makes the new generations of a replacement machine's disks current (at once: the caller installs the machine
   *  right after, with nothing awaited between). */
  private commitDisks(pending: (OverlayFile | undefined)[]): void {
    pending.forEach((o, i) => { if (o) void this.volumes[i]!.commit(o); });
    this.diskProblem = undefined;
  }

  private async discardDisks(pending: (OverlayFile | undefined)[]): Promise<void> {
    await Promise.all(pending.map((o, i) => o && this.volumes[i]?.discard(o)));
  }

  /** Opens the VM's persistent disks (the first start waits for this). A disk that cannot be opened stays in
   *  memory, and the page is told. */
  private async openDisks(init: VmDiskInit, spec: MachineSpec): Promise<void> {
    for (let i = 0; i < spec.disks.length; i++) {
      const d = spec.disks[i];
      if (d.readOnly) continue;
      try {
        const capacity = init.quotaBytes !== undefined ? Math.max(0, Math.floor(init.quotaBytes / DISK_BLOCK)) : Infinity;
        const volume = await DiskVolume.open(await opfsDiskDir(init.name, i), d.sizeBytes, d.base ?? BLANK_BASE, init.mode, capacity);
        this.volumes[i] = volume;
        this.disks[i] = new LayeredDisk(d.sizeBytes, { base: this.baseFor(d), store: volume.current, onFull: this.onDiskFull });
        if (volume.problem) this.reportDisk(`${volume.problem}; the disk starts empty`);
      } catch (e) {
        this.reportDisk(`the disk could not be opened in the browser's storage (${(e as Error).message}): it is kept in memory only, and lost when the page goes`);
      }
    }
  }

  private readonly onDiskFull = (why: string) => this.reportDisk(why);

  /** The read-only image under a disk that names one (a system image fetched in chunks as the guest reads it, and
   *  kept in the page's Cache Storage); undefined for a disk that starts as zeros. One per worker, shared by the
   *  machines it builds (a restore, a fork's copy): the chunks it fetched are kept. */
  private baseFor(d: DiskSpec): DiskBase | undefined {
    if (d.base === undefined) return undefined;
    const given = this.cfg!.diskBase;
    if (!given || given.id !== d.base) {
      throw new MachineSpecError("disks", `the disk starts from the image ${d.base}, which this page does not have (the Debian image is built with npm run images:debian)`);
    }
    return this.systemImage ??= new ChunkedImage(checkManifest(given.manifest), given.id,
      new HttpChunkSource(given.url, typeof caches !== "undefined" ? new CacheStorageChunks() : undefined));
  }
  private systemImage: ChunkedImage | undefined;

  /** Writes the persistent disks' cached blocks out to their stores (a failure is the next FLUSH's to report). */
  private writeBackDisks(): void {
    this.lastWriteBack = performance.now();
    if (this.diskBusy) return;
    for (const d of this.disks) {
      if (d.persistent && d.ownBytes > 0) try { d.writeBack(); } catch { /* kept in memory */ }
    }
  }

  /** Runs an asynchronous disk operation with the run loop kept from blocking the thread (its awaits must get in). */
  private async diskTask<T>(fn: () => Promise<T>): Promise<T> {
    this.diskWork++;
    try {
      return await fn();
    } finally {
      this.diskWork--;
    }
  }

  /** Tells the page (and the console) what went wrong with the disk, once per problem. */
  private reportDisk(problem: string): void {
    if (this.diskProblem === problem) return;
    this.diskProblem = problem;
    if (this.cfg) this.emit(`\r\n\x1b[31m[disk: ${problem}]\x1b[0m\r\n`);
    this.event({ kind: "disk", problem });
  }

  /** The machine cannot be using the disk now (it is off and nothing else is under way with it). */
  private diskIdle(what: string): LayeredDisk {
    const d = this.disks[0];
    if (!d || d.readOnly) throw new Error("this VM has no disk");
    if (this.poweredOn || this.building || this.migrating || this.departed) throw new Error(`power the VM off to ${what}`);
    if (this.diskBusy) throw new Error("the disk is busy with another operation");
    return d;
  }

  /** Replaces the first disk's contents whole: a new generation filled by `fill` becomes the disk, or (when
   *  anything fails) is dropped and the disk stays as it was. */
  private async replaceDisk(cur: LayeredDisk, fill?: (d: LayeredDisk) => Promise<void>): Promise<void> {
    this.diskBusy = true;
    const volume = this.volumes[0];
    let store: OverlayFile | undefined;
    try {
      store = await volume?.begin();
      const fresh = new LayeredDisk(cur.size, { base: this.baseFor(this.spec!.disks[0]), store, onFull: () => {} });
      await fill?.(fresh);
      fresh.flush();
      if (store) void volume!.commit(store);
      store = undefined;
      cur.adopt(fresh);
      this.diskProblem = undefined;
    } finally {
      if (store) await volume!.discard(store);
      this.diskBusy = false;
    }
  }

  async resetDisk(): Promise<VmStats> {
    this.took();
    const cur = this.diskIdle("reset its disk");
    await this.diskTask(() => this.replaceDisk(cur));
    return this.stats(false);
  }

  async importDisk(image: Blob): Promise<VmStats> {
    this.took();
    const cur = this.diskIdle("import a disk image");
    const mib = (n: number) => `${(n / 1048576).toFixed(n % 1048576 ? 2 : 0)} MiB`;
    if (image.size !== cur.size) {
      throw new Error(`the image is ${mib(image.size)} (${image.size} bytes) but this VM's disk is ${mib(cur.size)}: an image must be exactly the disk's size`);
    }
    await this.diskTask(() => this.replaceDisk(cur, async (d) => {
      for (let at = 0; at < cur.size; at += IMAGE_CHUNK) {
        const n = Math.min(IMAGE_CHUNK, cur.size - at);
        const bytes = new Uint8Array(await image.slice(at, at + n).arrayBuffer());
        if (bytes.length !== n) throw new Error("the image file changed while it was read");
        try {
          d.write(at, bytes); // blocks of zeros over the blank base take no room
        } catch (e) {
          throw new Error(`the image does not fit the disk's storage (${(e as Error).message})`);
        }
      }
    }));
    return this.stats(false);
  }

  async exportDisk(onChunk: (bytes: Uint8Array) => void | Promise<void>): Promise<number> {
    this.took();
    const d = this.disks[0];
    if (!d || d.readOnly) throw new Error("this VM has no disk");
    if (this.diskBusy || this.migrating || this.departed) throw new Error("the disk is busy with another operation");
    const send = async () => {
      for (let at = 0; at < d.size; at += IMAGE_CHUNK) {
        const bytes = new Uint8Array(Math.min(IMAGE_CHUNK, d.size - at));
        d.read(at, bytes);
        await onChunk(bytes);
      }
      return d.size;
    };
    this.diskBusy = true;
    try {
      // a running guest is held while its disk is read: the image is the disk at one instant (as at a power cut),
      // not pieces of different moments
      return this.machine && this.poweredOn && !this.building ? await this.holding(send) : await this.diskTask(send);
    } finally {
      this.diskBusy = false;
    }
  }

  /** The terminal starts over with the saved machine's last console lines and a note of where it came from. */
  private showRestored(from: { console?: string; label?: string }): void {
    this.tailLength = 0;
    this.emitBytes(TERMINAL_RESET);
    if (from.console) this.emit(from.console.replace(/\r?\n/g, "\r\n"));
    this.emit(`\r\n\x1b[2m[${from.label ?? "restored"}]\x1b[0m\r\n`);
    this.tailLength = 0; // the note is not the guest's
  }

  /** The running (or paused) machine, or an error saying there is none. */
  private liveMachine(): Machine {
    const m = this.machine;
    if (!m || this.building || !this.poweredOn || m.halted) throw new Error("the VM is not running");
    return m;
  }

  /**
   * Runs `fn` with the guest held: the run loop parks in yieldToEvents (the event loop stays free for `fn`'s
   * awaits and for control calls) and goes on once the last hold is released.
   */
  private async holding<T>(fn: () => Promise<T>, timed = false): Promise<T> {
    const release = this.hold();
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      if (timed) this.lastHoldMs = performance.now() - t0;
      release();
    }
  }

  /** Holds the guest (see holding) until the function returned is called. */
  private hold(): () => void {
    if (this.holds++ === 0) this.parked = new Promise((r) => { this.unpark = r; });
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--this.holds === 0) {
        const go = this.unpark;
        this.parked = this.unpark = undefined;
        go?.();
      }
    };
  }

  /** The console's last lines (from the first line start in the kept tail), as text. */
  private consoleTail(): string {
    const bytes = this.tail.subarray(0, this.tailLength);
    const nl = this.tailLength === CONSOLE_TAIL ? bytes.indexOf(0x0a) : -1;
    return new TextDecoder().decode(bytes.subarray(nl + 1));
  }

  private keepTail(bytes: Uint8Array): void {
    if (bytes.length >= CONSOLE_TAIL) {
      this.tail.set(bytes.subarray(bytes.length - CONSOLE_TAIL));
      this.tailLength = CONSOLE_TAIL;
      return;
    }
    const keep = Math.min(this.tailLength, CONSOLE_TAIL - bytes.length);
    if (keep < this.tailLength) this.tail.copyWithin(0, this.tailLength - keep, this.tailLength);
    this.tail.set(bytes, keep);
    this.tailLength = keep + bytes.length;
  }

  private onConsole(bytes: Uint8Array): void {
    if (!this.ready) this.scanForMarker(bytes);
    this.keepTail(bytes);
    this.emitBytes(bytes);
  }

  private scanForMarker(bytes: Uint8Array): void {
    let s = this.markerTail;
    for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    if (s.includes(GUEST_READY_MARKER)) {
      this.ready = true;
      this.markerTail = "";
      if (this.state === "booting") this.setState("running");
      this.event({ kind: "ready" });
    } else {
      this.markerTail = s.slice(-(GUEST_READY_MARKER.length - 1));
    }
  }

  private emit(text: string): void { this.emitBytes(encoder.encode(text)); }

  /** Into the output ring, or into the backlog behind it when it is full; past CONSOLE_BACKLOG the backlog's oldest
   *  bytes are dropped (counted: flushOverflow writes a mark where they were). */
  private emitBytes(bytes: Uint8Array): void {
    if (this.overflow.length === 0 && this.skippedBytes === 0) {
      const n = this.output.write(bytes);
      if (n > 0) this.wakePage();
      if (n === bytes.length) return;
      bytes = bytes.subarray(n);
    }
    // the bytes may be a view of a buffer the machine reuses: keep a copy
    this.overflow.push(bytes.slice());
    this.overflowBytes += bytes.length;
    this.overflowLines += lineFeeds(bytes);
    Atomics.store(this.ctrl, CTRL.WANT_SPACE, 1); // the page rings when it has drained the ring
    // past either bound the oldest lines go, whole (up to and with their line feed)
    while (this.overflow.length > 0 && (this.overflowBytes > this.backlogLimit || this.overflowLines > CONSOLE_BACKLOG_LINES)) {
      const head = this.overflow[0];
      const lf = head.indexOf(10);
      const drop = lf < 0 ? head.length : lf + 1;
      if (drop === head.length) this.overflow.shift();
      else this.overflow[0] = head.subarray(drop);
      if (lf >= 0) this.overflowLines--;
      this.overflowBytes -= drop;
      this.skippedBytes += drop;
    }
  }

  /** Forgets the console output not yet in the ring (a machine that is gone wrote it). */
  private dropBacklog(): void {
    this.overflow = [];
    this.overflowBytes = 0;
    this.overflowLines = 0;
    this.skippedBytes = 0;
  }

  /** Moves the backlog into the ring (after a mark for what was dropped from it); true when nothing is left behind. */
  private flushOverflow(): boolean {
    let moved = false;
    try {
      if (this.skippedBytes > 0) {
        const mark = encoder.encode(`\r\n\x1b[7m[… ${fmtBytes(this.skippedBytes)} of output skipped while the console was not shown …]\x1b[0m\r\n`);
        if (this.output.free() < mark.length) { Atomics.store(this.ctrl, CTRL.WANT_SPACE, 1); return false; }
        this.output.write(mark);
        moved = true;
        this.skippedBytes = 0;
      }
      while (this.overflow.length) {
        const b = this.overflow[0];
        const n = this.output.write(b);
        if (n > 0) { moved = true; this.overflowBytes -= n; this.overflowLines -= lineFeeds(b.subarray(0, n)); }
        if (n < b.length) {
          this.overflow[0] = b.subarray(n);
          Atomics.store(this.ctrl, CTRL.WANT_SPACE, 1); // more to come: the page rings when it has made room
          return false;
        }
        this.overflow.shift();
      }
      return true;
    } finally {
      if (moved) this.wakePage();
    }
  }

  /** New output for a page whose console pump sleeps: wake it. */
  private wakePage(): void {
    if (Atomics.load(this.ctrl, CTRL.PAGE_ASLEEP) === 0) return;
    Atomics.store(this.ctrl, CTRL.PAGE_ASLEEP, 0);
    Atomics.add(this.ctrl, CTRL.OUTPUT_BELL, 1);
    Atomics.notify(this.ctrl, CTRL.OUTPUT_BELL);
  }

  /** Typed input into the UART, as much as the guest is ready to read (the rest waits in the ring). */
  private pumpInput(m: Machine): void {
    const room = consoleInputRoom(m);
    if (room > 0 && this.input.available() > 0) m.sendInput(this.input.read(room));
  }

  private setState(state: VmState, detail?: string): void {
    if (state === "stopped" || state === "error") this.agent.stopped(`the VM stopped${detail ? ` (${detail})` : ""}`);
    this.state = state;
    Atomics.store(this.ctrl, CTRL.STATE, VM_STATES.indexOf(state));
    this.publishStats(true);
    this.event({ kind: "state", state, detail });
  }

  private event(e: VmEvent): void {
    try {
      void Promise.resolve(this.onEvent(e)).catch(() => {});
    } catch { /* the page went away */ }
  }

  /** How long the guest may run now under its CPU cap (ms; <= 0: not before the current window ends). */
  private runBudget(): number {
    const now = performance.now();
    if (this.cpuCap >= 100) {
      // nothing is owed while there is no cap (a cap set later must not pay for the time run before it)
      this.capWindowBusy = 0;
      this.capWindowStart = now;
      return SLICE_MS;
    }
    const allowance = (CAP_WINDOW_MS * this.cpuCap) / 100;
    if (now - this.capWindowStart >= CAP_WINDOW_MS) {
      // a new window; a slice that ran over the last window's allowance is paid for from this one (and every
      // window that went by meanwhile, idle or held, paid its share)
      const windows = Math.floor((now - this.capWindowStart) / CAP_WINDOW_MS);
      this.capWindowBusy = Math.max(0, this.capWindowBusy - allowance * windows);
      this.capWindowStart = now;
    }
    return Math.min(SLICE_MS, allowance - this.capWindowBusy);
  }

  /** The run loop's view of this worker: the doorbell to sleep on, and the worker's policies before each slice. */
  private runnerHost(): RunnerHost {
    return {
      // The bell is read before looking at anything it announces: a ring after that ends the sleep.
      wakeToken: () => Atomics.load(this.ctrl, CTRL.DOORBELL),
      sleep: (token, ms) => {
        // never block with a control call on its way: it could not be delivered
        if (ms <= 0 || this.holds > 0 || Atomics.load(this.ctrl, CTRL.PENDING_CALLS) > 0) return;
        // the disks' cached writes go out to their store while the guest idles (not synced: that is the guest's
        // FLUSH), so a reload or a killed tab finds them even when the guest never flushes (ext2's sync does not)
        this.writeBackDisks();
        // nor while migrating (the other tab's acknowledgements come as messages), nor while a disk operation awaits
        // the browser's storage: a short timer sleep instead
        // (a guest waiting for a disk read that fetches its image over the network is such a case too)
        if (this.migrating || this.diskWork > 0 || this.timersPending > 0 || this.machine?.disks.some((d) => d.inflight > 0)) {
          return new Promise<void>((r) => setTimeout(r, Math.min(ms, 4)));
        }
        // an agent request's time limit is a timer too: it may fire a second late, not MAX_SLEEP_MS
        if (this.agent.busy) ms = Math.min(ms, 1000);
        // what the meters show is current while the loop sleeps, and the page need not wake it to learn it lives
        this.publishStats();
        const out = this.statsOut;
        out?.sleeping(true);
        if (this.opts.sharedThread) {
          const r = waitAsync(this.ctrl, CTRL.DOORBELL, token, ms);
          if (!r.async) { out?.sleeping(false); return; }
          return (r.value as Promise<unknown>).then(() => { out?.sleeping(false); });
        }
        Atomics.wait(this.ctrl, CTRL.DOORBELL, token, ms);
        out?.sleeping(false);
      },
      wake: () => this.wakeLoop(),
      yieldToEvents: () => {
        if (this.parked) return this.parked;
        if (!this.runs && Atomics.load(this.ctrl, CTRL.PENDING_CALLS) > 0) {
          // a call is posted but not delivered yet: wait for it without spinning
          return new Promise((r) => setTimeout(r, 1));
        }
        if (this.opts.sharedThread) return new Promise((r) => setImmediate(r));
        return new Promise((r) => { this.yieldResolve = r; this.channel.port2.postMessage(null); });
      },
      beforeSlice: (m) => this.beforeSlice(m),
      afterSlice: (_m, ranMs) => { this.capWindowBusy += ranMs; },
      hasWork: (m) => this.nics.pending() ||
        (this.input.available() > 0 && consoleInputRoom(m) > 0),
      rebooted: () => {
        this.ready = false;
        this.markerTail = "";
        this.tailLength = 0;
        this.startedFrom = "boot";
        this.nics.booted();
        this.bootAt = performance.now();
        this.setState("booting");
      },
      halted: (m) => {
        // a hart fault (status 2) or a kernel panic (3) is a crash, not a power-off
        const crashed = (m.exitStatus ?? 0) >= 2;
        this.emit(`\r\n\x1b[${crashed ? 31 : 2}m[${m.haltReason}]\x1b[0m\r\n`);
        this.setState(crashed ? "error" : "stopped", m.haltReason);
      },
      failed: (_m, e) => {
        const msg = `the emulator failed: ${(e as Error).message}`;
        this.emit(`\r\n\x1b[31m${msg}\x1b[0m\r\n`);
        this.setState("error", msg);
      },
    };
  }

  /** Rings the run loop's own doorbell (as the page does): it looks around at once. */
  private wakeLoop(): void {
    Atomics.add(this.ctrl, CTRL.DOORBELL, 1);
    Atomics.notify(this.ctrl, CTRL.DOORBELL);
  }

  /** The guest is meant to run: booting or running (paused, off and crashed guests are held). */
  private get runs(): boolean { return this.state === "running" || this.state === "booting"; }

  private beforeSlice(m: Machine | undefined): SliceDecision {
    if (this.holds > 0) return hold(0); // parked (see holding)
    this.publishStats();
    if (performance.now() - this.lastWriteBack >= WRITEBACK_MS) this.writeBackDisks();
    if (this.departed) return hold(MAX_SLEEP_MS);
    if (!m || !this.runs) {
      this.flushOverflow();
      return hold(MAX_SLEEP_MS);
    }
    // The page may be behind on the console (a hidden tab draws nothing): the guest runs on, its output waits in
    // the backlog, and the page rings when it has made room (WANT_SPACE).
    this.flushOverflow();
    const budget = this.runBudget();
    if (budget <= 0) {
      // over the cap for this window: sleep until it ends (a ring still wakes us to look around)
      return hold(this.capWindowStart + CAP_WINDOW_MS - performance.now(), this.countThrottled);
    }
    this.pumpInput(m);
    this.nics.pump(); // frames the switch left for the guest
    return runSlice(budget);
  }
}

/** A CPU cap in percent of one core: 1..100 (anything else becomes the nearest; NaN: no cap). */
function clampCap(p: number): number {
  return Number.isFinite(p) ? Math.max(1, Math.min(100, p)) : 100;
}

function lineFeeds(b: Uint8Array): number {
  let n = 0;
  for (let i = b.indexOf(10); i >= 0; i = b.indexOf(10, i + 1)) n++;
  return n;
}

/** "1.5 MB", "800 KB", "12 bytes": how much output a skip mark stands for. */
function fmtBytes(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${Math.round(n / 1e3)} KB`;
  return `${n} bytes`;
}
