// The copy-on-write in-memory disk (layered-disk.ts): reads and writes across block edges, forks that share frozen
// layers and never see each other's later writes, zeros that take no memory, layers from another worker checked, and
// a long random run against a flat disk.

import { describe, it, expect } from "vitest";
import { LayeredDisk, DISK_BLOCK, MAX_LAYERS, type SharedDisk } from "../src/machine/virtio/layered-disk.ts";

const MiB = 1 << 20;
const fill = (n: number, v: number) => new Uint8Array(n).fill(v);
const readAt = (d: LayeredDisk, off: number, n: number) => { const b = new Uint8Array(n); d.read(off, b); return b; };

describe("layered (copy-on-write) disk", () => {
  it("reads zeros where nothing was written, and what was written across block edges", () => {
    const d = new LayeredDisk(MiB);
    expect(readAt(d, 0, 8192).every((x) => x === 0)).toBe(true);
    d.write(DISK_BLOCK - 512, fill(1536, 7)); // the end of block 0 and the start of block 1
    const got = readAt(d, DISK_BLOCK - 1024, 2560);
    expect([...got.subarray(0, 512)].every((x) => x === 0)).toBe(true);
    expect([...got.subarray(512, 2048)].every((x) => x === 7)).toBe(true);
    expect([...got.subarray(2048)].every((x) => x === 0)).toBe(true);
    expect(d.ownBytes).toBe(2 * DISK_BLOCK);
  });

  it("zeros written where no layer has anything take no memory (a restored snapshot writes its whole disk)", () => {
    const d = new LayeredDisk(4 * MiB);
    const whole = new Uint8Array(4 * MiB);
    whole.fill(9, 3 * DISK_BLOCK, 3 * DISK_BLOCK + 100);
    d.write(0, whole);
    expect(d.ownBytes).toBe(DISK_BLOCK);
    expect(readAt(d, 3 * DISK_BLOCK, 100).every((x) => x === 9)).toBe(true);
  });

  it("a fork shares what was written; neither sees the other's writes afterwards; the shared layer never changes", () => {
    const parent = new LayeredDisk(MiB);
    parent.write(0, fill(3 * DISK_BLOCK, 1));
    const shared = parent.fork();
    expect(shared.layers.length).toBe(1);
    expect(shared.layers[0].data.buffer).toBeInstanceOf(SharedArrayBuffer);
    const frozen = shared.layers[0].data.slice();
    const child = new LayeredDisk(MiB, { from: shared });
    expect(parent.ownBytes).toBe(0);
    expect(child.ownBytes).toBe(0);
    expect(child.sharedBytes).toBe(3 * DISK_BLOCK);
    expect(readAt(child, 0, 3 * DISK_BLOCK).every((x) => x === 1)).toBe(true);

    parent.write(512, fill(512, 2));     // part of a shared block: copied up, then written
    child.write(DISK_BLOCK, fill(512, 3));
    expect([...readAt(parent, 0, 1024)]).toEqual([...fill(512, 1), ...fill(512, 2)]);
    expect([...readAt(child, 0, 1024)]).toEqual([...fill(1024, 1)]);
    expect([...readAt(parent, DISK_BLOCK, 1024)]).toEqual([...fill(1024, 1)]);
    expect([...readAt(child, DISK_BLOCK, 1024)]).toEqual([...fill(512, 3), ...fill(512, 1)]);
    expect(parent.ownBytes).toBe(DISK_BLOCK);
    expect(child.ownBytes).toBe(DISK_BLOCK);
    expect(shared.layers[0].data).toEqual(frozen);

    // a fork of the fork: two layers, the newest wins
    const grandchild = new LayeredDisk(MiB, { from: child.fork() });
    expect(grandchild.depth).toBe(2);
    expect([...readAt(grandchild, DISK_BLOCK, 1024)]).toEqual([...fill(512, 3), ...fill(512, 1)]);
  });

  it("a disk forked many times is merged into one layer (reads look through every layer)", () => {
    const d = new LayeredDisk(MiB);
    for (let i = 0; i < MAX_LAYERS; i++) { d.write(i * DISK_BLOCK, fill(512, i + 1)); d.write(0, fill(512, 100 + i)); d.fork(); }
    expect(d.depth).toBe(MAX_LAYERS);
    d.write(DISK_BLOCK * 20, fill(512, 50));
    const merged = d.fork();
    expect(merged.layers.length).toBe(1);
    const copy = new LayeredDisk(MiB, { from: merged });
    expect(readAt(copy, 0, 1)[0]).toBe(100 + MAX_LAYERS - 1); // the newest write of block 0
    for (let i = 1; i < MAX_LAYERS; i++) expect(readAt(copy, i * DISK_BLOCK, 1)[0]).toBe(i + 1);
    expect(readAt(copy, DISK_BLOCK * 20, 1)[0]).toBe(50);
  });

  it("refuses a shared disk of another size or with malformed layers", () => {
    const ok = new LayeredDisk(MiB);
    ok.write(0, fill(512, 1));
    const shared = ok.fork();
    expect(() => new LayeredDisk(2 * MiB, { from: shared })).toThrow(/has 1048576 bytes, this one 2097152/);
    const bad = (layer: SharedDisk["layers"][0]) => () => new LayeredDisk(MiB, { from: { size: MiB, layers: [layer] } });
    expect(bad({ blocks: Uint32Array.of(1, 0), data: new Uint8Array(2 * DISK_BLOCK) })).toThrow(/out of order/);
    expect(bad({ blocks: Uint32Array.of(MiB / DISK_BLOCK), data: new Uint8Array(DISK_BLOCK) })).toThrow(/past the disk's end/);
    expect(bad({ blocks: Uint32Array.of(0), data: new Uint8Array(100) })).toThrow(/malformed/);
    expect(() => new LayeredDisk(MiB, { readOnly: true }).write(0, fill(512, 1))).toThrow(/read-only/);
  });

  it("behaves as a flat disk through random writes, reads and forks", () => {
    let seed = 12345;
    const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) >>> 0; return seed % n; };
    const size = 256 * 1024;
    const flat = new Uint8Array(size);
    let disk = new LayeredDisk(size);
    for (let step = 0; step < 3000; step++) {
      const sectors = 1 + rnd(24);
      const off = rnd(size / 512 - sectors) * 512;
      const op = rnd(10);
      if (op < 5) {
        const data = fill(sectors * 512, rnd(3) === 0 ? 0 : 1 + rnd(255));
        disk.write(off, data);
        flat.set(data, off);
      } else if (op < 9) {
        const got = readAt(disk, off, sectors * 512);
        if (Buffer.compare(got, flat.subarray(off, off + sectors * 512)) !== 0) throw new Error(`step ${step}: the disk differs at ${off}`);
      } else {
        // fork and go on as the copy or as the original: both must still be the same disk
        const shared = disk.fork();
        if (rnd(2)) disk = new LayeredDisk(size, { from: shared });
      }
    }
    expect(Buffer.compare(readAt(disk, 0, size), flat)).toBe(0);
    expect(disk.depth).toBeLessThanOrEqual(MAX_LAYERS);
  });
});
