// The page's chunk source for chunked disk images (web/vm/http-chunk-source.ts), with a fake network and cache:
// a chunk is fetched once and then comes from the cache, a damaged download is not kept, a full cache is no error,
// and a disk over it reads the image back.

import { describe, it, expect } from "vitest";
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { HttpChunkSource, type ChunkCache } from "../vm/http-chunk-source.ts";
import { ChunkedDisk, CHUNKED_DISK_FORMAT } from "../../emulator-core/src/machine/virtio/chunked-disk.ts";

const CHUNK = 64 * 1024;

/** An image of two chunks (the second all zeros, so not published) as publish.ts lays it out. */
function published() {
  const data = new Uint8Array(2 * CHUNK);
  for (let i = 0; i < CHUNK; i++) data[i] = (i * 13) & 0xff;
  const z = new Uint8Array(gzipSync(data.subarray(0, CHUNK)));
  const sha = createHash("sha256").update(z).digest("hex");
  const manifest = { format: CHUNKED_DISK_FORMAT, size: data.length, chunkSize: CHUNK, compression: "gzip", chunks: [[z.length, sha], null] };
  return { data, z, sha, manifest };
}

class MapCache implements ChunkCache {
  readonly m = new Map<string, Uint8Array>();
  full = false;
  async match(name: string) { return this.m.get(name); }
  async put(name: string, bytes: Uint8Array) { if (this.full) throw new Error("QuotaExceededError"); this.m.set(name, bytes.slice()); }
}

describe("the page's chunk source", () => {
  it("fetches a chunk once, then takes it from the cache; a disk over it reads the image", async () => {
    const { data, z, sha, manifest } = published();
    const urls: string[] = [];
    const net = async (u: string) => { urls.push(u); return new Response(z.slice()); };
    const cache = new MapCache();
    const a = new HttpChunkSource("https://host/images/debian/", cache, net);
    const disk = new ChunkedDisk(manifest, a);
    const out = new Uint8Array(data.length);
    await disk.read(0, out);
    expect(Buffer.from(out).equals(Buffer.from(data))).toBe(true);
    expect(urls).toEqual([`https://host/images/debian/chunks/${sha}.gz`]);
    expect([a.fetched, a.bytesFetched, a.fromCache]).toEqual([1, z.length, 0]);
    // another VM (another disk, another source) on the same cache: nothing over the network
    const b = new HttpChunkSource("https://host/images/debian/", cache, net);
    await new ChunkedDisk(manifest, b).read(100, new Uint8Array(10));
    expect([b.fetched, b.fromCache, urls.length]).toEqual([0, 1, 1]);
  });

  it("keeps no damaged download, says what the server answered, and goes on when the cache is full", async () => {
    const { z, sha, manifest } = published();
    const cache = new MapCache();
    const bad = z.slice(); bad[20] ^= 1;
    const damaged = new HttpChunkSource("https://h/", cache, async () => new Response(bad));
    await expect(new ChunkedDisk(manifest, damaged).read(0, new Uint8Array(512))).rejects.toThrow(/sha256/);
    expect(cache.m.size).toBe(0);
    const missing = new HttpChunkSource("https://h/", cache, async () => new Response("no", { status: 404 }));
    await expect(new ChunkedDisk(manifest, missing).read(0, new Uint8Array(512))).rejects.toThrow(/answered 404 .*images:debian/);
    cache.full = true;
    const full = new HttpChunkSource("https://h/", cache, async () => new Response(z.slice()));
    await new ChunkedDisk(manifest, full).read(0, new Uint8Array(512));
    expect(full.fetched).toBe(1);
    await expect(full.fetch("../../etc/passwd")).rejects.toThrow(/bad chunk name/);
    expect(sha).toMatch(/^[0-9a-f]{64}$/);
  });
});
