// A validated lab with every default written out (types.ts says what each default is), so the plan and the page
// never decide a default twice. The lab as written is kept for export and sharing: a file round-trips as it was.

import { IMAGES } from "../lab.ts";
import { defaultDhcpRange, firstHost, formatIpv4, parseSubnet } from "./ipv4.ts";
import { systemOf } from "./system-image.ts";
import type { FullLab, FullNetwork, FullStep, FullVm, Lab } from "./types.ts";

export const DEFAULT_MEMORY_MIB = 64;
export const DEFAULT_CHECK_TIMEOUT_SECONDS = 10;
export const DEFAULT_FILE_MODE = "0644";

export function normalizeLab(lab: Lab): FullLab {
  return {
    version: 1,
    title: lab.title,
    description: lab.description ?? "",
    networks: lab.networks.map((n): FullNetwork => {
      const subnet = parseSubnet(n.subnet).subnet!;
      const range = defaultDhcpRange(subnet);
      return {
        name: n.name, subnet: n.subnet, domain: n.domain ?? "lab",
        gateway: {
          address: n.gateway?.address ?? formatIpv4(firstHost(subnet)),
          dhcp: n.gateway?.dhcp ?? true,
          dns: n.gateway?.dns ?? true,
          dhcpRange: n.gateway?.dhcpRange ? { ...n.gateway.dhcpRange } : { first: formatIpv4(range.first), last: formatIpv4(range.last) },
        },
      };
    }),
    vms: lab.vms.map((v): FullVm => ({
      name: v.name,
      image: v.image ?? IMAGES[0].id,
      memoryMiB: v.memoryMiB ?? systemOf(v.image)?.ramMiB ?? DEFAULT_MEMORY_MIB,
      cpuCap: v.cpuCap ?? 100,
      cpuWeight: v.cpuWeight ?? 100,
      balloonMiB: v.balloonMiB ?? 0,
      diskMiB: v.diskMiB ?? 0,
      jit: v.jit ?? false,
      cards: v.cards.map((c) => ({ network: c.network, address: c.address ?? "dhcp" })),
      forwarding: v.forwarding ?? false,
      routes: (v.routes ?? []).map((r) => ({ ...r })),
      setup: {
        files: (v.setup?.files ?? []).map((f) => ({ path: f.path, content: f.content, mode: f.mode ?? DEFAULT_FILE_MODE, encoding: f.encoding ?? "utf8" })),
        commands: [...(v.setup?.commands ?? [])],
      },
    })),
    steps: (lab.steps ?? []).map((s): FullStep => ({
      title: s.title ?? "",
      text: s.text,
      snippets: (s.snippets ?? []).map((x) => ({ vm: x.vm, command: x.command, label: x.label ?? x.command })),
      checks: (s.checks ?? []).map((c) => ({
        title: c.title, vm: c.vm, command: c.command,
        timeoutSeconds: c.timeoutSeconds ?? DEFAULT_CHECK_TIMEOUT_SECONDS,
        pass: { exit: c.pass?.exit ?? "zero", ...(c.pass?.stdout !== undefined ? { stdout: c.pass.stdout } : {}) },
        hint: c.hint ?? "",
      })),
    })),
  };
}
