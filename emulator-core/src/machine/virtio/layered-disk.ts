// An in-memory disk made of layers, so that a fork's disk is copy-on-write: forking freezes what was written since
// the last fork into a layer in shared memory, which the original and the copy both read from then on; each writes
// only into its own top layer above it. Nothing is copied but the blocks written since the last fork (packed once
// into the frozen layer), and the two disks together take the memory of one plus what each writes afterwards.
//
// A frozen layer is a SharedArrayBuffer (its block numbers and their contents), so handing a disk to another
// worker of the page shares it instead of copying it. Layers are never written again once frozen. A block no layer
// has reads as zeros, and zeros written over such a block take no memory (a restored snapshot writes its whole disk).

import type { BlockBackend } from "./backends.ts";

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

export class LayeredDisk implements BlockBackend {
  readonly size: number;
  readonly readOnly: boolean;
  flushes = 0;
  /** bottom first */
  private readonly layers: Layer[] = [];
  /** blocks written since the last fork */
  private top = new Map<number, Uint8Array>();

  constructor(size: number, opts: { readOnly?: boolean; from?: SharedDisk } = {}) {
    if (size % 512 !== 0 || size < 0) throw new Error(`disk size ${size} is not a multiple of 512`);
    this.size = size;
    this.readOnly = opts.readOnly ?? false;
    if (opts.from) {
      if (opts.from.size !== size) throw new Error(`the shared disk has ${opts.from.size} bytes, this one ${size}`);
      for (const frozen of opts.from.layers) this.layers.push(indexOf(frozen, size));
    }
  }

  /** Bytes this disk holds of its own (not shared with a fork). */
  get ownBytes(): number { return this.top.size * DISK_BLOCK; }
  /** Bytes in its frozen layers (shared with forks). */
  get sharedBytes(): number { return this.layers.reduce((n, l) => n + l.frozen.data.length, 0); }
  get depth(): number { return this.layers.length; }

  read(offset: number, dst: Uint8Array): void {
    for (let done = 0; done < dst.length;) {
      const pos = offset + done;
      const block = Math.floor(pos / DISK_BLOCK), within = pos - block * DISK_BLOCK;
      const n = Math.min(DISK_BLOCK - within, dst.length - done);
      const src = this.lookup(block);
      if (src) dst.set(src.subarray(within, within + n), done);
      else dst.fill(0, done, done + n);
      done += n;
    }
  }

  write(offset: number, src: Uint8Array): void {
    if (this.readOnly) throw new Error("read-only disk");
    for (let done = 0; done < src.length;) {
      const pos = offset + done;
      const block = Math.floor(pos / DISK_BLOCK), within = pos - block * DISK_BLOCK;
      const n = Math.min(DISK_BLOCK - within, src.length - done);
      const part = src.subarray(done, done + n);
      let own = this.top.get(block);
      if (!own) {
        const below = this.lookup(block);
        // zeros over a block no layer has change nothing
        if (!below && isZero(part)) { done += n; continue; }
        own = new Uint8Array(DISK_BLOCK);
        if (below && n < DISK_BLOCK) own.set(below); // the rest of the block is what lies below
        this.top.set(block, own);
      }
      own.set(part, within);
      done += n;
    }
  }

  flush(): void { this.flushes++; }

  /** Freezes the blocks written since the last fork into a shared layer (this disk goes on writing above it) and
   *  returns the disk as it is now, for a fork's copy. */
  fork(): SharedDisk {
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

  /** The newest contents of a block, or undefined when no layer has it (zeros). */
  private lookup(block: number): Uint8Array | undefined {
    const own = this.top.get(block);
    if (own) return own;
    for (let i = this.layers.length - 1; i >= 0; i--) {
      const at = this.layers[i].index.get(block);
      if (at !== undefined) return this.layers[i].frozen.data.subarray(at * DISK_BLOCK, (at + 1) * DISK_BLOCK);
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

function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}
