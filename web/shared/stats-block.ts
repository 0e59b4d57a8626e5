// A VM's counters in shared memory, so the page's meters cost no message. The worker publishes its VmStats' numbers
// here as its run loop turns (at most every PUBLISH_MS, and at least once a second, when its longest sleep ends); the
// page reads them once a second. Before this, the page asked every worker for its stats through comlink each second:
// a message each way, a structured clone, a wake-up of the worker and garbage on both sides, for every VM, idle or not.
//
// Layout: an Int32Array [SEQ, GEN, SLEEPING, -] and then a Float64Array of the fields below (NaN: the field is absent).
//   SEQ   a sequence lock: odd while the worker writes, so a reader that saw it odd, or saw it move, reads again.
//   GEN   bumped whenever a field that is not a number here changed (the state, why the guest stopped, how it
//         started, the disk's problem or persistence, the last hold, whether the machine has a disk, a balloon or a
//         JIT): the page then fetches the whole VmStats once.
//   SLEEPING  1 while the worker's loop sleeps in Atomics.wait (an idle guest: it publishes just before): such a
//         worker is alive however old its block, and it is not woken to say so.
//   ALIVE the worker's clock (performance.timeOrigin + now, ms) at its last publish: a worker whose block goes
//         stale for long while it is not asleep is asked through comlink instead, which is how a hung worker (one
//         whose thread never yields) is still found out.

import type { VmStats, VmDiskStats, VmBalloonStats, VmJitStats } from "./protocol.ts";

/** The worker publishes at most this often while the guest is busy (its idle sleeps end at least once a second). */
export const PUBLISH_MS = 250;

const F = {
  ALIVE: 0, AT_MS: 1, INSTRET: 2, BUSY_MS: 3, IDLE_MS: 4, THROTTLED_MS: 5, CPU_CAP: 6, UPTIME_MS: 7,
  DISK_SIZE: 8, DISK_STORED: 9, DISK_OWN: 10, DISK_SHARED: 11, DISK_READ_BYTES: 12, DISK_WRITE_BYTES: 13, DISK_READS: 14,
  DISK_WRITES: 15,
  NET_CARDS: 16, NET_RX_BYTES: 17, NET_TX_BYTES: 18, NET_RX_PKTS: 19, NET_TX_PKTS: 20,
  RAM_PAGES: 21, TARGET_PAGES: 22, ACTUAL_PAGES: 23, INFLATED_PAGES: 24, DEFLATE_ON_OOM: 25, MEM_TOTAL: 26,
  MEM_FREE: 27, MEM_AVAILABLE: 28, DISK_CACHES: 29, BALLOON_STATS_AGE: 30,
  JIT_COMPILED: 31, JIT_COMPILE_MS: 32, JIT_INSTRET: 33,
} as const;
const FIELDS = 34;
const HEADER_BYTES = 16;
export const STATS_BLOCK_BYTES = HEADER_BYTES + FIELDS * 8;

const SEQ = 0;
const GEN = 1;
const SLEEPING = 2;

const epochMs = () => performance.timeOrigin + performance.now();
const num = (v: number | undefined) => (v === undefined ? NaN : v);
const opt = (v: number) => (Number.isNaN(v) ? undefined : v);

/** What of a VmStats is not a number in the block: when it changes, GEN moves. */
function slowKey(s: VmStats): string {
  return [s.state, s.haltReason, s.exitStatus, s.startedFrom, s.startMs, s.lastHoldMs, s.disk?.persistent, s.disk?.problem,
    s.disk !== undefined, s.balloon !== undefined, s.jit !== undefined].join("\u0000");
}

export class StatsBlockWriter {
  private readonly head: Int32Array;
  private readonly f: Float64Array;
  private lastKey = "";
  private lastPublish = -Infinity;

  constructor(buffer: SharedArrayBuffer) {
    this.head = new Int32Array(buffer, 0, 3);
    this.f = new Float64Array(buffer, HEADER_BYTES, FIELDS);
  }

  /** The loop goes to sleep in Atomics.wait (true) or is back (false). */
  sleeping(on: boolean): void { Atomics.store(this.head, SLEEPING, on ? 1 : 0); }

  /** Whether a publish is due (the caller then builds the stats and calls publish). */
  due(now = performance.now()): boolean { return now - this.lastPublish >= PUBLISH_MS; }

  publish(s: VmStats): void {
    this.lastPublish = performance.now();
    const key = slowKey(s);
    const f = this.f;
    Atomics.add(this.head, SEQ, 1); // odd: writing
    f[F.ALIVE] = epochMs();
    f[F.AT_MS] = s.atMs;
    f[F.INSTRET] = s.instret;
    f[F.BUSY_MS] = s.busyMs;
    f[F.IDLE_MS] = s.idleMs;
    f[F.THROTTLED_MS] = s.throttledMs;
    f[F.CPU_CAP] = s.cpuCap;
    f[F.UPTIME_MS] = s.uptimeMs;
    const d = s.disk;
    f[F.DISK_SIZE] = num(d?.sizeBytes);
    f[F.DISK_STORED] = num(d?.storedBytes);
    f[F.DISK_OWN] = num(d?.ownBytes);
    f[F.DISK_SHARED] = num(d?.sharedBytes);
    f[F.DISK_READ_BYTES] = num(d?.readBytes);
    f[F.DISK_WRITE_BYTES] = num(d?.writeBytes);
    f[F.DISK_READS] = num(d?.reads);
    f[F.DISK_WRITES] = num(d?.writes);
    f[F.NET_CARDS] = s.net.cards;
    f[F.NET_RX_BYTES] = s.net.rxBytes;
    f[F.NET_TX_BYTES] = s.net.txBytes;
    f[F.NET_RX_PKTS] = s.net.rxPackets;
    f[F.NET_TX_PKTS] = s.net.txPackets;
    const b = s.balloon;
    f[F.RAM_PAGES] = num(b?.ramPages);
    f[F.TARGET_PAGES] = num(b?.targetPages);
    f[F.ACTUAL_PAGES] = num(b?.actualPages);
    f[F.INFLATED_PAGES] = num(b?.inflatedPages);
    f[F.DEFLATE_ON_OOM] = b?.deflateOnOom ? 1 : 0;
    f[F.MEM_TOTAL] = num(b?.memTotal);
    f[F.MEM_FREE] = num(b?.memFree);
    f[F.MEM_AVAILABLE] = num(b?.memAvailable);
    f[F.DISK_CACHES] = num(b?.diskCaches);
    f[F.BALLOON_STATS_AGE] = num(b?.statsAgeMs);
    const j = s.jit;
    f[F.JIT_COMPILED] = num(j?.compiled);
    f[F.JIT_COMPILE_MS] = num(j?.compileMs);
    f[F.JIT_INSTRET] = num(j?.instret);
    if (key !== this.lastKey) { this.lastKey = key; Atomics.add(this.head, GEN, 1); }
    Atomics.add(this.head, SEQ, 1); // even: done
  }
}

/** The page's side: reads a consistent copy of the block. */
export class StatsBlockReader {
  private readonly head: Int32Array;
  private readonly f: Float64Array;
  private readonly copy = new Float64Array(FIELDS);

  constructor(buffer: SharedArrayBuffer) {
    this.head = new Int32Array(buffer, 0, 3);
    this.f = new Float64Array(buffer, HEADER_BYTES, FIELDS);
  }

  /** The worker's loop sleeps in Atomics.wait: it is alive, and its last publish is current. */
  get asleep(): boolean { return Atomics.load(this.head, SLEEPING) === 1; }

  /** GEN: moves when the whole VmStats should be fetched again. */
  get gen(): number { return Atomics.load(this.head, GEN); }

  /** ms since the worker last published (Infinity before its first). */
  age(): number {
    if (!this.snapshot()) return Infinity;
    return epochMs() - this.copy[F.ALIVE];
  }

  /** `base` (the last whole VmStats, for what is not a number) with the block's numbers; undefined before the worker
   *  first published, or when the worker is writing each time it is looked at. */
  read(base: VmStats): VmStats | undefined {
    if (!this.snapshot()) return undefined;
    const c = this.copy;
    const disk: VmDiskStats | undefined = base.disk && !Number.isNaN(c[F.DISK_SIZE]) ? {
      ...base.disk,
      sizeBytes: c[F.DISK_SIZE], storedBytes: opt(c[F.DISK_STORED]), ownBytes: c[F.DISK_OWN], sharedBytes: c[F.DISK_SHARED],
      readBytes: c[F.DISK_READ_BYTES], writeBytes: c[F.DISK_WRITE_BYTES], reads: c[F.DISK_READS], writes: c[F.DISK_WRITES],
    } : base.disk;
    const balloon: VmBalloonStats | undefined = base.balloon && !Number.isNaN(c[F.RAM_PAGES]) ? {
      ramPages: c[F.RAM_PAGES], targetPages: c[F.TARGET_PAGES], actualPages: c[F.ACTUAL_PAGES], inflatedPages: c[F.INFLATED_PAGES],
      deflateOnOom: c[F.DEFLATE_ON_OOM] === 1, memTotal: opt(c[F.MEM_TOTAL]), memFree: opt(c[F.MEM_FREE]),
      memAvailable: opt(c[F.MEM_AVAILABLE]), diskCaches: opt(c[F.DISK_CACHES]), statsAgeMs: opt(c[F.BALLOON_STATS_AGE]),
    } : base.balloon;
    const jit: VmJitStats | undefined = base.jit && !Number.isNaN(c[F.JIT_COMPILED])
      ? { compiled: c[F.JIT_COMPILED], compileMs: c[F.JIT_COMPILE_MS], instret: c[F.JIT_INSTRET] } : base.jit;
    return {
      ...base,
      atMs: c[F.AT_MS], instret: c[F.INSTRET], busyMs: c[F.BUSY_MS], idleMs: c[F.IDLE_MS], throttledMs: c[F.THROTTLED_MS],
      cpuCap: c[F.CPU_CAP], uptimeMs: c[F.UPTIME_MS], disk, balloon, jit,
      net: { cards: c[F.NET_CARDS], rxBytes: c[F.NET_RX_BYTES], txBytes: c[F.NET_TX_BYTES], rxPackets: c[F.NET_RX_PKTS], txPackets: c[F.NET_TX_PKTS] },
    };
  }

  /** Copies the fields while SEQ holds still and even; false before the first publish or after a few tries. */
  private snapshot(): boolean {
    for (let tries = 0; tries < 8; tries++) {
      const before = Atomics.load(this.head, SEQ);
      if (before === 0) return false;
      if (before & 1) continue;
      this.copy.set(this.f);
      if (Atomics.load(this.head, SEQ) === before) return true;
    }
    return false;
  }
}
