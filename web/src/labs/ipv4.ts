// IPv4 addresses and subnets as a lab file writes them: strict dotted quads (no leading zeros, which some tools
// read as octal) and CIDR subnets. Numbers are unsigned 32-bit.

export function parseIpv4(s: string): number | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255) return undefined;
    n = n * 256 + Number(p);
  }
  return n;
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export interface Subnet {
  /** the network address */
  base: number;
  prefix: number;
}

/** "10.0.1.0/24" as a subnet; `why` says what is wrong otherwise (an address with host bits set, say). */
export function parseSubnet(s: string): { subnet?: Subnet; why?: string } {
  const m = /^([0-9.]+)\/([0-9]{1,2})$/.exec(s);
  const ip = m ? parseIpv4(m[1]) : undefined;
  const prefix = m ? Number(m[2]) : NaN;
  if (ip === undefined || !(prefix >= 0 && prefix <= 32)) return { why: `"${s}" is not a subnet in CIDR form (like 10.0.1.0/24)` };
  const base = (ip & maskOf(prefix)) >>> 0;
  if (base !== ip) return { why: `"${s}" has host bits set (the subnet is ${formatIpv4(base)}/${prefix})` };
  return { subnet: { base, prefix } };
}

export function formatSubnet(s: Subnet): string {
  return `${formatIpv4(s.base)}/${s.prefix}`;
}

export function broadcastOf(s: Subnet): number {
  return (s.base | ~maskOf(s.prefix)) >>> 0;
}

/** A host address of the subnet: inside it, neither its network nor its broadcast address. */
export function isHostOf(s: Subnet, ip: number): boolean {
  return ((ip & maskOf(s.prefix)) >>> 0) === s.base && ip !== s.base && ip !== broadcastOf(s);
}

export function firstHost(s: Subnet): number {
  return s.base + 1;
}

/** What the page's gateway hands out when not told (web/net/switch-host.ts gatewayConfig): .100 to .199 of a /24,
 *  else every host address (the gateway's own is skipped when leasing). */
export function defaultDhcpRange(s: Subnet): { first: number; last: number } {
  if (s.prefix === 24) return { first: s.base + 100, last: s.base + 199 };
  return { first: s.base + 1, last: broadcastOf(s) - 1 };
}

/** Do the two subnets share an address? */
export function overlaps(a: Subnet, b: Subnet): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return ((a.base & maskOf(p)) >>> 0) === ((b.base & maskOf(p)) >>> 0);
}
