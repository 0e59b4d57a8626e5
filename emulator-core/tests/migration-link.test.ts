// Live migration over a channel whose other end may vanish or refuse (migration-link.ts), with real VMs in Node
// talking over Node's BroadcastChannel as two tabs' workers do: a move that completes, a target that goes quiet
// halfway (the source's guest runs on), a target that refuses the machine, a source that gives up, messages out of
// order. Also the RARP frame a moved card announces itself with.

import { describe, it, expect, afterEach } from "vitest";
import { readFileSync } from "node:fs";
import { NodeVm } from "../src/node/vm.ts";
import { MigrationTarget, type MigrationMessage } from "../src/snapshot/migration.ts";
import { broadcastPort, MigrationReceiver, MigrationSender, type LinkMessage, type LinkPort } from "../src/snapshot/migration-link.ts";
import { announceFrame, ETHERTYPE_RARP } from "../src/net/announce.ts";
import { readU16 } from "../src/net/packet.ts";
import { HartStateView } from "../src/hart-state.ts";

const template = readFileSync(new URL("../../public/images/template.snap", import.meta.url));
const vms: NodeVm[] = [];
afterEach(() => { for (const vm of vms.splice(0)) vm.stop(); });
const keep = <T extends NodeVm>(vm: T): T => { vms.push(vm); return vm; };
let channels = 0;
const channel = () => `test-migrate-${process.pid}-${++channels}`;

/** A running VM from the template (64 MiB, one card) counting in a loop. */
async function counting(hostname: string): Promise<NodeVm> {
  const vm = keep(await NodeVm.fromTemplate(template, { ramMiB: 64, nics: 1, balloon: true, hostname, macs: [[0x52, 0x54, 0, 0x12, 0x40, 1]] }));
  vm.start();
  await vm.command("(i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.01; done) & true", 20_000);
  return vm;
}
const count = async (vm: NodeVm) => {
  for (let i = 0; i < 50; i++) {
    const n = Number(/N=(\d+)/.exec(await vm.command("echo N=$(cat /tmp/n 2>/dev/null)"))?.[1] ?? 0);
    if (n > 0) return n;
  }
  return 0;
};

/** The receiving end of a migration into a blank VM of `spec`'s shape, as the target tab's worker builds it. */
function receiver(name: string, opts: { idleTimeoutMs?: number; ackDelayMs?: number } = {}) {
  let vm: NodeVm | undefined;
  const target = new MigrationTarget((spec) => { vm = keep(new NodeVm({ spec, blank: true })); return vm.machine; });
  const raw = broadcastPort(name);
  const delay = opts.ackDelayMs;
  const port: LinkPort = delay === undefined ? raw
    // (the last acknowledgement may come after the test has closed the channel)
    : { ...raw, post: (m) => { if (m.t === "ack") setTimeout(() => { try { raw.post(m); } catch { /* closed */ } }, delay); else raw.post(m); } };
  const link = new MigrationReceiver(port, target, opts);
  return { link, port, vm: () => vm };
}

describe("live migration over a link", () => {
  it("moves a VM: every message acknowledged, the target confirms, the loop counts on there", async () => {
    const src = await counting("mover");
    const before = await count(src);
    const name = channel();
    const rx = receiver(name, { ackDelayMs: 5 }); // a target slower than the source: the window has to hold it back
    // the source's port, counting the messages it has out unacknowledged
    const raw = broadcastPort(name);
    let posted = 0, acked = 0, most = 0;
    const port: LinkPort = {
      post: (m) => { if (m.t === "data") most = Math.max(most, ++posted - acked); raw.post(m); },
      listen: (fn) => raw.listen((m) => { if (m.t === "ack") acked = m.seq + 1; fn(m); }),
      close: () => raw.close(),
    };
    const sender = new MigrationSender(port, { window: 2 });
    const arrived = rx.link.arrival.then(({ machine, console }) => {
      const vm = rx.vm()!;
      expect(vm.machine).toBe(machine);
      expect(console).toBe("tail of the console");
      vm.start();
      rx.link.confirm();
      return vm;
    });
    const stats = await src.migrate((m) => sender.send(m, m.kind === "end" ? "tail of the console" : undefined), { chunkPages: 256 });
    await sender.finished();
    const moved = await arrived;
    port.close(); rx.port.close();
    expect(stats.rounds[0]).toBeGreaterThan(4 * 256); // several messages...
    expect(most).toBe(2); // ...never more than the window out at once
    const after = await count(moved);
    expect(after).toBeGreaterThan(before);
    expect(await moved.command("hostname")).toBe("mover");
  }, 120_000);

  it("a target that goes quiet halfway: the source gives up in time and its guest runs on", async () => {
    const src = await counting("stayer");
    const name = channel();
    // a target that takes two messages, then says nothing more (its tab was closed)
    const quiet = broadcastPort(name);
    let seen = 0;
    quiet.listen((m) => { if (m.t === "data" && seen++ < 2) quiet.post({ t: "ack", seq: m.seq }); });
    const port = broadcastPort(name);
    const sender = new MigrationSender(port, { window: 1, ackTimeoutMs: 500 });
    const t0 = performance.now();
    await expect(src.migrate((m) => sender.send(m), { chunkPages: 64 })).rejects.toThrow(/did not acknowledge the migration's data within 500 ms/);
    expect(performance.now() - t0).toBeLessThan(10_000);
    sender.abort("gave up");
    port.close(); quiet.close();
    const a = await count(src);
    await new Promise((r) => setTimeout(r, 300));
    expect(await count(src)).toBeGreaterThan(a); // the guest was released: it counts on
  }, 120_000);

  it("a target that cannot take the machine says why, and the source's guest runs on", async () => {
    const src = await counting("refused");
    const name = channel();
    const target = new MigrationTarget(() => { throw new Error("no room for 64 MiB here"); });
    const rxPort = broadcastPort(name);
    const link = new MigrationReceiver(rxPort, target);
    const port = broadcastPort(name);
    const sender = new MigrationSender(port);
    await expect(src.migrate((m) => sender.send(m))).rejects.toThrow(/no room for 64 MiB here/);
    await expect(link.arrival).rejects.toThrow(/no room for 64 MiB here/);
    port.close(); rxPort.close();
    expect(await src.command("echo alive-$((1+1))")).toBe("alive-2");
  }, 120_000);

  it("the target hears when the source gives up, and when it goes quiet", async () => {
    const name = channel();
    const rx = receiver(name);
    const port = broadcastPort(name);
    new MigrationSender(port).abort("the user closed the tab");
    await expect(rx.link.arrival).rejects.toThrow(/the source gave up: the user closed the tab/);
    port.close(); rx.port.close();

    const quiet = receiver(channel(), { idleTimeoutMs: 200 });
    await expect(quiet.link.arrival).rejects.toThrow(/no migration data came for 200 ms/);
    quiet.port.close();
  });

  it("messages out of order end the migration on both ends", async () => {
    const sent: LinkMessage[] = [];
    let toTarget: ((m: LinkMessage) => void) | undefined;
    const targetPort: LinkPort = { post: (m) => sent.push(m), listen: (fn) => { toTarget = fn; }, close: () => {} };
    const link = new MigrationReceiver(targetPort, new MigrationTarget(() => { throw new Error("not reached"); }));
    const begin: MigrationMessage = { kind: "pages", round: 0, indices: new Uint32Array(0), data: new Uint8Array(0) };
    toTarget!({ t: "data", seq: 1, m: begin });
    await expect(link.arrival).rejects.toThrow(/migration message 1 arrived where 0 was due/);
    expect(sent).toEqual([{ t: "fail", why: "migration message 1 arrived where 0 was due" }]);
  });

  it("a reboot during a migration marks all of RAM for sending again; the hart's saved state carries no write log", async () => {
    const vm = keep(await NodeVm.fromTemplate(template, { ramMiB: 64, nics: 1, balloon: true, hostname: "rebooter", macs: [[0x52, 0x54, 0, 0x12, 0x40, 7]] }));
    const log = vm.machine.dirtyLog();
    log.start();
    expect(log.collect().length).toBe(0);
    const saved = vm.machine.hart.saveState();
    const v = new HartStateView(new DataView(saved.block.buffer, saved.block.byteOffset, saved.block.length));
    expect(vm.machine.hart.state.dirtyLog).toBe(1); // logging here...
    expect([v.dirtyLog, v.flushRequest]).toEqual([0, 0]); // ...but not in what a target restores
    vm.machine.reboot(); // the host clears RAM and loads the kernel again, behind the hart's back
    expect(log.collect().length).toBe(64 * 256);
    log.stop();
  });

  it("a migration that begins twice is refused", async () => {
    const vm = keep(new NodeVm({ ramMiB: 64, nics: 1, blank: true }));
    const target = new MigrationTarget((spec) => keep(new NodeVm({ spec, blank: true })).machine);
    await target.receive({ kind: "begin", spec: vm.spec });
    await expect(target.receive({ kind: "begin", spec: vm.spec })).rejects.toThrow(/a migration began twice/);
  });

  it("a moved card announces itself with a broadcast RARP from its MAC", () => {
    const mac = [0x52, 0x54, 0, 0x12, 0x40, 9];
    const f = announceFrame(mac);
    expect(f.length).toBe(60);
    expect([...f.subarray(0, 6)]).toEqual([255, 255, 255, 255, 255, 255]);
    expect([...f.subarray(6, 12)]).toEqual(mac);
    expect(readU16(f, 12)).toBe(ETHERTYPE_RARP);
    expect(readU16(f, 20)).toBe(3); // request reverse
    expect([...f.subarray(22, 28)]).toEqual(mac);
    expect([...f.subarray(32, 38)]).toEqual(mac);
  });
});
