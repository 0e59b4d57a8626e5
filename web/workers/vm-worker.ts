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
import {
  CTRL, GUEST_READY_MARKER, VM_STATES,
  type VmEvent, type VmInit, type VmState, type VmStats, type VmWorkerApi,
} from "../shared/protocol.ts";

/** Host time per runFor() call while the guest is busy. */
const SLICE_MS = 16;
/** Longest single sleep (a safety net: every reason to wake up also rings the doorbell). */
const MAX_SLEEP_MS = 1000;
/** How much typed input the UART may hold (its FIFO takes 64 KiB; stay below it so nothing is dropped). */
const UART_RX_ROOM = 60_000;
/** ESC c: resets the terminal (sent in-band ahead of a reset guest's output). */
const TERMINAL_RESET = new Uint8Array([0x1b, 0x63]);

const encoder = new TextEncoder();

class VmWorker implements VmWorkerApi {
  private cfg: VmInit | undefined;
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
    if (counted) this.took();
    const m = this.machine;
    return {
      state: this.state,
      instret: m ? Number(m.hart.instret) : 0,
      busyMs: this.busyBefore + (m?.busyMs ?? 0),
      idleMs: this.idleBefore + (m?.idleMs ?? 0),
      haltReason: m?.halted ? m.haltReason : undefined,
      exitStatus: m?.exitStatus,
    };
  }

  // ---- the machine --------------------------------------------------------------------------------------------
  /** busyMs/idleMs keep counting across reboots (the page computes rates from their deltas). */
  private keepStats(m: Machine): void {
    this.busyBefore += m.busyMs;
    this.idleBefore += m.idleMs;
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
      m.bootLinux({ kernel: cfg.images.kernel, initrd: cfg.images.initrd, cmdline: cfg.cmdline });
    } catch (e) {
      const msg = e instanceof BootError || e instanceof RangeError ? e.message : `the VM could not be built: ${(e as Error).message}`;
      this.emit(`\r\n\x1b[31m${msg}\x1b[0m\r\n`);
      this.setState("error", msg);
      return;
    }
    this.machine = m;
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
      this.pumpInput(m);
      let outcome;
      try {
        outcome = m.runFor(SLICE_MS);
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
          this.emit(`\r\n\x1b[2m[${m.haltReason}]\x1b[0m\r\n`);
          this.setState("stopped", m.haltReason);
        }
      } else if (outcome.kind === "idle" && this.input.available() === 0 && this.overflow.length === 0) {
        const ms = Math.min(MAX_SLEEP_MS, (outcome.wakeAtMs ?? Infinity) - performance.now());
        const t0 = performance.now();
        this.sleep(seen, ms);
        m.idleMs += performance.now() - t0;
      }
      await this.yieldToEvents();
    }
  }
}

Comlink.expose(new VmWorker());
