// Files in and out of VMs through their agents (the control channel): a file dropped on a VM's console, or picked
// with Files > Upload, goes to /root/uploads/NAME in the guest; Files > Download reads a guest path and hands it to
// the browser as a download. The bytes go to and from the VM's worker in one piece (transferred, not copied) and the
// worker feeds the guest in chunks, so the page does no work per chunk and does not freeze on a large file; progress
// comes back as events. Each transfer is listed (the VM's toolbar shows it) until it ends; how it ended is said once.

import type { Hypervisor, VmEntry } from "../hypervisor.ts";
import { fmtBytes as size } from "../meters.ts";

export const UPLOAD_DIR = "/root/uploads";
/** the largest file Download takes from a guest (it is held in the page's memory before it is saved) */
export const MAX_DOWNLOAD_BYTES = 1 << 30;

export interface Transfer {
  key: number;
  vm: number;
  /** "up": into the guest; "down": out of it */
  dir: "up" | "down";
  /** the guest path */
  path: string;
  done: number;
  total: number;
}

export type Say = (kind: "info" | "error", text: string) => void;
/** How a download reaches the user (the page: an <a download>; tests may keep the bytes). */
export type Save = (name: string, bytes: Uint8Array) => void;

export class Transfers {
  private readonly list = new Map<number, Transfer>();
  private keys = 0;
  private version = 0;
  private readonly listeners = new Set<() => void>();

  constructor(private readonly hv: Hypervisor, private readonly say: Say, private readonly save: Save = saveAsDownload) {}

  readonly subscribe = (fn: () => void): (() => void) => { this.listeners.add(fn); return () => this.listeners.delete(fn); };
  readonly getVersion = (): number => this.version;

  /** The transfers under way for a VM. */
  of(vm: number): Transfer[] { return [...this.list.values()].filter((t) => t.vm === vm); }

  /** Puts a file into the guest at /root/uploads/NAME; resolves with the guest path, or undefined when it failed
   *  (the reason was said). */
  async upload(e: VmEntry, file: { name: string; size: number; arrayBuffer(): Promise<ArrayBuffer> }): Promise<string | undefined> {
    const path = `${UPLOAD_DIR}/${guestName(file.name)}`;
    const vm = e.spec.name;
    if (!this.hv.live(e)) { this.say("error", `${vm} is not running: start it to upload ${file.name}.`); return undefined; }
    const t = this.begin(e.id, "up", path, file.size);
    try {
      const bytes = new Uint8Array(await file.arrayBuffer());
      await e.handle.agentPut(path, bytes, { onProgress: (done, total) => this.progress(t, done, total) });
      this.say("info", `${file.name} (${size(file.size)}) is in ${vm} at ${path}.`);
      return path;
    } catch (err) {
      this.say("error", `${file.name} could not be put into ${vm}: ${reason(err)}`);
      return undefined;
    } finally {
      this.end(t);
    }
  }

  /** Reads a file from the guest and saves it as a download; resolves with its bytes, or undefined. */
  async download(e: VmEntry, path: string): Promise<Uint8Array | undefined> {
    const vm = e.spec.name;
    const p = path.trim();
    if (!p.startsWith("/")) { this.say("error", `Give the file's full path in ${vm} (starting with /), not "${p}".`); return undefined; }
    if (!this.hv.live(e)) { this.say("error", `${vm} is not running: start it to download ${p}.`); return undefined; }
    const t = this.begin(e.id, "down", p, 0);
    try {
      const bytes = await e.handle.agentGet(p, { maxBytes: MAX_DOWNLOAD_BYTES, onProgress: (done, total) => this.progress(t, done, total) });
      this.save(p.split("/").filter(Boolean).pop() ?? "download", bytes);
      this.say("info", `${p} from ${vm} (${size(bytes.length)}) downloaded.`);
      return bytes;
    } catch (err) {
      this.say("error", `${p} could not be read from ${vm}: ${reason(err)}`);
      return undefined;
    } finally {
      this.end(t);
    }
  }

  private begin(vm: number, dir: Transfer["dir"], path: string, total: number): Transfer {
    const t: Transfer = { key: ++this.keys, vm, dir, path, done: 0, total };
    this.list.set(t.key, t);
    this.changed();
    return t;
  }

  private progress(t: Transfer, done: number, total: number): void {
    t.done = done;
    t.total = total;
    this.changed();
  }

  private end(t: Transfer): void {
    this.list.delete(t.key);
    this.changed();
  }

  private changed(): void {
    this.version++;
    for (const fn of this.listeners) fn();
  }
}

/** A file name as the guest gets it: its last part, without path separators or NULs; never empty, "." or "..". */
export function guestName(name: string): string {
  const base = name.split(/[\\/]/).pop() ?? "";
  const clean = base.replace(/\0/g, "").trim();
  return clean === "" || clean === "." || clean === ".." ? "upload" : clean;
}

function saveAsDownload(name: string, bytes: Uint8Array): void {
  const url = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>]));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.style.display = "none";
  document.body.append(a);
  a.click();
  a.remove();
  // the download has its own copy once it started; the page's goes a little later
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

const reason = (e: unknown) => (e instanceof Error ? e.message : String(e)).replace(/^guest: /, "");
