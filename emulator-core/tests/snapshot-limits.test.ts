// What a small crafted snapshot cannot do: make the reader hold far more memory than the file is big. A body that
// inflates past its header's size is stopped as it passes it (on the platform's inflater and on fflate); a state
// of millions of one-byte items is refused on its counts; a machine description's disks have an upper size, and a
// restore checks every disk's image before it writes any, then writes each a run of pages at a time. The
// memory-hungry cases are measured (peak resident size of this test file's process, fresh for it).

import { describe, it, expect, vi, afterEach } from "vitest";
import { deflateRawSync } from "node:zlib";
import { writeSnapshotFile, readSnapshotFile, frameSnapshotFile } from "../src/snapshot/file.ts";
import { encodeState, MAX_LIST_ITEMS } from "../src/snapshot/codec.ts";
import { PAGE_SIZE } from "../src/snapshot/ram.ts";
import { SnapshotError, type StateObject, type StateValue } from "../src/snapshot/state-value.ts";
import { Machine } from "../src/machine/machine.ts";
import { makeSpec, validateSpec, MAX_DISK_BYTES, type MachineSpec } from "../src/machine/description.ts";
import { MemoryBlockBackend, type BlockBackend } from "../src/machine/virtio/backends.ts";
import { loadHartModule } from "../src/node/hart-module.ts";
import { tinyImage, IDLE_FOREVER } from "./tiny-image.ts";

afterEach(() => { vi.unstubAllGlobals(); });

const MiB = 1 << 20;
/** The process's peak resident size so far, in MiB (it only grows). */
const peakMiB = () => process.resourceUsage().maxRSS / 1024;

/** A snapshot file around any body, the header saying `stateBytes` (framed and checksummed as the writer does). */
function snapshotFileOf(body: Uint8Array, stateBytes: number): Uint8Array {
  return frameSnapshotFile({ machine: {}, createdAt: "2026-11-29T00:00:00.000Z", stateBytes }, body);
}

/** A raw DEFLATE body of `prefix` then `mib` MiB of zeros, built from one compressed MiB repeated (about 1 KB
 *  each: a sync-flushed piece ends on a byte, outside any block, and refers only to itself), then a final empty
 *  block. Nothing of the inflated size is ever held. */
function zerosBody(prefix: Uint8Array, mib: number): Uint8Array {
  const sync = { level: 9, finishFlush: 2 /* Z_SYNC_FLUSH */ };
  const head = deflateRawSync(prefix, sync), piece = deflateRawSync(new Uint8Array(1 << 20), sync);
  const body = new Uint8Array(head.length + piece.length * mib + 2);
  body.set(head);
  for (let i = 0; i < mib; i++) body.set(piece, head.length + i * piece.length);
  body.set([0x03, 0x00], body.length - 2); // a final block of fixed codes holding only its end
  return body;
}

/** file.ts as loaded where the platform has no DecompressionStream (fflate inflates). */
async function fileWithoutNativeDeflate(): Promise<typeof import("../src/snapshot/file.ts")> {
  vi.stubGlobal("DecompressionStream", undefined);
  vi.resetModules();
  try {
    return await import("../src/snapshot/file.ts");
  } finally {
    vi.unstubAllGlobals();
    vi.resetModules();
  }
}

describe("what a small crafted file can make the reader hold (measured first, in a fresh process)", () => {
  it("a 1 MB body inflating to 1.1 GiB, its header saying 1 MiB, is refused at once, holding little more than the MiB", async () => {
    const body = zerosBody(new Uint8Array(0), 1100);
    expect(body.length).toBeLessThan(1.2 * MiB);
    const file = snapshotFileOf(body, MiB);
    const viaFflate = await fileWithoutNativeDeflate();
    for (const read of [readSnapshotFile, viaFflate.readSnapshotFile]) {
      const before = peakMiB(), t = performance.now();
      await expect(read(file)).rejects.toThrow("its state decompresses to more than the 1048576 bytes its header says");
      expect(performance.now() - t).toBeLessThan(2000);
      expect(peakMiB() - before).toBeLessThan(128);
    }
  });

  it("a state of 64 Mi null items (64 MiB inflated from 70 KB) is refused on its count, without building the list", async () => {
    const n = 64 * MiB;
    const listHead = new Uint8Array(5);
    listHead[0] = encodeState([])[0]; // the codec's T_LIST
    new DataView(listHead.buffer).setUint32(1, n, true);
    const body = zerosBody(listHead, 64); // each null item is one zero byte (the codec's T_NULL)
    expect(body.length).toBeLessThan(100_000);
    const before = peakMiB(), t = performance.now();
    await expect(readSnapshotFile(snapshotFileOf(body, 5 + n))).rejects.toThrow(`a list of ${n} items (at most ${MAX_LIST_ITEMS})`);
    expect(performance.now() - t).toBeLessThan(2000);
    // the inflated state itself is 64 MiB; the list would be 512 MiB more
    expect(peakMiB() - before).toBeLessThan(64 + 128);
  });
});

describe("snapshot file: inflating", () => {
  const header = { machine: { ramMiB: 64 }, createdAt: "2026-11-29T00:00:00.000Z", name: "test" };
  const sample: StateValue = { n: 1.5, s: "héllo", big: 5n, bytes: new Uint8Array(5000).fill(7), list: [null, true, [1]] };

  it("reads its own bodies the same with fflate as with the platform's inflater", async () => {
    const viaFflate = await fileWithoutNativeDeflate();
    expect(viaFflate.readSnapshotFile).not.toBe(readSnapshotFile); // loaded again, without DecompressionStream
    const file = await writeSnapshotFile(header, sample);
    expect((await viaFflate.readSnapshotFile(file)).state).toEqual(sample);
    expect((await readSnapshotFile(await viaFflate.writeSnapshotFile(header, sample))).state).toEqual(sample);
  });

  it("refuses a state that inflates to more than its header says, as soon as it passes that", async () => {
    // 8 MiB of zeros after a 5-byte list head, the header saying 1 MiB
    const body = zerosBody(Uint8Array.of(7, 0, 0, 0x80, 0), 8);
    const viaFflate = await fileWithoutNativeDeflate();
    for (const read of [readSnapshotFile, viaFflate.readSnapshotFile]) {
      await expect(read(snapshotFileOf(body, 1 << 20))).rejects.toThrow("the snapshot is corrupt: its state decompresses to more than the 1048576 bytes its header says");
      // and one that ends a byte short of it
      await expect(read(snapshotFileOf(body, (8 << 20) + 6))).rejects.toThrow(/its state has the wrong size/);
      // the same body with its true size is read (and refused by the codec: a list of 8 Mi items)
      await expect(read(snapshotFileOf(body, (8 << 20) + 5))).rejects.toThrow(/a list of 8388608 items \(at most 65536\)/);
    }
  });

  it("refuses a header claiming more state than its body could inflate to, before inflating anything", async () => {
    const file = snapshotFileOf(zerosBody(new Uint8Array(0), 1), 2 ** 31);
    await expect(readSnapshotFile(file)).rejects.toThrow(/its header says 2147483648 bytes of state, more than its \d+ compressed bytes can hold/);
  });
});


describe("a snapshot's disks", () => {
  const module = loadHartModule();
  const boot = { kernel: tinyImage(IDLE_FOREVER) };
  const specFor = (disks: BlockBackend[]): MachineSpec => makeSpec({ ramMiB: 32, disks: disks.map((d) => ({ sizeBytes: d.size })) });
  const saved = (disks: BlockBackend[], opts: { withoutDisks?: boolean } = {}) =>
    Machine.create(module, specFor(disks), { boot, disks }).saveState(opts);
  const restore = (disks: BlockBackend[], state: StateValue) => Machine.restore(module, specFor(disks), { boot, disks }, state);
  const filled = (size: number, byte: number, opts: { readOnly?: boolean } = {}) => {
    const d = new MemoryBlockBackend(size, opts);
    d.data.fill(byte);
    return d;
  };

  it("a machine description's disk is at most 64 GiB", () => {
    const base = { ramMiB: 32, cmdline: "console=ttyS0", deterministic: false, nics: [], rng: true, balloon: false };
    expect(validateSpec({ ...base, disks: [{ sizeBytes: MAX_DISK_BYTES }] }).disks[0].sizeBytes).toBe(64 * 2 ** 30);
    for (const sizeBytes of [MAX_DISK_BYTES + 512, 2 ** 52]) {
      expect(() => validateSpec({ ...base, disks: [{ sizeBytes }] })).toThrow(/disks\[0\]\.sizeBytes must be at most 68719476736 \(64 GiB/);
    }
  });

  it("every disk's image is checked before any disk is written: a corrupt second one leaves the first untouched", async () => {
    const size = 64 * PAGE_SIZE;
    const src = [filled(size, 0), filled(size, 0)];
    src[0].data.fill(1, 0, 3 * PAGE_SIZE);
    src[1].data.fill(2, 5 * PAGE_SIZE, 6 * PAGE_SIZE);
    const state = await saved(src);

    // the state as saved restores both disks exactly, zeros over what they held included
    const good = [filled(size, 0xaa), filled(size, 0xaa)];
    await restore(good, state);
    expect(Buffer.compare(good[0].data, src[0].data)).toBe(0);
    expect(Buffer.compare(good[1].data, src[1].data)).toBe(0);

    const disks = state.disks as StateObject[];
    const image1 = disks[1].image as StateObject;
    const corrupt = (image: StateValue): StateObject => ({ ...state, disks: [disks[0], { ...disks[1], image }] });
    for (const [bad, message] of [
      [corrupt({ ...image1, data: new Uint8Array(10) }), /disk 1\.data: expected 4096 bytes, got 10/],
      [corrupt({ ...image1, pages: 65 }), /holds 0\.25390625 MiB of disk 1, this machine has 0\.25 MiB/],
      [corrupt("not an image"), /disk 1: expected an object/],
    ] as const) {
      const targets = [filled(size, 0xaa), filled(size, 0xaa)];
      await expect(restore(targets, bad)).rejects.toThrow(message);
      await expect(restore(targets, bad)).rejects.toThrow(SnapshotError);
      for (const d of targets) {
        expect(d.data.every((b) => b === 0xaa)).toBe(true);
        expect(d.flushes).toBe(0);
      }
    }
    // a second disk that is read-only here is refused before the first is written too
    const ro = [filled(size, 0xaa), filled(size, 0xaa, { readOnly: true })];
    await expect(restore(ro, state)).rejects.toThrow("disk 1 is read-only here but was writable in the snapshot");
    expect(ro[0].data.every((b) => b === 0xaa)).toBe(true);
  });

  it("a disk is written a MiB at a time, zeros where its image has no page; an asynchronous backend gets its own copies", async () => {
    const pages = 3 * 256 + 3;
    const src = filled(pages * PAGE_SIZE, 0);
    for (const p of [0, 1, 300, ...Array.from({ length: 301 }, (_, i) => 400 + i), pages - 1]) src.data.fill(p % 251 + 1, p * PAGE_SIZE, (p + 1) * PAGE_SIZE);
    const state = await saved([src]);

    /** keeps what it is handed, as it may (backends.ts): a copy of the snapshot's own bytes, or it would be lost */
    class KeepingDisk extends MemoryBlockBackend {
      readonly async = true;
      writes: [number, number][] = [];
      override write(offset: number, buf: Uint8Array): Promise<void> {
        super.write(offset, buf);
        this.writes.push([offset, buf.length]);
        structuredClone(buf.buffer, { transfer: [buf.buffer as ArrayBuffer] }); // detaches it
        return Promise.resolve();
      }
    }
    const disk = new KeepingDisk(pages * PAGE_SIZE);
    disk.data.fill(0xaa);
    await restore([disk], state);
    expect(Buffer.compare(disk.data, src.data)).toBe(0);
    expect(disk.flushes).toBe(1);
    let next = 0;
    for (const [offset, length] of disk.writes) {
      expect(offset).toBe(next);
      expect(length).toBeLessThanOrEqual(MiB);
      next += length;
    }
    expect(next).toBe(pages * PAGE_SIZE);
  });

  it("a 16 GiB disk of two pages is restored without a buffer of the whole disk", async () => {
    const size = 16 * 2 ** 30, pages = size / PAGE_SIZE;
    /** a disk that holds nothing: it records where its writes go and which ones begin or end with data */
    class HugeDisk implements BlockBackend {
      readonly size = size;
      written = 0; largest = 0; flushes = 0;
      withData: number[] = [];
      read(_offset: number, dst: Uint8Array): void { dst.fill(0); }
      write(offset: number, src: Uint8Array): void {
        expect(offset).toBe(this.written);
        this.written += src.length;
        this.largest = Math.max(this.largest, src.length);
        if (src[0] !== 0 || src[src.length - 1] !== 0) this.withData.push(offset);
      }
      flush(): void { this.flushes++; }
    }
    const state = await saved([new HugeDisk()], { withoutDisks: true });
    const present = new Uint8Array(pages / 8);
    present[0] = 1;
    present[pages / 8 - 1] = 0x80;
    const data = new Uint8Array(2 * PAGE_SIZE).fill(0x11);
    const disks = state.disks as StateObject[];
    const withImage = { ...state, disks: [{ ...disks[0], image: { pageSize: PAGE_SIZE, pages, present, data } }] };

    const disk = new HugeDisk();
    const before = peakMiB(), t = performance.now();
    await restore([disk], withImage);
    expect(performance.now() - t).toBeLessThan(5000);
    expect(peakMiB() - before).toBeLessThan(128);
    expect(disk.written).toBe(size);
    expect(disk.largest).toBeLessThanOrEqual(MiB);
    expect(disk.withData).toEqual([0, size - PAGE_SIZE]);
    expect(disk.flushes).toBe(1);
  });
});
