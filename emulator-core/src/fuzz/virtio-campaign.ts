// Fuzzing the virtio devices with a hostile driver (virtio-program.ts) running as guest code on the whole Machine:
// a disk, a network card, an entropy source, a balloon and the agent channel (a multiport virtio-console), on the
// board Linux boots on. Each round boots one
// seed's script and holds it to the campaign rules (campaign.ts: no host exception, in time, bounded memory) and
// to the virtio ones:
// - the round ends through the SBI power-off (the script's end, or the trap handler giving up), a clean fatal stop
//   of the hart, or the timeout;
// - no device throws anything but the guest-error path into DEVICE_NEEDS_RESET (VirtqueueError, GuestMemoryError,
//   or a reason the transport states itself): a TypeError or RangeError caught by the transport's safety net is a
//   defect even though the host survived it;
// - the disk backend sees only accesses inside [0, size), and its size stays the same;
// - afterwards, every device recovers: a sane host-side driver resets it (which must clear NEEDS_RESET), sets it
//   up again and completes one good request (a sector read back as the disk holds it, random bytes, a frame each
//   way, a page inflated and deflated, the console's multiport handshake and bytes both ways). This is what makes the rounds mean something: a device that survives
//   without an exception but stays wedged would be found here.
//
// - the console's host side behaves as the device documents: onGuestOpen only when the port's state changes, onReset
//   with nothing left pending, and a send() that was refused is followed by onDrain once what was pending went.
// - no run slice holds the host thread for long (a guest must not wedge the host with one notify).
//
// Rounds are deterministic per seed except for the frames the host sends the card and the bytes it sends the
// console, which arrive between run slices (host time).

import { Machine } from "../machine/machine.ts";
import { makeSpec } from "../machine/description.ts";
import { GuestMemoryError } from "../machine/guest-memory.ts";
import { MemoryBlockBackend, type BlockBackend, type EntropySource } from "../machine/virtio/backends.ts";
import { VirtioBlk } from "../machine/virtio/blk.ts";
import { VirtioNet } from "../machine/virtio/net.ts";
import { VirtioRng } from "../machine/virtio/rng.ts";
import { VirtioBalloon } from "../machine/virtio/balloon.ts";
import { VirtioConsole, CONSOLE_CTRL, AGENT_PORT_NAME, VIRTIO_CONSOLE_F_MULTIPORT } from "../machine/virtio/console.ts";
import type { StateObject, StateValue } from "../snapshot/state-value.ts";
import {
  VirtioMmio, REG, STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FEATURES_OK, STATUS_NEEDS_RESET,
  type VirtioDevice,
} from "../machine/virtio/mmio.ts";
import { VirtqueueError, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from "../machine/virtio/queue.ts";
import { Rng } from "./program.ts";
import { CampaignRules } from "./campaign.ts";
import {
  virtioScript, virtioImage, type Action, ACTION_BYTES, SCRIPT_ADDR, CHECK_AREA, FUZZ_DISK_BYTES, FUZZ_RAM_MIB, FUZZ_DEVICES, type DeviceKind,
} from "./virtio-program.ts";

/**
 * A disk that holds the device to the BlockBackend contract: every access inside [0, size), the size unchanged.
 * Asynchronous when asked (as the browser's IndexedDB and OPFS disks are): each operation then waits in `pending`
 * until the round settles it (done, or failed: an I/O error), so requests stay in flight across whatever the guest
 * does next (a reset, a queue disabled, a bad ring that fails the device).
 */
export class CheckedDisk implements BlockBackend {
  readonly inner: MemoryBlockBackend;
  readonly size: number;
  readonly async: boolean;
  readonly violations: string[] = [];
  readonly pending: { run: () => void; resolve: () => void; reject: (e: Error) => void }[] = [];

  constructor(size: number, seed: number, async = false) {
    const data = new Uint8Array(size);
    const rng = new Rng(seed ^ 0x5eed);
    for (let i = 0; i < size; i += 4) new DataView(data.buffer).setUint32(i, rng.next(), true);
    this.inner = new MemoryBlockBackend(data);
    this.size = size;
    this.async = async;
  }

  private inside(what: string, offset: number, len: number): boolean {
    if (Number.isSafeInteger(offset) && offset >= 0 && offset + len <= this.size && this.inner.data.length === this.size) return true;
    if (this.violations.length < 10) this.violations.push(`${what} of ${len} bytes at ${offset} (disk of ${this.size})`);
    return false;
  }

  private op(run: () => void): void | Promise<void> {
    if (!this.async) { run(); return; }
    return new Promise((resolve, reject) => this.pending.push({ run, resolve, reject }));
  }

  // an access outside the image is recorded and not done (a typed array would silently clip it, or throw)
  read(offset: number, dst: Uint8Array): void | Promise<void> {
    const ok = this.inside("read", offset, dst.length);
    return this.op(() => { if (ok) this.inner.read(offset, dst); });
  }

  write(offset: number, src: Uint8Array): void | Promise<void> {
    const ok = this.inside("write", offset, src.length);
    return this.op(() => { if (ok) this.inner.write(offset, src); });
  }

  flush(): void | Promise<void> { return this.op(() => this.inner.flush()); }

  /** Settles pending operations: each with probability `p` (1: all), one in 20 of them as an I/O error unless
   *  `errors` is false. */
  settle(rng: Rng, p = 1, errors = true): void {
    for (let i = 0; i < this.pending.length; i++) {
      if (p < 1 && rng.next() / 0x1_0000_0000 >= p) continue;
      const [op] = this.pending.splice(i--, 1);
      if (errors && rng.below(20) === 0) op.reject(new Error("host I/O error"));
      else { op.run(); op.resolve(); }
    }
  }
}

/** Lets settled promises run their callbacks. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

export interface VirtioRoundOptions {
  /** actions in the script (default 300) */
  actions?: number;
  /** run these actions instead of the seed's (a test's own script) */
  script?: Action[];
  /** the disk answers later (default: every other seed) */
  asyncDisk?: boolean;
  /** save the whole machine once mid-round and restore it into a blank one (default: one seed in four) */
  machineSnapshot?: boolean;
  /** called with the machine before it runs (a test that breaks something on purpose) */
  tamper?: (m: Machine) => void;
  /** host time the round may run (default 2000 ms) */
  timeoutMs?: number;
}

export interface VirtioRoundResult {
  /** "poweroff" (the script's end), "trap-limit" (the handler gave up), "fatal", "timeout" */
  end: "poweroff" | "trap-limit" | "fatal" | "timeout";
  ms: number;
  /** actions the guest got through (the End included) */
  executed: number;
  /** devices that entered NEEDS_RESET during the round */
  failedDuring: number;
  /** devices in NEEDS_RESET when the round ended */
  needsResetAtEnd: number;
  /** of those, the ones the sane driver brought back */
  recovered: number;
  /** every rule the round broke (empty: it passed) */
  problems: string[];
  /** why devices entered NEEDS_RESET (the first reason of each) */
  reasons: string[];
  /** what the devices did for the guest: requests that got through to the work (not stopped by a check) */
  work: VirtioWork;
  /** the NEEDS_RESET counts above, per kind of device */
  byKind: Partial<Record<DeviceKind, KindCounts>>;
}

export interface KindCounts { failedDuring: number; needsResetAtEnd: number; recovered: number }

export interface VirtioWork {
  blkDone: number; blkErrors: number; netTx: number; netRx: number; rngRequests: number; balloonRequests: number;
  /** console: bytes the host queued for the port (send() taken), sends refused (full), bytes the device put in the
   *  guest's receive buffers, bytes the guest wrote to the port, of them those handed to the host (onData) */
  consoleSent: number; consoleRefused: number; consoleRx: number; consoleTx: number; consoleGot: number;
  /** console: times the guest opened the port (onGuestOpen(true)) */
  consoleOpens: number;
}

export const NO_WORK: VirtioWork = {
  blkDone: 0, blkErrors: 0, netTx: 0, netRx: 0, rngRequests: 0, balloonRequests: 0,
  consoleSent: 0, consoleRefused: 0, consoleRx: 0, consoleTx: 0, consoleGot: 0, consoleOpens: 0,
};

function workOf(m: Machine, host: ConsoleHost): VirtioWork {
  const b = m.disks[0], n = m.nics[0], bl = m.balloon!, c = m.agentChannel!;
  return {
    blkDone: b.reads + b.writes + b.flushes, blkErrors: b.errors, netTx: n.txPackets + n.txDropped, netRx: n.rxPackets,
    rngRequests: m.rng!.requests, balloonRequests: bl.inflateRequests + bl.deflateRequests + bl.statsUpdates,
    consoleSent: host.sent, consoleRefused: host.refused, consoleRx: c.rxBytes, consoleTx: c.txBytes, consoleGot: host.got,
    consoleOpens: host.opens,
  };
}

/** The console's host-side limit in the rounds: small, so that the guest's pace (or its not reading) makes send()
 *  refuse and flow control is exercised (the machine's own device holds 4 MiB). */
const CONSOLE_PENDING_LIMIT = 8192;

/**
 * The host's side of the agent channel during a round, as AgentClient uses it: bytes sent now and then, nothing more
 * after a refusal until onDrain; bytes from the guest counted (not kept); some answers given synchronously from inside
 * the device's callbacks (AgentClient sends CANCEL from inside onData). The callbacks are held to what the device
 * documents; during the recovery check the host only collects what arrives.
 */
class ConsoleHost {
  sent = 0; refused = 0; got = 0; opens = 0; resets = 0; drains = 0;
  /** send() returned false and onDrain has not come since */
  waiting = false;
  /** what onGuestOpen said last */
  open = false;
  /** set by the recovery check: collect what the guest writes, send nothing by itself */
  collect: number[] | null = null;
  private n = 0;

  constructor(readonly dev: VirtioConsole, private readonly rng: Rng, private readonly problem: (p: string) => void) {
    (dev as { pendingLimit: number }).pendingLimit = CONSOLE_PENDING_LIMIT;
    dev.onData = (b) => this.guarded("onData", () => {
      if (this.collect) { if (this.collect.length < 65536) this.collect.push(...b); return; }
      this.got += b.length;
      if (this.rng.below(8) === 0) this.trySend(); // an answer at once
    });
    dev.onDrain = () => this.guarded("onDrain", () => {
      this.drains++;
      this.waiting = false;
      if (!this.collect && this.rng.below(2) === 0) this.trySend(); // the next chunk at once
    });
    dev.onGuestOpen = (open) => this.guarded("onGuestOpen", () => {
      if (open === this.open) this.problem(`console: onGuestOpen(${open}) twice in a row`);
      if (dev.guestOpen !== open) this.problem(`console: onGuestOpen(${open}) while the device says the port is ${dev.guestOpen ? "open" : "closed"}`);
      this.open = open;
      if (open) { this.opens++; if (!this.collect && this.rng.below(4) === 0) this.trySend(); } // a greeting
    });
    dev.onReset = () => this.guarded("onReset", () => {
      this.resets++;
      if (dev.queued !== 0) this.problem(`console: onReset with ${dev.queued} host bytes still pending`);
      if (this.open) this.problem("console: onReset while the host was told the port is open");
    });
  }

  /** A callback of the host must not throw into the device (nor may the device's state make it). */
  private guarded(name: string, f: () => void): void {
    try { f(); } catch (e) { this.problem(`console: the host's ${name} threw: ${(e as Error)?.stack ?? e}`); }
  }

  /** Sends a chunk unless the device refused the last one and has not said there is room. */
  trySend(): void {
    if (this.waiting) return;
    const len = this.rng.pick([1, 16, 100, 1000, 4000, 4000, CONSOLE_PENDING_LIMIT + 808]);
    const bytes = new Uint8Array(len);
    for (let i = 0; i < len; i++) bytes[i] = (this.n + i) & 0xff;
    if (this.dev.send(bytes)) { this.sent += len; this.n += len; } else { this.waiting = true; this.refused++; }
  }

  /** Between slices: a host that waits for onDrain while nothing is pending would wait forever. */
  check(): void {
    if (this.waiting && this.dev.queued === 0) {
      this.problem("console: send() was refused and nothing is pending any more, but onDrain never came (the host would wait forever)");
      this.waiting = false;
    }
  }
}

const MAC = [0x52, 0x54, 0x00, 0xf0, 0x22, 0x01];
/** Longest a run slice (2 ms of guest time) may hold the host thread: far above a loaded machine's hiccups, far
 *  below what a wedged device costs. */
const SLICE_LIMIT_MS = 1000;

/** One round: boot the seed's script on a fresh machine, run it to its end, check the rules and recovery. */
export async function virtioRound(module: WebAssembly.Module, seed: number, opts: VirtioRoundOptions = {}): Promise<VirtioRoundResult> {
  const timeoutMs = opts.timeoutMs ?? 2000;
  const script = opts.script ? { actions: opts.script, image: virtioImage(opts.script) } : virtioScript(seed, { actions: opts.actions });
  const disk = new CheckedDisk(FUZZ_DISK_BYTES, seed, opts.asyncDisk ?? seed % 2 === 0);
  const hostRng = new Rng(seed ^ 0x4057);
  const sent: Uint8Array[] = [];
  const backend = { send: (f: Uint8Array) => { sent.push(f); if (sent.length > 8) sent.shift(); } };
  const entropyRng = new Rng(seed ^ 0xe27);
  const entropy: EntropySource = { fill: (dst) => { for (let i = 0; i < dst.length; i++) dst[i] = entropyRng.next() & 0xff; } };
  const m = Machine.create(module, makeSpec({
    ramMiB: FUZZ_RAM_MIB, deterministic: true, disks: [{ sizeBytes: FUZZ_DISK_BYTES }], nics: [{ mac: MAC }], rng: true, balloon: true,
    agent: true,
  }), { boot: { kernel: script.image }, disks: [disk], nics: [{ backend }], entropy });
  const problems: string[] = [];
  const reasons: string[] = [];
  // the script drives the first slots (disks, cards, rng, balloon, agent channel come first on the board); devices
  // added after them are left alone
  const fuzzed = m.virtio.slice(0, FUZZ_DEVICES.length);
  const kindOf = { disk: "blk", nic: "net", rng: "rng", balloon: "balloon", agent: "console" } as const;
  const kinds = fuzzed.map((v) => kindOf[v.slot.kind]) as DeviceKind[];
  if (kinds.join() !== FUZZ_DEVICES.join()) throw new Error(`the board's virtio slots are ${kinds.join()}, the script expects ${FUZZ_DEVICES.join()}`);
  const failedDuring = new Set<number>();
  const host = new ConsoleHost(m.agentChannel!, new Rng(seed ^ 0xc0de), (p) => { if (!problems.includes(p)) problems.push(p); });
  fuzzed.forEach((v, i) => watch(v.transport, v.device, kinds[i], (p) => problems.push(p), (why) => {
    if (!failedDuring.has(i)) reasons.push(`${kinds[i]}: ${why}`);
    failedDuring.add(i);
  }));

  // run to the end; frames arrive for the card now and then, as from a network
  const t0 = performance.now();
  const frame = new Uint8Array(60).fill(0xab);
  frame.set(MAC, 0);
  opts.tamper?.(m);
  let slices = 0;
  let longest = 0;
  while (!m.halted && performance.now() - t0 < timeoutMs) {
    const s0 = performance.now();
    m.runFor(Math.min(2, timeoutMs));
    longest = Math.max(longest, performance.now() - s0);
    slices++;
    host.check();
    // the host has something for the guest at every slice, twice: the second chunk often finds the first still
    // queued, so the device's limit is reached (and send() refused) however few slices a fast host's round takes
    host.trySend();
    host.trySend();
    // the host's side: frames arrive, the balloon's target moves, statistics are asked for, the disk answers.
    // A frame comes at every slice: a round lasts as many 2 ms slices as the host is slow, and with one every third
    // a fast host delivered 2 frames in 100 rounds (a frame is taken only while the guest has a valid rx queue).
    m.nics[0].receive(frame);
    if (slices % 7 === 0) m.balloon!.setTarget(hostRng.below(64));
    if (slices % 11 === 0) m.nics[0].setLinkUp(hostRng.below(4) !== 0);
    if (slices % 2 === 0) m.balloon!.requestStats();
    if (disk.async) { disk.settle(hostRng, 0.5); await turn(); }
    if (slices % 4 === 0) stateRoundTrip(m, fuzzed, kinds, problems);
    if (slices === 2 && !m.halted && (opts.machineSnapshot ?? seed % 4 === 1)) {
      await machineRoundTrip(module, m, script.image, disk, hostRng, entropy, problems);
    }
  }
  const ms = performance.now() - t0;
  if (longest > SLICE_LIMIT_MS) problems.push(`one run slice of 2 ms held the host for ${longest.toFixed(0)} ms`);
  // whatever the guest left in flight settles; then no request may stay with the device
  for (let i = 0; i < 3 && disk.pending.length > 0; i++) { disk.settle(hostRng); await turn(); }
  if (m.disks[0].inflight !== 0) problems.push(`blk: ${m.disks[0].inflight} requests still in flight after the disk answered them all`);
  let end: VirtioRoundResult["end"] = "timeout";
  if (m.halted) end = m.exitStatus === 0 ? "poweroff" : m.exitStatus === 1 ? "trap-limit" : "fatal";
  if (m.halted && m.exitStatus !== 0 && m.exitStatus !== 1 && m.exitStatus !== 2) problems.push(`halted with status ${m.exitStatus}: ${m.haltReason}`);
  stateRoundTrip(m, fuzzed, kinds, problems);
  const work = workOf(m, host); // before the sane driver's requests
  const s0 = m.hart.reg(8);
  const executed = s0 >= SCRIPT_ADDR ? Math.min(script.actions.length + 1, Number((s0 - SCRIPT_ADDR) / BigInt(ACTION_BYTES))) : 0;

  for (const v of disk.violations) problems.push(`disk: ${v}`);
  if (disk.inner.data.length !== FUZZ_DISK_BYTES) problems.push(`disk: its size changed to ${disk.inner.data.length}`);

  // recovery: each device, reset by a sane driver, must work again
  let needsResetAtEnd = 0, recovered = 0;
  const byKind: Partial<Record<DeviceKind, KindCounts>> = {};
  for (const [i, v] of fuzzed.entries()) {
    const k = byKind[kinds[i]] ??= { failedDuring: 0, needsResetAtEnd: 0, recovered: 0 };
    if (failedDuring.has(i)) k.failedDuring++;
    const was = v.transport.needsReset;
    if (was) { needsResetAtEnd++; k.needsResetAtEnd++; }
    let problem: string | null;
    try {
      problem = await saneRequest(m, v.transport, v.device, kinds[i], disk, host);
    } catch (e) {
      problem = `the host threw: ${(e as Error).stack ?? e}`;
    }
    if (problem) problems.push(`${kinds[i]} did not recover after a reset${was ? " (it was in NEEDS_RESET)" : ""}: ${problem}`);
    else if (was) { recovered++; k.recovered++; }
  }
  return { end, ms, executed, failedDuring: failedDuring.size, needsResetAtEnd, recovered, problems, reasons, work, byKind };
}

/**
 * Whatever state the guest drove a device into must survive a snapshot (a VM that cannot be restored or migrated
 * is one the guest wedged): each transport's state restores into a fresh device of the same kind, and reads back
 * the same. (A disk with requests in flight is skipped: the machine waits for them before it saves.)
 */
function stateRoundTrip(m: Machine, fuzzed: Machine["virtio"], kinds: DeviceKind[], problems: string[]): void {
  fuzzed.forEach((v, i) => {
    const kind = kinds[i];
    if (kind === "blk" && m.disks[0].inflight > 0) return;
    if (problems.some((p) => p.startsWith(`${kind}: its state`))) return; // once per round is enough
    let saved: StateValue;
    try {
      saved = v.transport.saveState();
    } catch (e) {
      problems.push(`${kind}: its state does not save: ${(e as Error).message}`);
      return;
    }
    const fresh = kind === "blk" ? new VirtioBlk(new MemoryBlockBackend(FUZZ_DISK_BYTES))
      : kind === "net" ? new VirtioNet({ mac: MAC })
      : kind === "rng" ? new VirtioRng()
      : kind === "console" ? new VirtioConsole()
      : new VirtioBalloon();
    const copy = new VirtioMmio(m.memory, { set: () => {} }, fresh);
    try {
      copy.restoreState(saved);
    } catch (e) {
      problems.push(`${kind}: its state does not restore: ${(e as Error).message}`);
      return;
    }
    const again = copy.saveState();
    if (!sameState(saved, again)) problems.push(`${kind}: its state reads back differently after a restore`);
  });
}

/**
 * The whole machine's snapshot, taken mid-round (the devices in whatever state the guest left them, the PLIC as
 * it programmed it), must restore into a blank machine of the same description.
 */
async function machineRoundTrip(module: WebAssembly.Module, m: Machine, kernel: Uint8Array, disk: CheckedDisk, rng: Rng,
                                entropy: EntropySource, problems: string[]): Promise<void> {
  // the machine saves once its disk is idle: answer everything (without errors: a failed read of the image would
  // fail the save for the host's reasons, not the guest's)
  const saving = m.saveState().then((state) => ({ state }), (error: unknown) => ({ error }));
  let done: Awaited<typeof saving> | undefined;
  for (let i = 0; i < 1000 && !done; i++) {
    disk.settle(rng, 1, false);
    done = await Promise.race([saving, turn().then(() => undefined)]);
  }
  if (!done) { problems.push("the machine's snapshot never completed"); return; }
  if ("error" in done) { problems.push(`the machine's state does not save: ${(done.error as Error)?.stack ?? done.error}`); return; }
  const copy = Machine.blank(module, m.spec, {
    boot: { kernel }, disks: [new MemoryBlockBackend(FUZZ_DISK_BYTES)], nics: [{ backend: { send: () => {} } }], entropy,
  });
  try {
    await copy.restoreState(done.state);
  } catch (e) {
    problems.push(`the machine's snapshot does not restore: ${(e as Error)?.stack ?? e}`);
  }
}

function sameState(a: StateValue, b: StateValue): boolean {
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && a.length === b.length && a.every((x, i) => x === b[i]);
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => sameState(x, b[i]));
  }
  if (a !== null && b !== null && typeof a === "object" && typeof b === "object") {
    const ka = Object.keys(a), kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => sameState((a as StateObject)[k], (b as StateObject)[k]));
  }
  return a === b;
}

/** Errors that are the guest's fault: the device's NEEDS_RESET path. */
function guestError(e: unknown): boolean {
  return typeof e === "string" || e instanceof VirtqueueError || e instanceof GuestMemoryError;
}

/**
 * Taps a transport and its device: anything else thrown out of the device, or handed to the transport's fail()
 * (its safety net catches every exception), is a problem; failRequests must not throw at all.
 */
function watch(t: VirtioMmio, d: VirtioDevice, kind: string, problem: (p: string) => void, failed: (why: string) => void): void {
  // A used element names a chain the device took from this ring (in the queue's current epoch: not one from before
  // a reset or a re-enable) and has not given back yet, so a head below the queue's size; its length is at most
  // the chain's device-writable bytes.
  for (const q of t.queues) {
    const push = q.push.bind(q), pop = q.pop.bind(q), unpop = q.unpop.bind(q);
    const taken = new Map<string, number[]>(); // "epoch:head" -> writeTotal of each time it was taken
    let last = "";
    q.pop = (c) => {
      const got = pop(c);
      if (got) {
        last = `${q.epoch}:${c.head}`;
        taken.set(last, [...(taken.get(last) ?? []), c.writeTotal]);
      }
      return got;
    };
    q.unpop = () => { taken.get(last)?.pop(); unpop(); };
    q.push = (head: number, len: number) => {
      const key = `${q.epoch}:${head}`;
      const lens = taken.get(key);
      if (!(head >= 0 && head < q.num)) problem(`${kind}: queue ${q.index} got a used element for head ${head}, past its size ${q.num}`);
      else if (!lens?.length) problem(`${kind}: queue ${q.index} got a used element for head ${head}, which the device had not taken from the ring`);
      else {
        // the same head may be out more than once (a driver that republished it): match the tightest one
        let best = -1;
        lens.forEach((w, i) => { if (w >= len && (best < 0 || w < lens[best])) best = i; });
        if (best < 0) problem(`${kind}: queue ${q.index} got a used length of ${len} for head ${head}, which has ${Math.max(...lens)} writable bytes`);
        lens.splice(best < 0 ? 0 : best, 1);
      }
      push(head, len);
    };
  }
  const fail = t.fail.bind(t);
  t.fail = (reason: unknown) => {
    if (!guestError(reason)) problem(`${kind}: the device broke on something other than a guest error: ${(reason as Error)?.stack ?? reason}`);
    failed(reason instanceof Error ? reason.message : String(reason));
    fail(reason);
  };
  const dd = d as unknown as Record<string, unknown>;
  for (const name of ["queueNotify", "writeConfig", "reset", "failRequests"]) {
    const f = dd[name];
    if (typeof f !== "function") continue;
    dd[name] = (...args: unknown[]) => {
      try {
        return (f as (...a: unknown[]) => unknown).apply(d, args);
      } catch (e) {
        if (name === "failRequests" || !guestError(e)) problem(`${kind}.${name} threw ${(e as Error)?.stack ?? e}`);
        throw e;
      }
    };
  }
}

// ---- the sane driver, host side, run after the guest stopped ----

/** Resets the device, sets it up and completes one good request; returns what went wrong, or null. */
async function saneRequest(m: Machine, t: VirtioMmio, d: VirtioDevice, kind: DeviceKind, disk: CheckedDisk, host: ConsoleHost): Promise<string | null> {
  const mem = m.memory;
  const r = (off: number) => t.read(off, 4) >>> 0;
  const w = (off: number, v: number | bigint) => t.write(off, 4, Number(BigInt(v) & 0xffffffffn));
  if (kind === "console") host.collect = [];
  w(REG.Status, 0);
  if (r(REG.Status) !== 0) return `Status reads 0x${r(REG.Status).toString(16)} after the reset`;
  if (t.needsReset) return "still in NEEDS_RESET after the reset";
  if (kind === "console") {
    const con = d as VirtioConsole;
    if (con.queued !== 0) return `${con.queued} host bytes still pending after the reset`;
    if (con.guestOpen || con.portReady || host.open) return "the port is still open after the reset";
    host.check();
  }
  w(REG.Status, STATUS_ACKNOWLEDGE);
  w(REG.Status, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
  w(REG.DriverFeaturesSel, 0);
  w(REG.DriverFeatures, kind === "console" ? VIRTIO_CONSOLE_F_MULTIPORT : 0);
  w(REG.DriverFeaturesSel, 1);
  w(REG.DriverFeatures, 1); // VERSION_1 alone
  w(REG.Status, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
  if (!(r(REG.Status) & STATUS_FEATURES_OK)) return `FEATURES_OK refused (Status 0x${r(REG.Status).toString(16)})`;
  const NUM = 4;
  const queues = d.queueCount;
  const ring = (q: number) => CHECK_AREA + BigInt(q) * 0x1000n;
  for (let q = 0; q < queues; q++) {
    const base = ring(q);
    mem.bytes.fill(0, mem.check(base, 0x1000), mem.check(base, 0x1000) + 0x1000);
    w(REG.QueueSel, q);
    if (r(REG.QueueReady) !== 0) return `queue ${q} ready after the reset`;
    w(REG.QueueNum, NUM);
    w(REG.QueueDescLow, base); w(REG.QueueDescHigh, base >> 32n);
    w(REG.QueueDriverLow, base + 0x400n); w(REG.QueueDriverHigh, (base + 0x400n) >> 32n);
    w(REG.QueueDeviceLow, base + 0x800n); w(REG.QueueDeviceHigh, (base + 0x800n) >> 32n);
    w(REG.QueueReady, 1);
  }
  w(REG.Status, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
  if (r(REG.Status) & STATUS_NEEDS_RESET) return `NEEDS_RESET after a proper setup: ${t.failureReason}`;
  const bufs = CHECK_AREA + 0x1_0000n;
  /** publishes a chain on queue q and notifies; returns the used entry, or a problem */
  const request = async (q: number, chain: { addr: bigint; len: number; write: boolean }[], completes = true): Promise<{ len: number } | string> => {
    const base = ring(q);
    chain.forEach((b, i) => {
      const at = base + BigInt(16 * i);
      mem.setU64(at, b.addr); mem.setU32(at + 8n, b.len);
      mem.setU16(at + 12n, (b.write ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < chain.length ? VIRTQ_DESC_F_NEXT : 0));
      mem.setU16(at + 14n, i + 1);
    });
    const idx = mem.u16(base + 0x400n + 2n);
    mem.setU16(base + 0x400n + 4n + BigInt(2 * (idx % NUM)), 0);
    mem.setU16(base + 0x400n + 2n, (idx + 1) & 0xffff);
    const usedBefore = mem.u16(base + 0x800n + 2n);
    w(REG.QueueNotify, q);
    // an asynchronous disk answers now (without I/O errors: this request must succeed)
    for (let i = 0; i < 3 && disk.pending.length > 0; i++) {
      for (const op of disk.pending.splice(0)) { op.run(); op.resolve(); }
      await turn();
    }
    if (t.needsReset) return `NEEDS_RESET on a good request: ${t.failureReason}`;
    const usedNow = mem.u16(base + 0x800n + 2n);
    if (!completes) return usedNow === usedBefore ? { len: 0 } : "an rx buffer was used with no frame to fill it";
    if (usedNow !== ((usedBefore + 1) & 0xffff)) return `a good request on queue ${q} was not completed (used.idx ${usedBefore} -> ${usedNow})`;
    const e = base + 0x800n + 4n + BigInt(8 * (usedBefore % NUM));
    if (mem.u32(e) !== 0) return `used entry names head ${mem.u32(e)}, not 0`;
    return { len: mem.u32(e + 4n) };
  };
  switch (kind) {
    case "blk": {
      const sector = 3;
      mem.setU32(bufs, 0); mem.setU32(bufs + 4n, 0); mem.setU64(bufs + 8n, BigInt(sector));
      mem.bytes.fill(0, mem.check(bufs + 0x200n, 512), mem.check(bufs + 0x200n, 512) + 512);
      mem.setU8(bufs + 0x400n, 0xff);
      const u = await request(0, [{ addr: bufs, len: 16, write: false }, { addr: bufs + 0x200n, len: 512, write: true }, { addr: bufs + 0x400n, len: 1, write: true }]);
      if (typeof u === "string") return u;
      if (mem.u8(bufs + 0x400n) !== 0) return `a sector read ended with status ${mem.u8(bufs + 0x400n)}`;
      const got = mem.view(bufs + 0x200n, 512), want = disk.inner.data.subarray(sector * 512, sector * 512 + 512);
      if (got.some((b, i) => b !== want[i])) return "a sector read does not match the disk";
      return null;
    }
    case "rng": {
      const u = await request(0, [{ addr: bufs, len: 16, write: true }]);
      if (typeof u === "string") return u;
      return u.len === 16 ? null : `16 random bytes asked, ${u.len} given`;
    }
    case "net": {
      const net = d as VirtioNet;
      net.setLinkUp(true); // the host may have left the cable out
      const before = net.txPackets;
      const f = new Uint8Array(60).fill(0x5a);
      mem.view(bufs, 12).fill(0);
      mem.view(bufs + 12n, 60).set(f);
      const u = await request(1, [{ addr: bufs, len: 72, write: false }]);
      if (typeof u === "string") return u;
      if (net.txPackets !== before + 1) return "a good frame was not sent";
      const rx = await request(0, [{ addr: bufs + 0x1000n, len: 1526, write: true }], false);
      if (typeof rx === "string") return rx;
      const frame = new Uint8Array(60).fill(0x77);
      if (!net.receive(frame)) return "a good frame was not received";
      const e = ring(0) + 0x800n;
      if (mem.u16(e + 2n) !== 1 || mem.u32(e + 8n) !== 72) return `a received frame was not delivered (used.idx ${mem.u16(e + 2n)})`;
      return null;
    }
    case "balloon": {
      const b = d as VirtioBalloon;
      const page = CHECK_AREA + 0x2_0000n;
      mem.setU32(bufs, Number(page >> 12n));
      let u = await request(0, [{ addr: bufs, len: 4, write: false }]);
      if (typeof u === "string") return u;
      if (!b.isInflated(page)) return "a page inflated is not in the balloon";
      u = await request(1, [{ addr: bufs, len: 4, write: false }]);
      if (typeof u === "string") return u;
      if (b.isInflated(page)) return "a page deflated is still in the balloon";
      return null;
    }
    case "console": return saneConsole(m, t, d as VirtioConsole, host, ring, NUM, bufs);
  }
}

/**
 * The console after the reset, driven as Linux does (its queues set up by saneRequest): control receive buffers,
 * DEVICE_READY answered by PORT_ADD, PORT_READY by PORT_NAME and PORT_OPEN(1); host bytes held until the guest opens
 * the port, then delivered; guest bytes handed to the host.
 */
function saneConsole(m: Machine, t: VirtioMmio, con: VirtioConsole, host: ConsoleHost, ring: (q: number) => bigint, NUM: number,
                     bufs: bigint): string | null {
  const mem = m.memory;
  const RX = 0, TX = 1, CRX = 2, CTX = 3;
  const next = [0, 0, 0, 0];
  /** writes a chain at the queue's next free descriptors and publishes it (no notify); returns its head */
  const post = (q: number, chain: { addr: bigint; len: number; write: boolean }[]): number => {
    const head = next[q];
    chain.forEach((b, i) => {
      const at = ring(q) + BigInt(16 * ((head + i) % NUM));
      mem.setU64(at, b.addr); mem.setU32(at + 8n, b.len);
      mem.setU16(at + 12n, (b.write ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < chain.length ? VIRTQ_DESC_F_NEXT : 0));
      mem.setU16(at + 14n, (head + i + 1) % NUM);
    });
    next[q] = (head + chain.length) % NUM;
    const avail = ring(q) + 0x400n, idx = mem.u16(avail + 2n);
    mem.setU16(avail + 4n + BigInt(2 * (idx % NUM)), head);
    mem.setU16(avail + 2n, (idx + 1) & 0xffff);
    return head;
  };
  const notify = (q: number) => t.write(REG.QueueNotify, 4, q);
  const usedIdx = (q: number) => mem.u16(ring(q) + 0x802n);
  const used = (q: number, i: number) => { const e = ring(q) + 0x804n + BigInt(8 * (i % NUM)); return { id: mem.u32(e), len: mem.u32(e + 4n) }; };
  const ctrlBuf = (i: number) => bufs + BigInt(0x100 * i);
  const send = (event: number, value: number, k: number) => {
    const at = bufs + 0x800n + BigInt(16 * k);
    mem.setU32(at, 0); mem.setU16(at + 4n, event); mem.setU16(at + 6n, value);
    post(CTX, [{ addr: at, len: 8, write: false }]);
    notify(CTX);
  };
  /** the control message the device put in used element i of the control receive queue */
  const got = (i: number) => {
    const u = used(CRX, i), a = ctrlBuf(u.id);
    if (u.id >= 3 || u.len < 8 || u.len > 256) return `a control message in used element {${u.id}, ${u.len}}`;
    const name = u.len > 8 ? new TextDecoder().decode(mem.view(a + 8n, u.len - 8)) : "";
    return `${mem.u32(a)}:${mem.u16(a + 4n)}:${mem.u16(a + 6n)}${name ? ":" + name : ""}`;
  };
  for (let i = 0; i < 3; i++) post(CRX, [{ addr: ctrlBuf(i), len: 256, write: true }]);
  notify(CRX);
  send(CONSOLE_CTRL.DEVICE_READY, 1, 0);
  if (t.needsReset) return `NEEDS_RESET in the handshake: ${t.failureReason}`;
  if (usedIdx(CTX) !== 1) return `DEVICE_READY not taken (control transmit used.idx ${usedIdx(CTX)})`;
  if (usedIdx(CRX) !== 1 || got(0) !== `0:${CONSOLE_CTRL.PORT_ADD}:0`) return `DEVICE_READY not answered by PORT_ADD (${usedIdx(CRX)} messages: ${usedIdx(CRX) ? got(0) : ""})`;
  send(CONSOLE_CTRL.PORT_READY, 1, 1);
  const want = [`0:${CONSOLE_CTRL.PORT_NAME}:0:${AGENT_PORT_NAME}`, `0:${CONSOLE_CTRL.PORT_OPEN}:1`];
  if (usedIdx(CRX) !== 3 || got(1) !== want[0] || got(2) !== want[1]) {
    return `PORT_READY not answered by PORT_NAME and PORT_OPEN (${usedIdx(CRX)} messages in all${usedIdx(CRX) === 3 ? `: ${got(1)}, ${got(2)}` : ""})`;
  }
  // host to guest: held until the guest opens the port
  const msg = Uint8Array.from({ length: 300 }, (_, i) => (i * 7 + 3) & 0xff);
  if (!con.send(msg)) return "send() refused 300 bytes with nothing pending";
  const rxBuf = bufs + 0x1000n;
  post(RX, [{ addr: rxBuf, len: 4096, write: true }]);
  notify(RX);
  if (usedIdx(RX) !== 0) return "host bytes delivered before the guest opened the port";
  send(CONSOLE_CTRL.PORT_OPEN, 1, 2);
  if (!host.open) return "onGuestOpen(true) not called when the guest opened the port";
  if (usedIdx(RX) !== 1 || used(RX, 0).len !== msg.length) return `300 host bytes not delivered once the port opened (used.idx ${usedIdx(RX)}, length ${used(RX, 0).len})`;
  if (mem.view(rxBuf, msg.length).some((b, i) => b !== msg[i])) return "the host's bytes arrived changed";
  // guest to host
  const out = Uint8Array.from({ length: 5000 }, (_, i) => (i * 13 + 1) & 0xff);
  mem.view(bufs + 0x2000n, out.length).set(out);
  post(TX, [{ addr: bufs + 0x2000n, len: 1000, write: false }, { addr: bufs + 0x2000n + 1000n, len: 4000, write: false }]);
  notify(TX);
  if (usedIdx(TX) !== 1) return `the guest's bytes were not taken (transmit used.idx ${usedIdx(TX)})`;
  const seen = host.collect ?? [];
  if (seen.length !== out.length || seen.some((b, i) => b !== out[i])) return `the host got ${seen.length} bytes, not the guest's 5000`;
  if (t.needsReset) return `NEEDS_RESET after the handshake: ${t.failureReason}`;
  return null;
}

export interface VirtioCampaignOptions {
  from: number;
  to: number;
  actions?: number;
  timeoutMs?: number;
  onFailure?: (f: { seed: number; problem: string }) => void;
}

export interface VirtioCampaignReport {
  rounds: number;
  /** actions the guests executed in all */
  executed: number;
  hostMs: number;
  ends: Record<string, number>;
  /** devices (over all rounds) that entered NEEDS_RESET during their round */
  failedDuring: number;
  /** devices in NEEDS_RESET at the end of their round, and how many of them recovered */
  needsResetAtEnd: number;
  recovered: number;
  /** how often each kind of NEEDS_RESET reason came up (the reason with its numbers taken out) */
  reasons: Map<string, number>;
  work: VirtioWork;
  byKind: Partial<Record<DeviceKind, KindCounts>>;
  failures: { seed: number; problem: string }[];
  rssGrowth: number;
}

export async function virtioCampaign(module: WebAssembly.Module, opts: VirtioCampaignOptions): Promise<VirtioCampaignReport> {
  const timeoutMs = opts.timeoutMs ?? 2000;
  // each round's machine holds ~40 MiB of wasm memory until collected: collect more often than for a hart
  const rules = new CampaignRules(opts.onFailure, 10);
  const report: VirtioCampaignReport = {
    rounds: 0, executed: 0, hostMs: 0, ends: {}, failedDuring: 0, needsResetAtEnd: 0, recovered: 0, reasons: new Map(), failures: [], rssGrowth: 0,
    work: { ...NO_WORK }, byKind: {},
  };
  const t0 = performance.now();
  // an exception in a device's asynchronous completion (a disk's promise callback) reaches no caller: it is a
  // host exception of the round that is running
  let current = opts.from;
  const unhandled = (e: unknown) => rules.fail(current, `the host threw (unhandled, asynchronously): ${(e as Error)?.stack ?? e}`);
  process.on("unhandledRejection", unhandled);
  try {
    for (let seed = opts.from; seed <= opts.to; seed++) {
      current = seed;
      await oneRound(seed);
    }
  } finally {
    process.off("unhandledRejection", unhandled);
  }
  report.hostMs = performance.now() - t0;
  report.rssGrowth = rules.finish(opts.to);
  report.rounds = rules.runs;
  report.failures = rules.failures;
  return report;

  async function oneRound(seed: number): Promise<void> {
    const r = await rules.runAsync(seed, () => virtioRound(module, seed, { actions: opts.actions, timeoutMs }));
    if (!r) return;
    report.executed += r.executed;
    report.ends[r.end] = (report.ends[r.end] ?? 0) + 1;
    report.failedDuring += r.failedDuring;
    report.needsResetAtEnd += r.needsResetAtEnd;
    report.recovered += r.recovered;
    for (const k of Object.keys(r.work) as (keyof VirtioWork)[]) report.work[k] += r.work[k];
    for (const [kind, c] of Object.entries(r.byKind) as [DeviceKind, KindCounts][]) {
      const to = report.byKind[kind] ??= { failedDuring: 0, needsResetAtEnd: 0, recovered: 0 };
      to.failedDuring += c.failedDuring; to.needsResetAtEnd += c.needsResetAtEnd; to.recovered += c.recovered;
    }
    for (const why of r.reasons) {
      const k = why.replace(/0x[0-9a-f]+|\d+/g, "N");
      report.reasons.set(k, (report.reasons.get(k) ?? 0) + 1);
    }
    rules.checkTime(seed, r.ms, timeoutMs);
    for (const p of r.problems) rules.fail(seed, p);
  }
}
