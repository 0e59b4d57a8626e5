// Resume after reload: every running VM of the lab is saved (a snapshot of kind "autosave", one per VM, replacing
// the one before) when the page is hidden, when it is closed, and every few minutes. The next visit offers to bring
// every VM back where it was (restore its autosave into it: its processes go on) or to start fresh.
//
// A page being closed or reloaded gets no time to finish anything asynchronous (its workers are stopped with it),
// so the save started on pagehide seldom lands; the one made when the tab was last hidden, or the periodic one, is
// what the next visit finds. A save the storage has no room for keeps the previous autosave and says so.
//
// While the offer stands nothing is autosaved (the freshly booted VMs would overwrite what is offered).

import type { Hypervisor } from "../hypervisor.ts";
import { StorageFullError, type SnapshotRecord } from "./store.ts";
import type { Snapshots } from "./snapshots.ts";

export const AUTOSAVE_INTERVAL_MS = 3 * 60_000;

export class Autosave {
  /** autosaves of the last visit waiting for the user's answer (Restore / Start fresh) */
  offered: SnapshotRecord[] = [];
  /** when the last autosave of the whole lab finished (ms since the epoch) */
  lastSavedAt: number | undefined;
  saving = false;
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly onVisibility = () => { if (document.visibilityState === "hidden") void this.saveAll(); };
  private readonly onPageHide = () => { void this.saveAll(); };

  constructor(private readonly hv: Hypervisor, private readonly snapshots: Snapshots, private readonly intervalMs = AUTOSAVE_INTERVAL_MS) {}

  /** Looks for the last visit's autosaves (of VMs in this lab), then starts saving on the page's events. */
  async start(): Promise<void> {
    await this.snapshots.refresh();
    const names = new Set(this.hv.entries.map((e) => e.spec.name));
    const autosaves = this.snapshots.records.filter((r) => r.kind === "autosave");
    this.offered = autosaves.filter((r) => names.has(r.vmName));
    // autosaves of VMs that are no longer in the lab are of no use
    for (const r of autosaves) if (!names.has(r.vmName)) await this.snapshots.store.delete(r.id).catch(() => {});
    this.hv.onRemoved = this.onRemoved;
    document.addEventListener("visibilitychange", this.onVisibility);
    window.addEventListener("pagehide", this.onPageHide);
    this.timer = setInterval(() => void this.saveAll(), this.intervalMs);
    await this.snapshots.refresh();
  }

  dispose(): void {
    document.removeEventListener("visibilitychange", this.onVisibility);
    window.removeEventListener("pagehide", this.onPageHide);
    if (this.timer) clearInterval(this.timer);
    if (this.hv.onRemoved === this.onRemoved) this.hv.onRemoved = undefined;
  }

  private readonly onRemoved = (name: string) => void this.forget(name);

  /** Saves every VM that has a machine; a VM that is off or crashed loses its autosave (it was not running). */
  async saveAll(): Promise<void> {
    if (this.saving || this.offered.length > 0) return;
    this.saving = true;
    this.snapshots.changed();
    let full: string | undefined;
    try {
      for (const e of [...this.hv.entries]) {
        const vm = e.spec.name;
        const previous = this.snapshots.records.find((r) => r.kind === "autosave" && r.vmName === vm);
        // a machine being replaced, forked or moved to another tab: the next round saves it
        if (e.busy) continue;
        if (!this.hv.live(e)) {
          if (previous && e.state !== "booting") await this.snapshots.store.delete(previous.id).catch(() => {});
          continue;
        }
        let bytes: Uint8Array;
        try {
          bytes = await this.hv.snapshot(e.id, "autosave");
        } catch {
          continue; // it stopped meanwhile
        }
        try {
          await this.snapshots.store.save({
            name: "autosave", vmName: vm, createdAt: Date.now(), kind: "autosave", paused: e.state === "paused",
          }, bytes, previous?.id);
        } catch (err) {
          full = err instanceof StorageFullError ? `Autosave: ${err.message}` : `Autosave of ${vm} failed: ${(err as Error).message}; the previous one is kept.`;
        }
      }
      if (!full) this.lastSavedAt = Date.now();
    } finally {
      this.saving = false;
      await this.snapshots.refresh();
      if (full) this.snapshots.say("error", full);
    }
  }

  /** Brings every offered VM back where it was. */
  async restoreAll(): Promise<void> {
    const offered = this.offered;
    this.offered = [];
    this.snapshots.changed();
    const failed: string[] = [];
    await Promise.all(offered.map(async (r) => {
      const e = this.hv.byName(r.vmName);
      const bytes = e && await this.snapshots.store.load(r.id).catch(() => undefined);
      if (!e || !bytes) { failed.push(r.vmName); return; }
      if (!(await this.snapshots.restoreInto(e, bytes, `the autosave of ${r.vmName}`))) { failed.push(r.vmName); return; }
      if (r.paused) await this.hv.pause(e.id);
    }));
    if (failed.length === 0) this.snapshots.say("info", `Restored ${offered.map((r) => r.vmName).join(", ")} where they were.`);
  }

  /** Declines the offer: the autosaves are dropped and the freshly booted VMs go on. */
  async startFresh(): Promise<void> {
    const offered = this.offered;
    this.offered = [];
    this.snapshots.changed();
    for (const r of offered) await this.snapshots.store.delete(r.id).catch(() => {});
    await this.snapshots.refresh();
  }

  private async forget(vm: string): Promise<void> {
    const r = this.snapshots.records.find((x) => x.kind === "autosave" && x.vmName === vm);
    if (r) await this.snapshots.remove(r.id);
    this.offered = this.offered.filter((x) => x.vmName !== vm);
  }
}
