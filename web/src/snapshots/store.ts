// Where the page keeps snapshots: IndexedDB, one record of metadata and one of bytes per snapshot (the list is
// read without loading any snapshot). A save writes the new snapshot whole before it touches the one it replaces,
// so running out of storage loses nothing: the previous snapshot stays, and the error says what happened.

import { createStore, get, set, del, entries, type UseStore } from "idb-keyval";

export interface SnapshotRecord {
  id: string;
  /** what the user sees: their name for it, or the VM's name and the time */
  name: string;
  /** the VM it was taken of */
  vmName: string;
  /** ms since the epoch */
  createdAt: number;
  /** bytes of the snapshot file */
  size: number;
  /** "manual": the user took it; "autosave": kept for resume after reload (one per VM, replaced each time) */
  kind: "manual" | "autosave";
  /** the VM was paused when it was taken (a resume leaves it paused) */
  paused?: boolean;
}

/** The browser would not store the snapshot: its storage quota is used up. */
export class StorageFullError extends Error {}

function isQuotaError(e: unknown): boolean {
  return e instanceof DOMException && (e.name === "QuotaExceededError" || e.name === "NS_ERROR_DOM_QUOTA_REACHED");
}

const mb = (n: number) => `${(n / 1048576).toFixed(1)} MB`;

export class SnapshotStore {
  private readonly meta: UseStore;
  private readonly data: UseStore;

  constructor(dbName = "tabvisor-snapshots") {
    // idb-keyval keeps one object store per database: two databases, so listing never reads snapshot bytes
    this.meta = createStore(`${dbName}-meta`, "records");
    this.data = createStore(`${dbName}-data`, "bytes");
  }

  /** All snapshots, newest first. */
  async list(): Promise<SnapshotRecord[]> {
    const all = await entries<string, SnapshotRecord>(this.meta);
    return all.map(([, r]) => r).sort((a, b) => b.createdAt - a.createdAt);
  }

  /** Stores a snapshot file. With `replaces`, that snapshot is deleted once this one is safely stored. Throws
   *  StorageFullError (having stored nothing) when the quota is used up. */
  async save(info: Omit<SnapshotRecord, "id" | "size">, bytes: Uint8Array, replaces?: string): Promise<SnapshotRecord> {
    const record: SnapshotRecord = { ...info, id: `${info.createdAt.toString(36)}-${Math.random().toString(36).slice(2, 8)}`, size: bytes.length };
    try {
      await set(record.id, bytes, this.data);
      await set(record.id, record, this.meta);
    } catch (e) {
      await del(record.id, this.data).catch(() => {});
      if (isQuotaError(e)) {
        throw new StorageFullError(`the browser's storage is full: the snapshot of ${info.vmName} (${mb(bytes.length)}) was not saved` +
          (replaces ? ", the previous one is kept" : "") + ". Delete old snapshots to make room.");
      }
      throw e;
    }
    if (replaces) await this.delete(replaces);
    return record;
  }

  /** The snapshot file, or undefined when it is gone. */
  async load(id: string): Promise<Uint8Array | undefined> {
    return get<Uint8Array>(id, this.data);
  }

  async delete(id: string): Promise<void> {
    await del(id, this.meta);
    await del(id, this.data);
  }
}
