// The lab file as the page has it now: the open lab's file (if any) with its VMs and networks brought in line with
// what is in the dashboard (VMs and networks added, removed or changed there), so Export and Share hand on what the
// teacher built, and the panel's "Lab file" view follows every edit. What the dashboard does not show (a lab's
// setup, static addresses, routes) is kept from the lab file for the VMs and cards it still describes; steps keep
// only the snippets and checks whose VM is still there.

import type { Lab, LabCard, LabNetwork, LabVm } from "../labs/types.ts";
import { validateLab } from "../labs/validate.ts";
import { LAB_FORMAT_VERSION } from "../labs/types.ts";
import { formatSubnet, maskOf, parseIpv4 } from "../labs/ipv4.ts";
import { imageInfo, type VmSpec } from "../lab.ts";
import type { NetworkConfig } from "../../net/switch-host.ts";

/** The page, as far as a lab file describes it. */
export interface PageView {
  vms: { spec: VmSpec; /** each card's network, eth0 first (null: unplugged) */ cards: (string | null)[] }[];
  networks: NetworkConfig[];
  /** the page's default network (made whatever the lab): in the file only when a VM uses it or the file has it */
  defaultNetwork?: string;
}

function networkOf(cfg: NetworkConfig, before: LabNetwork | undefined): LabNetwork {
  const [ip, p] = (cfg.gateway ?? "10.0.0.1/24").split("/");
  const prefix = p === undefined ? 24 : Number(p);
  const subnet = formatSubnet({ base: ((parseIpv4(ip) ?? 0) & maskOf(prefix)) >>> 0, prefix });
  const n: LabNetwork = { ...(before?.subnet === subnet ? before : {}), name: cfg.name, subnet };
  const gateway = { ...(before?.subnet === subnet ? before.gateway : {}), address: ip };
  if (cfg.dhcp === false) gateway.dhcp = false; else delete gateway.dhcp;
  if (cfg.dns === false) gateway.dns = false; else delete gateway.dns;
  if (cfg.poolStart && cfg.poolEnd) gateway.dhcpRange = { first: cfg.poolStart, last: cfg.poolEnd };
  n.gateway = gateway;
  if (cfg.domain && cfg.domain !== "lab") n.domain = cfg.domain; else delete n.domain;
  return n;
}

function vmOf(v: PageView["vms"][number], before: LabVm | undefined): LabVm {
  const s = v.spec;
  const cards: LabCard[] = [];
  v.cards.forEach((network, i) => {
    if (network === null) return; // a card on no network has no place in a lab file
    const old = before?.cards[i];
    cards.push(old && old.network === network ? old : { network });
  });
  const vm: LabVm = { ...before, name: s.name, image: s.image, memoryMiB: s.ramMiB, cpuCap: s.cpuCap, cpuWeight: s.weight, cards };
  if (s.balloonMiB) vm.balloonMiB = s.balloonMiB; else delete vm.balloonMiB;
  // (a system image's disk is the image: its size is not the VM's to choose)
  if (s.diskMiB && !imageInfo(s.image)?.system) vm.diskMiB = s.diskMiB; else delete vm.diskMiB;
  if (s.jit) vm.jit = true; else delete vm.jit;
  return vm;
}

/** The lab file for the page as it is, starting from `base` (the open lab's file), or a new one titled `title`.
 *  A page that is as `base` describes it gives `base` itself back (the file as its author wrote it). */
export function labFromPage(page: PageView, base?: Lab, title = "My lab"): Lab {
  const lab = derive(page, base, title);
  if (base) {
    const a = validateLab(lab), b = validateLab(base);
    if (a.ok && b.ok && sameValue(a.full, b.full)) return base;
  }
  return lab;
}

/** Deep equality of plain JSON values. */
function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a), kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

function derive(page: PageView, base: Lab | undefined, title: string): Lab {
  const names = new Set(page.vms.map((v) => v.spec.name));
  const used = new Set(page.vms.flatMap((v) => v.cards.filter((c): c is string => c !== null)));
  // every network of the page (made in the dashboard or by the lab), but the page's default one when nothing uses it
  const networks = page.networks
    .filter((n) => n.name !== page.defaultNetwork || used.has(n.name) || base?.networks.some((b) => b.name === n.name))
    .map((n) => networkOf(n, base?.networks.find((b) => b.name === n.name)));
  const vms = page.vms.map((v) => vmOf(v, base?.vms.find((b) => b.name === v.spec.name)));
  const steps = base?.steps?.map((st) => ({
    ...st,
    snippets: st.snippets?.filter((x) => names.has(x.vm)),
    checks: st.checks?.filter((x) => names.has(x.vm)),
  }));
  const lab: Lab = { version: LAB_FORMAT_VERSION, title: base?.title ?? title, networks, vms };
  if (base?.description) lab.description = base.description;
  if (steps) lab.steps = steps;
  return lab;
}
