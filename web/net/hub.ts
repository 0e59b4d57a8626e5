// The page's side of the virtual networks: NetworkHub creates networks (one switch worker each), makes the network
// cards of VMs (their shared memory, handed to the VM worker in VmInit.nics), plugs cards into networks and out,
// changes their links, and gathers what the UI shows — per network the switch's ports, MAC table, leases and
// counters, a live capture list and the pcap file; per card the counters and rates (bytes and packets per second).
// Frames never pass through the page.
//
// Wiring a VM (the VM's creator does this once, before the VM worker is initialised):
//     const net = hub.attachVm("web1", [{ network: "lan" }, { network: "dmz" }]);
//     ... init({ ..., ctrl: ctrlBuf, nics: net.nics(ctrlBuf) })   // eth0 on lan, eth1 on dmz
// The VM's control block lets the switches ring the VM's doorbell. Cards can move between networks (or be
// unplugged) at any time; adding or removing cards needs a new VM worker (the device tree is built at boot).

import * as Comlink from "comlink";
import type { SwitchWorkerApi } from "../workers/switch-worker.ts";
import type { NetworkConfig, SwitchSnapshot } from "./switch-host.ts";
import { NicChannel, ringDoorbell, type NicCounters, type NicInit } from "./nic-channel.ts";
import type { LinkConfig } from "../../emulator-core/src/net/link.ts";
import type { CaptureSummary } from "../../emulator-core/src/net/pcap.ts";
import { CTRL } from "../shared/protocol.ts";

export type { NetworkConfig, SwitchSnapshot, NicInit, NicCounters, LinkConfig, CaptureSummary };

export interface CardSpec {
  /** the network to plug into (default: none, unplugged) */
  network?: string | null;
  /** default: 52:54:00 and three random bytes */
  mac?: string;
  link?: Partial<LinkConfig>;
}

export interface CardRates {
  txBytesPerSec: number;
  rxBytesPerSec: number;
  txPacketsPerSec: number;
  rxPacketsPerSec: number;
}

export interface CardInfo {
  /** "vm/eth0" */
  id: string;
  vm: string;
  /** "eth0" */
  name: string;
  mac: string;
  network: string | null;
  link: LinkConfig;
  counters: NicCounters;
  rates: CardRates;
}

export interface NetworkInfo {
  name: string;
  config: NetworkConfig;
  /** the switch's state at the last poll (undefined until the first) */
  snapshot?: SwitchSnapshot;
  /** captured frames fetched so far (live while watched: watchCapture), oldest first */
  capture: CaptureSummary[];
  /** what went wrong with the switch worker, if anything */
  error?: string;
}

export interface HubState {
  networks: NetworkInfo[];
  cards: CardInfo[];
  /** VM names in the order they were attached */
  vms: string[];
}

/** What a VM's creator gets from attachVm. */
export interface VmNetworkAttachment {
  readonly vm: string;
  /** The cards for VmInit.nics; `ctrl` is the VM's control block (its doorbell at word `bell`, CTRL.DOORBELL). */
  nics(ctrl: SharedArrayBuffer, bell?: number): NicInit[];
}

interface Net {
  cfg: NetworkConfig;
  worker: Worker;
  remote: Comlink.Remote<SwitchWorkerApi>;
  snapshot?: SwitchSnapshot;
  capture: CaptureSummary[];
  lastSeq: number;
  watchers: number;
  error?: string;
}

interface Card {
  id: string;
  vm: string;
  name: string;
  init: NicInit;
  ch: NicChannel;
  network: string | null;
  link: LinkConfig;
  vmCtrl?: SharedArrayBuffer;
  vmBell: number;
  last?: { c: NicCounters; t: number };
  rates: CardRates;
  /** plug/unplug calls of this card, one after the other */
  chain: Promise<unknown>;
}

const pageHidden = () => typeof document !== "undefined" && document.visibilityState === "hidden";

const ZERO_RATES: CardRates = { txBytesPerSec: 0, rxBytesPerSec: 0, txPacketsPerSec: 0, rxPacketsPerSec: 0 };
/** Captured frames the page keeps per network. */
const CAPTURE_KEEP = 1000;

export function randomMac(): string {
  const b = crypto.getRandomValues(new Uint8Array(3));
  return ["52", "54", "00", ...Array.from(b, (x) => x.toString(16).padStart(2, "0"))].join(":");
}

export interface NetworkHubOptions {
  /** how often switch states and card meters are polled (default 1000 ms) */
  pollMs?: number;
  /** how often watched captures are polled (default 400 ms) */
  capturePollMs?: number;
}

export class NetworkHub {
  private readonly nets = new Map<string, Net>();
  private readonly cardMap = new Map<string, Card>();
  private readonly vmOrder: string[] = [];
  private readonly listeners = new Set<() => void>();
  private state: HubState = { networks: [], cards: [], vms: [] };
  private pollTimer: ReturnType<typeof setInterval> | undefined;
  private captureTimer: ReturnType<typeof setInterval> | undefined;
  private disposed = false;

  constructor(private readonly opts: NetworkHubOptions = {}) {
  }

  /** Runs each poll's timer only while it has someone to serve. Switch states and card rates are only of use to a view
   *  that shows them: with nobody subscribed, or the page hidden, the switch workers are not asked (a message each way,
   *  a structured clone of every port's counters, once a second: a cost an idle page should not pay), and with nobody
   *  subscribed not even the timer runs (every timer is a wake-up of the page). A caller that needs them now calls
   *  poll(). Captures are polled while a view watches one. */
  private retime(): void {
    const poll = !this.disposed && this.listeners.size > 0;
    if (poll && !this.pollTimer) this.pollTimer = setInterval(() => { if (!pageHidden()) void this.poll(); }, this.opts.pollMs ?? 1000);
    if (!poll && this.pollTimer) { clearInterval(this.pollTimer); this.pollTimer = undefined; }
    const capture = !this.disposed && [...this.nets.values()].some((n) => n.watchers > 0);
    if (capture && !this.captureTimer) this.captureTimer = setInterval(() => void this.pollCaptures(), this.opts.capturePollMs ?? 400);
    if (!capture && this.captureTimer) { clearInterval(this.captureTimer); this.captureTimer = undefined; }
  }

  /** A new object whenever something changed (for React's useSyncExternalStore). */
  getState = (): HubState => this.state;

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    this.retime();
    // a view that opens shows the switches as they are now, not as the last poll (maybe long ago) found them
    if (this.listeners.size === 1) void this.poll();
    return () => { this.listeners.delete(fn); this.retime(); };
  };

  private changed(): void {
    this.state = {
      networks: [...this.nets.entries()].map(([name, n]) => ({ name, config: n.cfg, snapshot: n.snapshot, capture: n.capture, error: n.error })),
      cards: [...this.cardMap.values()].map((c) => this.cardInfo(c)),
      vms: [...this.vmOrder],
    };
    for (const fn of this.listeners) fn();
  }

  private cardInfo(c: Card): CardInfo {
    return { id: c.id, vm: c.vm, name: c.name, mac: c.init.mac, network: c.network, link: { ...c.link }, counters: c.ch.readCounters(), rates: c.rates };
  }

  /** Creates a network: its switch worker, gateway (DHCP, DNS, ping) and capture. */
  createNetwork(cfg: NetworkConfig): void {
    if (this.disposed) throw new Error("the network hub is disposed");
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/.test(cfg.name)) throw new Error(`bad network name "${cfg.name}" (letters, digits, _ . -)`);
    if (this.nets.has(cfg.name)) throw new Error(`network ${cfg.name} exists`);
    const worker = new Worker(new URL("../workers/switch-worker.ts", import.meta.url), { type: "module", name: `switch ${cfg.name}` });
    const remote = Comlink.wrap<SwitchWorkerApi>(worker);
    const net: Net = { cfg, worker, remote, capture: [], lastSeq: 0, watchers: 0 };
    worker.addEventListener("error", (e) => { net.error = e.message || "the switch worker failed"; this.changed(); });
    this.nets.set(cfg.name, net);
    void remote.init(cfg).catch((e: Error) => { net.error = e.message; this.changed(); });
    // cards that were waiting for this network
    for (const c of this.cardMap.values()) if (c.network === cfg.name && c.vmCtrl) void this.replug(c, cfg.name);
    this.changed();
    void this.poll();
  }

  /** Removes a network; its cards are unplugged (no carrier). */
  removeNetwork(name: string): void {
    const net = this.nets.get(name);
    if (!net) return;
    this.nets.delete(name);
    for (const c of this.cardMap.values()) {
      if (c.network === name) { c.network = null; this.carrier(c, false); }
    }
    void net.remote.close().catch(() => {}).finally(() => { net.remote[Comlink.releaseProxy](); net.worker.terminate(); });
    this.changed();
    this.retime();
  }

  networkNames(): string[] { return [...this.nets.keys()]; }

  /** Makes a VM's cards (eth0, eth1, ... in order); see the file's comment. Replaces the VM's earlier cards. */
  attachVm(vm: string, specs: CardSpec[]): VmNetworkAttachment {
    this.detachVm(vm);
    const cards = specs.map((s, i): Card => {
      const id = `${vm}/eth${i}`;
      const init = NicChannel.create(id, s.mac ?? randomMac());
      const ch = new NicChannel(init);
      const card: Card = {
        id, vm, name: `eth${i}`, init, ch, network: s.network ?? null,
        link: { up: true, delayMs: 0, loss: 0, ...s.link }, vmBell: CTRL.DOORBELL, rates: ZERO_RATES, chain: Promise.resolve(),
      };
      ch.setLink(false);
      this.cardMap.set(id, card);
      return card;
    });
    this.vmOrder.push(vm);
    this.changed();
    return {
      vm,
      nics: (ctrl, bell = CTRL.DOORBELL) => {
        for (const c of cards) {
          c.vmCtrl = ctrl;
          c.vmBell = bell;
          if (c.network) void this.replug(c, c.network);
        }
        return cards.map((c) => c.init);
      },
    };
  }

  /** Unplugs and forgets a VM's cards (when the VM goes away). */
  detachVm(vm: string): void {
    let any = false;
    for (const c of [...this.cardMap.values()]) {
      if (c.vm !== vm) continue;
      any = true;
      if (c.network) void this.unplugFrom(c, c.network);
      this.cardMap.delete(c.id);
    }
    const i = this.vmOrder.indexOf(vm);
    if (i >= 0) this.vmOrder.splice(i, 1);
    if (any || i >= 0) this.changed();
  }

  /** Plugs a card into a network, or unplugs it (null). */
  plug(cardId: string, network: string | null): Promise<void> {
    const c = this.card(cardId);
    if (network !== null && !this.nets.has(network)) throw new Error(`no network ${network}`);
    const from = c.network;
    c.network = network;
    this.changed();
    return this.replug(c, network, from);
  }

  /** Changes a card's link: up/down, one-way delay (ms) and loss (0..1), each direction. */
  async setLink(cardId: string, cfg: Partial<LinkConfig>): Promise<void> {
    const c = this.card(cardId);
    if (cfg.delayMs !== undefined && !(cfg.delayMs >= 0 && Number.isFinite(cfg.delayMs))) throw new Error(`bad delay ${cfg.delayMs}`);
    if (cfg.loss !== undefined && !(cfg.loss >= 0 && cfg.loss <= 1)) throw new Error(`bad loss ${cfg.loss}`);
    c.link = { ...c.link, ...cfg };
    this.changed();
    const net = c.network ? this.nets.get(c.network) : undefined;
    if (net && c.vmCtrl) {
      const network = c.network;
      await (c.chain = c.chain.then(() => (c.network === network ? net.remote.setLink(c.id, cfg) : undefined)));
    }
    void this.poll();
  }

  cards(): CardInfo[] { return [...this.cardMap.values()].map((c) => this.cardInfo(c)); }

  /** A card's counters now (published by its VM worker in shared memory; no call). */
  counters(cardId: string): NicCounters { return this.card(cardId).ch.readCounters(); }

  private card(id: string): Card {
    const c = this.cardMap.get(id);
    if (!c) throw new Error(`no card ${id}`);
    return c;
  }

  private replug(c: Card, to: string | null, from: string | null = to): Promise<void> {
    const run = async () => {
      if (from) await this.unplugFrom(c, from);
      const net = to ? this.nets.get(to) : undefined;
      if (!net || !c.vmCtrl || c.network !== to || !this.cardMap.has(c.id)) {
        if (!net || c.network === null) this.carrier(c, false);
        return;
      }
      await net.remote.plug({ nic: c.init, name: `${c.vm} ${c.name}`, vmCtrl: c.vmCtrl, vmBell: c.vmBell, link: c.link });
      void this.poll();
    };
    const p = c.chain.then(run, run);
    c.chain = p.catch(() => {});
    return p;
  }

  private async unplugFrom(c: Card, network: string): Promise<void> {
    const net = this.nets.get(network);
    if (net) await net.remote.unplug(c.id).catch(() => false);
    this.carrier(c, false);
  }

  private carrier(c: Card, up: boolean): void {
    c.ch.setLink(up);
    if (c.vmCtrl) ringDoorbell(new Int32Array(c.vmCtrl), c.vmBell);
  }

  /** Keeps the network's capture list live (polled) while at least one watcher is registered. */
  watchCapture(network: string): () => void {
    const net = this.nets.get(network);
    if (!net) return () => {};
    net.watchers++;
    this.retime();
    void this.pollCaptures();
    return () => { net.watchers--; this.retime(); };
  }

  /** The newest captured frames of a network the page has fetched (oldest first). */
  capture(network: string): CaptureSummary[] { return this.nets.get(network)?.capture ?? []; }

  /** Fetches the network's captured frames now (what the capture list shows). */
  async refreshCapture(network: string): Promise<CaptureSummary[]> {
    const net = this.nets.get(network);
    if (!net) return [];
    await this.fetchCapture(net);
    return net.capture;
  }

  async clearCapture(network: string): Promise<void> {
    const net = this.nets.get(network);
    if (!net) return;
    await net.remote.clearCapture();
    net.capture = [];
    this.changed();
  }

  /** Opens a TCP connection from the network's gateway to `vm` (its first card's network) on `tcpPort`, relayed over
   *  `port`, which moves to the network's worker (web/net/tcp-relay.ts says what goes over it). Returns why not, or
   *  undefined. */
  async connectTcp(vm: string, tcpPort: number, port: MessagePort): Promise<string | undefined> {
    const card = this.state.cards.find((c) => c.vm === vm && c.network) ?? [...this.cardMap.values()].find((c) => c.vm === vm && c.network);
    if (!card?.network) return this.cardMap.size && [...this.cardMap.values()].some((c) => c.vm === vm) ? `${vm} is on no network` : `no VM named ${vm}`;
    const net = this.nets.get(card.network);
    if (!net) return `the network ${card.network} is gone`;
    await net.remote.connectTcp(vm, tcpPort, Comlink.transfer(port, [port]));
    return undefined;
  }

  async setCapture(network: string, enabled: boolean): Promise<void> {
    await this.nets.get(network)?.remote.setCapture(enabled);
    void this.poll();
  }

  /** The network's capture as a libpcap file. */
  async pcap(network: string): Promise<Uint8Array> {
    const net = this.nets.get(network);
    if (!net) throw new Error(`no network ${network}`);
    return await net.remote.pcap();
  }

  /** Saves the network's capture as NAME.pcap (a download). */
  async downloadPcap(network: string): Promise<void> {
    const bytes = await this.pcap(network);
    const url = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: "application/vnd.tcpdump.pcap" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = `${network}.pcap`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }

  private async fetchCapture(net: Net): Promise<boolean> {
    const fresh = await net.remote.captureSince(net.lastSeq, CAPTURE_KEEP).catch(() => []);
    if (fresh.length === 0) return false;
    net.lastSeq = fresh[fresh.length - 1].seq;
    net.capture = net.capture.concat(fresh).slice(-CAPTURE_KEEP);
    return true;
  }

  private async pollCaptures(): Promise<void> {
    const watched = [...this.nets.values()].filter((n) => n.watchers > 0);
    if (watched.length === 0) return;
    const any = (await Promise.all(watched.map((n) => this.fetchCapture(n)))).some(Boolean);
    if (any) this.changed();
  }

  private polling = false;

  /** Switch states and card rates, now. */
  async poll(): Promise<void> {
    if (this.polling || this.disposed) return;
    this.polling = true;
    try {
      await Promise.all([...this.nets.values()].map(async (n) => {
        try { n.snapshot = await n.remote.snapshot(); } catch { /* not ready yet */ }
      }));
      const t = performance.now();
      for (const c of this.cardMap.values()) {
        const now = c.ch.readCounters();
        if (c.last && t > c.last.t) {
          const dt = (t - c.last.t) / 1000;
          c.rates = {
            txBytesPerSec: (now.txBytes - c.last.c.txBytes) / dt,
            rxBytesPerSec: (now.rxBytes - c.last.c.rxBytes) / dt,
            txPacketsPerSec: (now.txPackets - c.last.c.txPackets) / dt,
            rxPacketsPerSec: (now.rxPackets - c.last.c.rxPackets) / dt,
          };
        }
        if (!c.last || t - c.last.t >= 500) c.last = { c: now, t };
      }
    } finally {
      this.polling = false;
    }
    this.changed();
  }

  dispose(): void {
    if (this.disposed) return;
    for (const name of [...this.nets.keys()]) this.removeNetwork(name);
    this.disposed = true;
    this.listeners.clear();
    this.retime();
  }
}
