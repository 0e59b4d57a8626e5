// What building a lab takes, as an ordered list of operations on the page's real objects: networks for the
// NetworkHub (NetworkConfig), VMs for the Hypervisor (VmSpec and CreateOptions), then, per VM once its guest's
// agent answers, commands and files through its control channel (VmHandle.agentExec/agentPut). Pure: the page
// runs the list (plan first, so a lab that cannot be built is refused before anything is made).
//
// How each field of the format is realised:
//   network              -> create-network (gateway address/prefix, domain, DHCP on/off and range, DNS on/off)
//   static address, eth0 -> the VM's boot arguments (tabvisor.ip/gw/dns, read by the guest's /init); such a VM boots
//                           instead of starting from the template snapshot (its command line says more than a name)
//   static address, eth1+-> `ip addr add` through the agent (the guest's /init sets up eth0 only)
//   DHCP on eth1+        -> udhcpc started through the agent, with a script of the plan's (CARD_DHCP_SCRIPT) that
//                           leaves the VM's default route and name server to eth0
//   DHCP on any card     -> waiting (through the agent) until it has its lease (eth0's before the other cards are
//                           set up), before routes and setup commands
//   static address + DNS -> register-name: the gateway's DNS learns names from DHCP only, so a statically addressed
//                           VM's name must be registered (Gateway.addHost; the hub needs a way to reach it)
//   forwarding           -> /proc/sys/net/ipv4/ip_forward through the agent
//   routes               -> `ip route replace` through the agent (eth0's default route: its boot arguments)
//   setup files/commands -> agentPut, then agentExec, in the order written
//
// Operations for different VMs may run concurrently once their VMs exist; within a VM they run in order.

import type { VmSpec } from "../lab.ts";
import type { CardPlan, CreateOptions } from "../hypervisor.ts";
import type { NetworkConfig } from "../../net/switch-host.ts";
import type { FullLab, FullVm } from "./types.ts";
import { defaultRouteVia, vmSpecOf } from "./vm-spec.ts";

/** How long a new VM's guest may take to answer its agent (it boots, or starts from the template). */
export const READY_TIMEOUT_MS = 120_000;
/** The time limit of each command that sets up a card, a route or forwarding. */
export const NETWORK_COMMAND_TIMEOUT_MS = 15_000;
/** The time limit of each of the lab's own first-boot commands. */
export const SETUP_COMMAND_TIMEOUT_MS = 120_000;

export type LabOp =
  | { kind: "create-network"; config: NetworkConfig }
  | { kind: "register-name"; network: string; name: string; address: string }
  | { kind: "create-vm"; vm: string; spec: VmSpec; options: CreateOptions & { cards: CardPlan[] }; start: boolean }
  | { kind: "wait-ready"; vm: string; timeoutMs: number }
  | { kind: "exec"; vm: string; command: string; timeoutMs: number; purpose: "network" | "setup" }
  | { kind: "put-file"; vm: string; path: string; mode: number; data: Uint8Array };

export function planLab(lab: FullLab): LabOp[] {
  const ops: LabOp[] = [];
  for (const n of lab.networks) {
    const prefix = n.subnet.split("/")[1];
    ops.push({
      kind: "create-network",
      config: {
        name: n.name, gateway: `${n.gateway.address}/${prefix}`, domain: n.domain, dhcp: n.gateway.dhcp, dns: n.gateway.dns,
        poolStart: n.gateway.dhcpRange.first, poolEnd: n.gateway.dhcpRange.last,
      },
    });
  }
  for (const vm of lab.vms) {
    vm.cards.forEach((c) => {
      const net = lab.networks.find((n) => n.name === c.network)!;
      if (c.address !== "dhcp" && net.gateway.dns) ops.push({ kind: "register-name", network: net.name, name: vm.name, address: c.address });
    });
  }
  for (const vm of lab.vms) {
    ops.push({
      kind: "create-vm", vm: vm.name, spec: vmSpecOf(vm, lab), start: true,
      options: { cards: vm.cards.map((c): CardPlan => ({ network: c.network })), keepDisk: false },
    });
  }
  for (const vm of lab.vms) ops.push(...guestOps(vm, lab));
  return ops;
}

/** What is done inside one VM once its guest answers: its network beyond eth0, then its files and commands. */
function guestOps(vm: FullVm, lab: FullLab): LabOp[] {
  const ops: LabOp[] = [{ kind: "wait-ready", vm: vm.name, timeoutMs: READY_TIMEOUT_MS }];
  const net = (command: string): LabOp => ({ kind: "exec", vm: vm.name, command, timeoutMs: NETWORK_COMMAND_TIMEOUT_MS, purpose: "network" });
  const lease = (i: number) => net(waitForLease(`eth${i}`, NETWORK_COMMAND_TIMEOUT_MS / 1000 - 3));
  // eth0's lease first (its udhcpc runs in the background from the guest's /init): its default route and name
  // server are the VM's, and a later card's must not take their place
  if (vm.cards[0]?.address === "dhcp") ops.push(lease(0));
  if (vm.cards.some((c, i) => i > 0 && c.address === "dhcp")) {
    ops.push({ kind: "put-file", vm: vm.name, path: CARD_DHCP_SCRIPT, mode: 0o755, data: new TextEncoder().encode(CARD_DHCP_SCRIPT_TEXT) });
  }
  vm.cards.forEach((c, i) => {
    if (i === 0) return; // eth0: the boot arguments (static) or the guest's /init (DHCP)
    const dev = `eth${i}`;
    if (c.address === "dhcp") {
      ops.push(net(`ip link set ${dev} up && udhcpc -i ${dev} -s ${CARD_DHCP_SCRIPT} -x hostname:${vm.name} -p /run/udhcpc.${dev}.pid -b -t 5 -T 1 </dev/null >>/run/udhcpc.${dev}.log 2>&1`));
    } else {
      const prefix = lab.networks.find((n) => n.name === c.network)!.subnet.split("/")[1];
      ops.push(net(`ip link set ${dev} up && ip addr add ${c.address}/${prefix} dev ${dev}`));
    }
  });
  // every DHCP card has its lease before routes (whose next hop must be on a configured network) and the lab's
  // commands run
  vm.cards.forEach((c, i) => { if (i > 0 && c.address === "dhcp") ops.push(lease(i)); });
  if (vm.forwarding) ops.push(net("echo 1 > /proc/sys/net/ipv4/ip_forward"));
  const eth0Static = vm.cards[0] && vm.cards[0].address !== "dhcp";
  for (const r of vm.routes) {
    // a static eth0's default route is on the command line already
    if (r.to === "default" && eth0Static && defaultRouteVia(vm, 0, lab)) continue;
    ops.push(net(`ip route replace ${r.to} via ${r.via}`));
  }
  for (const f of vm.setup.files) {
    ops.push({ kind: "put-file", vm: vm.name, path: f.path, mode: parseInt(f.mode, 8), data: fileBytes(f.content, f.encoding) });
  }
  for (const command of vm.setup.commands) ops.push({ kind: "exec", vm: vm.name, command, timeoutMs: SETUP_COMMAND_TIMEOUT_MS, purpose: "setup" });
  return ops;
}

/** udhcpc's script for a VM's second and later cards (eth1, ...): the guest's own (/etc/udhcpc/default.script)
 *  would replace the VM's default route (failing: "File exists") and its /etc/resolv.conf with this network's,
 *  so that names on eth0's network no longer resolve. This one sets the card's address (and with it the route to
 *  its subnet) and gives the VM a default route and a name server only when it has none. */
export const CARD_DHCP_SCRIPT = "/run/lab/udhcpc-card.script";
export const CARD_DHCP_SCRIPT_TEXT = `#!/bin/sh
# udhcpc script of a lab VM's second and later cards (web/src/labs/plan.ts): the address; a default route and a
# name server only when the VM has none (those are eth0's)
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set dev "$interface" up ;;
  bound|renew)
    p=\${mask:-24}
    if ! ip -4 addr show dev "$interface" | grep -q "inet $ip/$p "; then
      ip -4 addr flush dev "$interface"
      ip addr add "$ip/$p" \${broadcast:+broadcast "$broadcast"} dev "$interface"
    fi
    if [ -n "$router" ] && [ -z "$(ip route show default)" ]; then ip route add default via "\${router%% *}" dev "$interface"; fi
    if [ -n "$dns" ] && ! grep -q '^nameserver' /etc/resolv.conf 2>/dev/null; then
      { [ -z "$domain" ] || echo "search $domain"; for s in $dns; do echo "nameserver $s"; done; } > /etc/resolv.conf
    fi
    echo "udhcpc: $1 $interface $ip/$p" ;;
  leasefail|nak)
    echo "udhcpc: $1 on $interface" ;;
esac
exit 0
`;

/** A command that waits (at most `seconds`) until `dev` has an IPv4 address, and fails saying so when it does not. */
export function waitForLease(dev: string, seconds: number): string {
  return `n=0; until ip -4 -o addr show dev ${dev} | grep -q ' inet '; do n=$((n+1)); ` +
    `if [ $n -gt ${seconds * 5} ]; then echo "${dev} got no DHCP lease within ${seconds} s" >&2; exit 1; fi; sleep 0.2; done`;
}

function fileBytes(content: string, encoding: "utf8" | "base64"): Uint8Array {
  if (encoding === "utf8") return new TextEncoder().encode(content);
  const bin = atob(content);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}
