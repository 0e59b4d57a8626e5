// Whole-machine snapshots in Node: taken while the guest computes, writes its disk and talks TCP to another VM;
// restored into a new VM that carries on as if nothing happened (its clock set to the host's). Deterministic mode
// saves the same bytes again after a restore. Bad files are refused with a message, and nothing running is touched.

import { describe, it, expect, afterEach } from "vitest";
import { writeFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { NodeVm } from "../src/node/vm.ts";
import { VirtualSwitch, attachNic } from "../src/net/switch.ts";
import { Gateway } from "../src/net/gateway.ts";
import { openSnapshot } from "../src/snapshot/snapshot.ts";
import { encodeState } from "../src/snapshot/codec.ts";
import { SnapshotError } from "../src/snapshot/state-value.ts";
import { SNAPSHOT_FORMAT } from "../src/snapshot/file.ts";
import { sendHostTime } from "../src/snapshot/template.ts";
import { scratchDirs } from "./scratch-dirs.ts";

const scratch = scratchDirs();

const vms: NodeVm[] = [];
afterEach(() => { for (const vm of vms.splice(0)) vm.stop(); });
const keep = <T extends NodeVm>(vm: T): T => { vms.push(vm); return vm; };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function booted(opts: ConstructorParameters<typeof NodeVm>[0]): Promise<NodeVm> {
  const vm = keep(new NodeVm({ ramMiB: 128, ...opts }));
  vm.start();
  await vm.waitFor("@@GUEST_READY@@", 60_000, 0);
  await vm.command("true");
  return vm;
}

describe("snapshots", () => {
  it("a CPU-bound loop and a disk write carry on after a restore", async () => {
    const dir = scratch("tabvisor-snap-");
    const disk = join(dir, "disk.img");
    writeFileSync(disk, Buffer.alloc(8 << 20));
    const vm = await booted({ hostname: "saver", disk });
    await vm.command("mkfs.ext2 -q /dev/vda && mkdir -p /mnt && mount /dev/vda /mnt");
    // A loop that takes a few seconds, then writes what it computed to the disk and syncs.
    const from = vm.output.length;
    // (the marker is split in the typed line so that its echo never matches)
    vm.send("i=0; s=0; while [ $i -lt 40000 ]; do i=$((i+1)); s=$(((s*31+i) % 1000003)); done; echo result=$s > /mnt/r; sync; echo LOOP\"\"-DONE $s\n");
    await sleep(1500);
    expect(vm.output.slice(from)).not.toContain("LOOP-DONE");
    const file = await vm.snapshot({ name: "mid-loop" });
    const loop = await vm.waitFor(/LOOP-DONE (\d+)\r?\n/, 60_000, from);
    const expected = /LOOP-DONE (\d+)\r?\n/.exec(loop)![1];
    vm.stop();

    // restore onto a fresh (zeroed) disk of the same size: the snapshot carries the disk's contents
    const disk2 = join(dir, "disk2.img");
    writeFileSync(disk2, Buffer.alloc(8 << 20));
    const back = keep(await NodeVm.restore(file, { disk: disk2 }));
    back.start();
    const again = await back.waitFor(/LOOP-DONE (\d+)\r?\n/, 60_000, 0);
    expect(/LOOP-DONE (\d+)\r?\n/.exec(again)![1]).toBe(expected);
    expect(await back.command("cat /mnt/r")).toContain(`result=${expected}`);
    expect(await back.command("hostname")).toContain("saver");
    expect(await back.command("umount /mnt && echo unmounted")).toContain("unmounted");
    back.stop();
    await back.exited.catch(() => {});
    // the file system on the restored disk is intact from the host's side too
    const img = readFileSync(disk2);
    expect(img.includes(Buffer.from(`result=${expected}`))).toBe(true);
  }, 180_000);

  it("a restored machine's JIT starts at once, not after a boot's first instructions as a booted one's does", async () => {
    const vm = await booted({ hostname: "jitsnap" });
    const file = await vm.snapshot({ name: "jitsnap" });
    vm.stop();
    const back = keep(await NodeVm.restore(file, { jit: true }));
    expect(back.machine.hart.jit!.waiting).toBe(false);
    const fresh = keep(new NodeVm({ ramMiB: 64, jit: true }));
    expect(fresh.machine.hart.jit!.waiting).toBe(true);
    back.start();
    await back.command("i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done", 60_000);
    expect(back.machine.hart.jit!.stats.compiled).toBeGreaterThan(0);
  });

  it("a restored guest is told the host's time: its clock stood still while the VM did not run", async () => {
    const vm = await booted({ hostname: "clock" });
    const file = await vm.snapshot({ name: "clock" });
    vm.stop();
    const back = keep(await NodeVm.restore(file));
    const answers: string[] = [];
    back.machine.onAgentLine = (line) => answers.push(line);
    back.start();
    expect(await back.command("hostname")).toBe("clock");
    await expect.poll(() => answers).toContain("ok clock");
    expect(Math.abs(Number(await back.command("date +%s")) - Date.now() / 1000)).toBeLessThan(5);
    // as when a lab comes back an hour after its tab was closed: the guest takes the time it is told
    sendHostTime(back.machine, Date.now() + 3_600_000);
    await expect.poll(() => answers.filter((l) => l === "ok clock").length).toBe(2);
    expect(Number(await back.command("date +%s")) - Date.now() / 1000).toBeGreaterThan(3_590);
  }, 120_000);

  it("a TCP stream between two VMs completes after one of them is restored mid-transfer", async () => {
    const sw = new VirtualSwitch({ name: "snap" });
    new Gateway(sw, { ip: "10.0.9.1", prefix: 24, domain: "snap" });
    const mk = (hostname: string, last: number) => ({
      hostname, nics: 1, macs: [[0x52, 0x54, 0x00, 0x12, 0x35, last]],
      append: `console=ttyS0 hostname=${hostname} tabvisor.dhcp=wait`,
    });
    // cards on the switch before boot, so that DHCP (with the host names DNS answers for) is done by the prompt
    const server = keep(new NodeVm({ ramMiB: 128, ...mk("server", 1) }));
    attachNic(sw, server.nics[0], { name: "server", wake: () => server.wake() });
    const client = keep(new NodeVm({ ramMiB: 128, ...mk("client", 2) }));
    let port = attachNic(sw, client.nics[0], { name: "client", wake: () => client.wake() });
    for (const vm of [server, client]) { vm.start(); await vm.waitFor("@@GUEST_READY@@", 60_000, 0); await vm.command("true"); }
    // 3 MB of random data served by httpd; the client fetches it and hashes it
    const sum = (await server.command("mkdir -p /www && head -c 3000000 /dev/urandom > /www/f && sha256sum /www/f && httpd -h /www", 60_000)).split(" ")[0].trim();
    const from = client.output.length;
    client.send("wget -q -O - http://server/f | sha256sum; echo FET\"\"CHED\n");
    await sleep(700);
    const file = await client.snapshot();
    client.stop();
    port.detach();
    // the restored client takes the card's place on the switch; TCP retransmits what was lost meanwhile
    const back = keep(await NodeVm.restore(file));
    port = attachNic(sw, back.nics[0], { name: "client", wake: () => back.wake() });
    back.start();
    const out = await back.waitFor("FETCHED", 120_000, 0);
    expect(client.output.slice(from)).not.toContain("FETCHED");
    expect(out).toContain(sum);
  }, 240_000);

  it("in deterministic mode, saving again right after a restore gives the same bytes", async () => {
    const vm = await booted({ deterministic: true, hostname: "det" });
    const first = await openSnapshot(await vm.snapshot());
    vm.stop();
    const back = keep(await NodeVm.restore(await (await import("../src/snapshot/file.ts")).writeSnapshotFile(
      { machine: first.spec, createdAt: first.header.createdAt }, first.state)));
    const second = await openSnapshot(await back.snapshot());
    expect(Buffer.compare(encodeState(second.state), encodeState(first.state))).toBe(0);
    // and the restored guest runs
    back.start();
    expect(await back.command("echo $((6*7))")).toContain("42");
  }, 120_000);

  it("refuses corrupt, truncated and wrong-version files, saying which", async () => {
    const vm = await booted({ hostname: "bad" });
    const file = await vm.snapshot();
    const sum = createHash("sha256").update(file).digest("hex");
    const flipped = file.slice(); flipped[flipped.length >> 1] ^= 1;
    const newer = file.slice(); new DataView(newer.buffer).setUint32(8, SNAPSHOT_FORMAT + 1, true);
    await expect(NodeVm.restore(flipped)).rejects.toThrow(/checksum/);
    await expect(NodeVm.restore(file.subarray(0, file.length - 100))).rejects.toThrow(/truncated/);
    await expect(NodeVm.restore(newer)).rejects.toThrow(/format version/);
    await expect(NodeVm.restore(new TextEncoder().encode("#!/bin/sh\necho hi\n"))).rejects.toThrow(SnapshotError);
    // the VM the snapshot came from ran on, untouched
    expect(await vm.command("echo still-here")).toContain("still-here");
    // and the good file is as it was (the spoilt ones were copies)
    expect(createHash("sha256").update(file).digest("hex")).toBe(sum);
    expect((await openSnapshot(file)).spec.ramMiB).toBe(128);
  }, 120_000);
});

describe("templates and forks", () => {
  it("VMs started from the template get their own host name, MAC, lease and the host's time, and answer at once", async () => {
    const template = readFileSync(new URL("../../public/images/template.snap", import.meta.url));
    const sw = new VirtualSwitch({ name: "tpl" });
    const gw = new Gateway(sw, { ip: "10.0.4.1", prefix: 24, domain: "lab" });
    for (const [name, last] of [["alpha", 0x31], ["beta", 0x32]] as const) {
      const vm = keep(await NodeVm.fromTemplate(template, { ramMiB: 64, nics: 1, balloon: true, hostname: name, macs: [[0x52, 0x54, 0, 0x12, 0x36, last]] }));
      attachNic(sw, vm.nics[0], { name, wake: () => vm.wake() });
      const t0 = performance.now();
      vm.start();
      // the template's shell answers at once; the guest takes its identity meanwhile
      expect(await vm.command("echo $((6*7))", 20_000)).toBe("42");
      expect(performance.now() - t0).toBeLessThan(5_000);
      await vm.waitFor(`@@GUEST_READY@@ hostname=${name}`, 20_000, 0);
      expect(await vm.command("hostname; cat /sys/class/net/eth0/address", 20_000)).toBe(`${name}\r\n52:54:00:12:36:${last.toString(16)}`);
      // the template's clock was the day it was made: the identity brought the host's
      expect(Math.abs(Number(await vm.command("date +%s")) - Date.now() / 1000)).toBeLessThan(5);
    }
    const deadline = Date.now() + 20_000;
    while (gw.leases().filter((l) => l.state === "bound").length < 2 && Date.now() < deadline) await sleep(200);
    expect(gw.leases().filter((l) => l.state === "bound").map((l) => `${l.hostname} ${l.mac}`).sort())
      .toEqual(["alpha 52:54:00:12:36:31", "beta 52:54:00:12:36:32"]);
  }, 120_000);

  it("a forked VM runs on as a copy with its own name, MAC, lease and disk, and so does the original", async () => {
    const sw = new VirtualSwitch({ name: "fork" });
    const gw = new Gateway(sw, { ip: "10.0.5.1", prefix: 24, domain: "lab" });
    const dir = scratch("tabvisor-fork-");
    writeFileSync(join(dir, "a.img"), Buffer.alloc(4 << 20));
    writeFileSync(join(dir, "b.img"), Buffer.alloc(4 << 20));
    const orig = keep(new NodeVm({ ramMiB: 128, nics: 1, hostname: "orig", disk: join(dir, "a.img"), macs: [[0x52, 0x54, 0, 0x12, 0x37, 1]] }));
    attachNic(sw, orig.nics[0], { name: "orig", wake: () => orig.wake() });
    orig.start();
    await orig.waitFor("@@GUEST_READY@@", 60_000, 0);
    await orig.command("mkfs.ext2 -q /dev/vda && mkdir -p /mnt && mount /dev/vda /mnt && echo before > /mnt/f && sync");
    // a counter that goes on in the background across the fork
    await orig.command("(i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.2; done) & true");
    await sleep(1000);
    const copy = keep(await orig.fork({ hostname: "copy", macs: [[0x52, 0x54, 0, 0x12, 0x37, 2]], disk: join(dir, "b.img") }));
    attachNic(sw, copy.nics[0], { name: "copy", wake: () => copy.wake() });
    copy.start();
    await copy.waitFor("@@GUEST_READY@@ hostname=copy", 20_000, 0);
    expect(await copy.command("hostname; cat /sys/class/net/eth0/address")).toBe("copy\r\n52:54:00:12:37:02");
    const c1 = Number(await copy.command("cat /tmp/count"));
    expect(c1).toBeGreaterThan(1);
    await sleep(1000);
    expect(Number(await copy.command("cat /tmp/count"))).toBeGreaterThan(c1);
    expect(Number(await orig.command("cat /tmp/count"))).toBeGreaterThan(c1);
    // disks went separate ways: each sees its own writes only
    await copy.command("echo copy > /mnt/f; sync");
    expect(await orig.command("cat /mnt/f")).toBe("before");
    expect(await copy.command("cat /mnt/f")).toBe("copy");
    expect(await orig.command("hostname")).toBe("orig");
    const deadline = Date.now() + 20_000;
    while (!gw.leases().some((l) => l.hostname === "copy" && l.state === "bound") && Date.now() < deadline) await sleep(200);
    expect(gw.leases().filter((l) => l.state === "bound").map((l) => `${l.hostname} ${l.mac}`).sort())
      .toEqual(["copy 52:54:00:12:37:02", "orig 52:54:00:12:37:01"]);
  }, 180_000);
});

describe("live migration", () => {
  it("moves a VM running a loop and receiving a TCP stream to another machine; both go on, the stream's hash matches", async () => {
    const sw = new VirtualSwitch({ name: "mig" });
    new Gateway(sw, { ip: "10.0.6.1", prefix: 24, domain: "lab" });
    const mk = (hostname: string, last: number) => ({ ramMiB: 128, hostname, nics: 1, macs: [[0x52, 0x54, 0, 0x12, 0x38, last]],
      append: `console=ttyS0 hostname=${hostname} tabvisor.dhcp=wait` });
    const server = keep(new NodeVm(mk("server", 1)));
    attachNic(sw, server.nics[0], { name: "server", wake: () => server.wake() });
    const mover = keep(new NodeVm(mk("mover", 2)));
    let port = attachNic(sw, mover.nics[0], { name: "mover", wake: () => mover.wake() });
    for (const vm of [server, mover]) { vm.start(); await vm.waitFor("@@GUEST_READY@@", 60_000, 0); await vm.command("true"); }
    const sum = (await server.command("mkdir -p /www && head -c 4000000 /dev/urandom > /www/f && sha256sum /www/f && httpd -h /www", 60_000)).split(" ")[0].trim();
    await mover.command("(i=0; while :; do i=$((i+1)); echo $i > /tmp/n; done) & true");
    await mover.command("(wget -q -O - http://server/f | sha256sum; echo FET\"\"CHED) & true");
    await sleep(300);
    // (a background job's lines may come between: look for the tagged number)
    const counter = async (vm: NodeVm) => Number(/N=(\d+)/.exec(await vm.command("echo N=$(cat /tmp/n 2>/dev/null)"))?.[1] ?? 0);
    let before = 0;
    for (let i = 0; i < 50 && before === 0; i++) { before = await counter(mover); if (!before) await sleep(200); }
    expect(before).toBeGreaterThan(0);

    // the channel: messages are handed over as they are sent (structured clone would do the same between workers)
    const target = NodeVm.migrationTarget();
    let moved: NodeVm | undefined;
    const stats = await mover.migrate(async (m) => {
      moved = (await target.receive(m)) ?? moved;
      if (m.kind === "end") {
        // the card moves with the VM: the switch port now leads to the new machine
        port.detach();
        port = attachNic(sw, moved!.nics[0], { name: "mover", wake: () => moved!.wake() });
        keep(moved!).start();
      }
    });
    expect(moved).toBeDefined();
    expect(stats.rounds[0]).toBeGreaterThan(1000); // every non-zero page, sent while the guest ran
    expect(stats.heldMs).toBeLessThan(2000);
    const out = await moved!.waitFor("FETCHED", 120_000, 0);
    expect(out).toContain(sum);
    // the loop went on, no reset (the file is rewritten all the time: a read may find it empty, so ask again)
    let after = 0;
    for (let i = 0; i < 50 && after === 0; i++) { after = await counter(moved!); if (after === 0) await sleep(200); }
    expect(after).toBeGreaterThan(before);
    expect(await moved!.command("hostname")).toBe("mover");
  }, 240_000);
});
