// The gateway of a virtual network: a service attached to the network's switch as a port (not a VM). It owns an
// address (e.g. 10.0.N.1/24) and a MAC, answers ARP and ICMP echo for that address, hands out addresses by DHCP
// (stable per MAC) and answers DNS queries (UDP port 53) for the names of the VMs on the network: the host name
// each DHCP client sent (option 12), the gateway's own name, and names registered statically. Names resolve both
// bare ("client") and in the network's domain ("client.lab").
//
// It also opens TCP connections to the VMs (connectTcp, tcp.ts): the host's own way into a VM's services (the page's
// "Open port"). Their frames go to the MAC the gateway last saw for the address (from ARP, the VM's own frames or
// its lease), or, when it knows none, it asks by ARP and the SYN's retransmission goes once it is known.

import {
  ARP_REPLY, ARP_REQUEST, BROADCAST_MAC, ETHERTYPE_ARP, ETHERTYPE_IPV4, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST,
  IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, buildArpFrame, transportChecksum, buildEthernet, buildIcmp, buildIpv4, buildUdpFrame, ipToString, isMulticastMac,
  macEquals, macKey, macToString, parseArp, parseEthernet, parseIcmp, parseIpv4, parseUdp, prefixMask, toIp, toMac,
  udpChecksumOk,
} from "./packet.ts";
import {
  BOOTREPLY, BOOTREQUEST, DHCPACK, DHCPDECLINE, DHCPDISCOVER, DHCPINFORM, DHCPNAK, DHCPOFFER, DHCPRELEASE, DHCPREQUEST,
  DHCP_CLIENT_PORT, DHCP_FLAG_BROADCAST, DHCP_SERVER_PORT, OPT_BROADCAST, OPT_DNS, OPT_DOMAIN_NAME, OPT_HOSTNAME,
  OPT_LEASE_TIME, OPT_MESSAGE, OPT_MESSAGE_TYPE, OPT_REBINDING_TIME, OPT_RENEWAL_TIME, OPT_REQUESTED_IP, OPT_ROUTER,
  OPT_SERVER_ID, OPT_SUBNET_MASK, buildDhcp, dhcpMessageType, dhcpOptionIp, dhcpOptionString, parseDhcp, stringBytes,
  u32Bytes, type DhcpMessage, type DhcpOptionValue,
} from "./dhcp.ts";
import {
  DNS_CLASS_IN, DNS_PORT, DNS_TYPE_A, DNS_TYPE_ANY, DNS_TYPE_PTR, RCODE_FORMERR, RCODE_NOERROR, RCODE_NOTIMP,
  RCODE_NXDOMAIN, buildDnsResponse, encodeName, parseDns, parseReverseName, type DnsAnswer,
} from "./dns.ts";
import type { LinkConfig } from "./link.ts";
import { TcpEndpoint, type TcpConnection, type TcpHandlers } from "./tcp.ts";
import type { Port, VirtualSwitch } from "./switch.ts";

export interface LeaseRecord {
  mac: string;
  ip: string;
  hostname?: string;
  /** on the gateway's clock (ms); for restoring */
  expiresAt?: number;
}

export type LeaseState = "offered" | "bound" | "released" | "expired";

export interface Lease {
  mac: string;
  ip: string;
  /** the host name the client sent (option 12), cleaned up; undefined if none */
  hostname?: string;
  state: LeaseState;
  /** on the gateway's clock (ms) */
  expiresAt: number;
}

export interface GatewayOptions {
  /** the gateway's address (default 10.0.0.1) */
  ip?: string | number;
  /** prefix length of the network (default 24) */
  prefix?: number;
  /** default 02:54 followed by the four bytes of the address (locally administered, unique per address) */
  mac?: string | ArrayLike<number>;
  /** the gateway's own DNS name (default "gateway") */
  name?: string;
  /** the network's domain (default "lab"); handed out by DHCP as option 15 */
  domain?: string;
  /** serve DHCP (default true) */
  dhcp?: boolean;
  /** first and last address handed out (default: every host address of the network but the gateway's) */
  poolStart?: string | number;
  poolEnd?: string | number;
  /** lease time in seconds (default 3600) */
  leaseSeconds?: number;
  /** serve DNS (default true) */
  dns?: boolean;
  /** TTL of DNS answers in seconds (default 60) */
  dnsTtl?: number;
  /** leases to start with (e.g. saved from an earlier session) */
  leases?: LeaseRecord[];
  /** clock in ms (default: the switch's) */
  now?: () => number;
  /** name of the switch port (default "gateway") */
  portName?: string;
  link?: Partial<LinkConfig>;
}

export interface GatewayCounters {
  arpReplies: number;
  echoReplies: number;
  dhcpOffers: number;
  dhcpAcks: number;
  dhcpNaks: number;
  dhcpReleases: number;
  dnsQueries: number;
  dnsNxdomain: number;
}

interface LeaseEntry {
  mac: Uint8Array;
  ip: number;
  hostname?: string;
  state: "offered" | "bound" | "released";
  expiresAt: number;
}

/** the first label of a client's host name, lower case, letters, digits and '-' only */
export function cleanHostname(s: string): string {
  return s.trim().toLowerCase().split(".")[0].replace(/[^a-z0-9-]/g, "").slice(0, 63);
}

const OFFER_HOLD_MS = 60_000;
const DECLINE_HOLD_MS = 600_000;

export class Gateway {
  readonly ip: number;
  readonly prefix: number;
  readonly mask: number;
  readonly network: number;
  readonly broadcast: number;
  readonly mac: Uint8Array;
  readonly name: string;
  readonly domain: string;
  readonly poolStart: number;
  readonly poolEnd: number;
  readonly port: Port;
  leaseSeconds: number;
  dnsTtl: number;
  dhcpEnabled: boolean;
  dnsEnabled: boolean;
  readonly counters: GatewayCounters = {
    arpReplies: 0, echoReplies: 0, dhcpOffers: 0, dhcpAcks: 0, dhcpNaks: 0, dhcpReleases: 0, dnsQueries: 0, dnsNxdomain: 0,
  };
  /** called after a lease was bound, renewed, released or declined */
  onLeaseChange: ((lease: Lease) => void) | undefined;

  private readonly now: () => number;
  private readonly byMac = new Map<number, LeaseEntry>();
  private readonly byIp = new Map<number, LeaseEntry>();
  private readonly declined = new Map<number, number>(); // ip → until
  private readonly staticHosts = new Map<string, number>(); // name (lower case) → ip
  /** where each address of the network was last seen (ARP, the frames it sent): for the gateway's own TCP */
  private readonly neighbours = new Map<number, Uint8Array>();
  private readonly tcp: TcpEndpoint;

  constructor(sw: VirtualSwitch, opts: GatewayOptions = {}) {
    this.ip = toIp(opts.ip ?? "10.0.0.1");
    this.prefix = opts.prefix ?? 24;
    this.mask = prefixMask(this.prefix);
    if (this.prefix > 30) throw new Error(`a /${this.prefix} network has no room for DHCP clients`);
    this.network = (this.ip & this.mask) >>> 0;
    this.broadcast = (this.network | ~this.mask) >>> 0;
    if (this.ip === this.network || this.ip === this.broadcast) throw new Error(`${ipToString(this.ip)} is not a host address of its /${this.prefix} network`);
    this.mac = opts.mac !== undefined ? toMac(opts.mac) : Uint8Array.from([0x02, 0x54, ...u32Bytes(this.ip)]);
    if (isMulticastMac(this.mac)) throw new Error("the gateway's MAC must be unicast");
    this.name = (opts.name ?? "gateway").toLowerCase();
    this.domain = (opts.domain ?? "lab").toLowerCase().replace(/^\.+|\.+$/g, "");
    this.poolStart = opts.poolStart !== undefined ? toIp(opts.poolStart) : this.network + 1;
    this.poolEnd = opts.poolEnd !== undefined ? toIp(opts.poolEnd) : this.broadcast - 1;
    if (!this.inSubnet(this.poolStart) || !this.inSubnet(this.poolEnd) || this.poolStart > this.poolEnd) {
      throw new Error(`bad DHCP pool ${ipToString(this.poolStart)}-${ipToString(this.poolEnd)} for ${ipToString(this.network)}/${this.prefix}`);
    }
    this.leaseSeconds = opts.leaseSeconds ?? 3600;
    this.dnsTtl = opts.dnsTtl ?? 60;
    this.dhcpEnabled = opts.dhcp ?? true;
    this.dnsEnabled = opts.dns ?? true;
    this.now = opts.now ?? sw.now;
    for (const r of opts.leases ?? []) {
      const e: LeaseEntry = {
        mac: toMac(r.mac), ip: toIp(r.ip), hostname: r.hostname ? cleanHostname(r.hostname) || undefined : undefined,
        state: "bound", expiresAt: r.expiresAt ?? this.now() + this.leaseSeconds * 1000,
      };
      if (!this.inPool(e.ip) || this.byIp.has(e.ip)) continue;
      this.byMac.set(macKey(e.mac), e);
      this.byIp.set(e.ip, e);
    }
    this.port = sw.attach({ name: opts.portName ?? "gateway", link: opts.link, deliver: (f) => { this.handle(f); } });
    this.tcp = new TcpEndpoint({ ip: this.ip, sendSegment: (dst, seg) => this.sendTcp(dst, seg) });
  }

  /** Leaves the switch (its TCP connections are reset). */
  detach(): void { this.tcp.closeAll(); this.port.detach(); }

  /** Opens a TCP connection from the gateway to `ip`:`port` on this network (e.g. a VM's web server). */
  connectTcp(ip: string | number, port: number, handlers: TcpHandlers, opts: { receiveBuffer?: number } = {}): TcpConnection {
    const dst = toIp(ip);
    if (!this.inSubnet(dst) || dst === this.ip) throw new Error(`${ipToString(dst)} is not an address of a VM on this network`);
    return this.tcp.connect(dst, port, handlers, opts);
  }

  /** TCP connections open now */
  get tcpConnections(): number { return this.tcp.open; }

  private sendTcp(dst: number, segment: Uint8Array): void {
    const mac = this.neighbours.get(dst) ?? this.byIp.get(dst)?.mac;
    if (!mac) {
      // who has it? the answer fills `neighbours`; TCP sends again on its timer
      this.port.send(buildArpFrame({ op: ARP_REQUEST, senderMac: this.mac, senderIp: this.ip, targetMac: new Uint8Array(6), targetIp: dst }));
      return;
    }
    this.port.send(buildEthernet(mac, this.mac, ETHERTYPE_IPV4, buildIpv4({ src: this.ip, dst, protocol: IPPROTO_TCP, payload: segment })));
  }

  /** Remembers where a unicast source address of this network is. */
  private learn(ip: number, mac: Uint8Array, off = 0): void {
    if (!this.inSubnet(ip) || ip === this.ip || isMulticastMac(mac, off)) return;
    const known = this.neighbours.get(ip);
    if (known && macEquals(mac, off, known)) return;
    if (this.neighbours.size >= 4096 && !known) this.neighbours.clear(); // a guest making up addresses: start over
    this.neighbours.set(ip, mac.slice(off, off + 6));
  }

  inSubnet(ip: number): boolean { return ((ip & this.mask) >>> 0) === this.network && ip !== this.network && ip !== this.broadcast; }

  private inPool(ip: number): boolean { return ip >= this.poolStart && ip <= this.poolEnd && this.inSubnet(ip) && ip !== this.ip; }

  // --- names ---------------------------------------------------------------------------------------------------

  /** Registers a name for a static address (e.g. a VM configured with tabvisor.ip=). */
  addHost(name: string, ip: string | number): void {
    const n = this.shortName(name);
    if (!n) throw new Error(`bad host name "${name}"`);
    this.staticHosts.set(n, toIp(ip));
  }

  removeHost(name: string): boolean { return this.staticHosts.delete(this.shortName(name)); }

  /** every name the DNS server answers for, with its address */
  hosts(): { name: string; ip: string; source: "gateway" | "static" | "dhcp" }[] {
    const out: { name: string; ip: string; source: "gateway" | "static" | "dhcp" }[] = [{ name: this.name, ip: ipToString(this.ip), source: "gateway" }];
    for (const [name, ip] of this.staticHosts) out.push({ name, ip: ipToString(ip), source: "static" });
    const seen = new Set(out.map((h) => h.name));
    for (const [name, e] of this.dhcpNames()) if (!seen.has(name)) out.push({ name, ip: ipToString(e.ip), source: "dhcp" });
    return out;
  }

  /** "client", "client.lab" or "client.lab." → its address, if known */
  resolve(name: string): number | undefined {
    const n = this.shortName(name);
    if (!n) return undefined;
    const s = this.staticHosts.get(n);
    if (s !== undefined) return s;
    if (n === this.name) return this.ip;
    return this.dhcpNames().get(n)?.ip;
  }

  /** the name (with the domain) of an address, if known */
  reverse(ip: number): string | undefined {
    const fq = (n: string) => (this.domain ? `${n}.${this.domain}` : n);
    if (ip === this.ip) return fq(this.name);
    for (const [n, a] of this.staticHosts) if (a === ip) return n.includes(".") ? n : fq(n);
    for (const [n, e] of this.dhcpNames()) if (e.ip === ip) return fq(n);
    return undefined;
  }

  private shortName(name: string): string {
    let n = name.trim().toLowerCase().replace(/\.+$/, "");
    if (this.domain && n.endsWith("." + this.domain)) n = n.slice(0, -this.domain.length - 1);
    return n;
  }

  /** host name → its lease, for bound, unexpired leases; the most recently renewed wins a name */
  private dhcpNames(): Map<string, LeaseEntry> {
    const now = this.now();
    const m = new Map<string, LeaseEntry>();
    for (const e of this.byMac.values()) {
      if (e.state !== "bound" || e.expiresAt < now || !e.hostname) continue;
      const prev = m.get(e.hostname);
      if (!prev || prev.expiresAt < e.expiresAt) m.set(e.hostname, e);
    }
    return m;
  }

  // --- leases --------------------------------------------------------------------------------------------------

  leases(): Lease[] {
    const now = this.now();
    return [...this.byMac.values()]
      .sort((a, b) => a.ip - b.ip)
      .map((e) => this.toLease(e, now));
  }

  private toLease(e: LeaseEntry, now = this.now()): Lease {
    const state: LeaseState = e.state === "released" ? "released" : e.expiresAt < now ? "expired" : e.state;
    return { mac: macToString(e.mac), ip: ipToString(e.ip), hostname: e.hostname, state, expiresAt: e.expiresAt };
  }

  /** the leases in a form the constructor's `leases` option takes back */
  exportLeases(): LeaseRecord[] {
    return this.leases().filter((l) => l.state === "bound").map(({ mac, ip, hostname, expiresAt }) => ({ mac, ip, hostname, expiresAt }));
  }

  private isFree(ip: number, now: number): boolean {
    if (!this.inPool(ip) || this.byIp.has(ip)) return false;
    for (const a of this.staticHosts.values()) if (a === ip) return false;
    const until = this.declined.get(ip);
    if (until !== undefined) {
      if (until > now) return false;
      this.declined.delete(ip);
    }
    return true;
  }

  private bind(mac: Uint8Array, ip: number): LeaseEntry {
    const k = macKey(mac);
    const old = this.byMac.get(k);
    if (old) this.byIp.delete(old.ip);
    const taken = this.byIp.get(ip);
    if (taken) this.byMac.delete(macKey(taken.mac));
    const e: LeaseEntry = { mac: mac.slice(0, 6), ip, hostname: old?.hostname, state: "offered", expiresAt: 0 };
    this.byMac.set(k, e);
    this.byIp.set(ip, e);
    return e;
  }

  /** the address for a client: its own again, the one it asks for, a free one, or a reclaimed one */
  private allocate(mac: Uint8Array, requested: number | undefined, now: number): LeaseEntry | undefined {
    const own = this.byMac.get(macKey(mac));
    if (own && !this.declined.has(own.ip)) return own;
    if (requested !== undefined && this.isFree(requested, now)) return this.bind(mac, requested);
    for (let ip = this.poolStart; ip <= this.poolEnd; ip++) if (this.isFree(ip, now)) return this.bind(mac, ip);
    // reclaim the address of the longest-expired or released lease
    let victim: LeaseEntry | undefined;
    for (const e of this.byMac.values()) {
      const stale = e.state === "released" || e.expiresAt < now;
      if (stale && (!victim || e.expiresAt < victim.expiresAt)) victim = e;
    }
    return victim ? this.bind(mac, victim.ip) : undefined;
  }

  // --- frames --------------------------------------------------------------------------------------------------

  private handle(frame: Uint8Array): void {
    const eth = parseEthernet(frame);
    if (!eth) return;
    if (!isMulticastMac(eth.dst) && !macEquals(eth.dst, 0, this.mac)) return;
    if (eth.etherType === ETHERTYPE_ARP) return this.handleArp(eth.payload);
    if (eth.etherType !== ETHERTYPE_IPV4) return;
    const ip = parseIpv4(eth.payload);
    if (!ip || !ip.checksumOk || ip.mf || ip.fragmentOffset > 0) return;
    if (ip.protocol === IPPROTO_TCP) {
      if (ip.dst !== this.ip || transportChecksum(ip.src, ip.dst, IPPROTO_TCP, ip.payload) !== 0) return;
      this.learn(ip.src, eth.src);
      this.tcp.input(ip.src, ip.payload);
      return;
    }
    if (ip.protocol === IPPROTO_UDP) {
      const udp = parseUdp(ip.payload);
      if (!udp || !udpChecksumOk(ip)) return;
      if (udp.dstPort === DHCP_SERVER_PORT && this.dhcpEnabled && (ip.dst === 0xffffffff || ip.dst === this.ip || ip.dst === this.broadcast)) {
        return this.handleDhcp(udp.payload);
      }
      if (udp.dstPort === DNS_PORT && this.dnsEnabled && ip.dst === this.ip) {
        const reply = this.answerDns(udp.payload);
        if (reply) {
          this.port.send(buildUdpFrame({
            srcMac: this.mac, dstMac: eth.src, srcIp: this.ip, dstIp: ip.src, srcPort: DNS_PORT, dstPort: udp.srcPort, payload: reply,
          }));
        }
      }
      return;
    }
    if (ip.protocol === IPPROTO_ICMP && ip.dst === this.ip) {
      const icmp = parseIcmp(ip.payload);
      if (!icmp || !icmp.checksumOk || icmp.type !== ICMP_ECHO_REQUEST) return;
      const reply = buildIcmp(ICMP_ECHO_REPLY, 0, icmp.id, icmp.seq, icmp.data);
      this.counters.echoReplies++;
      this.port.send(buildEthernet(eth.src, this.mac, ETHERTYPE_IPV4, buildIpv4({ src: this.ip, dst: ip.src, protocol: IPPROTO_ICMP, payload: reply })));
    }
  }

  private handleArp(payload: Uint8Array): void {
    const a = parseArp(payload);
    if (a && (a.targetIp === this.ip || this.neighbours.has(a.senderIp))) this.learn(a.senderIp, a.senderMac);
    if (!a || a.op !== ARP_REQUEST || a.targetIp !== this.ip || isMulticastMac(a.senderMac)) return;
    this.counters.arpReplies++;
    this.port.send(buildArpFrame({ op: ARP_REPLY, senderMac: this.mac, senderIp: this.ip, targetMac: a.senderMac, targetIp: a.senderIp }));
  }

  // --- DHCP ----------------------------------------------------------------------------------------------------

  private handleDhcp(payload: Uint8Array): void {
    const m = parseDhcp(payload);
    if (!m || m.op !== BOOTREQUEST || m.htype !== 1 || m.hlen !== 6 || m.giaddr !== 0) return;
    const mac = m.chaddr.subarray(0, 6);
    if (isMulticastMac(mac)) return;
    const now = this.now();
    const type = dhcpMessageType(m);
    const requested = dhcpOptionIp(m, OPT_REQUESTED_IP);
    const serverId = dhcpOptionIp(m, OPT_SERVER_ID);
    const hostOpt = dhcpOptionString(m, OPT_HOSTNAME);
    const hostname = hostOpt !== undefined ? cleanHostname(hostOpt) || undefined : undefined;

    switch (type) {
      case DHCPDISCOVER: {
        const e = this.allocate(mac, requested, now);
        if (!e) return;
        if (e.state !== "bound" || e.expiresAt < now) {
          e.state = "offered";
          e.expiresAt = now + OFFER_HOLD_MS;
        }
        if (hostname) e.hostname = hostname;
        this.counters.dhcpOffers++;
        this.reply(m, DHCPOFFER, e.ip);
        return;
      }
      case DHCPREQUEST: {
        const own = this.byMac.get(macKey(mac));
        let ok: LeaseEntry | undefined;
        if (serverId !== undefined) {
          // SELECTING: the client picked a server
          if (serverId !== this.ip) {
            if (own && own.state === "offered") own.state = "released";
            return;
          }
          if (own && requested === own.ip) ok = own;
        } else if (requested !== undefined) {
          // INIT-REBOOT: the client wants its old address back
          if (own) { if (own.ip === requested) ok = own; }
          else if (this.isFree(requested, now)) ok = this.bind(mac, requested);
        } else if (m.ciaddr !== 0) {
          // RENEWING / REBINDING
          if (own && own.ip === m.ciaddr) ok = own;
        } else {
          return;
        }
        if (!ok) {
          this.counters.dhcpNaks++;
          this.reply(m, DHCPNAK, 0, "address not available");
          return;
        }
        ok.state = "bound";
        ok.expiresAt = now + this.leaseSeconds * 1000;
        if (hostname) ok.hostname = hostname;
        this.counters.dhcpAcks++;
        this.reply(m, DHCPACK, ok.ip);
        this.onLeaseChange?.(this.toLease(ok, now));
        return;
      }
      case DHCPRELEASE: {
        const own = this.byMac.get(macKey(mac));
        if (own && own.ip === m.ciaddr && own.state === "bound") {
          own.state = "released"; // the binding stays, so the client gets the same address next time
          own.expiresAt = now;
          this.counters.dhcpReleases++;
          this.onLeaseChange?.(this.toLease(own, now));
        }
        return;
      }
      case DHCPDECLINE: {
        const own = this.byMac.get(macKey(mac));
        if (requested !== undefined && own && own.ip === requested) {
          this.byMac.delete(macKey(mac));
          this.byIp.delete(own.ip);
          this.declined.set(own.ip, now + DECLINE_HOLD_MS);
          own.state = "released";
          this.onLeaseChange?.(this.toLease(own, now));
        }
        return;
      }
      case DHCPINFORM:
        if (m.ciaddr !== 0) this.reply(m, DHCPACK, 0);
        return;
    }
  }

  private reply(req: DhcpMessage, type: number, yiaddr: number, message?: string): void {
    const options: [number, DhcpOptionValue][] = [[OPT_MESSAGE_TYPE, [type]], [OPT_SERVER_ID, u32Bytes(this.ip)]];
    if (type === DHCPNAK) {
      if (message) options.push([OPT_MESSAGE, stringBytes(message)]);
    } else {
      if (yiaddr !== 0) {
        const lease = this.leaseSeconds;
        options.push(
          [OPT_LEASE_TIME, u32Bytes(lease)],
          [OPT_RENEWAL_TIME, u32Bytes(Math.floor(lease / 2))],
          [OPT_REBINDING_TIME, u32Bytes(Math.floor((lease * 7) / 8))],
        );
      }
      options.push(
        [OPT_SUBNET_MASK, u32Bytes(this.mask)],
        [OPT_BROADCAST, u32Bytes(this.broadcast)],
        [OPT_ROUTER, u32Bytes(this.ip)],
      );
      if (this.dnsEnabled) options.push([OPT_DNS, u32Bytes(this.ip)]);
      if (this.domain) options.push([OPT_DOMAIN_NAME, stringBytes(this.domain)]);
    }
    const payload = buildDhcp({
      op: BOOTREPLY, xid: req.xid, chaddr: req.chaddr, flags: req.flags,
      ciaddr: type === DHCPNAK ? 0 : req.ciaddr, yiaddr, siaddr: type === DHCPNAK ? 0 : this.ip, options,
    });
    const clientMac = req.chaddr.subarray(0, 6);
    let dstMac: ArrayLike<number> = clientMac;
    let dstIp: number;
    if (type === DHCPNAK || (req.flags & DHCP_FLAG_BROADCAST) !== 0) {
      dstMac = BROADCAST_MAC;
      dstIp = 0xffffffff;
    } else if (req.ciaddr !== 0) {
      dstIp = req.ciaddr;
    } else {
      dstIp = yiaddr;
    }
    this.port.send(buildUdpFrame({
      srcMac: this.mac, dstMac, srcIp: this.ip, dstIp, srcPort: DHCP_SERVER_PORT, dstPort: DHCP_CLIENT_PORT, payload,
    }));
  }

  // --- DNS -----------------------------------------------------------------------------------------------------

  /** The response to one DNS query message (UDP payload), or null to stay silent. */
  answerDns(payload: Uint8Array): Uint8Array | null {
    const q = parseDns(payload);
    if (!q || q.response) return null;
    this.counters.dnsQueries++;
    if (q.opcode !== 0) return buildDnsResponse({ ...q, questions: q.questions.slice(0, 1) }, RCODE_NOTIMP);
    if (q.questions.length !== 1) return buildDnsResponse({ ...q, questions: [] }, RCODE_FORMERR);
    const question = q.questions[0];
    if (question.class !== DNS_CLASS_IN) {
      this.counters.dnsNxdomain++;
      return buildDnsResponse(q, RCODE_NXDOMAIN);
    }
    const answers: DnsAnswer[] = [];
    const rev = parseReverseName(question.name);
    if (rev !== undefined) {
      const name = this.reverse(rev);
      if (name === undefined) {
        this.counters.dnsNxdomain++;
        return buildDnsResponse(q, RCODE_NXDOMAIN);
      }
      if (question.type === DNS_TYPE_PTR || question.type === DNS_TYPE_ANY) answers.push({ type: DNS_TYPE_PTR, ttl: this.dnsTtl, data: encodeName(name) });
      return buildDnsResponse(q, RCODE_NOERROR, answers);
    }
    const ip = this.resolve(question.name);
    if (ip === undefined) {
      this.counters.dnsNxdomain++;
      return buildDnsResponse(q, RCODE_NXDOMAIN);
    }
    // the name exists: A records for A and ANY, an empty answer (NODATA) for other types such as AAAA
    if (question.type === DNS_TYPE_A || question.type === DNS_TYPE_ANY) answers.push({ type: DNS_TYPE_A, ttl: this.dnsTtl, data: u32Bytes(ip) });
    return buildDnsResponse(q, RCODE_NOERROR, answers);
  }
}
