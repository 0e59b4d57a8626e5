// A short run of the hostile virtio driver in the suite (`npm run fuzz -- --virtio` runs longer ones): an S-mode
// guest on the whole machine drives the disk, the network card, the entropy source, the balloon and the agent
// channel (a multiport virtio-console: control messages, receive buffers, data both ways) with nearly
// valid but hostile register writes, rings and descriptors (src/fuzz/virtio-program.ts); each round must end
// through the power-off, a fatal stop or the timeout, in time, without a host exception or a device error other
// than the guest-error path, with no disk access outside the image; every device's state, and the machine's, must
// survive a snapshot, and every device must work again after a reset (src/fuzz/virtio-campaign.ts). The last tests
// break those rules on purpose, to show the rounds notice.

import { describe, it, expect } from "vitest";
import { loadHartModule } from "../src/node/hart-module.ts";
import { virtioScript, OP, TRAP_LIMIT, CHECK_AREA, FUZZ_DISK_BYTES, type Action } from "../src/fuzz/virtio-program.ts";
import { virtioRound, virtioCampaign } from "../src/fuzz/virtio-campaign.ts";
import { REG } from "../src/machine/virtio/mmio.ts";
import type { Machine } from "../src/machine/machine.ts";

const module = loadHartModule();
const RNG_MMIO = 0x1000_3000n; // slot 2: disks, cards, then the rng
const SCRATCH = CHECK_AREA - 0x1000n;

describe("the hostile virtio driver", () => {
  it("is the same for the same seed; with no actions it powers off and every device works", async () => {
    expect(Buffer.compare(virtioScript(7).image, virtioScript(7).image)).toBe(0);
    expect(Buffer.compare(virtioScript(7).image, virtioScript(8).image)).not.toBe(0);
    const r = await virtioRound(module, 1, { script: [] });
    expect(r).toMatchObject({ end: "poweroff", executed: 1, failedDuring: 0, problems: [] });
  });

  it("runs its actions: stores, loads, waits, echoes; skips faulting accesses, and gives up after too many", async () => {
    let m: Machine | undefined;
    const script: Action[] = [
      [OP.Store8, SCRATCH, 0x1122334455667788n, 0n],
      [OP.Store1, SCRATCH + 8n, 0x1ffn, 0n],
      [OP.Load8, 0n, 0n, 0n], // nothing there: an access fault, skipped
      [OP.Store4, RNG_MMIO + BigInt(REG.Status), 1n, 0n], // ACKNOWLEDGE
      [OP.Wait, 0n, 1000n, 0n], // ends by the timer
      [OP.Echo, RNG_MMIO + BigInt(REG.DeviceID), 0n, SCRATCH + 16n - (RNG_MMIO + BigInt(REG.DeviceID))], // DeviceID to RAM
    ];
    const r = await virtioRound(module, 1, { script, tamper: (mm) => { m = mm; } });
    expect(r).toMatchObject({ end: "poweroff", executed: script.length + 1, problems: [] });
    expect(m!.memory.u64(SCRATCH)).toBe(0x1122334455667788n);
    expect(m!.memory.u8(SCRATCH + 8n)).toBe(0xff);
    expect(m!.memory.u32(SCRATCH + 16n)).toBe(4); // virtio-rng's device ID
    expect(m!.hart.reg(18)).toBe(1n); // one trap taken

    const faults: Action[] = Array.from({ length: TRAP_LIMIT + 10 }, () => [OP.Load4, 0n, 0n, 0n] as Action);
    const t = await virtioRound(module, 1, { script: faults });
    expect(t.end).toBe("trap-limit");
    expect(t.executed).toBe(TRAP_LIMIT);
    expect(t.problems).toEqual([]);
  });

  it("100 rounds of 2000 actions: every rule holds, devices fail and recover, requests get through", async () => {
    const report = await virtioCampaign(module, { from: 1, to: 100, actions: 2000, timeoutMs: 1500 });
    expect(report.failures).toEqual([]);
    expect(report.rounds).toBe(100);
    expect(Object.values(report.ends).reduce((a, b) => a + b, 0)).toBe(100);
    expect(report.ends.poweroff).toBeGreaterThan(90);
    expect(report.executed).toBeGreaterThan(90 * 2000);
    // hostile enough to break the devices, and the breakage is recovered from
    expect(report.failedDuring).toBeGreaterThan(100);
    expect(report.needsResetAtEnd).toBeGreaterThan(40);
    expect(report.recovered).toBe(report.needsResetAtEnd);
    // and valid enough that every device did real work
    const w = report.work;
    for (const n of [w.blkDone, w.netTx, w.netRx, w.rngRequests, w.balloonRequests]) expect(n).toBeGreaterThan(10);
    // the console too: guests open its port, bytes go both ways, the host is refused now and then (flow control)
    const con = report.byKind.console!;
    expect(con.failedDuring).toBeGreaterThan(20);
    expect(con.recovered).toBe(con.needsResetAtEnd);
    expect(w.consoleOpens).toBeGreaterThan(50);
    expect(w.consoleRx).toBeGreaterThan(10_000);
    expect(w.consoleGot).toBeGreaterThan(10_000);
    expect(w.consoleRefused).toBeGreaterThan(0);
  }, 120_000);
});

describe("the rounds notice a broken rule", () => {
  it("a device that throws something other than a guest error (the transport's safety net hides it)", async () => {
    const r = await virtioRound(module, 3, {
      tamper: (m) => { (m.rng as unknown as { queueNotify: () => void }).queueNotify = () => { throw new TypeError("a bug"); }; },
    });
    expect(r.problems.join("\n")).toMatch(/broke on something other than a guest error: TypeError: a bug/);
  });

  it("a device that does not recover after a reset", async () => {
    const r = await virtioRound(module, 3, { script: [], tamper: (m) => { (m.rng as unknown as { queueNotify: () => void }).queueNotify = () => {}; } });
    expect(r.problems).toEqual([expect.stringMatching(/^rng did not recover after a reset: a good request on queue 0 was not completed/)]);
  });

  it("a disk access outside the image, a used element for a head the ring does not have", async () => {
    const r = await virtioRound(module, 3, {
      script: [],
      tamper: (m) => {
        void m.disks[0].backend.write(FUZZ_DISK_BYTES - 256, new Uint8Array(512));
        const rng = m.rng as unknown as { queueNotify: (q: number) => void };
        const real = rng.queueNotify.bind(rng);
        rng.queueNotify = (q) => { const vq = m.virtio[2].transport.queues[q]; vq.push(vq.num, 0); real(q); };
      },
    });
    expect(r.problems.join("\n")).toMatch(/disk: write of 512 bytes at 65280 \(disk of 65536\)/);
    expect(r.problems.join("\n")).toMatch(/rng: queue 0 got a used element for head 4, past its size 4/);
  });

  it("a device state that does not survive a snapshot", async () => {
    const r = await virtioRound(module, 3, {
      machineSnapshot: true, actions: 6000,
      tamper: (m) => { m.virtio[3].transport.saveState = () => { throw new Error("unsaveable"); }; },
    });
    expect(r.problems).toContain("balloon: its state does not save: unsaveable");
    expect(r.problems.join("\n")).toMatch(/the machine's state does not save: Error: unsaveable/);
  });

  it("a console that never tells a refused host there is room again after a reset dropped what was pending", async () => {
    const r = await virtioRound(module, 3, {
      script: [],
      tamper: (m) => {
        const c = m.agentChannel!;
        const reset = c.reset.bind(c);
        c.reset = () => { const drain = c.onDrain; c.onDrain = null; try { reset(); } finally { c.onDrain = drain; } };
        c.send(new Uint8Array(10_000)); // the host's first send is then refused (over the round's limit)
      },
    });
    expect(r.problems).toEqual([expect.stringMatching(/^console: send\(\) was refused and nothing is pending any more, but onDrain never came/)]);
  });

  it("a host that throws", async () => {
    const notTheHart = new WebAssembly.Module(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
    const report = await virtioCampaign(notTheHart, { from: 1, to: 2, actions: 10 });
    expect(report.failures.map((f) => f.seed)).toEqual([1, 2]);
    expect(report.failures[0].problem).toMatch(/^the host threw/);
  });
});
