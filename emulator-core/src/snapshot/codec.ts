// A compact binary encoding of StateValue trees (device states, the hart block, RAM pages), for snapshot files.
//
// Each value is a tag byte and its payload, little-endian: numbers as f64, strings as UTF-8 with a u32 length,
// bigints as a sign byte and magnitude bytes, byte arrays as a u32 length and the bytes, lists and objects as a
// u32 count and their items. Decoding reads untrusted bytes: every length is checked against what is left,
// nesting is bounded, and anything malformed throws SnapshotError. Byte arrays decode as views of the input
// (no copy), so a large RAM image costs nothing extra to read.

import { SnapshotError, type StateValue } from "./state-value.ts";

const T_NULL = 0, T_FALSE = 1, T_TRUE = 2, T_NUMBER = 3, T_STRING = 4, T_BIGINT = 5, T_BYTES = 6, T_LIST = 7, T_OBJECT = 8;
const MAX_DEPTH = 64;

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/** Grows as it is written; byte arrays are kept by reference and copied once, at the end. */
class Writer {
  private chunks: Uint8Array[] = [];
  private buf = new Uint8Array(4096);
  private dv = new DataView(this.buf.buffer);
  private at = 0;
  private total = 0;

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

function write(w: Writer, v: StateValue, depth: number): void {
  if (depth > MAX_DEPTH) throw new Error("state nests too deeply to save");
  if (v === null) return w.u8(T_NULL);
  switch (typeof v) {
    case "boolean": return w.u8(v ? T_TRUE : T_FALSE);
    case "number": w.u8(T_NUMBER); return w.f64(v);
    case "string": { const b = utf8.encode(v); w.u8(T_STRING); w.u32(b.length); return w.bytes(b); }
    case "bigint": {
      const neg = v < 0n;
      let m = neg ? -v : v;
      const mag: number[] = [];
      while (m > 0n) { mag.push(Number(m & 0xffn)); m >>= 8n; }
      w.u8(T_BIGINT); w.u8(neg ? 1 : 0); w.u32(mag.length); return w.bytes(Uint8Array.from(mag));
    }
  }
  if (v instanceof Uint8Array) { w.u8(T_BYTES); w.u32(v.length); return w.bytes(v); }
  if (Array.isArray(v)) {
    w.u8(T_LIST); w.u32(v.length);
    for (const item of v) write(w, item, depth + 1);
    return;
  }
  if (typeof v === "object") {
    const keys = Object.keys(v).filter((k) => v[k] !== undefined);
    w.u8(T_OBJECT); w.u32(keys.length);
    for (const k of keys) {
      const b = utf8.encode(k);
      w.u32(b.length); w.bytes(b);
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
  constructor(private readonly b: Uint8Array) { this.dv = new DataView(b.buffer, b.byteOffset, b.length); }
  get done(): boolean { return this.at === this.b.length; }
  private need(n: number): void {
    if (n < 0 || this.at + n > this.b.length) throw new SnapshotError("the snapshot's state data is truncated or corrupt");
  }
  u8(): number { this.need(1); return this.b[this.at++]; }
  u32(): number { this.need(4); const v = this.dv.getUint32(this.at, true); this.at += 4; return v; }
  f64(): number { this.need(8); const v = this.dv.getFloat64(this.at, true); this.at += 8; return v; }
  bytes(n: number): Uint8Array { this.need(n); const v = this.b.subarray(this.at, this.at + n); this.at += n; return v; }
  text(n: number): string {
    try { return utf8Decoder.decode(this.bytes(n)); } catch (e) {
      if (e instanceof SnapshotError) throw e;
      throw new SnapshotError("the snapshot's state data holds text that is not UTF-8");
    }
  }
}

function read(r: Reader, depth: number): StateValue {
  if (depth > MAX_DEPTH) throw new SnapshotError("the snapshot's state data nests too deeply");
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
      const n = r.u32();
      const out: StateValue[] = [];
      // every item takes at least one byte, so a huge count fails on the bytes, not on memory
      for (let i = 0; i < n; i++) out.push(read(r, depth + 1));
      return out;
    }
    case T_OBJECT: {
      const n = r.u32();
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
