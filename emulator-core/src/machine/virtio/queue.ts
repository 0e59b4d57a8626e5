// Split virtqueues (virtio 1.x, section 2.7): the descriptor table, the driver ("available") ring and the device
// ("used") ring, all in guest RAM, laid out by the driver.
//
// Everything the guest hands us is untrusted. Ring regions are checked against RAM once, when the queue is made
// ready (their sizes follow from QueueNum); each descriptor's buffer is checked through GuestMemory.check when its
// chain is popped, and only the resulting RAM offsets are used afterwards, so a guest that rewrites a descriptor
// behind our back cannot redirect a copy. Violations throw VirtqueueError (or GuestMemoryError); the transport
// turns either into DEVICE_NEEDS_RESET.

import { GuestMemoryError, type GuestMemory } from "../guest-memory.ts";
import { SnapshotError, StateReader, type StateObject, type StateValue } from "../../snapshot/state-value.ts";

export const VIRTQ_DESC_F_NEXT = 1;
export const VIRTQ_DESC_F_WRITE = 2;
export const VIRTQ_DESC_F_INDIRECT = 4;
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;

/** Largest indirect table we accept (entries). Bounds the work one chain can cost. */
export const MAX_INDIRECT_DESCS = 1024;

/** The guest broke the virtqueue rules (loop, bad index, bad size...). */
export class VirtqueueError extends Error {}

/**
 * One popped descriptor chain: its head index and its buffers, already checked against RAM and kept as RAM
 * offsets. Device-readable buffers come first, then device-writable ones (the spec requires that order); each
 * side is addressed as one contiguous logical byte range [0, readTotal) / [0, writeTotal).
 * Reused from pop to pop, so nothing is allocated per descriptor.
 */
export class DescChain {
  head = 0;
  readCount = 0;
  writeCount = 0;
  /** total bytes in the device-readable buffers */
  readTotal = 0;
  /** total bytes in the device-writable buffers */
  writeTotal = 0;
  private rOff = new Float64Array(16);
  private rLen = new Float64Array(16);
  private wOff = new Float64Array(16);
  private wLen = new Float64Array(16);

  constructor(private readonly ram: Uint8Array) {}

  /** @internal */
  begin(head: number): void {
    this.head = head;
    this.readCount = this.writeCount = this.readTotal = this.writeTotal = 0;
  }

  /** @internal off: offset into RAM, already checked */
  add(off: number, len: number, writable: boolean): void {
    if (writable) {
      if (this.writeCount === this.wOff.length) { this.wOff = grow(this.wOff); this.wLen = grow(this.wLen); }
      this.wOff[this.writeCount] = off;
      this.wLen[this.writeCount++] = len;
      this.writeTotal += len;
    } else {
      if (this.writeCount !== 0) throw new VirtqueueError("device-readable descriptor after a device-writable one");
      if (this.readCount === this.rOff.length) { this.rOff = grow(this.rOff); this.rLen = grow(this.rLen); }
      this.rOff[this.readCount] = off;
      this.rLen[this.readCount++] = len;
      this.readTotal += len;
    }
  }

  /** Copies readable bytes [from, from + dst.length) into dst; returns the number copied (less at the end). */
  copyFrom(from: number, dst: Uint8Array): number {
    let done = 0;
    this.eachReadable(from, dst.length, (v) => { dst.set(v, done); done += v.length; });
    return done;
  }

  /** Copies src into the writable bytes starting at `at`; returns the number written (less at the end). */
  copyTo(at: number, src: Uint8Array): number {
    let done = 0;
    this.eachWritable(at, src.length, (v) => { v.set(src.subarray(done, done + v.length)); done += v.length; });
    return done;
  }

  /** A one-byte view of guest RAM at writable byte `at` (< writeTotal), which stays valid after the next pop. */
  writableByte(at: number): Uint8Array {
    let view: Uint8Array | undefined;
    this.eachWritable(at, 1, (v) => { view = v; });
    if (!view) throw new RangeError(`writable byte ${at} of ${this.writeTotal}`);
    return view;
  }

  /** Calls fn with views of guest RAM covering readable bytes [from, from + len); pos is the offset from `from`. */
  eachReadable(from: number, len: number, fn: (view: Uint8Array, pos: number) => void): void {
    walk(this.ram, this.rOff, this.rLen, this.readCount, from, len, fn);
  }

  /** Calls fn with views of guest RAM covering writable bytes [from, from + len); pos is the offset from `from`. */
  eachWritable(from: number, len: number, fn: (view: Uint8Array, pos: number) => void): void {
    walk(this.ram, this.wOff, this.wLen, this.writeCount, from, len, fn);
  }
}

function grow(a: Float64Array): Float64Array<ArrayBuffer> {
  const b = new Float64Array(a.length * 2);
  b.set(a);
  return b;
}

function walk(ram: Uint8Array, offs: Float64Array, lens: Float64Array, count: number, from: number, len: number,
              fn: (view: Uint8Array, pos: number) => void): void {
  let skip = from;
  let pos = 0;
  for (let i = 0; i < count && pos < len; i++) {
    const l = lens[i];
    if (skip >= l) { skip -= l; continue; }
    const n = Math.min(l - skip, len - pos);
    const o = offs[i] + skip;
    skip = 0;
    fn(ram.subarray(o, o + n), pos);
    pos += n;
  }
}

/** One split virtqueue. The transport owns the registers (num, addresses, ready); devices pop and push. */
export class Virtqueue {
  /** QueueNum as written by the driver */
  num = 0;
  ready = false;
  descAddr = 0n;
  driverAddr = 0n;
  deviceAddr = 0n;
  /** next avail ring slot to consume (free-running u16) */
  lastAvail = 0;
  /** our copy of used.idx (free-running u16) */
  usedIdx = 0;
  /**
   * Changes whenever the rings may have changed under a chain popped earlier (reset, QueueReady = 1, restore): a
   * device that completes a chain later checks it is still the epoch the chain was popped in (and that the queue
   * is still ready).
   */
  epoch = 0;

  private descOff = 0;
  private availOff = 0;
  private usedOff = 0;
  private readonly dv: DataView;
  /** set when RAM is shared memory: ring indices then go through Atomics (ordering with other threads) */
  private readonly u16: Uint16Array | null;

  constructor(readonly mem: GuestMemory, readonly index: number, readonly maxSize: number) {
    const b = mem.bytes;
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const shared = typeof SharedArrayBuffer !== "undefined" && b.buffer instanceof SharedArrayBuffer;
    this.u16 = shared && (b.byteOffset & 1) === 0 ? new Uint16Array(b.buffer, b.byteOffset, b.byteLength >>> 1) : null;
  }

  reset(): void {
    this.num = 0;
    this.ready = false;
    this.descAddr = this.driverAddr = this.deviceAddr = 0n;
    this.lastAvail = this.usedIdx = 0;
    this.epoch++;
  }

  /** QueueReady = 1: checks the size and the three ring regions, then starts from index 0. Throws on violation. */
  enable(): void {
    const n = this.num;
    if (!this.validSize(n)) throw new VirtqueueError(`queue ${this.index}: size ${n} is not a power of two in [1, ${this.maxSize}]`);
    [this.descOff, this.availOff, this.usedOff] = this.ringOffsets(n, this.descAddr, this.driverAddr, this.deviceAddr);
    this.lastAvail = 0;
    this.usedIdx = 0;
    this.ready = true;
    this.epoch++;
  }

  private validSize(n: number): boolean { return n > 0 && n <= this.maxSize && (n & (n - 1)) === 0; }

  /** RAM offsets of the descriptor table, avail ring and used ring of a queue of n entries; throws if outside RAM. */
  private ringOffsets(n: number, desc: bigint, driver: bigint, device: bigint): [number, number, number] {
    return [this.mem.check(desc, 16 * n), this.mem.check(driver, 6 + 2 * n), this.mem.check(device, 6 + 8 * n)];
  }

  /** The registers and ring positions. (Chains popped and not yet pushed belong to the device's state.) */
  saveState(): StateObject {
    return {
      num: this.num, ready: this.ready, descAddr: this.descAddr, driverAddr: this.driverAddr, deviceAddr: this.deviceAddr,
      lastAvail: this.lastAvail, usedIdx: this.usedIdx,
    };
  }

  /**
   * Checks a saved queue as QueueNum and QueueReady would have (a ready queue's rings must lie in this RAM) and
   * returns the assignment to make, so a caller restoring several parts can check them all before changing any.
   */
  prepareRestore(state: StateValue, where: string): () => void {
    const r = new StateReader(state, where);
    const num = r.num("num", 0, this.maxSize);
    const ready = r.bool("ready");
    const descAddr = r.big("descAddr"), driverAddr = r.big("driverAddr"), deviceAddr = r.big("deviceAddr");
    const lastAvail = r.num("lastAvail", 0, 0xffff), usedIdx = r.num("usedIdx", 0, 0xffff);
    // QueueNum only ever holds 0 (after reset) or a size the transport accepted
    if (num !== 0 && !this.validSize(num)) throw new SnapshotError(`${where}.num: ${num} is not a power of two`);
    let offs: [number, number, number] = [0, 0, 0];
    if (ready) {
      if (num === 0) throw new SnapshotError(`${where}.num: a ready queue has no size`);
      try {
        offs = this.ringOffsets(num, descAddr, driverAddr, deviceAddr);
      } catch (e) {
        if (e instanceof GuestMemoryError) throw new SnapshotError(`${where}: rings outside guest RAM (${e.message})`);
        throw e;
      }
    }
    return () => {
      this.num = num;
      this.ready = ready;
      this.descAddr = descAddr; this.driverAddr = driverAddr; this.deviceAddr = deviceAddr;
      [this.descOff, this.availOff, this.usedOff] = offs;
      this.lastAvail = lastAvail;
      this.usedIdx = usedIdx;
      this.epoch++;
    };
  }

  private availIdx(): number {
    const o = this.availOff + 2;
    return this.u16 && (o & 1) === 0 ? Atomics.load(this.u16, o >>> 1) : this.dv.getUint16(o, true);
  }

  /** Number of chains the driver has made available and we have not consumed. Throws if it exceeds the size. */
  pending(): number {
    if (!this.ready) return 0;
    const n = (this.availIdx() - this.lastAvail) & 0xffff;
    if (n > this.num) throw new VirtqueueError(`queue ${this.index}: avail.idx moved ${n} entries past a ring of ${this.num}`);
    return n;
  }

  /** The driver asked not to be interrupted (avail.flags NO_INTERRUPT). */
  interruptSuppressed(): boolean {
    return (this.dv.getUint16(this.availOff, true) & VIRTQ_AVAIL_F_NO_INTERRUPT) !== 0;
  }

  /** Takes the next available chain into `c`. Returns false when none is available. Throws on a bad chain. */
  pop(c: DescChain): boolean {
    if (this.pending() === 0) return false;
    const num = this.num;
    const dv = this.dv;
    const head = dv.getUint16(this.availOff + 4 + 2 * (this.lastAvail & (num - 1)), true);
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    if (head >= num) throw new VirtqueueError(`queue ${this.index}: head index ${head} >= queue size ${num}`);
    c.begin(head);
    let i = head;
    for (let count = 1; ; count++) {
      if (count > num) throw new VirtqueueError(`queue ${this.index}: descriptor chain longer than the queue (loop?)`);
      const d = this.descOff + 16 * i;
      const flags = dv.getUint16(d + 12, true);
      const addr = dv.getBigUint64(d, true);
      const len = dv.getUint32(d + 8, true);
      if (flags & VIRTQ_DESC_F_INDIRECT) {
        if (flags & VIRTQ_DESC_F_NEXT) throw new VirtqueueError(`queue ${this.index}: indirect descriptor with NEXT set`);
        this.walkIndirect(c, addr, len);
        return true;
      }
      this.addDesc(c, addr, len, flags);
      if (!(flags & VIRTQ_DESC_F_NEXT)) return true;
      i = dv.getUint16(d + 14, true);
      if (i >= num) throw new VirtqueueError(`queue ${this.index}: next index ${i} >= queue size ${num}`);
    }
  }

  private walkIndirect(c: DescChain, addr: bigint, len: number): void {
    const n = len / 16;
    if (len === 0 || (len & 15) !== 0 || n > MAX_INDIRECT_DESCS) {
      throw new VirtqueueError(`queue ${this.index}: indirect table of ${len} bytes`);
    }
    const t = this.mem.check(addr, len);
    const dv = this.dv;
    let j = 0;
    for (let count = 1; ; count++) {
      if (count > n) throw new VirtqueueError(`queue ${this.index}: indirect chain longer than its table (loop?)`);
      const d = t + 16 * j;
      const flags = dv.getUint16(d + 12, true);
      if (flags & VIRTQ_DESC_F_INDIRECT) throw new VirtqueueError(`queue ${this.index}: nested indirect descriptor`);
      const a = dv.getBigUint64(d, true);
      const l = dv.getUint32(d + 8, true);
      this.addDesc(c, a, l, flags);
      if (!(flags & VIRTQ_DESC_F_NEXT)) return;
      j = dv.getUint16(d + 14, true);
      if (j >= n) throw new VirtqueueError(`queue ${this.index}: indirect next index ${j} >= table size ${n}`);
    }
  }

  /** Checks one descriptor's buffer and adds it to the chain. A device-writable buffer counts as written from
   *  here on (write logging for live migration: the device may fill it at any time until it pushes the chain). */
  private addDesc(c: DescChain, addr: bigint, len: number, flags: number): void {
    const off = len === 0 ? 0 : this.mem.check(addr, len);
    const writable = (flags & VIRTQ_DESC_F_WRITE) !== 0;
    if (writable && len !== 0) this.mem.markWritten(off, len);
    c.add(off, len, writable);
  }

  /**
   * For a device in DEVICE_NEEDS_RESET: pops what the driver has made available, at most one ring's worth, and
   * gives each chain that pops cleanly to `answer`, which returns the used length to push for it, or -1 to leave it
   * unanswered. A chain that breaks the rules is skipped (nothing about it can be trusted, not even its head); the
   * walk stops when the avail ring itself is invalid (avail.idx more than a ring ahead): which chains are available
   * is then unknown. Buffers are checked as by pop(). Returns the number of chains pushed; throws only what
   * `answer` throws.
   */
  drain(c: DescChain, answer: (c: DescChain) => number): number {
    let pushed = 0;
    for (let i = 0; i < this.num; i++) {
      try {
        if (this.pending() === 0) break;
      } catch {
        break;
      }
      try {
        this.pop(c);
      } catch {
        continue;
      }
      const len = answer(c);
      if (len >= 0) { this.push(c.head, len); pushed++; }
    }
    return pushed;
  }

  /** Puts the chain last popped back (it stays available for a later pop). */
  unpop(): void {
    this.lastAvail = (this.lastAvail - 1) & 0xffff;
  }

  /** Returns a chain to the driver: used ring entry {head, len written}, then used.idx. */
  push(head: number, len: number): void {
    const e = this.usedOff + 4 + 8 * (this.usedIdx & (this.num - 1));
    this.dv.setUint32(e, head, true);
    this.dv.setUint32(e + 4, len, true);
    this.mem.markWritten(e, 8);
    this.mem.markWritten(this.usedOff + 2, 2);
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
    const o = this.usedOff + 2;
    if (this.u16 && (o & 1) === 0) Atomics.store(this.u16, o >>> 1, this.usedIdx);
    else this.dv.setUint16(o, this.usedIdx, true);
  }
}
