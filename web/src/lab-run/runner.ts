// Builds a lab in the page and runs its checks. A lab is built from its plan (labs/plan.ts: networks, VMs, then
// inside each guest its network beyond eth0, its files and its first-boot commands) through a LabHost: the page's
// Hypervisor and NetworkHub (page-host.ts), or a fake in the Node tests. A lab is never half built: when any
// operation fails, everything the build made is removed again and the error says which operation failed and why.
//
// Checks run inside the guests through the control channel (the agent), never typed into the student's console;
// each has a time limit, and a guest that does not answer fails the check with "no answer" instead of hanging.

import { planLab, type LabOp } from "../labs/plan.ts";
import type { FullCheck, FullLab } from "../labs/types.ts";
import type { VmSpec } from "../lab.ts";
import type { CardPlan, CreateOptions } from "../hypervisor.ts";
import type { NetworkConfig } from "../../net/switch-host.ts";

/** What a command run through a guest's agent gave. */
export interface GuestResult {
  exitCode: number;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

/** The page as a lab build and its checks see it. */
export interface LabHost {
  vmNames(): string[];
  networkNames(): string[];
  createNetwork(config: NetworkConfig): void;
  removeNetwork(name: string): void;
  createVm(spec: VmSpec, options: CreateOptions & { cards: CardPlan[] }, start: boolean): void;
  removeVm(name: string): void;
  /** resolves once the VM's guest answers on its control channel; rejects (saying why) after timeoutMs */
  waitReady(vm: string, timeoutMs: number): Promise<void>;
  /** runs `/bin/sh -c command` in the guest; rejects when the guest does not answer in time */
  exec(vm: string, command: string, timeoutMs: number): Promise<GuestResult>;
  putFile(vm: string, path: string, mode: number, data: Uint8Array): Promise<void>;
}

export interface BuildProgress {
  done: number;
  total: number;
  /** what is under way, e.g. "web1: nginx -t" */
  doing: string;
}

export class LabBuildError extends Error {}

/** What an operation is, in the words a build error and the progress line use. */
export function describeOp(op: LabOp): string {
  switch (op.kind) {
    case "create-network": return `create the network ${op.config.name}`;
    case "register-name": return `register ${op.name} (${op.address}) in ${op.network}'s DNS`;
    case "create-vm": return `create the VM ${op.vm}`;
    case "wait-ready": return `wait for ${op.vm} to start`;
    case "exec": return `${op.vm}: ${op.command.length > 60 ? op.command.slice(0, 57) + "..." : op.command}`;
    case "put-file": return `${op.vm}: put ${op.path}`;
  }
}

const tail = (s: string, n = 400) => (s.length > n ? "…" + s.slice(-n) : s).trim();

/**
 * Builds `lab` (validated and normalised) into the page. Refuses before making anything when a VM or network of
 * the lab's name exists already. On failure removes what it made and throws LabBuildError.
 */
export async function buildLab(lab: FullLab, host: LabHost, onProgress: (p: BuildProgress) => void = () => {}): Promise<void> {
  const ops = planLab(lab);
  const vmsHere = new Set(host.vmNames()), netsHere = new Set(host.networkNames());
  const clashes = [
    ...lab.vms.filter((v) => vmsHere.has(v.name)).map((v) => `a VM named ${v.name}`),
    ...lab.networks.filter((n) => netsHere.has(n.name)).map((n) => `a network named ${n.name}`),
  ];
  if (clashes.length) throw new LabBuildError(`The lab cannot be built here: the page already has ${clashes.join(" and ")}. Delete them, or open the lab in a new tab.`);

  // the gateway's DNS learns statically addressed VMs' names with its network
  const hosts = new Map<string, { name: string; address: string }[]>();
  for (const op of ops) if (op.kind === "register-name") (hosts.get(op.network) ?? hosts.set(op.network, []).get(op.network)!).push({ name: op.name, address: op.address });

  const made = { vms: [] as string[], networks: [] as string[] };
  let done = 0;
  const total = ops.length;
  const step = (op: LabOp) => onProgress({ done, total, doing: describeOp(op) });
  const fail = (op: LabOp, why: string) => new LabBuildError(`The lab could not be built: ${describeOp(op)} failed: ${why}`);
  try {
    // the host's side first, in order: networks, then VMs (which start booting at once)
    for (const op of ops) {
      if (op.kind !== "create-network" && op.kind !== "register-name" && op.kind !== "create-vm") continue;
      step(op);
      try {
        if (op.kind === "create-network") {
          const extra = hosts.get(op.config.name);
          host.createNetwork(extra ? { ...op.config, hosts: extra } : op.config);
          made.networks.push(op.config.name);
        } else if (op.kind === "create-vm") {
          host.createVm(op.spec, op.options, op.start);
          made.vms.push(op.vm);
        }
      } catch (e) {
        throw fail(op, (e as Error).message);
      }
      done++;
    }
    // then inside each guest, its operations in order; the guests side by side
    const byVm = new Map<string, LabOp[]>();
    for (const op of ops) if ("vm" in op && op.kind !== "create-vm") (byVm.get(op.vm) ?? byVm.set(op.vm, []).get(op.vm)!).push(op);
    let failed: LabBuildError | undefined;
    await Promise.all([...byVm.values()].map(async (list) => {
      for (const op of list) {
        if (failed) return;
        step(op);
        try {
          await guestOp(op, host);
        } catch (e) {
          failed ??= e instanceof LabBuildError ? e : fail(op, (e as Error).message);
          return;
        }
        done++;
      }
    }));
    if (failed) throw failed;
    onProgress({ done, total, doing: "" });
  } catch (e) {
    for (const vm of made.vms) try { host.removeVm(vm); } catch { /* gone already */ }
    for (const n of made.networks) try { host.removeNetwork(n); } catch { /* gone already */ }
    const err = e instanceof LabBuildError ? e : new LabBuildError(`The lab could not be built: ${(e as Error).message}`);
    err.message += " Nothing of it was kept.";
    throw err;
  }
}

async function guestOp(op: LabOp, host: LabHost): Promise<void> {
  switch (op.kind) {
    case "wait-ready":
      await host.waitReady(op.vm, op.timeoutMs);
      return;
    case "put-file":
      await host.putFile(op.vm, op.path, op.mode, op.data);
      return;
    case "exec": {
      const r = await host.exec(op.vm, op.command, op.timeoutMs);
      if (r.timedOut) throw new Error(`it did not finish within ${op.timeoutMs / 1000} s`);
      if (r.exitCode !== 0) throw new Error(`exit status ${r.exitCode}${r.stderr.trim() ? `: ${tail(r.stderr)}` : ""}`);
      return;
    }
    default:
      return;
  }
}

export interface CheckResult {
  pass: boolean;
  /** why it failed (or what passed), one line */
  detail: string;
  /** the end of its output, for a student who wants to see */
  output: string;
}

/** Runs a check in its VM and judges it. Never throws: a guest that is gone or does not answer fails the check. */
export async function runCheck(check: FullCheck, host: LabHost): Promise<CheckResult> {
  const ms = check.timeoutSeconds * 1000;
  let r: GuestResult;
  try {
    r = await host.exec(check.vm, check.command, ms);
  } catch (e) {
    return { pass: false, detail: `no answer from ${check.vm}: ${(e as Error).message}`, output: "" };
  }
  const output = tail(r.stdout + (r.stderr ? `\n${r.stderr}` : ""), 600);
  if (r.timedOut) return { pass: false, detail: `the check did not finish within ${check.timeoutSeconds} s`, output };
  if (check.pass.exit === "zero" && r.exitCode !== 0) return { pass: false, detail: `it exited with status ${r.exitCode}`, output };
  if (check.pass.stdout !== undefined) {
    let re: RegExp;
    try {
      re = new RegExp(check.pass.stdout, "m");
    } catch (e) {
      return { pass: false, detail: `the lab's pattern ${check.pass.stdout} is not a regular expression (${(e as Error).message})`, output };
    }
    if (!re.test(r.stdout)) return { pass: false, detail: `its output does not match /${check.pass.stdout}/`, output };
  }
  return { pass: true, detail: "passed", output };
}
