// What the importers share: machines with interfaces on named networks and startup commands (however another tool
// wrote them) made into a lab. Each network's subnet comes from the addresses its machines give themselves; its
// gateway takes an address nobody uses; DHCP is on where some card has no address, over a range clear of the static
// ones. What cannot be carried over is said in a note, never dropped silently; the result is always a valid lab.

import { uniqueName } from "../lab.ts";
import { broadcastOf, defaultDhcpRange, formatIpv4, formatSubnet, isHostOf, maskOf, overlaps, parseIpv4, parseSubnet, type Subnet } from "./ipv4.ts";
import { parseStartup, type StartupAddress } from "./startup.ts";
import { formatLabError, maxCards, NETWORK_NAME_RE, validateLab } from "./validate.ts";
import type { Lab, LabCard, LabFile, LabNetwork, LabRoute, LabVm } from "./types.ts";

export interface ImportedMachine {
  /** as the other tool names it */
  name: string;
  /** the network (as the other tool names it) of each interface, eth0 first */
  interfaces: string[];
  /** the shell lines it runs when it starts */
  startup: string[];
  /** addresses given outside the startup lines, by interface name (containerlab's mgmt-ipv4) */
  addresses?: Map<string, { ip: string; prefix: number }>;
  memoryMiB?: number;
  cpuCap?: number;
  forwarding?: boolean;
  files?: LabFile[];
  /** interfaces the other tool numbered otherwise: its name for each (eth2) to the card's (eth1), so addresses
   *  given to them land on the right card */
  renamed?: Map<string, string>;
}

export interface ImportResult {
  lab: Lab;
  /** what did not map onto the lab, one sentence each */
  notes: string[];
}

export class ImportError extends Error {}

/** Where subnets are taken from for networks whose machines give no address. */
const SPARE_SUBNETS = "10.250.0.0/16";

export function labFromTopology(title: string, description: string, machines: ImportedMachine[], notes: string[],
  fixedSubnets: Map<string, string> = new Map()): ImportResult {
  const netNames = networkNames(machines, notes);
  const vmNames = new Map<string, string>();
  for (const m of machines) {
    const name = uniqueName(m.name, [...vmNames.values()], 1);
    if (name !== m.name) notes.push(`machine "${m.name}" is VM "${name}" (a VM's name is its host name: lower-case letters, digits and dashes)`);
    vmNames.set(m.name, name);
  }
  const parsed = machines.map((m) => {
    const p = parseStartup(m.startup);
    // (an interface the tool does not have keeps its name with a mark: no card's name, said in a note below)
    if (m.renamed?.size) p.addresses = new Map([...p.addresses].map(([dev, a]) => [m.renamed!.get(dev) ?? `!${dev}`, a]));
    for (const [dev, a] of m.addresses ?? []) if (!p.addresses.has(dev)) p.addresses.set(dev, { ...a, line: "" });
    if (m.interfaces.length > maxCards(0)) {
      notes.push(`${m.name}: interfaces beyond eth${maxCards(0) - 1} left out (a VM has at most ${maxCards(0)} cards)`);
    }
    return { m, p, interfaces: m.interfaces.slice(0, maxCards(0)) };
  });

  // each network's subnet: the one most of its addresses are in
  const subnets = new Map<string, Subnet>();
  for (const [net, text] of fixedSubnets) subnets.set(net, parseSubnet(text).subnet!);
  for (const net of netNames.keys()) {
    if (subnets.has(net)) continue;
    const counts = new Map<string, number>();
    for (const { p, interfaces } of parsed) {
      interfaces.forEach((n, i) => {
        const a = p.addresses.get(`eth${i}`);
        if (n !== net || !a || a.prefix < 8 || a.prefix > 30) return;
        const key = formatSubnet({ base: (parseIpv4(a.ip)! & maskOf(a.prefix)) >>> 0, prefix: a.prefix });
        counts.set(key, (counts.get(key) ?? 0) + 1);
      });
    }
    const best = [...counts].sort((a, b) => b[1] - a[1])[0];
    if (best) subnets.set(net, parseSubnet(best[0]).subnet!);
  }
  for (const net of netNames.keys()) {
    if (subnets.has(net)) continue;
    const s = spareSubnet([...subnets.values()]);
    subnets.set(net, s);
    notes.push(`network "${net}": no machine gives itself an address on it, so it is ${formatSubnet(s)} with DHCP`);
  }

  // cards: static where the address fits its network's subnet (and is its only user), else DHCP and the line is kept
  const taken = new Map<string, Set<number>>([...netNames.keys()].map((n) => [n, new Set<number>()]));
  const vms: LabVm[] = [];
  const cardsOf = new Map<string, LabCard[]>();
  const extraCommands = new Map<string, string[]>();
  for (const { m, p, interfaces } of parsed) {
    const back: string[] = [];
    const cards = interfaces.map((net, i): LabCard => {
      const a: StartupAddress | undefined = p.addresses.get(`eth${i}`);
      const card: LabCard = { network: netNames.get(net)! };
      if (!a) return card;
      const s = subnets.get(net)!;
      const ip = parseIpv4(a.ip)!;
      if (a.prefix !== s.prefix || !isHostOf(s, ip) || taken.get(net)!.has(ip)) {
        notes.push(`${m.name}: eth${i}'s address ${a.ip}/${a.prefix} does not fit network "${net}" (${formatSubnet(s)}${taken.get(net)!.has(ip) ? ", where another machine has it" : ""}): the card takes DHCP${a.line ? " and the line is kept as a command" : ""}`);
        if (a.line) back.push(a.line);
        return card;
      }
      taken.get(net)!.add(ip);
      return { ...card, address: a.ip };
    });
    for (const [dev, a] of p.addresses) {
      const card = /^eth([0-9]+)$/.exec(dev);
      if ((!card || Number(card[1]) >= interfaces.length) && a.line) {
        back.push(a.line);
        notes.push(`${m.name}: ${dev.replace(/^!/, "")} has an address but is on no network (the line is kept as a command)`);
      }
    }
    cardsOf.set(m.name, cards);
    extraCommands.set(m.name, back);
  }

  const networks: LabNetwork[] = [...netNames].map(([net, name]) => networkOf(name, subnets.get(net)!, taken.get(net)!, [...cardsOf.values()].flat().filter((c) => c.network === name)));

  const withCommands: string[] = [];
  for (const { m, p } of parsed) {
    const cards = cardsOf.get(m.name)!;
    const commands = [...extraCommands.get(m.name)!];
    const routes: LabRoute[] = [];
    for (const r of p.routes) {
      const to = r.to === "default" || parseSubnet(r.to).subnet ? r.to : undefined;
      const via = parseIpv4(r.via);
      const reachable = via !== undefined && cards.some((c) => { const n = networks.find((x) => x.name === c.network)!; return isHostOf(parseSubnet(n.subnet).subnet!, via); });
      const second = to === "default" && routes.some((x) => x.to === "default");
      if (to && reachable && !second) routes.push({ to, via: r.via });
      else { commands.push(r.line); notes.push(`${m.name}: the route "${r.line}" is kept as a command (${!to ? "its destination is not a subnet" : second ? "a second default route" : "its next hop is on none of its networks"})`); }
    }
    const forwarding = p.forwarding || !!m.forwarding;
    if (forwarding && cards.length < 2) {
      commands.push("echo 1 > /proc/sys/net/ipv4/ip_forward");
      notes.push(`${m.name}: forwards IP with fewer than two cards: kept as a command, not as a router`);
    }
    commands.push(...p.commands);
    if (commands.length) withCommands.push(`${vmNames.get(m.name)} (${commands.length})`);
    const vm: LabVm = { name: vmNames.get(m.name)!, cards };
    if (m.memoryMiB !== undefined) vm.memoryMiB = m.memoryMiB;
    if (m.cpuCap !== undefined) vm.cpuCap = m.cpuCap;
    if (forwarding && cards.length >= 2) vm.forwarding = true;
    if (routes.length) vm.routes = routes;
    if (commands.length || m.files?.length) vm.setup = { ...(m.files?.length ? { files: m.files } : {}), ...(commands.length ? { commands } : {}) };
    vms.push(vm);
  }
  if (withCommands.length) {
    notes.push(`startup commands kept to run at first boot: ${withCommands.join(", ")}; they run in the busybox image, where programs it lacks fail`);
  }

  const lab: Lab = { version: 1, title: title.slice(0, 120) || "Imported lab", ...(description ? { description } : {}), networks, vms };
  const r = validateLab(lab);
  if (!r.ok) throw new ImportError(`the imported lab is not valid: ${r.errors.map(formatLabError).join("; ")}`);
  return { lab, notes };
}

/** The other tool's network names made valid and unique, in the order machines use them. */
function networkNames(machines: ImportedMachine[], notes: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of machines) {
    for (const net of m.interfaces.slice(0, maxCards(0))) {
      if (out.has(net)) continue;
      let name = net.replace(/[^A-Za-z0-9_.-]+/g, "-").replace(/^[^A-Za-z0-9]+/, "").slice(0, 32) || "net";
      const used = new Set([...out.values()].map((n) => n.toLowerCase()));
      for (let k = 2; used.has(name.toLowerCase()); k++) name = `${name.slice(0, 32 - `-${k}`.length)}-${k}`;
      if (!NETWORK_NAME_RE.test(name)) throw new ImportError(`cannot name network "${net}"`);
      if (name !== net) notes.push(`network "${net}" is named "${name}" (letters, digits, "_", "." and "-")`);
      out.set(net, name);
    }
  }
  return out;
}

function networkOf(name: string, s: Subnet, statics: Set<number>, cards: LabCard[]): LabNetwork {
  // the gateway takes the highest free address: machines of other tools often use the low ones for routers
  let gw = broadcastOf(s) - 1;
  while (statics.has(gw)) gw--;
  const net: LabNetwork = { name, subnet: formatSubnet(s), gateway: { address: formatIpv4(gw) } };
  if (cards.every((c) => c.address !== undefined)) { net.gateway!.dhcp = false; return net; }
  const def = defaultDhcpRange(s);
  if ([...statics].some((ip) => ip >= def.first && ip <= def.last)) net.gateway!.dhcpRange = largestFreeRun(s, [...statics, gw]);
  return net;
}

/** The longest run of host addresses of `s` none of `used` is in. */
function largestFreeRun(s: Subnet, used: number[]): { first: string; last: string } {
  const marks = [s.base, ...used.sort((a, b) => a - b), broadcastOf(s)];
  let best = { first: 0, last: -1 };
  for (let k = 1; k < marks.length; k++) {
    const first = marks[k - 1] + 1, last = marks[k] - 1;
    if (last - first > best.last - best.first) best = { first, last };
  }
  return { first: formatIpv4(best.first), last: formatIpv4(best.last) };
}

/** A /24 of SPARE_SUBNETS that overlaps none of `used`. */
function spareSubnet(used: Subnet[]): Subnet {
  const pool = parseSubnet(SPARE_SUBNETS).subnet!;
  for (let k = 0; k < 256; k++) {
    const s = { base: pool.base + k * 256, prefix: 24 };
    if (!used.some((u) => overlaps(u, s))) return s;
  }
  throw new ImportError("too many networks without addresses");
}
