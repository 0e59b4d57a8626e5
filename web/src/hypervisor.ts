// The page's hypervisor: every VM (its spec, its worker's VmHandle, its console, its meters), their lifecycle,
// the once-a-second sampling of their meters and the CPU sharing by weight. React reads it through subscribe() and
// the versions (useSyncExternalStore): `structVersion` moves when VMs, their states or settings change, and
// `meterVersion` with each round of samples, so only what shows meters redraws every second. Nothing here
// depends on React.

import type { Guest, SystemImage } from "./images.ts";
import { VmHandle } from "./vm-handle.ts";
import { ConsoleHost } from "./console-host.ts";
import { MeterHistory, sampleBetween, restingSample, HISTORY_SECONDS } from "./meters.ts";
import { shareCpu, type SchedVm } from "./scheduler.ts";
import { cmdlineOf, imageInfo, saveLab, maxBalloonMiB, uniqueName, type VmSpec } from "./lab.ts";
import type { VmIncoming, VmMigrationReport, VmOrigin, VmState, VmStats } from "../shared/protocol.ts";
import type { NicInit } from "../net/nic-channel.ts";
import { hostnameOf } from "../../emulator-core/src/snapshot/template.ts";
import { macToString } from "../../emulator-core/src/net/packet.ts";
import { removeVmDisks, vmsWithDisks, hasOpfs } from "../vm/disk-opfs.ts";

/** What the dashboard calls a VM's state. */
export type UiState = "booting" | "running" | "paused" | "stopped" | "crashed";

export function uiState(s: VmState): UiState {
  switch (s) {
    case "booting": return "booting";
    case "running": return "running";
    case "paused": return "paused";
    case "error": return "crashed";
    default: return "stopped"; // created, stopped
  }
}

export interface VmEntry {
  readonly id: number;
  spec: VmSpec;
  handle: VmHandle;
  readonly console: ConsoleHost;
  state: UiState;
  /** why it stopped or crashed */
  detail?: string;
  /** the last lines of its console when it crashed */
  crashLines?: string[];
  /** the guest printed its ready marker (its shell is up) since the last boot */
  ready: boolean;
  readonly history: MeterHistory;
  stats?: VmStats;
  /** the CPU cap the worker enforces now (the user's cap, or less when VMs compete; see scheduler.ts) */
  effectiveCap: number;
  /** the stats block's GEN when `stats` was fetched whole (stats-block.ts) */
  statsGen?: number;
  /** since when (performance.now()) its worker has not answered a stats call in time */
  lateSince?: number;
  /** its worker has not answered for NOT_RESPONDING_MS: shown as such; Reset and Power off replace the worker */
  notResponding?: boolean;
  /** what is under way with its machine (one operation at a time per VM; see busyWith) */
  busy?: VmBusy;
  /** its disk is kept in the browser's storage; "keep" once its worker has it (a new worker then opens it again) */
  diskMode?: "keep" | "fresh";
  /** what is wrong with its disk (its storage is full...), as its worker last said */
  diskProblem?: string;
}

/** An operation on a VM's machine that takes a while: taking a snapshot, restoring one, forking, migrating. */
export interface VmBusy {
  op: "snapshot" | "restore" | "fork" | "migrate" | "disk";
  /** what the VM's buttons say meanwhile ("Forking…") */
  label: string;
}

export interface HostSummary {
  cores: number;
  /** percent of one core, all VM workers together (last sample) */
  cpu: number;
  /** MiB of guest RAM held by VMs that have a machine (booting, running, paused) */
  ramReservedMiB: number;
  /** MiB the balloons took back from those */
  balloonMiB: number;
  vms: number;
  running: number;
  t: number[];
  cpuHistory: number[];
}

/** One card of a VM as its creator wants it: a MAC (default: a new one) and a network (default: the layer's own
 *  choice; null: unplugged). */
export interface CardPlan {
  mac?: string;
  network?: string | null;
}

/** Lets a network layer give each VM its cards (the VM's control block rings its doorbell). */
export interface NetworkAttach {
  nicsFor(vm: string, cards: CardPlan[]): ((ctrl: SharedArrayBuffer) => NicInit[]) | undefined;
  release?(vm: string): void;
  /** each of the VM's cards now, in order */
  cardsOf?(vm: string): { mac: string; network: string | null }[];
  /** the MACs every card in the page has now */
  macsInUse?(): string[];
  /** the networks a card can be plugged into */
  networkNames?(): string[];
}

/** How a new VM starts other than by booting, and how its cards are made. */
export interface CreateOptions {
  /** the saved machine it starts from (a snapshot, the VM it is a fork of) */
  from?: VmOrigin;
  /** its cards (default: one, with a new MAC) */
  cards?: CardPlan[];
  /** the machine comes by live migration from another tab (see tabs/migrations.ts) */
  incoming?: VmIncoming;
  /** its disk is the one kept for it in the browser's storage (a VM of the lab of the last visit); otherwise a VM
   *  made now starts with a new disk (whatever was kept under its name is dropped) */
  keepDisk?: boolean;
}

/** The browser's storage as the page sees it (navigator.storage). */
export interface StorageSummary {
  /** bytes the page uses (everything: disks, snapshots, caches) and may use */
  usage?: number;
  quota?: number;
  /** the browser agreed not to evict the page's storage */
  persisted?: boolean;
}

export interface HypervisorOptions {
  /** save the lab (the specs) in IndexedDB on every change */
  persist: boolean;
  network?: NetworkAttach;
  /** keep VMs' disks in the browser's storage (the saved lab's tab) */
  persistDisks?: boolean;
  /** cap each disk's overlay at this many bytes (tests: ?diskQuotaMiB=) */
  diskQuotaBytes?: number;
  /** each VM worker's console backlog bound (VmInit.consoleBacklogBytes; tests: ?consoleBacklogKiB=) */
  consoleBacklogBytes?: number;
  /** the lab's SSH key, given to every Debian VM (lab.ts: labSshKey) */
  sshKey?: string;
}

const SAMPLE_MS = 1000;
/** A round of samples waits this long for a worker's answer; a late worker misses the round (the others do not wait). */
const LATE_MS = 1500;
/** A worker that has not answered for this long is shown as not responding (Reset and Power off then replace it)... */
const NOT_RESPONDING_MS = 3000;
/** ...and after this long it is taken for hung and stopped. */
const HUNG_MS = 15_000;
/** A worker's stats block older than this, while its loop is not asleep, is not trusted: it is asked through comlink
 *  (a running guest's loop publishes every quarter second, so a live worker's block is only this old while it is
 *  parked for a snapshot or a restore, when comlink answers, or when its thread never yields, when it does not). */
const FRESH_MS = 2500;

export class Hypervisor {
  readonly entries: VmEntry[] = [];
  /** bumped on every change */
  version = 0;
  /** bumped when VMs, their states or their settings change */
  structVersion = 0;
  /** bumped by each round of meter samples */
  meterVersion = 0;
  readonly cores = Math.max(1, navigator.hardwareConcurrency || 1);
  readonly hostT: number[] = [];
  readonly hostCpu: number[] = [];
  private nextId = 1;
  private readonly listeners = new Set<() => void>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private disposed = false;
  private sampling = false;

  /** told when a VM is deleted (its name) */
  onRemoved: ((name: string) => void) | undefined;

  /** the browser's storage (refreshed when the disks' stored bytes move, and once a minute) */
  storage: StorageSummary = {};
  private storageRound = 0;
  /** the disks' stored bytes when the storage figures were last asked for */
  private storageAskedAt = -1;

  constructor(private readonly guest: Guest, private readonly opts: HypervisorOptions) {
    this.timer = setInterval(() => void this.sample(), SAMPLE_MS);
    if (this.persistDisks) {
      // disks the user expects to find next week: ask the browser not to evict them under storage pressure
      void navigator.storage?.persist?.().then((p) => { this.storage.persisted = p; this.changed(); }).catch(() => {});
      void this.refreshStorage();
    }
  }

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  getVersion = (): number => this.version;
  getStructVersion = (): number => this.structVersion;
  getMeterVersion = (): number => this.meterVersion;

  private changed(save = false, meters = false): void {
    this.version++;
    if (meters) this.meterVersion++;
    else this.structVersion++;
    for (const fn of this.listeners) fn();
    if (save && this.opts.persist) this.save();
  }

  /** The networks a new VM's cards can be plugged into. */
  networkNames(): string[] { return this.opts.network?.networkNames?.() ?? []; }

  /** The Debian system image: there (built and served), or why not. */
  get debian(): SystemImage | { missing: string } { return this.guest.debian; }

  /** The VM's cards as the page has them (a worker made again after a crash gets the same ones), or undefined. */
  private cardsNow(vm: string): CardPlan[] | undefined {
    const cards = this.opts.network?.cardsOf?.(vm);
    return cards && cards.length ? cards.map((c) => ({ network: c.network, mac: c.mac })) : undefined;
  }

  /** The VMs' specs as they are to be saved: each with its cards as the page has them now. */
  savedSpecs(): VmSpec[] {
    return this.entries.map((e) => {
      const cards = this.cardsNow(e.spec.name);
      return cards ? { ...e.spec, cards } : e.spec;
    });
  }

  private lastSaved = "";
  /** Saves the lab (the VMs' specs) when it changed since the last save (the cards may change without the VMs). */
  save(): void {
    if (!this.opts.persist) return;
    const specs = this.savedSpecs();
    const text = JSON.stringify(specs);
    if (text === this.lastSaved) return;
    this.lastSaved = text;
    void saveLab(specs);
  }

  byName(name: string): VmEntry | undefined { return this.entries.find((e) => e.spec.name === name); }
  byId(id: number): VmEntry | undefined { return this.entries.find((e) => e.id === id); }

  /** Adds a VM (its spec already checked) and, unless told otherwise, boots it (or starts it from `opts.from`). */
  create(spec: VmSpec, start = true, opts: CreateOptions = {}): VmEntry {
    const console = new ConsoleHost();
    const entry: VmEntry = {
      // the cards it is made with are the ones it keeps (a worker made again after a crash, the next visit)
      id: this.nextId++, spec: { ...spec, ...(opts.cards ? { cards: opts.cards.map((c) => ({ ...c })) } : {}) }, console, state: "stopped", ready: false,
      history: new MeterHistory(), effectiveCap: spec.cpuCap,
      handle: undefined as unknown as VmHandle,
    };
    console.onUnreadChange = () => this.changed();
    this.entries.push(entry);
    this.spawn(entry, opts);
    if (start) void this.start(entry.id);
    this.changed(true);
    return entry;
  }

  /** The system image a VM's disk is (a Debian VM's), when it has one: the image if this page has it (the one its
   *  disk names, for a VM made from a snapshot), else why it cannot run. */
  private systemDisk(s: VmSpec): { wanted: boolean; image?: SystemImage; missing?: string } {
    const named = s.machine?.disks.find((d) => d.base !== undefined)?.base;
    if (!named && (s.machine || !imageInfo(s.image)?.system)) return { wanted: false };
    const have = "id" in this.guest.debian ? this.guest.debian : undefined;
    if (!have) return { wanted: true, missing: (this.guest.debian as { missing: string }).missing };
    if (named && named !== have.id) {
      return { wanted: true, missing: `its disk is over another build of the system image (${named}; this page has ${have.id}): it cannot run on this one` };
    }
    return { wanted: true, image: have };
  }

  /** A new worker for the entry (at creation, and after its worker crashed: it then boots). */
  private spawn(e: VmEntry, opts: CreateOptions = {}): void {
    const s = e.spec;
    const system = this.systemDisk(s);
    const hasDisk = system.wanted || (s.machine ? s.machine.disks.length : s.diskMiB) > 0;
    if (this.persistDisks && hasDisk) e.diskMode ??= opts.keepDisk ? "keep" : "fresh";
    const handle = new VmHandle({
      name: s.name, hart: this.guest.hart, ramMiB: s.ramMiB, cmdline: cmdlineOf(s, system.image && { cmdline: system.image.cmdline, sshKey: this.opts.sshKey }),
      // a system disk boots without the busybox initramfs
      images: system.wanted ? { kernel: this.guest.images.kernel } : this.guest.images,
      diskBase: system.image && { url: system.image.url, manifest: system.image.manifest, id: system.image.id },
      unavailable: system.missing,
      diskMiB: s.diskMiB, cpuCap: e.effectiveCap, balloonMiB: s.balloonMiB, jit: s.jit === true,
      nics: this.opts.network?.nicsFor(s.name, opts.cards ?? this.cardsNow(s.name) ?? s.cards ?? Array.from({ length: s.machine?.nics.length ?? 1 }, () => ({}))),
      machine: s.machine, template: this.guest.template, from: opts.from, incoming: opts.incoming,
      disk: e.diskMode && { name: s.name, mode: e.diskMode, quotaBytes: this.opts.diskQuotaBytes },
      consoleBacklogBytes: this.opts.consoleBacklogBytes,
    });
    // a worker made again for the VM (its first one crashed) opens the disk the first one kept
    if (e.diskMode) e.diskMode = "keep";
    e.diskProblem = undefined;
    handle.onDiskProblem((p) => { if (e.handle === handle) { e.diskProblem = p; this.changed(); } });
    e.handle = handle;
    e.stats = undefined;
    e.console.attach(handle);
    handle.onStateChange((st, detail) => {
      if (e.handle !== handle) return;
      const ui = uiState(st);
      if (ui === "crashed" && e.state !== "crashed") {
        // let the console take in the worker's last bytes before reading its last lines
        setTimeout(() => { e.crashLines = e.console.lastLines(6); this.changed(); }, 300);
      }
      if (ui === "booting") { e.ready = false; e.crashLines = undefined; }
      e.state = ui;
      e.detail = detail;
      this.changed();
    });
    handle.onReady(() => { if (e.handle === handle) { e.ready = true; this.changed(); } });
  }

  private async act(id: number, fn: (h: VmHandle) => Promise<unknown>): Promise<void> {
    const e = this.byId(id);
    if (!e) return;
    if (e.handle.dead) { e.handle.dispose(); this.spawn(e); }
    try { await fn(e.handle); } catch { /* the worker went away; its state says so */ }
  }

  /** Stops a worker that does not answer (it cannot be asked to): its guest is gone with it. */
  private stopUnresponsive(e: VmEntry, why: string): void {
    e.handle.dispose();
    e.handle.dead = true;
    e.notResponding = false;
    e.lateSince = undefined;
    e.state = "stopped";
    e.detail = why;
    e.ready = false;
    this.changed();
  }

  start(id: number): Promise<void> { return this.act(id, (h) => h.start()); }
  pause(id: number): Promise<void> { return this.act(id, (h) => h.pause()); }
  resume(id: number): Promise<void> { return this.act(id, (h) => h.resume()); }
  /** A hard reset; a VM whose worker does not respond gets a new worker, which boots. */
  reset(id: number): Promise<void> {
    const e = this.byId(id);
    if (e?.notResponding) {
      this.stopUnresponsive(e, "its worker was not responding and was replaced");
      return this.start(id);
    }
    return this.act(id, (h) => h.reset());
  }
  powerOff(id: number): Promise<void> {
    const e = this.byId(id);
    if (e?.handle.dead) return Promise.resolve(); // nothing runs
    if (e?.notResponding) { this.stopUnresponsive(e, "powered off (its worker was not responding and was stopped)"); return Promise.resolve(); }
    return this.act(id, (h) => h.powerOff());
  }

  remove(id: number): void {
    const i = this.entries.findIndex((e) => e.id === id);
    if (i < 0) return;
    const [e] = this.entries.splice(i, 1);
    e.handle.dispose();
    e.console.dispose();
    this.opts.network?.release?.(e.spec.name);
    this.onRemoved?.(e.spec.name);
    // its disk goes with it (a VM migrated away took its disk's contents along)
    if (e.diskMode) void removeVmDisks(e.spec.name).then(() => this.refreshStorage()).catch(() => {});
    this.changed(true);
  }

  /** VMs' disks are kept in the browser's storage. */
  get persistDisks(): boolean { return !!this.opts.persistDisks && hasOpfs(); }

  /** Removes disks kept for VMs that are not in the lab (one deleted while its page was going away). */
  async dropOrphanDisks(): Promise<void> {
    if (!this.persistDisks) return;
    const names = new Set(this.entries.map((e) => e.spec.name));
    for (const vm of await vmsWithDisks().catch(() => [])) if (!names.has(vm)) await removeVmDisks(vm).catch(() => {});
  }

  async refreshStorage(): Promise<void> {
    try {
      const est = await navigator.storage?.estimate?.();
      if (est) { this.storage.usage = est.usage; this.storage.quota = est.quota; }
      this.storage.persisted = await navigator.storage?.persisted?.() ?? this.storage.persisted;
    } catch { /* not offered: nothing to show */ }
  }

  /** Bytes of the browser's storage the VMs' disks take, all together. */
  diskStoredBytes(): number {
    return this.entries.reduce((n, e) => n + (e.stats?.disk?.storedBytes ?? 0), 0);
  }

  /** A disk operation (reset, import): the VM is powered off first when it is on; its stats follow. */
  private async diskOp(id: number, label: string, fn: (h: VmHandle) => Promise<VmStats>): Promise<void> {
    const e = this.byId(id);
    if (!e) throw new Error("the VM is gone");
    await this.busyWith(e, { op: "disk", label }, async () => {
      if (e.handle.dead) { e.handle.dispose(); this.spawn(e); }
      if (e.state === "running" || e.state === "booting" || e.state === "paused") await e.handle.powerOff();
      const s = await fn(e.handle);
      e.stats = s;
      e.diskProblem = undefined;
    });
    void this.refreshStorage().then(() => this.changed());
  }

  /** The VM's disk back to its base (empty); a running VM is powered off first. */
  resetDisk(id: number): Promise<void> { return this.diskOp(id, "Resetting disk…", (h) => h.resetDisk()); }

  /** A raw image file becomes the VM's disk (exactly the disk's size; all or nothing); a running VM is powered
   *  off first. */
  importDisk(id: number, image: Blob): Promise<void> { return this.diskOp(id, "Importing disk…", (h) => h.importDisk(image)); }

  /** The VM's disk as a raw image. The pieces go into the browser's blob storage as they come (which keeps large
   *  blobs on disk), not into one buffer of the whole disk. */
  async exportDisk(id: number): Promise<Blob> {
    const e = this.byId(id);
    if (!e || e.handle.dead) throw new Error(`${e?.spec.name ?? "the VM"} has no worker`);
    return this.busyWith(e, { op: "disk", label: "Exporting disk…" }, async () => {
      const parts: Blob[] = [];
      await e.handle.exportDisk((bytes) => { parts.push(new Blob([bytes as Uint8Array<ArrayBuffer>])); });
      return new Blob(parts, { type: "application/octet-stream" });
    });
  }

  /** The VM has a machine whose state can be saved (running, booting or paused). */
  live(e: VmEntry): boolean {
    return !e.handle.dead && (e.state === "running" || e.state === "booting" || e.state === "paused");
  }

  /** A snapshot file of the VM as it is now (it runs on). */
  snapshot(id: number, name?: string): Promise<Uint8Array> {
    const e = this.byId(id);
    if (!e || !this.live(e)) return Promise.reject(new Error(`${e?.spec.name ?? "the VM"} is not running`));
    return e.handle.snapshot({ name, vmName: e.spec.name });
  }

  /** Puts a saved machine into the VM in place of the one it runs (which runs on until the new one is built, and
   *  stays when that fails: the promise then rejects saying why). */
  async restoreInto(id: number, from: VmOrigin): Promise<void> {
    const e = this.byId(id);
    if (!e) throw new Error("the VM is gone");
    if (e.handle.dead) { e.handle.dispose(); this.spawn(e); }
    const h = e.handle;
    const s = await h.restore(from);
    if (e.handle !== h) return;
    // counters start over with the new machine: the next sample is the first of it
    e.stats = undefined;
    e.ready = h.ready;
    e.state = uiState(s.state);
    e.detail = undefined;
    e.crashLines = undefined;
    this.changed();
  }

  /** A new VM that starts from a saved machine instead of booting. Its cards keep the saved MACs when it keeps the
   *  saved name and no card in the page has them (then the guest goes on as it was); otherwise they are new and the
   *  guest is told its new identity. */
  createFrom(spec: VmSpec, from: VmOrigin): VmEntry {
    const savedName = hostnameOf(from.spec.cmdline);
    const inUse = new Set(this.opts.network?.macsInUse?.() ?? []);
    const macs = from.spec.nics.map((n) => macToString(n.mac));
    const keep = savedName === spec.name && macs.every((m) => !inUse.has(m));
    return this.create(spec, true, { from, cards: macs.map((mac): CardPlan => ({ mac: keep ? mac : undefined })) });
  }

  /** Forks a running VM: a copy named NAME-2 (or the next free number) starts from its state as it is now, with
   *  its own MACs and host name (its guest takes its own DHCP lease) and a copy of its disk, its cards on the same
   *  networks. Both run on. Resolves with the copy once its machine is being built. */
  async fork(id: number): Promise<VmEntry> {
    const e = this.byId(id);
    if (!e || !this.live(e)) throw new Error(`${e?.spec.name ?? "the VM"} is not running: only a running VM can be forked`);
    const from = await e.handle.saveState();
    const name = uniqueName(e.spec.name, this.entries.map((x) => x.spec.name));
    from.label = `forked from ${e.spec.name}`;
    const networks = this.opts.network?.cardsOf?.(e.spec.name).map((c) => c.network);
    // the copy's cards are new (new MACs), on the networks the original's are on now
    const cards = from.spec.nics.map((_, i): CardPlan => ({ network: networks ? networks[i] ?? null : undefined }));
    return this.create({ ...e.spec, name }, true, { from, cards });
  }

  /** Runs `fn` as the VM's one operation under way (e.busy meanwhile); rejects at once when another is. */
  async busyWith<T>(e: VmEntry, busy: VmBusy, fn: () => Promise<T>): Promise<T> {
    if (e.busy) throw new Error(`${e.spec.name} is busy: ${e.busy.label.replace(/…$/, "")}`);
    e.busy = busy;
    this.changed();
    try {
      return await fn();
    } finally {
      e.busy = undefined;
      this.changed();
    }
  }

  /** Live-migrates a running VM to another tab (named `to`): `prepare` has that tab make the receiving VM and
   *  gives the channel its worker listens on. Once the machine runs there, the VM is removed here. On failure it
   *  runs on here and the promise rejects saying why. */
  async emigrate(id: number, to: string, prepare: () => Promise<string>): Promise<VmMigrationReport> {
    const e = this.byId(id);
    if (!e || !this.live(e)) throw new Error(`${e?.spec.name ?? "the VM"} is not running`);
    const report = await this.busyWith(e, { op: "migrate", label: `Migrating to ${to}…` }, async () => {
      const channel = await prepare();
      return e.handle.migrateOut(channel, to);
    });
    this.remove(id);
    return report;
  }

  async startAll(): Promise<void> {
    await Promise.all(this.entries.map((e) => {
      if (e.state === "stopped" || e.state === "crashed") return this.start(e.id);
      if (e.state === "paused") return this.resume(e.id);
      return undefined;
    }));
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.entries.filter((e) => e.state !== "stopped" && e.state !== "crashed").map((e) => this.powerOff(e.id)));
  }

  setCpuCap(id: number, percent: number): void {
    const e = this.byId(id);
    if (!e) return;
    e.spec.cpuCap = Math.max(1, Math.min(100, Math.round(percent)));
    // until the next sample re-shares the CPU, the new cap applies as it is
    e.effectiveCap = e.spec.cpuCap;
    if (!e.handle.dead) void e.handle.setCpuCap(e.effectiveCap).catch(() => {});
    this.changed(true);
  }

  setWeight(id: number, weight: number): void {
    const e = this.byId(id);
    if (!e) return;
    e.spec.weight = Math.max(1, Math.min(10000, Math.round(weight)));
    this.changed(true);
  }

  setBalloon(id: number, mib: number): void {
    const e = this.byId(id);
    if (!e) return;
    e.spec.balloonMiB = Math.max(0, Math.min(maxBalloonMiB(e.spec.ramMiB), Math.round(mib)));
    if (!e.handle.dead) void e.handle.setBalloon(e.spec.balloonMiB).catch(() => {});
    this.changed(true);
  }

  /** The JIT on or off for the VM. It is how the machine is built, so it takes effect at the VM's next start (Power
   *  on, Reset); the machine running now keeps what it was built with (VmStats.jit says which). */
  setJit(id: number, on: boolean): void {
    const e = this.byId(id);
    if (!e || (e.spec.jit === true) === on) return;
    e.spec.jit = on;
    if (!e.handle.dead) void e.handle.setJit(on).catch(() => {});
    this.changed(true);
  }

  host(): HostSummary {
    let cpu = 0, ram = 0, balloon = 0, running = 0;
    for (const e of this.entries) {
      cpu += e.history.last?.cpu ?? 0;
      if (e.state === "running" || e.state === "booting" || e.state === "paused") {
        ram += e.spec.ramMiB;
        balloon += e.history.last?.balloon ?? 0;
      }
      if (e.state === "running" || e.state === "booting") running++;
    }
    return {
      cores: this.cores, cpu, ramReservedMiB: ram, balloonMiB: balloon, vms: this.entries.length, running,
      t: this.hostT, cpuHistory: this.hostCpu,
    };
  }

  private async sample(): Promise<void> {
    if (this.sampling || this.disposed) return;
    this.sampling = true;
    try {
      await Promise.all(this.entries.map((e) => this.sampleOne(e)));
      if (this.share()) this.structVersion++;
      // the browser's storage figures (two calls to the browser process) are asked for again when the disks' stored
      // bytes moved, checked every 5 s, and at least once a minute (another tab, the browser's own quota)
      if (this.persistDisks && ++this.storageRound % 5 === 0) {
        const stored = this.diskStoredBytes();
        if (stored !== this.storageAskedAt || this.storageRound % 60 === 0) {
          this.storageAskedAt = stored;
          await this.refreshStorage();
        }
      }
      let total = 0;
      for (const e of this.entries) total += e.history.last?.cpu ?? 0;
      this.hostT.push(Date.now() / 1000);
      this.hostCpu.push(total);
      if (this.hostT.length > HISTORY_SECONDS) { this.hostT.shift(); this.hostCpu.shift(); }
      this.changed(false, true);
    } finally {
      this.sampling = false;
    }
  }

  private async sampleOne(e: VmEntry): Promise<void> {
    const h = e.handle;
    if (h.dead || e.state === "stopped" || e.state === "crashed") {
      e.history.push(restingSample());
      return;
    }
    // Most rounds read the worker's counters from shared memory: no message, nothing for the worker to do. The worker
    // is asked through comlink when something that is not a number there changed (GEN), and when its block went
    // stale, which is how a worker that stopped turning its loop is still found out (below).
    const block = h.statsBlock;
    if (e.stats && block.gen === e.statsGen && (block.asleep || block.age() < FRESH_MS)) {
      const s = block.read(e.stats);
      if (s) {
        e.lateSince = undefined;
        if (e.notResponding) { e.notResponding = false; this.structVersion++; }
        const prev = e.stats;
        e.stats = s;
        e.history.push(sampleBetween(prev, s, e.spec.ramMiB));
        return;
      }
    }
    const gen = block.gen;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((r) => { timer = setTimeout(() => r("late"), LATE_MS); });
    const s = await Promise.race([h.stats().catch(() => undefined), late]);
    clearTimeout(timer);
    if (e.handle !== h) return;
    if (s === "late") {
      // late since it last showed life: its last publish, when it has one (its block went stale before it was asked)
      e.lateSince ??= performance.now() - (Number.isFinite(block.age()) ? Math.min(block.age(), LATE_MS + FRESH_MS) : 0);
      if (!e.notResponding && performance.now() - e.lateSince >= NOT_RESPONDING_MS) { e.notResponding = true; this.structVersion++; }
      if (performance.now() - e.lateSince < HUNG_MS) return; // no sample from it this round
    } else {
      e.lateSince = undefined;
      if (e.notResponding) { e.notResponding = false; this.structVersion++; }
    }
    if (s === "late") {
      // A worker that does not answer for this long is stuck (its run loop never yields): stop it.
      h.dispose();
      h.dead = true;
      e.notResponding = false;
      e.state = "crashed";
      e.detail = `the VM worker stopped answering for ${HUNG_MS / 1000} s and was stopped`;
      e.crashLines = e.console.lastLines(6);
      e.history.push(restingSample());
      this.structVersion++;
      return;
    }
    if (!s) { e.history.push(restingSample()); return; }
    const prev = e.stats;
    e.stats = s;
    e.statsGen = gen;
    e.history.push(prev ? sampleBetween(prev, s, e.spec.ramMiB) : { ...restingSample(), memAvail: e.spec.ramMiB });
  }

  /** Shares the host's cores by weight when the VMs want more than there is (see scheduler.ts); true when a VM's
   *  effective cap changed. */
  private share(): boolean {
    let moved = false;
    const live = this.entries.filter((e) => !e.handle.dead && (e.state === "running" || e.state === "booting"));
    const vms: SchedVm[] = live.map((e) => ({
      id: e.id, cap: e.spec.cpuCap, weight: e.spec.weight, used: e.history.last?.cpu ?? 0,
      allowed: e.effectiveCap, throttled: (e.history.last?.throttled ?? 0) > 20,
    }));
    const caps = shareCpu(vms, this.cores);
    for (const e of live) {
      const cap = Math.round(caps.get(e.id) ?? e.spec.cpuCap);
      if (Math.abs(cap - e.effectiveCap) >= 1) {
        e.effectiveCap = cap;
        moved = true;
        void e.handle.setCpuCap(cap).catch(() => {});
      }
    }
    return moved;
  }

  dispose(): void {
    this.disposed = true;
    if (this.timer) clearInterval(this.timer);
    for (const e of this.entries) { e.handle.dispose(); e.console.dispose(); }
    this.entries.length = 0;
  }
}
