// A single-producer single-consumer byte ring in a SharedArrayBuffer: how console bytes cross between the page
// and a VM worker without one postMessage per byte.
//
// Layout (from `offset`): Int32 head (bytes ever written, owned by the producer), Int32 tail (bytes ever read,
// owned by the consumer), then `capacity` data bytes (a power of two). The counters wrap at 2^32; used =
// head - tail (mod 2^32). The producer copies bytes in first and then publishes them with Atomics.store(head); the
// consumer reads head with Atomics.load, copies, then frees the space with Atomics.store(tail). Neither side
// ever blocks here: waiting (for data or for room) is the caller's business (see protocol.ts, the doorbell).

const HEAD = 0;
const TAIL = 1;
const HEADER_BYTES = 64; // head and tail, padded to a cache line

export class ByteRing {
  readonly capacity: number;
  private readonly idx: Int32Array;
  private readonly data: Uint8Array;
  private readonly mask: number;

  /** Bytes of shared memory a ring of `capacity` data bytes takes. */
  static bytesFor(capacity: number): number { return HEADER_BYTES + capacity; }

  /** A new ring in its own SharedArrayBuffer. */
  static create(capacity: number): ByteRing {
    return new ByteRing(new SharedArrayBuffer(ByteRing.bytesFor(capacity)), 0, capacity);
  }

  /** Opens the ring stored at `offset` of `buffer` (both sides open the same buffer, each as one role). */
  constructor(readonly buffer: SharedArrayBuffer, readonly offset = 0, capacity = buffer.byteLength - offset - HEADER_BYTES) {
    if (capacity <= 0 || (capacity & (capacity - 1)) !== 0) throw new RangeError(`ring capacity must be a power of two, not ${capacity}`);
    if (offset % 8 !== 0 || offset + HEADER_BYTES + capacity > buffer.byteLength) throw new RangeError("ring does not fit its buffer");
    this.capacity = capacity;
    this.mask = capacity - 1;
    this.idx = new Int32Array(buffer, offset, 2);
    this.data = new Uint8Array(buffer, offset + HEADER_BYTES, capacity);
  }

  /** Bytes waiting to be read. */
  available(): number { return (Atomics.load(this.idx, HEAD) - Atomics.load(this.idx, TAIL)) >>> 0; }

  /** Room for writing. */
  free(): number { return this.capacity - this.available(); }

  /** Producer: copies as much of `src` as fits; returns how many bytes went in. */
  write(src: Uint8Array): number {
    const head = Atomics.load(this.idx, HEAD);
    const tail = Atomics.load(this.idx, TAIL);
    const room = this.capacity - ((head - tail) >>> 0);
    const n = Math.min(room, src.length);
    if (n === 0) return 0;
    const at = head & this.mask;
    const first = Math.min(n, this.capacity - at);
    this.data.set(src.subarray(0, first), at);
    if (n > first) this.data.set(src.subarray(first, n), 0);
    Atomics.store(this.idx, HEAD, (head + n) | 0);
    return n;
  }

  /** Consumer: takes up to `max` bytes (a fresh array, empty when there is nothing). */
  read(max = this.capacity): Uint8Array {
    const tail = Atomics.load(this.idx, TAIL);
    const head = Atomics.load(this.idx, HEAD);
    const n = Math.min(max, (head - tail) >>> 0);
    const out = new Uint8Array(n);
    if (n === 0) return out;
    const at = tail & this.mask;
    const first = Math.min(n, this.capacity - at);
    out.set(this.data.subarray(at, at + first), 0);
    if (n > first) out.set(this.data.subarray(0, n - first), first);
    Atomics.store(this.idx, TAIL, (tail + n) | 0);
    return out;
  }

  /** Consumer: drops everything waiting. */
  clear(): void { Atomics.store(this.idx, TAIL, Atomics.load(this.idx, HEAD)); }
}
