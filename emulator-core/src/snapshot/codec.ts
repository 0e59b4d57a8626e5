// A compact binary encoding of StateValue trees (device states, the hart block, RAM pages), for snapshot files.
//
// Each value is a tag byte and its payload, little-endian: numbers as f64, strings as UTF-8 with a u32 length,
// bigints as a sign byte and magnitude bytes, byte arrays as a u32 length and the bytes, lists and objects as a
// u32 count and their items. Decoding reads untrusted bytes: every length and count is checked against what is
// left, nesting is bounded, and anything malformed throws SnapshotError. The bytes left do not bound memory on
// their own (an item can be a single byte, and a snapshot's state may be 2 GiB, mostly zeros that compress to
// almost nothing), so lists, objects, strings and the number of values in the whole tree have fixed limits far
// above what a machine's state holds (see MAX_LIST_ITEMS). Byte arrays decode as views of the input (no copy), so
// a large RAM image costs nothing extra to read.

import { SnapshotError, type StateValue } from "./state-value.ts";

const T_NULL = 0, T_FALSE = 1, T_TRUE = 2, T_NUMBER = 3, T_STRING = 4, T_BIGINT = 5, T_BYTES = 6, T_LIST = 7, T_OBJECT = 8;
const MAX_DEPTH = 64;
// What a machine's state holds (machine-state.ts): a hart block, RAM and disk images as byte arrays, and a few
// hundred small values (public/images/template*.snap: 85 and 177 values, lists of at most 7 items, objects of at
// most 12 keys). Its longest lists are a network card's rx backlog (64 frames, virtio/net.ts) and the devices
// and disks (64 at most on restore); its largest objects a virtio transport's 12 registers and the balloon's
// statistics; its longest strings a transport's failure reason (1024 characters). The limits leave a
// thousandfold margin and bound what a decode can build: at most MAX_VALUES values, a few tens of MB of objects.
/** items in one list */
export const MAX_LIST_ITEMS = 1 << 16;
/** keys in one object */
export const MAX_OBJECT_KEYS = 4096;
/** UTF-8 bytes in one string or key */
export const MAX_STRING_BYTES = 1 << 20;
/** values (of any kind, nested ones included) in one state tree */
export const MAX_VALUES = 1 << 18;

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/** Grows as it is written; byte arrays are kept by reference and copied once, at the end. */
class Writer {
  private chunks: Uint8Array[] = [];
  private buf = new Uint8Array(4096);
  private dv = new DataView(this.buf.buffer);
  private at = 0;
  private total = 0;
  /** values written so far */
  values = 0;

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    this.flush();
    if (n > this.buf.length) { this.buf = new Uint8Array(n); this.dv = new DataView(this.buf.buffer); }
  }
  private flush(): void {
    if (this.at === 0) return;
    this.chunks.push(this.buf.slice(0, this.at));
    this.total += this.at;
    this.at = 0;
  }
  u8(v: number): void { this.room(1); this.buf[this.at++] = v; }
  u32(v: number): void { this.room(4); this.dv.setUint32(this.at, v, true); this.at += 4; }
  f64(v: number): void { this.room(8); this.dv.setFloat64(this.at, v, true); this.at += 8; }
  bytes(b: Uint8Array): void {
    if (b.length < 1024) { this.room(b.length); this.buf.set(b, this.at); this.at += b.length; return; }
    this.flush();
    this.chunks.push(b);
    this.total += b.length;
  }
  finish(): Uint8Array {
    this.flush();
    const out = new Uint8Array(this.total);
    let o = 0;
    for (const c of this.chunks) { out.set(c, o); o += c.length; }
    return out;
  }
}

/** The decoder's limits, checked when saving too, so that nothing is saved that could not be read back. */
function tooLarge(what: string, most?: string): never {
  throw new Error(`state has ${what}, more than a snapshot holds${most ? ` (at most ${most})` : ""}`);
}

function text(w: Writer, s: string): void {
  const b = utf8.encode(s);
  if (b.length > MAX_STRING_BYTES) tooLarge(`a string of ${b.length} bytes`, `${MAX_STRING_BYTES} bytes`);
  w.u32(b.length); w.bytes(b);
}

function write(w: Writer, v: StateValue, depth: number): void {
  if (depth > MAX_DEPTH) throw new Error("state nests too deeply to save");
  if (++w.values > MAX_VALUES) tooLarge(`more than ${MAX_VALUES} values`);
  if (v === null) return w.u8(T_NULL);
  switch (typeof v) {
    case "boolean": return w.u8(v ? T_TRUE : T_FALSE);
    case "number": w.u8(T_NUMBER); return w.f64(v);
    case "string": w.u8(T_STRING); return text(w, v);
    case "bigint": {
      const neg = v < 0n;
      let m = neg ? -v : v;
      const mag: number[] = [];
      while (m > 0n) { mag.push(Number(m & 0xffn)); m >>= 8n; }
      if (mag.length > 64) tooLarge(`an integer of ${mag.length * 8} bits`, "512 bits");
      w.u8(T_BIGINT); w.u8(neg ? 1 : 0); w.u32(mag.length); return w.bytes(Uint8Array.from(mag));
    }
  }
  if (v instanceof Uint8Array) { w.u8(T_BYTES); w.u32(v.length); return w.bytes(v); }
  if (Array.isArray(v)) {
    if (v.length > MAX_LIST_ITEMS) tooLarge(`a list of ${v.length} items`, `${MAX_LIST_ITEMS} items`);
    w.u8(T_LIST); w.u32(v.length);
    for (const item of v) write(w, item, depth + 1);
    return;
  }
  if (typeof v === "object") {
    const keys = Object.keys(v).filter((k) => v[k] !== undefined);
    if (keys.length > MAX_OBJECT_KEYS) tooLarge(`an object of ${keys.length} keys`, `${MAX_OBJECT_KEYS} keys`);
    w.u8(T_OBJECT); w.u32(keys.length);
    for (const k of keys) {
      text(w, k);
      write(w, v[k], depth + 1);
    }
    return;
  }
  throw new Error(`cannot save a value of type ${typeof v}`);
}

/** Encodes a state tree. */
export function encodeState(v: StateValue): Uint8Array {
  const w = new Writer();
  write(w, v, 0);
  return w.finish();
}

class Reader {
  private at = 0;
  private readonly dv: DataView;
  /** values decoded so far */
  values = 0;
  constructor(private readonly b: Uint8Array) { this.dv = new DataView(b.buffer, b.byteOffset, b.length); }
  get done(): boolean { return this.at === this.b.length; }
  get left(): number { return this.b.length - this.at; }
  private need(n: number): void {
    if (n < 0 || this.at + n > this.b.length) throw new SnapshotError("the snapshot's state data is truncated or corrupt");
  }
  u8(): number { this.need(1); return this.b[this.at++]; }
  u32(): number { this.need(4); const v = this.dv.getUint32(this.at, true); this.at += 4; return v; }
  f64(): number { this.need(8); const v = this.dv.getFloat64(this.at, true); this.at += 8; return v; }
  bytes(n: number): Uint8Array { this.need(n); const v = this.b.subarray(this.at, this.at + n); this.at += n; return v; }
  text(n: number): string {
    this.need(n);
    if (n > MAX_STRING_BYTES) throw new SnapshotError(`the snapshot's state data holds a string of ${n} bytes (at most ${MAX_STRING_BYTES})`);
    try { return utf8Decoder.decode(this.bytes(n)); } catch (e) {
      if (e instanceof SnapshotError) throw e;
      throw new SnapshotError("the snapshot's state data holds text that is not UTF-8");
    }
  }
}

/** A list's or object's item count, checked before anything is built for it: each item takes at least
 *  `minBytes`, so a count the bytes left cannot hold is truncated data, and a count past `max` is none of a
 *  machine's (both would otherwise build that many items before failing, if they failed at all). */
function count(r: Reader, minBytes: number, max: number, what: "a list" | "an object"): number {
  const n = r.u32();
  const of = `${what} of ${n} ${what === "a list" ? "items" : "keys"}`;
  if (n > r.left / minBytes) throw new SnapshotError(`the snapshot's state data is truncated or corrupt: ${of} in ${r.left} bytes`);
  if (n > max) throw new SnapshotError(`the snapshot's state data holds ${of} (at most ${max})`);
  return n;
}

function read(r: Reader, depth: number): StateValue {
  if (depth > MAX_DEPTH) throw new SnapshotError("the snapshot's state data nests too deeply");
  if (++r.values > MAX_VALUES) throw new SnapshotError(`the snapshot's state data holds more than ${MAX_VALUES} values`);
  const tag = r.u8();
  switch (tag) {
    case T_NULL: return null;
    case T_FALSE: return false;
    case T_TRUE: return true;
    case T_NUMBER: return r.f64();
    case T_STRING: return r.text(r.u32());
    case T_BIGINT: {
      const neg = r.u8() === 1;
      const n = r.u32();
      if (n > 64) throw new SnapshotError("the snapshot's state data holds an oversized integer");
      const mag = r.bytes(n);
      let v = 0n;
      for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(mag[i]);
      return neg ? -v : v;
    }
    case T_BYTES: return r.bytes(r.u32());
    case T_LIST: {
      // an item is at least its tag byte
      const n = count(r, 1, MAX_LIST_ITEMS, "a list");
      const out: StateValue[] = [];
      for (let i = 0; i < n; i++) out.push(read(r, depth + 1));
      return out;
    }
    case T_OBJECT: {
      // an entry is at least its key's length (4 bytes) and its value's tag byte
      const n = count(r, 5, MAX_OBJECT_KEYS, "an object");
      const out: { [k: string]: StateValue } = Object.create(null);
      for (let i = 0; i < n; i++) {
        const k = r.text(r.u32());
        out[k] = read(r, depth + 1);
      }
      return out;
    }
  }
  throw new SnapshotError(`the snapshot's state data is corrupt (unknown tag ${tag})`);
}

/** Decodes a state tree; byte arrays in it are views of `bytes`. */
export function decodeState(bytes: Uint8Array): StateValue {
  const r = new Reader(bytes);
  const v = read(r, 0);
  if (!r.done) throw new SnapshotError("the snapshot's state data has trailing bytes");
  return v;
}
