// Reads the shell commands another tool runs when a machine starts (a Kathará .startup file, a containerlab node's
// exec list) for what the lab format says by itself: interface addresses, routes, IP forwarding. What it reads is
// taken out; every other line stays, in order, to run at first boot. Only plain one-command lines are read (no
// ";", "&&", pipes, variables): anything cleverer is left as a command rather than half understood.

import { formatIpv4, maskOf, parseIpv4 } from "./ipv4.ts";

export interface StartupAddress { ip: string; prefix: number; line: string }
export interface StartupRoute { to: string; via: string; line: string }

export interface ParsedStartup {
  /** by interface name (eth0, eth1, ...): the first address given to it */
  addresses: Map<string, StartupAddress>;
  routes: StartupRoute[];
  forwarding: boolean;
  /** the lines left, to run at first boot */
  commands: string[];
  /** lines left out because the lab does what they do (bringing an interface up) */
  dropped: string[];
}

export function parseStartup(lines: string[]): ParsedStartup {
  const out: ParsedStartup = { addresses: new Map(), routes: [], forwarding: false, commands: [], dropped: [] };
  for (const line of joinContinuations(lines)) {
    const t = line.trim();
    if (!t || t.startsWith("#")) continue;
    if (/[;&|`$<>(){}]/.test(t.replace(/^echo 1 > \/proc\/sys\/net\/ipv4\/ip_forward$/, ""))) { out.commands.push(t); continue; }
    const w = t.split(/\s+/);
    if (isForwarding(w, t)) { out.forwarding = true; continue; }
    const addr = ifconfigAddress(w) ?? ipAddrAdd(w);
    if (addr && !out.addresses.has(addr.dev)) { out.addresses.set(addr.dev, { ip: addr.ip, prefix: addr.prefix, line: t }); continue; }
    if (isLinkUp(w)) { out.dropped.push(t); continue; }
    const route = routeOf(w);
    if (route) { out.routes.push({ ...route, line: t }); continue; }
    out.commands.push(t);
  }
  return out;
}

function joinContinuations(lines: string[]): string[] {
  const out: string[] = [];
  let acc = "";
  for (const l of lines) {
    if (l.endsWith("\\")) { acc += l.slice(0, -1) + " "; continue; }
    out.push(acc + l);
    acc = "";
  }
  if (acc) out.push(acc);
  return out;
}

function isForwarding(w: string[], t: string): boolean {
  return t === "echo 1 > /proc/sys/net/ipv4/ip_forward" ||
    (w[0] === "sysctl" && (w.length === 2 || (w.length === 3 && w[1] === "-w")) && /^net\.ipv4\.(ip_forward|conf\.all\.forwarding)=1$/.test(w[w.length - 1]));
}

const DEV = /^eth[0-9]+$/;

/** `ifconfig eth0 10.0.0.1[/24] [netmask 255.255.255.0] [broadcast ...] [up]` (no prefix: the address's class). */
function ifconfigAddress(w: string[]): { dev: string; ip: string; prefix: number } | undefined {
  if (w[0] !== "ifconfig" || !DEV.test(w[1] ?? "") || !w[2]) return undefined;
  const [ipText, p] = w[2].split("/");
  const ip = parseIpv4(ipText);
  if (ip === undefined) return undefined;
  let prefix = p !== undefined ? Number(p) : classfulPrefix(ip);
  for (let k = 3; k < w.length; k++) {
    if (w[k] === "netmask") { const m = prefixOfMask(w[++k] ?? ""); if (m === undefined) return undefined; prefix = m; }
    else if (w[k] === "broadcast") k++;
    else if (w[k] !== "up") return undefined;
  }
  return Number.isInteger(prefix) && prefix >= 0 && prefix <= 32 ? { dev: w[1], ip: formatIpv4(ip), prefix } : undefined;
}

/** `ip addr add 10.0.0.1/24 dev eth0` (also `ip a add`, `ip address add`, `ip addr replace`; a broadcast word). */
function ipAddrAdd(w: string[]): { dev: string; ip: string; prefix: number } | undefined {
  if (w[0] !== "ip" || !/^a(d(d(r(e(s(s)?)?)?)?)?)?$/.test(w[1] ?? "") || !["add", "a", "replace"].includes(w[2] ?? "")) return undefined;
  const m = /^([0-9.]+)\/([0-9]{1,2})$/.exec(w[3] ?? "");
  const ip = m ? parseIpv4(m[1]) : undefined;
  if (ip === undefined) return undefined;
  const rest = w.slice(4);
  const d = rest.indexOf("dev");
  const dev = rest[d + 1];
  if (d < 0 || !DEV.test(dev ?? "")) return undefined;
  const others = rest.filter((_, k) => k !== d && k !== d + 1);
  if (others.length && !(others.length === 2 && (others[0] === "brd" || others[0] === "broadcast"))) return undefined;
  return Number(m![2]) <= 32 ? { dev, ip: formatIpv4(ip), prefix: Number(m![2]) } : undefined;
}

function isLinkUp(w: string[]): boolean {
  if (w[0] === "ifconfig" && DEV.test(w[1] ?? "") && w[2] === "up" && w.length === 3) return true;
  if (w[0] === "ip" && /^l(i(n(k)?)?)?$/.test(w[1] ?? "") && w[2] === "set") {
    const rest = w.slice(3).filter((x) => x !== "dev");
    return rest.length === 2 && DEV.test(rest[0]) && rest[1] === "up";
  }
  return false;
}

/** `route add default gw X`, `route add -net N netmask M gw X`, `route add -net N/P gw X`, `ip route add|replace
 *  default|N/P via X` (a trailing `dev ethN` allowed). */
function routeOf(w: string[]): { to: string; via: string } | undefined {
  const words = w.length >= 2 && w[w.length - 2] === "dev" && DEV.test(w[w.length - 1]) ? w.slice(0, -2) : w;
  if (words[0] === "route" && words[1] === "add") {
    let k = 2, to: string | undefined;
    if (words[k] === "default") { to = "default"; k++; }
    else if (words[k] === "-net") {
      const net = words[k + 1] ?? "";
      if (words[k + 2] === "netmask") { const p = prefixOfMask(words[k + 3] ?? ""); to = p === undefined ? undefined : `${net}/${p}`; k += 4; }
      else { to = net.includes("/") ? net : undefined; k += 2; }
    }
    if (!to || words[k] !== "gw" || words.length !== k + 2 || parseIpv4(words[k + 1]) === undefined) return undefined;
    return { to, via: words[k + 1] };
  }
  if (words[0] === "ip" && /^r(o(u(t(e)?)?)?)?$/.test(words[1] ?? "") && ["add", "replace"].includes(words[2] ?? "") && words[4] === "via" && words.length === 6) {
    if (parseIpv4(words[5]) === undefined) return undefined;
    return { to: words[3], via: words[5] };
  }
  return undefined;
}

function classfulPrefix(ip: number): number {
  const first = ip >>> 24;
  return first < 128 ? 8 : first < 192 ? 16 : 24;
}

function prefixOfMask(text: string): number | undefined {
  const m = parseIpv4(text);
  if (m === undefined) return undefined;
  for (let p = 0; p <= 32; p++) if (maskOf(p) === m) return p;
  return undefined;
}
