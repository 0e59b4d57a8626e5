// Parsing and building of Ethernet, ARP, IPv4, UDP, ICMP and TCP, with checksums. Addresses: MACs are 6-byte
// Uint8Arrays (or "52:54:00:12:34:56" strings at the API edges), IPv4 addresses are unsigned 32-bit numbers (or
// dotted strings). Parsers never throw on bad input: they return null. Nothing here depends on Node.

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_IPV6 = 0x86dd;

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMPV6 = 58;

export const ETH_HEADER_LEN = 14;
/** smallest frame (header only) and largest (1514 + a VLAN tag), without FCS */
export const ETH_MIN_FRAME = 14;
export const ETH_MAX_FRAME = 1518;

export const BROADCAST_MAC: Uint8Array = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

// --- addresses ---------------------------------------------------------------------------------------------------

export function macToString(b: ArrayLike<number>, off = 0): string {
  let s = "";
  for (let i = 0; i < 6; i++) s += (i ? ":" : "") + (b[off + i] ?? 0).toString(16).padStart(2, "0");
  return s;
}

/** "52:54:00:12:34:56" (or with '-') → 6 bytes; throws on anything else */
export function parseMac(s: string): Uint8Array {
  const parts = s.trim().split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) throw new Error(`bad MAC address "${s}"`);
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

/** accepts a MAC as bytes or string; returns a fresh copy */
export function toMac(m: string | ArrayLike<number>): Uint8Array {
  if (typeof m === "string") return parseMac(m);
  if (m.length !== 6) throw new Error("MAC address must be 6 bytes");
  return Uint8Array.from(m);
}

/** the 48-bit MAC as a number (exact: below 2^53), for Map keys */
export function macKey(b: ArrayLike<number>, off = 0): number {
  return ((b[off] * 256 + b[off + 1]) * 256 + b[off + 2]) * 16777216 + ((b[off + 3] << 16) | (b[off + 4] << 8) | b[off + 5]);
}

/** group bit: broadcast and multicast */
export function isMulticastMac(b: ArrayLike<number>, off = 0): boolean {
  return (b[off] & 1) === 1;
}

export function macEquals(a: ArrayLike<number>, aOff: number, b: ArrayLike<number>, bOff = 0): boolean {
  for (let i = 0; i < 6; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

export function ipToString(ip: number): string {
  return `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`;
}

/** "10.0.0.1" → 0x0a000001; throws on anything else */
export function parseIp(s: string): number {
  const parts = s.trim().split(".");
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || +p > 255)) throw new Error(`bad IPv4 address "${s}"`);
  return ((+parts[0] << 24) | (+parts[1] << 16) | (+parts[2] << 8) | +parts[3]) >>> 0;
}

export function toIp(ip: string | number): number {
  return typeof ip === "number" ? ip >>> 0 : parseIp(ip);
}

export function prefixMask(prefix: number): number {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new Error(`bad prefix length ${prefix}`);
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function ipv6ToString(b: ArrayLike<number>, off = 0): string {
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push((b[off + 2 * i] << 8) | b[off + 2 * i + 1]);
  // longest run of zero words (length ≥ 2) becomes "::"
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(":");
  if (best < 0) return hex(w);
  return `${hex(w.slice(0, best))}::${hex(w.slice(best + bestLen))}`;
}

export function readU16(b: Uint8Array, off: number): number { return (b[off] << 8) | b[off + 1]; }
export function readU32(b: Uint8Array, off: number): number {
  return ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0;
}
export function writeU16(b: Uint8Array, off: number, v: number): void { b[off] = (v >>> 8) & 255; b[off + 1] = v & 255; }
export function writeU32(b: Uint8Array, off: number, v: number): void {
  b[off] = (v >>> 24) & 255; b[off + 1] = (v >>> 16) & 255; b[off + 2] = (v >>> 8) & 255; b[off + 3] = v & 255;
}

// --- checksums ---------------------------------------------------------------------------------------------------

/** ones' complement sum of 16-bit big-endian words (odd length padded with zero), not folded or inverted */
export function onesSum(b: Uint8Array, off = 0, len = b.length - off, initial = 0): number {
  let sum = initial;
  const end = off + len;
  let i = off;
  for (; i + 1 < end; i += 2) sum += (b[i] << 8) | b[i + 1];
  if (i < end) sum += b[i] << 8;
  return sum;
}

function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 65536);
  return sum;
}

/** RFC 1071 Internet checksum of b[off, off+len) (+ an initial partial sum); 0 when verifying correct data */
export function internetChecksum(b: Uint8Array, off = 0, len = b.length - off, initial = 0): number {
  return ~fold(onesSum(b, off, len, initial)) & 0xffff;
}

function pseudoHeaderSum(src: number, dst: number, protocol: number, length: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + protocol + length;
}

/** checksum of a TCP/UDP segment with the IPv4 pseudo header (the segment's checksum field included as is) */
export function transportChecksum(src: number, dst: number, protocol: number, segment: Uint8Array): number {
  return internetChecksum(segment, 0, segment.length, pseudoHeaderSum(src, dst, protocol, segment.length));
}

// --- Ethernet ----------------------------------------------------------------------------------------------------

export interface EthernetFrame {
  dst: Uint8Array;
  src: Uint8Array;
  /** after a VLAN tag, if any */
  etherType: number;
  vlan?: number;
  payload: Uint8Array;
}

export function parseEthernet(frame: Uint8Array): EthernetFrame | null {
  if (frame.length < ETH_HEADER_LEN) return null;
  let etherType = readU16(frame, 12);
  let off = 14;
  let vlan: number | undefined;
  if (etherType === ETHERTYPE_VLAN) {
    if (frame.length < 18) return null;
    vlan = readU16(frame, 14) & 0xfff;
    etherType = readU16(frame, 16);
    off = 18;
  }
  return { dst: frame.subarray(0, 6), src: frame.subarray(6, 12), etherType, vlan, payload: frame.subarray(off) };
}

export function buildEthernet(dst: ArrayLike<number>, src: ArrayLike<number>, etherType: number, payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(ETH_HEADER_LEN + payload.length);
  f.set(dst, 0);
  f.set(src, 6);
  writeU16(f, 12, etherType);
  f.set(payload, 14);
  return f;
}

// --- ARP ---------------------------------------------------------------------------------------------------------

export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;

export interface ArpPacket {
  op: number;
  senderMac: Uint8Array;
  senderIp: number;
  targetMac: Uint8Array;
  targetIp: number;
}

/** Ethernet/IPv4 ARP only */
export function parseArp(p: Uint8Array): ArpPacket | null {
  if (p.length < 28 || readU16(p, 0) !== 1 || readU16(p, 2) !== ETHERTYPE_IPV4 || p[4] !== 6 || p[5] !== 4) return null;
  return {
    op: readU16(p, 6),
    senderMac: p.slice(8, 14),
    senderIp: readU32(p, 14),
    targetMac: p.slice(18, 24),
    targetIp: readU32(p, 24),
  };
}

export function buildArp(a: ArpPacket): Uint8Array {
  const p = new Uint8Array(28);
  writeU16(p, 0, 1);
  writeU16(p, 2, ETHERTYPE_IPV4);
  p[4] = 6;
  p[5] = 4;
  writeU16(p, 6, a.op);
  p.set(a.senderMac, 8);
  writeU32(p, 14, a.senderIp);
  p.set(a.targetMac, 18);
  writeU32(p, 24, a.targetIp);
  return p;
}

// --- IPv4 --------------------------------------------------------------------------------------------------------

export interface Ipv4Packet {
  src: number;
  dst: number;
  protocol: number;
  ttl: number;
  id: number;
  /** don't fragment, more fragments */
  df: boolean;
  mf: boolean;
  /** in bytes */
  fragmentOffset: number;
  headerLength: number;
  totalLength: number;
  checksumOk: boolean;
  /** the payload up to totalLength (Ethernet padding removed) */
  payload: Uint8Array;
}

export function parseIpv4(p: Uint8Array): Ipv4Packet | null {
  if (p.length < 20 || p[0] >> 4 !== 4) return null;
  const headerLength = (p[0] & 15) * 4;
  const totalLength = readU16(p, 2);
  if (headerLength < 20 || totalLength < headerLength || totalLength > p.length) return null;
  const frag = readU16(p, 6);
  return {
    src: readU32(p, 12),
    dst: readU32(p, 16),
    protocol: p[9],
    ttl: p[8],
    id: readU16(p, 4),
    df: (frag & 0x4000) !== 0,
    mf: (frag & 0x2000) !== 0,
    fragmentOffset: (frag & 0x1fff) * 8,
    headerLength,
    totalLength,
    checksumOk: internetChecksum(p, 0, headerLength) === 0,
    payload: p.subarray(headerLength, totalLength),
  };
}

export interface Ipv4Options {
  src: number;
  dst: number;
  protocol: number;
  payload: Uint8Array;
  ttl?: number;
  id?: number;
  df?: boolean;
}

export function buildIpv4(o: Ipv4Options): Uint8Array {
  const p = new Uint8Array(20 + o.payload.length);
  p[0] = 0x45;
  writeU16(p, 2, p.length);
  writeU16(p, 4, o.id ?? 0);
  writeU16(p, 6, (o.df ?? true) ? 0x4000 : 0);
  p[8] = o.ttl ?? 64;
  p[9] = o.protocol;
  writeU32(p, 12, o.src);
  writeU32(p, 16, o.dst);
  writeU16(p, 10, internetChecksum(p, 0, 20));
  p.set(o.payload, 20);
  return p;
}

// --- UDP ---------------------------------------------------------------------------------------------------------

export interface UdpDatagram {
  srcPort: number;
  dstPort: number;
  length: number;
  checksum: number;
  payload: Uint8Array;
}

export function parseUdp(p: Uint8Array): UdpDatagram | null {
  if (p.length < 8) return null;
  const length = readU16(p, 4);
  if (length < 8 || length > p.length) return null;
  return { srcPort: readU16(p, 0), dstPort: readU16(p, 2), length, checksum: readU16(p, 6), payload: p.subarray(8, length) };
}

/** true when the checksum is absent (0) or right */
export function udpChecksumOk(ip: Ipv4Packet): boolean {
  if (ip.payload.length < 8 || readU16(ip.payload, 6) === 0) return true;
  const len = readU16(ip.payload, 4);
  return len <= ip.payload.length && transportChecksum(ip.src, ip.dst, IPPROTO_UDP, ip.payload.subarray(0, len)) === 0;
}

export function buildUdp(src: number, dst: number, srcPort: number, dstPort: number, payload: Uint8Array): Uint8Array {
  const u = new Uint8Array(8 + payload.length);
  writeU16(u, 0, srcPort);
  writeU16(u, 2, dstPort);
  writeU16(u, 4, u.length);
  u.set(payload, 8);
  const c = transportChecksum(src, dst, IPPROTO_UDP, u);
  writeU16(u, 6, c === 0 ? 0xffff : c);
  return u;
}

// --- ICMP --------------------------------------------------------------------------------------------------------

export const ICMP_ECHO_REPLY = 0;
export const ICMP_DEST_UNREACHABLE = 3;
export const ICMP_ECHO_REQUEST = 8;
export const ICMP_TIME_EXCEEDED = 11;

export interface IcmpMessage {
  type: number;
  code: number;
  checksumOk: boolean;
  /** identifier and sequence number (meaningful for echo) */
  id: number;
  seq: number;
  /** after the 8-byte header */
  data: Uint8Array;
}

export function parseIcmp(p: Uint8Array): IcmpMessage | null {
  if (p.length < 8) return null;
  return {
    type: p[0], code: p[1], checksumOk: internetChecksum(p) === 0,
    id: readU16(p, 4), seq: readU16(p, 6), data: p.subarray(8),
  };
}

export function buildIcmp(type: number, code: number, id: number, seq: number, data: Uint8Array): Uint8Array {
  const p = new Uint8Array(8 + data.length);
  p[0] = type;
  p[1] = code;
  writeU16(p, 4, id);
  writeU16(p, 6, seq);
  p.set(data, 8);
  writeU16(p, 2, internetChecksum(p));
  return p;
}

// --- TCP ---------------------------------------------------------------------------------------------------------

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;

export interface TcpSegment {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  headerLength: number;
  /** the option bytes between the fixed header and the payload */
  options: Uint8Array;
  payload: Uint8Array;
}

export function parseTcp(p: Uint8Array): TcpSegment | null {
  if (p.length < 20) return null;
  const headerLength = (p[12] >> 4) * 4;
  if (headerLength < 20 || headerLength > p.length) return null;
  return {
    srcPort: readU16(p, 0), dstPort: readU16(p, 2), seq: readU32(p, 4), ack: readU32(p, 8),
    flags: p[13], window: readU16(p, 14), headerLength, options: p.subarray(20, headerLength), payload: p.subarray(headerLength),
  };
}

export interface TcpOptions {
  srcPort: number;
  dstPort: number;
  seq?: number;
  ack?: number;
  flags: number;
  window?: number;
  payload?: Uint8Array;
  /** option bytes (e.g. MSS), padded here to a multiple of 4 */
  options?: Uint8Array;
}

export function buildTcp(src: number, dst: number, o: TcpOptions): Uint8Array {
  const payload = o.payload ?? new Uint8Array(0);
  const optLen = ((o.options?.length ?? 0) + 3) & ~3;
  const hdr = 20 + optLen;
  const t = new Uint8Array(hdr + payload.length);
  writeU16(t, 0, o.srcPort);
  writeU16(t, 2, o.dstPort);
  writeU32(t, 4, o.seq ?? 0);
  writeU32(t, 8, o.ack ?? 0);
  t[12] = (hdr / 4) << 4;
  t[13] = o.flags;
  writeU16(t, 14, o.window ?? 65535);
  if (o.options) t.set(o.options, 20);
  t.set(payload, hdr);
  writeU16(t, 16, transportChecksum(src, dst, IPPROTO_TCP, t));
  return t;
}

export function tcpFlagsString(flags: number): string {
  const names: [number, string][] = [[TCP_SYN, "SYN"], [TCP_FIN, "FIN"], [TCP_RST, "RST"], [TCP_PSH, "PSH"], [TCP_ACK, "ACK"], [TCP_URG, "URG"]];
  return names.filter(([bit]) => flags & bit).map(([, n]) => n).join(", ");
}

// --- whole frames ------------------------------------------------------------------------------------------------

export function buildArpFrame(a: ArpPacket, dstMac: ArrayLike<number> = a.op === ARP_REQUEST ? BROADCAST_MAC : a.targetMac): Uint8Array {
  return buildEthernet(dstMac, a.senderMac, ETHERTYPE_ARP, buildArp(a));
}

export interface UdpFrameOptions {
  srcMac: ArrayLike<number>;
  dstMac: ArrayLike<number>;
  srcIp: number;
  dstIp: number;
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
  ttl?: number;
}

export function buildUdpFrame(o: UdpFrameOptions): Uint8Array {
  const udp = buildUdp(o.srcIp, o.dstIp, o.srcPort, o.dstPort, o.payload);
  return buildEthernet(o.dstMac, o.srcMac, ETHERTYPE_IPV4,
    buildIpv4({ src: o.srcIp, dst: o.dstIp, protocol: IPPROTO_UDP, payload: udp, ttl: o.ttl }));
}

export interface IcmpEchoFrameOptions {
  srcMac: ArrayLike<number>;
  dstMac: ArrayLike<number>;
  srcIp: number;
  dstIp: number;
  reply?: boolean;
  id: number;
  seq: number;
  data?: Uint8Array;
}

export function buildIcmpEchoFrame(o: IcmpEchoFrameOptions): Uint8Array {
  const icmp = buildIcmp(o.reply ? ICMP_ECHO_REPLY : ICMP_ECHO_REQUEST, 0, o.id, o.seq, o.data ?? new Uint8Array(0));
  return buildEthernet(o.dstMac, o.srcMac, ETHERTYPE_IPV4, buildIpv4({ src: o.srcIp, dst: o.dstIp, protocol: IPPROTO_ICMP, payload: icmp }));
}
