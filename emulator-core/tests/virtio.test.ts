// virtio-mmio transport and the blk / net / rng devices, driven the way a driver would: through the MMIO registers
// and rings laid out by hand in guest RAM (the fake RAM, with guard regions around it, and the driver are in
// virtio-driver.ts).

import { describe, it, expect, afterAll } from "vitest";
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MmioBus } from "../src/machine/bus.ts";
import {
  VirtioMmio, REG, VIRTIO_MMIO_MAGIC, VIRTIO_VENDOR_ID, VIRTIO_F_VERSION_1, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_EVENT_IDX,
  STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_FEATURES_OK, STATUS_DRIVER_OK, STATUS_NEEDS_RESET,
} from "../src/machine/virtio/mmio.ts";
import {
  VirtioBlk, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_UNSUPP,
} from "../src/machine/virtio/blk.ts";
import { VirtioNet, VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS, VIRTIO_NET_F_MTU } from "../src/machine/virtio/net.ts";
import { VirtioRng } from "../src/machine/virtio/rng.ts";
import { MemoryBlockBackend, type BlockBackend } from "../src/machine/virtio/backends.ts";
import { VirtioBalloon, INFLATEQ, DEFLATEQ } from "../src/machine/virtio/balloon.ts";
import { VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_INDIRECT } from "../src/machine/virtio/queue.ts";
import { FileBlockBackend } from "../src/node/file-block-backend.ts";
import { Ram, FakeIrq, Driver, BalloonDriver, setup, pattern, queueBlkRequest, RAM_BASE, RAM_SIZE, type Buf } from "./virtio-driver.ts";

// ---------------------------------------------------------------------------------------------------------------
// virtio-blk helpers

function blkSetup(opts: { sectors?: number; readOnly?: boolean; shared?: boolean; backend?: MemoryBlockBackend } = {}) {
  const disk = opts.backend ?? new MemoryBlockBackend((opts.sectors ?? 64) * 512);
  const blk = new VirtioBlk(disk, { readOnly: opts.readOnly });
  return { disk, blk, ...setup(blk, [16], { shared: opts.shared }) };
}

/** Writes a request header into fresh RAM; returns its address. */
function blkHeader(ram: Ram, type: number, sector: bigint): bigint {
  const h = ram.alloc(16);
  ram.mem.setU32(h, type); ram.mem.setU32(h + 4n, 0); ram.mem.setU64(h + 8n, sector);
  return h;
}

/** One request, data split into `segs` descriptors; returns status, data (for IN) and the used length. */
function blkRequest(drv: Driver, type: number, sector: bigint, opts: { data?: Uint8Array; readLen?: number; segs?: number; indirect?: boolean } = {}) {
  const ram = drv.ram;
  const bufs: Buf[] = [{ addr: blkHeader(ram, type, sector), len: 16 }];
  const segs = opts.segs ?? 1;
  let dataAddr = 0n;
  let dataLen = 0;
  if (opts.data) {
    dataLen = opts.data.length;
    dataAddr = ram.alloc(dataLen);
    ram.mem.write(dataAddr, opts.data);
  } else if (opts.readLen) {
    dataLen = opts.readLen;
    dataAddr = ram.alloc(dataLen);
    ram.mem.view(dataAddr, dataLen).fill(0xee);
  }
  if (dataLen > 0) {
    const per = Math.ceil(dataLen / segs);
    for (let o = 0; o < dataLen; o += per) bufs.push({ addr: dataAddr + BigInt(o), len: Math.min(per, dataLen - o), write: !opts.data });
  }
  const st = ram.alloc(1, 1);
  ram.mem.setU8(st, 0xff);
  bufs.push({ addr: st, len: 1, write: true });
  const head = drv.add(0, bufs, { indirect: opts.indirect });
  drv.kick(0);
  const used = drv.used(0);
  expect(used.length).toBe(1);
  expect(used[0].id).toBe(head);
  return { status: ram.mem.u8(st), data: dataLen && !opts.data ? ram.mem.view(dataAddr, dataLen).slice() : undefined, usedLen: used[0].len };
}


// ---------------------------------------------------------------------------------------------------------------

describe("virtio-mmio transport", () => {
  it("identifies itself and exposes the modern register layout", () => {
    const { dev, drv } = blkSetup({ sectors: 100 });
    expect(dev.size).toBe(0x1000);
    expect(drv.r(REG.MagicValue)).toBe(VIRTIO_MMIO_MAGIC);
    expect(drv.r(REG.Version)).toBe(2);
    expect(drv.r(REG.DeviceID)).toBe(2);
    expect(drv.r(REG.VendorID)).toBe(VIRTIO_VENDOR_ID);
    drv.w(REG.QueueSel, 0);
    expect(drv.r(REG.QueueNumMax)).toBe(256);
    expect(drv.r(REG.QueueReady)).toBe(1);
    drv.w(REG.QueueSel, 1);
    expect(drv.r(REG.QueueNumMax)).toBe(0); // blk has one queue
    expect(drv.r(REG.SHMLenLow)).toBe(0xffffffff);
    expect(drv.r(REG.SHMLenHigh)).toBe(0xffffffff);
    // sub-word register accesses are ignored, never fatal
    expect(dev.read(REG.MagicValue, 2)).toBe(0);
    dev.write(REG.Status, 1, 0);
    expect(drv.status & STATUS_DRIVER_OK).toBe(STATUS_DRIVER_OK);
    // capacity (u64 at 0x100) via two 32-bit reads, and via an 8-byte access through the bus
    expect(drv.r(REG.Config)).toBe(100);
    expect(drv.r(REG.Config + 4)).toBe(0);
    const bus = new MmioBus();
    bus.map(0x10001000n, dev, "virtio-blk");
    expect(bus.read(0x10001000n, 4)).toBe(BigInt(VIRTIO_MMIO_MAGIC));
    expect(bus.read(0x10001100n, 8)).toBe(100n);
    expect(dev.read(REG.Config + 12, 4)).toBe(126); // seg_max
    expect(dev.read(REG.Config + 0x800, 4)).toBe(0); // beyond config space
  });

  it("negotiates features: VERSION_1 required, nothing unoffered accepted", () => {
    const { drv, dev } = blkSetup();
    const f = drv.deviceFeatures();
    expect(f & VIRTIO_F_VERSION_1).toBe(VIRTIO_F_VERSION_1);
    expect(f & VIRTIO_F_INDIRECT_DESC).toBe(VIRTIO_F_INDIRECT_DESC);
    expect(f & VIRTIO_F_EVENT_IDX).toBe(0n);
    expect(f & (VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_SEG_MAX)).toBe(VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_SEG_MAX);
    expect(f & VIRTIO_BLK_F_RO).toBe(0n);
    drv.w(REG.DeviceFeaturesSel, 7);
    expect(drv.r(REG.DeviceFeatures)).toBe(0);

    expect(drv.negotiate((o) => o & ~VIRTIO_F_VERSION_1) & STATUS_FEATURES_OK).toBe(0); // legacy: refused
    expect(drv.negotiate((o) => o | VIRTIO_F_EVENT_IDX) & STATUS_FEATURES_OK).toBe(0); // unoffered: refused
    expect(drv.negotiate((o) => o & ~VIRTIO_F_INDIRECT_DESC) & STATUS_FEATURES_OK).toBe(STATUS_FEATURES_OK);
    expect(dev.driverFeatures & VIRTIO_F_INDIRECT_DESC).toBe(0n);
    // DriverFeatures is frozen once FEATURES_OK is set
    drv.w(REG.DriverFeaturesSel, 0);
    drv.w(REG.DriverFeatures, 0xffffffff);
    expect(dev.driverFeatures).toBe(drv.deviceFeatures() & ~VIRTIO_F_INDIRECT_DESC);
    expect(drv.status & STATUS_NEEDS_RESET).toBe(0);
  });

  it("raises the used-buffer interrupt, deasserts on ACK, and honours NO_INTERRUPT", () => {
    const { drv, irq, ram, dev } = blkSetup();
    expect(irq.level).toBe(false);
    blkRequest(drv, VIRTIO_BLK_T_FLUSH, 0n);
    expect(irq.level).toBe(true);
    expect(drv.r(REG.InterruptStatus)).toBe(1);
    drv.w(REG.InterruptACK, 1);
    expect(irq.level).toBe(false);
    expect(dev.interruptStatus).toBe(0);
    ram.mem.setU16(drv.q[0].avail, 1); // VIRTQ_AVAIL_F_NO_INTERRUPT
    expect(blkRequest(drv, VIRTIO_BLK_T_FLUSH, 0n).status).toBe(VIRTIO_BLK_S_OK);
    expect(irq.level).toBe(false);
  });

  it("does not consume buffers before DRIVER_OK, then processes them", () => {
    const disk = new MemoryBlockBackend(8 * 512);
    const { drv, ram } = setup(new VirtioBlk(disk), [16], { start: false });
    const st = ram.alloc(1, 1);
    drv.add(0, [{ addr: blkHeader(ram, VIRTIO_BLK_T_FLUSH, 0n), len: 16 }, { addr: st, len: 1, write: true }]);
    drv.kick(0);
    expect(drv.used(0).length).toBe(0);
    drv.driverOk();
    expect(drv.used(0).length).toBe(1);
    expect(disk.flushes).toBe(1);
    expect(drv.status & STATUS_NEEDS_RESET).toBe(0);
  });

  it("survives random register traffic without throwing or touching memory outside RAM", () => {
    let seed = 12345;
    const rnd = () => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed; };
    for (const device of [new VirtioBlk(new MemoryBlockBackend(4096)), new VirtioNet(), new VirtioRng()]) {
      const ram = new Ram();
      for (let i = 0; i < RAM_SIZE; i += 4) ram.mem.setU32(RAM_BASE + BigInt(i), rnd());
      const dev = new VirtioMmio(ram.mem, new FakeIrq(), device);
      const offs = [0x14, 0x20, 0x24, 0x30, 0x38, 0x44, 0x50, 0x64, 0x70, 0x80, 0x84, 0x90, 0x94, 0xa0, 0xa4, 0x100, 0x104];
      for (let i = 0; i < 20000; i++) {
        const off = rnd() % 3 === 0 ? rnd() & 0xfff : offs[rnd() % offs.length];
        const size = ([1, 2, 4] as const)[rnd() % 3];
        let v = rnd();
        if (off === 0x70 && rnd() % 2) v = rnd() % 16; // plausible status values
        if (off === 0x84 || off === 0x94 || off === 0xa4) v = rnd() % 4 === 0 ? v : 0;
        if ((off === 0x80 || off === 0x90 || off === 0xa0) && rnd() % 2) v = 0x80000000 + (rnd() % RAM_SIZE);
        if (off === 0x38 && rnd() % 2) v = 1 << (rnd() % 10);
        if (rnd() % 2) dev.write(off, size, v);
        else dev.read(off, size);
        if (device instanceof VirtioNet && i % 50 === 0) device.receive(pattern(60 + (rnd() % 1500), i));
      }
      expect(ram.guardsIntact()).toBe(true);
    }
  });
});

describe("virtio-blk", () => {
  it("writes and reads sectors across segments and through indirect descriptors", () => {
    const { drv, disk, blk, irq } = blkSetup({ sectors: 64 });
    const data = pattern(4096, 1);
    const w = blkRequest(drv, VIRTIO_BLK_T_OUT, 3n, { data, segs: 3 });
    expect(w.status).toBe(VIRTIO_BLK_S_OK);
    expect(w.usedLen).toBe(1);
    expect(disk.data.subarray(3 * 512, 3 * 512 + 4096)).toEqual(data);
    expect(disk.data[3 * 512 - 1]).toBe(0);
    expect(disk.data[3 * 512 + 4096]).toBe(0);

    const r = blkRequest(drv, VIRTIO_BLK_T_IN, 3n, { readLen: 4096, segs: 5 });
    expect(r.status).toBe(VIRTIO_BLK_S_OK);
    expect(r.usedLen).toBe(4097);
    expect(r.data).toEqual(data);

    const data2 = pattern(1024, 2);
    expect(blkRequest(drv, VIRTIO_BLK_T_OUT, 63n - 1n, { data: data2, segs: 2, indirect: true }).status).toBe(VIRTIO_BLK_S_OK);
    const r2 = blkRequest(drv, VIRTIO_BLK_T_IN, 62n, { readLen: 1024, segs: 4, indirect: true });
    expect(r2.status).toBe(VIRTIO_BLK_S_OK);
    expect(r2.data).toEqual(data2);

    expect(blk.reads).toBe(2);
    expect(blk.writes).toBe(2);
    expect(blk.readBytes).toBe(4096 + 1024);
    expect(blk.writeBytes).toBe(4096 + 1024);
    expect(irq.level).toBe(true);
    expect(drv.status & STATUS_NEEDS_RESET).toBe(0);
  });

  it("flushes, answers GET_ID, and rejects bad requests with IOERR/UNSUPP", () => {
    const { drv, disk, blk } = blkSetup({ sectors: 16 });
    expect(blkRequest(drv, VIRTIO_BLK_T_FLUSH, 0n).status).toBe(VIRTIO_BLK_S_OK);
    expect(disk.flushes).toBe(1);
    const id = blkRequest(drv, VIRTIO_BLK_T_GET_ID, 0n, { readLen: 20 });
    expect(id.status).toBe(VIRTIO_BLK_S_OK);
    expect(new TextDecoder().decode(id.data!.subarray(0, 8))).toBe("tabvisor");
    expect(id.data!.subarray(8).every((b) => b === 0)).toBe(true);
    expect(id.usedLen).toBe(21);

    expect(blkRequest(drv, VIRTIO_BLK_T_IN, 16n, { readLen: 512 }).status).toBe(VIRTIO_BLK_S_IOERR);
    expect(blkRequest(drv, VIRTIO_BLK_T_IN, 15n, { readLen: 1024 }).status).toBe(VIRTIO_BLK_S_IOERR);
    expect(blkRequest(drv, VIRTIO_BLK_T_IN, 0xffff_ffff_ffff_ffffn, { readLen: 512 }).status).toBe(VIRTIO_BLK_S_IOERR);
    expect(blkRequest(drv, VIRTIO_BLK_T_OUT, 1n << 55n, { data: new Uint8Array(512) }).status).toBe(VIRTIO_BLK_S_IOERR);
    expect(blkRequest(drv, VIRTIO_BLK_T_IN, 0n, { readLen: 100 }).status).toBe(VIRTIO_BLK_S_IOERR); // not whole sectors
    expect(blkRequest(drv, 99, 0n).status).toBe(VIRTIO_BLK_S_UNSUPP);
    expect(blk.errors).toBe(6);
    expect(blk.reads + blk.writes).toBe(0);
    expect(disk.data.every((b) => b === 0)).toBe(true);
    expect(drv.status & STATUS_NEEDS_RESET).toBe(0); // I/O errors are not transport failures
  });

  it("completes with IOERR when the backend throws", () => {
    const disk = new MemoryBlockBackend(8 * 512);
    disk.read = () => { throw new Error("EIO"); };
    const { drv } = blkSetup({ backend: disk });
    expect(blkRequest(drv, VIRTIO_BLK_T_IN, 0n, { readLen: 512 }).status).toBe(VIRTIO_BLK_S_IOERR);
    expect(drv.status & STATUS_NEEDS_RESET).toBe(0);
  });

  it("read-only disks offer VIRTIO_BLK_F_RO and fail writes", () => {
    const { drv, disk } = blkSetup({ readOnly: true });
    expect(drv.deviceFeatures() & VIRTIO_BLK_F_RO).toBe(VIRTIO_BLK_F_RO);
    expect(blkRequest(drv, VIRTIO_BLK_T_OUT, 0n, { data: pattern(512, 3) }).status).toBe(VIRTIO_BLK_S_IOERR);
    expect(disk.data.every((b) => b === 0)).toBe(true);
    expect(blkRequest(drv, VIRTIO_BLK_T_IN, 0n, { readLen: 512 }).status).toBe(VIRTIO_BLK_S_OK);
  });

  it("processes a full ring per notify and wraps the 16-bit ring indices", () => {
    const { drv, ram, disk } = blkSetup();
    const st = ram.alloc(16, 1);
    const hdr = blkHeader(ram, VIRTIO_BLK_T_FLUSH, 0n);
    let done = 0;
    while (done < 70000) {
      for (let i = 0; i < 8; i++) drv.add(0, [{ addr: hdr, len: 16 }, { addr: st + BigInt(i), len: 1, write: true }]);
      drv.kick(0);
      const u = drv.used(0);
      expect(u.length).toBe(8);
      done += 8;
    }
    expect(disk.flushes).toBe(done);
    expect(drv.status & STATUS_NEEDS_RESET).toBe(0);
  });
});

describe("virtio-net", () => {
  const MAC = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
  function netSetup(opts: { rxBufs?: number; rxLen?: number } = {}) {
    const sent: Uint8Array[] = [];
    const net = new VirtioNet({ mac: MAC, backend: { send: (f) => { sent.push(f); } } });
    const s = setup(net, [16, 16]);
    const rx: bigint[] = [];
    for (let i = 0; i < (opts.rxBufs ?? 0); i++) rx.push(addRx(s.drv, opts.rxLen ?? 1526));
    if (rx.length) s.drv.kick(0);
    return { ...s, net, sent, rx };
  }
  function addRx(drv: Driver, len: number): bigint {
    const a = drv.ram.alloc(len);
    drv.add(0, [{ addr: a, len, write: true }]);
    return a;
  }
  function tx(drv: Driver, frame: Uint8Array, split = true) {
    const ram = drv.ram;
    if (split) {
      const h = ram.alloc(12); const f = ram.alloc(frame.length);
      ram.mem.write(f, frame);
      drv.add(1, [{ addr: h, len: 12 }, { addr: f, len: frame.length }]);
    } else {
      const b = ram.alloc(12 + frame.length);
      ram.mem.write(b + 12n, frame);
      drv.add(1, [{ addr: b, len: 12 + frame.length }]);
    }
    drv.kick(1);
  }

  it("exposes MAC, link status and MTU in config", () => {
    const { drv, dev } = netSetup();
    const f = drv.deviceFeatures();
    expect(f & (VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS | VIRTIO_NET_F_MTU)).toBe(VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS | VIRTIO_NET_F_MTU);
    expect(drv.r(REG.DeviceID)).toBe(1);
    for (let i = 0; i < 6; i++) expect(dev.read(REG.Config + i, 1)).toBe(MAC[i]);
    expect(dev.read(REG.Config + 6, 2)).toBe(1); // LINK_UP
    expect(dev.read(REG.Config + 10, 2)).toBe(1500);
  });

  it("transmits frames to the backend and drops bad sizes", () => {
    const { drv, net, sent, irq } = netSetup();
    const f1 = pattern(60, 4), f2 = pattern(1514, 5);
    tx(drv, f1, true);
    tx(drv, f2, false);
    expect(sent).toEqual([f1, f2]);
    expect(drv.used(1).map((u) => u.len)).toEqual([0, 0]);
    expect(irq.level).toBe(true);
    expect(net.txPackets).toBe(2);
    expect(net.txBytes).toBe(60 + 1514);
    tx(drv, pattern(13, 6));
    tx(drv, pattern(1519, 7));
    expect(sent.length).toBe(2);
    expect(drv.used(1).length).toBe(2); // dropped frames still complete
    expect(net.txDropped).toBe(2);
    expect(drv.status & STATUS_NEEDS_RESET).toBe(0);
  });

  it("receives frames with a VERSION_1 header (num_buffers = 1), also into split buffers", () => {
    const { drv, net, ram, rx, irq } = netSetup({ rxBufs: 2 });
    const f = pattern(100, 8);
    expect(net.receive(f)).toBe(true);
    const u = drv.used(0);
    expect(u).toEqual([{ id: 0, len: 112 }]);
    const got = ram.mem.view(rx[0], 112);
    expect(Array.from(got.subarray(0, 12))).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    expect(got.subarray(12)).toEqual(f);
    expect(irq.level).toBe(true);
    // a chain of two writable buffers, the header split across them
    const a = ram.alloc(10), b = ram.alloc(2000);
    const head = drv.add(0, [{ addr: a, len: 10, write: true }, { addr: b, len: 2000, write: true }]);
    drv.kick(0);
    expect(net.receive(pattern(1514, 9))).toBe(true); // consumes rx[1]
    expect(net.receive(pattern(70, 10))).toBe(true);
    const u2 = drv.used(0);
    expect(u2[1]).toEqual({ id: head, len: 82 });
    expect(ram.mem.u16(b)).toBe(1); // num_buffers landed at header offset 10 = b + 0
    expect(ram.mem.view(b + 2n, 70)).toEqual(pattern(70, 10));
    expect(net.rxPackets).toBe(3);
    expect(net.rxBytes).toBe(100 + 1514 + 70);
  });

  it("keeps a bounded backlog while the guest has no rx buffers", () => {
    const { drv, net } = netSetup();
    for (let i = 0; i < 64; i++) expect(net.receive(pattern(60, i))).toBe(true);
    expect(net.receive(pattern(60, 99))).toBe(false);
    expect(net.rxDropped).toBe(1);
    expect(net.backlogLength).toBe(64);
    for (let i = 0; i < 10; i++) addRx(drv, 1526);
    drv.kick(0);
    expect(drv.used(0).length).toBe(10);
    expect(net.backlogLength).toBe(54);
    expect(net.rxPackets).toBe(10);
    // frames too large for the buffers on offer are dropped; the buffer stays for the next frame
    const d = netSetup({ rxBufs: 1, rxLen: 112 });
    expect(d.net.receive(pattern(200, 1))).toBe(false);
    expect(d.net.rxDropped).toBe(1);
    expect(d.net.receive(pattern(100, 1))).toBe(true);
    expect(d.drv.used(0)).toEqual([{ id: 0, len: 112 }]);
    expect(d.net.receive(pattern(10, 1))).toBe(false); // runt
  });

  it("drops frames before DRIVER_OK", () => {
    const net = new VirtioNet();
    expect(net.receive(pattern(60, 1))).toBe(false); // not even attached
    setup(net, [16, 16], { start: false });
    expect(net.receive(pattern(60, 1))).toBe(false);
    expect(net.rxDropped).toBe(2);
  });

  it("setLinkUp toggles the status field and raises a config-change interrupt", () => {
    const { drv, net, irq, dev } = netSetup({ rxBufs: 1 });
    const gen = drv.r(REG.ConfigGeneration);
    net.setLinkUp(false);
    expect(dev.read(REG.Config + 6, 2)).toBe(0);
    expect(drv.r(REG.InterruptStatus)).toBe(2);
    expect(irq.level).toBe(true);
    expect(drv.r(REG.ConfigGeneration)).not.toBe(gen);
    expect(net.receive(pattern(60, 1))).toBe(false);
    drv.ack();
    expect(irq.level).toBe(false);
    net.setLinkUp(true);
    expect(dev.read(REG.Config + 6, 2)).toBe(1);
    expect(drv.ack()).toBe(2);
    expect(net.receive(pattern(60, 1))).toBe(true);
    expect(drv.status & STATUS_NEEDS_RESET).toBe(0);
  });
});

describe("virtio-rng", () => {
  it("fills every writable buffer", () => {
    let n = 0;
    const rng = new VirtioRng({ fill: (d) => { for (let i = 0; i < d.length; i++) d[i] = (n++ & 0xff) | 1; } });
    const { drv, ram, irq } = setup(rng, [8]);
    expect(drv.r(REG.DeviceID)).toBe(4);
    const a = ram.alloc(64), b = ram.alloc(100);
    const head = drv.add(0, [{ addr: a, len: 64, write: true }, { addr: b, len: 100, write: true }]);
    drv.kick(0);
    expect(drv.used(0)).toEqual([{ id: head, len: 164 }]);
    expect(ram.mem.view(a, 64).every((x) => x & 1)).toBe(true);
    expect(ram.mem.view(b, 100).every((x) => x & 1)).toBe(true);
    expect(ram.mem.u8(b + 100n)).toBe(0);
    expect(rng.bytes).toBe(164);
    expect(irq.level).toBe(true);
  });

  it("uses crypto.getRandomValues by default, also with shared guest RAM", () => {
    const { drv, ram } = setup(new VirtioRng(), [8], { shared: true });
    const a = ram.alloc(256);
    drv.add(0, [{ addr: a, len: 256, write: true }]);
    drv.kick(0);
    expect(drv.used(0)[0].len).toBe(256);
    expect(ram.mem.view(a, 256).some((x) => x !== 0)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("hostile drivers", () => {
  type Ctx = ReturnType<typeof blkSetup>;
  const OUTSIDE = [RAM_BASE - 512n, RAM_BASE - 1n, RAM_BASE + BigInt(RAM_SIZE), RAM_BASE + BigInt(RAM_SIZE) - 256n, 0n, 0xffff_ffff_ffff_fe00n];

  /** A blk write whose data buffer is `addr`/`len`; `status` is a valid status byte. */
  const outWith = (c: Ctx, addr: bigint, len = 512) => {
    const st = c.ram.alloc(1, 1);
    c.drv.add(0, [{ addr: blkHeader(c.ram, VIRTIO_BLK_T_OUT, 0n), len: 16 }, { addr, len }, { addr: st, len: 1, write: true }]);
    c.drv.kick(0);
  };
  const inWith = (c: Ctx, addr: bigint, len = 512) => {
    const st = c.ram.alloc(1, 1);
    c.drv.add(0, [{ addr: blkHeader(c.ram, VIRTIO_BLK_T_IN, 0n), len: 16 }, { addr, len, write: true }, { addr: st, len: 1, write: true }]);
    c.drv.kick(0);
  };
  /** descriptors written by hand into queue 0's table, head published and kicked */
  const raw = (c: Ctx, descs: [bigint, number, number, number][], head = 0) => {
    const q = c.drv.q[0];
    descs.forEach(([a, l, f, n], i) => c.drv.writeDesc(q.desc, i, a, l, f, n));
    c.drv.publish(0, head);
    c.drv.kick(0);
  };
  const table = (c: Ctx, descs: [bigint, number, number, number][]) => {
    const t = c.ram.alloc(16 * descs.length);
    descs.forEach(([a, l, f, n], i) => c.drv.writeDesc(t, i, a, l, f, n));
    return t;
  };
  const N = VIRTQ_DESC_F_NEXT, W = VIRTQ_DESC_F_WRITE, I = VIRTQ_DESC_F_INDIRECT;

  const cases: [string, (c: Ctx) => void][] = [
    ...OUTSIDE.map((a): [string, (c: Ctx) => void] => [`blk write from 0x${a.toString(16)}`, (c) => outWith(c, a)]),
    ...OUTSIDE.map((a): [string, (c: Ctx) => void] => [`blk read into 0x${a.toString(16)}`, (c) => inWith(c, a)]),
    ["data descriptor straddling the end of RAM", (c) => inWith(c, RAM_BASE + BigInt(RAM_SIZE) - 256n, 512)],
    ["data descriptor of 4 GiB", (c) => outWith(c, RAM_BASE + 0x10000n, 0xffffffff)],
    ["header outside RAM", (c) => raw(c, [[RAM_BASE - 16n, 16, N, 1], [RAM_BASE + 0x100n, 1, W, 0]])],
    ["descriptor loop", (c) => raw(c, [[RAM_BASE + 0x100n, 16, N, 1], [RAM_BASE + 0x200n, 512, N, 0]])],
    ["descriptor pointing at itself", (c) => raw(c, [[RAM_BASE + 0x100n, 16, N, 0]])],
    ["next index beyond the queue", (c) => raw(c, [[RAM_BASE + 0x100n, 16, N, 16]])],
    ["head index beyond the queue", (c) => raw(c, [[RAM_BASE + 0x100n, 16, 0, 0]], 200)],
    ["avail.idx jumps past the ring", (c) => { c.ram.mem.setU16(c.drv.q[0].avail + 2n, 17); c.drv.kick(0); }],
    ["readable descriptor after a writable one", (c) => raw(c, [[RAM_BASE + 0x300n, 1, W | N, 1], [RAM_BASE + 0x100n, 16, 0, 0]])],
    ["indirect table outside RAM", (c) => raw(c, [[RAM_BASE + BigInt(RAM_SIZE) - 16n, 48, I, 0]])],
    ["indirect table of 20 bytes", (c) => raw(c, [[RAM_BASE + 0x100n, 20, I, 0]])],
    ["indirect table of 0 bytes", (c) => raw(c, [[RAM_BASE + 0x100n, 0, I, 0]])],
    ["indirect with NEXT", (c) => raw(c, [[table(c, [[RAM_BASE + 0x100n, 16, 0, 0]]), 16, I | N, 1], [RAM_BASE, 1, W, 0]])],
    ["nested indirect", (c) => raw(c, [[table(c, [[RAM_BASE + 0x100n, 16, N, 1], [table(c, [[RAM_BASE, 1, W, 0]]), 16, I, 0]]), 32, I, 0]])],
    ["indirect loop", (c) => raw(c, [[table(c, [[RAM_BASE + 0x100n, 16, N, 1], [RAM_BASE + 0x200n, 16, N, 0]]), 32, I, 0]])],
    ["indirect next beyond its table", (c) => raw(c, [[table(c, [[RAM_BASE + 0x100n, 16, N, 5]]), 16, I, 0]])],
    ["indirect buffer outside RAM", (c) => raw(c, [[table(c, [[RAM_BASE + 0x100n, 16, N, 1], [RAM_BASE - 4096n, 512, N, 2], [RAM_BASE, 1, W, 0]]), 48, I, 0]])],
    ["blk header too short", (c) => { const st = c.ram.alloc(1, 1); c.drv.add(0, [{ addr: c.ram.alloc(8), len: 8 }, { addr: st, len: 1, write: true }]); c.drv.kick(0); }],
    ["blk request without status byte", (c) => { c.drv.add(0, [{ addr: blkHeader(c.ram, VIRTIO_BLK_T_FLUSH, 0n), len: 16 }]); c.drv.kick(0); }],
    ["notify on an unready queue", (c) => { c.drv.w(REG.QueueSel, 0); c.drv.w(REG.QueueReady, 0); c.drv.kick(0); }],
    ["notify on a nonexistent queue", (c) => c.drv.kick(5)],
    ["QueueNum not a power of two", (c) => { c.drv.w(REG.QueueSel, 0); c.drv.w(REG.QueueReady, 0); c.drv.w(REG.QueueNum, 24); }],
    ["QueueNum above QueueNumMax", (c) => { c.drv.w(REG.QueueSel, 0); c.drv.w(REG.QueueReady, 0); c.drv.w(REG.QueueNum, 512); }],
    ["QueueReady with the ring outside RAM", (c) => {
      c.drv.w(REG.QueueSel, 0); c.drv.w(REG.QueueReady, 0);
      c.drv.w(REG.QueueDeviceLow, Number((RAM_BASE + BigInt(RAM_SIZE) - 64n) & 0xffffffffn));
      c.drv.w(REG.QueueReady, 1);
    }],
    ["QueueReady on a nonexistent queue", (c) => { c.drv.w(REG.QueueSel, 3); c.drv.w(REG.QueueReady, 1); }],
  ];

  it.each(cases)("%s: NEEDS_RESET, config interrupt, host unharmed, reset recovers", (_name, misbehave) => {
    const c = blkSetup({ sectors: 16 });
    c.disk.data.fill(0x5a);
    const before = c.disk.data.slice();
    c.drv.ack();
    expect(c.irq.level).toBe(false);
    expect(() => misbehave(c)).not.toThrow();
    expect(c.drv.status & STATUS_NEEDS_RESET).toBe(STATUS_NEEDS_RESET);
    expect(c.dev.failureReason).not.toBeNull();
    expect(c.errors.length).toBe(1);
    expect(c.drv.r(REG.InterruptStatus) & 2).toBe(2);
    expect(c.irq.level).toBe(true);
    expect(c.ram.guardsIntact()).toBe(true);
    expect(c.disk.data).toEqual(before); // nothing from outside RAM (0xA5) reached the disk
    // while failed, further notifies do nothing
    c.drv.kick(0);
    expect(c.ram.guardsIntact()).toBe(true);
    // reset brings it back
    c.drv.w(REG.Status, 0);
    expect(c.drv.status).toBe(0);
    expect(c.drv.r(REG.InterruptStatus)).toBe(0);
    expect(c.irq.level).toBe(false);
    expect(c.drv.negotiate() & STATUS_FEATURES_OK).toBe(STATUS_FEATURES_OK);
    c.drv.setupQueue(0, 16);
    c.drv.driverOk();
    const r = blkRequest(c.drv, VIRTIO_BLK_T_IN, 0n, { readLen: 1024, segs: 2 });
    expect(r.status).toBe(VIRTIO_BLK_S_OK);
    expect(r.data!.every((b) => b === 0x5a)).toBe(true);
    expect(c.drv.status & STATUS_NEEDS_RESET).toBe(0);
  });

  it("DRIVER_OK without FEATURES_OK needs a reset", () => {
    const ram = new Ram();
    const irq = new FakeIrq();
    const dev = new VirtioMmio(ram.mem, irq, new VirtioRng());
    dev.write(REG.Status, 4, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK);
    expect(dev.read(REG.Status, 4) & STATUS_NEEDS_RESET).toBe(STATUS_NEEDS_RESET);
    expect(irq.level).toBe(true);
    dev.write(REG.Status, 4, 0);
    expect(dev.read(REG.Status, 4)).toBe(0);
    expect(irq.level).toBe(false);
  });

  it("net: short tx header and rx buffers shorter than the header", () => {
    const sent: Uint8Array[] = [];
    const net = new VirtioNet({ backend: { send: (f) => { sent.push(f); } } });
    const s = setup(net, [16, 16]);
    s.drv.add(1, [{ addr: s.ram.alloc(8), len: 8 }]);
    s.drv.kick(1);
    expect(s.drv.status & STATUS_NEEDS_RESET).toBe(STATUS_NEEDS_RESET);
    expect(s.irq.level).toBe(true);
    expect(sent.length).toBe(0);
    expect(net.receive(pattern(60, 1))).toBe(false); // stopped
    s.drv.w(REG.Status, 0);
    s.drv.negotiate(); s.drv.setupQueue(0, 16); s.drv.setupQueue(1, 16); s.drv.driverOk();
    s.drv.add(0, [{ addr: s.ram.alloc(8), len: 8, write: true }]);
    s.drv.kick(0);
    expect(() => net.receive(pattern(60, 2))).not.toThrow();
    expect(s.drv.status & STATUS_NEEDS_RESET).toBe(STATUS_NEEDS_RESET);
    expect(s.ram.guardsIntact()).toBe(true);
    // rx buffer outside RAM
    s.drv.w(REG.Status, 0);
    s.drv.negotiate(); s.drv.setupQueue(0, 16); s.drv.setupQueue(1, 16); s.drv.driverOk();
    s.drv.add(0, [{ addr: RAM_BASE + BigInt(RAM_SIZE) - 100n, len: 1526, write: true }]);
    s.drv.kick(0);
    expect(net.receive(pattern(60, 3))).toBe(false);
    expect(s.drv.status & STATUS_NEEDS_RESET).toBe(STATUS_NEEDS_RESET);
    expect(s.ram.guardsIntact()).toBe(true);
  });

  it("survives random ring contents", () => {
    let seed = 99;
    const rnd = () => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed; };
    for (let round = 0; round < 300; round++) {
      const c = blkSetup({ sectors: 16 });
      const q = c.drv.q[0];
      // random descriptors pointing mostly into RAM, sometimes anywhere
      for (let i = 0; i < 16; i++) {
        const addr = rnd() % 4 === 0 ? (BigInt(rnd()) << 32n) | BigInt(rnd()) : RAM_BASE + BigInt(rnd() % RAM_SIZE);
        const len = rnd() % 4 === 0 ? rnd() : rnd() % 2048;
        c.drv.writeDesc(q.desc, i, addr, len, rnd() & 7, rnd() % 20);
      }
      for (let i = 0; i < 16; i++) c.ram.mem.setU16(q.avail + 4n + BigInt(2 * i), rnd() % 18);
      c.ram.mem.setU16(q.avail + 2n, rnd() % 20);
      expect(() => c.drv.kick(0)).not.toThrow();
      expect(c.ram.guardsIntact()).toBe(true);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// DEVICE_NEEDS_RESET with requests in flight (Linux 6.1 ignores NEEDS_RESET: what it waits for must complete)

/** An asynchronous disk whose operations wait until the test settles them. */
class HeldDisk implements BlockBackend {
  readonly async = true;
  readonly data: Uint8Array;
  readonly ops: { kind: string; offset: number; done(): void }[] = [];
  issued = 0;
  constructor(sectors: number) { this.data = new Uint8Array(sectors * 512); }
  get size(): number { return this.data.length; }
  read(offset: number, dst: Uint8Array): Promise<void> { return this.hold("read", offset, () => dst.set(this.data.subarray(offset, offset + dst.length))); }
  write(offset: number, src: Uint8Array): Promise<void> { return this.hold("write", offset, () => this.data.set(src, offset)); }
  flush(): Promise<void> { return this.hold("flush", 0, () => {}); }
  private hold(kind: string, offset: number, work: () => void): Promise<void> {
    this.issued++;
    return new Promise((resolve) => this.ops.push({ kind, offset, done: () => { work(); resolve(); } }));
  }
  /** settles every operation held (including ones issued meanwhile), letting completions run */
  async settleAll(): Promise<void> {
    for (let i = 0; i < 100 && this.ops.length > 0; i++) {
      for (const op of this.ops.splice(0)) op.done();
      await new Promise<void>((r) => setTimeout(r, 0));
    }
  }
}

/** Queues one request without kicking (virtio-driver.ts queueBlkRequest). */
const queueBlk = queueBlkRequest;

describe("NEEDS_RESET completes what the driver waits for", () => {
  function heldSetup(opts: { start?: boolean } = {}) {
    const disk = new HeldDisk(64);
    disk.data.set(pattern(64 * 512, 3));
    const blk = new VirtioBlk(disk);
    return { disk, blk, ...setup(blk, [16], { start: opts.start }) };
  }
  const IOERR = VIRTIO_BLK_S_IOERR;

  it("blk: requests in flight with an async backend, and the ones published after the bad one, end with IOERR", async () => {
    const c = heldSetup();
    const before = c.disk.data.slice();
    const r = queueBlk(c.drv, VIRTIO_BLK_T_IN, 0n, { readLen: 1024 });
    const w = queueBlk(c.drv, VIRTIO_BLK_T_OUT, 8n, { data: pattern(512, 9) });
    const f = queueBlk(c.drv, VIRTIO_BLK_T_FLUSH, 0n);
    c.drv.kick(0);
    expect(c.blk.inflight).toBe(3);
    expect(c.drv.used(0)).toEqual([]);
    c.drv.ack();
    // one notify brings a chain with a buffer outside RAM, then a good read, a chain without status byte, a good write
    const bad = c.ram.alloc(1, 1);
    c.ram.mem.setU8(bad, 0xff);
    c.drv.add(0, [{ addr: blkHeader(c.ram, VIRTIO_BLK_T_IN, 0n), len: 16 }, { addr: RAM_BASE + BigInt(RAM_SIZE) - 256n, len: 512, write: true },
      { addr: bad, len: 1, write: true }]);
    const r2 = queueBlk(c.drv, VIRTIO_BLK_T_IN, 4n, { readLen: 512 });
    const nost = queueBlk(c.drv, VIRTIO_BLK_T_OUT, 12n, { data: pattern(512, 11), noStatus: true }); // nothing writable
    const w2 = queueBlk(c.drv, VIRTIO_BLK_T_OUT, 16n, { data: pattern(512, 10) });
    c.drv.kick(0);
    expect(c.drv.status & STATUS_NEEDS_RESET).toBe(STATUS_NEEDS_RESET);
    expect(c.errors.length).toBe(1);
    // in flight first, then the published ones; each one's status byte says IOERR, used length 1 (the status byte)
    expect(c.drv.used(0)).toEqual([r, w, f, r2, w2].map((q) => ({ id: q.head, len: 1 })));
    expect([r, w, f, r2, w2].map((q) => q.status())).toEqual([IOERR, IOERR, IOERR, IOERR, IOERR]);
    expect(c.ram.mem.u8(bad)).toBe(0xff); // the chain that failed the checks is not answered
    expect(nost.status()).toBe(0xff); // nor one without a status byte (not in the used ring above)
    expect(c.drv.r(REG.InterruptStatus)).toBe(3); // used buffers and the config change
    expect(c.irq.level).toBe(true);
    expect(c.blk.errors).toBe(5);
    // nothing new reached the backend; the three operations it holds are still running
    expect(c.disk.issued).toBe(2); // the read and the write (the flush waits for the write)
    expect(c.blk.inflight).toBe(3);
    // late completions are dropped: no data into the read's buffer, no second used element
    let idle = false;
    void c.blk.whenIdle().then(() => { idle = true; });
    await c.disk.settleAll();
    expect(idle).toBe(true);
    expect(c.blk.inflight).toBe(0);
    expect(c.drv.used(0)).toEqual([]);
    expect(r.bytes().every((b) => b === 0xee)).toBe(true);
    expect([r, w, f].map((q) => q.status())).toEqual([IOERR, IOERR, IOERR]);
    expect(c.disk.data.subarray(12 * 512, 17 * 512)).toEqual(before.subarray(12 * 512, 17 * 512)); // nost, w2 never written
    expect(c.blk.errors).toBe(5);
    // what the driver publishes while the device stays failed ends with IOERR at once, without the backend
    const r3 = queueBlk(c.drv, VIRTIO_BLK_T_IN, 0n, { readLen: 512 });
    c.drv.kick(0);
    expect(c.drv.used(0)).toEqual([{ id: r3.head, len: 1 }]);
    expect(r3.status()).toBe(IOERR);
    expect(c.disk.issued).toBe(3); // the flush, issued once the write it waited for settled
    expect(c.ram.guardsIntact()).toBe(true);
    // a reset brings the device back
    c.drv.w(REG.Status, 0);
    c.drv.negotiate(); c.drv.setupQueue(0, 16); c.drv.driverOk();
    const r4 = queueBlk(c.drv, VIRTIO_BLK_T_IN, 2n, { readLen: 512 });
    c.drv.kick(0);
    await c.disk.settleAll();
    expect(r4.status()).toBe(VIRTIO_BLK_S_OK);
    expect(r4.bytes()).toEqual(c.disk.data.subarray(1024, 1536));
    expect(c.drv.status & STATUS_NEEDS_RESET).toBe(0);
  });

  it("blk: an avail ring the guest broke: the in-flight request is answered through the used ring, the avail ring is not read", async () => {
    const c = heldSetup();
    const r = queueBlk(c.drv, VIRTIO_BLK_T_IN, 0n, { readLen: 512 });
    c.drv.kick(0);
    const r2 = queueBlk(c.drv, VIRTIO_BLK_T_IN, 0n, { readLen: 512 }); // published, then avail.idx runs ahead
    c.ram.mem.setU16(c.drv.q[0].avail + 2n, 40);
    c.drv.kick(0);
    expect(c.drv.status & STATUS_NEEDS_RESET).toBe(STATUS_NEEDS_RESET);
    expect(c.drv.used(0)).toEqual([{ id: r.head, len: 1 }]);
    expect(r.status()).toBe(IOERR);
    expect(r2.status()).toBe(0xff);
    for (let i = 0; i < 3; i++) c.drv.kick(0); // nothing more, and nothing thrown
    expect(c.drv.used(0)).toEqual([]);
    await c.disk.settleAll();
    expect(c.drv.used(0)).toEqual([]);
    expect(r.bytes().every((b) => b === 0xee)).toBe(true);
    expect(c.ram.guardsIntact()).toBe(true);
  });

  it("blk: requests of a queue the driver disabled are not answered (their buffers are no longer the device's)", async () => {
    const c = heldSetup();
    const r = queueBlk(c.drv, VIRTIO_BLK_T_IN, 0n, { readLen: 512 });
    c.drv.kick(0);
    c.drv.w(REG.QueueSel, 0); c.drv.w(REG.QueueReady, 0);
    c.drv.kick(0); // notify on an unready queue
    expect(c.drv.status & STATUS_NEEDS_RESET).toBe(STATUS_NEEDS_RESET);
    // and re-enabled on other rings: the old request belongs to another epoch
    const q = c.drv.setupQueue(0, 16);
    c.drv.kick(0);
    await c.disk.settleAll();
    expect(r.status()).toBe(0xff);
    expect(r.bytes().every((b) => b === 0xee)).toBe(true);
    expect(c.ram.mem.u16(q.used + 2n)).toBe(0);
    expect(c.ram.guardsIntact()).toBe(true);
  });

  it("blk: a backend that returns promises without declaring itself async: answered with IOERR once it settles", async () => {
    const disk = new MemoryBlockBackend(16 * 512);
    disk.data.set(pattern(512, 4));
    const waits: (() => void)[] = [];
    const loose: BlockBackend = { // handed views of guest RAM, which it fills later
      size: disk.size,
      read: (o, d) => new Promise<void>((resolve) => waits.push(() => { disk.read(o, d); resolve(); })),
      write: (o, s) => disk.write(o, s),
      flush: () => disk.flush(),
    };
    const c = setup(new VirtioBlk(loose), [8]);
    const r = queueBlk(c.drv, VIRTIO_BLK_T_IN, 0n, { readLen: 512 });
    c.drv.kick(0);
    c.drv.kick(3);
    expect(c.drv.status & STATUS_NEEDS_RESET).toBe(STATUS_NEEDS_RESET);
    expect(r.status()).toBe(0xff); // not yet: the backend may still write the buffer
    expect(c.drv.used(0)).toEqual([]);
    waits.shift()!();
    await c.device.whenIdle();
    expect(r.status()).toBe(IOERR);
    expect(c.drv.used(0)).toEqual([{ id: r.head, len: 1 }]);
  });

  it("blk: nothing is answered before DRIVER_OK", () => {
    const c = heldSetup({ start: false });
    const r = queueBlk(c.drv, VIRTIO_BLK_T_IN, 0n, { readLen: 512 });
    c.drv.kick(5); // nonexistent queue
    expect(c.drv.status & STATUS_NEEDS_RESET).toBe(STATUS_NEEDS_RESET);
    c.drv.kick(0);
    expect(r.status()).toBe(0xff);
    expect(c.ram.mem.u16(c.drv.q[0].used + 2n)).toBe(0);
    // a driver that sets DRIVER_OK all the same, then notifies: answered with IOERR
    c.drv.driverOk();
    c.drv.kick(0);
    expect(r.status()).toBe(IOERR);
    expect(c.drv.used(0)).toEqual([{ id: r.head, len: 1 }]);
    expect(c.disk.issued).toBe(0);
  });

  it("blk: random rings with requests in flight: never throws, stays inside RAM, every answer is IOERR or OK", async () => {
    let seed = 7;
    const rnd = () => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed; };
    for (let round = 0; round < 150; round++) {
      const c = heldSetup();
      const reqs = [0, 1, 2].map((i) => i === 1 ? queueBlk(c.drv, VIRTIO_BLK_T_OUT, 0n, { data: pattern(512, i) })
        : queueBlk(c.drv, VIRTIO_BLK_T_IN, BigInt(i), { readLen: 512 }));
      c.drv.kick(0);
      const q = c.drv.q[0];
      // random descriptors in the free part of the table, random avail entries after ours, sometimes a bad avail.idx
      for (let i = 6; i < 16; i++) {
        const addr = rnd() % 4 === 0 ? (BigInt(rnd()) << 32n) | BigInt(rnd()) : RAM_BASE + BigInt(rnd() % RAM_SIZE);
        c.drv.writeDesc(q.desc, i, addr, rnd() % 4 === 0 ? rnd() : rnd() % 2048, rnd() & 7, rnd() % 20);
      }
      for (let i = 3; i < 16; i++) c.ram.mem.setU16(q.avail + 4n + BigInt(2 * i), 6 + (rnd() % 12));
      c.ram.mem.setU16(q.avail + 2n, 3 + (rnd() % 20));
      expect(() => { c.drv.kick(0); c.drv.kick(rnd() % 3); c.drv.kick(0); }).not.toThrow();
      await c.disk.settleAll();
      expect(c.ram.guardsIntact()).toBe(true);
      for (const r of reqs) expect([VIRTIO_BLK_S_OK, IOERR]).toContain(r.status());
    }
  });

  it("balloon: inflate/deflate buffers published after the failure are acknowledged without being acted on", () => {
    const balloon = new VirtioBalloon();
    const c = setup(balloon, [16, 16, 16], { driver: BalloonDriver });
    const page = 200;
    c.ram.fillPage(page, 0x77);
    const pfn = Number((RAM_BASE >> 12n) + BigInt(page));
    c.drv.kick(7);
    expect(c.drv.status & STATUS_NEEDS_RESET).toBe(STATUS_NEEDS_RESET);
    expect(c.drv.send(INFLATEQ, [pfn])).toEqual([{ id: 0, len: 0 }]);
    expect(c.drv.send(DEFLATEQ, [pfn])).toEqual([{ id: 0, len: 0 }]);
    expect(balloon.inflatedPages).toBe(0);
    expect(balloon.inflateRequests).toBe(0);
    expect(c.ram.page(page).every((b) => b === 0x77)).toBe(true);
    expect(c.ram.guardsIntact()).toBe(true);
  });
});

// Found by the hostile virtio driver (npm run fuzz -- --virtio, src/fuzz/virtio-program.ts).
describe("defects the hostile virtio driver found", () => {
  it("balloon: a stats buffer held from before the driver re-enabled the stats queue is not returned (seed 529: head 12 in a ring of 1)", () => {
    const STATSQ = 2;
    const { drv, device: balloon, dev } = setup(new VirtioBalloon(), [16, 16, 16], { driver: BalloonDriver });
    // the device holds the driver's second stats buffer: head 1
    drv.add(STATSQ, [drv.statsBuf([[4, 1n]])]);
    drv.kick(STATSQ);
    expect(balloon.requestStats()).toBe(true);
    const held = drv.add(STATSQ, [drv.statsBuf([[4, 2n]])]);
    drv.kick(STATSQ);
    expect(held).toBe(1);
    // the driver takes the queue away and gives it back with one entry: head 1 is nothing of its own any more
    drv.w(REG.QueueSel, STATSQ);
    drv.w(REG.QueueReady, 0);
    const q = drv.setupQueue(STATSQ, 1);
    expect(balloon.requestStats()).toBe(false);
    expect(drv.used(STATSQ)).toEqual([]);
    // a buffer published on the new queue is held, and returned, as before
    drv.add(STATSQ, [drv.statsBuf([[4, 3n]])]);
    drv.kick(STATSQ);
    expect(drv.used(STATSQ)).toEqual([]); // the stale buffer is not handed back either
    expect(balloon.requestStats()).toBe(true);
    expect(drv.used(STATSQ)).toEqual([{ id: 0, len: 0 }]);
    expect(q.num).toBe(1);
    expect(dev.needsReset).toBe(false);
  });

  it("a Status write that clears a bit needs a reset, so a running device never stands without FEATURES_OK (its snapshot was refused)", () => {
    const { drv, dev, errors } = setup(new VirtioRng(), [8]);
    drv.w(REG.Status, STATUS_DRIVER_OK); // FEATURES_OK, DRIVER and ACKNOWLEDGE taken back
    expect(drv.status & STATUS_NEEDS_RESET).toBe(STATUS_NEEDS_RESET);
    expect(errors).toEqual([expect.stringMatching(/Status 0x4 clears bits 0xb of 0xf without a reset/)]);
    expect(dev.running).toBe(false);
    // whatever the guest did, the machine's snapshot of it restores
    const copy = new VirtioMmio(drv.ram.mem, new FakeIrq(), new VirtioRng());
    expect(() => copy.restoreState(dev.saveState())).not.toThrow();
    // a reset brings it back; setting bits one by one is what drivers do, and stays fine
    drv.w(REG.Status, 0);
    expect(drv.status).toBe(0);
    drv.w(REG.Status, STATUS_ACKNOWLEDGE);
    drv.w(REG.Status, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    expect(drv.status).toBe(STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    expect(errors.length).toBe(1);
  });
});

describe("FileBlockBackend", () => {
  const dir = mkdtempSync(join(tmpdir(), "tabvisor-blk-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("reads and writes a disk image through virtio-blk over shared guest RAM", () => {
    const path = join(dir, "disk.img");
    const image = pattern(64 * 1024, 11);
    writeFileSync(path, image);
    const backend = new FileBlockBackend(path);
    expect(backend.size).toBe(64 * 1024);
    const blk = new VirtioBlk(backend);
    const { drv } = setup(blk, [16], { shared: true });
    const r = blkRequest(drv, VIRTIO_BLK_T_IN, 4n, { readLen: 2048, segs: 3 });
    expect(r.status).toBe(VIRTIO_BLK_S_OK);
    expect(r.data).toEqual(image.subarray(2048, 4096));
    const data = pattern(1536, 12);
    expect(blkRequest(drv, VIRTIO_BLK_T_OUT, 127n - 2n, { data, segs: 2 }).status).toBe(VIRTIO_BLK_S_OK);
    expect(blkRequest(drv, VIRTIO_BLK_T_FLUSH, 0n).status).toBe(VIRTIO_BLK_S_OK);
    backend.close();
    const after = readFileSync(path);
    expect(new Uint8Array(after.subarray(125 * 512, 128 * 512))).toEqual(data);
    expect(new Uint8Array(after.subarray(0, 125 * 512))).toEqual(image.subarray(0, 125 * 512));

    const ro = new FileBlockBackend(path, { readOnly: true });
    const blkRo = new VirtioBlk(ro);
    expect(blkRo.readOnly).toBe(true);
    const s = setup(blkRo, [16]);
    expect(blkRequest(s.drv, VIRTIO_BLK_T_OUT, 0n, { data: new Uint8Array(512) }).status).toBe(VIRTIO_BLK_S_IOERR);
    ro.close();
  });

  it("explains why an image cannot be used", () => {
    expect(() => new FileBlockBackend(join(dir, "missing.img"))).toThrow(/missing\.img does not exist/);
    const odd = join(dir, "odd.img");
    writeFileSync(odd, new Uint8Array(1000));
    expect(() => new FileBlockBackend(odd)).toThrow(/size 1000, which is not a multiple of 512/);
    const empty = join(dir, "empty.img");
    writeFileSync(empty, new Uint8Array(0));
    expect(() => new FileBlockBackend(empty)).toThrow(/is empty/);
    expect(() => new FileBlockBackend(dir, { readOnly: true })).toThrow(/not a regular file|is a directory/);
    expect(() => new FileBlockBackend(dir)).toThrow(/is a directory|not a regular file/);
  });
});
