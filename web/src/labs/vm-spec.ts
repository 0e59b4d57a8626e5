// A lab VM as the Hypervisor takes it: its VmSpec (web/src/lab.ts) and the kernel command-line words that give its
// first card a static address. Only eth0 can be set up that way (the guest's /init reads tabvisor.ip/gw/dns/dhcp
// for eth0 alone); further cards are set up by commands once the guest answers (see plan.ts).

import { newSpec, type VmSpec } from "../lab.ts";
import { isHostOf, parseIpv4, parseSubnet } from "./ipv4.ts";
import type { FullLab, FullVm } from "./types.ts";

/** The words appended to the command line: eth0's static address, its default route and name server. */
export function bootArgsOf(vm: FullVm, lab: FullLab): string {
  const card = vm.cards[0];
  if (!card || card.address === "dhcp") return "";
  const net = lab.networks.find((n) => n.name === card.network)!;
  const prefix = net.subnet.split("/")[1];
  const words = [`tabvisor.ip=${card.address}/${prefix}`];
  // a default route the lab gives wins over the network's gateway, when its next hop is on eth0's network
  const gw = defaultRouteVia(vm, 0, lab) ?? (vm.routes.some((r) => r.to === "default") ? undefined : net.gateway.address);
  if (gw) words.push(`tabvisor.gw=${gw}`);
  if (net.gateway.dns) words.push(`tabvisor.dns=${net.gateway.address}`);
  return words.join(" ");
}

/** The next hop of the VM's default route when it lies on card `i`'s network. */
export function defaultRouteVia(vm: FullVm, i: number, lab: FullLab): string | undefined {
  const route = vm.routes.find((r) => r.to === "default");
  if (!route) return undefined;
  const net = lab.networks.find((n) => n.name === vm.cards[i]?.network);
  return net && cardNetworkOf(route.via, lab, vm) === i ? route.via : undefined;
}

/** Which of the VM's cards has `ip` on its network (the first that does), or -1. */
export function cardNetworkOf(ip: string, lab: FullLab, vm: FullVm): number {
  const n = parseIpv4(ip);
  return n === undefined ? -1 : vm.cards.findIndex((c) => {
    const subnet = parseSubnet(lab.networks.find((x) => x.name === c.network)?.subnet ?? "").subnet;
    return !!subnet && isHostOf(subnet, n);
  });
}

export function vmSpecOf(vm: FullVm, lab: FullLab): VmSpec {
  return newSpec(vm.name, {
    image: vm.image, ramMiB: vm.memoryMiB, cpuCap: vm.cpuCap, weight: vm.cpuWeight, diskMiB: vm.diskMiB,
    balloonMiB: vm.balloonMiB, bootArgs: bootArgsOf(vm, lab), ...(vm.jit ? { jit: true } : {}),
  });
}
