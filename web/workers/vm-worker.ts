// One VM in its own Web Worker: the machine (whose shared WebAssembly.Memory is the guest's RAM), the run loop,
// and the console's ends of the two byte rings. The page controls it through comlink (see VmWorkerApi); console
// bytes and wake-ups go through shared memory (see web/shared/protocol.ts).
//
// The run loop runs the guest in slices of SLICE_MS and returns to the event loop between slices, so comlink
// calls are answered within a slice. When the guest idles (WFI) it sleeps in Atomics.wait on the doorbell until
// the guest's next timer deadline or until the page rings (typed input, freed output room, a control call).

import * as Comlink from "comlink";
import { Machine, BootError } from "../../emulator-core/src/machine/machine.ts";
import { ByteRing } from "../shared/ring.ts";
import { VmNics } from "../net/vm-nics.ts"; // ---- network cards ----
// ---- dashboard: disk, balloon ----
import { VirtioMmio } from "../../emulator-core/src/machine/virtio/mmio.ts";
import { VirtioBalloon } from "../../emulator-core/src/machine/virtio/balloon.ts";
import { MemoryBlockBackend } from "../../emulator-core/src/machine/virtio/backends.ts";
import type { VirtioBlk } from "../../emulator-core/src/machine/virtio/blk.ts";
import {
  CTRL, GUEST_READY_MARKER, VM_STATES,
  type VmEvent, type VmInit, type VmState, type VmStats, type VmWorkerApi, type VmNetStats,
} from "../shared/protocol.ts";

/** Host time per runFor() call while the guest is busy. */
const SLICE_MS = 16;
/** Longest single sleep (a safety net: every reason to wake up also rings the doorbell). */
const MAX_SLEEP_MS = 1000;
/** How much typed input the UART may hold (its FIFO takes 64 KiB; stay below it so nothing is dropped). */
const UART_RX_ROOM = 60_000;
/** ESC c: resets the terminal (sent in-band ahead of a reset guest's output). */
const TERMINAL_RESET = new Uint8Array([0x1b, 0x63]);
/** CPU cap: the guest may run cap% of each window of this many ms; the rest of the window the worker sleeps. */
const CAP_WINDOW_MS = 100;
const MiB = 1024 * 1024;

const encoder = new TextEncoder();

class VmWorker implements VmWorkerApi {
  private cfg: VmInit | undefined;
  /** ---- network cards ---- (web/net/vm-nics.ts): built into each machine; pumped before each slice */
  private nics = new VmNics();
  private onEvent: (e: VmEvent) => void = () => {};
  private ctrl!: Int32Array;
  private output!: ByteRing;
  private input!: ByteRing;
  private machine: Machine | undefined;
  private state: VmState = "created";
  private ready = false;
  /** console output that did not fit the ring: the guest is held until the page has drained it */
  private overflow: Uint8Array[] = [];
  private markerTail = "";
  private readonly channel = new MessageChannel();
  private yieldResolve: (() => void) | undefined;
  private busyBefore = 0;
  private idleBefore = 0;
  // ---- dashboard: CPU cap, disk, balloon, meters ----
  /** percent of one core the guest may use (100: no cap) */
  private cpuCap = 100;
  private capWindowStart = 0;
  /** host ms the guest ran in the current cap window (plus any overrun carried from the last) */
  private capWindowBusy = 0;
  private throttledMs = 0;
  /** the in-memory disk: one per worker, so its contents survive resets and power cycles */
  private disk: MemoryBlockBackend | undefined;
  private blk: VirtioBlk | undefined;
  private diskBefore = { readBytes: 0, writeBytes: 0, reads: 0, writes: 0 };
  private netBefore: VmNetStats = { cards: 0, rxBytes: 0, txBytes: 0, rxPackets: 0, txPackets: 0 };
  private balloon: VirtioBalloon | undefined;
  /** balloon target (4 KiB pages), kept across reboots */
  private balloonPages = 0;
  private bootAt = 0;

  constructor() {
    this.channel.port1.onmessage = () => { const r = this.yieldResolve; this.yieldResolve = undefined; r?.(); };
  }

  init(init: VmInit, onEvent: (e: VmEvent) => void): void {
    if (this.cfg) throw new Error("the VM worker is already initialised");
    this.cfg = init;
    this.onEvent = onEvent;
    this.ctrl = new Int32Array(init.ctrl);
    this.output = new ByteRing(init.output);
    this.input = new ByteRing(init.input);
    this.nics = new VmNics(init.nics); // ---- network cards ----
    // ---- dashboard ----
    this.cpuCap = clampCap(init.cpuCap ?? 100);
    if (init.diskMiB && init.diskMiB > 0) this.disk = new MemoryBlockBackend(Math.floor(init.diskMiB) * MiB);
    this.balloonPages = Math.max(0, Math.floor(((init.balloonMiB ?? 0) * MiB) / 4096));
    this.setState("created");
    void this.loop();
  }

  // ---- control (comlink) ----------------------------------------------------------------------------------------
  // Each call first takes itself off the page's count of pending calls (see CTRL.PENDING_CALLS).
  private took(): void {
    if (!this.cfg) throw new Error("the VM worker is not initialised");
    Atomics.sub(this.ctrl, CTRL.PENDING_CALLS, 1);
  }

  start(): VmStats {
    this.took();
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
    this.boot(true);
    return this.stats(false);
  }

  powerOff(): VmStats {
    this.took();
    if (this.machine) {
      this.keepStats(this.machine);
      this.machine = undefined;
      this.emit("\r\n\x1b[2m[powered off]\x1b[0m\r\n");
      this.setState("stopped", "powered off");
    }
    return this.stats(false);
  }

  stats(counted = true): VmStats {
    if (counted) {
      this.took();
      // ---- dashboard ---- the page asks once a second: have the guest refresh its memory statistics for the next
      this.balloon?.requestStats();
    }
    const m = this.machine;
    return {
      state: this.state,
      instret: m ? Number(m.hart.instret) : 0,
      busyMs: this.busyBefore + (m?.busyMs ?? 0),
      idleMs: this.idleBefore + (m?.idleMs ?? 0),
      haltReason: m?.halted ? m.haltReason : undefined,
      exitStatus: m?.exitStatus,
      // ---- dashboard ----
      atMs: performance.now(),
      throttledMs: this.throttledMs,
      cpuCap: this.cpuCap,
      uptimeMs: m ? performance.now() - this.bootAt : 0,
      disk: this.disk ? {
        sizeBytes: this.disk.size,
        readBytes: this.diskBefore.readBytes + (this.blk?.readBytes ?? 0),
        writeBytes: this.diskBefore.writeBytes + (this.blk?.writeBytes ?? 0),
        reads: this.diskBefore.reads + (this.blk?.reads ?? 0),
        writes: this.diskBefore.writes + (this.blk?.writes ?? 0),
      } : undefined,
      net: this.netStats(m),
      balloon: this.balloonStats(),
    };
  }

  // ---- dashboard: resource controls ----------------------------------------------------------------------------
  setCpuCap(percent: number): VmStats {
    this.took();
    this.cpuCap = clampCap(percent);
    return this.stats(false);
  }

  setBalloon(mib: number): VmStats {
    this.took();
    this.balloonPages = Math.max(0, Math.floor(((Number.isFinite(mib) ? mib : 0) * MiB) / 4096));
    this.balloon?.setTarget(this.balloonPages);
    return this.stats(false);
  }

  injectFault(): void {
    this.took();
    setTimeout(() => { throw new Error("fault injected into the VM worker (test)"); });
  }

  private netStats(m: Machine | undefined): VmNetStats {
    const n = { ...this.netBefore };
    for (const nic of m?.nics ?? []) {
      n.rxBytes += nic.rxBytes; n.txBytes += nic.txBytes; n.rxPackets += nic.rxPackets; n.txPackets += nic.txPackets;
    }
    n.cards = m?.nics.length ?? 0;
    return n;
  }

  private balloonStats(): VmStats["balloon"] {
    const b = this.balloon;
    if (!b) return undefined;
    const s = b.stats;
    return {
      ramPages: b.ramPages, targetPages: b.targetPages, actualPages: b.actualPages, inflatedPages: b.inflatedPages,
      deflateOnOom: b.deflateOnOom,
      memTotal: s?.memTotal, memFree: s?.memFree, memAvailable: s?.memAvailable, diskCaches: s?.diskCaches,
      statsAgeMs: b.statsAt === undefined ? undefined : performance.now() - b.statsAt,
    };
  }

  /** How long the guest may run now under its CPU cap (ms; <= 0: not before the current window ends). */
  private runBudget(): number {
    if (this.cpuCap >= 100) return SLICE_MS;
    const now = performance.now();
    const allowance = (CAP_WINDOW_MS * this.cpuCap) / 100;
    if (now - this.capWindowStart >= CAP_WINDOW_MS) {
      // a new window; a slice that ran over the last window's allowance is paid for from this one
      this.capWindowBusy = Math.max(0, this.capWindowBusy - allowance);
      this.capWindowStart = now;
    }
    return Math.min(SLICE_MS, allowance - this.capWindowBusy);
  }

  // ---- the machine --------------------------------------------------------------------------------------------
  /** busyMs/idleMs keep counting across reboots (the page computes rates from their deltas). */
  private keepStats(m: Machine): void {
    this.busyBefore += m.busyMs;
    this.idleBefore += m.idleMs;
    // ---- dashboard ---- device counters too
    if (this.blk) {
      const d = this.diskBefore;
      d.readBytes += this.blk.readBytes; d.writeBytes += this.blk.writeBytes; d.reads += this.blk.reads; d.writes += this.blk.writes;
    }
    this.blk = undefined;
    this.netBefore = this.netStats(m);
    this.balloon = undefined;
  }

  private boot(clearScreen: boolean): void {
    const cfg = this.cfg!;
    if (this.machine) this.keepStats(this.machine);
    this.machine = undefined;
    this.ready = false;
    this.markerTail = "";
    // Output the old guest had not got out yet is dropped; the terminal is reset in-band so the page needs no
    // separate message that could overtake the bytes still in the ring.
    this.overflow = clearScreen ? [TERMINAL_RESET] : [];
    this.input.clear();
    let m: Machine;
    try {
      m = new Machine(cfg.hart, { ramMiB: cfg.ramMiB, onConsole: (bytes) => this.onConsole(bytes) });
      m.addRng();
      this.nics.addTo(m); // ---- network cards ----
      // ---- dashboard: the in-memory disk (/dev/vda) and the memory balloon ----
      if (this.disk) this.blk = m.addDisk(this.disk, { serial: "tabvisor-disk" });
      const balloon = new VirtioBalloon();
      m.addVirtio((irq) => new VirtioMmio(m.memory, irq, balloon), "virtio-balloon");
      balloon.setTarget(this.balloonPages);
      this.balloon = balloon;
      m.bootLinux({ kernel: cfg.images.kernel, initrd: cfg.images.initrd, cmdline: cfg.cmdline });
    } catch (e) {
      // ---- dashboard ---- a memory the browser cannot give (too large, or too many VMs in this tab) says so
      const msg = e instanceof RangeError && /allocate/i.test(e.message)
        ? `the browser could not give this VM its ${cfg.ramMiB} MiB of RAM (${e.message}): delete other VMs or give it less`
        : e instanceof BootError || e instanceof RangeError ? e.message : `the VM could not be built: ${(e as Error).message}`;
      this.emit(`\r\n\x1b[31m${msg}\x1b[0m\r\n`);
      this.setState("error", msg);
      return;
    }
    this.machine = m;
    this.bootAt = performance.now();
    this.setState("booting");
  }

  private onConsole(bytes: Uint8Array): void {
    if (!this.ready) this.scanForMarker(bytes);
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

  /** Into the output ring, or behind it when it is full (never dropped). */
  private emitBytes(bytes: Uint8Array): void {
    if (this.overflow.length === 0) {
      const n = this.output.write(bytes);
      if (n > 0) this.wakePage();
      if (n === bytes.length) return;
      bytes = bytes.subarray(n);
    }
    this.overflow.push(bytes);
  }

  /** Moves held-back output into the ring; true when nothing is left behind. */
  private flushOverflow(): boolean {
    let moved = false;
    try {
      while (this.overflow.length) {
        const b = this.overflow[0];
        const n = this.output.write(b);
        if (n > 0) moved = true;
        if (n < b.length) { this.overflow[0] = b.subarray(n); return false; }
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

  private pumpInput(m: Machine): void {
    const room = UART_RX_ROOM - m.uart.rxPending;
    if (room <= 0 || this.input.available() === 0) return;
    m.sendInput(this.input.read(room));
  }

  private setState(state: VmState, detail?: string): void {
    this.state = state;
    Atomics.store(this.ctrl, CTRL.STATE, VM_STATES.indexOf(state));
    this.event({ kind: "state", state, detail });
  }

  private event(e: VmEvent): void {
    try {
      void Promise.resolve(this.onEvent(e)).catch(() => {});
    } catch { /* the page went away */ }
  }

  // ---- the run loop -------------------------------------------------------------------------------------------
  /** Sleeps until the doorbell moves past `seen` or `ms` pass — unless a control call is on its way. */
  private sleep(seen: number, ms: number): void {
    if (ms <= 0 || Atomics.load(this.ctrl, CTRL.PENDING_CALLS) > 0) return;
    Atomics.wait(this.ctrl, CTRL.DOORBELL, seen, ms);
  }

  /** Back to the event loop for a moment, so comlink calls and events get through. */
  private yieldToEvents(): Promise<void> {
    if (this.state !== "running" && this.state !== "booting" && Atomics.load(this.ctrl, CTRL.PENDING_CALLS) > 0) {
      // a call is posted but not delivered yet: wait for it without spinning
      return new Promise((r) => setTimeout(r, 1));
    }
    return new Promise((r) => { this.yieldResolve = r; this.channel.port2.postMessage(null); });
  }

  private async loop(): Promise<void> {
    for (;;) {
      // Read the bell before looking at anything it announces: a ring after this point ends the sleep below.
      const seen = Atomics.load(this.ctrl, CTRL.DOORBELL);
      const m = this.machine;
      if (!m || (this.state !== "running" && this.state !== "booting")) {
        this.flushOverflow();
        this.sleep(seen, MAX_SLEEP_MS);
        await this.yieldToEvents();
        continue;
      }
      if (!this.flushOverflow()) {
        // The page is behind on the console: hold the guest until it drains (it rings when it sees WANT_SPACE).
        Atomics.store(this.ctrl, CTRL.WANT_SPACE, 1);
        if (!this.flushOverflow()) this.sleep(seen, 50);
        await this.yieldToEvents();
        continue;
      }
      // ---- CPU cap ---- over the cap for this window: sleep until it ends (a ring still wakes us to look around)
      const budget = this.runBudget();
      if (budget <= 0) {
        const t0 = performance.now();
        this.sleep(seen, this.capWindowStart + CAP_WINDOW_MS - t0);
        this.throttledMs += performance.now() - t0;
        await this.yieldToEvents();
        continue;
      }
      this.pumpInput(m);
      let outcome;
      try {
        this.nics.pump(); // ---- network cards ---- frames the switch left for the guest
        const busy0 = m.busyMs;
        outcome = m.runFor(budget);
        this.capWindowBusy += m.busyMs - busy0; // ---- CPU cap ----
      } catch (e) {
        this.keepStats(m);
        this.machine = undefined;
        const msg = `the emulator failed: ${(e as Error).message}`;
        this.emit(`\r\n\x1b[31m${msg}\x1b[0m\r\n`);
        this.setState("error", msg);
        continue;
      }
      if (outcome.kind === "halted") {
        this.keepStats(m);
        this.machine = undefined;
        if (m.rebootRequested) {
          this.boot(false);
        } else {
          // ---- crashed guests ---- a hart fault (status 2) or a kernel panic (3) is a crash, not a power-off
          const crashed = (m.exitStatus ?? 0) >= 2;
          this.emit(`\r\n\x1b[${crashed ? 31 : 2}m[${m.haltReason}]\x1b[0m\r\n`);
          this.setState(crashed ? "error" : "stopped", m.haltReason);
        }
      } else if (outcome.kind === "idle" && this.input.available() === 0 && this.overflow.length === 0 && !this.nics.pending() /* network cards */) {
        const ms = Math.min(MAX_SLEEP_MS, (outcome.wakeAtMs ?? Infinity) - performance.now());
        const t0 = performance.now();
        this.sleep(seen, ms);
        m.idleMs += performance.now() - t0;
      }
      await this.yieldToEvents();
    }
  }
}

/** A CPU cap in percent of one core: 1..100 (anything else becomes the nearest; NaN: no cap). */
function clampCap(p: number): number {
  return Number.isFinite(p) ? Math.max(1, Math.min(100, p)) : 100;
}

Comlink.expose(new VmWorker());
