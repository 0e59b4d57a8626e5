// What the page and a VM worker share: the control block in shared memory, the states, and the comlink API.
//
// Control block (Int32Array over a SharedArrayBuffer):
//   DOORBELL       the page adds 1 and Atomics.notify()s it whenever the worker should look around: input was
//                  typed, output room was freed, a control call is on its way. An idle worker sleeps in
//                  Atomics.wait on it (until the guest's next timer deadline or the bell).
//   PENDING_CALLS  control calls the page has posted and the worker has not begun: while it is above zero the
//                  worker never blocks, it returns to its event loop so comlink can deliver them (a worker
//                  blocked in Atomics.wait cannot receive messages).
//   WANT_SPACE     set by the worker when output waits behind the full ring (in its backlog: the guest is never
//                  held for its console); the page rings the doorbell after draining when it sees it.
//   STATE          the VmState code, published by the worker on every change (the page may read it any time).
//   PAGE_ASLEEP    set by the page when its console pump stops for lack of output (no animation frames are
//                  requested then: an idle tab draws nothing); the worker clears it when it writes output and
//                  bumps OUTPUT_BELL, which the page awaits with Atomics.waitAsync (or polls without it).
//   OUTPUT_BELL    see PAGE_ASLEEP.

import type { ExecOptions, ExecResult } from "../../emulator-core/src/agent/client.ts";
import type { MachineSpec } from "../../emulator-core/src/machine/description.ts";
import type { StateValue } from "../../emulator-core/src/snapshot/state-value.ts";
import type { NicInit } from "../net/nic-channel.ts";
import type { MigrationStats } from "../../emulator-core/src/snapshot/migration.ts";
import type { SharedDisk } from "../../emulator-core/src/machine/virtio/layered-disk.ts";

export const CTRL = { DOORBELL: 0, PENDING_CALLS: 1, WANT_SPACE: 2, STATE: 3, PAGE_ASLEEP: 4, OUTPUT_BELL: 5 } as const;
export const CTRL_WORDS = 8;

export const VM_STATES = ["created", "booting", "running", "paused", "stopped", "error"] as const;
export type VmState = (typeof VM_STATES)[number];

export interface VmStats {
  state: VmState;
  /** instructions the guest has retired since it was (re)booted */
  instret: number;
  /** host time spent running the guest (ms, since the machine was made: a reboot does not reset it) */
  busyMs: number;
  /** host time spent asleep while the guest idled (ms, likewise) */
  idleMs: number;
  /** set once the guest has stopped */
  haltReason?: string;
  exitStatus?: number;
  /** the worker's clock when these stats were taken (performance.now() in the worker; only deltas mean anything) */
  atMs: number;
  /** host time the worker held a runnable guest back to keep it under its CPU cap (ms, since the worker started) */
  throttledMs: number;
  /** the CPU cap the run loop enforces now: percent of one core (100 = none) */
  cpuCap: number;
  /** ms since the guest was (re)booted; 0 without a machine */
  uptimeMs: number;
  /** the VM's disk (an in-memory virtio-blk disk), if it has one; counters since the worker started */
  disk?: VmDiskStats;
  /** the VM's network cards, summed (virtio-net counters); counters since the worker started */
  net: VmNetStats;
  /** the virtio-balloon device of the running machine, if any */
  balloon?: VmBalloonStats;
  /** how the machine now running came to be: booted, restored from the template, from a snapshot or a fork */
  startedFrom?: VmStart;
  /** host ms that start took before the guest could run (building the board, restoring the state) */
  startMs?: number;
  /** host ms the guest was held for the last snapshot or fork (while its state was copied) */
  lastHoldMs?: number;
  /** the running machine's JIT, when it was built with one (VmInit.jit) */
  jit?: VmJitStats;
}

/** The JIT's counters (emulator-core/src/jit/tier.ts: stats, calls), since its machine was made: a reboot in place
 *  does not reset them (instret above starts over; the meters take their differences, as for busyMs). */
export interface VmJitStats {
  /** blocks compiled */
  compiled: number;
  /** host ms spent compiling them: on the VM's thread (part of busyMs) and on its compiler thread (the meter shows
   *  it as a share of busyMs, which it can exceed while a VM's code is new) */
  compileMs: number;
  /** guest instructions retired in compiled code (the rest were interpreted) */
  instret: number;
}

export type VmStart = "boot" | "template" | "snapshot" | "migration";

export interface VmDiskStats {
  sizeBytes: number;
  /** kept in the browser's storage (VmInit.disk), not only in memory */
  persistent?: boolean;
  /** bytes of the browser's storage its overlay takes (0 when it is not persistent) */
  storedBytes?: number;
  /** why the disk is not as it should be (its storage is full, it could not be opened), if it is not */
  problem?: string;
  /** memory the disk's contents take that are its own (written since its last fork), and that it shares with forks
   *  (copy-on-write layers) */
  ownBytes: number;
  sharedBytes: number;
  readBytes: number;
  writeBytes: number;
  reads: number;
  writes: number;
}

export interface VmNetStats {
  cards: number;
  rxBytes: number;
  txBytes: number;
  rxPackets: number;
  txPackets: number;
}

export interface VmBalloonStats {
  /** guest RAM in 4 KiB pages */
  ramPages: number;
  /** pages the host asks the guest to hand over (num_pages) */
  targetPages: number;
  /** pages the guest says it has handed over (config `actual`) */
  actualPages: number;
  /** pages in the balloon as the device counts them */
  inflatedPages: number;
  /** the guest counts balloon pages in MemTotal (VIRTIO_BALLOON_F_DEFLATE_ON_OOM accepted) */
  deflateOnOom: boolean;
  /** the guest's last memory statistics (bytes), from the stats queue; undefined until it has reported */
  memTotal?: number;
  memFree?: number;
  memAvailable?: number;
  diskCaches?: number;
  /** how old those statistics are (ms) */
  statsAgeMs?: number;
}

export type VmEvent =
  | { kind: "state"; state: VmState; detail?: string }
  | { kind: "ready" }
  /** something went wrong with the VM's disk (its storage is full, ...): the page shows it by the VM */
  | { kind: "disk"; problem: string }
  /** a file going in or out through the agent (VmWorkerApi.agentPut/agentGet with a transfer id) */
  | { kind: "transfer"; id: string; done: number; total: number };

export interface VmBootImages {
  kernel: Uint8Array;
  initrd?: Uint8Array;
}

export interface VmInit {
  /** the compiled emulator core (emulator-core/build/hart.wasm) */
  hart: WebAssembly.Module;
  images: VmBootImages;
  /** the machine: RAM, kernel command line, devices (emulator-core/src/machine/description.ts); the worker
   *  builds exactly this board, an in-memory disk (kept across resets) for each of spec.disks */
  spec: MachineSpec;
  ctrl: SharedArrayBuffer;
  /** the worker's counters, published for the page's meters (stats-block.ts); absent: the page asks through stats() */
  stats?: SharedArrayBuffer;
  /** guest console output: the worker writes, the page reads */
  output: SharedArrayBuffer;
  /** console input: the page writes, the worker reads */
  input: SharedArrayBuffer;
  /** CPU cap, percent of one core (default 100: none) */
  cpuCap?: number;
  /** guest memory to ask back through the balloon at boot (MiB; default 0) */
  balloonMiB?: number;
  /** build the machine with the JIT (hot guest code compiled to WebAssembly, emulator-core/src/jit); default false:
   *  the interpreter alone. setJit changes it for the machines built after (see there). */
  jit?: boolean;
  /** this VM's channel to the page's JIT compiler thread (web/src/jit-compiler.ts); absent: regions are built on
   *  the VM's own thread */
  jitPort?: MessagePort;
  /** the shared memory of each card of spec.nics, in order (see below) */
  nics?: NicInit[];
  /** the template snapshot (public/images/template.snap), opened once by the page: when spec has its shape and a
   *  plain command line, the first start restores it instead of booting (emulator-core/src/snapshot/template.ts) */
  template?: { spec: MachineSpec; state: StateValue };
  /** a saved machine the first start restores instead of booting: an opened snapshot, or the state of the VM this
   *  one is a fork of */
  from?: VmOrigin;
  /** the machine arrives by live migration instead: the first start receives it on this channel */
  incoming?: VmIncoming;
  /** keep the disks in the browser's storage (OPFS); absent: in memory only */
  disk?: VmDiskInit;
  /** the system image a disk of spec.disks names as its base (DiskSpec.base): fetched in chunks as the guest reads
   *  it, under the disk's own blocks */
  diskBase?: VmDiskBase;
  /** the VM cannot run in this page (its image is not here): why, shown when it is started */
  unavailable?: string;
  /** console output the worker keeps for a page that does not take it (hidden), beyond the output ring: the oldest
   *  goes past this, with a mark (default 4 MiB, at least 16 KiB: web/vm/vm-host.ts; the page's ?consoleBacklogKiB=N,
   *  a small bound for tests) */
  consoleBacklogBytes?: number;
}

/** A published chunked system image (npm run images:debian → public/images/debian/). */
export interface VmDiskBase {
  /** its folder (chunks/ lies under it) */
  url: string;
  /** its manifest.json (the worker checks it again) */
  manifest: unknown;
  /** its name (chunkedImageId of the manifest), what DiskSpec.base says */
  id: string;
}

/** A VM whose disks are kept in the browser's storage (web/vm/disk-store.ts, disk-opfs.ts). */
export interface VmDiskInit {
  /** the folder the disks are kept in: the VM's name */
  name: string;
  /** "keep": the disks kept for this VM (the lab of the last visit); "fresh": a new VM, whatever is kept under its
   *  name is dropped and its disks start from their base */
  mode: "keep" | "fresh";
  /** caps each disk's overlay at this many bytes (a small quota for tests: the page's ?diskQuotaMiB=N) */
  quotaBytes?: number;
}

/** Where a VM's machine comes from when it is live-migrated here from another tab. */
export interface VmIncoming {
  /** the BroadcastChannel both workers talk on (emulator-core/src/snapshot/migration-link.ts) */
  channel: string;
  /** the tab it comes from, for the console's note */
  from: string;
  /** it was paused there: it stays paused here */
  paused?: boolean;
}

/** What a finished migration reports to the source page. */
export interface VmMigrationReport extends MigrationStats {
  /** host ms from holding the guest here to the target's word that it runs it there (the guest's downtime, with
   *  the messages' way there and back) */
  downtimeMs: number;
}

/** A machine's saved state and what it was: enough to start a machine of the same shape from it. */
export interface VmOrigin {
  /** the description of the machine it was saved from (its host name and MACs may differ from this VM's: the
   *  guest is then told its new identity through its agent) */
  spec: MachineSpec;
  state: StateValue;
  /** the end of its console output when it was saved, shown again after the restore */
  console?: string;
  /** what to say in the console about where the machine came from */
  label?: string;
  /** the disks' contents as shared frozen layers (a fork: copy-on-write, emulator-core/src/machine/virtio/
   *  layered-disk.ts); the state then holds none. Only between the workers of one page (shared memory). */
  disks?: SharedDisk[];
}

/** The VM worker's control API (exposed with comlink). */
export interface VmWorkerApi {
  /** `onEvent` (a comlink proxy: a separate argument, comlink only proxies those) hears of state changes and of
   *  the guest's readiness */
  init(init: VmInit, onEvent: (e: VmEvent) => void): void;
  /** boots the guest (from "created" or "stopped") */
  start(): VmStats;
  pause(): VmStats;
  resume(): VmStats;
  /** a hard reset: the machine power-cycles in place and boots the same images again */
  reset(): VmStats;
  /** pulls the plug: the guest stops at once */
  powerOff(): VmStats;
  stats(): VmStats;
  /** caps the guest at `percent` of one core (1..100; 100 = no cap), from now on, also across reboots */
  setCpuCap(percent: number): VmStats;
  /** asks the guest to hand `mib` MiB of its RAM back through the balloon (0 = give it all back) */
  setBalloon(mib: number): VmStats;
  /** the JIT on or off from the next start on (power on, Reset, a restore): a running machine keeps what it was
   *  built with (a hart's JIT, once on, stays on; turning it off takes a new machine) */
  setJit(on: boolean): VmStats;
  /** fault injection for tests: the worker throws an uncaught exception, as a worker bug would */
  injectFault(): void;
  /** fault injection for tests: the worker's thread spins for ever, as a run loop that never yields would */
  injectHang(): void;
  /** a snapshot file of the running machine (emulator-core/src/snapshot/file.ts); the guest is held meanwhile */
  snapshot(info: { name?: string; vmName: string }): Promise<Uint8Array>;
  /** the running machine's state, for a fork (no file: nothing is compressed; the disks are shared copy-on-write:
   *  VmOrigin.disks); the guest is held meanwhile */
  saveState(): Promise<VmOrigin>;
  /** replaces the machine with one built from `from` (of the same shape); the running machine goes on until the new
   *  one is built, and stays as it was when that fails (the promise then rejects saying why) */
  restore(from: VmOrigin): Promise<VmStats>;
  /** live-migrates the machine to the VM worker listening on `channel` (made with VmInit.incoming, in the tab
   *  named `to`): RAM is copied while the guest runs, then it is held for the rest; once the other side runs it this
   *  VM stops for good ("stopped", "migrated to …"). On failure the guest runs on here and the promise rejects. */
  migrateOut(channel: string, to: string): Promise<VmMigrationReport>;
  /** the disk back to its base image (empty); the VM must be off */
  resetDisk(): Promise<VmStats>;
  /** a raw image of exactly the disk's size becomes the disk (all or nothing); the VM must be off */
  importDisk(image: Blob): Promise<VmStats>;
  /** the disk as a raw image, handed to `onChunk` a piece at a time, in order (the guest is held meanwhile when it
   *  runs: the image is as at one instant); resolves with its size */
  exportDisk(onChunk: (bytes: Uint8Array) => void | Promise<void>): Promise<number>;
  /** runs `/bin/sh -c command` in the guest through its agent (emulator-core/src/agent): exit status and output;
   *  rejects with "no answer ..." when the guest does not answer in time */
  agentExec(command: string, opts?: ExecOptions): Promise<ExecResult>;
  /** writes a file in the guest (made whole at the end); progress as "transfer" events when `transfer` is given */
  agentPut(path: string, data: Uint8Array, opts?: { mode?: number; transfer?: string }): Promise<void>;
  /** reads a file from the guest */
  agentGet(path: string, opts?: { maxBytes?: number; transfer?: string }): Promise<Uint8Array>;
}

/** The marker the guest's /init prints when the shell is about to start. */
export const GUEST_READY_MARKER = "@@GUEST_READY@@";

// A VM's network cards (web/net/nic-channel.ts): each is a SharedArrayBuffer with a pair of frame rings (VM→switch,
// switch→VM), the carrier and the card's counters. The page's NetworkHub makes them (hub.attachVm(...).nics(ctrl));
// the machine has one virtio-net device per card, in order (eth0, eth1, ...), with the card's MAC in its
// description. The switch rings this VM's CTRL.DOORBELL when frames for it are waiting. Card meters are read by the
// page from the cards' shared memory (NetworkHub.cards()), without a call.
export type { NicInit };
