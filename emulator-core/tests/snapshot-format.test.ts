// The snapshot file format and the state encoding: round trips, and refusal of corrupt, truncated and foreign
// files with a message that says what is wrong.

import { describe, it, expect } from "vitest";
import { encodeState, decodeState, MAX_LIST_ITEMS, MAX_OBJECT_KEYS, MAX_STRING_BYTES, MAX_VALUES } from "../src/snapshot/codec.ts";
import { writeSnapshotFile, readSnapshotFile, readSnapshotHeader, SNAPSHOT_FORMAT } from "../src/snapshot/file.ts";
import { saveRam, restoreRam, PAGE_SIZE } from "../src/snapshot/ram.ts";
import { crc32 } from "../src/snapshot/crc32.ts";
import { SnapshotError, type StateValue } from "../src/snapshot/state-value.ts";

const sample: StateValue = {
  n: 1.5, big: (1n << 63n) + 5n, neg: -12345678901234567890n, s: "héllo", t: true, f: false, z: null,
  bytes: Uint8Array.from([1, 2, 3]), large: new Uint8Array(5000).fill(7),
  list: [1, "two", [3], { four: 4 }], nested: { a: { b: { c: [] } } }, empty: {},
};

describe("state encoding", () => {
  it("round-trips every kind of value", () => {
    expect(decodeState(encodeState(sample))).toEqual(sample);
  });

  it("refuses truncated, trailing and malformed data", () => {
    const enc = encodeState(sample);
    for (const cut of [0, 1, 5, enc.length >> 1, enc.length - 1]) {
      expect(() => decodeState(enc.subarray(0, cut))).toThrow(SnapshotError);
    }
    expect(() => decodeState(Uint8Array.from([...enc, 0]))).toThrow(/trailing/);
    expect(() => decodeState(Uint8Array.from([99]))).toThrow(/unknown tag/);
    // a list claiming four billion items fails on the bytes that are not there, not on memory
    expect(() => decodeState(Uint8Array.from([7, 0xff, 0xff, 0xff, 0xff]))).toThrow(/truncated or corrupt: a list of 4294967295 items in 0 bytes/);
    // an object entry takes at least 5 bytes (its key's length and its value's tag)
    expect(() => decodeState(Uint8Array.from([8, 2, 0, 0, 0, 0, 0, 0, 0, 0]))).toThrow(/an object of 2 keys in 5 bytes/);
    // invalid UTF-8 in a string
    expect(() => decodeState(Uint8Array.from([4, 1, 0, 0, 0, 0xff]))).toThrow(/UTF-8/);
    // nesting deeper than any real state
    const deep = [...Array.from({ length: 100 }, () => [7, 1, 0, 0, 0]).flat(), 0];
    expect(() => decodeState(Uint8Array.from(deep))).toThrow(/nests too deeply/);
  });
});

/** The codec's own encoding of a list of `n` items, each `item` (already encoded), without building the list. */
function encodedList(n: number, item: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + n * item.length);
  out[0] = encodeState([])[0]; // the codec's T_LIST
  new DataView(out.buffer).setUint32(1, n, true);
  for (let i = 0; i < n; i++) out.set(item, 5 + i * item.length);
  return out;
}
const NULL = encodeState(null);

describe("state encoding limits", () => {
  it("holds lists, objects and strings up to the limits, and refuses them (saving or reading) past them", () => {
    expect(NULL).toEqual(Uint8Array.of(0));
    const most = encodedList(MAX_LIST_ITEMS, NULL);
    expect((decodeState(most) as StateValue[]).length).toBe(MAX_LIST_ITEMS);
    expect(encodeState(new Array(MAX_LIST_ITEMS).fill(null))).toEqual(most);
    // one more item, every one of them there: refused on the count, before any item is read
    expect(() => decodeState(encodedList(MAX_LIST_ITEMS + 1, NULL))).toThrow(`a list of ${MAX_LIST_ITEMS + 1} items (at most ${MAX_LIST_ITEMS})`);
    expect(() => encodeState(new Array(MAX_LIST_ITEMS + 1).fill(null))).toThrow(/a list of 65537 items, more than a snapshot holds/);

    const wide = Object.fromEntries(Array.from({ length: MAX_OBJECT_KEYS + 1 }, (_, i) => [`k${i}`, null]));
    expect(() => encodeState(wide)).toThrow(/an object of 4097 keys/);
    delete wide[`k${MAX_OBJECT_KEYS}`];
    const wideBytes = encodeState(wide);
    expect(Object.keys(decodeState(wideBytes) as object).length).toBe(MAX_OBJECT_KEYS);
    const dv = new DataView(wideBytes.buffer);
    dv.setUint32(1, MAX_OBJECT_KEYS + 1, true); // the same entries, one claimed more: it is never read
    expect(() => decodeState(Uint8Array.from([...wideBytes, 2, 0, 0, 0, 0x6b, 0x78, 0]))).toThrow(/an object of 4097 keys \(at most 4096\)/);

    const long = "x".repeat(MAX_STRING_BYTES + 1);
    expect(() => encodeState(long)).toThrow(/a string of 1048577 bytes/);
    const longBytes = new Uint8Array(5 + long.length).fill(0x78);
    longBytes.set([4, 1, 0, 0x10, 0]); // T_STRING of 2^20 + 1 bytes
    expect(() => decodeState(longBytes)).toThrow(/a string of 1048577 bytes \(at most 1048576\)/);
    expect(() => encodeState(1n << 600n)).toThrow(/an integer of 608 bits/);
  });

  it("refuses more values in the whole tree than any machine's state holds, however they are nested", () => {
    // lists of lists, each within its limit: 5 * 65536 nulls, about 320 KB
    const inner = encodedList(MAX_LIST_ITEMS, NULL);
    const outer = encodedList(5, inner);
    expect(() => decodeState(outer)).toThrow(`more than ${MAX_VALUES} values`);
    expect(() => encodeState(Array.from({ length: 5 }, () => new Array(MAX_LIST_ITEMS).fill(null)))).toThrow(/more than 262144 values/);
  });
});

describe("crc32", () => {
  it("matches the standard check value", () => {
    expect(crc32(new TextEncoder().encode("123456789"))).toBe(0xcbf43926);
  });
});

describe("RAM image", () => {
  it("keeps only non-zero pages and restores the rest as zeros", () => {
    const ram = new Uint8Array(64 * PAGE_SIZE);
    ram[5] = 1; ram[10 * PAGE_SIZE + 4095] = 2; ram[63 * PAGE_SIZE] = 3;
    const saved = saveRam(ram) as { data: Uint8Array };
    expect(saved.data.length).toBe(3 * PAGE_SIZE);
    const other = new Uint8Array(64 * PAGE_SIZE).fill(0xaa);
    restoreRam(other, saved);
    expect(Buffer.compare(other, ram)).toBe(0);
  });

  it("refuses an image of another size or with missing pages, writing nothing", () => {
    const ram = new Uint8Array(8 * PAGE_SIZE);
    ram[0] = 1;
    const saved = saveRam(ram) as { [k: string]: StateValue };
    const target = new Uint8Array(16 * PAGE_SIZE).fill(9);
    expect(() => restoreRam(target, saved)).toThrow(/MiB of RAM/);
    const same = new Uint8Array(8 * PAGE_SIZE).fill(9);
    expect(() => restoreRam(same, { ...saved, data: new Uint8Array(10) })).toThrow(SnapshotError);
    expect(same.every((b) => b === 9)).toBe(true);
  });
});

describe("snapshot file", () => {
  const header = { machine: { ramMiB: 64 }, createdAt: "2026-11-29T00:00:00.000Z", name: "test" };

  it("round-trips header and state; the header reads alone", async () => {
    const file = await writeSnapshotFile(header, sample);
    expect(readSnapshotHeader(file)).toMatchObject(header);
    const { header: h, state } = await readSnapshotFile(file);
    expect(h).toMatchObject(header);
    expect(state).toEqual(sample);
  });

  it("says what is wrong with a corrupt, truncated, foreign or newer file", async () => {
    const file = await writeSnapshotFile(header, sample);
    await expect(readSnapshotFile(new TextEncoder().encode("hello world, not a snapshot"))).rejects.toThrow(/not a Tabvisor snapshot/);
    await expect(readSnapshotFile(file.subarray(0, file.length - 10))).rejects.toThrow(/truncated/);
    await expect(readSnapshotFile(file.subarray(0, 30))).rejects.toThrow(/truncated/);
    const flipped = file.slice();
    flipped[flipped.length - 20] ^= 0x40;
    await expect(readSnapshotFile(flipped)).rejects.toThrow(/checksum/);
    const newer = file.slice();
    new DataView(newer.buffer).setUint32(8, SNAPSHOT_FORMAT + 1, true);
    await expect(readSnapshotFile(newer)).rejects.toThrow(new RegExp(`format version ${SNAPSHOT_FORMAT + 1}`));
    await expect(readSnapshotFile(Uint8Array.from([...file, 0]))).rejects.toThrow(/extra bytes/);
  });
});
