// The VM worker's class (web/vm/vm-host.ts) driven in Node, with the shared memory the page would hand it: a VM
// started from the template answers; live migration from one VmHost to another over a BroadcastChannel (as two
// tabs' workers do), the loop counting on and the source stopping for good; a fork whose disk is copy-on-write.

import { describe, it, expect, afterEach } from "vitest";
import { readFileSync } from "node:fs";
import { VmHost, consoleBacklogBytes, CONSOLE_BACKLOG, CONSOLE_BACKLOG_MIN, CONSOLE_BACKLOG_LINES } from "../vm/vm-host.ts";
import { ByteRing } from "../shared/ring.ts";
import { StatsBlockReader, STATS_BLOCK_BYTES } from "../shared/stats-block.ts";
import { CTRL, CTRL_WORDS, type VmEvent, type VmInit, type VmOrigin, type VmIncoming } from "../shared/protocol.ts";
import { NicChannel } from "../net/nic-channel.ts";
import { loadHartModule } from "../../emulator-core/src/node/hart-module.ts";
import { openSnapshot } from "../../emulator-core/src/snapshot/snapshot.ts";
import type { MachineSpec } from "../../emulator-core/src/machine/description.ts";

const images = new URL("../../public/images/", import.meta.url);
const hart = loadHartModule();
const boot = { kernel: new Uint8Array(readFileSync(new URL("Image", images))), initrd: new Uint8Array(readFileSync(new URL("initramfs.cpio.gz", images))) };
const template = await openSnapshot(new Uint8Array(readFileSync(new URL("template.snap", images))));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** command markers are numbered across VMs: a restored console shows the original's earlier ones again */
let seq = 0;

/** A VmHost with its rings and control block, and the page's side of the console (drained into `text`). */
class TestVm {
  readonly host: VmHost;
  readonly ctrl = new Int32Array(new SharedArrayBuffer(CTRL_WORDS * 4));
  readonly output = ByteRing.create(1 << 18);
  readonly input = ByteRing.create(1 << 14);
  /** the counters the worker publishes for the page's meters */
  readonly statsBuffer = new SharedArrayBuffer(STATS_BLOCK_BYTES);
  readonly statsBlock = new StatsBlockReader(this.statsBuffer);
  readonly events: VmEvent[] = [];
  text = "";
  private readonly timer: ReturnType<typeof setInterval>;

  /** the page stops taking console output (a hidden tab) */
  paused = false;

  constructor(readonly name: string, opts: { last: number; diskMiB?: number; from?: VmOrigin; incoming?: VmIncoming; consoleBacklog?: number; jit?: boolean }) {
    this.host = new VmHost({ sharedThread: true });
    const mac = `52:54:00:12:50:${opts.last.toString(16).padStart(2, "0")}`;
    const nics = [NicChannel.create(`${name}/eth0`, mac)];
    const spec: MachineSpec = {
      ramMiB: 64, cmdline: `console=ttyS0 hostname=${name}`, deterministic: false,
      disks: opts.diskMiB ? [{ sizeBytes: opts.diskMiB << 20, serial: "tabvisor-disk" }] : [],
      nics: [{ mac: mac.split(":").map((h) => parseInt(h, 16)) }], rng: true, balloon: true, agent: true,
    };
    const init: VmInit = {
      hart, images: boot, spec, ctrl: this.ctrl.buffer as SharedArrayBuffer, output: this.output.buffer, input: this.input.buffer,
      stats: this.statsBuffer, nics, template: { spec: template.spec, state: template.state }, from: opts.from, incoming: opts.incoming,
      consoleBacklogBytes: opts.consoleBacklog, // as the page passes it (?consoleBacklogKiB=)
      jit: opts.jit,
    };
    this.host.init(init, (e) => { this.events.push(e); });
    this.timer = setInterval(() => this.drain(), 10);
  }

  private drain(): void {
    if (this.paused) return;
    const bytes = this.output.read(1 << 18);
    if (bytes.length) this.text += new TextDecoder().decode(bytes).replace(/\r/g, "");
    if (Atomics.load(this.ctrl, CTRL.WANT_SPACE)) { Atomics.store(this.ctrl, CTRL.WANT_SPACE, 0); this.ring(); }
  }

  ring(): void {
    Atomics.add(this.ctrl, CTRL.DOORBELL, 1);
    Atomics.notify(this.ctrl, CTRL.DOORBELL);
  }

  /** A control call as the page makes one: counted as pending, then the bell. */
  call<T>(fn: (h: VmHost) => T): T {
    Atomics.add(this.ctrl, CTRL.PENDING_CALLS, 1);
    this.ring();
    return fn(this.host);
  }

  async command(cmd: string, timeout = 20_000): Promise<string> {
    const n = ++seq;
    this.input.write(new TextEncoder().encode(`echo "@@B""EGIN${n}@@"; ${cmd}; echo "@@E""ND${n}@@"\n`));
    this.ring();
    const t0 = Date.now();
    for (;;) {
      const m = new RegExp(`^@@BEGIN${n}@@\\n([\\s\\S]*?)^@@END${n}@@$`, "m").exec(this.text);
      if (m) return m[1].replace(/\n$/, "");
      if (Date.now() - t0 > timeout) throw new Error(`${this.name}: no answer to ${cmd}:\n${this.text.slice(-500)}`);
      await sleep(20);
    }
  }

  get state(): string { return this.call((h) => h.stats()).state; }

  /** The guest said it is ready (its shell runs under its own name). */
  async ready(timeout = 60_000): Promise<void> {
    const t0 = Date.now();
    while (!this.events.some((e) => e.kind === "ready")) {
      if (Date.now() - t0 > timeout) throw new Error(`${this.name} never became ready:\n${this.text.slice(-500)}`);
      await sleep(20);
    }
  }

  stop(): void {
    clearInterval(this.timer);
    if (this.host.stats(false).state !== "stopped") this.host.powerOff();
  }
}

const made: TestVm[] = [];
afterEach(() => { for (const vm of made.splice(0)) vm.stop(); });
const vm = (name: string, opts: ConstructorParameters<typeof TestVm>[1]) => { const v = new TestVm(name, opts); made.push(v); return v; };
const count = async (v: TestVm) => {
  for (let i = 0; i < 50; i++) {
    const n = Number(/N=(\d+)/.exec(await v.command("echo N=$(cat /tmp/n 2>/dev/null)"))?.[1] ?? 0);
    if (n > 0) return n;
  }
  return 0;
};

describe("VmHost (the VM worker's class) in Node", () => {
  it("takes the console backlog bound it is given, whole, and never below CONSOLE_BACKLOG_MIN", () => {
    expect(consoleBacklogBytes(undefined)).toBe(CONSOLE_BACKLOG);
    expect(consoleBacklogBytes(NaN)).toBe(CONSOLE_BACKLOG);
    expect(consoleBacklogBytes(0)).toBe(CONSOLE_BACKLOG_MIN);
    expect(consoleBacklogBytes(-5)).toBe(CONSOLE_BACKLOG_MIN);
    expect(consoleBacklogBytes(300_000.7)).toBe(300_000);
    expect(consoleBacklogBytes(64 << 20)).toBe(64 << 20);
  });

  it("keeps console output the page does not take, up to its backlog: then the oldest goes, with a mark, and the guest never waits", async () => {
    const v = vm("backlog", { last: 10, consoleBacklog: 64 << 10 });
    v.call((h) => h.start());
    await v.ready();
    await v.command("true"); // the prompt is drawn
    v.paused = true;
    // ~400 KB while nothing is taken: the 256 KiB ring fills, 64 KiB wait behind it, the rest is dropped
    v.input.write(new TextEncoder().encode("seq 1 60000; echo end-$((6*7)); touch /tmp/done\n"));
    v.ring();
    const done = async () => new TextDecoder().decode((await v.call((h) => h.agentExec("test -e /tmp/done && echo yes || echo no"))).stdout).trim();
    await expect.poll(done, { timeout: 120_000, interval: 300 }).toBe("yes"); // the guest finished, nothing drawn
    v.paused = false;
    v.ring();
    await expect.poll(() => /^end-42$/m.test(v.text), { timeout: 30_000 }).toBe(true);
    const mark = /\[… (\d+) KB of output skipped while the console was not shown …\]/.exec(v.text);
    expect(mark).not.toBeNull();
    const after = v.text.slice(v.text.indexOf(mark![0])).split("\n").filter((l) => /^\d+$/.test(l)).map(Number);
    expect(after.at(-1)).toBe(60000);
    // what was kept is whole and in order, from the first line after the mark (lines are dropped whole)
    expect(after.every((n, i) => i === 0 || n === after[i - 1] + 1)).toBe(true);
    expect(v.text.slice(v.text.indexOf(mark![0]) + mark![0].length).split("\n")[1]).toBe(String(after[0]));
    // and no more lines than the terminal keeps in its scrollback (what it could not show is not kept either)
    expect(after.length).toBeLessThanOrEqual(CONSOLE_BACKLOG_LINES);
    // what was kept after the mark is at most the backlog (plus the ring's worth that was already in it before)
    expect(after.length * 6).toBeLessThan(70 << 10);
    const before = v.text.slice(0, v.text.indexOf(mark![0])).split("\n").filter((l) => /^\d+$/.test(l)).map(Number);
    expect(before[0]).toBe(1); // the start, up to what the ring held
    expect(after[0] - before.at(-1)! - 1).toBeGreaterThan(10_000); // the middle is what was skipped
  }, 180_000);

  it("publishes its counters in shared memory as its loop turns: the page's meters need no call, and GEN moves when the state does", async () => {
    const v = vm("meters", { last: 11 });
    expect(v.statsBlock.age()).toBeLessThan(1000); // published once made ("created")
    v.call((h) => h.start());
    await v.ready();
    const whole = v.host.stats(false);
    const gen = v.statsBlock.gen;
    expect(gen).toBeGreaterThan(0);
    const a = v.statsBlock.read(whole)!;
    // an idle guest's worker sleeps (the page knows it lives from SLEEPING, without waking it), its block current
    await expect.poll(() => v.statsBlock.asleep, { timeout: 10_000, interval: 20 }).toBe(true);
    expect(v.host.stats(false).busyMs - v.statsBlock.read(whole)!.busyMs).toBeLessThan(300); // at most one publish interval behind
    expect(a.state).toBe("running");
    // the guest works for a while: its counters move in the block with no call made meanwhile
    v.input.write(new TextEncoder().encode("i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; echo loop-$((6*7))\n"));
    v.ring();
    await expect.poll(() => /^loop-42$/m.test(v.text), { timeout: 60_000 }).toBe(true);
    await sleep(600);
    const b = v.statsBlock.read(whole)!;
    expect(b.instret).toBeGreaterThan(a.instret + 1e6);
    expect(b.busyMs).toBeGreaterThan(a.busyMs);
    expect(b.atMs).toBeGreaterThan(a.atMs);
    // the block's numbers are the worker's own
    const now = v.host.stats(false);
    expect(b.busyMs).toBeLessThanOrEqual(now.busyMs);
    expect(now.busyMs - b.busyMs).toBeLessThan(300);
    expect(b.net.cards).toBe(1);
    expect(b.balloon?.ramPages).toBe(64 * 256);
    // the guest is asked for its memory statistics meanwhile (the page no longer calls stats() to ask)
    await expect.poll(() => v.statsBlock.read(whole)!.balloon?.memTotal ?? 0, { timeout: 10_000 }).toBeGreaterThan(16 << 20);
    expect(v.statsBlock.gen).toBe(gen); // nothing but numbers changed
    v.call((h) => h.pause());
    expect(v.statsBlock.gen).toBeGreaterThan(gen); // the page fetches the whole stats again
  }, 120_000);

  it("with the JIT on, its machine compiles hot code and the counters reach the stats block; turned off, the next reset builds a machine without it", async () => {
    // (no disk: the template fits, so the JIT's machine need not boot Linux, which compiles thousands of blocks)
    const v = vm("jitvm", { last: 12, jit: true });
    v.call((h) => h.start());
    await v.ready();
    const whole = v.host.stats(false);
    expect(whole.startedFrom).toBe("template");
    expect(whole.jit).toBeDefined();
    // (a generous limit: what the compiler costs is not this test's business, and the machine is shared)
    await v.command("i=0; while [ $i -lt 1000 ]; do i=$((i+1)); done", 150_000);
    const j = v.host.stats(false).jit!;
    expect(j.compiled).toBeGreaterThan(0);
    expect(j.instret).toBeGreaterThan(0);
    expect(j.compileMs).toBeGreaterThan(0);
    expect(j.compileMs).toBeLessThan(v.host.stats(false).busyMs); // compiling is part of the worker's busy time
    // the page's reader: the block's numbers, published as the loop turns, with no call
    await expect.poll(() => v.statsBlock.read(whole)!.jit!.compiled, { timeout: 5000 }).toBeGreaterThanOrEqual(j.compiled);
    // turned off: the machine running keeps its JIT until the next start
    v.call((h) => h.setJit(false));
    expect(v.host.stats(false).jit).toBeDefined();
    v.events.length = 0;
    v.call((h) => h.reset());
    await v.ready();
    const after = v.host.stats(false);
    expect(after.jit).toBeUndefined();
    expect(after.startedFrom).toBe("boot");
    // the new machine has the VM's console and control channel
    expect(await v.command("echo $((6*7))")).toBe("42");
    expect(new TextDecoder().decode((await v.call((h) => h.agentExec("hostname"))).stdout)).toBe("jitvm\n");
    await expect.poll(() => v.statsBlock.read(after)?.jit, { timeout: 5000 }).toBeUndefined();
  }, 300_000);

  it("talks to the guest's agent: a command's status and output, a file in with progress and back out", async () => {
    const v = vm("agentvm", { last: 9 });
    v.call((h) => h.start());
    await v.ready();
    const r = await v.call((h) => h.agentExec("hostname; exit 4"));
    expect(new TextDecoder().decode(r.stdout)).toBe("agentvm\n");
    expect(r.exitCode).toBe(4);
    const data = new Uint8Array(3 << 20).map((_, i) => (i * 31) >> 3);
    await v.call((h) => h.agentPut("/root/uploads/x.bin", data, { transfer: "up1" }));
    const progress = v.events.filter((e) => e.kind === "transfer" && e.id === "up1");
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.at(-1)).toEqual({ kind: "transfer", id: "up1", done: data.length, total: data.length });
    const back = await v.call((h) => h.agentGet("/root/uploads/x.bin"));
    expect(Buffer.from(back).equals(Buffer.from(data))).toBe(true);
    // a restore puts another machine in: the agent follows it
    const saved = await v.call((h) => h.saveState());
    await v.call((h) => h.restore(saved));
    expect(new TextDecoder().decode((await v.call((h) => h.agentExec("cat /root/uploads/x.bin | wc -c"))).stdout).trim()).toBe(String(data.length));
    v.call((h) => h.powerOff());
    await expect(v.call((h) => h.agentExec("true"))).rejects.toThrow(/the VM is stopped/);
  }, 120_000);

  it("live-migrates a counting VM to another VmHost: the loop counts on there, the source stops for good", async () => {
    const src = vm("mover", { last: 1 });
    src.call((h) => h.start());
    await src.ready();
    expect(await src.command("hostname")).toBe("mover");
    await src.command("(i=0; while :; do i=$((i+1)); echo $i > /tmp/n; done) & true");
    const before = await count(src);
    expect(before).toBeGreaterThan(0);

    const channel = `test-vm-host-${process.pid}`;
    const dst = vm("mover", { last: 1, incoming: { channel, from: "Tab 1" } });
    dst.call((h) => h.start()); // listens on the channel from here
    const report = await src.call((h) => h.migrateOut(channel, "Tab 2"));
    expect(report.rounds[0]).toBeGreaterThan(1000);
    expect(report.downtimeMs).toBeLessThan(2000);
    expect(src.state).toBe("stopped");
    expect(src.call((h) => h.stats()).instret).toBe(0); // no machine runs there any more
    src.call((h) => h.start());
    expect(src.state).toBe("stopped"); // a migrated VM cannot be started again where it was

    expect(dst.events).toContainEqual({ kind: "ready" });
    expect(dst.state).toBe("running");
    await expect.poll(() => dst.text).toMatch(/\[migrated from Tab 1\]/); // (the page's side drains the ring every 10 ms)
    expect(await count(dst)).toBeGreaterThan(before);
    expect(await dst.command("hostname")).toBe("mover");
    expect(dst.call((h) => h.stats()).startedFrom).toBe("migration");
  }, 120_000);

  it("a migration to a VM of another shape fails on both sides and the source runs on", async () => {
    const src = vm("stay", { last: 2 });
    src.call((h) => h.start());
    await src.ready();
    expect(await src.command("echo up")).toBe("up");
    const channel = `test-vm-host-bad-${process.pid}`;
    const dst = vm("stay", { last: 2, diskMiB: 16, incoming: { channel, from: "Tab 1" } });
    dst.call((h) => h.start());
    await expect(src.call((h) => h.migrateOut(channel, "Tab 2"))).rejects.toThrow(/the migration to Tab 2 failed: .*another kind of machine/);
    expect(src.state).toBe("running");
    expect(await src.command("echo still-up")).toBe("still-up");
    for (let i = 0; i < 50 && dst.state !== "error"; i++) await sleep(20);
    expect(dst.call((h) => h.stats()).state).toBe("error");
  }, 120_000);

  it("a fork's disk is copy-on-write: it starts on the original's shared layers; each writes its own blocks", async () => {
    const orig = vm("orig", { last: 3, diskMiB: 16 });
    orig.call((h) => h.start());
    await orig.ready();
    await orig.command("printf before-fork | dd of=/dev/vda bs=512 seek=3 conv=notrunc 2>/dev/null; sync", 60_000);
    const origin = await orig.call((h) => h.saveState());
    expect(origin.disks?.[0].layers.length).toBe(1);
    expect(origin.disks![0].layers[0].data.buffer).toBeInstanceOf(SharedArrayBuffer);
    const copy = vm("copy", { last: 4, diskMiB: 16, from: origin });
    copy.call((h) => h.start());
    await copy.ready();
    const sector = (v: TestVm, n: number) => v.command(`dd if=/dev/vda bs=512 skip=${n} count=1 2>/dev/null | tr -d '\\0'; echo`, 30_000);
    expect(await sector(copy, 3)).toBe("before-fork");
    await copy.command("printf after--fork | dd of=/dev/vda bs=512 seek=3 conv=notrunc 2>/dev/null; sync");
    expect(await sector(copy, 3)).toBe("after--fork");
    expect(await sector(orig, 3)).toBe("before-fork");
    const [dO, dC] = [orig.call((h) => h.stats()).disk!, copy.call((h) => h.stats()).disk!];
    expect(dC.sharedBytes).toBe(dO.sharedBytes);
    expect(dC.ownBytes).toBe(4096);
    expect(await copy.command("hostname")).toBe("copy");
  }, 120_000);
});
