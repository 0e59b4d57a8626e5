// Live migration of VMs between the page's tabs (host-tabs.ts), from the dashboard's side. The source tab offers
// the VM to the target tab (its settings, its cards' MACs and networks); the target checks it can take it (no VM of
// that name, memory for it, the MACs free), makes the VM with a worker that listens on a fresh channel and says
// yes; then the two VM workers move the machine between them (web/vm/vm-host.ts migrateOut / arrive, over
// emulator-core/src/snapshot/migration-link.ts) while the guest runs on. The cards keep their MACs and go on the
// same networks in the target tab (a network missing there is made with the source's settings; networks span
// tabs), so the guest's TCP connections live on. When the target runs the machine, the source drops its VM.
// A failure anywhere leaves the VM running in the source tab, and the target drops what it had made.

import type { Hypervisor, VmEntry, CardPlan, NetworkAttach } from "../hypervisor.ts";
import { checkSpec, probeMemory, type VmSpec } from "../lab.ts";
import type { VmMigrationReport } from "../../shared/protocol.ts";
import type { HostTabs, TabPeer } from "./host-tabs.ts";
import type { NetworkConfig } from "../../net/switch-host.ts";

/** What the source tab asks of the target. */
export interface MigrationOffer {
  kind: "migrate";
  /** the BroadcastChannel the two workers talk on */
  channel: string;
  spec: VmSpec;
  cards: { mac: string; network: string | null; config?: NetworkConfig }[];
  paused: boolean;
}

/** The network side the migrations need: the hypervisor's (App wires the page's NetworkHub in), and more. */
export interface MigrationNetwork extends Required<Pick<NetworkAttach, "cardsOf" | "macsInUse">> {
  configOf(network: string): NetworkConfig | undefined;
  /** makes the network in this tab unless it is here already */
  ensure(cfg: NetworkConfig): void;
}

export interface MigrationsOptions {
  /** tells the user how it went (the dashboard's notice) */
  say(kind: "info" | "error", text: string): void;
}

const ms = (t: number) => (t < 1000 ? `${t.toFixed(0)} ms` : `${(t / 1000).toFixed(2)} s`);
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export class Migrations {
  /** the last finished migration out of this tab (the tests and the measurement script read it) */
  last: (VmMigrationReport & { vm: string; to: string; pageMs: number }) | undefined;
  version = 0;
  private readonly listeners = new Set<() => void>();
  private readonly unsubscribe: () => void;

  constructor(private readonly hv: Hypervisor, readonly tabs: HostTabs, private readonly net: MigrationNetwork,
    private readonly opts: MigrationsOptions) {
    tabs.onRequest = (from, body) => this.answer(from, body);
    this.unsubscribe = tabs.subscribe(() => this.changed());
  }

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => { this.listeners.delete(fn); };
  };
  getVersion = (): number => this.version;

  private changed(): void {
    this.version++;
    for (const fn of this.listeners) fn();
  }

  /** The tabs a VM can go to. */
  targets(): TabPeer[] { return this.tabs.peers(); }

  /** Moves a running VM to another tab. Resolves with the figures, or undefined when it did not move (the notice
   *  says why; the VM runs on here). */
  async migrate(id: number, to: TabPeer): Promise<VmMigrationReport | undefined> {
    const e = this.hv.byId(id);
    if (!e) return undefined;
    const name = e.spec.name;
    const t0 = performance.now();
    try {
      const channel = `tabvisor-migrate:${crypto.randomUUID()}`;
      const offer: MigrationOffer = {
        kind: "migrate", channel, spec: structuredClone(e.spec), paused: e.state === "paused",
        cards: this.net.cardsOf(name).map((c) => ({ ...c, config: c.network ? this.net.configOf(c.network) : undefined })),
      };
      const report = await this.hv.emigrate(id, to.name, async () => {
        await this.tabs.request(to.n, offer, 15_000);
        return channel;
      });
      const pageMs = performance.now() - t0;
      this.last = { ...report, vm: name, to: to.name, pageMs };
      const rounds = report.rounds.join(", ");
      this.opts.say("info", `${name} moved to ${to.name} in ${ms(pageMs)}: the guest was paused for ${ms(report.downtimeMs)} ` +
        `(${(report.bytes / 1048576).toFixed(1)} MB sent; pages per round ${rounds}, then ${report.finalPages}).`);
      this.changed();
      return report;
    } catch (err) {
      this.opts.say("error", `${name} could not be moved to ${to.name}: ${(err as Error).message.replace(/^Error: /, "")}. It runs on here.`);
      return undefined;
    }
  }

  /** Another tab's request: a VM offered to this tab. */
  private async answer(from: TabPeer, body: unknown): Promise<unknown> {
    const offer = checkOffer(body);
    const spec = offer.spec;
    const refused = checkSpec(spec, this.hv.entries.map((x) => x.spec.name));
    if (refused) throw new Error(/already a VM/.test(refused) ? `${this.tabs.self.name} has a VM named ${spec.name} already` : refused);
    const inUse = new Set(this.net.macsInUse());
    const taken = offer.cards.find((c) => inUse.has(c.mac));
    if (taken) throw new Error(`a card in ${this.tabs.self.name} has the MAC ${taken.mac} already`);
    const memory = probeMemory(spec.ramMiB);
    if (memory) throw new Error(memory);
    for (const c of offer.cards) if (c.config) this.net.ensure(c.config);
    const cards = offer.cards.map((c): CardPlan => ({ mac: c.mac, network: c.network }));
    const e = this.hv.create(spec, false, { cards, incoming: { channel: offer.channel, from: from.name, paused: offer.paused } });
    this.watchArrival(e, from);
    await this.hv.start(e.id); // the worker listens on the channel once its start has begun
    return { ok: true };
  }

  /** An arrival that fails leaves nothing behind here (the VM runs on in the tab it was to leave). */
  private watchArrival(e: VmEntry, from: TabPeer): void {
    const off = this.hv.subscribe(() => {
      if (e.ready || !this.hv.byId(e.id)) { off(); return; }
      if (e.state !== "crashed") return;
      off();
      const why = e.detail ?? "its worker failed";
      this.hv.remove(e.id);
      this.opts.say("error", `${e.spec.name} did not arrive from ${from.name}: ${why.replace(/^the migration from [^:]*: /, "")}`);
    });
  }

  dispose(): void {
    this.tabs.onRequest = undefined;
    this.unsubscribe();
  }
}

/** An offer from another tab, checked field by field (a tab of another version of the page may send anything). */
export function checkOffer(body: unknown): MigrationOffer {
  const o = body as Partial<MigrationOffer> | undefined;
  const bad = (what: string) => new Error(`the offer from the other tab is not understood (${what})`);
  if (!o || o.kind !== "migrate") throw bad("kind");
  if (typeof o.channel !== "string" || !o.channel.startsWith("tabvisor-migrate:")) throw bad("channel");
  if (!o.spec || typeof o.spec !== "object" || typeof o.spec.name !== "string" || typeof o.spec.ramMiB !== "number") throw bad("spec");
  // one card per card of the machine, each MAC once, a network's settings only for the network it is on
  const cardCount = o.spec.machine?.nics?.length ?? 1;
  if (!Array.isArray(o.cards) || o.cards.length !== cardCount || new Set(o.cards.map((c) => c?.mac)).size !== cardCount ||
    o.cards.some((c) => !c || typeof c.mac !== "string" || !MAC_RE.test(c.mac) ||
      !(c.network === null || typeof c.network === "string") ||
      (c.config !== undefined && (typeof c.config !== "object" || c.config === null || c.config.name !== c.network)))) throw bad("cards");
  return { kind: "migrate", channel: o.channel, spec: o.spec, cards: o.cards, paused: o.paused === true };
}
