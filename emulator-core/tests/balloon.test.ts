// virtio-balloon, driven the way a driver would (through the MMIO registers and rings laid out by hand in guest RAM,
// with the scaffolding of virtio-driver.ts), hostile drivers included; then the real guest's driver inflating and
// deflating it in Node. RAM sits between two guard regions of 0xA5 bytes, so any write outside RAM would show.

import { describe, it, expect, afterEach } from "vitest";
import { REG, VIRTIO_F_VERSION_1, STATUS_FEATURES_OK, STATUS_NEEDS_RESET } from "../src/machine/virtio/mmio.ts";
import {
  VirtioBalloon, VIRTIO_ID_BALLOON, VIRTIO_BALLOON_F_STATS_VQ, VIRTIO_BALLOON_F_DEFLATE_ON_OOM,
  VIRTIO_BALLOON_F_MUST_TELL_HOST, BALLOON_STAT, MAX_PFNS_PER_CHAIN, INFLATEQ, DEFLATEQ, STATSQ,
} from "../src/machine/virtio/balloon.ts";
import { VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_INDIRECT } from "../src/machine/virtio/queue.ts";
import { NodeVm } from "../src/node/vm.ts";
import { Ram, BalloonDriver, setup as setupDevice, RAM_BASE, RAM_SIZE } from "./virtio-driver.ts";

const RAM_PAGES = RAM_SIZE / 4096; // 256 pages
/** the test driver allocates its rings and buffers from the first pages; pages from here on hold only "guest data" */
const DATA_PAGE = 128;

/** pfn of RAM page p */
const pfn = (p: number) => Number((RAM_BASE >> 12n) + BigInt(p));

function setup(opts: { start?: boolean; balloon?: VirtioBalloon } = {}) {
  const balloon = opts.balloon ?? new VirtioBalloon();
  const ram = new Ram({ shared: true, allocLimit: DATA_PAGE * 4096 });
  return { ...setupDevice(balloon, Array(balloon.queueCount).fill(16), { ram, start: opts.start, driver: BalloonDriver }), balloon };
}

const MiB = 1024n * 1024n;

describe("virtio-balloon device", () => {
  it("identifies itself, offers STATS_VQ and DEFLATE_ON_OOM, and has three queues", () => {
    const { drv, balloon } = setup({ start: false });
    expect(drv.r(REG.DeviceID)).toBe(VIRTIO_ID_BALLOON);
    expect(drv.r(REG.DeviceID)).toBe(5);
    const f = drv.deviceFeatures();
    expect(f & VIRTIO_F_VERSION_1).toBe(VIRTIO_F_VERSION_1);
    expect(f & VIRTIO_BALLOON_F_STATS_VQ).toBe(VIRTIO_BALLOON_F_STATS_VQ);
    expect(f & VIRTIO_BALLOON_F_DEFLATE_ON_OOM).toBe(VIRTIO_BALLOON_F_DEFLATE_ON_OOM);
    expect(f & VIRTIO_BALLOON_F_MUST_TELL_HOST).toBe(0n);
    for (const q of [INFLATEQ, DEFLATEQ, STATSQ]) {
      drv.w(REG.QueueSel, q);
      expect(drv.r(REG.QueueNumMax)).toBe(256);
    }
    drv.w(REG.QueueSel, 3);
    expect(drv.r(REG.QueueNumMax)).toBe(0);
    expect(drv.readTarget()).toBe(0);
    expect(drv.readActual()).toBe(0);
    expect(balloon.ramPages).toBe(RAM_PAGES);
    // without the stats queue: two queues, no STATS_VQ
    const plain = new VirtioBalloon({ stats: false, deflateOnOom: false });
    expect(plain.queueCount).toBe(2);
    expect(plain.features).toBe(0n);
  });

  it("publishes the target in num_pages with a config-change interrupt; the driver writes actual", () => {
    const { drv, dev, irq, balloon } = setup();
    const gen = drv.r(REG.ConfigGeneration);
    balloon.setTarget(100);
    expect(drv.readTarget()).toBe(100);
    expect(drv.r(REG.ConfigGeneration)).not.toBe(gen);
    expect(drv.r(REG.InterruptStatus) & 2).toBe(2);
    expect(irq.level).toBe(true);
    drv.ack();
    expect(irq.level).toBe(false);
    // the same target again changes nothing
    balloon.setTarget(100);
    expect(irq.level).toBe(false);
    // clamped to RAM; nonsense becomes 0
    balloon.setTarget(1e9);
    expect(drv.readTarget()).toBe(RAM_PAGES);
    balloon.setTarget(-5);
    expect(drv.readTarget()).toBe(0);
    balloon.setTarget(NaN);
    expect(drv.readTarget()).toBe(0);
    // actual is the driver's; num_pages is not
    drv.w(REG.Config + 4, 42);
    expect(balloon.actualPages).toBe(42);
    expect(drv.readActual()).toBe(42);
    dev.write(REG.Config + 4, 1, 7); // a byte write updates the low byte
    expect(balloon.actualPages).toBe(7);
    drv.w(REG.Config, 999);
    expect(balloon.targetPages).toBe(0);
    expect(drv.status & STATUS_NEEDS_RESET).toBe(0);
  });

  it("inflates and deflates pages: zeroes them, counts each once, completes every buffer", () => {
    const { drv, ram, balloon, irq } = setup();
    for (let p = DATA_PAGE; p < RAM_PAGES; p++) ram.fillPage(p, 0x77);
    const list = [DATA_PAGE, DATA_PAGE + 1, DATA_PAGE + 5, DATA_PAGE + 1].map(pfn); // one duplicate
    const used = drv.send(INFLATEQ, list);
    expect(used).toEqual([{ id: 0, len: 0 }]);
    expect(irq.level).toBe(true);
    expect(balloon.inflatedPages).toBe(3);
    expect(balloon.inflateRequests).toBe(1);
    expect(ram.page(DATA_PAGE).every((b) => b === 0)).toBe(true);
    expect(ram.page(DATA_PAGE + 5).every((b) => b === 0)).toBe(true);
    expect(ram.page(DATA_PAGE + 2).every((b) => b === 0x77)).toBe(true); // untouched
    expect(balloon.isInflated(RAM_BASE + BigInt(DATA_PAGE * 4096) + 123n)).toBe(true);
    expect(balloon.isInflated(RAM_BASE + BigInt((DATA_PAGE + 2) * 4096))).toBe(false);
    drv.ack();

    // through an indirect table too, and a full ring's worth in one kick
    expect(drv.send(INFLATEQ, [pfn(DATA_PAGE + 10)], { indirect: true }).length).toBe(1);
    for (let i = 0; i < 16; i++) drv.add(INFLATEQ, [drv.pfns([pfn(DATA_PAGE + 20 + i)])]);
    drv.kick(INFLATEQ);
    expect(drv.used(INFLATEQ).length).toBe(16);
    expect(balloon.inflatedPages).toBe(3 + 1 + 16);

    // deflate: pages leave the balloon (their contents are the guest's business again)
    expect(drv.send(DEFLATEQ, [pfn(DATA_PAGE), pfn(DATA_PAGE + 5), pfn(DATA_PAGE + 99)])).toEqual([{ id: 0, len: 0 }]);
    expect(balloon.inflatedPages).toBe(18);
    expect(balloon.deflateRequests).toBe(1);
    expect(balloon.isInflated(RAM_BASE + BigInt(DATA_PAGE * 4096))).toBe(false);
    expect(balloon.invalidPfns).toBe(0);
    expect(drv.status & STATUS_NEEDS_RESET).toBe(0);
    expect(ram.guardsIntact()).toBe(true);
  });

  it("keeps the guest's statistics buffer, returns it to ask for fresh numbers, and reads the answer", () => {
    const { drv, balloon, irq } = setup({ start: false });
    expect(balloon.requestStats()).toBe(false); // no buffer yet
    // the driver primes the stats queue before DRIVER_OK (as Linux does); it is read once the driver is ready
    const head = drv.add(STATSQ, [drv.statsBuf([
      [BALLOON_STAT.MEMFREE, 40n * MiB], [BALLOON_STAT.MEMTOT, 60n * MiB], [BALLOON_STAT.AVAIL, 38n * MiB],
      [BALLOON_STAT.CACHES, 2n * MiB], [77, 5n], // an unknown tag: ignored
    ])]);
    drv.kick(STATSQ);
    expect(balloon.stats).toBeUndefined();
    drv.driverOk();
    expect(balloon.stats).toEqual({ memFree: 40 * 2 ** 20, memTotal: 60 * 2 ** 20, memAvailable: 38 * 2 ** 20, diskCaches: 2 * 2 ** 20 });
    expect(balloon.statsAt).toBeGreaterThan(0);
    expect(drv.used(STATSQ)).toEqual([]); // the device holds the buffer
    expect(irq.level).toBe(false);

    expect(balloon.requestStats()).toBe(true);
    expect(drv.used(STATSQ)).toEqual([{ id: head, len: 0 }]);
    expect(irq.level).toBe(true);
    drv.ack();
    expect(balloon.requestStats()).toBe(false); // the answer has not come yet

    drv.add(STATSQ, [drv.statsBuf([[BALLOON_STAT.MEMFREE, 8n * MiB], [BALLOON_STAT.MEMTOT, 60n * MiB], [BALLOON_STAT.MINFLT, 12345n]])]);
    drv.kick(STATSQ);
    expect(balloon.stats).toEqual({ memFree: 8 * 2 ** 20, memTotal: 60 * 2 ** 20, minorFaults: 12345 });
    expect(balloon.statsUpdates).toBe(2);
    expect(balloon.requestStats()).toBe(true);

    // a driver that queues two buffers gets the older one back at once
    drv.ack();
    drv.add(STATSQ, [drv.statsBuf([[BALLOON_STAT.MEMFREE, 1n]])]);
    const second = drv.add(STATSQ, [drv.statsBuf([[BALLOON_STAT.MEMFREE, 2n]])]);
    drv.used(STATSQ);
    drv.kick(STATSQ);
    expect(drv.used(STATSQ).length).toBe(1);
    expect(balloon.stats).toEqual({ memFree: 2 });
    expect(balloon.requestStats()).toBe(true);
    expect(drv.used(STATSQ)).toEqual([{ id: second, len: 0 }]);
    expect(drv.status & STATUS_NEEDS_RESET).toBe(0);
  });

  it("a driver reset empties the balloon and forgets the stats buffer; the target stays", () => {
    const { drv, balloon } = setup();
    balloon.setTarget(8);
    drv.send(INFLATEQ, [pfn(DATA_PAGE), pfn(DATA_PAGE + 1)]);
    drv.w(REG.Config + 4, 2);
    drv.add(STATSQ, [drv.statsBuf([[BALLOON_STAT.MEMFREE, 1n]])]);
    drv.kick(STATSQ);
    expect(balloon.inflatedPages).toBe(2);
    drv.w(REG.Status, 0);
    expect(balloon.inflatedPages).toBe(0);
    expect(balloon.actualPages).toBe(0);
    expect(balloon.stats).toBeUndefined();
    expect(balloon.requestStats()).toBe(false);
    expect(balloon.targetPages).toBe(8);
  });
});

describe("virtio-balloon with a hostile driver", () => {
  it("ignores PFNs outside RAM and never writes outside it", () => {
    const { drv, ram, balloon } = setup();
    const outside = [0, 1, pfn(0) - 1, pfn(RAM_PAGES), pfn(RAM_PAGES) + 1, 0xffffffff, 0x7fffffff];
    expect(drv.send(INFLATEQ, outside).length).toBe(1);
    expect(balloon.inflatedPages).toBe(0);
    expect(balloon.invalidPfns).toBe(outside.length);
    expect(drv.send(DEFLATEQ, outside).length).toBe(1);
    expect(balloon.invalidPfns).toBe(2 * outside.length);
    // the last page of RAM is fine
    drv.send(INFLATEQ, [pfn(RAM_PAGES - 1)]);
    expect(balloon.inflatedPages).toBe(1);
    expect(ram.guardsIntact()).toBe(true);
    expect(drv.status & STATUS_NEEDS_RESET).toBe(0);
  });

  it("bounds the work of one request, ignores partial entries and device-writable buffers", () => {
    const { drv, ram, balloon } = setup();
    // more PFNs than one chain may carry: only the first MAX_PFNS_PER_CHAIN are looked at
    const many = Array.from({ length: MAX_PFNS_PER_CHAIN + 100 }, (_, i) => pfn(DATA_PAGE + (i % 100)));
    many[MAX_PFNS_PER_CHAIN + 50] = 0; // beyond the cap: never counted as invalid
    expect(drv.send(INFLATEQ, many).length).toBe(1);
    expect(balloon.inflatedPages).toBe(100);
    expect(balloon.invalidPfns).toBe(0);
    // a buffer of 6 bytes holds one whole PFN; the 2 bytes left over are ignored
    const b = drv.pfns([pfn(DATA_PAGE + 110), 0xffffffff]);
    drv.add(INFLATEQ, [{ addr: b.addr, len: 6 }]);
    drv.kick(INFLATEQ);
    expect(drv.used(INFLATEQ).length).toBe(1);
    expect(balloon.inflatedPages).toBe(101);
    // a device-writable buffer carries nothing for us: completed, untouched
    const w = drv.pfns([pfn(DATA_PAGE + 111)]);
    drv.add(INFLATEQ, [{ addr: w.addr, len: 4, write: true }]);
    drv.kick(INFLATEQ);
    expect(drv.used(INFLATEQ)).toEqual([{ id: expect.any(Number), len: 0 }]);
    expect(balloon.inflatedPages).toBe(101);
    expect(ram.mem.u32(w.addr)).toBe(pfn(DATA_PAGE + 111));
    // an empty (zero-length) buffer, and a stats buffer too short for one entry
    drv.add(INFLATEQ, [{ addr: RAM_BASE, len: 0 }]);
    drv.kick(INFLATEQ);
    expect(drv.used(INFLATEQ).length).toBe(1);
    drv.add(STATSQ, [{ addr: drv.statsBuf([[BALLOON_STAT.MEMFREE, 5n]]).addr, len: 9 }]);
    drv.kick(STATSQ);
    expect(balloon.stats).toEqual({});
    // a huge stats buffer: at most MAX_STATS entries are read (the stats queue takes them, no error)
    const big = drv.statsBuf(Array.from({ length: 200 }, (_, i) => [BALLOON_STAT.MEMFREE, BigInt(i)] as [number, bigint]));
    drv.add(STATSQ, [big]);
    drv.kick(STATSQ);
    expect(balloon.stats!.memFree).toBe(31);
    expect(drv.status & STATUS_NEEDS_RESET).toBe(0);
    expect(ram.guardsIntact()).toBe(true);
  });

  const N = VIRTQ_DESC_F_NEXT, I = VIRTQ_DESC_F_INDIRECT;
  type Ctx = ReturnType<typeof setup>;
  const raw = (c: Ctx, qi: number, descs: [bigint, number, number, number][], head = 0) => {
    const q = c.drv.q[qi];
    descs.forEach(([a, l, f, n], i) => c.drv.writeDesc(q.desc, i, a, l, f, n));
    c.drv.publish(qi, head);
    c.drv.kick(qi);
  };
  const cases: [string, (c: Ctx) => void][] = [
    ["PFN array outside RAM", (c) => raw(c, INFLATEQ, [[RAM_BASE - 8n, 8, 0, 0]])],
    ["PFN array straddling the end of RAM", (c) => raw(c, DEFLATEQ, [[RAM_BASE + BigInt(RAM_SIZE) - 4n, 8, 0, 0]])],
    ["PFN array of 4 GiB", (c) => raw(c, INFLATEQ, [[RAM_BASE + 0x1000n, 0xffffffff, 0, 0]])],
    ["descriptor loop", (c) => raw(c, INFLATEQ, [[RAM_BASE + 0x100n, 4, N, 1], [RAM_BASE + 0x200n, 4, N, 0]])],
    ["next index beyond the queue", (c) => raw(c, DEFLATEQ, [[RAM_BASE + 0x100n, 4, N, 40]])],
    ["head index beyond the queue", (c) => raw(c, INFLATEQ, [[RAM_BASE + 0x100n, 4, 0, 0]], 300)],
    ["indirect table outside RAM", (c) => raw(c, INFLATEQ, [[RAM_BASE + BigInt(RAM_SIZE) - 16n, 32, I, 0]])],
    ["stats buffer outside RAM", (c) => raw(c, STATSQ, [[0xffff_ffff_ffff_0000n, 10, 0, 0]])],
    ["avail.idx jumps past the ring", (c) => { c.ram.mem.setU16(c.drv.q[STATSQ].avail + 2n, 40); c.drv.kick(STATSQ); }],
    ["notify on a nonexistent queue", (c) => c.drv.kick(3)],
  ];

  it.each(cases)("%s: NEEDS_RESET, host unharmed, reset recovers", (_name, misbehave) => {
    const c = setup();
    c.drv.ack();
    c.drv.send(INFLATEQ, [pfn(DATA_PAGE)]);
    expect(() => misbehave(c)).not.toThrow();
    expect(c.drv.status & STATUS_NEEDS_RESET).toBe(STATUS_NEEDS_RESET);
    expect(c.errors.length).toBe(1);
    expect(c.irq.level).toBe(true);
    expect(c.ram.guardsIntact()).toBe(true);
    c.drv.kick(INFLATEQ); // ignored while failed
    // reset brings it back, empty
    c.drv.w(REG.Status, 0);
    expect(c.drv.status).toBe(0);
    expect(c.balloon.inflatedPages).toBe(0);
    expect(c.drv.negotiate() & STATUS_FEATURES_OK).toBe(STATUS_FEATURES_OK);
    for (let i = 0; i < 3; i++) c.drv.setupQueue(i, 16);
    c.drv.driverOk();
    expect(c.drv.send(INFLATEQ, [pfn(DATA_PAGE + 1)]).length).toBe(1);
    expect(c.balloon.inflatedPages).toBe(1);
    expect(c.drv.status & STATUS_NEEDS_RESET).toBe(0);
  });

  it("survives random ring contents on all three queues", () => {
    let seed = 4242;
    const rnd = () => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed; };
    for (let round = 0; round < 300; round++) {
      const c = setup();
      const qi = round % 3;
      const q = c.drv.q[qi];
      for (let i = 0; i < 16; i++) {
        const addr = rnd() % 4 === 0 ? (BigInt(rnd()) << 32n) | BigInt(rnd()) : RAM_BASE + BigInt(rnd() % RAM_SIZE);
        const len = rnd() % 4 === 0 ? rnd() : rnd() % 2048;
        c.drv.writeDesc(q.desc, i, addr, len, rnd() & 7, rnd() % 20);
      }
      // random PFNs in part of RAM (some valid, most not)
      for (let i = DATA_PAGE * 4096; i < DATA_PAGE * 4096 + 16384; i += 4) c.ram.mem.setU32(RAM_BASE + BigInt(i), rnd() % 3 === 0 ? pfn(rnd() % RAM_PAGES) : rnd());
      for (let i = 0; i < 16; i++) c.ram.mem.setU16(q.avail + 4n + BigInt(2 * i), rnd() % 18);
      c.ram.mem.setU16(q.avail + 2n, rnd() % 20);
      expect(() => c.drv.kick(qi)).not.toThrow();
      expect(() => c.balloon.requestStats()).not.toThrow();
      expect(c.ram.guardsIntact()).toBe(true);
      expect(c.balloon.inflatedPages).toBeLessThanOrEqual(RAM_PAGES);
    }
  });
});

describe("virtio-balloon with the Linux guest (Node)", () => {
  const vms: NodeVm[] = [];
  afterEach(() => { for (const vm of vms.splice(0)) vm.stop(); });

  /** Waits for `cond`, waking the VM (the balloon's interrupts do not end NodeVm's idle sleep by themselves). */
  async function until(vm: NodeVm, cond: () => boolean, ms: number, what: string): Promise<void> {
    const t0 = Date.now();
    while (!cond()) {
      if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}; console:\n${vm.output.slice(-600)}`);
      vm.wake();
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it("the guest's driver inflates to the target, reports its memory, and deflates again", async () => {
    const vm = new NodeVm({ ramMiB: 64, balloon: true, hostname: "balloon" }).start();
    vms.push(vm);
    const b = vm.balloon!;
    await vm.waitFor("@@GUEST_READY@@", 60_000, 0);
    await vm.command("true", 30_000);
    // Linux found the device and took the stats queue and deflate-on-OOM
    expect(await vm.command("cat /sys/bus/virtio/devices/*/device")).toMatch(/0x0005/);
    await until(vm, () => b.stats !== undefined, 10_000, "the first statistics");
    expect(b.statsEnabled).toBe(true);
    expect(b.deflateOnOom).toBe(true);
    // the first statistics may be from the driver's probe, early in the boot: ask for fresh ones to compare with
    const n0 = b.statsUpdates;
    expect(b.requestStats()).toBe(true);
    await until(vm, () => b.statsUpdates > n0, 10_000, "fresh statistics before inflating");
    const before = b.stats!;
    expect(before.memTotal).toBeGreaterThan(50 * 2 ** 20);
    expect(before.memTotal).toBeLessThanOrEqual(64 * 2 ** 20);
    expect(before.memFree).toBeGreaterThan(30 * 2 ** 20);

    // ask for 24 MiB back
    const target = (24 * 2 ** 20) / 4096;
    b.setTarget(target);
    await until(vm, () => b.actualPages === target, 20_000, "the balloon to inflate");
    expect(b.inflatedPages).toBe(target);
    expect(b.invalidPfns).toBe(0);
    const n = b.statsUpdates;
    expect(b.requestStats()).toBe(true);
    await until(vm, () => b.statsUpdates > n, 10_000, "fresh statistics");
    const inflated = b.stats!;
    // the pages are allocated by the balloon driver: the guest's free memory dropped by (about) 24 MiB
    expect(before.memFree! - inflated.memFree!).toBeGreaterThan(22 * 2 ** 20);
    expect(before.memFree! - inflated.memFree!).toBeLessThan(27 * 2 ** 20);
    expect(await vm.command("free | awk '/Mem:/ {print \"free-kb=\" $4}'")).toMatch(/free-kb=\d+/);

    // give it back
    b.setTarget(0);
    await until(vm, () => b.actualPages === 0, 20_000, "the balloon to deflate");
    expect(b.inflatedPages).toBe(0);
    const m = b.statsUpdates;
    b.requestStats();
    await until(vm, () => b.statsUpdates > m, 10_000, "fresh statistics");
    expect(b.stats!.memFree!).toBeGreaterThan(inflated.memFree! + 22 * 2 ** 20);
    expect(await vm.command("echo still-$((6*7))")).toContain("still-42");
  });
});
