// The virtual network core without VMs: the switch (learning, flooding, links, limits, aging), the gateway (ARP,
// ping, DHCP, DNS) with hand-built packets, and packet capture (summaries, .pcap files).

import { describe, it, expect, vi, afterEach } from "vitest";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { VirtualSwitch, attachNic, type Port, type SwitchOptions } from "../src/net/switch.ts";
import { Gateway } from "../src/net/gateway.ts";
import { CaptureRing, summarizeFrame, toPcap } from "../src/net/pcap.ts";
import {
  BROADCAST_MAC, buildArpFrame, buildEthernet, buildIcmpEchoFrame, buildIpv4, buildTcp, buildUdpFrame, parseIp, TCP_SYN,
  IPPROTO_TCP, ETHERTYPE_IPV4,
} from "../src/net/packet.ts";
import { buildDnsQuery } from "../src/net/dns.ts";
import { scratchDirs } from "./scratch-dirs.ts";

const scratch = scratchDirs();

// --- helpers -----------------------------------------------------------------------------------------------------

const mac = (n: number): Uint8Array => Uint8Array.from([0x52, 0x54, 0x00, 0x00, 0x00, n]);
const MCAST = Uint8Array.from([0x01, 0x00, 0x5e, 0x00, 0x00, 0x01]);

/** an Ethernet frame of `len` bytes (an experimental ethertype, payload = a counter) */
function frame(dst: Uint8Array, src: Uint8Array, len = 60, tag = 0): Uint8Array {
  const f = new Uint8Array(len);
  f.set(dst, 0);
  if (len >= 12) f.set(src, 6);
  if (len >= 14) { f[12] = 0x88; f[13] = 0xb5; }
  if (len >= 16) { f[14] = tag >> 8; f[15] = tag & 255; }
  return f;
}
const tagOf = (f: Uint8Array) => (f[14] << 8) | f[15];

interface Dev { port: Port; got: Uint8Array[] }

function setup(n: number, opts: SwitchOptions = {}) {
  let t = 1_000_000;
  const timers: { at: number; fn: () => void }[] = [];
  const sw = new VirtualSwitch({
    now: () => t,
    schedule: (fn, ms) => { timers.push({ at: t + ms, fn }); },
    ...opts,
  });
  const devs: Dev[] = [];
  for (let i = 0; i < n; i++) {
    const got: Uint8Array[] = [];
    devs.push({ port: sw.attach({ name: `dev${i}`, deliver: (f) => { got.push(f); } }), got });
  }
  /** moves the clock on, running the delayed deliveries that come due, in order */
  const advance = (ms: number) => {
    const end = t + ms;
    for (;;) {
      timers.sort((a, b) => a.at - b.at);
      if (!timers.length || timers[0].at > end) break;
      const { at, fn } = timers.shift()!;
      t = at;
      fn();
    }
    t = end;
  };
  return { sw, devs, advance, timers, setTime: (v: number) => { t = v; }, time: () => t };
}

/** RFC 1071, written independently of the code under test */
function cksum(b: Uint8Array, initial = 0): number {
  let s = initial;
  for (let i = 0; i < b.length; i += 2) s += (b[i] << 8) + (i + 1 < b.length ? b[i + 1] : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}
const u16 = (b: Uint8Array, o: number) => (b[o] << 8) | b[o + 1];
const u32 = (b: Uint8Array, o: number) => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
const ipStr = (b: Uint8Array, o: number) => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
const macStr = (b: Uint8Array, o: number) => Array.from(b.subarray(o, o + 6), (x) => x.toString(16).padStart(2, "0")).join(":");

/** checks the IPv4 header and UDP/TCP/ICMP checksums of a frame; returns the IP header offset's fields */
function checkIp(f: Uint8Array) {
  expect(u16(f, 12)).toBe(0x0800);
  const ip = f.subarray(14);
  const ihl = (ip[0] & 15) * 4;
  expect(cksum(ip.subarray(0, ihl))).toBe(0);
  const total = u16(ip, 2);
  const proto = ip[9];
  const l4 = ip.subarray(ihl, total);
  if (proto === 17 || proto === 6) {
    const pseudo = (u32(ip, 12) >>> 16) + (u32(ip, 12) & 0xffff) + (u32(ip, 16) >>> 16) + (u32(ip, 16) & 0xffff) + proto + l4.length;
    expect(cksum(l4, pseudo)).toBe(0);
  } else if (proto === 1) {
    expect(cksum(l4)).toBe(0);
  }
  return { src: ipStr(ip, 12), dst: ipStr(ip, 16), proto, l4 };
}

// --- switch ------------------------------------------------------------------------------------------------------

describe("VirtualSwitch", () => {
  it("learns MACs: unicast goes only to the owner once learned", () => {
    const { sw, devs: [a, b, c] } = setup(3);
    // b's MAC is unknown: flooded to b and c, never back to a
    a.port.send(frame(mac(2), mac(1), 60, 1));
    expect(b.got.length).toBe(1);
    expect(c.got.length).toBe(1);
    expect(a.got.length).toBe(0);
    // b answers a (learned from the first frame): only a gets it
    b.port.send(frame(mac(1), mac(2), 60, 2));
    expect(a.got.map(tagOf)).toEqual([2]);
    expect(c.got.length).toBe(1);
    // now b is known too
    a.port.send(frame(mac(2), mac(1), 60, 3));
    expect(b.got.map(tagOf)).toEqual([1, 3]);
    expect(c.got.map(tagOf)).toEqual([1]);
    expect(sw.counters).toMatchObject({ flooded: 1, forwarded: 2 });
    expect(sw.macTable()).toEqual([
      { mac: "52:54:00:00:00:01", port: a.port.id, portName: "dev0", ageMs: 0 },
      { mac: "52:54:00:00:00:02", port: b.port.id, portName: "dev1", ageMs: 0 },
    ]);
    expect(sw.lookup(mac(2))).toBe(b.port);
    // a MAC that moves to another port is relearned there
    c.port.send(frame(BROADCAST_MAC, mac(2)));
    expect(sw.lookup(mac(2))).toBe(c.port);
    // frames to a MAC on the port they came from go nowhere
    const before = a.got.length + b.got.length + c.got.length;
    c.port.send(frame(mac(2), mac(9)));
    expect(a.got.length + b.got.length + c.got.length).toBe(before);
    expect(sw.counters.filtered).toBe(1);
    // counters
    expect(a.port.counters).toMatchObject({ rxPackets: 2, rxBytes: 120, txPackets: 2, txBytes: 120 });
  });

  it("floods broadcast, multicast and unknown unicast to every other port", () => {
    const { devs: [a, b, c, d] } = setup(4);
    b.port.send(frame(mac(1), mac(2))); // b learned
    for (const x of [a, b, c, d]) x.got.length = 0;
    a.port.send(frame(BROADCAST_MAC, mac(1), 60, 10));
    a.port.send(frame(MCAST, mac(1), 60, 11));
    a.port.send(frame(mac(77), mac(1), 60, 12));
    for (const x of [b, c, d]) expect(x.got.map(tagOf)).toEqual([10, 11, 12]);
    expect(a.got.length).toBe(0);
  });

  it("link down: no delivery either way, counted; the port's MACs are forgotten", () => {
    const { sw, devs: [a, b, c] } = setup(3);
    b.port.send(frame(BROADCAST_MAC, mac(2)));
    expect(sw.lookup(mac(2))).toBe(b.port);
    const changes: boolean[] = [];
    b.port.onLinkChange = (up) => changes.push(up);
    b.port.setUp(false);
    expect(changes).toEqual([false]);
    expect(sw.lookup(mac(2))).toBeUndefined();
    a.got.length = c.got.length = 0;
    a.port.send(frame(BROADCAST_MAC, mac(1)));
    a.port.send(frame(mac(2), mac(1)));
    expect(b.got.length).toBe(0);
    expect(c.got.length).toBe(2);
    expect(b.port.counters.drops.linkDown).toBe(2);
    expect(b.port.counters.txDropped).toBe(2);
    b.port.send(frame(BROADCAST_MAC, mac(2)));
    expect(a.got.length + c.got.length).toBe(2);
    expect(b.port.counters.rxDropped).toBe(1);
    expect(b.port.counters.drops.linkDown).toBe(3);
    // back up
    b.port.setUp(true);
    a.port.send(frame(BROADCAST_MAC, mac(1)));
    expect(b.got.length).toBe(1);
    expect(changes).toEqual([false, true]);
  });

  it("loses frames with the link's probability (deterministic random source)", () => {
    let i = 0;
    const random = () => (i++ % 2 === 0 ? 0.25 : 0.75); // alternately below and above 0.5
    const { devs: [a, b] } = setup(2, { random });
    b.port.send(frame(BROADCAST_MAC, mac(2)));
    a.port.setLink({ loss: 0.5 });
    for (let k = 0; k < 100; k++) a.port.send(frame(mac(2), mac(1), 60, k));
    expect(b.got.length).toBe(50);
    expect(a.port.counters.drops.loss).toBe(50);
    expect(a.port.counters.rxDropped).toBe(50);
    // loss on the receiving side is counted there
    a.port.setLink({ loss: 0 });
    b.port.setLink({ loss: 0.5 });
    b.got.length = 0;
    for (let k = 0; k < 10; k++) a.port.send(frame(mac(2), mac(1), 60, k));
    expect(b.got.length).toBe(5);
    expect(b.port.counters.drops.loss).toBe(5);
    // loss 1 loses everything, 0 nothing
    b.port.setLink({ loss: 1 });
    a.port.send(frame(mac(2), mac(1)));
    expect(b.got.length).toBe(5);
    expect(() => a.port.setLink({ loss: 1.5 })).toThrow(/probability/);
    expect(() => a.port.setLink({ delayMs: -1 })).toThrow(/delay/);
  });

  it("delays frames by the sum of both links' delays, in order (injected scheduler)", () => {
    const { devs: [a, b], advance } = setup(2);
    a.port.setLink({ delayMs: 10 });
    b.port.setLink({ delayMs: 5 });
    a.port.send(frame(mac(2), mac(1), 60, 1));
    advance(1);
    a.port.send(frame(mac(2), mac(1), 60, 2));
    expect(b.got.length).toBe(0);
    advance(13);
    expect(b.got.map(tagOf)).toEqual([]);
    advance(1);
    expect(b.got.map(tagOf)).toEqual([1]);
    advance(1);
    expect(b.got.map(tagOf)).toEqual([1, 2]);
    expect(b.port.counters.txPackets).toBe(2);
    // a frame in flight when the receiving link goes down is lost
    a.port.send(frame(mac(2), mac(1), 60, 3));
    b.port.setUp(false);
    advance(20);
    expect(b.got.map(tagOf)).toEqual([1, 2]);
    expect(b.port.counters.drops.linkDown).toBe(1);
  });

  describe("with the default scheduler (setTimeout)", () => {
    afterEach(() => { vi.useRealTimers(); });
    it("delivers after the delay", () => {
      vi.useFakeTimers();
      const sw = new VirtualSwitch();
      const got: Uint8Array[] = [];
      const a = sw.attach({ deliver: () => {} , link: { delayMs: 20 } });
      sw.attach({ deliver: (f) => { got.push(f); } });
      a.send(frame(BROADCAST_MAC, mac(1)));
      vi.advanceTimersByTime(19);
      expect(got.length).toBe(0);
      vi.advanceTimersByTime(1);
      expect(got.length).toBe(1);
    });
  });

  it("drops and counts malformed and oversized frames", () => {
    const { sw, devs: [a, b] } = setup(2);
    a.port.send(frame(BROADCAST_MAC, mac(1), 13));
    a.port.send(new Uint8Array(0));
    a.port.send(frame(BROADCAST_MAC, mac(1), 1519));
    a.port.send(frame(BROADCAST_MAC, mac(1), 9000));
    expect(b.got.length).toBe(0);
    expect(a.port.counters.drops).toMatchObject({ malformed: 2, oversized: 2 });
    expect(a.port.counters.rxDropped).toBe(4);
    expect(sw.capture.size).toBe(0);
    a.port.send(frame(BROADCAST_MAC, mac(1), 14));
    a.port.send(frame(BROADCAST_MAC, mac(1), 1518));
    expect(b.got.map((f) => f.length)).toEqual([14, 1518]);
  });

  it("limits the frames per second a port may send (broadcast storm)", () => {
    const { sw, devs: [a, b, c], advance } = setup(3, { floodLimit: 100 });
    for (let k = 0; k < 250; k++) a.port.send(frame(BROADCAST_MAC, mac(1), 60, k));
    expect(b.got.length).toBe(100);
    expect(a.port.counters.drops.flood).toBe(150);
    expect(a.port.counters.rxPackets).toBe(100);
    // other ports are not affected
    c.port.send(frame(BROADCAST_MAC, mac(3)));
    expect(b.got.length).toBe(101);
    // the next second a may send again
    advance(1000);
    a.port.send(frame(BROADCAST_MAC, mac(1)));
    expect(b.got.length).toBe(102);
    // a per-port limit
    const d = sw.attach({ deliver: () => {}, floodLimit: 2 });
    for (let k = 0; k < 5; k++) d.send(frame(BROADCAST_MAC, mac(4)));
    expect(d.counters.drops.flood).toBe(3);
  });

  it("ages MACs out of the table", () => {
    const { sw, devs: [a, b, c], advance } = setup(3, { macAgingMs: 1000 });
    b.port.send(frame(BROADCAST_MAC, mac(2)));
    advance(600);
    expect(sw.macTable()).toEqual([{ mac: "52:54:00:00:00:02", port: b.port.id, portName: "dev1", ageMs: 600 }]);
    a.port.send(frame(mac(2), mac(1)));
    expect(c.got.length).toBe(1); // flooded by b's broadcast only
    advance(401);
    expect(sw.macTable().map((e) => e.mac)).toEqual(["52:54:00:00:00:01"]);
    a.port.send(frame(mac(2), mac(1)));
    expect(c.got.length).toBe(2); // unknown again: flooded
  });

  it("switches frames sent from inside a delivery after the current one, and detaches ports", () => {
    const sw = new VirtualSwitch({ now: () => 0 });
    const log: string[] = [];
    // a and echo answer each broadcast with the next one, up to 3; c listens
    const a: Port = sw.attach({
      deliver: (f) => {
        log.push(`a${tagOf(f)}`);
        if (tagOf(f) < 3) a.send(frame(BROADCAST_MAC, mac(1), 60, tagOf(f) + 1));
      },
    });
    const echo: Port = sw.attach({
      deliver: (f) => {
        log.push(`echo${tagOf(f)}`);
        if (tagOf(f) < 3) echo.send(frame(BROADCAST_MAC, mac(9), 60, tagOf(f) + 1));
      },
    });
    const c = sw.attach({ deliver: (f) => { log.push(`c${tagOf(f)}`); } });
    a.send(frame(BROADCAST_MAC, mac(1), 60, 1));
    // each frame reaches every receiver before the answers it caused are switched
    expect(log).toEqual(["echo1", "c1", "a2", "c2", "echo3", "c3"]);
    c.detach();
    expect(sw.ports.map((p) => p.id)).toEqual([a.id, echo.id]);
    log.length = 0;
    a.send(frame(BROADCAST_MAC, mac(1), 60, 7));
    expect(log).toEqual(["echo7"]);
  });

  it("attachNic hands frames to a NIC asynchronously and mirrors the link state", async () => {
    const sw = new VirtualSwitch();
    const received: Uint8Array[] = [];
    let wakes = 0;
    let link = true;
    const nic = {
      backend: null as { send(f: Uint8Array): void } | null,
      receive: (f: Uint8Array) => { received.push(f); return received.length < 2; },
      setLinkUp: (up: boolean) => { link = up; },
    };
    const p = attachNic(sw, nic, { name: "vm", wake: () => wakes++ });
    const other: Uint8Array[] = [];
    sw.attach({ deliver: (f) => { other.push(f); } });
    nic.backend!.send(frame(BROADCAST_MAC, mac(1)));
    expect(other.length).toBe(1);
    sw.ports[1].send(frame(mac(1), mac(2), 60, 1));
    sw.ports[1].send(frame(mac(1), mac(2), 60, 2));
    expect(received.length).toBe(0); // not synchronously
    await Promise.resolve();
    expect(received.map(tagOf)).toEqual([1, 2]);
    expect(wakes).toBe(1);
    expect(p.counters).toMatchObject({ txPackets: 1, txDropped: 1 });
    expect(p.counters.drops.refused).toBe(1);
    p.setUp(false);
    expect(link).toBe(false);
    p.detach();
    expect(nic.backend).toBeNull();
  });
});

// --- gateway -----------------------------------------------------------------------------------------------------

const GW_IP = "10.0.3.1";

function gatewaySetup(opts: ConstructorParameters<typeof Gateway>[1] = {}) {
  let t = 5_000_000;
  const sw = new VirtualSwitch({ now: () => t });
  const gw = new Gateway(sw, { ip: GW_IP, ...opts });
  const got: Uint8Array[] = [];
  const port = sw.attach({ name: "client", deliver: (f) => { got.push(f); } });
  /** sends a frame and returns what came back */
  const exchange = (f: Uint8Array): Uint8Array[] => {
    got.length = 0;
    port.send(f);
    return got.slice();
  };
  return { sw, gw, port, exchange, advance: (ms: number) => { t += ms; } };
}

/** a DHCP client message built by hand: BOOTP header, magic cookie, options */
function dhcpClient(type: number, chaddr: Uint8Array, xid: number, opts: [number, number[]][] = [], ciaddr = "0.0.0.0"): Uint8Array {
  const p = new Uint8Array(300);
  p[0] = 1; p[1] = 1; p[2] = 6;
  p[4] = xid >>> 24; p[5] = (xid >>> 16) & 255; p[6] = (xid >>> 8) & 255; p[7] = xid & 255;
  p.set(ciaddr.split(".").map(Number), 12);
  p.set(chaddr, 28);
  p.set([0x63, 0x82, 0x53, 0x63], 236);
  let i = 240;
  for (const [code, v] of [[53, [type]] as [number, number[]], ...opts]) { p[i++] = code; p[i++] = v.length; p.set(v, i); i += v.length; }
  p[i] = 255;
  const src = ciaddr === "0.0.0.0" ? 0 : parseIp(ciaddr);
  const dst = ciaddr === "0.0.0.0" ? 0xffffffff : parseIp(GW_IP);
  return buildUdpFrame({ srcMac: chaddr, dstMac: ciaddr === "0.0.0.0" ? BROADCAST_MAC : Uint8Array.from([0x02, 0x54, 10, 0, 3, 1]), srcIp: src, dstIp: dst, srcPort: 68, dstPort: 67, payload: p });
}

/** parses a DHCP server reply by hand */
function dhcpReply(f: Uint8Array) {
  const { src, dst, proto, l4 } = checkIp(f);
  expect(proto).toBe(17);
  expect([u16(l4, 0), u16(l4, 2)]).toEqual([67, 68]);
  const p = l4.subarray(8);
  expect(p[0]).toBe(2);
  expect(u32(p, 236)).toBe(0x63825363);
  const options = new Map<number, Uint8Array>();
  for (let i = 240; i < p.length && p[i] !== 255; ) {
    if (p[i] === 0) { i++; continue; }
    options.set(p[i], p.subarray(i + 2, i + 2 + p[i + 1]));
    i += 2 + p[i + 1];
  }
  return {
    ethDst: macStr(f, 0), ipSrc: src, ipDst: dst, xid: u32(p, 4), yiaddr: ipStr(p, 16), chaddr: macStr(p, 28),
    type: options.get(53)?.[0], options, opt: (c: number) => ipStr(options.get(c)!, 0),
  };
}

function dnsAsk(exchange: (f: Uint8Array) => Uint8Array[], name: string, type = 1, id = 0x1234) {
  const cmac = mac(0x42);
  const replies = exchange(buildUdpFrame({
    srcMac: cmac, dstMac: Uint8Array.from([0x02, 0x54, 10, 0, 3, 1]), srcIp: parseIp("10.0.3.77"), dstIp: parseIp(GW_IP),
    srcPort: 40000, dstPort: 53, payload: buildDnsQuery(id, name, type),
  }));
  expect(replies.length).toBe(1);
  const { src, dst, l4 } = checkIp(replies[0]);
  expect([src, dst, u16(l4, 0), u16(l4, 2)]).toEqual([GW_IP, "10.0.3.77", 53, 40000]);
  const p = l4.subarray(8);
  expect(u16(p, 0)).toBe(id);
  const flags = u16(p, 2);
  expect(flags & 0x8000).toBe(0x8000); // a response
  const an = u16(p, 6);
  // skip the question
  let i = 12;
  while (p[i] !== 0) i += p[i] + 1;
  i += 5;
  const answers: string[] = [];
  for (let k = 0; k < an; k++) {
    expect(u16(p, i)).toBe(0xc00c);
    const type = u16(p, i + 2), len = u16(p, i + 10);
    if (type === 1) answers.push(ipStr(p, i + 12));
    else answers.push(`type${type}`);
    i += 12 + len;
  }
  return { rcode: flags & 15, answers };
}

describe("Gateway", () => {
  it("answers ARP for its address only", () => {
    const { gw, exchange } = gatewaySetup();
    const req = { op: 1, senderMac: mac(5), senderIp: parseIp("10.0.3.5"), targetMac: new Uint8Array(6), targetIp: parseIp(GW_IP) };
    const [r, ...rest] = exchange(buildArpFrame(req));
    expect(rest.length).toBe(0);
    expect(macStr(r, 0)).toBe("52:54:00:00:00:05");
    expect(macStr(r, 6)).toBe("02:54:0a:00:03:01");
    expect(u16(r, 12)).toBe(0x0806);
    const a = r.subarray(14);
    expect(u16(a, 6)).toBe(2); // reply
    expect(macStr(a, 8)).toBe(macStr(gw.mac, 0));
    expect(ipStr(a, 14)).toBe(GW_IP);
    expect(macStr(a, 18)).toBe("52:54:00:00:00:05");
    expect(ipStr(a, 24)).toBe("10.0.3.5");
    expect(exchange(buildArpFrame({ ...req, targetIp: parseIp("10.0.3.9") })).length).toBe(0);
    expect(gw.counters.arpReplies).toBe(1);
  });

  it("answers ping with correct checksums", () => {
    const { gw, exchange } = gatewaySetup();
    const data = new TextEncoder().encode("abcdefghijklmnopqrstuvwxyz0123456789!"); // odd length
    const [r] = exchange(buildIcmpEchoFrame({ srcMac: mac(5), dstMac: gw.mac, srcIp: parseIp("10.0.3.5"), dstIp: parseIp(GW_IP), id: 0x4242, seq: 7, data }));
    expect(macStr(r, 0)).toBe("52:54:00:00:00:05");
    const { src, dst, proto, l4 } = checkIp(r);
    expect([src, dst, proto]).toEqual([GW_IP, "10.0.3.5", 1]);
    expect([l4[0], l4[1], u16(l4, 4), u16(l4, 6)]).toEqual([0, 0, 0x4242, 7]);
    expect(new TextDecoder().decode(l4.subarray(8))).toBe("abcdefghijklmnopqrstuvwxyz0123456789!");
    // not for the gateway's address, or a corrupt checksum: no answer
    expect(exchange(buildIcmpEchoFrame({ srcMac: mac(5), dstMac: gw.mac, srcIp: parseIp("10.0.3.5"), dstIp: parseIp("10.0.3.8"), id: 1, seq: 1 })).length).toBe(0);
    const bad = buildIcmpEchoFrame({ srcMac: mac(5), dstMac: gw.mac, srcIp: parseIp("10.0.3.5"), dstIp: parseIp(GW_IP), id: 1, seq: 1 });
    bad[14 + 20 + 2] ^= 1;
    expect(exchange(bad).length).toBe(0);
    expect(gw.counters.echoReplies).toBe(1);
  });

  it("serves DHCP: DISCOVER/OFFER/REQUEST/ACK, NAK, RELEASE, stable addresses", () => {
    const { gw, exchange } = gatewaySetup({ domain: "lab", poolStart: "10.0.3.100", poolEnd: "10.0.3.102", leaseSeconds: 600 });
    const m1 = mac(0x21);
    const hostname = Array.from("alpha", (c) => c.charCodeAt(0));

    const [o] = exchange(dhcpClient(1, m1, 0xdeadbeef, [[12, hostname], [55, [1, 3, 6, 12, 15, 28]]]));
    const offer = dhcpReply(o);
    expect(offer.type).toBe(2);
    expect(offer.xid).toBe(0xdeadbeef);
    expect(offer.chaddr).toBe("52:54:00:00:00:21");
    expect(offer.yiaddr).toBe("10.0.3.100");
    expect(offer.ethDst).toBe("52:54:00:00:00:21"); // unicast: no broadcast flag
    expect(offer.ipDst).toBe("10.0.3.100");
    expect(offer.ipSrc).toBe(GW_IP);
    expect(offer.opt(1)).toBe("255.255.255.0");
    expect(offer.opt(3)).toBe(GW_IP);
    expect(offer.opt(6)).toBe(GW_IP);
    expect(offer.opt(54)).toBe(GW_IP);
    expect(offer.opt(28)).toBe("10.0.3.255");
    expect(u32(offer.options.get(51)!, 0)).toBe(600);
    expect(new TextDecoder().decode(offer.options.get(15))).toBe("lab");
    expect(gw.resolve("alpha")).toBeUndefined(); // offered, not bound yet

    const [a] = exchange(dhcpClient(3, m1, 0xdeadbeef, [[50, [10, 0, 3, 100]], [54, [10, 0, 3, 1]], [12, hostname]]));
    const ack = dhcpReply(a);
    expect(ack.type).toBe(5);
    expect(ack.yiaddr).toBe("10.0.3.100");
    expect(ack.opt(1)).toBe("255.255.255.0");
    expect(gw.leases()).toEqual([expect.objectContaining({ mac: "52:54:00:00:00:21", ip: "10.0.3.100", hostname: "alpha", state: "bound" })]);
    expect(gw.resolve("alpha.lab")).toBe(parseIp("10.0.3.100"));

    // a request for an address that isn't the client's: NAK (broadcast)
    const [n] = exchange(dhcpClient(3, m1, 2, [[50, [10, 0, 3, 101]], [54, [10, 0, 3, 1]]]));
    const nak = dhcpReply(n);
    expect(nak.type).toBe(6);
    expect(nak.ethDst).toBe("ff:ff:ff:ff:ff:ff");
    expect(nak.yiaddr).toBe("0.0.0.0");
    // init-reboot with a foreign subnet: NAK
    expect(dhcpReply(exchange(dhcpClient(3, mac(0x30), 3, [[50, [192, 168, 1, 5]]]))[0]).type).toBe(6);
    // a request for another server: silence
    expect(exchange(dhcpClient(3, mac(0x31), 4, [[50, [10, 0, 3, 100]], [54, [10, 0, 3, 254]]])).length).toBe(0);

    // renewing (ciaddr set, unicast): ACK to the client's address
    const renew = dhcpReply(exchange(dhcpClient(3, m1, 5, [], "10.0.3.100"))[0]);
    expect([renew.type, renew.yiaddr, renew.ipDst]).toEqual([5, "10.0.3.100", "10.0.3.100"]);

    // a second client gets another address
    const m2 = mac(0x22);
    const offer2 = dhcpReply(exchange(dhcpClient(1, m2, 6))[0]);
    expect(offer2.yiaddr).toBe("10.0.3.101");

    // release: the name goes away, the address stays reserved for the same MAC
    expect(exchange(dhcpClient(7, m1, 7, [], "10.0.3.100")).length).toBe(0);
    expect(gw.leases().find((l) => l.mac === "52:54:00:00:00:21")!.state).toBe("released");
    expect(gw.resolve("alpha")).toBeUndefined();
    expect(dhcpReply(exchange(dhcpClient(1, m1, 8))[0]).yiaddr).toBe("10.0.3.100");
    expect(gw.counters).toMatchObject({ dhcpOffers: 3, dhcpAcks: 2, dhcpNaks: 2, dhcpReleases: 1 });

    // the pool (3 addresses) runs out after the third client; the fourth gets no offer
    expect(dhcpReply(exchange(dhcpClient(1, mac(0x23), 9))[0]).yiaddr).toBe("10.0.3.102");
    const ack3 = dhcpReply(exchange(dhcpClient(3, mac(0x23), 9, [[50, [10, 0, 3, 102]], [54, [10, 0, 3, 1]]]))[0]);
    expect(ack3.type).toBe(5);
    const ack1 = dhcpReply(exchange(dhcpClient(3, m1, 10, [[50, [10, 0, 3, 100]], [54, [10, 0, 3, 1]]]))[0]);
    expect(ack1.type).toBe(5);
    const ack2 = dhcpReply(exchange(dhcpClient(3, m2, 11, [[50, [10, 0, 3, 101]], [54, [10, 0, 3, 1]]]))[0]);
    expect(ack2.type).toBe(5);
    expect(exchange(dhcpClient(1, mac(0x24), 12)).length).toBe(0);
  });

  it("answers DNS A queries for leased, static and its own names; NXDOMAIN otherwise", () => {
    const { gw, exchange } = gatewaySetup({ domain: "lab" });
    const m = mac(0x21);
    const hn = Array.from("Web-1", (c) => c.charCodeAt(0));
    exchange(dhcpClient(1, m, 1, [[12, hn]]));
    exchange(dhcpClient(3, m, 1, [[50, [10, 0, 3, 2]], [54, [10, 0, 3, 1]], [12, hn]]));
    expect(gw.leases()[0]).toMatchObject({ ip: "10.0.3.2", hostname: "web-1", state: "bound" });
    gw.addHost("db", "10.0.3.50");

    expect(dnsAsk(exchange, "web-1")).toEqual({ rcode: 0, answers: ["10.0.3.2"] });
    expect(dnsAsk(exchange, "WEB-1.lab")).toEqual({ rcode: 0, answers: ["10.0.3.2"] });
    expect(dnsAsk(exchange, "gateway.lab")).toEqual({ rcode: 0, answers: [GW_IP] });
    expect(dnsAsk(exchange, "db.lab")).toEqual({ rcode: 0, answers: ["10.0.3.50"] });
    expect(dnsAsk(exchange, "web-1.lab", 28)).toEqual({ rcode: 0, answers: [] }); // AAAA: the name exists, no data
    expect(dnsAsk(exchange, "nosuch.lab")).toEqual({ rcode: 3, answers: [] });
    expect(dnsAsk(exchange, "example.com")).toEqual({ rcode: 3, answers: [] });
    expect(dnsAsk(exchange, "2.3.0.10.in-addr.arpa", 12)).toEqual({ rcode: 0, answers: ["type12"] });
    expect(gw.hosts().map((h) => h.name).sort()).toEqual(["db", "gateway", "web-1"]);
    gw.removeHost("db");
    expect(dnsAsk(exchange, "db")).toEqual({ rcode: 3, answers: [] });
    expect(gw.counters.dnsNxdomain).toBe(3);
  });

  it("lets leases expire and restores saved ones", () => {
    const { gw, exchange, advance, sw } = gatewaySetup({ leaseSeconds: 10 });
    const m = mac(0x21);
    exchange(dhcpClient(1, m, 1, [[12, [104, 49]]]));
    exchange(dhcpClient(3, m, 1, [[50, [10, 0, 3, 2]], [54, [10, 0, 3, 1]], [12, [104, 49]]]));
    expect(gw.resolve("h1")).toBe(parseIp("10.0.3.2"));
    const saved = gw.exportLeases();
    advance(11_000);
    expect(gw.leases()[0].state).toBe("expired");
    expect(gw.resolve("h1")).toBeUndefined();
    gw.detach();
    const gw2 = new Gateway(sw, { ip: GW_IP, leases: saved.map((l) => ({ ...l, expiresAt: undefined })) });
    expect(gw2.resolve("h1")).toBe(parseIp("10.0.3.2"));
  });
});

// --- capture -----------------------------------------------------------------------------------------------------

function readPcap(b: Uint8Array) {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const header = {
    magic: dv.getUint32(0, true), major: dv.getUint16(4, true), minor: dv.getUint16(6, true),
    snaplen: dv.getUint32(16, true), linktype: dv.getUint32(20, true),
  };
  const records: { sec: number; usec: number; incl: number; orig: number; data: Uint8Array }[] = [];
  for (let off = 24; off < b.length; ) {
    const incl = dv.getUint32(off + 8, true);
    records.push({ sec: dv.getUint32(off, true), usec: dv.getUint32(off + 4, true), incl, orig: dv.getUint32(off + 12, true), data: b.slice(off + 16, off + 16 + incl) });
    off += 16 + incl;
  }
  return { header, records };
}

describe("packet capture", () => {
  const A = mac(1), B = mac(2);
  const ipA = parseIp("10.0.0.2"), ipB = parseIp("10.0.0.1");
  const samples = {
    arp: buildArpFrame({ op: 1, senderMac: A, senderIp: ipA, targetMac: new Uint8Array(6), targetIp: ipB }),
    arpReply: buildArpFrame({ op: 2, senderMac: B, senderIp: ipB, targetMac: A, targetIp: ipA }),
    ping: buildIcmpEchoFrame({ srcMac: A, dstMac: B, srcIp: ipA, dstIp: ipB, id: 17, seq: 3, data: new Uint8Array(56) }),
    syn: buildEthernet(B, A, ETHERTYPE_IPV4, buildIpv4({ src: ipA, dst: ipB, protocol: IPPROTO_TCP, payload: buildTcp(ipA, ipB, { srcPort: 40000, dstPort: 80, flags: TCP_SYN, seq: 1 }) })),
    dns: buildUdpFrame({ srcMac: A, dstMac: B, srcIp: ipA, dstIp: ipB, srcPort: 5353, dstPort: 53, payload: buildDnsQuery(1, "client.lab") }),
    dhcp: dhcpClient(1, A, 0x01020304, [[12, [104, 49]]]),
    udp: buildUdpFrame({ srcMac: A, dstMac: B, srcIp: ipA, dstIp: ipB, srcPort: 1000, dstPort: 2000, payload: new Uint8Array(5) }),
    ipv6: (() => { const f = new Uint8Array(14 + 40 + 8); f.set([0x33, 0x33, 0, 0, 0, 1], 0); f.set(A, 6); f[12] = 0x86; f[13] = 0xdd; f[14] = 0x60; f[14 + 6] = 58; f.set([0xfe, 0x80], 14 + 8); f[14 + 23] = 1; f.set([0xff, 0x02], 14 + 24); f[14 + 39] = 1; f[14 + 40] = 135; return f; })(),
    other: frame(BROADCAST_MAC, A),
  };

  it("summarizes frames in one line", () => {
    const s = Object.fromEntries(Object.entries(samples).map(([k, f]) => [k, summarizeFrame(f)]));
    expect(s.arp).toMatchObject({ protocol: "ARP", src: "52:54:00:00:00:01", dst: "ff:ff:ff:ff:ff:ff", info: "ARP who-has 10.0.0.1 tell 10.0.0.2", length: 42 });
    expect(s.arpReply.info).toBe("ARP 10.0.0.1 is-at 52:54:00:00:00:02");
    expect(s.ping).toMatchObject({ protocol: "ICMP", src: "10.0.0.2", dst: "10.0.0.1", info: "ICMP echo request 10.0.0.2 → 10.0.0.1 id=17 seq=3", length: 98 });
    expect(s.syn).toMatchObject({ protocol: "TCP", info: "TCP 10.0.0.2:40000 → 10.0.0.1:80 [SYN]" });
    expect(s.dns).toMatchObject({ protocol: "DNS", info: "DNS query A client.lab" });
    expect(s.dhcp).toMatchObject({ protocol: "DHCP", src: "0.0.0.0", dst: "255.255.255.255", info: "DHCP DISCOVER from 52:54:00:00:00:01 (h1) xid=0x01020304" });
    expect(s.udp).toMatchObject({ protocol: "UDP", info: "UDP 10.0.0.2:1000 → 10.0.0.1:2000 len=5" });
    expect(s.ipv6).toMatchObject({ protocol: "IPv6", src: "fe80::1", dst: "ff02::1", info: "IPv6 fe80::1 → ff02::1 ICMPv6 neighbor solicitation" });
    expect(s.other).toMatchObject({ protocol: "other", info: "ethertype 0x88b5" });
    expect(summarizeFrame(new Uint8Array(3)).info).toMatch(/malformed/);
  });

  it("keeps the most recent frames in a bounded ring", () => {
    const ring = new CaptureRing(3);
    const seen: number[] = [];
    const unsubscribe = ring.subscribe((f) => seen.push(f.seq));
    for (let i = 0; i < 5; i++) ring.add(1000 + i, 1, frame(BROADCAST_MAC, A, 60, i));
    expect(ring.frames().map((f) => tagOf(f.frame))).toEqual([2, 3, 4]);
    expect(ring.frames().map((f) => f.seq)).toEqual([3, 4, 5]);
    expect(ring.frames(4).map((f) => f.seq)).toEqual([5]);
    expect(ring.total).toBe(5);
    expect(seen).toEqual([1, 2, 3, 4, 5]);
    unsubscribe();
    ring.capacity = 2;
    expect(ring.frames().map((f) => f.seq)).toEqual([4, 5]);
    ring.enabled = false;
    ring.add(0, 1, frame(BROADCAST_MAC, A));
    expect(ring.total).toBe(5);
    ring.clear();
    expect(ring.size).toBe(0);
  });

  it("captures what the switch forwards and writes a .pcap that reads back (and that tcpdump/tshark read)", () => {
    let t = Date.UTC(2025, 0, 2, 3, 4, 5) + 0.123456 * 1000;
    const sw = new VirtualSwitch({ now: () => t });
    const a = sw.attach({ name: "a", deliver: () => {} });
    const b = sw.attach({ name: "b", deliver: () => {} });
    const sent = [samples.arp, samples.arpReply, samples.ping, samples.syn, samples.dns, samples.dhcp];
    sent.forEach((f, i) => { (i % 2 ? b : a).send(f); t += 1.5; });
    const cap = sw.capture.frames();
    expect(cap.map((c) => c.port)).toEqual([a.id, b.id, a.id, b.id, a.id, b.id]);
    const file = toPcap(cap);
    const { header, records } = readPcap(file);
    expect(header).toEqual({ magic: 0xa1b2c3d4, major: 2, minor: 4, snaplen: 65535, linktype: 1 });
    expect(records.length).toBe(sent.length);
    const t0 = Date.UTC(2025, 0, 2, 3, 4, 5) / 1000;
    records.forEach((r, i) => {
      expect(r.data).toEqual(sent[i]);
      expect(r.incl).toBe(sent[i].length);
      expect(r.orig).toBe(sent[i].length);
      expect(r.sec).toBe(t0);
      expect(r.usec).toBe(123456 + i * 1500);
    });
    // truncation with a snap length
    const short = readPcap(toPcap(cap, { snaplen: 20 }));
    expect(short.header.snaplen).toBe(20);
    expect(short.records.map((r) => [r.incl, r.orig])).toEqual(sent.map((f) => [20, f.length]));

    // an independent reader, where one is installed
    const dir = scratch("tv-pcap-");
    const path = join(dir, "capture.pcap");
    writeFileSync(path, file);
    const run = (cmd: string, args: string[]): string | null => {
      try {
        return execFileSync(cmd, args, { stdio: ["ignore", "pipe", "pipe"] }).toString();
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
        throw e;
      }
    };
    const tcpdump = run("tcpdump", ["-nn", "-r", path]);
    if (tcpdump !== null) {
      const lines = tcpdump.trim().split("\n");
      expect(lines.length).toBe(sent.length);
      expect(lines[0]).toContain("ARP, Request who-has 10.0.0.1 tell 10.0.0.2");
      expect(lines[2]).toContain("ICMP echo request, id 17, seq 3");
      expect(lines[3]).toContain("10.0.0.2.40000 > 10.0.0.1.80: Flags [S]");
      expect(lines[4]).toContain("A? client.lab.");
      expect(lines[5]).toContain("BOOTP/DHCP, Request from 52:54:00:00:00:01");
      expect(run("tcpdump", ["-nn", "-vv", "-r", path])).not.toMatch(/bad cksum|incorrect/);
    }
    const tshark = run("tshark", ["-r", path]);
    if (tshark !== null) {
      const lines = tshark.trim().split("\n");
      expect(lines.length).toBe(sent.length);
      expect(tshark).toContain("Who has 10.0.0.1? Tell 10.0.0.2");
      expect(tshark).toContain("client.lab");
    }
  });
});
