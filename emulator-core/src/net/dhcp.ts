// DHCP (RFC 2131/2132) message parsing and building: the BOOTP header, the magic cookie and the options.

import { readU16, readU32, writeU16, writeU32 } from "./packet.ts";

export const DHCP_SERVER_PORT = 67;
export const DHCP_CLIENT_PORT = 68;
export const DHCP_MAGIC = 0x63825363;
export const BOOTREQUEST = 1;
export const BOOTREPLY = 2;
/** flags: the client wants the reply broadcast */
export const DHCP_FLAG_BROADCAST = 0x8000;

export const DHCPDISCOVER = 1;
export const DHCPOFFER = 2;
export const DHCPREQUEST = 3;
export const DHCPDECLINE = 4;
export const DHCPACK = 5;
export const DHCPNAK = 6;
export const DHCPRELEASE = 7;
export const DHCPINFORM = 8;

export const DHCP_TYPE_NAMES: Record<number, string> = {
  1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK", 7: "RELEASE", 8: "INFORM",
};

export const OPT_PAD = 0;
export const OPT_SUBNET_MASK = 1;
export const OPT_ROUTER = 3;
export const OPT_DNS = 6;
export const OPT_HOSTNAME = 12;
export const OPT_DOMAIN_NAME = 15;
export const OPT_BROADCAST = 28;
export const OPT_REQUESTED_IP = 50;
export const OPT_LEASE_TIME = 51;
export const OPT_MESSAGE_TYPE = 53;
export const OPT_SERVER_ID = 54;
export const OPT_PARAM_LIST = 55;
export const OPT_MESSAGE = 56;
export const OPT_RENEWAL_TIME = 58;
export const OPT_REBINDING_TIME = 59;
export const OPT_CLIENT_ID = 61;
export const OPT_END = 255;

export interface DhcpMessage {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: number;
  yiaddr: number;
  siaddr: number;
  giaddr: number;
  /** 16 bytes; the MAC in the first 6 for Ethernet */
  chaddr: Uint8Array;
  /** option code → value (repeated options concatenated, RFC 3396) */
  options: Map<number, Uint8Array>;
}

const FIXED_LEN = 236;

export function parseDhcp(p: Uint8Array): DhcpMessage | null {
  if (p.length < FIXED_LEN + 4 || readU32(p, FIXED_LEN) !== DHCP_MAGIC) return null;
  const options = new Map<number, Uint8Array>();
  let i = FIXED_LEN + 4;
  while (i < p.length) {
    const code = p[i++];
    if (code === OPT_PAD) continue;
    if (code === OPT_END) break;
    if (i >= p.length) return null;
    const len = p[i++];
    if (i + len > p.length) return null;
    const value = p.slice(i, i + len);
    const prev = options.get(code);
    if (prev) {
      const joined = new Uint8Array(prev.length + len);
      joined.set(prev);
      joined.set(value, prev.length);
      options.set(code, joined);
    } else {
      options.set(code, value);
    }
    i += len;
  }
  return {
    op: p[0], htype: p[1], hlen: p[2], hops: p[3],
    xid: readU32(p, 4), secs: readU16(p, 8), flags: readU16(p, 10),
    ciaddr: readU32(p, 12), yiaddr: readU32(p, 16), siaddr: readU32(p, 20), giaddr: readU32(p, 24),
    chaddr: p.slice(28, 44), options,
  };
}

export type DhcpOptionValue = Uint8Array | number[];

export interface DhcpBuild {
  op: number;
  xid: number;
  chaddr: ArrayLike<number>;
  flags?: number;
  secs?: number;
  ciaddr?: number;
  yiaddr?: number;
  siaddr?: number;
  giaddr?: number;
  /** in order; each value is split into 255-byte pieces when longer */
  options: [number, DhcpOptionValue][];
}

/** A DHCP message, padded to the 300-byte BOOTP minimum. */
export function buildDhcp(m: DhcpBuild): Uint8Array {
  let optLen = 0;
  for (const [, v] of m.options) optLen += v.length + 2 * Math.max(1, Math.ceil(v.length / 255));
  const p = new Uint8Array(Math.max(300, FIXED_LEN + 4 + optLen + 1));
  p[0] = m.op;
  p[1] = 1; // Ethernet
  p[2] = 6;
  writeU32(p, 4, m.xid);
  writeU16(p, 8, m.secs ?? 0);
  writeU16(p, 10, m.flags ?? 0);
  writeU32(p, 12, m.ciaddr ?? 0);
  writeU32(p, 16, m.yiaddr ?? 0);
  writeU32(p, 20, m.siaddr ?? 0);
  writeU32(p, 24, m.giaddr ?? 0);
  p.set(Array.from(m.chaddr).slice(0, 16), 28);
  writeU32(p, FIXED_LEN, DHCP_MAGIC);
  let i = FIXED_LEN + 4;
  for (const [code, v] of m.options) {
    let off = 0;
    do {
      const n = Math.min(255, v.length - off);
      p[i++] = code;
      p[i++] = n;
      for (let k = 0; k < n; k++) p[i++] = v[off + k];
      off += n;
    } while (off < v.length);
  }
  p[i] = OPT_END;
  return p;
}

export function dhcpMessageType(m: DhcpMessage): number {
  return m.options.get(OPT_MESSAGE_TYPE)?.[0] ?? 0;
}

/** an option holding one IPv4 address (the first, if several) */
export function dhcpOptionIp(m: DhcpMessage, code: number): number | undefined {
  const v = m.options.get(code);
  return v && v.length >= 4 ? readU32(v, 0) : undefined;
}

export function dhcpOptionIps(m: DhcpMessage, code: number): number[] {
  const v = m.options.get(code);
  const out: number[] = [];
  if (v) for (let i = 0; i + 4 <= v.length; i += 4) out.push(readU32(v, i));
  return out;
}

export function dhcpOptionU32(m: DhcpMessage, code: number): number | undefined {
  return dhcpOptionIp(m, code);
}

export function dhcpOptionString(m: DhcpMessage, code: number): string | undefined {
  const v = m.options.get(code);
  if (!v) return undefined;
  let s = "";
  for (const b of v) if (b !== 0) s += String.fromCharCode(b);
  return s;
}

export function u32Bytes(v: number): number[] {
  return [(v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
}

export function stringBytes(s: string): number[] {
  return Array.from(s, (c) => c.charCodeAt(0) & 255);
}
