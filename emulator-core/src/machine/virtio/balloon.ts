// virtio-balloon / traditional memory balloon (device ID 5). Spec section 5.5.
//
// Queues: 0 = inflateq, 1 = deflateq, 2 = statsq (VIRTIO_BALLOON_F_STATS_VQ).
// Config (little-endian): le32 num_pages at 0 (the host's target: pages it wants in the balloon, written by the
// device), le32 actual at 4 (pages the driver has in the balloon, written by the driver).
//
// - The host sets a target with setTarget(pages): num_pages changes and the config-change interrupt fires; the
//   guest's driver allocates that many pages and hands their page frame numbers (le32, 4 KiB units) to the device
//   through inflateq, or takes pages back through deflateq, and then writes `actual`.
// - Inflated pages are zeroed here, and a bitmap records which guest pages are in the balloon. (A WebAssembly.Memory
//   cannot shrink or give pages back to the OS, so in the browser the balloon moves memory between VMs'
//   budgets — the guest can no longer use it — rather than returning it to the host OS.)
// - Statistics (VIRTIO_BALLOON_F_STATS_VQ): the driver primes statsq with one device-readable buffer of
//   { le16 tag; le64 val } entries (10 bytes each, packed). The device keeps that buffer; to ask for fresh numbers
//   it returns the buffer (used length 0), and the driver answers by adding the buffer again with new values.
//   requestStats() does the asking; `stats` holds the latest answer. A buffer held when the driver takes the stats
//   queue away (QueueReady 0, then 1) is forgotten: its head means nothing in the new ring.
// - VIRTIO_BALLOON_F_DEFLATE_ON_OOM (offered unless opts.deflateOnOom is false): the guest may take pages back
//   out of the balloon rather than run out of memory. Linux then keeps balloon pages in MemTotal (they show as
//   used), instead of taking them off MemTotal.
//
// Hostile drivers: PFNs outside guest RAM are ignored and counted (invalidPfns); a chain offers at most
// MAX_PFNS_PER_CHAIN PFNs (the rest is ignored) and at most MAX_STATS statistics are read, so one request costs
// bounded work; device-writable buffers carry no data for this device and are ignored. Buffers outside RAM,
// descriptor loops and the like are caught by the virtqueue and put the device in DEVICE_NEEDS_RESET; inflate and
// deflate buffers published after that are acknowledged without being acted on (failRequests).
//
// Snapshots hold num_pages, actual, the bitmap of inflated pages, the held stats buffer's head, the latest
// statistics and the counters. statsAt is host time, meaningless in another process: a restored device dates its
// statistics to the restore.

import type { VirtioDevice, VirtioTransport } from "./mmio.ts";
import { DescChain, type Virtqueue } from "./queue.ts";
import { SnapshotError, StateReader, type StateObject, type StateValue } from "../../snapshot/state-value.ts";

export const VIRTIO_ID_BALLOON = 5;

export const VIRTIO_BALLOON_F_MUST_TELL_HOST = 1n << 0n;
export const VIRTIO_BALLOON_F_STATS_VQ = 1n << 1n;
export const VIRTIO_BALLOON_F_DEFLATE_ON_OOM = 1n << 2n;

/** Page frame numbers are in units of 4 KiB whatever the guest's page size (VIRTIO_BALLOON_PFN_SHIFT). */
export const BALLOON_PFN_SHIFT = 12;
export const BALLOON_PAGE_BYTES = 1 << BALLOON_PFN_SHIFT;

/** Statistics tags (virtio_balloon_stat.tag). Memory amounts are in bytes. */
export const BALLOON_STAT = {
  SWAP_IN: 0,
  SWAP_OUT: 1,
  MAJFLT: 2,
  MINFLT: 3,
  MEMFREE: 4,
  MEMTOT: 5,
  AVAIL: 6,
  CACHES: 7,
  HTLB_PGALLOC: 8,
  HTLB_PGFAIL: 9,
} as const;

/** Most PFNs taken from one inflate/deflate chain (Linux sends at most 256). */
export const MAX_PFNS_PER_CHAIN = 4096;
/** Most statistics entries read from one stats buffer (there are 10 tags; a driver repeating them gains nothing). */
export const MAX_STATS = 32;
const STAT_BYTES = 10;

export const INFLATEQ = 0;
export const DEFLATEQ = 1;
export const STATSQ = 2;

export interface VirtioBalloonOptions {
  /** offer VIRTIO_BALLOON_F_STATS_VQ (default true) */
  stats?: boolean;
  /** offer VIRTIO_BALLOON_F_DEFLATE_ON_OOM (default true) */
  deflateOnOom?: boolean;
}

/** The guest's last memory statistics (bytes for memory, counts for events); a field is absent if not reported. */
export interface BalloonGuestStats {
  swapIn?: number;
  swapOut?: number;
  majorFaults?: number;
  minorFaults?: number;
  memFree?: number;
  memTotal?: number;
  memAvailable?: number;
  diskCaches?: number;
  hugetlbAllocations?: number;
  hugetlbFailures?: number;
}

const STAT_FIELDS: (keyof BalloonGuestStats)[] = [
  "swapIn", "swapOut", "majorFaults", "minorFaults", "memFree", "memTotal", "memAvailable", "diskCaches",
  "hugetlbAllocations", "hugetlbFailures",
];

export class VirtioBalloon implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_BALLOON;
  readonly features: bigint;
  readonly queueCount: number;
  /** num_pages, actual, free_page_hint_cmd_id, poison_val (the last two unused: their features are not offered) */
  readonly config = new Uint8Array(16);

  /** guest RAM in 4 KiB pages */
  ramPages = 0;
  /** pages in the balloon as the device counts them (distinct valid PFNs inflated and not deflated) */
  inflatedPages = 0;
  /** the driver's latest answer, with the time (performance.now()) it arrived; undefined before the first */
  stats: BalloonGuestStats | undefined;
  statsAt: number | undefined;

  // counters (never reset)
  inflateRequests = 0;
  deflateRequests = 0;
  statsUpdates = 0;
  /** PFNs outside guest RAM, ignored */
  invalidPfns = 0;

  private t: VirtioTransport | null = null;
  private chain: DescChain | null = null;
  private bitmap = new Uint8Array(0);
  /** head of the stats buffer the device holds (to return when it wants new numbers), or -1 */
  private heldStats = -1;
  /**
   * The statsq's epoch when the buffer was taken: once the driver takes the queue away (QueueReady 0, then 1,
   * perhaps with another size) the head means nothing any more, and returning it would hand the driver a used
   * element it never published (even a head past the new size). null: held since a restore, which changes the
   * epoch; the first use adopts the queue's then (a head past the size is refused whatever the epoch).
   */
  private heldEpoch: number | null = null;
  private readonly cfg = new DataView(this.config.buffer);
  private readonly pfnBuf = new Uint8Array(4 * MAX_PFNS_PER_CHAIN);
  private readonly pfnView = new DataView(this.pfnBuf.buffer);
  private readonly statBuf = new Uint8Array(STAT_BYTES * MAX_STATS);
  private readonly statView = new DataView(this.statBuf.buffer);

  constructor(opts: VirtioBalloonOptions = {}) {
    const stats = opts.stats ?? true;
    this.features = (stats ? VIRTIO_BALLOON_F_STATS_VQ : 0n) | ((opts.deflateOnOom ?? true) ? VIRTIO_BALLOON_F_DEFLATE_ON_OOM : 0n);
    this.queueCount = stats ? 3 : 2;
  }

  attach(t: VirtioTransport): void {
    this.t = t;
    this.chain = new DescChain(t.mem.bytes);
    this.ramPages = Math.floor(t.mem.size / BALLOON_PAGE_BYTES);
    this.bitmap = new Uint8Array(Math.ceil(this.ramPages / 8));
  }

  /** The host's target (num_pages). */
  get targetPages(): number { return this.cfg.getUint32(0, true); }
  /** What the driver says is in the balloon (config `actual`). */
  get actualPages(): number { return this.cfg.getUint32(4, true); }
  /** The driver accepted DEFLATE_ON_OOM (Linux then counts balloon pages in MemTotal). */
  get deflateOnOom(): boolean { return ((this.t?.driverFeatures ?? 0n) & VIRTIO_BALLOON_F_DEFLATE_ON_OOM) !== 0n; }
  /** The driver accepted the stats queue. */
  get statsEnabled(): boolean { return ((this.t?.driverFeatures ?? 0n) & VIRTIO_BALLOON_F_STATS_VQ) !== 0n && this.queueCount > STATSQ; }

  /** Asks the guest to hold `pages` 4 KiB pages in the balloon (clamped to guest RAM); 0 gives all back. */
  setTarget(pages: number): void {
    const p = Math.max(0, Math.min(this.ramPages, Math.floor(Number.isFinite(pages) ? pages : 0)));
    if (p === this.targetPages) return;
    this.cfg.setUint32(0, p, true);
    this.t?.configChanged();
  }

  /** Whether the page at guest physical address `addr` is in the balloon. */
  isInflated(addr: bigint): boolean {
    const mem = this.t?.mem;
    if (!mem) return false;
    const off = addr - mem.base;
    if (off < 0n || off >= BigInt(mem.size)) return false;
    const p = Number(off >> BigInt(BALLOON_PFN_SHIFT));
    return (this.bitmap[p >> 3] & (1 << (p & 7))) !== 0;
  }

  /**
   * Returns the held statistics buffer to the driver, which answers with fresh numbers (they land in `stats`).
   * False when there is nothing to ask with: no stats queue, the driver is not running, its answer to the
   * previous request has not come yet, or it re-enabled the queue since it gave the buffer.
   */
  requestStats(): boolean {
    const t = this.t;
    if (!t || this.heldStats < 0 || !t.running || !this.statsEnabled) return false;
    const vq = t.queue(STATSQ);
    if (!vq.ready || !this.holdsFor(vq)) return false;
    vq.push(this.heldStats, 0);
    this.heldStats = -1;
    t.usedBuffers(vq);
    return true;
  }

  writeConfig(offset: number, size: 1 | 2 | 4, value: number): void {
    // only `actual` (bytes 4..7) is the driver's to write
    for (let i = 0; i < size; i++) {
      const o = offset + i;
      if (o >= 4 && o < 8) this.config[o] = (value >>> (8 * i)) & 0xff;
    }
  }

  reset(): void {
    // A reset driver has no pages in the balloon any more, and holds no stats buffer of ours.
    this.heldStats = -1;
    this.bitmap.fill(0);
    this.inflatedPages = 0;
    this.cfg.setUint32(4, 0, true);
    this.stats = undefined;
    this.statsAt = undefined;
  }

  saveState(): StateValue {
    return {
      targetPages: this.targetPages,
      actualPages: this.actualPages,
      inflated: this.bitmap.slice(),
      heldStats: this.heldStats,
      stats: this.stats === undefined ? null : { ...this.stats } as StateObject,
      inflateRequests: this.inflateRequests, deflateRequests: this.deflateRequests,
      statsUpdates: this.statsUpdates, invalidPfns: this.invalidPfns,
    };
  }

  restoreState(state: StateValue): void {
    const r = new StateReader(state, "virtio-balloon");
    const targetPages = r.num("targetPages", 0, this.ramPages);
    const actualPages = r.num("actualPages", 0, 0xffffffff);
    const bitmap = this.readBitmap(r);
    // a stats buffer is held only with a stats queue, and its head indexes that queue
    const statsq = this.queueCount > STATSQ ? this.t?.queue(STATSQ) : undefined;
    const heldStats = r.num("heldStats", -1, statsq ? statsq.maxSize - 1 : -1);
    const stats = r.raw("stats") === null ? undefined : readStats(r.obj("stats"));
    const [inflateRequests, deflateRequests, statsUpdates, invalidPfns] =
      ["inflateRequests", "deflateRequests", "statsUpdates", "invalidPfns"].map((k) => r.num(k, 0));
    this.cfg.setUint32(0, targetPages, true);
    this.cfg.setUint32(4, actualPages, true);
    this.bitmap.set(bitmap);
    this.inflatedPages = bitmap.reduce((n, b) => n + popcount8(b), 0);
    this.heldStats = heldStats;
    this.heldEpoch = null;
    this.stats = stats;
    this.statsAt = stats === undefined ? undefined : performance.now();
    this.inflateRequests = inflateRequests; this.deflateRequests = deflateRequests;
    this.statsUpdates = statsUpdates; this.invalidPfns = invalidPfns;
  }

  /** One bit per RAM page, as attach() sized it; no bits beyond the last page. */
  private readBitmap(r: StateReader): Uint8Array {
    const bitmap = r.bytes("inflated", { length: this.bitmap.length });
    const spare = this.ramPages & 7;
    if (spare !== 0 && bitmap[bitmap.length - 1] >> spare !== 0) throw new SnapshotError("virtio-balloon.inflated: pages beyond the end of RAM");
    return bitmap;
  }

  queueNotify(queue: number): void {
    if (queue === INFLATEQ || queue === DEFLATEQ) this.pages(queue);
    else if (queue === STATSQ && this.queueCount > STATSQ) this.statsArrived();
  }

  /**
   * The transport needs a reset: acknowledge the inflate/deflate buffers the driver published (Linux waits for each
   * one uninterruptibly) without acting on their PFNs; the balloon has no error status. The stats buffer is left
   * where it is (nothing waits for it, and returning it would only bring it straight back).
   */
  failRequests(queue?: number): void {
    const t = this.t!;
    for (const qi of queue === undefined ? [INFLATEQ, DEFLATEQ] : [queue]) {
      if (qi !== INFLATEQ && qi !== DEFLATEQ) continue;
      const vq = t.queue(qi);
      if (vq.ready && vq.drain(this.chain!, () => 0) > 0) t.usedBuffers(vq);
    }
  }

  private pages(queue: number): void {
    const t = this.t!;
    const vq = t.queue(queue);
    const c = this.chain!;
    const inflate = queue === INFLATEQ;
    let n = 0;
    try {
      while (n < vq.num && vq.pop(c)) {
        const count = Math.min(MAX_PFNS_PER_CHAIN, Math.floor(c.readTotal / 4));
        c.copyFrom(0, this.pfnBuf.subarray(0, 4 * count));
        for (let i = 0; i < count; i++) this.page(this.pfnView.getUint32(4 * i, true), inflate);
        if (inflate) this.inflateRequests++;
        else this.deflateRequests++;
        vq.push(c.head, 0);
        n++;
      }
    } finally {
      if (n > 0) t.usedBuffers(vq);
    }
  }

  private page(pfn: number, inflate: boolean): void {
    const mem = this.t!.mem;
    const addr = BigInt(pfn) << BigInt(BALLOON_PFN_SHIFT);
    const off = addr - mem.base;
    if (off < 0n || off + BigInt(BALLOON_PAGE_BYTES) > BigInt(mem.size)) { this.invalidPfns++; return; }
    const p = Number(off) >>> BALLOON_PFN_SHIFT;
    const bit = 1 << (p & 7);
    const was = (this.bitmap[p >> 3] & bit) !== 0;
    if (inflate) {
      if (!was) { this.bitmap[p >> 3] |= bit; this.inflatedPages++; }
      // the guest gave the page up: drop what it held (nothing of the guest's stays behind in it)
      const o = Number(off);
      mem.bytes.fill(0, o, o + BALLOON_PAGE_BYTES);
      mem.markWritten(o, BALLOON_PAGE_BYTES);
    } else if (was) {
      this.bitmap[p >> 3] &= ~bit;
      this.inflatedPages--;
    }
  }

  /** Whether the held stats buffer belongs to the queue as it is now; forgets it when not. */
  private holdsFor(vq: Virtqueue): boolean {
    if (this.heldStats < 0) return false;
    if (this.heldEpoch === null) this.heldEpoch = vq.epoch;
    if (this.heldEpoch === vq.epoch && this.heldStats < vq.num) return true;
    this.heldStats = -1;
    return false;
  }

  private statsArrived(): void {
    const t = this.t!;
    const vq = t.queue(STATSQ);
    const c = this.chain!;
    let n = 0;
    let returned = 0;
    try {
      while (n < vq.num && vq.pop(c)) {
        n++;
        const count = Math.min(MAX_STATS, Math.floor(c.readTotal / STAT_BYTES));
        c.copyFrom(0, this.statBuf.subarray(0, STAT_BYTES * count));
        const s: BalloonGuestStats = {};
        for (let i = 0; i < count; i++) {
          const tag = this.statView.getUint16(STAT_BYTES * i, true);
          const field = STAT_FIELDS[tag];
          if (field === undefined) continue; // unknown tags are ignored (spec: the device must ignore them)
          s[field] = Number(this.statView.getBigUint64(STAT_BYTES * i + 2, true));
        }
        this.stats = s;
        this.statsAt = performance.now();
        this.statsUpdates++;
        // Keep the newest buffer to ask with next time; a driver that queues more than one gets the older back.
        if (this.holdsFor(vq)) { vq.push(this.heldStats, 0); returned++; }
        this.heldStats = c.head;
        this.heldEpoch = vq.epoch;
      }
    } finally {
      if (returned > 0) t.usedBuffers(vq);
    }
  }
}

/** Saved statistics: any of the known fields, each a number (they come from le64 values, so up to 2^64). */
function readStats(r: StateReader): BalloonGuestStats {
  const s: BalloonGuestStats = {};
  for (const f of STAT_FIELDS) if (r.has(f)) s[f] = r.num(f, 0, 2 ** 64, true);
  return s;
}

function popcount8(b: number): number {
  let n = 0;
  for (; b; b &= b - 1) n++;
  return n;
}
