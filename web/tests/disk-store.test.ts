// Persistent disks in Node (web/vm/disk-store.ts under emulator-core's LayeredDisk): the overlay file over files in
// memory, what survives a tab killed at any point (every write that returned is in the file; nothing else), flush
// semantics, quota, atomic replacement by generations, forks of a persistent disk, a non-blank base.

import { describe, it, expect } from "vitest";
import { LayeredDisk, DISK_BLOCK, DiskFullError, WRITEBACK_BYTES, type DiskBase } from "../../emulator-core/src/machine/virtio/layered-disk.ts";
import { DiskVolume, MemoryDir, MemoryFile, OverlayFile, type SyncFile } from "../vm/disk-store.ts";

const MiB = 1024 * 1024;
const fill = (n: number, v: number) => new Uint8Array(n).fill(v);
const readAt = (d: LayeredDisk, off: number, n: number) => { const b = new Uint8Array(n); d.read(off, b); return b; };

/** A disk over a fresh volume in `dir` (as a VM's worker opens it). */
async function openDisk(dir: MemoryDir, size: number, mode: "keep" | "fresh" = "keep", capacity = Infinity, base?: DiskBase) {
  const volume = await DiskVolume.open(dir, size, base?.id ?? "blank", mode, capacity);
  const full: string[] = [];
  const disk = new LayeredDisk(size, { store: volume.current, base, onFull: (w) => full.push(w) });
  return { volume, disk, full };
}

/** What a killed tab leaves: the folder as it is, with every file let go of (no flush, no close). */
function kill(dir: MemoryDir): void {
  for (const f of dir.files.values()) f.open = false;
}

describe("persistent disk store", () => {
  it("keeps what was flushed across a reopen, and reads the rest from below", async () => {
    const dir = new MemoryDir();
    let { disk, volume } = await openDisk(dir, 4 * MiB);
    disk.write(512, fill(1024, 7));            // part of block 0
    disk.write(DISK_BLOCK * 3 - 100, fill(300, 9)); // across blocks 2 and 3
    disk.flush();
    expect(volume.current.count).toBe(3);
    volume.close();
    ({ disk, volume } = await openDisk(dir, 4 * MiB));
    expect(readAt(disk, 0, 2048)).toEqual(new Uint8Array([...fill(512, 0), ...fill(1024, 7), ...fill(512, 0)]));
    expect(readAt(disk, DISK_BLOCK * 3 - 100, 300)).toEqual(fill(300, 9));
    expect(readAt(disk, 3 * MiB, 4096)).toEqual(fill(4096, 0));
    // zeros over nothing take no room
    disk.write(MiB, fill(8192, 0));
    disk.flush();
    expect(volume.current.count).toBe(3);
  });

  it("writes are cached until a flush (or the cache grows), and a flush makes them durable", async () => {
    const dir = new MemoryDir();
    const { disk, volume } = await openDisk(dir, 16 * MiB);
    const file = dir.files.get([...dir.files.keys()][0])!;
    const flushesBefore = file.flushes;
    disk.write(0, fill(4096, 1));
    expect(volume.current.count).toBe(0); // still in memory
    disk.flush();
    expect(volume.current.count).toBe(1);
    expect(file.flushes).toBeGreaterThan(flushesBefore);
    // past WRITEBACK_BYTES the cache is written out without a flush
    disk.write(DISK_BLOCK, fill(WRITEBACK_BYTES, 2));
    expect(volume.current.count).toBeGreaterThanOrEqual(WRITEBACK_BYTES / DISK_BLOCK);
    expect(disk.ownBytes).toBe(0);
  });

  it("a tab killed mid-write: what was flushed is there, a torn new block reads as before", async () => {
    const dir = new MemoryDir();
    const { disk } = await openDisk(dir, MiB);
    disk.write(0, fill(4096, 5));
    disk.flush();
    disk.write(0, fill(4096, 6)); // not flushed: either value may survive
    disk.write(8192, fill(4096, 7)); // not flushed
    kill(dir);
    const after = await openDisk(dir, MiB);
    expect([5, 6]).toContain(readAt(after.disk, 0, 1)[0]);
    expect(readAt(after.disk, 0, 4096).every((b) => b === readAt(after.disk, 0, 1)[0])).toBe(true);
    expect([0, 7]).toContain(readAt(after.disk, 8192, 1)[0]);

    // a new block whose data went out but not its map entry (killed between the two writes): a free slot, reused
    const dir2 = new MemoryDir();
    const v = await DiskVolume.open(dir2, MiB, "blank", "keep");
    const name = [...dir2.files.keys()][0];
    const f = dir2.files.get(name)!;
    const realWrite = f.write.bind(f);
    let writes = 0;
    f.write = (buf, o) => { if (++writes === 2) throw new Error("killed"); return realWrite(buf, o); };
    expect(() => v.current.write(3, fill(4096, 8))).toThrow(/killed/);
    kill(dir2);
    const again = await DiskVolume.open(dir2, MiB, "blank", "keep");
    expect(again.current.count).toBe(0);
    again.current.write(4, fill(4096, 9));
    expect(again.current.storedBytes).toBe(f.getSize()); // the orphaned slot was used again, the file did not grow

    // many new blocks at once: killed after their data went out, before their map entries: none of them is there
    // (and the ones written before are)
    again.current.write(0, fill(4096, 1));
    const g = [...dir2.files.values()].find((x) => x.open)!;
    const gWrite = g.write.bind(g);
    let n = 0;
    g.write = (buf, o) => { if (buf.length > 4096 && ++n === 1) { gWrite(buf, o); throw new Error("killed"); } if (n === 1) throw new Error("killed"); return gWrite(buf, o); };
    expect(() => again.current.writeBlocks([[7, fill(4096, 7)], [8, fill(4096, 8)], [9, fill(4096, 9)]])).toThrow(/killed/);
    kill(dir2);
    const third = await DiskVolume.open(dir2, MiB, "blank", "keep");
    expect([0, 4, 7, 8, 9].map((b) => third.current.has(b))).toEqual([true, true, false, false, false]);
    third.current.writeBlocks([[7, fill(4096, 7)], [8, fill(4096, 8)]]);
    const got = new Uint8Array(4096);
    third.current.read(8, got);
    expect(got).toEqual(fill(4096, 8));
    third.current.read(0, got);
    expect(got).toEqual(fill(4096, 1));
  });

  it("quota: a write that needs room the store does not have fails whole, and what was written stays", async () => {
    const dir = new MemoryDir();
    const { disk, volume, full } = await openDisk(dir, 4 * MiB, "keep", 4);
    disk.write(0, fill(3 * DISK_BLOCK, 1));
    disk.flush();
    // two new blocks, room for one: refused whole
    expect(() => disk.write(3 * DISK_BLOCK, fill(2 * DISK_BLOCK, 2))).toThrow(DiskFullError);
    expect(full[0]).toMatch(/storage is full/);
    expect(readAt(disk, 3 * DISK_BLOCK, 1)[0]).toBe(0);
    // rewriting blocks it has needs no room
    disk.write(0, fill(DISK_BLOCK, 3));
    disk.write(3 * DISK_BLOCK, fill(DISK_BLOCK, 4)); // the last free one
    disk.flush();
    expect(() => disk.write(5 * DISK_BLOCK, fill(512, 5))).toThrow(DiskFullError);
    volume.close();
    const again = await openDisk(dir, 4 * MiB, "keep", 4);
    expect([0, DISK_BLOCK, 2 * DISK_BLOCK, 3 * DISK_BLOCK].map((o) => readAt(again.disk, o, 1)[0])).toEqual([3, 1, 1, 4]);

    // the browser's own quota (QuotaExceededError from the file) is a full disk too, found at the flush
    const dir2 = new MemoryDir();
    const b = await openDisk(dir2, 4 * MiB);
    const f = [...dir2.files.values()][0] as MemoryFile & SyncFile;
    const realWrite = f.write.bind(f);
    f.write = (buf, o) => { if (o.at + buf.length > f.getSize()) throw new DOMException("no room", "QuotaExceededError"); return realWrite(buf, o); };
    b.disk.write(0, fill(4096, 1));
    expect(() => b.disk.flush()).toThrow(DiskFullError);
    expect(b.full[0]).toMatch(/quota/);
    expect(readAt(b.disk, 0, 1)[0]).toBe(1); // still in memory for the guest
  });

  it("a replacement (reset, import, restore) is all or nothing, whenever the tab dies", async () => {
    const dir = new MemoryDir();
    const { disk, volume } = await openDisk(dir, MiB);
    disk.write(0, fill(4096, 1));
    disk.flush();
    // a replacement cut short: the old disk is what a reopen finds
    const repl = await volume.begin();
    repl.write(0, fill(4096, 2));
    repl.write(1, fill(4096, 2));
    kill(dir);
    let reopened = await openDisk(dir, MiB);
    expect(reopened.volume.problem).toBeUndefined();
    expect(readAt(reopened.disk, 0, 1)[0]).toBe(1);
    expect(dir.files.size).toBe(1); // the cut-short one was removed

    // one that was committed replaces it whole
    const next = await reopened.volume.begin();
    const fresh = new LayeredDisk(MiB, { store: next });
    fresh.write(DISK_BLOCK, fill(4096, 3));
    fresh.flush();
    await reopened.volume.commit(next);
    reopened.disk.adopt(fresh);
    expect(readAt(reopened.disk, 0, 1)[0]).toBe(0);
    expect(readAt(reopened.disk, DISK_BLOCK, 1)[0]).toBe(3);
    kill(dir);
    reopened = await openDisk(dir, MiB);
    expect([readAt(reopened.disk, 0, 1)[0], readAt(reopened.disk, DISK_BLOCK, 1)[0]]).toEqual([0, 3]);
    expect(dir.files.size).toBe(1);

    // "fresh" empties the folder
    reopened.volume.close();
    const blank = await openDisk(dir, MiB, "fresh");
    expect(readAt(blank.disk, DISK_BLOCK, 1)[0]).toBe(0);
    expect(dir.files.size).toBe(1);
  });

  it("refuses an overlay of another disk size or base, or a damaged one, saying why", async () => {
    const dir = new MemoryDir();
    const { disk, volume } = await openDisk(dir, MiB);
    disk.write(0, fill(4096, 1));
    disk.flush();
    volume.close();
    const other = await DiskVolume.open(dir, 2 * MiB, "blank", "keep");
    expect(other.problem).toMatch(/of a disk of 1048576 bytes, this one has 2097152/);
    other.close();
    const f = new MemoryFile();
    OverlayFile.create(f, MiB, "debian-13");
    expect(OverlayFile.open(f, MiB, "blank")).toMatch(/cut short/);
    const g = new MemoryFile();
    OverlayFile.create(g, MiB, "debian-13").markComplete();
    expect(OverlayFile.open(g, MiB, "blank")).toMatch(/base image "debian-13", this disk's is "blank"/);
    // a map entry past the disk's end is left out
    const h = new MemoryFile();
    const o = OverlayFile.create(h, MiB, "blank");
    o.write(2, fill(4096, 4));
    o.markComplete();
    h.write(new Uint8Array([0xff, 0xff, 0xff, 0x7f]), { at: 4096 });
    expect((OverlayFile.open(h, MiB, "blank") as OverlayFile).count).toBe(0);
    expect(() => o.write(256, fill(4096, 1))).toThrow(/past the disk's end/);
  });

  it("forks: the copy gets the whole disk and writes it into its own store; the two go separate ways", async () => {
    const dirA = new MemoryDir(), dirB = new MemoryDir();
    const a = await openDisk(dirA, 2 * MiB);
    a.disk.write(0, fill(4096, 1));
    a.disk.flush();
    a.disk.write(4096, fill(4096, 2)); // cached, not flushed: the copy has it too
    const shared = a.disk.fork();
    const b = await openDisk(dirB, 2 * MiB, "fresh");
    const repl = await b.volume.begin();
    const copy = new LayeredDisk(2 * MiB, { from: shared, store: repl });
    copy.absorbLayers();
    await b.volume.commit(repl);
    b.disk.adopt(copy);
    expect(b.disk.sharedBytes).toBe(0);
    b.disk.write(0, fill(4096, 9));
    a.disk.write(4096, fill(4096, 8));
    expect([readAt(a.disk, 0, 1)[0], readAt(a.disk, 4096, 1)[0]]).toEqual([1, 8]);
    expect([readAt(b.disk, 0, 1)[0], readAt(b.disk, 4096, 1)[0]]).toEqual([9, 2]);
    b.disk.flush();
    kill(dirB);
    const b2 = await openDisk(dirB, 2 * MiB);
    expect([readAt(b2.disk, 0, 1)[0], readAt(b2.disk, 4096, 1)[0]]).toEqual([9, 2]);
  });

  it("over a base image: unwritten blocks read from it, written ones from the overlay", async () => {
    const image = new Uint8Array(MiB);
    for (let i = 0; i < image.length; i++) image[i] = (i * 7) & 0xff;
    const base: DiskBase = { size: MiB, id: "test-image", read: (off, dst) => dst.set(image.subarray(off, off + dst.length)) };
    const dir = new MemoryDir();
    const { disk, volume } = await openDisk(dir, MiB, "keep", Infinity, base);
    expect(readAt(disk, 5000, 100)).toEqual(image.subarray(5000, 5100));
    disk.write(4096 + 100, fill(10, 0)); // zeros over base data are kept, the rest of the block is the base's
    disk.flush();
    volume.close();
    const again = await openDisk(dir, MiB, "keep", Infinity, base);
    const expected = image.slice(4096, 8192);
    expected.fill(0, 100, 110);
    expect(readAt(again.disk, 4096, 4096)).toEqual(expected);
    expect(again.volume.current.count).toBe(1);
  });

  it("over a base fetched on demand (asynchronous): reads and partial writes wait for it, concurrent parts all land", async () => {
    const image = new Uint8Array(MiB);
    for (let i = 0; i < image.length; i++) image[i] = (i * 13 + 1) & 0xff;
    let fetches = 0;
    const base: DiskBase = {
      size: MiB, id: "fetched", async: true,
      read: (off, dst) => new Promise<void>((r) => setTimeout(() => { fetches++; dst.set(image.subarray(off, off + dst.length)); r(); }, 5)),
    };
    const dir = new MemoryDir();
    const { disk, volume } = await openDisk(dir, MiB, "keep", Infinity, base);
    expect(disk.async).toBe(true);
    const got = new Uint8Array(6000);
    const pending = disk.read(3000, got);
    expect(pending).toBeInstanceOf(Promise);
    await pending;
    expect(got).toEqual(image.subarray(3000, 9000));
    // two partial writes into the same base block at once, and a whole-block write of zeros (which must be kept:
    // the base has data there)
    await Promise.all([disk.write(8192 + 10, fill(20, 0xaa)), disk.write(8192 + 100, fill(20, 0xbb)), disk.write(4 * DISK_BLOCK, fill(DISK_BLOCK, 0))]);
    const expected = image.slice(8192, 12288);
    expected.fill(0xaa, 10, 30);
    expected.fill(0xbb, 100, 120);
    expect(readAt(disk, 8192, 4096)).toEqual(expected); // from the top layer now: no wait
    disk.flush();
    volume.close();
    const again = await openDisk(dir, MiB, "keep", Infinity, base);
    const b = new Uint8Array(4096);
    await again.disk.read(8192, b);
    expect(b).toEqual(expected);
    await again.disk.read(4 * DISK_BLOCK, b);
    expect(b).toEqual(fill(4096, 0));
    expect(fetches).toBeGreaterThan(0);
  });

  it("a random mix of writes, flushes and kills matches a model of what was flushed", async () => {
    let seed = 12345;
    const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
    const size = 256 * 1024;
    const dir = new MemoryDir();
    let { disk } = await openDisk(dir, size);
    let flushed = new Uint8Array(size), written = new Uint8Array(size);
    for (let step = 0; step < 400; step++) {
      const op = rnd(10);
      if (op < 7) {
        const sectors = 1 + rnd(16), at = rnd(size / 512 - sectors) * 512;
        const data = fill(sectors * 512, 1 + rnd(250));
        disk.write(at, data);
        written.set(data, at);
      } else if (op < 9) {
        disk.flush();
        flushed = written.slice();
      } else {
        kill(dir);
        ({ disk } = await openDisk(dir, size));
        // every sector is what was flushed or what was written after (never anything else)
        const now = readAt(disk, 0, size);
        for (let s = 0; s < size; s += 512) {
          const x = now.subarray(s, s + 512);
          const ok = x.every((v, i) => v === flushed[s + i]) || x.every((v, i) => v === written[s + i]);
          if (!ok) throw new Error(`sector ${s / 512} after a kill at step ${step} is neither flushed nor written`);
        }
        flushed = now.slice();
        written = now.slice();
      }
      if (Buffer.compare(readAt(disk, 0, size), written) !== 0) throw new Error(`the disk differs from what was written at step ${step}`);
    }
  });
});
