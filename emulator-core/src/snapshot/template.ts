// Starting VMs from a template instead of booting them. A template is a snapshot of the default image booted with
// `tabvisor.template=1` to an idle shell prompt, with no network (guest/rootfs/init). A VM of the same shape (RAM,
// disks, cards, rng, balloon, agent channel) restores it, gets its own MACs in its cards, and tells the guest's agent its host
// name and MAC; the guest then brings up its network (its own DHCP lease). The shell answers at once.

import type { Machine } from "../machine/machine.ts";
import type { MachineAttachments, MachineSpec } from "../machine/description.ts";
import { openSnapshot } from "./snapshot.ts";
import { SnapshotError, type StateObject, type StateValue } from "./state-value.ts";
import { macToString } from "../net/packet.ts";

/** The command line a template boots with. */
export const TEMPLATE_CMDLINE = "console=ttyS0 hostname=template tabvisor.template=1";
/** What the template's /init prints (instead of the ready marker) before it starts the shell. */
export const TEMPLATE_WAIT_MARKER = "@@TEMPLATE_WAIT@@";

/** What must be equal for a VM to start from a template: everything but its command line and MACs. */
export function templateShape(spec: MachineSpec): string {
  return JSON.stringify({
    ramMiB: spec.ramMiB, deterministic: spec.deterministic, disks: spec.disks, nics: spec.nics.length, rng: spec.rng, balloon: spec.balloon,
    agent: spec.agent,
  });
}

/** The description a template of `spec`'s shape is booted with. */
export function templateSpecFor(spec: MachineSpec): MachineSpec {
  return { ...spec, cmdline: TEMPLATE_CMDLINE, nics: spec.nics.map((_, i) => ({ mac: [0x52, 0x54, 0x00, 0x00, 0x00, 0x10 + i] })) };
}

/** The host name a command line gives (hostname=), or undefined. */
export function hostnameOf(cmdline: string): string | undefined {
  return /(?:^|\s)hostname=(\S+)/.exec(cmdline)?.[1];
}

/**
 * A machine of `spec` started from a template snapshot: the saved state goes into the board `spec` describes,
 * with the cards' MACs made this VM's, and the guest is sent its identity (host name from spec.cmdline, the first
 * card's MAC). The disks keep what they hold (a template's are empty). Throws SnapshotError when the template
 * does not fit `spec`.
 */
export async function startFromTemplate(restore: RestoreFn, template: Uint8Array, spec: MachineSpec, attachments: MachineAttachments): Promise<Machine> {
  return startAs(restore, await openSnapshot(template), spec, attachments, { skipDisks: true, freshPrompt: true });
}

export type RestoreFn = (spec: MachineSpec, attachments: MachineAttachments, state: StateValue, opts: { skipDisks: boolean }) => Promise<Machine>;

/**
 * A machine of `spec` that starts from another machine's saved state and is then told it is someone else: a clone
 * of a template, or the copy of a forked VM. The source must have the same shape (RAM, disks, cards, rng,
 * balloon); the cards get spec's MACs and the guest's agent gets the host name, first MAC and the host's time.
 * `skipDisks` keeps the disks' own contents instead of the saved ones; `freshPrompt` types an empty line once the
 * guest has its identity (a template's shell sits at a prompt printed before the snapshot, with the template's name).
 */
export async function startAs(restore: RestoreFn, source: { spec: MachineSpec; state: StateValue }, spec: MachineSpec,
  attachments: MachineAttachments, opts: { skipDisks: boolean; freshPrompt: boolean }): Promise<Machine> {
  if (templateShape(source.spec) !== templateShape(spec)) {
    throw new SnapshotError(`the snapshot is of another machine (${templateShape(source.spec)}) than this VM (${templateShape(spec)})`);
  }
  const m = await restore(spec, attachments, withMacs(source.state, spec), { skipDisks: opts.skipDisks });
  const words = [`hostname=${hostnameOf(spec.cmdline) ?? "tabvisor"}`];
  if (spec.nics.length) words.push(`mac=${macToString(spec.nics[0].mac)}`);
  // the saved clock is the source's: the guest takes the host's (an init from before time= ignores the word)
  if (!spec.deterministic) words.push(`time=${Math.floor(Date.now() / 1000)}`);
  if (opts.freshPrompt) {
    const before = m.onAgentLine;
    m.onAgentLine = (line) => {
      if (line.startsWith("ok identity")) { m.onAgentLine = before; m.sendInput(new Uint8Array([0x0a])); }
      before?.(line);
    };
  }
  m.agentSend(`identity ${words.join(" ")}`);
  return m;
}

/** Tells a guest restored with its own identity the host's time (`clock SECONDS` on its agent port, see
 *  guest/rootfs/init): its clock stood still while the VM did not run. A guest whose init predates the request
 *  answers "error unknown request", and nothing waits for the answer. Not in deterministic mode. */
export function sendHostTime(m: Machine, nowMs = Date.now()): void {
  if (!m.spec.deterministic) m.agentSend(`clock ${Math.floor(nowMs / 1000)}`);
}

/** The saved state with each virtio-net card's MAC replaced by spec's (the state is plain data: a copy is made
 *  of the parts that change). */
function withMacs(state: StateValue, spec: MachineSpec): StateValue {
  const s = state as StateObject;
  if (!Array.isArray(s.devices)) return state;
  let nic = 0;
  const devices = s.devices.map((d) => {
    const dev = d as StateObject;
    if (dev.name !== "virtio-nic" || nic >= spec.nics.length) return d;
    const transport = dev.state as StateObject;
    const device = { ...(transport.device as StateObject), mac: Uint8Array.from(spec.nics[nic++].mac) };
    return { ...dev, state: { ...transport, device } };
  });
  return { ...s, devices };
}
