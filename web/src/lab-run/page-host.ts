// The page as a lab build sees it (runner.ts LabHost): the Hypervisor makes the VMs, the NetworkHub the networks,
// and the VMs' control channels (the guest agent) run the lab's commands and checks.
//
// A lab's networks are this tab's own (not bridged to a network of the same name in the browser's other tabs: two
// tabs holding labs with a "lan" each must not be joined). A network of the lab's name that exists already but has
// no card on it (the page's default network, in a page that has no VMs yet) is replaced, not a clash.

import type { Hypervisor, CardPlan, CreateOptions } from "../hypervisor.ts";
import type { NetworkHub } from "../network/index.ts";
import type { NetworkConfig } from "../../net/switch-host.ts";
import { checkSpec, probeMemory, DEFAULT_NETWORK, type VmSpec } from "../lab.ts";
import type { GuestResult, LabHost } from "./runner.ts";
import type { PageView } from "./from-page.ts";

const decoder = new TextDecoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class PageLabHost implements LabHost {
  constructor(private readonly hv: Hypervisor, private readonly hub: NetworkHub) {}

  vmNames(): string[] { return this.hv.entries.map((e) => e.spec.name); }

  /** The page as a lab file describes it (from-page.ts). */
  view(): PageView {
    const cards = this.hub.getState().cards;
    return {
      vms: this.hv.entries.map((e) => ({
        spec: e.spec,
        cards: cards.filter((c) => c.vm === e.spec.name).sort((a, b) => a.name.localeCompare(b.name, "en", { numeric: true })).map((c) => c.network),
      })),
      networks: this.hub.getState().networks.map((n) => n.config),
      defaultNetwork: DEFAULT_NETWORK.name,
    };
  }

  /** Told when VMs, cards or networks change. */
  subscribe(fn: () => void): () => void {
    const a = this.hv.subscribe(fn), b = this.hub.subscribe(fn);
    return () => { a(); b(); };
  }

  /** networks with a card on them (an empty one may be replaced by the lab's) */
  networkNames(): string[] {
    const used = new Set(this.hub.getState().cards.map((c) => c.network));
    return this.hub.networkNames().filter((n) => used.has(n));
  }

  createNetwork(config: NetworkConfig): void {
    if (this.hub.networkNames().includes(config.name)) this.hub.removeNetwork(config.name);
    this.hub.createNetwork({ ...config, shared: false });
  }

  removeNetwork(name: string): void { this.hub.removeNetwork(name); }

  createVm(spec: VmSpec, options: CreateOptions & { cards: CardPlan[] }, start: boolean): void {
    const why = checkSpec(spec, this.vmNames()) ?? probeMemory(spec.ramMiB);
    if (why) throw new Error(why);
    this.hv.create(spec, start, options);
  }

  removeVm(name: string): void {
    const e = this.hv.byName(name);
    if (e) this.hv.remove(e.id);
  }

  private entry(vm: string) {
    const e = this.hv.byName(vm);
    if (!e) throw new Error(`there is no VM named ${vm}`);
    return e;
  }

  async waitReady(vm: string, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const e = this.entry(vm);
      if (e.state === "crashed") throw new Error(`${vm} crashed: ${e.detail ?? "see its console"}`);
      if (e.ready) {
        // the console's ready marker comes before the agent is up: ask it something cheap
        try {
          const r = await e.handle.agentExec("true", { timeoutMs: 3000, graceMs: 2000 });
          if (r.exitCode === 0) return;
        } catch { /* not up yet */ }
      }
      if (performance.now() > deadline) throw new Error(`${vm} did not start within ${Math.round(timeoutMs / 1000)} s`);
      await sleep(250);
    }
  }

  async exec(vm: string, command: string, timeoutMs: number): Promise<GuestResult> {
    const r = await this.entry(vm).handle.agentExec(command, { timeoutMs });
    return { exitCode: r.exitCode, timedOut: r.timedOut, stdout: decoder.decode(r.stdout), stderr: decoder.decode(r.stderr) };
  }

  async putFile(vm: string, path: string, mode: number, data: Uint8Array): Promise<void> {
    await this.entry(vm).handle.agentPut(path, data, { mode });
  }
}
