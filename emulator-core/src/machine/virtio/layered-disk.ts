// An in-memory disk made of layers, so that a fork's disk is copy-on-write: forking freezes what was written since
// the last fork into a layer in shared memory, which the original and the copy both read from then on; each writes
// only into its own top layer above it. Nothing is copied but the blocks written since the last fork (packed once
// into the frozen layer), and the two disks together take the memory of one plus what each writes afterwards.
//
// A frozen layer is a SharedArrayBuffer (its block numbers and their contents), so handing a disk to another
// worker of the page shares it instead of copying it. Layers are never written again once frozen. A block no layer
// has reads as zeros, and zeros written over such a block take no memory (a restored snapshot writes its whole disk).

// A disk may also be persistent: below the blocks written since the last fork lies an OverlayStore (a file of the
// browser's, web/vm/disk-store.ts), and under everything a read-only DiskBase (the image a VM starts from; none:
// zeros). The in-memory top layer is then a write-back cache of the store: written out when it grows past
// WRITEBACK_BYTES and at every FLUSH, after which the store is made durable, so a guest that flushed has its data
// kept. Such a disk has no frozen layers of its own for long: a fork hands its whole overlay over (packed once),
// and a disk made from a fork writes what it was handed into its own store (absorbLayers) before it runs.
//
import type { BaseBackedDisk } from "./backends.ts";

/** Bytes per block: the unit layers keep. */
export const DISK_BLOCK = 4096;
/** A read looks through every layer: a disk forked this many times is merged into one layer at its next fork. */
export const MAX_LAYERS = 8;

/** Blocks written before a fork, shared read-only by the disks forked from then on. */
export interface FrozenLayer {
  /** block numbers, ascending (on shared memory) */
  blocks: Uint32Array;
  /** their contents, one block after another (on shared memory) */
  data: Uint8Array;
}

/** Bytes of written blocks a persistent disk keeps in memory before writing them out to its store. */
export const WRITEBACK_BYTES = 4 * 1024 * 1024;

/** The read-only image under a disk's own blocks (e.g. a system image fetched in chunks). A base whose reads
 *  complete later (`async`: fetched on first use) makes the disk asynchronous (BlockBackend.async): a read of a
 *  block only the base has, and a partial write onto one (the rest of the block comes from the base), settle once
 *  the base has answered. */
export interface DiskBase {
  readonly size: number;
  /** names the image: a store written over one base is not used over another */
  readonly id: string;
  readonly async?: boolean;
  read(offset: number, dst: Uint8Array): void | PromiseLike<void>;
}

/**
 * Where a persistent disk keeps the blocks it wrote (its copy-on-write overlay over the base). Blocks are
 * DISK_BLOCK bytes, numbered from 0; block numbers handed in are always below the disk's block count.
 */
export interface OverlayStore {
  /** blocks it holds */
  readonly count: number;
  /** the most blocks it may hold (its quota; Infinity: what the browser gives) */
  readonly capacity: number;
  /** bytes of storage it takes */
  readonly storedBytes: number;
  has(block: number): boolean;
  read(block: number, dst: Uint8Array): void;
  /** throws DiskFullError when there is no room for a new block (nothing is then changed) */
  write(block: number, src: Uint8Array): void;
  /** many blocks at once (fewer, larger writes); all or, when it throws, none of the new ones are taken */
  writeBlocks?(blocks: [number, Uint8Array][]): void;
  /** every block it holds */
  blockNumbers(): Iterable<number>;
  /** makes what was written durable */
  sync(): void;
}

/** The disk's store has no room for more blocks (its quota, or the browser's). */
export class DiskFullError extends Error {}

/** A disk as a fork hands it over: its size and its frozen layers, bottom first. */
export interface SharedDisk {
  size: number;
  layers: FrozenLayer[];
}

interface Layer {
  frozen: FrozenLayer;
  /** block number → its index in the layer */
  index: Map<number, number>;
}

function shared(bytes: number): ArrayBuffer {
  // SharedArrayBuffer where there is one (a cross-origin isolated page, Node); a plain one otherwise (then handing
  // the disk to another worker copies it: still correct)
  return typeof SharedArrayBuffer !== "undefined" ? (new SharedArrayBuffer(bytes) as unknown as ArrayBuffer) : new ArrayBuffer(bytes);
}

export interface LayeredDiskOptions {
  readOnly?: boolean;
  /** start on a fork's frozen layers */
  from?: SharedDisk;
  /** the read-only image under everything (default: zeros) */
  base?: DiskBase;
  /** persistent: written blocks end up here (see the top of this file) */
  store?: OverlayStore;
  /** told when the store runs out of room (the guest gets an I/O error) */
  onFull?: (why: string) => void;
}

export class LayeredDisk implements BaseBackedDisk {
  readonly size: number;
  readonly readOnly: boolean;
  flushes = 0;
  /** bottom first */
  private layers: Layer[] = [];
  /** blocks written since the last fork (with a store: not yet written out to it) */
  private top = new Map<number, Uint8Array>();
  private base: DiskBase | undefined;
  private store: OverlayStore | undefined;
  /** blocks of `top` the store does not hold yet (each needs room in it) */
  private pendingNew = 0;
  private onFull: ((why: string) => void) | undefined;
  private readonly scratch = new Uint8Array(DISK_BLOCK);

  constructor(size: number, opts: LayeredDiskOptions = {}) {
    if (size % 512 !== 0 || size < 0) throw new Error(`disk size ${size} is not a multiple of 512`);
    this.size = size;
    this.readOnly = opts.readOnly ?? false;
    if (opts.from) {
      if (opts.from.size !== size) throw new Error(`the shared disk has ${opts.from.size} bytes, this one ${size}`);
      for (const frozen of opts.from.layers) this.layers.push(indexOf(frozen, size));
    }
    if (opts.base && opts.base.size !== size) throw new Error(`the base image has ${opts.base.size} bytes, the disk ${size}`);
    this.base = opts.base;
    this.store = opts.store;
    this.onFull = opts.onFull;
  }

  /** Memory this disk holds of its own (not shared with a fork; with a store: not written out yet). */
  get ownBytes(): number { return this.top.size * DISK_BLOCK; }
  /** Bytes of the browser's storage its store takes (0 without one). */
  get storedBytes(): number { return this.store?.storedBytes ?? 0; }
  get persistent(): boolean { return this.store !== undefined; }
  /** Bytes in its frozen layers (shared with forks). */
  get sharedBytes(): number { return this.layers.reduce((n, l) => n + l.frozen.data.length, 0); }
  get depth(): number { return this.layers.length; }

  /** The base image's name (DiskBase.id); undefined over zeros. */
  get baseId(): string | undefined { return this.base?.id; }

  /** Every block the disk has of its own (written since it was made: its store, frozen layers, cached blocks). */
  private ownNumbers(): Set<number> {
    const all = new Set<number>(this.top.keys());
    if (this.store) for (const b of this.store.blockNumbers()) all.add(b);
    for (const l of this.layers) for (const b of l.frozen.blocks) all.add(b);
    return all;
  }

  get ownBlockCount(): number { return this.ownNumbers().size; }

  /** The blocks the disk has of its own, ascending, with their newest contents (what a snapshot of a disk over a
   *  base keeps; machine-state.ts). */
  ownBlocks(): { blocks: number[]; data: Uint8Array } {
    const blocks = [...this.ownNumbers()].sort((a, b) => a - b);
    const data = new Uint8Array(blocks.length * DISK_BLOCK);
    blocks.forEach((b, i) => data.set(this.lookup(b)!, i * DISK_BLOCK));
    return { blocks, data };
  }

  /** The device hands an asynchronous disk private buffers (backends.ts): with a base fetched on demand. */
  get async(): boolean { return this.base?.async === true; }

  read(offset: number, dst: Uint8Array): void | Promise<void> {
    let waits: Promise<void>[] | undefined;
    for (let done = 0; done < dst.length;) {
      const pos = offset + done;
      const block = Math.floor(pos / DISK_BLOCK), within = pos - block * DISK_BLOCK;
      const n = Math.min(DISK_BLOCK - within, dst.length - done);
      const src = this.lookup(block);
      if (src) dst.set(src.subarray(within, within + n), done);
      else if (this.async) {
        const at = done;
        (waits ??= []).push(this.baseBlock(block).then((b) => dst.set(b.subarray(within, within + n), at)));
      } else dst.fill(0, done, done + n);
      done += n;
    }
    return waits && Promise.all(waits).then(() => {});
  }

  /** A block of the base as it answers (the end of a disk that is not whole blocks reads as zeros). */
  private async baseBlock(block: number): Promise<Uint8Array> {
    const buf = new Uint8Array(DISK_BLOCK);
    const from = block * DISK_BLOCK;
    await this.base!.read(from, buf.subarray(0, Math.min(DISK_BLOCK, this.base!.size - from)));
    return buf;
  }

  /** Blocks of the write at offset..offset+length that would take new room in the store. */
  private newBlocks(offset: number, src: Uint8Array): number {
    let added = 0;
    for (let done = 0; done < src.length;) {
      const pos = offset + done;
      const block = Math.floor(pos / DISK_BLOCK), within = pos - block * DISK_BLOCK;
      const n = Math.min(DISK_BLOCK - within, src.length - done);
      if (!this.top.has(block) && !this.store!.has(block)) {
        const below = this.lookup(block);
        if (below || this.base || !isZero(src.subarray(done, done + n))) added++;
      }
      done += n;
    }
    return added;
  }

  write(offset: number, src: Uint8Array): void | Promise<void> {
    if (this.readOnly) throw new Error("read-only disk");
    const store = this.store;
    if (store) {
      // refused whole, before anything changes, when the store could not take it: the guest gets an I/O error
      // for this write and everything written before stays as it was
      const added = this.newBlocks(offset, src);
      if (added > 0 && store.count + this.pendingNew + added > store.capacity) {
        const why = `the disk's storage is full (${fmtMiB(store.capacity * DISK_BLOCK)} of overlay in use): the guest's writes to new blocks fail`;
        this.onFull?.(why);
        throw new DiskFullError(why);
      }
    }
    let waits: Promise<void>[] | undefined;
    for (let done = 0; done < src.length;) {
      const pos = offset + done;
      const block = Math.floor(pos / DISK_BLOCK), within = pos - block * DISK_BLOCK;
      const n = Math.min(DISK_BLOCK - within, src.length - done);
      const part = src.subarray(done, done + n);
      let own = this.top.get(block);
      if (!own) {
        // a whole block needs nothing from below (not even reading it: only whether anything is there)
        const whole = n === DISK_BLOCK;
        const below = whole ? (this.hasBelow(block) ? part : undefined) : this.lookup(block);
        if (!below && !whole && this.async) {
          // part of a block only the base has: the rest of it comes from the base first. Another write may have
          // made the block meanwhile: then this part goes into that one.
          const copy = part.slice();
          (waits ??= []).push(this.baseBlock(block).then((b) => { this.own(block, () => b).set(copy, within); }));
          done += n;
          continue;
        }
        // zeros over a block nothing has (no base either) change nothing
        if (!below && !this.base && isZero(part)) { done += n; continue; }
        own = this.own(block, () => {
          const fresh = new Uint8Array(DISK_BLOCK);
          if (below && !whole) fresh.set(below); // the rest of the block is what lies below
          return fresh;
        });
      }
      own.set(part, within);
      done += n;
    }
    if (waits) return Promise.all(waits).then(() => this.writeBackIfLarge());
    this.writeBackIfLarge();
  }

  /** The block's own copy in the top layer, made from `contents` when it has none. */
  private own(block: number, contents: () => Uint8Array): Uint8Array {
    let own = this.top.get(block);
    if (!own) {
      own = contents();
      this.top.set(block, own);
      if (this.store && !this.store.has(block)) this.pendingNew++;
    }
    return own;
  }

  private writeBackIfLarge(): void {
    if (this.store && this.top.size * DISK_BLOCK >= WRITEBACK_BYTES) {
      // the write itself is done (in memory); a store that cannot take it now is tried again at the next flush,
      // which then fails if it still cannot
      try { this.writeBack(); } catch { /* kept in memory */ }
    }
  }

  /** Makes completed writes durable: with a store, writes the cached blocks out and syncs it. */
  flush(): void {
    this.flushes++;
    if (!this.store) return;
    this.writeBack();
    this.store.sync();
  }

  /** Writes the blocks cached in memory out to the store (each one leaves the cache once it is stored). */
  writeBack(): void {
    const store = this.store;
    if (!store || this.top.size === 0) return;
    if (store.writeBlocks && this.top.size > 1) {
      try {
        store.writeBlocks([...this.top]);
        this.top = new Map();
        this.pendingNew = 0;
        return;
      } catch {
        // block by block below: as many as fit are stored, and the error is the one the last one gets
      }
    }
    for (const [block, data] of this.top) {
      const fresh = !store.has(block);
      try {
        store.write(block, data);
      } catch (e) {
        if (e instanceof DiskFullError) this.onFull?.(e.message);
        throw e;
      }
      this.top.delete(block);
      if (fresh) this.pendingNew--;
    }
  }

  /** A disk made from a fork's layers over a store: writes what the layers hold into the store, syncs it and lets
   *  the layers go (the disk then needs nothing but its store). */
  absorbLayers(): void {
    const store = this.store;
    if (!store || this.layers.length === 0) return;
    const all = new Set<number>();
    for (const l of this.layers) for (const b of l.frozen.blocks) all.add(b);
    for (const b of all) if (!this.top.has(b) && !store.has(b)) store.write(b, this.lookup(b)!);
    this.layers = [];
    this.writeBack();
    store.sync();
  }

  /** Takes over `other`'s contents (its store, layers and cached blocks; `other` must not be used again): how a
   *  reset or an imported image replaces the disk a machine holds. */
  adopt(other: LayeredDisk): void {
    if (other.size !== this.size) throw new Error(`the new disk has ${other.size} bytes, this one ${this.size}`);
    this.layers = other.layers;
    this.top = other.top;
    this.base = other.base;
    this.store = other.store;
    this.pendingNew = other.pendingNew;
    other.layers = [];
    other.top = new Map();
    other.store = undefined;
  }

  /** Lets go of the store (it is closed by its owner): from now on the disk refuses every operation. */
  detach(): void {
    this.store = undefined;
    this.layers = [];
    this.top = new Map();
    this.detached = true;
  }
  private detached = false;

  /** Freezes the blocks written since the last fork into a shared layer (this disk goes on writing above it) and
   *  returns the disk as it is now, for a fork's copy. */
  fork(): SharedDisk {
    if (this.store) {
      // the copy gets the whole overlay, packed once (it writes it into a store of its own); this disk goes on
      // with its store as it is
      this.writeBack();
      const numbers = new Set<number>(this.store.blockNumbers());
      for (const l of this.layers) for (const b of l.frozen.blocks) numbers.add(b);
      const packed = this.pack([...numbers], (b) => this.lookup(b)!.slice());
      return { size: this.size, layers: [packed.frozen] };
    }
    if (this.layers.length >= MAX_LAYERS) {
      // every block that any layer has, newest first, into one layer (the old ones live on in earlier forks)
      const all = new Set<number>(this.top.keys());
      for (const l of this.layers) for (const b of l.frozen.blocks) all.add(b);
      const merged = this.pack([...all], (b) => this.lookup(b)!);
      this.layers.length = 0;
      this.layers.push(merged);
      this.top = new Map();
    } else if (this.top.size > 0) {
      this.layers.push(this.pack([...this.top.keys()], (b) => this.top.get(b)!));
      this.top = new Map();
    }
    return { size: this.size, layers: this.layers.map((l) => l.frozen) };
  }

  private pack(numbers: number[], contents: (block: number) => Uint8Array): Layer {
    numbers.sort((a, b) => a - b);
    const blocks = new Uint32Array(shared(numbers.length * 4));
    const data = new Uint8Array(shared(numbers.length * DISK_BLOCK));
    numbers.forEach((b, i) => { blocks[i] = b; data.set(contents(b), i * DISK_BLOCK); });
    return indexOf({ blocks, data }, this.size);
  }

  /** Something below the top layer has the block (the store, a frozen layer, a base). */
  private hasBelow(block: number): boolean {
    if (this.base || this.store?.has(block)) return true;
    for (const l of this.layers) if (l.index.has(block)) return true;
    return false;
  }

  /** The newest contents of a block, or undefined when nothing has it (zeros; or, over an asynchronous base, what
   *  the base has: see baseBlock). What comes from the store or the base is in a scratch buffer, good until the
   *  next lookup. */
  private lookup(block: number): Uint8Array | undefined {
    if (this.detached) throw new Error("the disk was replaced");
    const own = this.top.get(block);
    if (own) return own;
    if (this.store?.has(block)) {
      this.store.read(block, this.scratch);
      return this.scratch;
    }
    for (let i = this.layers.length - 1; i >= 0; i--) {
      const at = this.layers[i].index.get(block);
      if (at !== undefined) return this.layers[i].frozen.data.subarray(at * DISK_BLOCK, (at + 1) * DISK_BLOCK);
    }
    if (this.base && !this.base.async) {
      // the last block of a disk whose size is not a whole number of blocks is read short
      const from = block * DISK_BLOCK;
      const n = Math.min(DISK_BLOCK, this.base.size - from);
      if (n < DISK_BLOCK) this.scratch.fill(0);
      this.base.read(from, this.scratch.subarray(0, n));
      return this.scratch;
    }
    return undefined;
  }
}

/** Checks a layer handed in (from another worker: it is trusted no more than a snapshot) and indexes it. */
function indexOf(frozen: FrozenLayer, size: number): Layer {
  const { blocks, data } = frozen;
  if (!(blocks instanceof Uint32Array) || !(data instanceof Uint8Array) || data.length !== blocks.length * DISK_BLOCK) {
    throw new Error("a shared disk layer is malformed");
  }
  const index = new Map<number, number>();
  const limit = Math.ceil(size / DISK_BLOCK);
  for (let i = 0; i < blocks.length; i++) {
    if (blocks[i] >= limit || (i > 0 && blocks[i] <= blocks[i - 1])) throw new Error(`a shared disk layer has block ${blocks[i]} out of order or past the disk's end`);
    index.set(blocks[i], i);
  }
  return { frozen, index };
}

function fmtMiB(n: number): string { return `${(n / 1048576).toFixed(1)} MiB`; }

function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}
