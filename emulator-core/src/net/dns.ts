// DNS (RFC 1035) messages: enough to answer queries for names on a virtual network and to summarize captures.

import { readU16, readU32, writeU16, writeU32 } from "./packet.ts";

export const DNS_PORT = 53;

export const DNS_TYPE_A = 1;
export const DNS_TYPE_NS = 2;
export const DNS_TYPE_CNAME = 5;
export const DNS_TYPE_SOA = 6;
export const DNS_TYPE_PTR = 12;
export const DNS_TYPE_MX = 15;
export const DNS_TYPE_TXT = 16;
export const DNS_TYPE_AAAA = 28;
export const DNS_TYPE_SRV = 33;
export const DNS_TYPE_OPT = 41;
export const DNS_TYPE_ANY = 255;
export const DNS_CLASS_IN = 1;

export const DNS_TYPE_NAMES: Record<number, string> = {
  1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV", 41: "OPT", 255: "ANY",
};

export const RCODE_NOERROR = 0;
export const RCODE_FORMERR = 1;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;
export const RCODE_NOTIMP = 4;
export const RCODE_REFUSED = 5;

export const RCODE_NAMES: Record<number, string> = {
  0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
};

export function dnsTypeName(t: number): string {
  return DNS_TYPE_NAMES[t] ?? `TYPE${t}`;
}

export interface DnsQuestion {
  name: string;
  type: number;
  class: number;
}

export interface DnsRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  /** raw RDATA (names inside are not decompressed) */
  data: Uint8Array;
}

export interface DnsMessage {
  id: number;
  /** the raw flags word */
  flags: number;
  response: boolean;
  opcode: number;
  rcode: number;
  recursionDesired: boolean;
  questions: DnsQuestion[];
  answers: DnsRecord[];
}

/** Reads a (possibly compressed) name at off; returns it and the offset after it in the original position. */
function readName(p: Uint8Array, off: number): { name: string; end: number } | null {
  const labels: string[] = [];
  let end = -1;
  let jumps = 0;
  let total = 0;
  for (;;) {
    if (off >= p.length) return null;
    const len = p[off];
    if (len === 0) {
      if (end < 0) end = off + 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      if (off + 1 >= p.length || ++jumps > 32) return null;
      if (end < 0) end = off + 2;
      off = ((len & 0x3f) << 8) | p[off + 1];
      continue;
    }
    if (len > 63 || off + 1 + len > p.length) return null;
    let label = "";
    for (let i = 0; i < len; i++) label += String.fromCharCode(p[off + 1 + i]);
    labels.push(label);
    total += len + 1;
    if (total > 255) return null;
    off += 1 + len;
  }
  return { name: labels.join("."), end };
}

export function parseDns(p: Uint8Array): DnsMessage | null {
  if (p.length < 12) return null;
  const flags = readU16(p, 2);
  const qd = readU16(p, 4);
  const an = readU16(p, 6);
  let off = 12;
  const questions: DnsQuestion[] = [];
  for (let i = 0; i < qd; i++) {
    const n = readName(p, off);
    if (!n || n.end + 4 > p.length) return null;
    questions.push({ name: n.name, type: readU16(p, n.end), class: readU16(p, n.end + 2) });
    off = n.end + 4;
  }
  const answers: DnsRecord[] = [];
  for (let i = 0; i < an; i++) {
    const n = readName(p, off);
    if (!n || n.end + 10 > p.length) break;
    const len = readU16(p, n.end + 8);
    if (n.end + 10 + len > p.length) break;
    answers.push({
      name: n.name, type: readU16(p, n.end), class: readU16(p, n.end + 2), ttl: readU32(p, n.end + 4),
      data: p.slice(n.end + 10, n.end + 10 + len),
    });
    off = n.end + 10 + len;
  }
  return {
    id: readU16(p, 0), flags, response: (flags & 0x8000) !== 0, opcode: (flags >> 11) & 15, rcode: flags & 15,
    recursionDesired: (flags & 0x0100) !== 0, questions, answers,
  };
}

/** a name in wire format (labels longer than 63 characters are refused by throwing) */
export function encodeName(name: string): number[] {
  const out: number[] = [];
  for (const label of name.split(".").filter((l) => l.length > 0)) {
    if (label.length > 63) throw new Error(`DNS label too long: ${label}`);
    out.push(label.length);
    for (const c of label) out.push(c.charCodeAt(0) & 255);
  }
  out.push(0);
  return out;
}

export function buildDnsQuery(id: number, name: string, type = DNS_TYPE_A): Uint8Array {
  const q = [...encodeName(name), type >> 8, type & 255, 0, DNS_CLASS_IN];
  const p = new Uint8Array(12 + q.length);
  writeU16(p, 0, id);
  writeU16(p, 2, 0x0100); // RD
  writeU16(p, 4, 1);
  p.set(q, 12);
  return p;
}

export interface DnsAnswer {
  type: number;
  ttl: number;
  data: ArrayLike<number>;
}

/**
 * A response to `query` (its first question repeated), authoritative, with `answers` for that question's name.
 */
export function buildDnsResponse(query: DnsMessage, rcode: number, answers: DnsAnswer[] = []): Uint8Array {
  const q = query.questions[0];
  const qBytes = q ? [...encodeName(q.name), q.type >> 8, q.type & 255, q.class >> 8, q.class & 255] : [];
  let len = 12 + qBytes.length;
  for (const a of answers) len += 12 + a.data.length;
  const p = new Uint8Array(len);
  writeU16(p, 0, query.id);
  const rd = query.recursionDesired ? 0x0100 : 0;
  writeU16(p, 2, 0x8000 | (query.opcode << 11) | 0x0400 /* AA */ | rd | (rd ? 0x0080 : 0) /* RA */ | (rcode & 15));
  writeU16(p, 4, q ? 1 : 0);
  writeU16(p, 6, answers.length);
  p.set(qBytes, 12);
  let off = 12 + qBytes.length;
  for (const a of answers) {
    writeU16(p, off, 0xc00c); // the question's name
    writeU16(p, off + 2, a.type);
    writeU16(p, off + 4, DNS_CLASS_IN);
    writeU32(p, off + 6, a.ttl);
    writeU16(p, off + 10, a.data.length);
    p.set(a.data, off + 12);
    off += 12 + a.data.length;
  }
  return p;
}

/** "3.0.0.10.in-addr.arpa" → 10.0.0.3 (or undefined) */
export function parseReverseName(name: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.in-addr\.arpa\.?$/i.exec(name);
  if (!m) return undefined;
  const b = [m[4], m[3], m[2], m[1]].map(Number);
  if (b.some((x) => x > 255)) return undefined;
  return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
}
