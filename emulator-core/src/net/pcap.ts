// Packet capture: a bounded ring of recent frames with timestamps, one-line summaries of frames (what a packet list
// shows), and the classic libpcap file format (magic 0xa1b2c3d4, version 2.4, LINKTYPE_ETHERNET, microsecond
// timestamps) that Wireshark, tshark and tcpdump read.

import {
  ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP,
  ARP_REPLY, ARP_REQUEST, ICMP_DEST_UNREACHABLE, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMP_TIME_EXCEEDED,
  ipToString, ipv6ToString, macToString, parseArp, parseEthernet, parseIcmp, parseIpv4, parseTcp, parseUdp,
  tcpFlagsString, readU32,
} from "./packet.ts";
import { DHCP_CLIENT_PORT, DHCP_SERVER_PORT, DHCP_TYPE_NAMES, OPT_HOSTNAME, OPT_REQUESTED_IP, dhcpMessageType, dhcpOptionIp, dhcpOptionString, parseDhcp } from "./dhcp.ts";
import { DNS_PORT, DNS_TYPE_A, DNS_TYPE_AAAA, RCODE_NAMES, dnsTypeName, parseDns } from "./dns.ts";

export interface CapturedFrame {
  /** increasing number of the frame in this capture (1 = first ever captured) */
  seq: number;
  /** ms since the Unix epoch (fractional) */
  time: number;
  /** id of the switch port the frame came in on */
  port: number;
  /** the frame (a private copy) */
  frame: Uint8Array;
}

/** The most recent `capacity` frames. */
export class CaptureRing {
  enabled = true;
  private buf: CapturedFrame[] = [];
  private head = 0; // index of the oldest when full
  private seq = 0;
  private listeners = new Set<(f: CapturedFrame) => void>();

  constructor(private cap = 1000) {
    if (!(cap >= 1)) throw new Error(`capture capacity must be ≥ 1, not ${cap}`);
  }

  get capacity(): number { return this.cap; }

  /** frames ever captured (including those since overwritten) */
  get total(): number { return this.seq; }

  get size(): number { return this.buf.length; }

  /** Changes the capacity, keeping the newest frames. */
  set capacity(n: number) {
    if (!(n >= 1)) throw new Error(`capture capacity must be ≥ 1, not ${n}`);
    const all = this.frames();
    this.cap = Math.floor(n);
    this.buf = all.slice(-this.cap);
    this.head = 0;
  }

  add(time: number, port: number, frame: Uint8Array): void {
    if (!this.enabled) return;
    const f: CapturedFrame = { seq: ++this.seq, time, port, frame: frame.slice() };
    if (this.buf.length < this.cap) {
      this.buf.push(f);
    } else {
      this.buf[this.head] = f;
      this.head = (this.head + 1) % this.cap;
    }
    for (const l of this.listeners) {
      try { l(f); } catch { /* a listener's failure must not disturb the switch */ }
    }
  }

  /** oldest first; `sinceSeq` keeps only the frames with a larger seq */
  frames(sinceSeq = 0): CapturedFrame[] {
    const all = this.buf.length < this.cap ? this.buf.slice() : [...this.buf.slice(this.head), ...this.buf.slice(0, this.head)];
    return sinceSeq > 0 ? all.filter((f) => f.seq > sinceSeq) : all;
  }

  clear(): void {
    this.buf = [];
    this.head = 0;
  }

  /** calls `fn` for every frame captured from now on; returns the unsubscribe function */
  subscribe(fn: (f: CapturedFrame) => void): () => void {
    this.listeners.add(fn);
    return () => { this.listeners.delete(fn); };
  }
}

// --- summaries ---------------------------------------------------------------------------------------------------

export type CaptureProtocol = "ARP" | "IPv4" | "ICMP" | "UDP" | "TCP" | "DHCP" | "DNS" | "IPv6" | "other";

export interface FrameSummary {
  /** IP address for IP packets, else MAC */
  src: string;
  dst: string;
  srcMac: string;
  dstMac: string;
  protocol: CaptureProtocol;
  /** frame length in bytes */
  length: number;
  /** one line, e.g. "ARP who-has 10.0.0.2 tell 10.0.0.1" */
  info: string;
}

export interface CaptureSummary extends FrameSummary {
  seq: number;
  time: number;
  port: number;
}

const ARROW = "→";

function summarizeDhcp(payload: Uint8Array): string | null {
  const m = parseDhcp(payload);
  if (!m) return null;
  const type = DHCP_TYPE_NAMES[dhcpMessageType(m)] ?? (m.op === 1 ? "BOOTREQUEST" : "BOOTREPLY");
  const mac = macToString(m.chaddr);
  let s = `DHCP ${type}`;
  const req = dhcpOptionIp(m, OPT_REQUESTED_IP);
  if (m.yiaddr) s += ` ${ipToString(m.yiaddr)}`;
  else if (req !== undefined) s += ` ${ipToString(req)}`;
  else if (m.ciaddr) s += ` ${ipToString(m.ciaddr)}`;
  s += m.op === 1 ? ` from ${mac}` : ` to ${mac}`;
  const hn = dhcpOptionString(m, OPT_HOSTNAME);
  if (hn) s += ` (${hn})`;
  return s + ` xid=0x${m.xid.toString(16).padStart(8, "0")}`;
}

function summarizeDnsPayload(payload: Uint8Array): string | null {
  const m = parseDns(payload);
  if (!m) return null;
  const q = m.questions[0];
  const what = q ? `${dnsTypeName(q.type)} ${q.name || "."}` : "(no question)";
  if (!m.response) return `DNS query ${what}`;
  if (m.rcode !== 0) return `DNS response ${what} ${RCODE_NAMES[m.rcode] ?? `rcode=${m.rcode}`}`;
  const answers = m.answers.map((a) => {
    if (a.type === DNS_TYPE_A && a.data.length === 4) return ipToString(readU32(a.data, 0));
    if (a.type === DNS_TYPE_AAAA && a.data.length === 16) return ipv6ToString(a.data);
    return dnsTypeName(a.type);
  });
  return `DNS response ${what}${answers.length ? ` ${ARROW} ${answers.join(", ")}` : " (no records)"}`;
}

function icmpInfo(type: number, code: number): string {
  switch (type) {
    case ICMP_ECHO_REQUEST: return "echo request";
    case ICMP_ECHO_REPLY: return "echo reply";
    case ICMP_DEST_UNREACHABLE:
      return ["network", "host", "protocol", "port"][code] ? `destination ${["network", "host", "protocol", "port"][code]} unreachable` : `destination unreachable (code ${code})`;
    case ICMP_TIME_EXCEEDED: return "time exceeded";
    default: return `type ${type} code ${code}`;
  }
}

const ICMPV6_NAMES: Record<number, string> = {
  1: "destination unreachable", 2: "packet too big", 3: "time exceeded", 128: "echo request", 129: "echo reply",
  130: "multicast listener query", 131: "multicast listener report", 133: "router solicitation",
  134: "router advertisement", 135: "neighbor solicitation", 136: "neighbor advertisement", 143: "multicast listener report v2",
};

/** What a packet list shows for one Ethernet frame. Never throws. */
export function summarizeFrame(frame: Uint8Array): FrameSummary {
  const length = frame.length;
  const eth = parseEthernet(frame);
  if (!eth) return { src: "?", dst: "?", srcMac: "?", dstMac: "?", protocol: "other", length, info: `malformed frame (${length} bytes)` };
  const srcMac = macToString(eth.src);
  const dstMac = macToString(eth.dst);
  const base = { srcMac, dstMac, length };
  const macs = { src: srcMac, dst: dstMac };

  if (eth.etherType === ETHERTYPE_ARP) {
    const a = parseArp(eth.payload);
    if (!a) return { ...base, ...macs, protocol: "ARP", info: "ARP (malformed)" };
    let info: string;
    if (a.op === ARP_REQUEST) {
      info = a.senderIp === a.targetIp ? `ARP announcement ${ipToString(a.senderIp)}` : `ARP who-has ${ipToString(a.targetIp)} tell ${ipToString(a.senderIp)}`;
    } else if (a.op === ARP_REPLY) {
      info = `ARP ${ipToString(a.senderIp)} is-at ${macToString(a.senderMac)}`;
    } else {
      info = `ARP op ${a.op}`;
    }
    return { ...base, ...macs, protocol: "ARP", info };
  }

  if (eth.etherType === ETHERTYPE_IPV6) {
    const p = eth.payload;
    if (p.length < 40) return { ...base, ...macs, protocol: "IPv6", info: "IPv6 (malformed)" };
    const src = ipv6ToString(p, 8), dst = ipv6ToString(p, 24);
    const next = p[6];
    let info = `IPv6 ${src} ${ARROW} ${dst}`;
    if (next === IPPROTO_ICMPV6 && p.length >= 41) info += ` ICMPv6 ${ICMPV6_NAMES[p[40]] ?? `type ${p[40]}`}`;
    else if (next === IPPROTO_UDP) info += " UDP";
    else if (next === IPPROTO_TCP) info += " TCP";
    else info += ` next header ${next}`;
    return { ...base, src, dst, protocol: "IPv6", info };
  }

  if (eth.etherType !== ETHERTYPE_IPV4) {
    return { ...base, ...macs, protocol: "other", info: `ethertype 0x${eth.etherType.toString(16).padStart(4, "0")}` };
  }

  const ip = parseIpv4(eth.payload);
  if (!ip) return { ...base, ...macs, protocol: "IPv4", info: "IPv4 (malformed)" };
  const src = ipToString(ip.src), dst = ipToString(ip.dst);
  const ipBase = { ...base, src, dst };
  if (ip.fragmentOffset > 0) {
    return { ...ipBase, protocol: "IPv4", info: `IPv4 fragment ${src} ${ARROW} ${dst} proto=${ip.protocol} off=${ip.fragmentOffset}` };
  }

  if (ip.protocol === IPPROTO_ICMP) {
    const icmp = parseIcmp(ip.payload);
    if (!icmp) return { ...ipBase, protocol: "ICMP", info: "ICMP (malformed)" };
    let info = `ICMP ${icmpInfo(icmp.type, icmp.code)} ${src} ${ARROW} ${dst}`;
    if (icmp.type === ICMP_ECHO_REQUEST || icmp.type === ICMP_ECHO_REPLY) info += ` id=${icmp.id} seq=${icmp.seq}`;
    return { ...ipBase, protocol: "ICMP", info };
  }

  if (ip.protocol === IPPROTO_UDP) {
    const u = parseUdp(ip.payload);
    if (!u) return { ...ipBase, protocol: "UDP", info: "UDP (malformed)" };
    const ports = [u.srcPort, u.dstPort];
    if (ports.includes(DHCP_SERVER_PORT) && ports.includes(DHCP_CLIENT_PORT)) {
      const s = summarizeDhcp(u.payload);
      if (s) return { ...ipBase, protocol: "DHCP", info: s };
    }
    if (ports.includes(DNS_PORT)) {
      const s = summarizeDnsPayload(u.payload);
      if (s) return { ...ipBase, protocol: "DNS", info: s };
    }
    return { ...ipBase, protocol: "UDP", info: `UDP ${src}:${u.srcPort} ${ARROW} ${dst}:${u.dstPort} len=${u.payload.length}` };
  }

  if (ip.protocol === IPPROTO_TCP) {
    const t = parseTcp(ip.payload);
    if (!t) return { ...ipBase, protocol: "TCP", info: "TCP (malformed)" };
    let info = `TCP ${src}:${t.srcPort} ${ARROW} ${dst}:${t.dstPort} [${tcpFlagsString(t.flags)}]`;
    if (t.payload.length > 0) info += ` len=${t.payload.length}`;
    return { ...ipBase, protocol: "TCP", info };
  }

  return { ...ipBase, protocol: "IPv4", info: `IPv4 ${src} ${ARROW} ${dst} proto=${ip.protocol}` };
}

export function summarizeCapture(c: CapturedFrame): CaptureSummary {
  return { seq: c.seq, time: c.time, port: c.port, ...summarizeFrame(c.frame) };
}

// --- libpcap files -----------------------------------------------------------------------------------------------

export const PCAP_MAGIC = 0xa1b2c3d4;
export const LINKTYPE_ETHERNET = 1;

export interface PcapRecord {
  /** ms since the Unix epoch */
  time: number;
  frame: Uint8Array;
  /** the frame's length on the wire, when `frame` was truncated (default frame.length) */
  originalLength?: number;
}

/** A classic libpcap file (little-endian, microsecond timestamps) holding the frames in order. */
export function toPcap(records: Iterable<PcapRecord>, opts: { snaplen?: number } = {}): Uint8Array {
  const snaplen = opts.snaplen ?? 65535;
  const list = Array.from(records);
  let size = 24;
  for (const r of list) size += 16 + Math.min(r.frame.length, snaplen);
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, PCAP_MAGIC, true);
  dv.setUint16(4, 2, true);
  dv.setUint16(6, 4, true);
  dv.setInt32(8, 0, true); // thiszone
  dv.setUint32(12, 0, true); // sigfigs
  dv.setUint32(16, snaplen, true);
  dv.setUint32(20, LINKTYPE_ETHERNET, true);
  let off = 24;
  for (const r of list) {
    const us = Math.max(0, Math.round(r.time * 1000));
    const sec = Math.floor(us / 1e6);
    const incl = Math.min(r.frame.length, snaplen);
    dv.setUint32(off, sec >>> 0, true);
    dv.setUint32(off + 4, us - sec * 1e6, true);
    dv.setUint32(off + 8, incl, true);
    dv.setUint32(off + 12, r.originalLength ?? r.frame.length, true);
    out.set(r.frame.subarray(0, incl), off + 16);
    off += 16 + incl;
  }
  return out;
}
