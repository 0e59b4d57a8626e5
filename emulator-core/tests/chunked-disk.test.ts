// The chunked disk (machine/virtio/chunked-disk.ts): an image published as compressed, hashed chunks, fetched the
// first time the guest needs one, with a copy-on-write overlay for writes.

import { describe, it, expect } from "vitest";
import { createHash } from "node:crypto";
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { ChunkedDisk, ChunkedImage, checkManifest, chunkFileName, CHUNKED_DISK_FORMAT, type ChunkSource, type ChunkedImageManifest } from "../src/machine/virtio/chunked-disk.ts";
import { VirtioBlk, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_IOERR } from "../src/machine/virtio/blk.ts";
import { openChunkedImage } from "../src/node/chunked-image.ts";
import { LayeredDisk } from "../src/machine/virtio/layered-disk.ts";
import { NodeVm } from "../src/node/vm.ts";
import { openSnapshot } from "../src/snapshot/snapshot.ts";
import { setup, pattern, queueBlkRequest } from "./virtio-driver.ts";

const CHUNK = 16384;

/** An image of 5 chunks, the last one short (8 KiB); chunk 2 all zeros (not published). */
function makeImage() {
  const size = 4 * CHUNK + 8192;
  const image = new Uint8Array(size);
  for (const i of [0, 1, 3, 4]) {
    const len = Math.min(CHUNK, size - i * CHUNK);
    image.set(pattern(len, i + 1), i * CHUNK);
  }
  const files = new Map<string, Uint8Array>();
  const chunks: ChunkedImageManifest["chunks"] = [];
  for (let i = 0; i * CHUNK < size; i++) {
    const data = image.subarray(i * CHUNK, Math.min(size, (i + 1) * CHUNK));
    if (data.every((b) => b === 0)) { chunks.push(null); continue; }
    const z = new Uint8Array(gzipSync(data));
    const sha = createHash("sha256").update(z).digest("hex");
    files.set(chunkFileName(sha), z);
    chunks.push([z.length, sha]);
  }
  const manifest: ChunkedImageManifest = { format: CHUNKED_DISK_FORMAT, size, chunkSize: CHUNK, compression: "gzip", chunks };
  return { image, files, manifest };
}

/** A source that counts its fetches per chunk and answers after a tick (as a network would). */
class CountingSource implements ChunkSource {
  fetches = new Map<number, number>();
  tamper: number | undefined;
  constructor(readonly files: Map<string, Uint8Array>) {}
  async fetch(name: string, index: number): Promise<Uint8Array> {
    await new Promise((r) => setTimeout(r, 1));
    this.fetches.set(index, (this.fetches.get(index) ?? 0) + 1);
    const f = this.files.get(name);
    if (!f) throw new Error(`no chunk ${name}`);
    const copy = f.slice();
    if (index === this.tamper) copy[copy.length >> 1] ^= 1;
    return copy;
  }
}

describe("chunked disk", () => {
  it("reads the image, fetching each chunk once, chunks of zeros never", async () => {
    const { image, files, manifest } = makeImage();
    const src = new CountingSource(files);
    const disk = new ChunkedDisk(manifest, src);
    expect(disk.size).toBe(image.length);
    // across the chunk 0/1 boundary, unaligned
    const a = new Uint8Array(10000);
    await disk.read(CHUNK - 5000 + 512, a);
    expect(a).toEqual(image.subarray(CHUNK - 5000 + 512, CHUNK + 5512));
    // concurrent reads of one chunk share its fetch
    const b = new Uint8Array(512), c = new Uint8Array(512);
    await Promise.all([disk.read(3 * CHUNK, b), disk.read(3 * CHUNK + 4096, c)]);
    expect(b).toEqual(image.subarray(3 * CHUNK, 3 * CHUNK + 512));
    expect(c).toEqual(image.subarray(3 * CHUNK + 4096, 3 * CHUNK + 4608));
    // the zero chunk, and the short last one
    const z = new Uint8Array(CHUNK).fill(0xee);
    await disk.read(2 * CHUNK, z);
    expect(z.every((x) => x === 0)).toBe(true);
    const all = new Uint8Array(image.length);
    await disk.read(0, all);
    expect(all).toEqual(image);
    expect([...src.fetches.entries()].sort()).toEqual([[0, 1], [1, 1], [3, 1], [4, 1]]);
    expect(disk.stats.chunksFetched).toBe(4);
    expect(disk.stats.bytesFetched).toBe([...files.values()].reduce((n, f) => n + f.length, 0));
  });

  it("a chunk whose sha256 does not match gives an I/O error that says so, and is fetched again next time", async () => {
    const { image, files, manifest } = makeImage();
    const src = new CountingSource(files);
    src.tamper = 1;
    const disk = new ChunkedDisk(manifest, src);
    const dst = new Uint8Array(512);
    await expect(disk.read(CHUNK, dst)).rejects.toThrow(/chunk 1 of the disk image .* has sha256 [0-9a-f]{64}, the manifest says [0-9a-f]{64}/);
    src.tamper = undefined;
    await disk.read(CHUNK, dst);
    expect(dst).toEqual(image.subarray(CHUNK, CHUNK + 512));
    expect(src.fetches.get(1)).toBe(2);

    // through the virtio-blk device: the request completes with VIRTIO_BLK_S_IOERR, the next one is served
    src.tamper = 3;
    const c = setup(new VirtioBlk(new ChunkedDisk(manifest, src)), [16]);
    const bad = queueBlkRequest(c.drv, VIRTIO_BLK_T_IN, (3 * CHUNK) / 512, { readLen: 512 });
    const good = queueBlkRequest(c.drv, VIRTIO_BLK_T_IN, 0, { readLen: 512 });
    c.drv.kick(0);
    await c.device.whenIdle();
    expect(bad.status()).toBe(VIRTIO_BLK_S_IOERR);
    expect(good.status()).toBe(VIRTIO_BLK_S_OK);
    expect(good.bytes()).toEqual(image.subarray(0, 512));
  });

  it("a chunk of the wrong length, or one that does not decompress to its size, is an error too", async () => {
    const { files, manifest } = makeImage();
    const short = new Map(files);
    const [name, z] = [...short.entries()][0];
    short.set(name, z.subarray(0, z.length - 1));
    await expect(new ChunkedDisk(manifest, new CountingSource(short)).read(0, new Uint8Array(512))).rejects.toThrow(/has \d+ bytes, the manifest says/);
    // a correctly hashed chunk that inflates to too much (a manifest naming another build's chunk)
    const big = new Uint8Array(gzipSync(new Uint8Array(CHUNK * 2).fill(7)));
    const sha = createHash("sha256").update(big).digest("hex");
    const m2 = { ...manifest, chunks: [[big.length, sha], ...manifest.chunks.slice(1)] as ChunkedImageManifest["chunks"] };
    const d2 = new ChunkedDisk(m2, new CountingSource(new Map([[chunkFileName(sha), big]])));
    await expect(d2.read(0, new Uint8Array(512))).rejects.toThrow(/does not decompress: decompresses to more than 16384 bytes/);
  });

  it("writes go to the overlay: read back, partial blocks keep the base's bytes, the base is untouched", async () => {
    const { image, files, manifest } = makeImage();
    const src = new CountingSource(files);
    const disk = new ChunkedDisk(manifest, src);
    const w = pattern(1000, 99);
    await disk.write(4096 + 100, w); // inside one block of chunk 0
    await disk.write(2 * CHUNK, pattern(4096, 5)); // a whole block of the zero chunk: no fetch needed
    const back = new Uint8Array(8192);
    await disk.read(4096, back);
    const want = image.slice(4096, 4096 + 8192);
    want.set(w, 100);
    expect(back).toEqual(want);
    const zb = new Uint8Array(8192);
    await disk.read(2 * CHUNK, zb);
    expect(zb.subarray(0, 4096)).toEqual(pattern(4096, 5));
    expect(zb.subarray(4096).every((x) => x === 0)).toBe(true);
    expect(disk.stats.overlayBytes).toBe(8192);
    expect(src.fetches.has(2)).toBe(false);
    // another disk over the same chunks sees the image as published
    const other = new ChunkedDisk(manifest, src);
    const o = new Uint8Array(8192);
    await other.read(4096, o);
    expect(o).toEqual(image.subarray(4096, 4096 + 8192));

    // through the device: a write then a read of the same sectors
    const c = setup(new VirtioBlk(disk), [16]);
    const wr = queueBlkRequest(c.drv, VIRTIO_BLK_T_OUT, (CHUNK + 512) / 512, { data: pattern(1024, 7) });
    c.drv.kick(0);
    await c.device.whenIdle();
    const rd = queueBlkRequest(c.drv, VIRTIO_BLK_T_IN, (CHUNK + 512) / 512, { readLen: 1024 });
    c.drv.kick(0);
    await c.device.whenIdle();
    expect([wr.status(), rd.status()]).toEqual([VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK]);
    expect(rd.bytes()).toEqual(pattern(1024, 7));
  });

  it("checks every request's offset and length itself", async () => {
    const { files, manifest } = makeImage();
    const disk = new ChunkedDisk(manifest, new CountingSource(files));
    await expect(disk.read(disk.size - 256, new Uint8Array(512))).rejects.toThrow(/outside the disk/);
    await expect(disk.read(-512, new Uint8Array(512))).rejects.toThrow(/outside the disk/);
    await expect(disk.write(disk.size, new Uint8Array(512))).rejects.toThrow(/outside the disk/);
    await expect(disk.read(0.5, new Uint8Array(512))).rejects.toThrow(/outside the disk/);
    const ro = new ChunkedDisk(manifest, new CountingSource(files), { readOnly: true });
    await expect(ro.write(0, new Uint8Array(512))).rejects.toThrow(/read-only/);
  });

  it("refuses a malformed manifest", () => {
    const { manifest } = makeImage();
    expect(() => checkManifest({ ...manifest, chunks: manifest.chunks.slice(1) })).toThrow(/4 chunks listed, the size needs 5/);
    expect(() => checkManifest({ ...manifest, chunkSize: 1000 })).toThrow(/chunkSize/);
    expect(() => checkManifest({ ...manifest, size: 1000 })).toThrow(/size/);
    expect(() => checkManifest({ ...manifest, format: "x" })).toThrow(/format/);
    expect(() => checkManifest({ ...manifest, chunks: [[10, "../../etc/passwd"], ...manifest.chunks.slice(1)] })).toThrow(/chunk 0/);
    expect(() => checkManifest({ ...manifest, compression: "zstd" })).toThrow(/compression/);
  });

  it("reads a published directory in Node (chunks/<sha256>.gz beside manifest.json)", async () => {
    const { image, files, manifest } = makeImage();
    const dir = mkdtempSync(join(tmpdir(), "chunked-"));
    try {
      mkdirSync(join(dir, "chunks"));
      for (const [name, z] of files) writeFileSync(join(dir, "chunks", name), z);
      writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifest));
      const { disk, source } = openChunkedImage(dir);
      const all = new Uint8Array(image.length);
      await disk.read(0, all);
      await disk.read(0, new Uint8Array(4096));
      expect(all).toEqual(image);
      expect(source.reads).toBe(4);
      await expect(source.fetch("../manifest.json")).rejects.toThrow(/bad chunk name/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(() => openChunkedImage(join(tmpdir(), "no-such-chunked-dir"))).toThrow(/npm run images:debian/);
  });
});

describe("a disk over a chunked image in a snapshot", () => {
  // A busybox VM whose /dev/vda is a LayeredDisk over a ChunkedImage: what the page gives a Debian VM.
  const overImage = async (files: Map<string, Uint8Array>, manifest: ChunkedImageManifest) => {
    const image = await ChunkedImage.open(manifest, new CountingSource(files));
    return { image, disk: new LayeredDisk(image.size, { base: image }) };
  };

  it("holds the image's name and only the blocks written over it, and restores onto a new disk over the same image", async () => {
    const { image: bytes, files, manifest } = makeImage();
    const a = await overImage(files, manifest);
    expect(a.image.id).toMatch(/^chunked-[0-9a-f]{32}$/);
    const vm = new NodeVm({ ramMiB: 64, diskBackend: a.disk });
    try {
      vm.start();
      await vm.waitFor("@@GUEST_READY@@", 60_000, 0);
      // two blocks written over chunk 1 (one partly: the rest of it is the image's) and one over the zero chunk
      await vm.command("printf 'hello over the base' | dd of=/dev/vda bs=1 seek=20000 conv=notrunc 2>/dev/null; " +
        "dd if=/dev/urandom of=/dev/vda bs=4096 seek=8 count=1 conv=notrunc 2>/dev/null; sync");
      const before = await vm.command("sha256sum /dev/vda | cut -c1-64");
      expect(a.disk.ownBlockCount).toBe(2);
      const snap = await vm.snapshot();
      // the whole disk would be 72 KiB of patterns; the snapshot's disk part is its two own blocks
      const { state, spec } = await openSnapshot(snap);
      expect(spec.disks[0].base).toBe(a.image.id);
      const d = ((state as { disks: { image: unknown; base: string; own: { blocks: Uint8Array; data: Uint8Array } }[] }).disks)[0];
      expect(d.image).toBeNull();
      expect(d.base).toBe(a.image.id);
      expect([...new Uint32Array(d.own.blocks.slice().buffer)]).toEqual([4, 8]);
      expect(d.own.data.length).toBe(2 * 4096);
      vm.stop();

      const b = await overImage(files, manifest);
      const back = await NodeVm.restore(snap, { diskBackend: b.disk });
      try {
        back.start();
        expect(await back.command("sha256sum /dev/vda | cut -c1-64")).toBe(before);
        expect(await back.command("dd if=/dev/vda bs=1 skip=20000 count=19 2>/dev/null; echo")).toContain("hello over the base");
        // a byte the guest never wrote is the image's
        const at = 3 * CHUNK + 5;
        expect(Number((await back.command(`dd if=/dev/vda bs=1 skip=${at} count=1 2>/dev/null | od -An -tu1`)).trim())).toBe(bytes[at]);
      } finally { back.stop(); }

      // onto a disk over another image, or one that already has blocks of its own: refused, nothing written
      const other = makeImage();
      const changed: ChunkedImageManifest = { ...other.manifest, chunks: [...other.manifest.chunks] };
      changed.chunks[2] = changed.chunks[0];
      const c = await overImage(other.files, changed);
      await expect(NodeVm.restore(snap, { diskBackend: c.disk })).rejects.toThrow(/disks\[0\]\.base is chunked-\w+ but the attached disk is over chunked-/);
      const d2 = await overImage(files, manifest);
      await d2.disk.write(0, new Uint8Array(4096).fill(7));
      await expect(NodeVm.restore(snap, { diskBackend: d2.disk })).rejects.toThrow(/already holds blocks of its own/);
      expect(d2.disk.ownBlockCount).toBe(1);
    } finally { vm.stop(); }
  });
});
