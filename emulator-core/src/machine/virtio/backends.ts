// Host-side backends of the virtio devices. Nothing here depends on Node: the browser worker uses the same
// interfaces (a Node file-backed disk lives in src/node/file-block-backend.ts).

/**
 * A disk. Offsets and lengths passed in are always inside [0, size); errors thrown become VIRTIO_BLK_S_IOERR.
 *
 * Synchronous backends (the default) finish each operation before returning; they are handed views of guest RAM.
 * Asynchronous ones set `async` and may return a promise from any operation (a rejection becomes IOERR); they are
 * handed private buffers instead, which they may keep or transfer (IndexedDB cannot store views of the shared
 * guest RAM), and the device copies to and from guest RAM itself. An operation may also finish at once by
 * returning nothing. (Promises from a backend without `async` are awaited too, but it was handed views of guest
 * RAM, which it could still fill after the driver reset the device.) The device never has more requests outstanding than its queue has entries, and calls flush()
 * only once the writes issued before the FLUSH request have settled.
 */
export interface BlockBackend {
  /** bytes; a multiple of 512 */
  readonly size: number;
  /** writes are refused (the device then offers VIRTIO_BLK_F_RO) */
  readonly readOnly?: boolean;
  /** operations may return promises (see above) */
  readonly async?: boolean;
  /** fill dst from the disk at offset */
  read(offset: number, dst: Uint8Array): void | PromiseLike<void>;
  /** store src to the disk at offset */
  write(offset: number, src: Uint8Array): void | PromiseLike<void>;
  /** make completed writes durable */
  flush(): void | PromiseLike<void>;
}

/** A disk over a read-only base image (layered-disk.ts over a system image fetched in chunks, say). A snapshot of
 *  such a disk holds the base's name and the blocks the disk has of its own, not the whole disk: a 2 GiB system
 *  disk's snapshot is as large as what its guest wrote. */
export interface BaseBackedDisk extends BlockBackend {
  /** the base image's DiskBase.id; undefined for a disk over zeros (saved whole, as any disk) */
  readonly baseId: string | undefined;
  /** blocks of BASE_BLOCK bytes the disk has of its own (above its base), ascending, and their contents */
  ownBlocks(): { blocks: number[]; data: Uint8Array };
  /** how many blocks it has of its own */
  readonly ownBlockCount: number;
}

/** The unit of BaseBackedDisk.ownBlocks (layered-disk.ts's DISK_BLOCK; the snapshot's page size). */
export const BASE_BLOCK = 4096;

/** The disk as one over a base, when it is one (else undefined). */
export function baseBacked(b: BlockBackend): BaseBackedDisk | undefined {
  const d = b as Partial<BaseBackedDisk>;
  return typeof d.baseId === "string" && typeof d.ownBlocks === "function" ? (b as BaseBackedDisk) : undefined;
}

/** A disk held in memory. Pass an image (used in place, not copied) or a size in bytes for an empty disk. */
export class MemoryBlockBackend implements BlockBackend {
  readonly data: Uint8Array;
  readonly readOnly: boolean;
  flushes = 0;

  constructor(image: Uint8Array | number, opts: { readOnly?: boolean } = {}) {
    this.data = typeof image === "number" ? new Uint8Array(image) : image;
    if (this.data.length % 512 !== 0) throw new Error(`disk image size ${this.data.length} is not a multiple of 512`);
    this.readOnly = opts.readOnly ?? false;
  }

  get size(): number { return this.data.length; }

  read(offset: number, dst: Uint8Array): void { dst.set(this.data.subarray(offset, offset + dst.length)); }

  write(offset: number, src: Uint8Array): void {
    if (this.readOnly) throw new Error("read-only disk");
    this.data.set(src, offset);
  }

  flush(): void { this.flushes++; }
}

/** Where transmitted Ethernet frames go. `frame` (no virtio header, no FCS) is a fresh copy the backend may keep. */
export interface NetBackend {
  send(frame: Uint8Array): void;
}

/** Randomness for virtio-rng. `dst` is a private (non-shared) buffer of at most 65536 bytes. */
export interface EntropySource {
  fill(dst: Uint8Array<ArrayBuffer>): void;
}

/** crypto.getRandomValues (Node 20 and browsers/workers). */
export const cryptoEntropy: EntropySource = {
  fill(dst: Uint8Array<ArrayBuffer>): void {
    for (let i = 0; i < dst.length; i += 65536) globalThis.crypto.getRandomValues(dst.subarray(i, Math.min(dst.length, i + 65536)));
  },
};
