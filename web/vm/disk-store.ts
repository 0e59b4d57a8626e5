// Where a VM's persistent disk keeps its own blocks (its copy-on-write overlay over the base image): one file per
// generation of the disk in a folder of its own, in the browser's origin private file system (OPFS), written
// through synchronous access handles from the VM's worker. Node tests use the same code over files in memory.
//
// A generation file (OverlayFile) is:
//   header   HEADER bytes: magic, format version, "complete" flag, disk size, block size, the base image's id
//   map      4 bytes per slot, as many slots as the disk has blocks: slot i holds block (entry - 1); 0 = free
//   data     DISK_BLOCK bytes per slot, from dataOffset
// A block keeps its slot once it has one: rewriting it writes its slot in place. A new block's data is written
// before its map entry, so a tab killed between the two leaves a free slot (the block reads as it was before the
// write, which the guest had not flushed) and never a map entry pointing at data that was not written. A FLUSH
// from the guest writes the cached blocks out and then flushes the file (fsync): what the guest flushed survives
// the tab, the browser and the machine going away.
//
// Generations make replacing the whole disk atomic (a reset, an imported image, a restored snapshot, a fork's or a
// migration's disk): the new contents go into a new file marked incomplete, which is marked complete and flushed
// only once whole; opening the folder takes the newest complete generation and removes the rest. A disk is thus
// never half old and half new, whenever the tab dies.

import { DISK_BLOCK, DiskFullError, type OverlayStore } from "../../emulator-core/src/machine/virtio/layered-disk.ts";

/** What a FileSystemSyncAccessHandle offers (and a file in memory, for Node). */
export interface SyncFile {
  getSize(): number;
  read(buffer: Uint8Array, opts: { at: number }): number;
  write(buffer: Uint8Array, opts: { at: number }): number;
  truncate(size: number): void;
  flush(): void;
  close(): void;
}

/** One disk's folder of generation files. */
export interface StoreDir {
  names(): Promise<string[]>;
  /** opens (creating it if need be) a file for exclusive synchronous access */
  open(name: string): Promise<SyncFile>;
  remove(name: string): Promise<void>;
}

const MAGIC = 0x4c56_4f54; // "TOVL" little-endian
const VERSION = 1;
const HEADER = 4096;
const BASE_ID_MAX = 200;

export const GENERATION_RE = /^g(\d{6})\.ovl$/;
const genName = (g: number) => `g${String(g).padStart(6, "0")}.ovl`;

/** The overlay file of one generation (see the top of this file). */
export class OverlayFile implements OverlayStore {
  readonly capacity: number;
  private readonly blocks: number;
  private readonly dataOffset: number;
  /** block → slot */
  private readonly slots = new Map<number, number>();
  private readonly free: number[] = [];
  private nextSlot = 0;
  private readonly entry = new Uint8Array(4);
  private closed = false;

  private constructor(readonly file: SyncFile, readonly size: number, capacityBlocks: number) {
    this.blocks = Math.ceil(size / DISK_BLOCK);
    this.dataOffset = HEADER + Math.ceil((this.blocks * 4) / DISK_BLOCK) * DISK_BLOCK;
    this.capacity = Math.min(capacityBlocks, this.blocks);
  }

  /** A new, empty generation, marked incomplete until markComplete(). */
  static create(file: SyncFile, size: number, baseId: string, capacityBlocks = Infinity): OverlayFile {
    const o = new OverlayFile(file, size, capacityBlocks);
    file.truncate(0);
    file.write(header(size, baseId, false), { at: 0 });
    file.truncate(o.dataOffset);
    return o;
  }

  /** An existing generation, or why it cannot be used (incomplete, another disk's, damaged). */
  static open(file: SyncFile, size: number, baseId: string, capacityBlocks = Infinity): OverlayFile | string {
    const o = new OverlayFile(file, size, capacityBlocks);
    const h = new Uint8Array(HEADER);
    if (file.getSize() < o.dataOffset || file.read(h, { at: 0 }) !== HEADER) return "it is shorter than its header and map";
    const v = new DataView(h.buffer);
    if (v.getUint32(0, true) !== MAGIC || v.getUint32(4, true) !== VERSION) return "it is not a disk overlay of this version";
    if (v.getUint32(8, true) !== 1) return "it was not written to the end (a replacement that was cut short)";
    if (v.getFloat64(16, true) !== size) return `it is of a disk of ${v.getFloat64(16, true)} bytes, this one has ${size}`;
    if (v.getUint32(24, true) !== DISK_BLOCK) return "its block size differs";
    const idLen = Math.min(v.getUint32(28, true), BASE_ID_MAX);
    const id = new TextDecoder().decode(h.subarray(32, 32 + idLen));
    if (id !== baseId) return `it was written over the base image "${id}", this disk's is "${baseId}"`;
    // the map, checked entry by entry: a slot past the end of the file, a block past the disk's end or a block
    // mapped twice is left out (the file is the browser's, but storage can be damaged)
    const map = new Uint8Array(o.dataOffset - HEADER);
    file.read(map, { at: HEADER });
    const mv = new DataView(map.buffer);
    const slotsInFile = Math.floor((file.getSize() - o.dataOffset) / DISK_BLOCK);
    let last = -1;
    for (let slot = 0; slot < o.blocks; slot++) {
      const e = mv.getUint32(slot * 4, true);
      if (e === 0 || slot >= slotsInFile) continue;
      const block = e - 1;
      if (block >= o.blocks || o.slots.has(block)) continue;
      o.slots.set(block, slot);
      last = slot;
    }
    o.nextSlot = last + 1;
    for (let slot = 0; slot < o.nextSlot; slot++) if (mv.getUint32(slot * 4, true) === 0) o.free.push(slot);
    return o;
  }

  get count(): number { return this.slots.size; }
  get storedBytes(): number { return this.dataOffset + this.nextSlot * DISK_BLOCK; }

  has(block: number): boolean { return this.slots.has(block); }

  blockNumbers(): Iterable<number> { return this.slots.keys(); }

  read(block: number, dst: Uint8Array): void {
    const slot = this.slots.get(block);
    if (slot === undefined) { dst.fill(0); return; }
    const n = this.file.read(dst.subarray(0, DISK_BLOCK), { at: this.dataOffset + slot * DISK_BLOCK });
    if (n < DISK_BLOCK) dst.fill(0, n, DISK_BLOCK);
  }

  write(block: number, src: Uint8Array): void {
    if (this.closed) throw new Error("the disk's store is closed");
    if (!(block >= 0 && block < this.blocks && Number.isInteger(block))) throw new Error(`block ${block} is past the disk's end`);
    let slot = this.slots.get(block);
    const fresh = slot === undefined;
    if (fresh) {
      if (this.slots.size >= this.capacity) throw new DiskFullError(`the disk's storage is full (${(this.capacity * DISK_BLOCK / 1048576).toFixed(1)} MiB of overlay in use)`);
      slot = this.free.length > 0 ? this.free.pop()! : this.nextSlot;
    }
    try {
      writeAll(this.file, src.subarray(0, DISK_BLOCK), this.dataOffset + slot! * DISK_BLOCK);
      if (fresh) {
        new DataView(this.entry.buffer).setUint32(0, block + 1, true);
        writeAll(this.file, this.entry, HEADER + slot! * 4);
      }
    } catch (e) {
      if (fresh && slot! < this.nextSlot) this.free.push(slot!);
      throw isQuota(e) ? new DiskFullError("the browser's storage for this page is full (its quota is used up)") : e;
    }
    if (fresh) {
      this.slots.set(block, slot!);
      if (slot === this.nextSlot) this.nextSlot++;
    }
  }

  /** Many blocks in a few writes: the ones it holds in place, the new ones into a run of slots at the end of the
   *  file (their data in one write, then their map entries in one write: the map never names data not written). */
  writeBlocks(blocks: [number, Uint8Array][]): void {
    if (this.closed) throw new Error("the disk's store is closed");
    const fresh: [number, Uint8Array][] = [];
    for (const [block, data] of blocks) {
      if (!(block >= 0 && block < this.blocks && Number.isInteger(block))) throw new Error(`block ${block} is past the disk's end`);
      if (!this.slots.has(block)) fresh.push([block, data]);
    }
    if (this.slots.size + fresh.length > this.capacity) throw new DiskFullError(`the disk's storage is full (${(this.capacity * DISK_BLOCK / 1048576).toFixed(1)} MiB of overlay in use)`);
    // the ones it holds, in place: runs of neighbouring slots in one write each
    const held = blocks.filter(([block]) => this.slots.has(block)).map(([block, d]) => [this.slots.get(block)!, d] as const)
      .sort((a, b) => a[0] - b[0]);
    for (let i = 0; i < held.length;) {
      let j = i + 1;
      while (j < held.length && held[j][0] === held[j - 1][0] + 1 && j - i < 256) j++;
      const run = new Uint8Array((j - i) * DISK_BLOCK);
      for (let k = i; k < j; k++) run.set(held[k][1].subarray(0, DISK_BLOCK), (k - i) * DISK_BLOCK);
      writeAll(this.file, run, this.dataOffset + held[i][0] * DISK_BLOCK);
      i = j;
    }
    // free slots (left by a killed tab) are filled one by one; the rest go on at the end in one run
    while (fresh.length > 0 && this.free.length > 0) { const [block, data] = fresh.pop()!; this.write(block, data); }
    if (fresh.length === 0) return;
    const first = this.nextSlot;
    const data = new Uint8Array(fresh.length * DISK_BLOCK);
    const map = new Uint8Array(fresh.length * 4);
    const mv = new DataView(map.buffer);
    fresh.forEach(([block, d], i) => { data.set(d.subarray(0, DISK_BLOCK), i * DISK_BLOCK); mv.setUint32(i * 4, block + 1, true); });
    try {
      writeAll(this.file, data, this.dataOffset + first * DISK_BLOCK);
      writeAll(this.file, map, HEADER + first * 4);
    } catch (e) {
      throw isQuota(e) ? new DiskFullError("the browser's storage for this page is full (its quota is used up)") : e;
    }
    fresh.forEach(([block], i) => this.slots.set(block, first + i));
    this.nextSlot = first + fresh.length;
  }

  sync(): void { this.file.flush(); }

  /** Marks the generation whole (after its contents were written) and makes it durable. */
  markComplete(): void {
    this.file.flush();
    writeAll(this.file, new Uint8Array([1, 0, 0, 0]), 8);
    this.file.flush();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try { this.file.close(); } catch { /* closed already */ }
  }
}

function header(size: number, baseId: string, complete: boolean): Uint8Array {
  const h = new Uint8Array(HEADER);
  const v = new DataView(h.buffer);
  const id = new TextEncoder().encode(baseId).subarray(0, BASE_ID_MAX);
  v.setUint32(0, MAGIC, true);
  v.setUint32(4, VERSION, true);
  v.setUint32(8, complete ? 1 : 0, true);
  v.setFloat64(16, size, true);
  v.setUint32(24, DISK_BLOCK, true);
  v.setUint32(28, id.length, true);
  h.set(id, 32);
  return h;
}

function writeAll(file: SyncFile, src: Uint8Array, at: number): void {
  for (let done = 0; done < src.length;) {
    const n = file.write(src.subarray(done), { at: at + done });
    if (n <= 0) throw new Error("the disk's file took no bytes");
    done += n;
  }
}

function isQuota(e: unknown): boolean {
  return typeof e === "object" && e !== null && (e as { name?: string }).name === "QuotaExceededError";
}

/**
 * A disk's folder: its current generation, and the replacements being written. `open` finds (or makes) the
 * current one; `begin` starts a replacement, `commit` makes it current (the old one is removed), `discard`
 * drops it.
 */
export class DiskVolume {
  /** why the saved disk could not be used when it was opened (it then started empty), if it could not */
  problem: string | undefined;
  private gen = 0;

  private constructor(private readonly dir: StoreDir, readonly size: number, readonly baseId: string,
    readonly capacityBlocks: number, public current: OverlayFile) {}

  /** "keep": the newest complete generation in the folder (an empty one when there is none); "fresh": the folder
   *  is emptied and the disk starts empty. Anything else in the folder is removed. */
  static async open(dir: StoreDir, size: number, baseId: string, mode: "keep" | "fresh", capacityBlocks = Infinity): Promise<DiskVolume> {
    const gens = (await dir.names()).map((n) => GENERATION_RE.exec(n)).filter((m) => m !== null)
      .map((m) => Number(m[1])).sort((a, b) => b - a);
    let current: OverlayFile | undefined;
    let currentName = "";
    let problem: string | undefined;
    let top = gens[0] ?? 0;
    if (mode === "keep") {
      for (const g of gens) {
        const file = await dir.open(genName(g));
        const o = OverlayFile.open(file, size, baseId, capacityBlocks);
        if (typeof o !== "string") { current = o; currentName = genName(g); break; }
        file.close();
        // an incomplete newer one is a replacement that was cut short: the one before it is the disk
        if (!/cut short/.test(o)) problem ??= `the saved disk could not be used: ${o}`;
      }
    }
    if (!current) {
      top++;
      currentName = genName(top);
      current = OverlayFile.create(await dir.open(currentName), size, baseId, capacityBlocks);
      current.markComplete();
    }
    const v = new DiskVolume(dir, size, baseId, capacityBlocks, current);
    v.gen = top;
    v.currentName = currentName;
    v.problem = problem;
    for (const n of await dir.names()) if (n !== currentName) await dir.remove(n).catch(() => {});
    return v;
  }

  private currentName = "";
  private readonly pending = new Map<OverlayFile, string>();

  /** Bytes the current generation takes. */
  get storedBytes(): number { return this.current.storedBytes; }

  /** A new, empty generation to write a replacement of the whole disk into. */
  async begin(): Promise<OverlayFile> {
    const name = genName(++this.gen);
    const o = OverlayFile.create(await this.dir.open(name), this.size, this.baseId, this.capacityBlocks);
    this.pending.set(o, name);
    return o;
  }

  /** Makes a replacement from begin() the disk (durably), at once (it throws when it cannot: the old disk then
   *  stays), and removes the generation it replaces (the promise: that removal, which may fail harmlessly). */
  commit(o: OverlayFile): Promise<void> {
    const name = this.pending.get(o);
    if (name === undefined) throw new Error("not a replacement of this disk");
    o.markComplete();
    this.pending.delete(o);
    const old = this.current, oldName = this.currentName;
    this.current = o;
    this.currentName = name;
    old.close();
    return this.dir.remove(oldName).catch(() => { /* removed at the next open */ });
  }

  /** Drops a replacement that is not wanted (it failed, or the restore it was for did). */
  async discard(o: OverlayFile): Promise<void> {
    const name = this.pending.get(o);
    if (name === undefined) return;
    this.pending.delete(o);
    o.close();
    await this.dir.remove(name).catch(() => {});
  }

  /** Closes every file (the worker is done with the disk: another worker may open it now). */
  close(): void {
    this.current.close();
    for (const o of this.pending.keys()) o.close();
  }
}

/** A file in memory with a SyncFile's interface (Node tests; and what a crash keeps: every write that returned). */
export class MemoryFile implements SyncFile {
  bytes = new Uint8Array(0);
  length = 0;
  flushes = 0;
  open = true;

  getSize(): number { return this.length; }

  read(buffer: Uint8Array, { at }: { at: number }): number {
    this.check();
    const n = Math.max(0, Math.min(buffer.length, this.length - at));
    buffer.set(this.bytes.subarray(at, at + n));
    return n;
  }

  write(buffer: Uint8Array, { at }: { at: number }): number {
    this.check();
    this.reserve(at + buffer.length);
    this.bytes.set(buffer, at);
    this.length = Math.max(this.length, at + buffer.length);
    return buffer.length;
  }

  truncate(size: number): void {
    this.check();
    this.reserve(size);
    if (size < this.length) this.bytes.fill(0, size, this.length);
    this.length = size;
  }

  flush(): void { this.check(); this.flushes++; }
  close(): void { this.open = false; }

  private check(): void { if (!this.open) throw new Error("the file is closed"); }

  private reserve(n: number): void {
    if (n <= this.bytes.length) return;
    const grown = new Uint8Array(Math.max(n, this.bytes.length * 2));
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
  }
}

/** A folder in memory (Node tests). A file may be opened by one holder at a time, as with OPFS. */
export class MemoryDir implements StoreDir {
  readonly files = new Map<string, MemoryFile>();

  async names(): Promise<string[]> { return [...this.files.keys()]; }

  async open(name: string): Promise<SyncFile> {
    const existing = this.files.get(name);
    if (existing?.open) throw new Error(`${name} is open elsewhere`);
    // a reopened file keeps its bytes (what a killed tab left behind)
    const f = new MemoryFile();
    if (existing) { f.bytes = existing.bytes; f.length = existing.length; }
    this.files.set(name, f);
    return f;
  }

  async remove(name: string): Promise<void> {
    if (this.files.get(name)?.open) throw new Error(`${name} is open`);
    this.files.delete(name);
  }
}
