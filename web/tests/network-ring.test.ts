// The browser network's plumbing in Node: the frame ring (whole frames, wrap-around, drop-and-count when full, two
// threads), and a switch host fed through cards' shared memory (frames between cards, the gateway, link changes
// shown as carrier, the VM's doorbell, bad frames counted, a full rx ring counted, two "tabs" bridged).

import { describe, it, expect, afterEach } from "vitest";
import { Worker } from "node:worker_threads";
import { FrameRing, FRAME_RING_MAX_FRAME } from "../net/frame-ring.ts";
import { NicChannel, NIC_CTRL } from "../net/nic-channel.ts";
import { SwitchHost } from "../net/switch-host.ts";
import {
  ARP_REPLY, ARP_REQUEST, BROADCAST_MAC, buildArpFrame, buildIcmpEchoFrame, parseArp, parseEthernet, parseMac, parseIp,
} from "../../emulator-core/src/net/packet.ts";

const frame = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (seed * 31 + i * 7) & 0xff);

describe("FrameRing", () => {
  it("keeps whole frames in order across wrap-around, and drops (and counts) what does not fit", () => {
    const r = FrameRing.create(256);
    expect(r.isEmpty()).toBe(true);
    expect(r.shift()).toBeUndefined();
    let pushed = 0, shifted = 0;
    for (let round = 0; round < 500; round++) {
      const n = 14 + ((round * 37) % 90);
      while (r.push(frame(n, pushed))) pushed++;
      // full: the frame that did not fit is counted, the ring is not overwritten
      const take = 1 + (round % 3);
      for (let i = 0; i < take; i++) {
        const f = r.shift();
        if (!f) break;
        expect(Array.from(f)).toEqual(Array.from(frame(f.length, shifted)));
        shifted++;
      }
    }
    expect(r.dropped).toBe(500);
    for (let f = r.shift(); f; f = r.shift()) expect(Array.from(f)).toEqual(Array.from(frame(f.length, shifted++)));
    expect(shifted).toBe(pushed);
    expect(r.usedBytes()).toBe(0);
  });

  it("refuses a frame larger than a record or the ring, and survives its counters wrapping", () => {
    const r = FrameRing.create(64);
    expect(r.push(new Uint8Array(63))).toBe(false); // 2 + 63 > 64
    expect(r.push(new Uint8Array(62))).toBe(true);
    expect(r.shift()!.length).toBe(62);
    const big = FrameRing.create(1 << 17);
    expect(big.push(new Uint8Array(FRAME_RING_MAX_FRAME + 1))).toBe(false);
    expect(big.dropped).toBe(1);
    expect(big.droppedBytes).toBe(FRAME_RING_MAX_FRAME + 1);

    const w = FrameRing.create(128);
    const idx = new Int32Array(w.buffer, 0, 2);
    idx[0] = idx[1] = 0x7fffff80 | 0;
    let out = 0;
    for (let i = 0; i < 2000; i++) {
      expect(w.push(frame(20 + (i % 30), i))).toBe(true);
      expect(Array.from(w.shift()!)).toEqual(Array.from(frame(20 + (i % 30), out++)));
    }
    expect(() => FrameRing.create(100)).toThrow(/power of two/);
  });

  it("carries frames from one thread to another intact", async () => {
    const TOTAL = 4000;
    const r = FrameRing.create(8192);
    // the consumer in a worker thread (the same record format), checking every frame
    const worker = new Worker(`
      const { parentPort, workerData } = require("node:worker_threads");
      const { buffer, capacity, total } = workerData;
      const idx = new Int32Array(buffer, 0, 2);
      const d = new Uint8Array(buffer, 64, capacity);
      const m = capacity - 1;
      let got = 0, bad = -1;
      while (got < total) {
        const tail = Atomics.load(idx, 1), head = Atomics.load(idx, 0);
        if (head === tail) continue;
        const n = d[tail & m] | (d[(tail + 1) & m] << 8);
        if (n !== 14 + (got % 1500)) { bad = got; }
        for (let i = 0; i < n && bad < 0; i++) if (d[(tail + 2 + i) & m] !== ((got * 31 + i * 7) & 255)) bad = got;
        Atomics.store(idx, 1, (tail + 2 + n) | 0);
        got++;
      }
      parentPort.postMessage({ got, bad });
    `, { eval: true, workerData: { buffer: r.buffer, capacity: r.capacity, total: TOTAL } });
    const done = new Promise<{ got: number; bad: number }>((res, rej) => { worker.once("message", res); worker.once("error", rej); });
    for (let i = 0; i < TOTAL; i++) {
      const f = frame(14 + (i % 1500), i);
      while (!r.push(f)) { /* full: wait for the consumer */ }
    }
    const { got, bad } = await done;
    await worker.terminate();
    expect(got).toBe(TOTAL);
    expect(bad).toBe(-1);
  });
});


const hosts: SwitchHost[] = [];
afterEach(() => { for (const h of hosts.splice(0)) h.close(); });

/** A card as a VM worker would drive it, with the VM's doorbell. */
function fakeVm(id: string, mac: string, ringBytes = 1 << 16) {
  const init = NicChannel.create(id, mac, ringBytes);
  const ch = new NicChannel(init);
  const vmCtrl = new SharedArrayBuffer(32);
  const bell = new Int32Array(vmCtrl);
  return {
    init, ch, vmCtrl, bell, mac: parseMac(mac),
    send(f: Uint8Array) { expect(ch.tx.push(f)).toBe(true); ch.ringSwitch(); },
    received(): Uint8Array[] { const out: Uint8Array[] = []; for (let f = ch.rx.shift(); f; f = ch.rx.shift()) out.push(f); return out; },
  };
}

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) { if (Date.now() - t0 > ms) throw new Error("timed out"); await tick(2); }
}

describe("SwitchHost (cards through shared memory)", () => {
  it("switches frames between cards, answers ARP as the gateway, rings doorbells, shows carrier", async () => {
    const host = new SwitchHost({ name: "t1", gateway: "10.9.0.1/24", shared: false });
    hosts.push(host);
    const a = fakeVm("a/eth0", "52:54:00:00:00:0a");
    const b = fakeVm("b/eth0", "52:54:00:00:00:0b");
    host.plug({ nic: a.init, name: "a eth0", vmCtrl: a.vmCtrl });
    host.plug({ nic: b.init, name: "b eth0", vmCtrl: b.vmCtrl });
    expect(a.ch.linkUp).toBe(true);

    // a asks for the gateway's MAC: the request floods to b, the gateway answers a
    const bellBefore = Atomics.load(a.bell, 0);
    a.send(buildArpFrame({ op: ARP_REQUEST, senderMac: a.mac, senderIp: parseIp("10.9.0.50"), targetMac: new Uint8Array(6), targetIp: parseIp("10.9.0.1") }));
    let gotA: Uint8Array[] = [];
    await until(() => (gotA = gotA.concat(a.received())).length > 0);
    const arp = parseArp(parseEthernet(gotA[0])!.payload)!;
    expect(arp.op).toBe(ARP_REPLY);
    expect(Atomics.load(a.bell, 0)).toBeGreaterThan(bellBefore);
    expect(b.received().length).toBe(1); // the flooded request

    // unicast a → b once b is known
    const ping = buildIcmpEchoFrame({ srcMac: a.mac, dstMac: b.mac, srcIp: parseIp("10.9.0.50"), dstIp: parseIp("10.9.0.51"), id: 1, seq: 1 });
    b.send(buildArpFrame({ op: ARP_REQUEST, senderMac: b.mac, senderIp: parseIp("10.9.0.51"), targetMac: new Uint8Array(6), targetIp: parseIp("10.9.0.50") }));
    await until(() => a.received().length > 0);
    a.send(ping);
    let gotB: Uint8Array[] = [];
    await until(() => (gotB = gotB.concat(b.received())).length > 0);
    expect(Array.from(gotB[0])).toEqual(Array.from(ping));

    // MAC table, capture
    const snap = host.snapshot();
    expect(snap.macTable.map((e) => e.mac)).toEqual(expect.arrayContaining(["52:54:00:00:00:0a", "52:54:00:00:00:0b"]));
    expect(snap.ports.map((p) => p.kind).sort()).toEqual(["card", "card", "gateway"]);
    expect(host.captureSince(0).some((s) => s.protocol === "ICMP")).toBe(true);
    expect(host.pcap().length).toBeGreaterThan(24);

    // link down: no carrier for the guest, frames dropped and counted; up again
    host.setLink("b/eth0", { up: false });
    expect(b.ch.linkUp).toBe(false);
    a.send(ping);
    await until(() => host.snapshot().ports.find((p) => p.cardId === "b/eth0")!.counters.drops.linkDown > 0);
    host.setLink("b/eth0", { up: true });
    expect(b.ch.linkUp).toBe(true);
    host.unplug("a/eth0");
    expect(a.ch.linkUp).toBe(false);
    expect(Atomics.load(a.ch.ctrl, NIC_CTRL.LINK)).toBe(0);
  });

  it("counts malformed and oversized frames from a card, and frames a full rx ring refused", async () => {
    const host = new SwitchHost({ name: "t2", gateway: "10.9.1.1/24", shared: false });
    hosts.push(host);
    const a = fakeVm("a/eth0", "52:54:00:00:01:0a");
    const b = fakeVm("b/eth0", "52:54:00:00:01:0b", 1024); // a tiny rx ring
    host.plug({ nic: a.init, name: "a", vmCtrl: a.vmCtrl });
    host.plug({ nic: b.init, name: "b", vmCtrl: b.vmCtrl });
    a.send(new Uint8Array(5));
    a.send(new Uint8Array(3000));
    const bcast = new Uint8Array(400);
    bcast.set(BROADCAST_MAC, 0);
    bcast.set(a.mac, 6);
    for (let i = 0; i < 20; i++) a.send(bcast); // b's ring holds two of them
    await until(() => {
      const p = host.snapshot().ports;
      const pa = p.find((x) => x.cardId === "a/eth0")!.counters;
      const pb = p.find((x) => x.cardId === "b/eth0")!.counters;
      return pa.drops.malformed === 1 && pa.drops.oversized === 1 && pb.drops.refused + pb.txPackets === 20;
    });
    const pb = host.snapshot().ports.find((x) => x.cardId === "b/eth0")!.counters;
    expect(pb.txPackets).toBe(2);
    expect(pb.drops.refused).toBe(18);
    expect(b.received().length).toBe(2);
  });

  it("keeps a flooding card to its flood limit", async () => {
    const host = new SwitchHost({ name: "t3", gateway: "10.9.2.1/24", shared: false, floodLimit: 100 });
    hosts.push(host);
    const a = fakeVm("a/eth0", "52:54:00:00:02:0a", 1 << 20);
    const b = fakeVm("b/eth0", "52:54:00:00:02:0b", 1 << 20);
    host.plug({ nic: a.init, name: "a", vmCtrl: a.vmCtrl });
    host.plug({ nic: b.init, name: "b", vmCtrl: b.vmCtrl });
    const bcast = new Uint8Array(60);
    bcast.set(BROADCAST_MAC, 0);
    bcast.set(a.mac, 6);
    for (let i = 0; i < 1000; i++) a.send(bcast);
    await until(() => a.ch.tx.isEmpty());
    const pa = host.snapshot().ports.find((x) => x.cardId === "a/eth0")!.counters;
    expect(pa.rxPackets).toBeLessThanOrEqual(100);
    expect(pa.drops.flood).toBeGreaterThanOrEqual(900);
  });

  it("bridges a network between two tabs, with one gateway between them", async () => {
    // two "tabs": two hosts on the same BroadcastChannel name, one Web Lock manager
    const held = new Map<string, Promise<unknown>>();
    const locks = {
      request: (name: string, cb: () => Promise<unknown> | unknown) => {
        const prev = held.get(name) ?? Promise.resolve();
        const p = prev.then(() => cb());
        held.set(name, p.catch(() => {}));
        return p;
      },
    } as unknown as LockManager;
    const t1 = new SwitchHost({ name: "shared-t", gateway: "10.9.3.1/24" }, { locks, tabId: "tab1" });
    const t2 = new SwitchHost({ name: "shared-t", gateway: "10.9.3.1/24" }, { locks, tabId: "tab2" });
    hosts.push(t1, t2);
    await until(() => t1.snapshot().peers === 1 && t2.snapshot().peers === 1);
    expect(t1.snapshot().gatewayHere).toBe(true);
    expect(t2.snapshot().gatewayHere).toBe(false);
    const a = fakeVm("a/eth0", "52:54:00:00:03:0a");
    const b = fakeVm("b/eth0", "52:54:00:00:03:0b");
    t1.plug({ nic: a.init, name: "a", vmCtrl: a.vmCtrl });
    t2.plug({ nic: b.init, name: "b", vmCtrl: b.vmCtrl });
    // b (in tab 2) asks for the gateway (in tab 1)
    b.send(buildArpFrame({ op: ARP_REQUEST, senderMac: b.mac, senderIp: parseIp("10.9.3.60"), targetMac: new Uint8Array(6), targetIp: parseIp("10.9.3.1") }));
    let got: Uint8Array[] = [];
    await until(() => (got = got.concat(b.received())).length > 0);
    expect(parseArp(parseEthernet(got[0])!.payload)!.op).toBe(ARP_REPLY);
    // a (tab 1) saw the flooded request
    await until(() => a.received().length > 0);
    // the gateway moves to tab 2 when tab 1 closes
    t1.close();
    await until(() => t2.snapshot().gatewayHere && t2.snapshot().peers === 0);
  });
});
