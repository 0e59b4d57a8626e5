// The browser's side of persistent disks (disk-store.ts): each VM's disks live in the origin private file system
// under tabvisor-disks/<vm name>/<disk index>/, opened with synchronous access handles by the VM's worker (only a
// dedicated worker may have them). The page uses the folder functions below (deleting a VM's disks, listing them).

import type { StoreDir, SyncFile } from "./disk-store.ts";

export const DISKS_FOLDER = "tabvisor-disks";

interface SyncHandleFile extends FileSystemFileHandle {
  createSyncAccessHandle(): Promise<SyncFile>;
}

/** The origin private file system is there (a secure context in a browser that has it). */
export function hasOpfs(): boolean {
  return typeof navigator !== "undefined" && typeof navigator.storage?.getDirectory === "function";
}

async function disksRoot(): Promise<FileSystemDirectoryHandle> {
  return (await navigator.storage.getDirectory()).getDirectoryHandle(DISKS_FOLDER, { create: true });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A disk's folder (made if missing). Opening a file another worker still holds (the page before a reload, whose
 *  worker is going away) is tried again for a few seconds before it fails. */
export async function opfsDiskDir(vm: string, index: number): Promise<StoreDir> {
  const vmDir = await (await disksRoot()).getDirectoryHandle(vm, { create: true });
  const dir = await vmDir.getDirectoryHandle(String(index), { create: true });
  return {
    async names() {
      const out: string[] = [];
      for await (const name of (dir as unknown as { keys(): AsyncIterable<string> }).keys()) out.push(name);
      return out;
    },
    async open(name) {
      const handle = await dir.getFileHandle(name, { create: true }) as SyncHandleFile;
      for (let tries = 0; ; tries++) {
        try {
          return await handle.createSyncAccessHandle();
        } catch (e) {
          if ((e as DOMException).name !== "NoModificationAllowedError" || tries >= 50) {
            throw new Error(tries > 0 ? `the disk is open in another tab or worker (${(e as Error).message})` : (e as Error).message);
          }
          await sleep(100);
        }
      }
    },
    async remove(name) { await dir.removeEntry(name); },
  };
}

/** Removes a VM's disks (its worker must be gone: a file it still holds cannot be removed, so this tries again
 *  for a few seconds while the worker winds down). */
export async function removeVmDisks(vm: string): Promise<void> {
  if (!hasOpfs()) return;
  const root = await disksRoot();
  for (let tries = 0; ; tries++) {
    try {
      await root.removeEntry(vm, { recursive: true });
      return;
    } catch (e) {
      const name = (e as DOMException).name;
      if (name === "NotFoundError") return;
      if (tries >= 30) throw e;
      await sleep(200);
    }
  }
}

/** The VMs that have disks kept in this browser. */
export async function vmsWithDisks(): Promise<string[]> {
  if (!hasOpfs()) return [];
  const out: string[] = [];
  for await (const name of ((await disksRoot()) as unknown as { keys(): AsyncIterable<string> }).keys()) out.push(name);
  return out;
}
