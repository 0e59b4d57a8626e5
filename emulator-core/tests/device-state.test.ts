// Device snapshots: every device is driven into a non-trivial state the way a guest would, saved, restored into a
// fresh device with the same options on a copy of guest RAM, and then must (a) save the same state again and
// (b) behave exactly like the original under the same further guest actions. Corrupt or hostile states must throw
// SnapshotError naming the field and leave the device as it was. The state goes through structuredClone on the
// way, as it does between workers, so it must be plain data that shares nothing with the device.
// Then virtio-blk with asynchronous backends: late completion, ordering of FLUSH, errors, reset while in flight.

import { describe, it, expect } from "vitest";
import { Uart16550 } from "../src/machine/uart.ts";
import { Clint } from "../src/machine/clint.ts";
import { Plic } from "../src/machine/plic.ts";
import { VirtioMmio, REG, STATUS_NEEDS_RESET, type VirtioDevice } from "../src/machine/virtio/mmio.ts";
import {
  VirtioBlk, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_IOERR,
} from "../src/machine/virtio/blk.ts";
import { VirtioNet } from "../src/machine/virtio/net.ts";
import { VirtioRng } from "../src/machine/virtio/rng.ts";
import { VirtioBalloon, BALLOON_STAT, INFLATEQ, DEFLATEQ, STATSQ } from "../src/machine/virtio/balloon.ts";
import { MemoryBlockBackend, type BlockBackend, type EntropySource } from "../src/machine/virtio/backends.ts";
import { SnapshotError, type StateValue } from "../src/snapshot/state-value.ts";
import { Ram, FakeIrq, Driver, BalloonDriver, setup, pattern, queueBlkRequest, RAM_BASE, RAM_SIZE, type Buf } from "./virtio-driver.ts";

/** a saved state taken apart field by field, to corrupt it */
type Mutable = any;

/** A deep copy of a state with one change made to it. */
function corrupt(state: StateValue, change: (s: Mutable) => void): StateValue {
  const s = structuredClone(state);
  change(s);
  return s;
}

/** Expects restore(bad) to throw a SnapshotError whose message matches `field`, and the saved state not to move. */
function expectRejected(target: { saveState(): StateValue; restoreState(s: StateValue): void }, bad: StateValue, field: RegExp): void {
  const before = target.saveState();
  let err: unknown;
  try { target.restoreState(bad); } catch (e) { err = e; }
  expect(err).toBeInstanceOf(SnapshotError);
  expect((err as Error).message).toMatch(field);
  expect(target.saveState()).toEqual(before);
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

// A virtio device under test on one side: the original, or its restored twin.
interface Side<R extends Driver = Driver> { ram: Ram; irq: FakeIrq; dev: VirtioMmio; drv: R }

/** Saves `a`, restores into `device` (built with a's options) on a copy of a's RAM; checks the state round-trips. */
function twin<R extends Driver>(a: Side<R>, device: VirtioDevice): Side<R> & { saved: StateValue } {
  const saved = a.dev.saveState();
  const ram = a.ram.copy();
  const irq = new FakeIrq();
  const dev = new VirtioMmio(ram.mem, irq, device);
  dev.restoreState(structuredClone(saved));
  expect(dev.saveState()).toEqual(saved);
  expect(a.dev.saveState()).toEqual(saved); // saving changed nothing
  expect(irq.level).toBe(a.irq.level);      // the line was driven to the restored level
  return { saved, ram, irq, dev, drv: a.drv.moveTo(dev, ram) };
}

/** What a driver can observe of a transport, per queue too. */
function registers(s: Side): number[] {
  const regs = [REG.Status, REG.InterruptStatus, REG.ConfigGeneration, REG.DeviceFeatures, REG.QueueNumMax, REG.QueueReady];
  const out = regs.map((r) => s.drv.r(r));
  for (let q = 0; q < s.dev.queues.length; q++) {
    s.drv.w(REG.QueueSel, q);
    out.push(s.drv.r(REG.QueueReady), s.drv.r(REG.QueueNumMax));
  }
  for (let o = 0; o < s.dev.device.config.length; o += 4) out.push(s.drv.r(REG.Config + o));
  return out;
}

/** The same guest actions applied to both sides; afterwards RAM, registers, lines and saved states agree. */
function expectSameBehaviour<R extends Driver>(a: Side<R>, b: Side<R>, act: (s: Side<R>) => unknown): void {
  const ra = act(a);
  const rb = act(b);
  expect(rb).toEqual(ra);
  expect(b.irq.level).toBe(a.irq.level);
  expect(firstDifference(a.ram.all, b.ram.all)).toBe(-1);
  expect(b.dev.saveState()).toEqual(a.dev.saveState());
}

describe("16550 UART state", () => {
  function drive(uart: Uart16550) {
    uart.write(3, 1, 0x80); // DLAB
    uart.write(0, 1, 0x0c); uart.write(1, 1, 0x01); // divisor
    uart.write(3, 1, 0x03); // 8N1
    uart.write(2, 1, 0x07); // FIFO enable, clear
    uart.write(4, 1, 0x0b); uart.write(7, 1, 0x5a);
    uart.write(1, 1, 0x03); // RDI | THRI: the THR-empty interrupt is owed at once
    uart.input(pattern(5000, 1));
    for (let i = 0; i < 4200; i++) uart.read(0, 1); // past the point where the FIFO compacts
    uart.write(0, 1, 0x41); uart.write(0, 1, 0x42); // still buffered output
  }
  /** What the guest sees, in order, draining the FIFO and the interrupts. */
  const guestView = (u: Uart16550) => {
    const seen = [u.read(2, 1), u.read(5, 1), u.read(3, 1), u.read(4, 1), u.read(7, 1)];
    while (u.rxPending > 0) seen.push(u.read(0, 1));
    seen.push(u.read(2, 1), u.read(2, 1), u.read(5, 1));
    u.write(3, 1, 0x83); seen.push(u.read(0, 1), u.read(1, 1)); u.write(3, 1, 0x03);
    return seen;
  };

  it("round-trips registers, the unread FIFO and the owed THR interrupt; buffered output is flushed first", () => {
    const out: number[] = [];
    const irq = new FakeIrq();
    const a = new Uart16550(irq, (b) => out.push(...b));
    drive(a);
    expect(out).toEqual([]);
    const saved = a.saveState();
    expect(out).toEqual([0x41, 0x42]); // flushed, so the snapshot neither repeats nor loses it
    const irq2 = new FakeIrq();
    const out2: number[] = [];
    const b = new Uart16550(irq2, (x) => out2.push(...x));
    b.restoreState(structuredClone(saved));
    expect(b.saveState()).toEqual(saved);
    expect(irq2.level).toBe(true);
    expect(b.rxPending).toBe(800);
    // the saved FIFO is a copy: changing it changes neither device
    (saved as Mutable).rx[0] ^= 0xff;
    expect(a.saveState()).not.toEqual(saved);
    expect(b.saveState()).toEqual(a.saveState());
    a.input(pattern(3, 9)); b.input(pattern(3, 9));
    expect(guestView(b)).toEqual(guestView(a));
    expect(irq2.level).toBe(irq.level);
    a.write(0, 1, 0x43); b.write(0, 1, 0x43);
    expect(b.saveState()).toEqual(a.saveState());
    expect(out2).toEqual([0x43]);
  });

  it("refuses corrupt states, unchanged", () => {
    const irq = new FakeIrq();
    const u = new Uart16550(irq, () => {});
    drive(u);
    const good = new Uart16550(new FakeIrq(), () => {});
    good.input(pattern(10, 2));
    const s = good.saveState();
    const level = irq.level;
    expectRejected(u, corrupt(s, (x) => { x.ier = 0x10; }), /uart\.ier/);
    expectRejected(u, corrupt(s, (x) => { x.lcr = "3"; }), /uart\.lcr/);
    expectRejected(u, corrupt(s, (x) => { x.dll = 256; }), /uart\.dll/);
    expectRejected(u, corrupt(s, (x) => { delete x.fcr; }), /uart\.fcr: missing/);
    expectRejected(u, corrupt(s, (x) => { x.thrIrqPending = 1; }), /uart\.thrIrqPending/);
    expectRejected(u, corrupt(s, (x) => { x.rx = new Uint8Array(65537); }), /uart\.rx/);
    expectRejected(u, corrupt(s, (x) => { x.rx = [1, 2]; }), /uart\.rx/);
    expectRejected(u, corrupt(s, (x) => { x.txBytes = -1; }), /uart\.txBytes/);
    expectRejected(u, null, /uart: expected an object/);
    expect(irq.level).toBe(level);
  });
});

describe("CLINT state", () => {
  it("round-trips msip and mtimecmp and tells the machine its lines changed", () => {
    let changesA = 0, changesB = 0;
    const a = new Clint(() => 0x56_0000_1000n, () => changesA++);
    a.write(0, 4, 1);
    a.write(0x4000, 4, 0x1234);
    a.write(0x4004, 4, 0x56);
    const saved = a.saveState();
    const b = new Clint(() => 0x56_0000_1000n, () => changesB++);
    b.restoreState(structuredClone(saved));
    expect(b.saveState()).toEqual(saved);
    expect(changesB).toBe(1);
    for (const off of [0, 0x4000, 0x4004, 0xbff8, 0xbffc]) expect(b.read(off, 4)).toBe(a.read(off, 4));
    for (const now of [0n, 0x56_0000_1233n, 0x56_0000_1234n]) expect(b.timerPending(now)).toBe(a.timerPending(now));
    expect(b.msip).toBe(true);
  });

  it("refuses corrupt states, unchanged", () => {
    const c = new Clint(() => 0n, () => {});
    c.write(0x4000, 4, 7);
    const s = c.saveState();
    expectRejected(c, corrupt(s, (x) => { x.mtimecmp = 1n << 64n; }), /clint\.mtimecmp/);
    expectRejected(c, corrupt(s, (x) => { x.mtimecmp = 5; }), /clint\.mtimecmp/);
    expectRejected(c, corrupt(s, (x) => { x.msip = 1; }), /clint\.msip/);
    expectRejected(c, corrupt(s, (x) => { delete x.msip; }), /clint\.msip: missing/);
  });
});

describe("PLIC state", () => {
  function drive() {
    let lines: [boolean, boolean] = [false, false];
    const p = new Plic((m, s) => { lines = [m, s]; });
    p.write(4 * 1, 4, 3); p.write(4 * 3, 4, 5); p.write(4 * 10, 4, 7); p.write(4 * 7, 4, 1);
    p.write(0x2000, 4, 1 << 3);
    p.write(0x2080, 4, (1 << 1) | (1 << 3) | (1 << 10) | 1); // bit 0 (no source) does not stick
    p.write(0x200000, 4, 6);
    p.write(0x201000, 4, 2);
    for (const n of [1, 3, 10]) p.line(n).set(true);
    expect(p.read(0x201004, 4)).toBe(10); // claimed, not completed
    return { p, lines: () => lines };
  }
  /** claims and completions as a guest's handler would do them */
  const handle = (p: Plic) => {
    const seen = [p.read(0x1000, 4), p.read(0x201004, 4)];
    p.write(0x201004, 4, 10);
    seen.push(p.read(0x1000, 4), p.read(0x201004, 4), p.read(0x200004, 4), p.read(0x201004, 4));
    p.line(3).set(false);
    p.write(0x201004, 4, 3);
    seen.push(p.read(0x201004, 4), p.read(0x1000, 4));
    return seen;
  };

  it("round-trips priorities, levels, claims, enables and thresholds, and drives MEIP/SEIP", () => {
    const a = drive();
    const saved = a.p.saveState();
    let lines: [boolean, boolean] = [false, false];
    const b = new Plic((m, s) => { lines = [m, s]; });
    b.restoreState(structuredClone(saved));
    expect(b.saveState()).toEqual(saved);
    expect(lines).toEqual(a.lines());
    expect(handle(b)).toEqual(handle(a.p));
    expect(lines).toEqual(a.lines());
    expect(b.saveState()).toEqual(a.p.saveState());
  });

  it("refuses corrupt states, unchanged", () => {
    const { p } = drive();
    const s = new Plic(() => {}).saveState();
    expectRejected(p, corrupt(s, (x) => { x.priority[5] = 8; }), /plic\.priority\[5\]/);
    expectRejected(p, corrupt(s, (x) => { x.priority = new Uint8Array(31); }), /plic\.priority: expected 32 bytes/);
    expectRejected(p, corrupt(s, (x) => { x.level[0] = 1; }), /plic\.level\[0\]/);
    expectRejected(p, corrupt(s, (x) => { x.claimed[2] = 2; }), /plic\.claimed\[2\]/);
    expectRejected(p, corrupt(s, (x) => { x.contexts.pop(); }), /plic\.contexts: expected 2 contexts/);
    expectRejected(p, corrupt(s, (x) => { x.contexts = Array(1000).fill(x.contexts[0]); }), /plic\.contexts/);
    expectRejected(p, corrupt(s, (x) => { x.contexts[1].enable = 3; }), /plic\.contexts\[1\]\.enable/);
    expectRejected(p, corrupt(s, (x) => { x.contexts[1].enable = 2 ** 32; }), /plic\.contexts\[1\]\.enable/);
    expectRejected(p, corrupt(s, (x) => { x.contexts[0].threshold = 8; }), /plic\.contexts\[0\]\.threshold/);
    expectRejected(p, corrupt(s, (x) => { x.contexts[0] = 5; }), /plic\.contexts\[0\]: expected an object/);
  });
});

/** Interrupt lines across a restore: the PLIC first, then the devices in bus order, each driving its own line. */
describe("interrupt lines after a restore", () => {
  function board() {
    let lines: [boolean, boolean] = [false, false];
    const plic = new Plic((m, s) => { lines = [m, s]; });
    const ram = new Ram();
    const uart = new Uart16550(plic.line(10), () => {});
    const disk = new MemoryBlockBackend(16 * 512);
    const dev = new VirtioMmio(ram.mem, plic.line(1), new VirtioBlk(disk));
    return { plic, uart, dev, ram, disk, lines: () => lines };
  }

  it("devices re-drive the levels the PLIC holds, so the two agree even if the PLIC's copy was stale", () => {
    const a = board();
    for (const n of [1, 10]) a.plic.write(4 * n, 4, 1);
    a.plic.write(0x2080, 4, (1 << 1) | (1 << 10));
    a.uart.write(1, 1, 0x02); // THRI: line 10 high
    const drv = new Driver(a.dev, a.ram);
    drv.negotiate(); drv.setupQueue(0, 8); drv.driverOk();
    const st = a.ram.alloc(1, 1);
    const hdr = a.ram.alloc(16);
    a.ram.mem.setU32(hdr, VIRTIO_BLK_T_FLUSH);
    drv.add(0, [{ addr: hdr, len: 16 }, { addr: st, len: 1, write: true }]);
    drv.kick(0); // line 1 high
    expect(a.lines()).toEqual([false, true]);
    const plicState = corrupt(a.plic.saveState(), (x) => { x.level[1] = 0; x.level[10] = 0; });
    const b = board();
    b.ram.all.set(a.ram.all);
    b.plic.restoreState(plicState);
    expect(b.lines()).toEqual([false, false]); // the PLIC alone believes both lines low
    b.uart.restoreState(a.uart.saveState());
    b.dev.restoreState(a.dev.saveState());
    expect(b.plic.saveState()).toEqual(a.plic.saveState());
    expect(b.lines()).toEqual(a.lines());
    expect(b.plic.read(0x201004, 4)).toBe(a.plic.read(0x201004, 4));
  });
});

/** Adds a virtio-blk request, not kicked (virtio-driver.ts queueBlkRequest). */
const addBlk = queueBlkRequest;

describe("virtio-blk state", () => {
  const opts = { serial: "snap-disk" };
  function driven() {
    const disk = new MemoryBlockBackend(64 * 512);
    const a = setup(new VirtioBlk(disk, opts), [16]);
    addBlk(a.drv, VIRTIO_BLK_T_OUT, 2, { data: pattern(2048, 1) });
    addBlk(a.drv, VIRTIO_BLK_T_IN, 0, { readLen: 4096 });
    addBlk(a.drv, VIRTIO_BLK_T_GET_ID, 0, { readLen: 20 });
    a.drv.kick(0);
    expect(a.drv.used(0).length).toBe(3);
    // left for later: published but not kicked, and the used-buffer interrupt not acknowledged
    addBlk(a.drv, VIRTIO_BLK_T_IN, 2, { readLen: 1024 });
    addBlk(a.drv, VIRTIO_BLK_T_OUT, 60, { data: pattern(1024, 2) });
    expect(a.irq.level).toBe(true);
    return { ...a, disk };
  }

  it("round-trips and then completes the same requests the same way", () => {
    const a = driven();
    const disk2 = new MemoryBlockBackend(a.disk.data.slice());
    const b = twin(a, new VirtioBlk(disk2, opts));
    expect(registers(b)).toEqual(registers(a));
    expectSameBehaviour(a, b, (s) => { s.drv.kick(0); return s.drv.used(0); });
    expect(firstDifference(a.disk.data, disk2.data)).toBe(-1);
    expectSameBehaviour(a, b, (s) => {
      const r = addBlk(s.drv, VIRTIO_BLK_T_IN, 60, { readLen: 1024 });
      const f = addBlk(s.drv, VIRTIO_BLK_T_FLUSH, 0);
      s.drv.ack();
      s.drv.kick(0);
      return [s.drv.used(0), r.status(), f.status(), Array.from(r.bytes().subarray(0, 8))];
    });
    expect(Array.from(disk2.data.subarray(60 * 512, 60 * 512 + 8))).toEqual(Array.from(pattern(1024, 2).subarray(0, 8)));
  });

  it("round-trips a transport in the middle of its set-up, then finishes it", () => {
    const disk = new MemoryBlockBackend(16 * 512);
    const a = setup(new VirtioBlk(disk), [], { start: false });
    a.drv.w(REG.QueueSel, 0);
    a.drv.w(REG.QueueNum, 8);
    a.drv.w(REG.QueueDescLow, 0x1234);
    a.drv.w(REG.DriverFeaturesSel, 1);
    a.drv.w(REG.DeviceFeaturesSel, 1);
    const b = twin(a, new VirtioBlk(new MemoryBlockBackend(16 * 512)));
    expect(registers(b)).toEqual(registers(a));
    expectSameBehaviour(a, b, (s) => {
      s.drv.setupQueue(0, 8);
      s.drv.driverOk();
      addBlk(s.drv, VIRTIO_BLK_T_FLUSH, 0);
      s.drv.kick(0);
      return [s.drv.used(0), s.drv.status];
    });
  });

  it("round-trips a transport that needs a reset, which a reset then clears", () => {
    const a = setup(new VirtioBlk(new MemoryBlockBackend(16 * 512)), [8]);
    a.drv.kick(3); // no such queue
    expect(a.drv.status & STATUS_NEEDS_RESET).toBe(STATUS_NEEDS_RESET);
    const b = twin(a, new VirtioBlk(new MemoryBlockBackend(16 * 512)));
    expect(b.dev.failureReason).toBe(a.dev.failureReason);
    expect(registers(b)).toEqual(registers(a));
    expectSameBehaviour(a, b, (s) => {
      s.drv.kick(0); // ignored while failed
      s.drv.negotiate(); s.drv.setupQueue(0, 8); s.drv.driverOk();
      addBlk(s.drv, VIRTIO_BLK_T_FLUSH, 0);
      s.drv.kick(0);
      return [s.drv.used(0), s.drv.status];
    });
  });
});

describe("virtio-net state", () => {
  const mac = [0x52, 0x54, 0, 0xab, 0xcd, 0xef];
  function make(sent: Uint8Array[]) { return new VirtioNet({ mac, backlog: 8, backend: { send: (f) => { sent.push(f); } } }); }
  const addRx = (drv: Driver, len = 1526) => drv.add(0, [{ addr: drv.ram.alloc(len), len, write: true }]);

  it("round-trips the rx backlog and link state, then delivers and transmits the same way", () => {
    const sentA: Uint8Array[] = [];
    const a = setup(make(sentA), [16, 16]);
    const net = a.device;
    addRx(a.drv); addRx(a.drv); a.drv.kick(0);
    for (let i = 0; i < 5; i++) expect(net.receive(pattern(60 + i, i))).toBe(true); // 2 delivered, 3 wait
    expect(net.backlogLength).toBe(3);
    const f = a.ram.alloc(12 + 100);
    a.ram.mem.write(f + 12n, pattern(100, 7));
    a.drv.add(1, [{ addr: f, len: 112 }]);
    a.drv.kick(1);
    a.drv.add(1, [{ addr: f, len: 112 }]); // published, not kicked
    const sentB: Uint8Array[] = [];
    const b = twin(a, make(sentB));
    expect((b.dev.device as VirtioNet).backlogLength).toBe(3);
    expect(registers(b)).toEqual(registers(a));
    expectSameBehaviour(a, b, (s) => {
      for (let i = 0; i < 4; i++) addRx(s.drv);
      s.drv.kick(0); // the backlog goes into the new buffers
      s.drv.kick(1);
      const nic = s.dev.device as VirtioNet;
      return [nic.receive(pattern(70, 9)), nic.receive(pattern(71, 9)), s.drv.used(0), s.drv.used(1)];
    });
    expect(sentB).toEqual(sentA.slice(1));
    expectSameBehaviour(a, b, (s) => { (s.dev.device as VirtioNet).setLinkUp(false); return registers(s); });
  });

  it("refuses another card's state and impossible backlogs, unchanged", () => {
    const a = setup(make([]), [16, 16]);
    for (let i = 0; i < 2; i++) a.device.receive(pattern(60, i));
    const other = setup(make([]), [16, 16]);
    other.device.receive(pattern(80, 3));
    const s = other.dev.saveState();
    expectRejected(a.dev, corrupt(s, (x) => { x.device.mac[5] ^= 1; }), /virtio-net\.mac/);
    expectRejected(a.dev, corrupt(s, (x) => { x.device.backlog.push(new Uint8Array(13)); }), /virtio-net\.backlog\[1\]/);
    expectRejected(a.dev, corrupt(s, (x) => { x.device.backlog.push(new Uint8Array(1519)); }), /virtio-net\.backlog\[1\]/);
    expectRejected(a.dev, corrupt(s, (x) => { x.device.backlog = Array(9).fill(new Uint8Array(60)); }), /virtio-net\.backlog/);
    expectRejected(a.dev, corrupt(s, (x) => { x.device.backlog[0] = "frame"; }), /virtio-net\.backlog\[0\]/);
    expectRejected(a.dev, corrupt(s, (x) => { x.device.linkUp = false; }), /virtio-net\.backlog.*link/);
    expectRejected(a.dev, corrupt(s, (x) => { x.queues[1].ready = 1; }), /queues\[1\]\.ready/);
  });
});

describe("virtio-rng state", () => {
  /** entropy from a counter, so two devices can be fed the same bytes */
  const counter = (start: number): EntropySource & { n: number } => ({
    n: start,
    fill(d) { for (let i = 0; i < d.length; i++) d[i] = this.n++ & 0xff; },
  });

  it("round-trips and serves the pending requests the same way", () => {
    const srcA = counter(0);
    const a = setup(new VirtioRng(srcA), [8]);
    a.drv.add(0, [{ addr: a.ram.alloc(64), len: 64, write: true }]);
    a.drv.kick(0);
    a.drv.add(0, [{ addr: a.ram.alloc(32), len: 32, write: true }]); // not kicked
    const b = twin(a, new VirtioRng(counter(srcA.n)));
    expect((b.dev.device as VirtioRng).bytes).toBe(64);
    expectSameBehaviour(a, b, (s) => { s.drv.kick(0); return s.drv.used(0); });
  });
});

describe("virtio-balloon state", () => {
  const MiB = 1n << 20n;
  const pfn = (p: number) => Number((RAM_BASE >> 12n) + BigInt(p));
  function driven() {
    const ram = new Ram({ shared: true, allocLimit: 128 * 4096 });
    const a = setup(new VirtioBalloon(), [16, 16, 16], { ram, driver: BalloonDriver });
    const balloon = a.device;
    balloon.setTarget(40);
    a.drv.send(INFLATEQ, [pfn(130), pfn(131), pfn(200), pfn(255)]);
    a.drv.send(DEFLATEQ, [pfn(131)]);
    a.drv.w(REG.Config + 4, 3);
    a.drv.add(STATSQ, [a.drv.statsBuf([[BALLOON_STAT.MEMFREE, 40n * MiB], [BALLOON_STAT.MEMTOT, 1n << 63n]])]);
    a.drv.kick(STATSQ); // the device now holds this buffer
    a.drv.add(INFLATEQ, [a.drv.pfns([pfn(140)])]); // not kicked
    expect(balloon.inflatedPages).toBe(3);
    return a;
  }

  it("round-trips target, actual, inflated pages, the held stats buffer and the statistics", () => {
    const a = driven();
    const b = twin(a, new VirtioBalloon());
    const bb = b.dev.device as VirtioBalloon;
    expect(bb.inflatedPages).toBe(3);
    expect(bb.stats).toEqual({ memFree: 40 * 2 ** 20, memTotal: 2 ** 63 });
    expect(bb.statsAt).toBeGreaterThan(0);
    expect(bb.isInflated(RAM_BASE + 200n * 4096n)).toBe(true);
    expect(bb.isInflated(RAM_BASE + 131n * 4096n)).toBe(false);
    expect(registers(b)).toEqual(registers(a));
    expectSameBehaviour(a, b, (s) => {
      const bal = s.dev.device as VirtioBalloon;
      s.drv.kick(INFLATEQ);
      const asked = bal.requestStats(); // returns the held buffer
      s.drv.send(DEFLATEQ, [pfn(130)]);
      s.drv.add(STATSQ, [s.drv.statsBuf([[BALLOON_STAT.MEMFREE, 8n * MiB]])]);
      s.drv.kick(STATSQ);
      return [asked, s.drv.used(INFLATEQ), s.drv.used(STATSQ), bal.inflatedPages, bal.stats, bal.targetPages, bal.actualPages];
    });
  });

  it("refuses impossible balloon states, unchanged", () => {
    const a = driven();
    const s = setup(new VirtioBalloon(), [16, 16, 16], { shared: true }).dev.saveState();
    expectRejected(a.dev, corrupt(s, (x) => { x.device.targetPages = RAM_SIZE / 4096 + 1; }), /virtio-balloon\.targetPages/);
    expectRejected(a.dev, corrupt(s, (x) => { x.device.inflated = new Uint8Array(33); }), /virtio-balloon\.inflated/);
    expectRejected(a.dev, corrupt(s, (x) => { x.device.heldStats = 256; }), /virtio-balloon\.heldStats/);
    expectRejected(a.dev, corrupt(s, (x) => { x.device.heldStats = -2; }), /virtio-balloon\.heldStats/);
    expectRejected(a.dev, corrupt(s, (x) => { x.device.stats = { memFree: "lots" }; }), /virtio-balloon\.stats\.memFree/);
    expectRejected(a.dev, corrupt(s, (x) => { x.device.stats = [1]; }), /virtio-balloon\.stats/);
    expectRejected(a.dev, corrupt(s, (x) => { x.device.actualPages = 2 ** 32; }), /virtio-balloon\.actualPages/);
    // without a stats queue no buffer can be held
    const plain = setup(new VirtioBalloon({ stats: false }), [16, 16], { shared: true });
    expectRejected(plain.dev, corrupt(plain.dev.saveState(), (x) => { x.device.heldStats = 0; }), /virtio-balloon\.heldStats/);
  });
});

describe("virtio transport: hostile states", () => {
  function pair() {
    const a = setup(new VirtioBlk(new MemoryBlockBackend(16 * 512)), [16]);
    addBlk(a.drv, VIRTIO_BLK_T_FLUSH, 0);
    a.drv.kick(0);
    // the source of the bad states: another device in another state, so a half-applied restore would show
    const o = setup(new VirtioBlk(new MemoryBlockBackend(16 * 512)), [8]);
    o.drv.ack();
    return { a, s: o.dev.saveState() };
  }
  const outside = RAM_BASE + BigInt(RAM_SIZE) - 64n;
  const cases: [string, (x: Mutable) => void, RegExp][] = [
    ["queue size not a power of two", (x) => { x.queues[0].num = 24; }, /queues\[0\]\.num/],
    ["queue size above QueueNumMax", (x) => { x.queues[0].num = 512; }, /queues\[0\]\.num/],
    ["ready queue of size 0", (x) => { x.queues[0].num = 0; }, /queues\[0\]\.num/],
    ["used ring outside RAM", (x) => { x.queues[0].deviceAddr = outside; }, /queues\[0\]: rings outside guest RAM/],
    ["descriptor table below RAM", (x) => { x.queues[0].descAddr = 0n; }, /queues\[0\]: rings outside guest RAM/],
    ["avail ring at 2^64 - 2", (x) => { x.queues[0].driverAddr = (1n << 64n) - 2n; }, /queues\[0\]: rings outside guest RAM/],
    ["address wider than 64 bits", (x) => { x.queues[0].descAddr = 1n << 64n; }, /queues\[0\]\.descAddr/],
    ["ring index past 16 bits", (x) => { x.queues[0].lastAvail = 0x10000; }, /queues\[0\]\.lastAvail/],
    ["negative used index", (x) => { x.queues[0].usedIdx = -1; }, /queues\[0\]\.usedIdx/],
    ["fractional queue size", (x) => { x.queues[0].num = 8.5; }, /queues\[0\]\.num/],
    ["too many queues", (x) => { x.queues.push(x.queues[0]); }, /virtio-mmio\.queues/],
    ["no queues", (x) => { x.queues = []; }, /virtio-mmio\.queues: expected 1 queues/],
    ["a million queues", (x) => { x.queues = Array(1e6).fill(0); }, /virtio-mmio\.queues/],
    ["a queue that is not an object", (x) => { x.queues[0] = "q"; }, /queues\[0\]: expected an object/],
    ["another device type", (x) => { x.deviceId = 4; }, /virtio-mmio\.deviceId/],
    ["other features offered", (x) => { x.offeredFeatures |= 1n << 5n; }, /virtio-mmio\.deviceId/],
    ["NEEDS_RESET stored in status", (x) => { x.status |= 0x40; }, /virtio-mmio\.status/],
    ["status wider than a byte", (x) => { x.status = 0x100; }, /virtio-mmio\.status/],
    ["features as a string", (x) => { x.driverFeatures = "0x100000000"; }, /virtio-mmio\.driverFeatures/],
    ["features not offered but FEATURES_OK", (x) => { x.driverFeatures |= 1n << 29n; }, /virtio-mmio\.driverFeatures/],
    ["DRIVER_OK without FEATURES_OK", (x) => { x.status = 7; }, /virtio-mmio\.status/],
    ["interrupt status bit 2", (x) => { x.interruptStatus = 4; }, /virtio-mmio\.interruptStatus/],
    ["config generation as a bigint", (x) => { x.configGeneration = 1n; }, /virtio-mmio\.configGeneration/],
    ["failure reason of 1 MB", (x) => { x.failureReason = "x".repeat(1 << 20); }, /virtio-mmio\.failureReason/],
    ["missing device state", (x) => { delete x.device; }, /virtio-mmio\.device: missing/],
    ["another disk size", (x) => { x.device.capacity = 32; }, /virtio-blk\.capacity/],
    ["a read-only disk", (x) => { x.device.readOnly = true; }, /virtio-blk\.readOnly/],
    ["negative statistics", (x) => { x.device.reads = -5; }, /virtio-blk\.reads/],
    ["not an object at all", (x) => { x.status = undefined; x.queues = new Uint8Array(4); }, /virtio-mmio\.(status|queues)/],
  ];

  it.each(cases)("%s: SnapshotError naming the field, device unchanged", (_name, change, field) => {
    const { a, s } = pair();
    const level = a.irq.level;
    expectRejected(a.dev, corrupt(s, change), field);
    expect(a.irq.level).toBe(level);
    // and it still works as before
    const r = addBlk(a.drv, VIRTIO_BLK_T_FLUSH, 0);
    a.drv.kick(0);
    expect(r.status()).toBe(VIRTIO_BLK_S_OK);
    expect(a.dev.failureReason).toBeNull();
  });

  it("the corrupt states' source restores fine (the cases above are what is wrong)", () => {
    const { a, s } = pair();
    a.dev.restoreState(s);
    expect(a.dev.saveState()).toEqual(s);
    expect(a.irq.level).toBe(false);
  });
});

/** A disk whose operations wait until the test settles them, one by one, in any order. */
class ManualDisk implements BlockBackend {
  readonly async = true;
  readonly data: Uint8Array;
  readonly ops: { kind: string; offset: number; len: number; done(): void; fail(): void }[] = [];
  flushCalls = 0;
  constructor(sectors: number) { this.data = new Uint8Array(sectors * 512); }
  get size(): number { return this.data.length; }

  read(offset: number, dst: Uint8Array): Promise<void> {
    return this.defer("read", offset, dst.length, () => dst.set(this.data.subarray(offset, offset + dst.length)));
  }
  write(offset: number, src: Uint8Array): Promise<void> {
    return this.defer("write", offset, src.length, () => this.data.set(src, offset));
  }
  flush(): Promise<void> {
    this.flushCalls++;
    return this.defer("flush", 0, 0, () => {});
  }

  private defer(kind: string, offset: number, len: number, work: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.ops.push({ kind, offset, len, done: () => { work(); resolve(); }, fail: () => reject(new Error("EIO")) });
    });
  }

  /** Settles the pending operation of `kind` (the first one, or the one at `offset`), then lets completions run. */
  async settle(kind: string, opts: { offset?: number; fail?: boolean } = {}): Promise<void> {
    const i = this.ops.findIndex((o) => o.kind === kind && (opts.offset === undefined || o.offset === opts.offset));
    if (i < 0) throw new Error(`no pending ${kind}`);
    const [op] = this.ops.splice(i, 1);
    if (opts.fail) op.fail(); else op.done();
    await ticks();
  }
}

const ticks = () => new Promise<void>((r) => setTimeout(r, 0));

describe("virtio-blk with an asynchronous backend", () => {
  function asyncSetup(sectors = 64, queue = 16) {
    const disk = new ManualDisk(sectors);
    let wakes = 0;
    const blk = new VirtioBlk(disk, { onAsyncCompletion: () => wakes++ });
    return { ...setup(blk, [queue]), disk, blk, wakes: () => wakes };
  }

  it("completes reads and writes later, in the order the backend finishes them", async () => {
    const c = asyncSetup();
    c.disk.data.set(pattern(1024, 5), 8 * 512);
    const w = addBlk(c.drv, VIRTIO_BLK_T_OUT, 0, { data: pattern(1024, 6) });
    const r = addBlk(c.drv, VIRTIO_BLK_T_IN, 8, { readLen: 1024 });
    const id = addBlk(c.drv, VIRTIO_BLK_T_GET_ID, 0, { readLen: 20 });
    c.drv.kick(0);
    expect(c.blk.inflight).toBe(2);
    expect(c.drv.used(0)).toEqual([{ id: id.head, len: 21 }]); // GET_ID needs no backend
    c.drv.ack();
    expect([w.status(), r.status()]).toEqual([0xff, 0xff]);
    expect(r.bytes().every((b) => b === 0xee)).toBe(true); // the backend got a private buffer
    let idle = false;
    void c.blk.whenIdle().then(() => { idle = true; });
    await c.disk.settle("read");
    expect(c.drv.used(0)).toEqual([{ id: r.head, len: 1025 }]);
    expect(r.status()).toBe(VIRTIO_BLK_S_OK);
    expect(r.bytes()).toEqual(pattern(1024, 5));
    expect(c.irq.level).toBe(true);
    expect(c.wakes()).toBe(1);
    expect(idle).toBe(false);
    expect(() => c.dev.saveState()).toThrow(/in flight/);
    c.drv.ack();
    await c.disk.settle("write");
    expect(c.drv.used(0)).toEqual([{ id: w.head, len: 1 }]);
    expect(w.status()).toBe(VIRTIO_BLK_S_OK);
    expect(c.disk.data.subarray(0, 1024)).toEqual(pattern(1024, 6));
    expect(idle).toBe(true);
    expect(c.blk.inflight).toBe(0);
    expect([c.blk.reads, c.blk.writes, c.blk.readBytes, c.blk.writeBytes]).toEqual([1, 1, 1024, 1024]);
    expect(c.dev.saveState()).toBeTruthy();
  });

  it("a FLUSH reaches the backend only after the writes issued before it have completed", async () => {
    const c = asyncSetup();
    const w1 = addBlk(c.drv, VIRTIO_BLK_T_OUT, 0, { data: pattern(512, 1) });
    const w2 = addBlk(c.drv, VIRTIO_BLK_T_OUT, 4, { data: pattern(512, 2) });
    const f = addBlk(c.drv, VIRTIO_BLK_T_FLUSH, 0);
    c.drv.kick(0);
    const w3 = addBlk(c.drv, VIRTIO_BLK_T_OUT, 8, { data: pattern(512, 3) }); // after the flush: not waited for
    c.drv.kick(0);
    await ticks();
    expect(c.disk.flushCalls).toBe(0);
    await c.disk.settle("write", { offset: 4 * 512 });
    expect(c.disk.flushCalls).toBe(0);
    await c.disk.settle("write", { offset: 0, fail: true }); // a failed write still ends what the flush waits for
    expect(c.disk.flushCalls).toBe(1);
    expect(f.status()).toBe(0xff);
    await c.disk.settle("flush");
    expect(f.status()).toBe(VIRTIO_BLK_S_OK);
    expect([w1.status(), w2.status(), w3.status()]).toEqual([VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, 0xff]);
    expect(c.drv.used(0).map((u) => u.id)).toEqual([w2.head, w1.head, f.head]);
    await c.disk.settle("write");
    expect(w3.status()).toBe(VIRTIO_BLK_S_OK);
    expect(c.blk.errors).toBe(1);
  });

  it("backend errors, rejected or thrown, complete with IOERR", async () => {
    const c = asyncSetup();
    const r = addBlk(c.drv, VIRTIO_BLK_T_IN, 0, { readLen: 512 });
    c.drv.kick(0);
    await c.disk.settle("read", { fail: true });
    expect(r.status()).toBe(VIRTIO_BLK_S_IOERR);
    expect(c.drv.used(0)).toEqual([{ id: r.head, len: 1 }]);
    expect(r.bytes().every((b) => b === 0xee)).toBe(true);
    c.disk.write = () => { throw new Error("EROFS"); };
    const w = addBlk(c.drv, VIRTIO_BLK_T_OUT, 0, { data: pattern(512, 1) });
    c.drv.kick(0);
    expect(w.status()).toBe(VIRTIO_BLK_S_IOERR); // at once
    expect(c.blk.inflight).toBe(0);
    expect(c.blk.errors).toBe(2);
    expect(c.drv.status & STATUS_NEEDS_RESET).toBe(0);
  });

  it("drops completions that arrive after a reset, a queue re-enable or NEEDS_RESET", async () => {
    const c = asyncSetup();
    const r = addBlk(c.drv, VIRTIO_BLK_T_IN, 0, { readLen: 512 });
    c.drv.kick(0);
    c.drv.w(REG.Status, 0); // reset with the read in flight
    let idle = false;
    void c.blk.whenIdle().then(() => { idle = true; });
    const usedIdx = () => c.ram.mem.u16(c.drv.q[0].used + 2n);
    await c.disk.settle("read");
    expect(idle).toBe(true);
    expect(r.status()).toBe(0xff);
    expect(r.bytes().every((b) => b === 0xee)).toBe(true); // no late DMA into RAM the guest may have reused
    expect(usedIdx()).toBe(0);
    expect(c.irq.level).toBe(false);
    expect(c.blk.reads).toBe(1); // the disk did the work

    // the driver starts over with new rings; then one request in flight while it re-enables the queue
    c.drv.negotiate(); c.drv.setupQueue(0, 16); c.drv.driverOk();
    const r2 = addBlk(c.drv, VIRTIO_BLK_T_IN, 0, { readLen: 512 });
    c.drv.kick(0);
    c.drv.w(REG.QueueSel, 0); c.drv.w(REG.QueueReady, 0);
    const q = c.drv.setupQueue(0, 16);
    await c.disk.settle("read");
    expect(r2.status()).toBe(0xff);
    expect(c.ram.mem.u16(q.used + 2n)).toBe(0);

    // and one in flight when the transport fails: answered with IOERR then (Linux ignores NEEDS_RESET), and its
    // late completion dropped
    const r3 = addBlk(c.drv, VIRTIO_BLK_T_IN, 0, { readLen: 512 });
    c.drv.kick(0);
    c.drv.kick(7); // nonexistent queue: NEEDS_RESET
    expect(r3.status()).toBe(VIRTIO_BLK_S_IOERR);
    expect(c.ram.mem.u16(q.used + 2n)).toBe(1);
    await c.disk.settle("read");
    expect(r3.bytes().every((b) => b === 0xee)).toBe(true);
    expect(c.ram.mem.u16(q.used + 2n)).toBe(1);
    expect(c.ram.guardsIntact()).toBe(true);

    // after a reset everything works again
    c.drv.negotiate(); c.drv.setupQueue(0, 16); c.drv.driverOk();
    const r4 = addBlk(c.drv, VIRTIO_BLK_T_IN, 0, { readLen: 512 });
    c.drv.kick(0);
    await c.disk.settle("read");
    expect(r4.status()).toBe(VIRTIO_BLK_S_OK);
    expect(c.drv.used(0)).toEqual([{ id: r4.head, len: 513 }]);
  });

  it("never has more requests in flight than the ring has entries, and resumes as they complete", async () => {
    const c = asyncSetup(64, 4);
    // a driver reusing one head over and over (what no real driver does)
    const first = addBlk(c.drv, VIRTIO_BLK_T_IN, 0, { readLen: 512 });
    for (let i = 0; i < 3; i++) c.drv.publish(0, first.head);
    c.drv.kick(0);
    for (let i = 0; i < 4; i++) c.drv.publish(0, first.head);
    c.drv.kick(0);
    expect(c.blk.inflight).toBe(4);
    expect(c.disk.ops.length).toBe(4);
    await c.disk.settle("read");
    expect(c.blk.inflight).toBe(4); // one done, the next one taken
    for (let i = 0; i < 7; i++) await c.disk.settle("read");
    expect(c.blk.inflight).toBe(0);
    expect(c.blk.reads).toBe(8);
    expect(c.drv.status & STATUS_NEEDS_RESET).toBe(0);
  });

  it("after a reset, new requests wait for the slots orphaned ones free, then run without another kick", async () => {
    const c = asyncSetup(64, 4);
    const old = addBlk(c.drv, VIRTIO_BLK_T_IN, 0, { readLen: 512 });
    for (let i = 0; i < 3; i++) c.drv.publish(0, old.head);
    c.drv.kick(0);
    expect(c.blk.inflight).toBe(4);
    c.drv.negotiate(); c.drv.setupQueue(0, 4); c.drv.driverOk();
    c.disk.data.set(pattern(512, 8));
    const r = addBlk(c.drv, VIRTIO_BLK_T_IN, 0, { readLen: 512 });
    c.drv.kick(0);
    expect(c.disk.ops.length).toBe(4); // every slot still taken by the orphans
    await c.disk.settle("read");
    expect(c.disk.ops.length).toBe(4); // one orphan gone, the new request issued
    for (let i = 0; i < 3; i++) await c.disk.settle("read");
    expect(r.status()).toBe(0xff);
    await c.disk.settle("read");
    expect(r.status()).toBe(VIRTIO_BLK_S_OK);
    expect(r.bytes()).toEqual(pattern(512, 8));
    expect(c.drv.used(0)).toEqual([{ id: r.head, len: 513 }]);
    expect(old.status()).toBe(0xff);
  });

  it("works with a backend that finishes after timeouts, and round-trips once idle", async () => {
    const disk = new MemoryBlockBackend(64 * 512);
    let n = 0;
    const delayed: BlockBackend = {
      async: true,
      size: disk.size,
      read: (o, d) => later(() => disk.read(o, d)),
      write: (o, s) => later(() => disk.write(o, s)),
      flush: () => later(() => disk.flush()),
    };
    function later(work: () => void): Promise<void> {
      const ms = [7, 1, 4, 0, 3][n++ % 5];
      return new Promise((resolve) => setTimeout(() => { work(); resolve(); }, ms));
    }
    const c = setup(new VirtioBlk(delayed), [64]); // room for all the chains' descriptors at once
    const writes = Array.from({ length: 6 }, (_, i) => addBlk(c.drv, VIRTIO_BLK_T_OUT, 8 * i, { data: pattern(4096, i) }));
    const flush = addBlk(c.drv, VIRTIO_BLK_T_FLUSH, 0);
    c.drv.kick(0);
    await c.device.whenIdle();
    expect(disk.flushes).toBe(1);
    const reads = Array.from({ length: 6 }, (_, i) => addBlk(c.drv, VIRTIO_BLK_T_IN, 8 * i, { readLen: 4096 }));
    c.drv.kick(0);
    await c.device.whenIdle();
    expect([...writes, flush, ...reads].every((r) => r.status() === VIRTIO_BLK_S_OK)).toBe(true);
    reads.forEach((r, i) => expect(r.bytes()).toEqual(pattern(4096, i)));
    expect(c.drv.used(0).length).toBe(13);
    const b = twin(c, new VirtioBlk(delayed));
    expect(registers(b)).toEqual(registers(c));
  });

  it("also waits for promises from a backend that does not declare itself asynchronous", async () => {
    const disk = new MemoryBlockBackend(16 * 512);
    disk.data.set(pattern(512, 4));
    const loose: BlockBackend = {
      size: disk.size,
      read: (o, d) => ticks().then(() => disk.read(o, d)),
      write: (o, s) => disk.write(o, s),
      flush: () => disk.flush(),
    };
    const c = setup(new VirtioBlk(loose), [8]);
    const r = addBlk(c.drv, VIRTIO_BLK_T_IN, 0, { readLen: 512 });
    c.drv.kick(0);
    expect(r.status()).toBe(0xff);
    await c.device.whenIdle();
    expect(r.status()).toBe(VIRTIO_BLK_S_OK);
    expect(r.bytes()).toEqual(pattern(512, 4));
  });
});
