// A single-producer single-consumer ring of whole Ethernet frames in a SharedArrayBuffer: how frames cross between a
// VM worker's virtio-net card and its network's switch worker without a postMessage (or a page hop) per frame.
//
// Layout (from `offset`, 64 header bytes then `capacity` data bytes, a power of two):
//   Int32 HEAD     bytes ever written (producer; published with Atomics.store after the record is in)
//   Int32 TAIL     bytes ever read (consumer)
//   Int32 DROPPED  frames the producer could not put in (ring full, or a frame too large for a record)
//   Int32 DROPPED_BYTES
// Each record is a 2-byte little-endian length followed by the frame; records wrap around the end of the data
// area byte by byte. A frame goes in whole or not at all: when there is no room it is dropped and counted (never
// blocks, never overwrites). Counters wrap at 2^32 like the console ring's (web/shared/ring.ts).

const HEAD = 0;
const TAIL = 1;
const DROPPED = 2;
const DROPPED_BYTES = 3;
const HEADER_BYTES = 64;
const LEN_BYTES = 2;
/** The largest frame a record holds (the length prefix is 16 bits). */
export const FRAME_RING_MAX_FRAME = 0xffff;

export class FrameRing {
  readonly capacity: number;
  private readonly idx: Int32Array;
  private readonly data: Uint8Array;
  private readonly mask: number;

  /** Bytes of shared memory a ring of `capacity` data bytes takes. */
  static bytesFor(capacity: number): number { return HEADER_BYTES + capacity; }

  /** A new ring in its own SharedArrayBuffer. */
  static create(capacity: number): FrameRing {
    return new FrameRing(new SharedArrayBuffer(FrameRing.bytesFor(capacity)), 0, capacity);
  }

  /** Opens the ring stored at `offset` of `buffer` (both sides open the same bytes, each in one role). */
  constructor(readonly buffer: SharedArrayBuffer, readonly offset = 0, capacity = buffer.byteLength - offset - HEADER_BYTES) {
    if (capacity < 64 || (capacity & (capacity - 1)) !== 0) throw new RangeError(`frame ring capacity must be a power of two ≥ 64, not ${capacity}`);
    if (offset % 8 !== 0 || offset + HEADER_BYTES + capacity > buffer.byteLength) throw new RangeError("frame ring does not fit its buffer");
    this.capacity = capacity;
    this.mask = capacity - 1;
    this.idx = new Int32Array(buffer, offset, 4);
    this.data = new Uint8Array(buffer, offset + HEADER_BYTES, capacity);
  }

  /** Bytes of records waiting (length prefixes included). */
  usedBytes(): number { return (Atomics.load(this.idx, HEAD) - Atomics.load(this.idx, TAIL)) >>> 0; }

  /** True when no frame waits. */
  isEmpty(): boolean { return Atomics.load(this.idx, HEAD) === Atomics.load(this.idx, TAIL); }

  /** Frames (and their bytes) the producer had to drop. */
  get dropped(): number { return Atomics.load(this.idx, DROPPED) >>> 0; }
  get droppedBytes(): number { return Atomics.load(this.idx, DROPPED_BYTES) >>> 0; }

  /** Producer: puts one frame in whole; false (and counted as dropped) when it does not fit. */
  push(frame: Uint8Array): boolean {
    const n = frame.length;
    const head = Atomics.load(this.idx, HEAD);
    const tail = Atomics.load(this.idx, TAIL);
    const room = this.capacity - ((head - tail) >>> 0);
    if (n > FRAME_RING_MAX_FRAME || LEN_BYTES + n > room) {
      Atomics.add(this.idx, DROPPED, 1);
      Atomics.add(this.idx, DROPPED_BYTES, n);
      return false;
    }
    const d = this.data, m = this.mask;
    d[head & m] = n & 0xff;
    d[(head + 1) & m] = n >>> 8;
    const at = (head + LEN_BYTES) & m;
    const first = Math.min(n, this.capacity - at);
    d.set(first === n ? frame : frame.subarray(0, first), at);
    if (n > first) d.set(frame.subarray(first), 0);
    Atomics.store(this.idx, HEAD, (head + LEN_BYTES + n) | 0);
    return true;
  }

  /** Consumer: takes the oldest frame (a fresh array), or undefined when there is none. */
  shift(): Uint8Array | undefined {
    const tail = Atomics.load(this.idx, TAIL);
    const head = Atomics.load(this.idx, HEAD);
    if (head === tail) return undefined;
    const d = this.data, m = this.mask;
    const n = d[tail & m] | (d[(tail + 1) & m] << 8);
    if (LEN_BYTES + n > ((head - tail) >>> 0)) throw new Error("frame ring corrupted: a record runs past the head");
    const at = (tail + LEN_BYTES) & m;
    const first = Math.min(n, this.capacity - at);
    const out = new Uint8Array(n);
    out.set(d.subarray(at, at + first), 0);
    if (n > first) out.set(d.subarray(0, n - first), first);
    Atomics.store(this.idx, TAIL, (tail + LEN_BYTES + n) | 0);
    return out;
  }

  /** Consumer: drops every waiting frame (not counted). */
  clear(): void { Atomics.store(this.idx, TAIL, Atomics.load(this.idx, HEAD)); }
}
