// The machine description (what a snapshot will store) and the board Machine.create() builds from it, and the
// shared run loop driven from Node by a host whose every call is recorded. The guests here are a few hand-assembled
// instructions behind a RISC-V Linux Image header: enough for the machine to boot them, fast and exact.

import { describe, it, expect } from "vitest";
import { Machine } from "../src/machine/machine.ts";
import {
  validateSpec, makeSpec, virtioDevices, MachineSpecError, VIRTIO_BASE, type MachineSpec,
} from "../src/machine/description.ts";
import { MachineRunner, runSlice, type RunnerHost, type SliceDecision } from "../src/machine/runner.ts";
import { ConsoleInput, consoleInputRoom } from "../src/machine/console-input.ts";
import { MemoryBlockBackend } from "../src/machine/virtio/backends.ts";
import { REG } from "../src/machine/virtio/mmio.ts";
import { loadHartModule } from "../src/node/hart-module.ts";
import { tinyImage, IDLE_FOREVER, ECALL, JUMP_SELF, JUMP_BACK } from "./tiny-image.ts";

// RV64 encodings (and tiny-image.ts)
const LI_A7_SRST = [0x535258b7, 0x35488893]; // lui a7, 0x53525; addi a7, a7, 0x354 (the SRST extension id)
const LI_A6_0 = 0x00000813;
const liA0 = (v: number) => ((v << 20) | (10 << 7) | 0x13) >>> 0;
const LI_A1_0 = 0x00000593;

/** SBI system reset: type 0 shuts down, 1 reboots. */
const srst = (type: number) => [...LI_A7_SRST, LI_A6_0, liA0(type), LI_A1_0, ECALL, JUMP_SELF];

const spec = (over: Partial<MachineSpec> = {}): MachineSpec => makeSpec({ ramMiB: 32, ...over });

describe("the machine description", () => {
  const good = {
    ramMiB: 64, cmdline: "console=ttyS0", deterministic: false,
    disks: [{ sizeBytes: 1 << 20, readOnly: true, serial: "disk-a" }, { sizeBytes: 4096 }],
    nics: [{ mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56] }],
    rng: true, balloon: { stats: false }, agent: true,
  };

  it("is plain data that survives JSON and checks out the same", () => {
    const checked = validateSpec(JSON.parse(JSON.stringify(good)));
    expect(checked).toEqual(good);
    expect(validateSpec(checked)).toEqual(checked);
  });

  it("reads a description from before the agent channel as one without it", () => {
    const { agent: _, ...older } = good;
    expect(validateSpec(older)).toEqual({ ...good, agent: false });
  });

  it("fills in the defaults", () => {
    expect(makeSpec({ ramMiB: 128 })).toEqual({
      ramMiB: 128, cmdline: "console=ttyS0", deterministic: false, disks: [], nics: [], rng: true, balloon: false, agent: true,
    });
  });

  it("refuses a bad field by name", () => {
    const bad = (patch: Record<string, unknown>, field: string, re: RegExp) => {
      let err: unknown;
      try { validateSpec({ ...good, ...patch }); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(MachineSpecError);
      expect((err as MachineSpecError).field).toBe(field);
      expect((err as Error).message).toMatch(re);
    };
    bad({ ramMiB: 0 }, "ramMiB", /whole number of MiB/);
    bad({ ramMiB: 1.5 }, "ramMiB", /1\.5/);
    bad({ ramMiB: undefined }, "ramMiB", /missing/);
    bad({ cmdline: 7 }, "cmdline", /string/);
    bad({ cmdline: "x".repeat(2000) }, "cmdline", /longer/);
    bad({ cmdline: "a\0b" }, "cmdline", /NUL/);
    bad({ deterministic: "yes" }, "deterministic", /true or false/);
    bad({ disks: {} }, "disks", /array/);
    bad({ disks: [{ sizeBytes: 1000 }] }, "disks[0].sizeBytes", /512-byte sectors/);
    bad({ disks: [{ sizeBytes: 512, serial: "é" }] }, "disks[0].serial", /printable ASCII/);
    bad({ disks: [{ sizeBytes: 512, serial: "x".repeat(21) }] }, "disks[0].serial", /20/);
    bad({ disks: [{ sizeBytes: 512, color: "red" }] }, "disks[0].color", /not a field/);
    bad({ nics: [{ mac: [1, 2, 3] }] }, "nics[0].mac", /6 numbers/);
    bad({ nics: [{ mac: [0x53, 0, 0, 0, 0, 1] }] }, "nics[0].mac", /unicast/);
    bad({ nics: [{ mac: [0x52, 0, 0, 0, 0, 256] }] }, "nics[0].mac", /0 to 255/);
    bad({ rng: 1 }, "rng", /true or false/);
    bad({ balloon: "on" }, "balloon", /object/);
    bad({ balloon: { stats: 1 } }, "balloon.stats", /true or false/);
    bad({ agent: "yes" }, "agent", /true or false/);
    bad({ cpus: 2 }, "cpus", /not a field/);
    bad({ disks: Array(6).fill({ sizeBytes: 512 }) }, "disks, nics, rng, balloon and agent", /need 10 virtio slots; the board has 8/);
    expect(() => validateSpec(null)).toThrow(MachineSpecError);
    expect(() => validateSpec([good])).toThrow(/must be an object/);
  });

  it("puts the virtio devices in a fixed order: disks, cards, rng, balloon, agent; slot i raises interrupt 1 + i", () => {
    const slots = virtioDevices(validateSpec(good));
    expect(slots.map((s) => `${s.kind}${s.index}@${s.slot}:irq${s.irq}`)).toEqual(
      ["disk0@0:irq1", "disk1@1:irq2", "nic0@2:irq3", "rng0@3:irq4", "balloon0@4:irq5", "agent0@5:irq6"]);
    expect(slots[4].base).toBe(VIRTIO_BASE + 4n * 0x1000n);
  });
});

describe("the board a description builds", () => {
  const module = loadHartModule();
  const boot = { kernel: tinyImage(IDLE_FOREVER) };

  it("maps each device where the description says, with the attached host parts", () => {
    const disks = [new MemoryBlockBackend(8192), new MemoryBlockBackend(4096, { readOnly: true })];
    const sent: Uint8Array[] = [];
    const m = Machine.create(module, spec({
      disks: [{ sizeBytes: 8192, serial: "first" }, { sizeBytes: 4096 }],
      nics: [{ mac: [0x52, 0x54, 0, 0, 0, 1] }, { mac: [0x52, 0x54, 0, 0, 0, 2] }],
      balloon: true,
    }), { boot, disks, nics: [{ backend: { send: (f) => sent.push(f) } }, { linkUp: false }] });
    // what a driver probing the slots finds: device ids 2 (blk), 1 (net), 4 (rng), 5 (balloon), 3 (console: the
    // agent channel), then nothing
    const ids = Array.from({ length: 8 }, (_, i) => Number(m.bus.read(VIRTIO_BASE + BigInt(i) * 0x1000n + BigInt(REG.DeviceID), 4) ?? -1));
    expect(ids).toEqual([2, 2, 1, 1, 4, 5, 3, -1]);
    expect(m.agentChannel).toBeDefined();
    expect(m.disks.map((d) => d.backend)).toEqual(disks);
    expect(m.disks[1].readOnly).toBe(true);
    expect(m.nics.map((n) => [...n.mac].join("."))).toEqual(["82.84.0.0.0.1", "82.84.0.0.0.2"]);
    expect(m.nics[0].backend).not.toBeNull();
    expect(m.nics[1].isLinkUp).toBe(false);
    expect(m.rng).toBeDefined();
    expect(m.balloon).toBeDefined();
  });

  it("refuses attachments that do not fit the description", () => {
    expect(() => Machine.create(module, spec({ disks: [{ sizeBytes: 4096 }] }), { boot }))
      .toThrow(/lists 1 disks but 0 disk backends/);
    expect(() => Machine.create(module, spec({ disks: [{ sizeBytes: 4096 }] }), { boot, disks: [new MemoryBlockBackend(8192)] }))
      .toThrow(/disks\[0\]\.sizeBytes is 4096 but the attached disk has 8192 bytes/);
    expect(() => Machine.create(module, spec({ disks: [{ sizeBytes: 4096, readOnly: false }] }),
      { boot, disks: [new MemoryBlockBackend(4096, { readOnly: true })] })).toThrow(/read-only/);
    expect(() => Machine.create(module, spec(), { boot, nics: [{}] })).toThrow(/lists 0 cards but 1 were attached/);
  });
});

/** A runner host that records what the loop asks of it; its sleeps return at once. */
function recordingHost(over: Partial<RunnerHost> & { decide?: (n: number) => SliceDecision } = {}) {
  const log: string[] = [];
  let wakes = 0;
  let slices = 0;
  const host: RunnerHost = {
    wakeToken: () => wakes,
    sleep: (token, ms) => { log.push(`sleep ${Math.round(ms)}${token === wakes ? "" : " (woken)"}`); },
    wake: () => { wakes++; },
    yieldToEvents: () => new Promise((r) => setImmediate(r)),
    beforeSlice: () => over.decide?.(slices++) ?? runSlice(5),
    halted: (m) => log.push(`halted ${m.exitStatus} ${m.haltReason}`),
    failed: (_m, e) => log.push(`failed ${(e as Error).message}`),
    ...over,
  };
  return { host, log };
}

describe("the run loop (MachineRunner)", () => {
  const module = loadHartModule();

  it("runs a guest until it powers off and reports it once", async () => {
    const m = Machine.create(module, spec(), { boot: { kernel: tinyImage(srst(0)) } });
    let runner!: MachineRunner;
    const { host, log } = recordingHost({ halted: (mm) => { log.push(`halted ${mm.exitStatus}`); runner.stop(); } });
    runner = new MachineRunner(host, m);
    await runner.run();
    expect(log).toEqual(["halted 0"]);
    expect(m.haltReason).toBe("powered off");
  });

  it("sleeps while the guest idles, as long as the next deadline allows, unless there is work", async () => {
    const m = Machine.create(module, spec(), { boot: { kernel: tinyImage(IDLE_FOREVER) } });
    let work = false;
    let runner!: MachineRunner;
    const { host, log } = recordingHost({
      hasWork: () => work,
      decide: (n) => {
        if (n === 2) work = true;
        if (n === 4) runner.stop();
        return runSlice(5);
      },
      // each sleep lasts 20 ms here: the machine counts them as idle time
      sleep: async (_token, ms) => { log.push(`sleep ${Math.round(ms)}`); await new Promise((r) => setTimeout(r, 20)); },
    });
    runner = new MachineRunner(host, m, { maxSleepMs: 300 });
    await runner.run();
    // no timer set: the guest waits for ever, the loop sleeps its longest; with work waiting it does not sleep
    expect(log).toEqual(["sleep 300", "sleep 300"]);
    expect(m.idleMs).toBeGreaterThanOrEqual(38);
    expect(m.idleMs).toBeLessThan(1000);
  });

  it("leaves a hart waiting in WFI when the host wakes early, until an enabled interrupt is pending", () => {
    const m = Machine.create(module, spec(), { boot: { kernel: tinyImage(IDLE_FOREVER) } });
    expect(m.runFor(5).kind).toBe("idle");
    const waited = m.hart.instret;
    // woken with nothing for the guest (the loop's longest sleep, a device with nothing new): no instruction runs,
    // where the guest's idle loop would have run to its next WFI
    for (let i = 0; i < 3; i++) expect(m.runFor(5).kind).toBe("idle");
    expect(m.hart.instret).toBe(waited);
    // a pending interrupt that is enabled ends the wait (not taken: sstatus.SIE is clear, so the loop goes on past
    // the WFI, which no longer stops while the interrupt is pending)
    const SSIP = 2n;
    m.hart.state.mie |= SSIP;
    m.hart.state.mipSoftware |= SSIP;
    expect(m.runFor(5).kind).toBe("slice");
    expect(m.hart.instret).toBeGreaterThan(waited + 100n);
  });

  it("holds the guest when the host says so, and tells the host how long", async () => {
    const m = Machine.create(module, spec(), { boot: { kernel: tinyImage(srst(0)) } });
    const held: number[] = [];
    let runner!: MachineRunner;
    const { host, log } = recordingHost({
      decide: (n) => {
        if (n === 3) runner.stop();
        return { run: false, ms: 40, held: (ms) => { held.push(ms); } };
      },
    });
    const sleep = host.sleep;
    // each hold lasts 10 ms here
    host.sleep = async (token, ms) => { await sleep(token, ms); await new Promise((r) => setTimeout(r, 10)); };
    runner = new MachineRunner(host, m);
    await runner.run();
    // stop() wakes the last sleep
    expect(log).toEqual(["sleep 40", "sleep 40", "sleep 40", "sleep 40 (woken)"]);
    expect(m.halted).toBe(false); // never ran
    expect(held.length).toBe(4); // told once per hold...
    for (const ms of held) expect(ms).toBeGreaterThanOrEqual(9); // ...how long it lasted
  });

  it("a guest reboot starts the machine over in place: same memory, RAM cleared, devices kept", async () => {
    const disk = new MemoryBlockBackend(4096);
    const m = Machine.create(module, spec({ disks: [{ sizeBytes: 4096 }] }), { boot: { kernel: tinyImage(srst(1)) }, disks: [disk] });
    const memory = m.hart.memory;
    const blk = m.disks[0];
    const mid = 16 << 20;
    const seen: string[] = [];
    let runner!: MachineRunner;
    const { host } = recordingHost({
      decide: (n) => {
        if (n === 0) m.hart.ram[mid] = 0x5a; // something the first boot left in RAM
        return runSlice(5);
      },
      rebooted: (mm) => {
        seen.push(`reboot ${mm.reboots}: ram ${mm.hart.ram[mid]}, same memory ${mm.hart.memory === memory}, same disk ${mm.disks[0] === blk}`);
        if (mm.reboots === 2) runner.stop();
      },
    });
    runner = new MachineRunner(host, m);
    await runner.run();
    expect(seen).toEqual(["reboot 1: ram 0, same memory true, same disk true", "reboot 2: ram 0, same memory true, same disk true"]);
    expect(m.halted).toBe(false);
  });

  it("stops running a machine whose emulator threw, until it is rebooted", async () => {
    const m = Machine.create(module, spec(), { boot: { kernel: tinyImage(IDLE_FOREVER) } });
    const real = m.runFor.bind(m);
    let fail = true;
    m.runFor = (ms) => { if (fail) { fail = false; throw new Error("boom"); } return real(ms); };
    let runner!: MachineRunner;
    const { host, log } = recordingHost({
      decide: (n) => {
        if (n === 2) m.reboot();
        if (n === 4) runner.stop();
        return runSlice(5);
      },
    });
    runner = new MachineRunner(host, m, { maxSleepMs: 7 });
    await runner.run();
    // failed, then held (a sleep of the longest) until the reboot, then running (and idling) again
    expect(log).toEqual(["failed boom", "sleep 7", "sleep 7", "sleep 7", "sleep 7 (woken)"]);
  });
});

describe("console input that waits for the guest", () => {
  const module = loadHartModule();

  it("is held until the guest opens the port, then handed over as fast as the guest empties the FIFO", () => {
    const m = Machine.create(module, spec(), { boot: { kernel: tinyImage(IDLE_FOREVER) } });
    const input = new ConsoleInput();
    input.push(new Uint8Array(5000).fill(0x61));
    const u = m.uart;
    expect(consoleInputRoom(m)).toBe(0); // the port is closed at power-on
    expect(input.pump(m)).toBe(false);
    u.write(4, 1, 0x0b); // MCR: DTR, RTS, OUT2
    expect(input.pump(m)).toBe(false); // the receive interrupt is still off
    u.write(1, 1, 0x01); // IER: received data available
    expect(input.ready(m)).toBe(true);
    expect(input.pump(m)).toBe(true);
    expect(u.rxPending).toBe(4096);
    expect(input.pump(m)).toBe(false); // not before the guest has read those
    for (let i = 0; i < 4096; i++) u.read(0, 1);
    expect(input.pump(m)).toBe(true);
    expect(u.rxPending).toBe(904);
    expect(input.pending).toBe(0);
    u.write(4, 1, 0x09); // the guest's tty is full and it drops RTS (hardware flow control)
    input.push(new Uint8Array([1]));
    for (let i = 0; i < 904; i++) u.read(0, 1);
    expect(input.pump(m)).toBe(false);
  });

  it("goes to a guest that reads the console through the SBI (hvc0) without opening the port", async () => {
    // legacy SBI console_getchar (extension 2) in a loop
    const m = Machine.create(module, spec(), { boot: { kernel: tinyImage([0x00200893 /* li a7, 2 */, ECALL, JUMP_BACK]) } });
    const input = new ConsoleInput();
    input.push(new TextEncoder().encode("hi"));
    expect(input.pump(m)).toBe(false);
    m.runFor(1);
    expect(m.sbiConsoleInput).toBe(true);
    expect(input.pump(m)).toBe(true);
    m.runFor(1);
    expect(m.uart.rxPending).toBe(0); // the guest took both bytes
  });
});
