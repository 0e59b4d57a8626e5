// The page's source of a chunked disk image's chunks (emulator-core/src/machine/virtio/chunked-disk.ts): fetched
// over HTTP from where `npm run images:debian` published them (public/images/debian/chunks/), and kept in the
// browser's Cache Storage, so the next boot of any VM on the same image fetches nothing it fetched before. Chunks
// are named by the sha256 of their bytes: a cached chunk never goes stale, and a rebuilt image shares the chunks
// that did not change.
//
// A chunk goes into the cache only when its bytes match its name: a damaged download is not kept (the disk reports
// it, and the next read fetches it again). A cache that cannot take more (the storage quota) is not an error: the
// chunk is used and simply fetched again next time.

import type { ChunkSource } from "../../emulator-core/src/machine/virtio/chunked-disk.ts";

/** Where fetched chunks are kept between visits. */
export interface ChunkCache {
  match(name: string): Promise<Uint8Array | undefined>;
  put(name: string, bytes: Uint8Array): Promise<void>;
}

/** The cache name in Cache Storage (bump it if the stored form ever changes). */
export const CHUNK_CACHE = "tabvisor-chunks-v1";

/** Cache Storage (windows and workers): one entry per chunk, keyed by a URL made from its name. */
export class CacheStorageChunks implements ChunkCache {
  private cache: Promise<Cache> | undefined;
  constructor(private readonly name = CHUNK_CACHE) {}
  private open(): Promise<Cache> { return (this.cache ??= caches.open(this.name)); }
  private key(name: string): string { return `https://chunks.tabvisor.invalid/${name}`; }
  async match(name: string): Promise<Uint8Array | undefined> {
    const r = await (await this.open()).match(this.key(name));
    return r ? new Uint8Array(await r.arrayBuffer()) : undefined;
  }
  async put(name: string, bytes: Uint8Array): Promise<void> {
    await (await this.open()).put(this.key(name), new Response(bytes as Uint8Array<ArrayBuffer>));
  }
}

export class HttpChunkSource implements ChunkSource {
  /** chunks fetched over the network, and bytes; chunks found in the cache */
  fetched = 0;
  bytesFetched = 0;
  fromCache = 0;

  /** base: the published image's folder URL (ending in "/"), e.g. new URL("images/debian/", location.href) */
  constructor(private readonly base: string, private readonly cache?: ChunkCache,
              private readonly fetchFn: (url: string) => Promise<Response> = (u) => fetch(u)) {}

  async fetch(name: string): Promise<Uint8Array> {
    const m = /^([0-9a-f]{64})\.gz$/.exec(name);
    if (!m) throw new Error(`bad chunk name ${name}`);
    const cached = await this.cache?.match(name).catch(() => undefined);
    if (cached) { this.fromCache++; return cached; }
    let res: Response;
    try {
      res = await this.fetchFn(new URL(`chunks/${name}`, this.base).href);
    } catch (e) {
      throw new Error(`the network failed (${(e as Error).message})`);
    }
    if (!res.ok) throw new Error(`the server answered ${res.status}${res.status === 404 ? " (is the image built? npm run images:debian)" : ""}`);
    const bytes = new Uint8Array(await res.arrayBuffer());
    this.fetched++;
    this.bytesFetched += bytes.length;
    if (this.cache && await sha256Hex(bytes) === m[1]) await this.cache.put(name, bytes).catch(() => { /* full: fetched again next time */ });
    return bytes;
  }
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}
