// The dashboard's snapshots: taking one of a VM (kept in IndexedDB by SnapshotStore), restoring one into its VM or,
// when that VM is gone, as a new VM, deleting, downloading as a .tvsnap file, opening a file (a new VM from it), and
// forking a VM. Files are checked whole (openSnapshot: framing, checksum, state) before anything is created or
// replaced, so a corrupt, truncated or foreign file only shows why in the page's notice. React reads this through
// subscribe() and `version` (useSyncExternalStore).

import { openSnapshot, SnapshotError, type OpenedSnapshot } from "../../../emulator-core/src/snapshot/snapshot.ts";
import { hostnameOf } from "../../../emulator-core/src/snapshot/template.ts";
import type { Hypervisor, VmBusy, VmEntry } from "../hypervisor.ts";
import { vmSpecFromMachine, uniqueName, probeMemory, checkSpec } from "../lab.ts";
import type { VmOrigin } from "../../shared/protocol.ts";
import { SnapshotStore, StorageFullError, type SnapshotRecord } from "./store.ts";

export type { SnapshotRecord };

/** The file name extension of a downloaded snapshot. */
export const SNAPSHOT_EXT = ".tvsnap";

export interface Notice {
  kind: "info" | "error";
  text: string;
  /** distinguishes notices with the same text (each new one shows again) */
  seq: number;
}

const mb = (n: number) => `${(n / 1048576).toFixed(1)} MB`;
const ms = (t: number) => `${t < 1000 ? t.toFixed(0) + " ms" : (t / 1000).toFixed(2) + " s"}`;

/** Why an operation failed, in words for the page (a snapshot's own problem says what is wrong with it). */
function reason(e: unknown): string {
  const m = (e as Error)?.message ?? String(e);
  return m.replace(/^Error: /, "");
}

export class Snapshots {
  records: SnapshotRecord[] = [];
  notice: Notice | undefined;
  /** the last operation's figures (tests and the measurement script read them) */
  lastTiming: { op: string; ms: number; bytes?: number } | undefined;
  version = 0;
  /** the list has been read from storage at least once */
  loaded = false;
  private seq = 0;
  private readonly listeners = new Set<() => void>();

  constructor(readonly hv: Hypervisor, readonly store = new SnapshotStore()) {
    void this.refresh();
  }

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => { this.listeners.delete(fn); };
  };
  getVersion = (): number => this.version;

  changed(): void {
    this.version++;
    for (const fn of this.listeners) fn();
  }

  say(kind: Notice["kind"], text: string): void {
    this.notice = { kind, text, seq: ++this.seq };
    this.changed();
  }

  dismiss(): void {
    this.notice = undefined;
    this.changed();
  }

  async refresh(): Promise<void> {
    try {
      this.records = await this.store.list();
    } catch (e) {
      this.say("error", `The saved snapshots cannot be read: ${reason(e)}`);
    }
    this.loaded = true;
    this.changed();
  }

  /** Runs `fn` as the VM's operation under way (Hypervisor.busyWith); a VM busy with another only says so. */
  private async busyWith<T>(e: VmEntry, busy: VmBusy, fn: () => Promise<T>): Promise<T | undefined> {
    if (e.busy) {
      this.say("error", `${e.spec.name} is busy (${e.busy.label.replace(/…$/, "").toLowerCase()}): try again when it is done.`);
      return undefined;
    }
    this.changed();
    try {
      return await this.hv.busyWith(e, busy, fn);
    } finally {
      this.changed(); // the buttons of the Snapshots view say what is under way
    }
  }

  /** Takes a snapshot of the VM and keeps it. */
  async take(id: number, name?: string): Promise<SnapshotRecord | undefined> {
    const e = this.hv.byId(id);
    if (!e) return undefined;
    const vm = e.spec.name;
    return this.busyWith(e, { op: "snapshot", label: "Saving snapshot…" }, async () => {
      const t0 = performance.now();
      const createdAt = Date.now();
      const title = name || `${vm} ${new Date(createdAt).toLocaleTimeString()}`;
      let bytes: Uint8Array;
      try {
        bytes = await this.hv.snapshot(id, title);
      } catch (err) {
        this.say("error", `The snapshot of ${vm} could not be taken: ${reason(err)}`);
        return undefined;
      }
      const took = performance.now() - t0;
      try {
        const record = await this.store.save({ name: title, vmName: vm, createdAt, kind: "manual" }, bytes);
        void navigator.storage?.persist?.().catch(() => false); // ask the browser not to evict them
        this.lastTiming = { op: "snapshot", ms: took, bytes: bytes.length };
        this.say("info", `Snapshot of ${vm} saved (${mb(bytes.length)}, taken in ${ms(took)}).`);
        await this.refresh();
        return record;
      } catch (err) {
        this.say("error", err instanceof StorageFullError ? err.message : `The snapshot of ${vm} could not be stored: ${reason(err)}`);
        return undefined;
      }
    });
  }

  /** Restores a kept snapshot: into its VM when there is one (replacing its machine once the new one is built),
   *  else as a new VM of that name. */
  async restore(recordId: string): Promise<boolean> {
    const r = this.records.find((x) => x.id === recordId);
    if (!r) return false;
    const bytes = await this.store.load(r.id).catch(() => undefined);
    if (!bytes) {
      this.say("error", `The snapshot ${r.name} is no longer in the browser's storage.`);
      await this.refresh();
      return false;
    }
    const target = this.hv.byName(r.vmName);
    if (target) return this.restoreInto(target, bytes, `snapshot ${r.name}`);
    return this.createFrom(bytes, `snapshot ${r.name}`) !== undefined;
  }

  /** Opens a snapshot file and puts it into `e` in place of its machine. */
  async restoreInto(e: VmEntry, bytes: Uint8Array, what: string): Promise<boolean> {
    const vm = e.spec.name;
    const done = await this.busyWith(e, { op: "restore", label: "Restoring…" }, async () => {
      const t0 = performance.now();
      try {
        const opened = await openSnapshot(bytes);
        await this.hv.restoreInto(e.id, originOf(opened));
      } catch (err) {
        this.say("error", `${what} could not be restored into ${vm}: ${reason(err)}. ${vm} is as it was.`);
        return false;
      }
      const took = performance.now() - t0;
      this.lastTiming = { op: "restore", ms: took, bytes: bytes.length };
      this.say("info", `${vm} restored from ${what} in ${ms(took)}.`);
      return true;
    });
    return done ?? false;
  }

  /** A new VM from a snapshot file, named after the VM it was taken of (made unique). Resolves with it, or
   *  undefined (having said why) when the file cannot be used. */
  async createFrom(bytes: Uint8Array, what: string): Promise<VmEntry | undefined> {
    let opened: OpenedSnapshot;
    try {
      opened = await openSnapshot(bytes);
    } catch (err) {
      this.say("error", `${what} cannot be opened: ${err instanceof SnapshotError ? err.message : reason(err)}. Nothing was changed.`);
      return undefined;
    }
    const h = opened.header;
    const base = typeof h.vmName === "string" && h.vmName ? h.vmName : hostnameOf(opened.spec.cmdline) ?? "vm";
    const name = uniqueName(base, this.hv.entries.map((x) => x.spec.name), 1);
    const spec = vmSpecFromMachine(opened.spec, name);
    const why = checkSpec(spec, this.hv.entries.map((x) => x.spec.name)) ?? probeMemory(spec.ramMiB);
    if (why) {
      this.say("error", `${what} cannot become a VM: ${why}`);
      return undefined;
    }
    const t0 = performance.now();
    const e = this.hv.createFrom(spec, originOf(opened));
    this.lastTiming = { op: "open", ms: performance.now() - t0, bytes: bytes.length };
    this.say("info", `${name} created from ${what}${name !== base ? ` (${base} is taken)` : ""}.`);
    return e;
  }

  /** Opens a file the user chose or dropped: a new VM from it. */
  async openFile(file: File): Promise<VmEntry | undefined> {
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await file.arrayBuffer());
    } catch (err) {
      this.say("error", `The file ${file.name} cannot be read: ${reason(err)}`);
      return undefined;
    }
    return this.createFrom(bytes, `The file ${file.name}`);
  }

  async remove(recordId: string): Promise<void> {
    try {
      await this.store.delete(recordId);
    } catch (err) {
      this.say("error", `The snapshot could not be deleted: ${reason(err)}`);
    }
    await this.refresh();
  }

  /** Saves a kept snapshot as a file (NAME-when.tvsnap) through the browser's download. */
  async download(recordId: string): Promise<void> {
    const r = this.records.find((x) => x.id === recordId);
    const bytes = r && await this.store.load(r.id).catch(() => undefined);
    if (!r || !bytes) {
      this.say("error", "That snapshot is no longer in the browser's storage.");
      return;
    }
    const stamp = new Date(r.createdAt).toISOString().replace(/\.\d+Z$/, "").replace(/[:T]/g, "-");
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: "application/octet-stream" }));
    a.download = `${r.vmName}-${stamp}${SNAPSHOT_EXT}`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  }

  /** Forks a running VM (see Hypervisor.fork). */
  async fork(id: number): Promise<VmEntry | undefined> {
    const e = this.hv.byId(id);
    if (!e) return undefined;
    return this.busyWith(e, { op: "fork", label: "Forking…" }, async () => {
      const t0 = performance.now();
      try {
        const copy = await this.hv.fork(id);
        this.lastTiming = { op: "fork", ms: performance.now() - t0 };
        this.say("info", `${copy.spec.name} is a fork of ${e.spec.name}.`);
        return copy;
      } catch (err) {
        this.say("error", `${e.spec.name} could not be forked: ${reason(err)}`);
        return undefined;
      }
    });
  }
}

/** What a VM starts from, out of an opened snapshot file. */
export function originOf(opened: OpenedSnapshot): VmOrigin {
  const h = opened.header;
  const vm = typeof h.vmName === "string" ? h.vmName : "a VM";
  const label = `restored ${typeof h.name === "string" && h.name ? `"${h.name}"` : "a snapshot"} of ${vm}, taken ${new Date(h.createdAt).toLocaleString()}`;
  return { spec: opened.spec, state: opened.state, console: typeof h.console === "string" ? h.console : undefined, label };
}
