// A disk whose base image is published as fixed-size compressed chunks (public/images/debian/, built by
// guest/debian/publish.ts) and fetched on demand: a chunk is fetched the first time the guest reads (or partly
// writes) a block in it, checked against the manifest's sha256 and length, decompressed and kept. Writes go to a
// copy-on-write overlay of 4 KiB blocks held in memory; the base is never written. Chunks of zeros are not
// published at all (the manifest has null for them) and read as zeros without a fetch.
//
// Nothing here depends on Node: the chunk source is an interface (a directory in Node, fetch() and the Cache
// Storage in the page). The manifest and the chunks are trusted no more than a snapshot: every size, count and
// hash is checked before use, and every offset and length of a request is checked against the disk even though
// the virtio device checks them already (the guest is untrusted).

import { gunzip } from "../../gunzip.ts";
import type { BlockBackend } from "./backends.ts";
import type { DiskBase } from "./layered-disk.ts";

export const CHUNKED_DISK_FORMAT = "tabvisor-chunked-disk/1";
/** the overlay's unit */
export const OVERLAY_BLOCK = 4096;
/** a chunk larger than this is refused (a manifest that asks for one is damaged or hostile) */
const MAX_CHUNK = 16 << 20;

/** The image's description (manifest.json beside the chunks). */
export interface ChunkedImageManifest {
  format: typeof CHUNKED_DISK_FORMAT;
  /** bytes; a multiple of 512 */
  size: number;
  /** bytes per chunk (the last may be shorter); a multiple of OVERLAY_BLOCK */
  chunkSize: number;
  compression: "gzip";
  /** per chunk: [compressed bytes, sha256 of the compressed bytes in hex], or null for a chunk of zeros */
  chunks: ([number, string] | null)[];
  [extra: string]: unknown;
}

/** Where the compressed chunks come from. `name` is the chunk's file name (its sha256 + ".gz": chunks are
 *  content-addressed, so a rebuilt image shares the unchanged ones with the old in a cache). */
export interface ChunkSource {
  fetch(name: string, index: number): Promise<Uint8Array>;
}

export class ChunkedDiskError extends Error {}

/** Checks a manifest read from a file or the network; returns it typed, or throws ChunkedDiskError saying what is wrong. */
export function checkManifest(m: unknown): ChunkedImageManifest {
  const bad = (why: string): never => { throw new ChunkedDiskError(`chunked disk manifest: ${why}`); };
  if (typeof m !== "object" || m === null) bad("not an object");
  const o = m as Record<string, unknown>;
  if (o.format !== CHUNKED_DISK_FORMAT) bad(`format is ${JSON.stringify(o.format)}, expected ${CHUNKED_DISK_FORMAT}`);
  const size = o.size, chunkSize = o.chunkSize;
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size <= 0 || size % 512 !== 0) bad("size is not a positive multiple of 512");
  if (typeof chunkSize !== "number" || !Number.isSafeInteger(chunkSize) || chunkSize <= 0 || chunkSize % OVERLAY_BLOCK !== 0 || chunkSize > MAX_CHUNK) {
    bad(`chunkSize must be a multiple of ${OVERLAY_BLOCK} up to ${MAX_CHUNK}`);
  }
  if (o.compression !== "gzip") bad(`compression ${JSON.stringify(o.compression)} is not supported (gzip)`);
  const chunks = o.chunks;
  if (!Array.isArray(chunks)) bad("chunks is not a list");
  const count = Math.ceil((size as number) / (chunkSize as number));
  if ((chunks as unknown[]).length !== count) bad(`${(chunks as unknown[]).length} chunks listed, the size needs ${count}`);
  (chunks as unknown[]).forEach((c, i) => {
    if (c === null) return;
    if (!Array.isArray(c) || c.length !== 2 || typeof c[0] !== "number" || !Number.isSafeInteger(c[0]) || c[0] <= 0 || c[0] > MAX_CHUNK + 65536 ||
        typeof c[1] !== "string" || !/^[0-9a-f]{64}$/.test(c[1])) {
      bad(`chunk ${i} is not [compressed size, sha256 hex] or null`);
    }
  });
  return m as ChunkedImageManifest;
}

/** The file name of a chunk in the published directory. */
export const chunkFileName = (sha256: string): string => `${sha256}.gz`;

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  let s = "";
  for (const b of d) s += b.toString(16).padStart(2, "0");
  return s;
}

export interface ChunkedDiskStats {
  /** chunks fetched from the source (each at most once while it is kept) */
  chunksFetched: number;
  /** compressed bytes fetched */
  bytesFetched: number;
  /** bytes the guest wrote into the overlay (its own blocks) */
  overlayBytes: number;
}

/** The name of a published image (a DiskBase.id): made from its size, chunk size and every chunk's sha256, so a
 *  rebuilt image that differs in any chunk has another name, and an overlay or a snapshot written over one image is
 *  never used over another. */
export async function chunkedImageId(manifest: ChunkedImageManifest): Promise<string> {
  const text = `${manifest.size}/${manifest.chunkSize}/${manifest.chunks.map((c) => c?.[1] ?? "0").join(",")}`;
  return `chunked-${(await sha256Hex(new TextEncoder().encode(text))).slice(0, 32)}`;
}

/** A published image as a read-only, asynchronous DiskBase (layered-disk.ts): a chunk is fetched the first time a
 *  read touches it, checked against the manifest and decompressed, and kept. */
export class ChunkedImage implements DiskBase {
  readonly async = true;
  readonly size: number;
  /** chunks fetched from the source (each at most once while it is kept), and their compressed bytes */
  chunksFetched = 0;
  bytesFetched = 0;
  /** decompressed chunks, kept once fetched */
  private readonly chunks = new Map<number, Uint8Array>();
  /** fetches under way: a second reader of the same chunk waits for the same one */
  private readonly pending = new Map<number, Promise<Uint8Array>>();

  /** manifest: checked (checkManifest); id: chunkedImageId(manifest) */
  constructor(readonly manifest: ChunkedImageManifest, readonly id: string, private readonly source: ChunkSource) {
    this.size = manifest.size;
  }

  /** Opens a manifest as read from a file or the network (checked here) with its name. */
  static async open(manifest: unknown, source: ChunkSource): Promise<ChunkedImage> {
    const m = checkManifest(manifest);
    return new ChunkedImage(m, await chunkedImageId(m), source);
  }

  /** chunks held decompressed */
  get chunksHeld(): number { return this.chunks.size; }

  /** bytes of a chunk once decompressed (the last one may be short) */
  private chunkLength(index: number): number {
    return Math.min(this.manifest.chunkSize, this.size - index * this.manifest.chunkSize);
  }

  /** Chunk `index` (null: zeros), fetched and checked the first time. */
  chunk(index: number): Promise<Uint8Array | null> | Uint8Array | null {
    const entry = this.manifest.chunks[index];
    if (entry === null) return null;
    const have = this.chunks.get(index);
    if (have) return have;
    let p = this.pending.get(index);
    if (!p) {
      p = this.load(index, entry[0], entry[1]);
      this.pending.set(index, p);
      // a failed fetch is not kept: the next read tries again
      p.then((c) => { this.chunks.set(index, c); }, () => {}).finally(() => this.pending.delete(index));
    }
    return p;
  }

  private async load(index: number, zsize: number, sha: string): Promise<Uint8Array> {
    const where = `chunk ${index} of the disk image (${chunkFileName(sha)})`;
    let z: Uint8Array;
    try {
      z = await this.source.fetch(chunkFileName(sha), index);
    } catch (e) {
      throw new ChunkedDiskError(`${where} could not be fetched: ${(e as Error).message}`);
    }
    this.chunksFetched++;
    this.bytesFetched += z.length;
    if (z.length !== zsize) throw new ChunkedDiskError(`${where} has ${z.length} bytes, the manifest says ${zsize}: the image is damaged or from another build`);
    const got = await sha256Hex(z);
    if (got !== sha) throw new ChunkedDiskError(`${where} has sha256 ${got}, the manifest says ${sha}: the image is damaged or from another build`);
    const want = this.chunkLength(index);
    let data: Uint8Array;
    try {
      data = await gunzip(z, want);
    } catch (e) {
      throw new ChunkedDiskError(`${where} does not decompress: ${(e as Error).message}`);
    }
    if (data.length !== want) throw new ChunkedDiskError(`${where} decompresses to ${data.length} bytes, expected ${want}`);
    return data;
  }

  async read(offset: number, dst: Uint8Array): Promise<void> {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + dst.length > this.size) {
      throw new ChunkedDiskError(`request of ${dst.length} bytes at ${offset} is outside the image (${this.size} bytes)`);
    }
    const cs = this.manifest.chunkSize;
    for (let done = 0; done < dst.length;) {
      const pos = offset + done;
      const index = Math.floor(pos / cs), within = pos - index * cs;
      const n = Math.min(cs - within, dst.length - done);
      const c = await this.chunk(index);
      if (c) dst.set(c.subarray(within, within + n), done);
      else dst.fill(0, done, done + n);
      done += n;
    }
  }
}

/** A chunked image with a copy-on-write overlay of its own in memory (the CLI's and the Node tests' Debian disk). */
export class ChunkedDisk implements BlockBackend {
  readonly async = true;
  readonly size: number;
  readonly readOnly: boolean;
  readonly manifest: ChunkedImageManifest;
  flushes = 0;
  private readonly image: ChunkedImage;
  private overlayBytes = 0;
  /** the copy-on-write overlay: block number → its contents */
  private readonly overlay = new Map<number, Uint8Array>();

  constructor(manifest: unknown, source: ChunkSource, opts: { readOnly?: boolean } = {}) {
    this.manifest = checkManifest(manifest);
    this.size = this.manifest.size;
    // (the overlay lives and dies with this disk: the image needs no name)
    this.image = new ChunkedImage(this.manifest, "", source);
    this.readOnly = opts.readOnly ?? false;
  }

  get stats(): ChunkedDiskStats {
    return { chunksFetched: this.image.chunksFetched, bytesFetched: this.image.bytesFetched, overlayBytes: this.overlayBytes };
  }

  private check(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0 || offset + length > this.size) {
      throw new ChunkedDiskError(`request of ${length} bytes at ${offset} is outside the disk (${this.size} bytes)`);
    }
  }

  /** The base image's bytes of one overlay block (a view), or null for zeros. */
  private async baseBlock(block: number): Promise<Uint8Array | null> {
    const pos = block * OVERLAY_BLOCK;
    const index = Math.floor(pos / this.manifest.chunkSize);
    const c = await this.image.chunk(index);
    if (!c) return null;
    const within = pos - index * this.manifest.chunkSize;
    return c.subarray(within, within + OVERLAY_BLOCK);
  }

  async read(offset: number, dst: Uint8Array): Promise<void> {
    this.check(offset, dst.length);
    for (let done = 0; done < dst.length;) {
      const pos = offset + done;
      const block = Math.floor(pos / OVERLAY_BLOCK), within = pos - block * OVERLAY_BLOCK;
      const n = Math.min(OVERLAY_BLOCK - within, dst.length - done);
      const src = this.overlay.get(block) ?? await this.baseBlock(block);
      if (src) dst.set(src.subarray(within, within + n), done);
      else dst.fill(0, done, done + n);
      done += n;
    }
  }

  async write(offset: number, src: Uint8Array): Promise<void> {
    if (this.readOnly) throw new ChunkedDiskError("read-only disk");
    this.check(offset, src.length);
    for (let done = 0; done < src.length;) {
      const pos = offset + done;
      const block = Math.floor(pos / OVERLAY_BLOCK), within = pos - block * OVERLAY_BLOCK;
      const n = Math.min(OVERLAY_BLOCK - within, src.length - done);
      let own = this.overlay.get(block);
      if (!own) {
        own = new Uint8Array(OVERLAY_BLOCK);
        if (n < OVERLAY_BLOCK) {
          // the rest of the block is the base image's
          const below = await this.baseBlock(block);
          if (below) own.set(below);
        }
        // (another write may have made the block meanwhile: keep the first, write into it)
        const raced = this.overlay.get(block);
        if (raced) own = raced;
        else { this.overlay.set(block, own); this.overlayBytes += OVERLAY_BLOCK; }
      }
      own.set(src.subarray(done, done + n), within);
      done += n;
    }
  }

  flush(): void { this.flushes++; }

  /** chunks held decompressed */
  get chunksHeld(): number { return this.image.chunksHeld; }
}
