// virtio-blk (device ID 2), one request queue. Spec section 5.2.
//
// A request is a chain: 16-byte header {type u32, reserved u32, sector u64} and, for writes, the data (device-
// readable); then, for reads, the data buffers and finally one status byte (device-writable). With a synchronous
// backend, data goes straight between guest RAM views and the backend, with no intermediate copy, and every request
// completes during the notify.
//
// Asynchronous backends (BlockBackend.async, e.g. IndexedDB or OPFS in a browser) return promises. A request is
// then in flight until its promise settles: the status byte, the used element and the interrupt come later, in
// whatever order the backend finishes (the spec does not require in-order completion). A FLUSH waits for every
// write issued before it. Such backends get private buffers, copied from guest RAM when a write is issued and into
// it when a read completes, so a completion that arrives after the driver reset the device (or the queue was
// re-enabled, or the transport needs a reset) is dropped without touching the queues or guest RAM.
// A snapshot cannot hold a request in flight: the machine awaits whenIdle() first.
//
// When the transport enters DEVICE_NEEDS_RESET (anything the guest gets wrong), the driver's requests are completed
// with VIRTIO_BLK_S_IOERR as far as that is safe (failRequests), so that a driver that ignores NEEDS_RESET, like
// Linux 6.1's, fails its I/O instead of waiting forever:
// - requests in flight with an asynchronous backend are answered at once: IOERR in their status byte (a RAM
//   offset checked when the chain was popped) and a used element (the used ring was checked against RAM when the
//   queue was made ready). Their backend completion is dropped later: a read's data never reaches guest RAM.
//   (A backend that returns promises without declaring itself async was handed views of guest RAM, and may still
//   fill them: its requests are answered with IOERR when they settle instead.)
// - chains the driver published but the device had not taken yet, and the ones it publishes and notifies while the
//   device stays failed, are popped with the usual checks and answered with IOERR without reaching the backend.
// Not answered, because nothing about them can be trusted: the chain that made the device fail, a chain that fails
// the checks or has no status byte, anything after an avail.idx that ran more than a ring ahead (which chains are
// available is then unknown), and requests of a queue the driver disabled or re-enabled since they were popped
// (their buffers may have been reused; as after a reset).

import type { BlockBackend } from "./backends.ts";
import { VIRTIO_ID_BLOCK, type VirtioDevice, type VirtioTransport } from "./mmio.ts";
import { DescChain, VirtqueueError, type Virtqueue } from "./queue.ts";
import { SnapshotError, StateReader, type StateValue } from "../../snapshot/state-value.ts";

export const VIRTIO_BLK_F_SEG_MAX = 1n << 2n;
export const VIRTIO_BLK_F_RO = 1n << 5n;
export const VIRTIO_BLK_F_FLUSH = 1n << 9n;

export const VIRTIO_BLK_T_IN = 0;
export const VIRTIO_BLK_T_OUT = 1;
export const VIRTIO_BLK_T_FLUSH = 4;
export const VIRTIO_BLK_T_GET_ID = 8;

export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;

const SECTOR = 512;
const ID_BYTES = 20;

export interface VirtioBlkOptions {
  /** refuse writes and offer VIRTIO_BLK_F_RO (default: backend.readOnly ?? false) */
  readOnly?: boolean;
  /** answer to VIRTIO_BLK_T_GET_ID (up to 20 bytes of ASCII; default "tabvisor") */
  serial?: string;
  /** seg_max advertised in config (default 126) */
  segMax?: number;
  /** called after an asynchronous request settled and may have interrupted the guest (an idle VM should wake up) */
  onAsyncCompletion?: () => void;
}

/** A request between its pop and its completion. */
interface BlkRequest {
  head: number;
  /** the queue's epoch at pop time; a completion in another epoch is dropped */
  epoch: number;
  type: number;
  /** the status byte in guest RAM */
  status: Uint8Array;
  /** bytes written into the chain before the status byte, on success */
  written: number;
  /** bytes moved to or from the disk (statistics) */
  moved: number;
  /** copies a private read buffer into the guest's buffers (asynchronous backends) */
  deliver?: () => void;
  /** the RAM views deliver() fills */
  views?: Uint8Array[];
  /** answered with IOERR when the device failed; the backend's completion is dropped */
  aborted?: boolean;
  /** the device failed while a backend without private buffers had the request: answer IOERR when it settles */
  failOnSettle?: boolean;
}

export class VirtioBlk implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_BLOCK;
  readonly features: bigint;
  readonly queueCount = 1;
  readonly config = new Uint8Array(64);
  readonly readOnly: boolean;

  // stats (never reset; the dashboard reads them)
  reads = 0;
  writes = 0;
  flushes = 0;
  readBytes = 0;
  writeBytes = 0;
  /** requests completed with IOERR or UNSUPP */
  errors = 0;

  private t: VirtioTransport | null = null;
  private chain: DescChain | null = null;
  private readonly hdr = new Uint8Array(16);
  private readonly hdrView = new DataView(this.hdr.buffer);
  private readonly id = new Uint8Array(ID_BYTES);
  private readonly onAsyncCompletion?: () => void;
  private inflightCount = 0;
  /** requests with an asynchronous backend, until their promise settles */
  private readonly withBackend = new Set<BlkRequest>();
  private idleWaiters: (() => void)[] = [];
  /** settling writes; a FLUSH waits for the ones issued before it */
  private readonly writesInFlight = new Set<Promise<number>>();

  constructor(readonly backend: BlockBackend, opts: VirtioBlkOptions = {}) {
    if (backend.size % SECTOR !== 0) throw new Error(`disk size ${backend.size} is not a multiple of ${SECTOR}`);
    this.readOnly = opts.readOnly ?? backend.readOnly ?? false;
    this.features = VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_FLUSH | (this.readOnly ? VIRTIO_BLK_F_RO : 0n);
    const cv = new DataView(this.config.buffer);
    cv.setBigUint64(0, BigInt(backend.size / SECTOR), true); // capacity
    cv.setUint32(12, opts.segMax ?? 126, true);              // seg_max
    const serial = opts.serial ?? "tabvisor";
    for (let i = 0; i < Math.min(serial.length, ID_BYTES); i++) this.id[i] = serial.charCodeAt(i) & 0x7f;
    this.onAsyncCompletion = opts.onAsyncCompletion;
  }

  /** capacity in 512-byte sectors */
  get capacity(): number { return this.backend.size / SECTOR; }

  /** requests whose backend operation has not settled (including ones a reset orphaned) */
  get inflight(): number { return this.inflightCount; }

  /** Resolves once no request is in flight. */
  whenIdle(): Promise<void> {
    if (this.inflightCount === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  attach(t: VirtioTransport): void {
    this.t = t;
    this.chain = new DescChain(t.mem.bytes);
  }

  /** Requests in flight stay with the backend; their completions find the queue in a new epoch and are dropped. */
  reset(): void {}

  queueNotify(queue: number): void {
    const t = this.t!;
    const vq = t.queue(queue);
    const c = this.chain!;
    let n = 0;
    let done = 0;
    try {
      // At most one ring's worth per notify (a driver that keeps adding notifies again), and never more requests
      // in flight than the ring has entries: a driver cannot have more outstanding unless it reuses heads.
      while (n < vq.num && this.inflightCount < vq.num && vq.pop(c)) {
        n++;
        if (this.request(vq, c)) done++;
      }
    } finally {
      if (done > 0) t.usedBuffers(vq);
    }
  }

  /** Starts one request; returns true when it completed at once (used element pushed), false when in flight. */
  private request(vq: Virtqueue, c: DescChain): boolean {
    if (c.readTotal < 16) throw new VirtqueueError(`virtio-blk: request header of ${c.readTotal} bytes`);
    if (c.writeTotal < 1) throw new VirtqueueError("virtio-blk: request without a status byte");
    c.copyFrom(0, this.hdr);
    const type = this.hdrView.getUint32(0, true);
    const sector = this.hdrView.getUint32(8, true) + this.hdrView.getUint32(12, true) * 0x1_0000_0000;
    const req: BlkRequest = { head: c.head, epoch: vq.epoch, type, status: c.writableByte(c.writeTotal - 1), written: 0, moved: 0 };
    let result: number | Promise<number>;
    try {
      result = this.execute(req, c, sector);
    } catch {
      result = VIRTIO_BLK_S_IOERR; // the backend failed (host I/O error)
    }
    if (typeof result === "number") {
      this.complete(vq, req, result);
      return true;
    }
    this.inflightCount++;
    this.withBackend.add(req);
    void result.then((s) => this.settle(vq, req, s));
    return false;
  }

  /** Issues the I/O; returns the status, or a promise of it when the backend completes later. */
  private execute(req: BlkRequest, c: DescChain, sector: number): number | Promise<number> {
    const b = this.backend;
    const pos = sector * SECTOR;
    switch (req.type) {
      case VIRTIO_BLK_T_IN: {
        const len = c.writeTotal - 1;
        if (len % SECTOR !== 0 || pos + len > b.size) return VIRTIO_BLK_S_IOERR;
        req.written = req.moved = len;
        return settled(this.readInto(req, c, pos, len));
      }
      case VIRTIO_BLK_T_OUT: {
        const len = c.readTotal - 16;
        if (this.readOnly || len % SECTOR !== 0 || pos + len > b.size) return VIRTIO_BLK_S_IOERR;
        req.moved = len;
        const result = settled(this.writeFrom(c, pos, len));
        if (typeof result !== "number") {
          this.writesInFlight.add(result);
          void result.then(() => this.writesInFlight.delete(result));
        }
        return result;
      }
      case VIRTIO_BLK_T_FLUSH:
        return settled(this.flushAfterWrites());
      case VIRTIO_BLK_T_GET_ID:
        req.written = c.copyTo(0, this.id.subarray(0, Math.min(ID_BYTES, c.writeTotal - 1)));
        return VIRTIO_BLK_S_OK;
      default:
        return VIRTIO_BLK_S_UNSUPP;
    }
  }

  private readInto(req: BlkRequest, c: DescChain, pos: number, len: number): void | PromiseLike<unknown> {
    const b = this.backend;
    if (b.async) {
      const buf = new Uint8Array(len);
      const views: Uint8Array[] = [];
      c.eachWritable(0, len, (v) => views.push(v));
      req.views = views;
      req.deliver = () => { let at = 0; for (const v of views) { v.set(buf.subarray(at, at + v.length)); at += v.length; } };
      return b.read(pos, buf);
    }
    let waits: PromiseLike<unknown>[] | undefined;
    c.eachWritable(0, len, (v, p) => { const r = b.read(pos + p, v); if (r) (waits ??= []).push(r); });
    return waits && Promise.all(waits);
  }

  private writeFrom(c: DescChain, pos: number, len: number): void | PromiseLike<unknown> {
    const b = this.backend;
    if (b.async) {
      const buf = new Uint8Array(len);
      c.copyFrom(16, buf);
      return b.write(pos, buf);
    }
    let waits: PromiseLike<unknown>[] | undefined;
    c.eachReadable(16, len, (v, p) => { const r = b.write(pos + p, v); if (r) (waits ??= []).push(r); });
    return waits && Promise.all(waits);
  }

  /** A flush covers the writes completed before it: wait for the ones still settling. */
  private flushAfterWrites(): void | PromiseLike<unknown> {
    if (this.readOnly) return;
    if (this.writesInFlight.size === 0) return this.backend.flush();
    return Promise.all(this.writesInFlight).then(() => this.backend.flush());
  }

  /** Counts the request, writes its status byte and pushes its used element. */
  private complete(vq: Virtqueue, req: BlkRequest, status: number): void {
    this.count(req, status);
    if (status === VIRTIO_BLK_S_OK) req.deliver?.();
    req.status[0] = status;
    // a late completion writes the buffers popped earlier: they count as written now too (write logging)
    const mem = this.t?.mem;
    if (mem && req.deliver) for (const v of req.views ?? []) mem.markWritten(v.byteOffset - mem.bytes.byteOffset, v.length);
    if (mem) mem.markWritten(req.status.byteOffset - mem.bytes.byteOffset, 1);
    vq.push(req.head, status === VIRTIO_BLK_S_OK ? req.written + 1 : 1);
  }

  private count(req: BlkRequest, status: number): void {
    if (status !== VIRTIO_BLK_S_OK) { this.errors++; return; }
    if (req.type === VIRTIO_BLK_T_IN) { this.reads++; this.readBytes += req.moved; }
    else if (req.type === VIRTIO_BLK_T_OUT) { this.writes++; this.writeBytes += req.moved; }
    else if (req.type === VIRTIO_BLK_T_FLUSH) this.flushes++;
  }

  /** An asynchronous request finished: complete it if its queue is still the one it came from. */
  private settle(vq: Virtqueue, req: BlkRequest, status: number): void {
    this.inflightCount--;
    this.withBackend.delete(req);
    const t = this.t!;
    if (req.aborted) {
      // answered with IOERR when the device failed (and counted then)
    } else if (req.epoch === vq.epoch && vq.ready && (t.running || req.failOnSettle)) {
      this.complete(vq, req, req.failOnSettle ? VIRTIO_BLK_S_IOERR : status);
      t.usedBuffers(vq);
    } else {
      this.count(req, status); // the disk did the work even though the guest never hears of it
    }
    this.resume(vq);
    this.onAsyncCompletion?.();
    if (this.inflightCount === 0) for (const wake of this.idleWaiters.splice(0)) wake();
  }

  /**
   * The transport needs a reset: answer the requests in flight and the published ones with IOERR (see the top of
   * this file for what is and is not answered).
   */
  failRequests(): void {
    const t = this.t!;
    const vq = t.queue(0);
    if (!vq.ready) return; // the driver took the queue away: its rings and buffers are no longer the device's
    let n = 0;
    for (const req of this.withBackend) {
      if (req.aborted || req.epoch !== vq.epoch) continue;
      if (!this.backend.async) {
        // it was handed views of guest RAM and may still fill them: answer once it is done with them
        req.failOnSettle = true;
        continue;
      }
      req.aborted = true;
      this.complete(vq, req, VIRTIO_BLK_S_IOERR);
      n++;
    }
    const mem = t.mem;
    n += vq.drain(this.chain!, (c) => {
      if (c.writeTotal < 1) return -1;
      const status = c.writableByte(c.writeTotal - 1);
      status[0] = VIRTIO_BLK_S_IOERR;
      mem.markWritten(status.byteOffset - mem.bytes.byteOffset, 1);
      this.errors++;
      return 1;
    });
    if (n > 0) t.usedBuffers(vq);
  }

  /** A request slot came free: take what the driver published while all of them were taken. */
  private resume(vq: Virtqueue): void {
    const t = this.t!;
    if (!t.running || !vq.ready) return;
    try {
      if (vq.pending() > 0) this.queueNotify(vq.index);
    } catch (e) {
      t.fail(e);
    }
  }

  /** Statistics, and the disk's identity (a snapshot of another disk is refused). */
  saveState(): StateValue {
    if (this.inflightCount > 0) throw new Error(`virtio-blk: ${this.inflightCount} requests in flight (await whenIdle() first)`);
    return {
      capacity: this.capacity, readOnly: this.readOnly,
      reads: this.reads, writes: this.writes, flushes: this.flushes,
      readBytes: this.readBytes, writeBytes: this.writeBytes, errors: this.errors,
    };
  }

  restoreState(state: StateValue): void {
    const r = new StateReader(state, "virtio-blk");
    const capacity = r.num("capacity", 0);
    if (capacity !== this.capacity) throw new SnapshotError(`virtio-blk.capacity: the snapshot's disk has ${capacity} sectors, this one ${this.capacity}`);
    if (r.bool("readOnly") !== this.readOnly) throw new SnapshotError("virtio-blk.readOnly: differs from this disk");
    const [reads, writes, flushes, readBytes, writeBytes, errors] =
      ["reads", "writes", "flushes", "readBytes", "writeBytes", "errors"].map((k) => r.num(k, 0));
    this.reads = reads; this.writes = writes; this.flushes = flushes;
    this.readBytes = readBytes; this.writeBytes = writeBytes; this.errors = errors;
  }
}

/** The status of a backend call: OK at once for a synchronous one, else a promise of OK or IOERR. */
function settled(p: void | PromiseLike<unknown>): number | Promise<number> {
  if (!p) return VIRTIO_BLK_S_OK;
  return Promise.resolve(p).then(() => VIRTIO_BLK_S_OK, () => VIRTIO_BLK_S_IOERR);
}
