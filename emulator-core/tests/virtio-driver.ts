// Test scaffolding shared by the virtio tests: guest RAM between two guard regions, an interrupt line that records
// its level, and a minimal virtio driver that works the MMIO registers and lays out rings in RAM by hand.
// RAM sits between two guard regions of 0xA5 bytes inside one buffer, so any access outside RAM would show up in
// the guards (writes) or in what the device hands its backends (reads).

import { expect } from "vitest";
import { GuestMemory, type IrqLine } from "../src/machine/guest-memory.ts";
import {
  VirtioMmio, REG, STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_FEATURES_OK, STATUS_DRIVER_OK, type VirtioDevice,
} from "../src/machine/virtio/mmio.ts";
import { VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_INDIRECT } from "../src/machine/virtio/queue.ts";

export const RAM_BASE = 0x8000_0000n;
export const RAM_SIZE = 1 << 20;
export const GUARD = 4096;
export const GUARD_BYTE = 0xa5;

export interface RamOptions {
  /** back RAM with a SharedArrayBuffer (as in the browser) */
  shared?: boolean;
  /** alloc() hands out addresses below RAM_BASE + allocLimit only (default: all of RAM) */
  allocLimit?: number;
}

export class Ram {
  readonly all: Uint8Array;
  readonly mem: GuestMemory;
  private next = RAM_BASE + 0x1000n;
  private readonly limit: bigint;

  constructor(readonly opts: RamOptions = {}) {
    const buf = opts.shared ? new SharedArrayBuffer(RAM_SIZE + 2 * GUARD) : new ArrayBuffer(RAM_SIZE + 2 * GUARD);
    this.all = new Uint8Array(buf);
    this.all.fill(GUARD_BYTE);
    this.all.fill(0, GUARD, GUARD + RAM_SIZE);
    this.mem = new GuestMemory(buf, GUARD, RAM_SIZE, RAM_BASE);
    this.limit = RAM_BASE + BigInt(opts.allocLimit ?? RAM_SIZE);
  }

  /** Another RAM with the same contents and allocation point: what a restored machine starts from. */
  copy(): Ram {
    const r = new Ram(this.opts);
    r.all.set(this.all);
    r.next = this.next;
    return r;
  }

  alloc(size: number, align = 16): bigint {
    const a = BigInt(align);
    const p = (this.next + a - 1n) / a * a;
    this.next = p + BigInt(size);
    if (this.next > this.limit) throw new Error("test RAM exhausted");
    return p;
  }

  guardsIntact(): boolean {
    for (let i = 0; i < GUARD; i++) if (this.all[i] !== GUARD_BYTE || this.all[GUARD + RAM_SIZE + i] !== GUARD_BYTE) return false;
    return true;
  }

  /** fills page `p` (index into RAM) with a byte */
  fillPage(p: number, v: number): void { this.page(p).fill(v); }
  page(p: number): Uint8Array { return this.mem.view(RAM_BASE + BigInt(p * 4096), 4096); }
}

export class FakeIrq implements IrqLine {
  level = false;
  edges = 0;
  set(level: boolean): void { if (level !== this.level) this.edges++; this.level = level; }
}

export interface Buf { addr: bigint; len: number; write?: boolean }
export interface QueueLayout { num: number; desc: bigint; avail: bigint; used: bigint; availIdx: number; nextDesc: number; lastUsed: number }

/** A minimal virtio driver over the MMIO registers. */
export class Driver {
  readonly q: QueueLayout[] = [];
  constructor(readonly dev: VirtioMmio, readonly ram: Ram) {}

  /** The same driver (queue layouts and positions) carried over to another device and RAM, as after a restore. */
  moveTo(dev: VirtioMmio, ram: Ram): this {
    const d = new (this.constructor as new (dev: VirtioMmio, ram: Ram) => this)(dev, ram);
    this.q.forEach((l, i) => { d.q[i] = { ...l }; });
    return d;
  }

  r(off: number): number { return this.dev.read(off, 4) >>> 0; }
  w(off: number, v: number): void { this.dev.write(off, 4, v >>> 0); }
  get status(): number { return this.r(REG.Status); }

  deviceFeatures(): bigint {
    this.w(REG.DeviceFeaturesSel, 1);
    const hi = this.r(REG.DeviceFeatures);
    this.w(REG.DeviceFeaturesSel, 0);
    return (BigInt(hi) << 32n) | BigInt(this.r(REG.DeviceFeatures));
  }

  /** reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK; returns the status read back */
  negotiate(pick: (offered: bigint) => bigint = (f) => f): number {
    this.w(REG.Status, 0);
    this.w(REG.Status, STATUS_ACKNOWLEDGE);
    this.w(REG.Status, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    const f = pick(this.deviceFeatures());
    this.w(REG.DriverFeaturesSel, 0);
    this.w(REG.DriverFeatures, Number(f & 0xffffffffn));
    this.w(REG.DriverFeaturesSel, 1);
    this.w(REG.DriverFeatures, Number(f >> 32n));
    this.w(REG.Status, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
    return this.status;
  }

  setupQueue(index: number, num: number): QueueLayout {
    const desc = this.ram.alloc(16 * num, 16);
    const avail = this.ram.alloc(6 + 2 * num, 2);
    const used = this.ram.alloc(6 + 8 * num, 4);
    this.w(REG.QueueSel, index);
    expect(this.r(REG.QueueReady)).toBe(0);
    expect(this.r(REG.QueueNumMax)).toBeGreaterThanOrEqual(num);
    this.w(REG.QueueNum, num);
    this.w(REG.QueueDescLow, Number(desc & 0xffffffffn)); this.w(REG.QueueDescHigh, Number(desc >> 32n));
    this.w(REG.QueueDriverLow, Number(avail & 0xffffffffn)); this.w(REG.QueueDriverHigh, Number(avail >> 32n));
    this.w(REG.QueueDeviceLow, Number(used & 0xffffffffn)); this.w(REG.QueueDeviceHigh, Number(used >> 32n));
    this.w(REG.QueueReady, 1);
    const l = { num, desc, avail, used, availIdx: 0, nextDesc: 0, lastUsed: 0 };
    this.q[index] = l;
    return l;
  }

  driverOk(): void { this.w(REG.Status, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK); }

  writeDesc(table: bigint, i: number, addr: bigint, len: number, flags: number, next: number): void {
    const m = this.ram.mem;
    const d = table + BigInt(16 * i);
    m.setU64(d, addr); m.setU32(d + 8n, len); m.setU16(d + 12n, flags); m.setU16(d + 14n, next);
  }

  /** Publishes a head index in the avail ring (no kick). */
  publish(qi: number, head: number): void {
    const q = this.q[qi];
    this.ram.mem.setU16(q.avail + 4n + BigInt(2 * (q.availIdx % q.num)), head);
    q.availIdx = (q.availIdx + 1) & 0xffff;
    this.ram.mem.setU16(q.avail + 2n, q.availIdx);
  }

  /** Writes a chain (direct, or as one indirect table) and publishes it; returns the head index. */
  add(qi: number, bufs: Buf[], opts: { indirect?: boolean } = {}): number {
    const q = this.q[qi];
    if (opts.indirect) {
      const table = this.ram.alloc(16 * bufs.length, 16);
      bufs.forEach((b, i) => this.writeDesc(table, i, b.addr, b.len,
        (b.write ? VIRTQ_DESC_F_WRITE : 0) | (i < bufs.length - 1 ? VIRTQ_DESC_F_NEXT : 0), i + 1));
      const head = q.nextDesc;
      q.nextDesc = (q.nextDesc + 1) % q.num;
      this.writeDesc(q.desc, head, table, 16 * bufs.length, VIRTQ_DESC_F_INDIRECT, 0);
      this.publish(qi, head);
      return head;
    }
    const idx = bufs.map(() => { const i = q.nextDesc; q.nextDesc = (q.nextDesc + 1) % q.num; return i; });
    bufs.forEach((b, i) => this.writeDesc(q.desc, idx[i], b.addr, b.len,
      (b.write ? VIRTQ_DESC_F_WRITE : 0) | (i < bufs.length - 1 ? VIRTQ_DESC_F_NEXT : 0), idx[i + 1] ?? 0));
    this.publish(qi, idx[0]);
    return idx[0];
  }

  kick(qi: number): void { this.w(REG.QueueNotify, qi); }

  /** Used entries since the last call. */
  used(qi: number): { id: number; len: number }[] {
    const q = this.q[qi];
    const m = this.ram.mem;
    const idx = m.u16(q.used + 2n);
    const out: { id: number; len: number }[] = [];
    while (q.lastUsed !== idx) {
      const e = q.used + 4n + BigInt(8 * (q.lastUsed % q.num));
      out.push({ id: m.u32(e), len: m.u32(e + 4n) });
      q.lastUsed = (q.lastUsed + 1) & 0xffff;
    }
    return out;
  }

  ack(): number {
    const s = this.r(REG.InterruptStatus);
    this.w(REG.InterruptACK, s);
    return s;
  }
}

/** The driver plus the balloon's buffers: PFN arrays and statistics. */
export class BalloonDriver extends Driver {
  /** An array of le32 PFNs in fresh RAM. */
  pfns(list: number[]): Buf {
    const a = this.ram.alloc(4 * Math.max(1, list.length), 4);
    list.forEach((p, i) => this.ram.mem.setU32(a + BigInt(4 * i), p >>> 0));
    return { addr: a, len: 4 * list.length };
  }

  /** Sends PFNs through inflateq or deflateq; returns the used entries. */
  send(qi: number, list: number[], opts: { indirect?: boolean } = {}): { id: number; len: number }[] {
    this.add(qi, [this.pfns(list)], opts);
    this.kick(qi);
    return this.used(qi);
  }

  /** A stats buffer with the given tag/value pairs (10 bytes each). */
  statsBuf(entries: [number, bigint][]): Buf {
    const a = this.ram.alloc(10 * Math.max(1, entries.length), 2);
    entries.forEach(([tag, val], i) => {
      this.ram.mem.setU16(a + BigInt(10 * i), tag);
      // le64 at an unaligned offset: two u32 halves
      this.ram.mem.setU32(a + BigInt(10 * i + 2), Number(val & 0xffffffffn));
      this.ram.mem.setU32(a + BigInt(10 * i + 6), Number(val >> 32n));
    });
    return { addr: a, len: 10 * entries.length };
  }

  readActual(): number { return this.r(REG.Config + 4); }
  readTarget(): number { return this.r(REG.Config); }
}

export interface SetupOptions<R extends Driver> extends RamOptions {
  /** set DRIVER_OK at the end (default true) */
  start?: boolean;
  /** use this RAM instead of a new one */
  ram?: Ram;
  /** a Driver subclass with device-specific helpers */
  driver?: new (dev: VirtioMmio, ram: Ram) => R;
}

/** A device behind a transport on fresh RAM, features negotiated and queues of the given sizes set up. */
export function setup<D extends VirtioDevice, R extends Driver = Driver>(device: D, queues: number[], opts: SetupOptions<R> = {}) {
  const ram = opts.ram ?? new Ram(opts);
  const irq = new FakeIrq();
  const errors: string[] = [];
  const dev = new VirtioMmio(ram.mem, irq, device, { onError: (m) => errors.push(m) });
  const drv = opts.driver ? new opts.driver(dev, ram) : new Driver(dev, ram) as R;
  expect(drv.negotiate() & STATUS_FEATURES_OK).toBe(STATUS_FEATURES_OK);
  queues.forEach((num, i) => drv.setupQueue(i, num));
  if (opts.start !== false) drv.driverOk();
  return { ram, irq, dev, drv, device, errors };
}

/** Deterministic test bytes. */
export function pattern(len: number, seed: number): Uint8Array {
  const a = new Uint8Array(len);
  for (let i = 0; i < len; i++) a[i] = (i * 7 + seed * 13 + (i >> 8)) & 0xff;
  return a;
}

/** Queues one virtio-blk request without kicking: a header, a data buffer (written for OUT, 0xee-filled and
 *  device-writable for IN) and, unless noStatus, a status byte starting at 0xff. status() reads the status byte,
 *  bytes() the data buffer. */
export function queueBlkRequest(drv: Driver, type: number, sector: bigint | number,
  opts: { data?: Uint8Array; readLen?: number; noStatus?: boolean } = {}) {
  const ram = drv.ram;
  const hdr = ram.alloc(16);
  ram.mem.setU32(hdr, type); ram.mem.setU32(hdr + 4n, 0); ram.mem.setU64(hdr + 8n, BigInt(sector));
  const bufs: Buf[] = [{ addr: hdr, len: 16 }];
  const len = opts.data?.length ?? opts.readLen ?? 0;
  const data = len ? ram.alloc(len) : 0n;
  if (opts.data) ram.mem.write(data, opts.data);
  else if (len) ram.mem.view(data, len).fill(0xee);
  if (len) bufs.push({ addr: data, len, write: !opts.data });
  const st = ram.alloc(1, 1);
  ram.mem.setU8(st, 0xff);
  if (!opts.noStatus) bufs.push({ addr: st, len: 1, write: true });
  const head = drv.add(0, bufs);
  return { head, st, data, len, status: () => ram.mem.u8(st), bytes: () => ram.mem.view(data, len).slice() };
}
