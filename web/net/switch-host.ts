// One virtual network as its switch worker runs it: a VirtualSwitch and the network's Gateway (DHCP, DNS, ping)
// from emulator-core/src/net, the cards plugged into it through their shared-memory rings (nic-channel.ts), and
// optionally a bridge to the same network in the browser's other tabs.
//
// Frames from a card: the VM worker puts them in the card's tx ring and rings the card's TX_BELL; each card has an
// Atomics.waitAsync outstanding on that word, so the worker's event loop stays free (control calls, link delays,
// the bridge) while it waits. A wake-up drains every card's ring (at most PUMP_BUDGET frames per card per round,
// the rest in a later task, so one flooding card cannot starve the others). Frames to a card go into its rx ring
// (when full: dropped, counted by the switch as refused) and the VM's doorbell rings once per round.
//
// Across tabs: a BroadcastChannel per network name carries frames between the tabs' switches for that network
// (each tab's switch has one "other tabs" port); only one tab's switch runs the gateway at a time (a Web Lock per
// network name), the others learn its leases so a new leader keeps them. Frames are only posted while another tab
// has said hello.
//
// No DOM; runs in a worker or (for tests) in Node.

import { VirtualSwitch, type MacTableEntry, type Port, type PortCounters, type SwitchCounters } from "../../emulator-core/src/net/switch.ts";
import { Gateway, type GatewayCounters, type Lease, type LeaseRecord } from "../../emulator-core/src/net/gateway.ts";
import { relayTcp } from "./tcp-relay.ts";
import type { LinkConfig } from "../../emulator-core/src/net/link.ts";
import { summarizeCapture, toPcap, type CaptureSummary } from "../../emulator-core/src/net/pcap.ts";
import { ipToString, parseIp, prefixMask } from "../../emulator-core/src/net/packet.ts";
import { NIC_CTRL, NicChannel, ringDoorbell, type NicInit } from "./nic-channel.ts";

export interface NetworkConfig {
  /** the network's name; tabs that create a shared network with the same name share it */
  name: string;
  /** the gateway's address and the prefix, e.g. "10.0.1.1/24" (default 10.0.0.1/24) */
  gateway?: string;
  /** the DNS domain (default "lab") */
  domain?: string;
  /** the gateway's own name in DNS (default "gateway") */
  gatewayName?: string;
  dhcp?: boolean;
  dns?: boolean;
  /** DHCP pool (default: .100–.199 of a /24, else every host address) */
  poolStart?: string;
  poolEnd?: string;
  /** frames per second each port may send (default 20 000) */
  floodLimit?: number;
  /** frames kept for the capture list and pcap (default 2000) */
  captureCapacity?: number;
  /** bridge to the network of the same name in the browser's other tabs (default true) */
  shared?: boolean;
  /** names the gateway's DNS answers besides its DHCP clients' (a lab's statically addressed VMs) */
  hosts?: { name: string; address: string }[];
}

/** A card to plug in (the hub sends it). */
export interface PortPlug {
  nic: NicInit;
  /** the port's name, e.g. "web1 eth0" */
  name: string;
  /** the VM's control block (and the word of its doorbell), rung when frames for it are in the rx ring */
  vmCtrl?: SharedArrayBuffer;
  vmBell?: number;
  link?: Partial<LinkConfig>;
}

export type PortKind = "card" | "gateway" | "bridge";

export interface PortSnapshot {
  id: number;
  name: string;
  kind: PortKind;
  cardId?: string;
  link: LinkConfig;
  counters: PortCounters;
}

export interface SwitchSnapshot {
  name: string;
  /** the configured gateway address/prefix */
  gateway: string;
  domain: string;
  /** this tab runs the network's gateway (always, for a network that is not shared) */
  gatewayHere: boolean;
  /** other tabs with this network (0 when not shared) */
  peers: number;
  ports: PortSnapshot[];
  macTable: MacTableEntry[];
  leases: Lease[];
  hosts: { name: string; ip: string; source: string }[];
  counters: SwitchCounters;
  gatewayCounters?: GatewayCounters;
  capture: { total: number; size: number; capacity: number; enabled: boolean };
  /** frames from other tabs that were not well-formed */
  bridgeErrors: number;
}

/** Frames per card per round before other cards get their turn. */
const PUMP_BUDGET = 128;

type WaitAsync = (a: Int32Array, i: number, v: number) => { async: boolean; value: Promise<unknown> | string };
const waitAsync = (Atomics as unknown as { waitAsync?: WaitAsync }).waitAsync;

interface CardPort {
  ch: NicChannel;
  port: Port;
  vmCtrl: Int32Array | undefined;
  vmBell: number;
  armed: boolean;
  wake: boolean;
  detached: boolean;
  pollTimer?: ReturnType<typeof setInterval>;
}

type BridgeMessage =
  | { t: "hello" | "here" | "bye"; from: string }
  | { t: "frame"; from: string; f: Uint8Array }
  | { t: "leases"; from: string; leases: LeaseRecord[] };

export interface SwitchHostEnv {
  /** BroadcastChannel's constructor (default the global one) */
  BroadcastChannel?: typeof BroadcastChannel;
  /** the Web Locks manager (default navigator.locks, when there is one) */
  locks?: LockManager;
  /** a random id of this tab's switch */
  tabId?: string;
}

export class SwitchHost {
  readonly sw: VirtualSwitch;
  gateway: Gateway | undefined;
  readonly cfg: Required<Pick<NetworkConfig, "name" | "gateway" | "domain">> & NetworkConfig;
  private readonly cards = new Map<string, CardPort>();
  private readonly kinds = new Map<number, PortKind>();
  private scheduled = false;
  private wakeScheduled = false;
  private readonly cont: MessageChannel;
  private closed = false;
  // cross-tab
  private readonly tabId: string;
  private bc: BroadcastChannel | undefined;
  private bridge: Port | undefined;
  private readonly peers = new Set<string>();
  private lastLeases: LeaseRecord[] = [];
  private releaseLock: (() => void) | undefined;
  private bridgeErrors = 0;

  constructor(cfg: NetworkConfig, env: SwitchHostEnv = {}) {
    this.cfg = { ...cfg, gateway: cfg.gateway ?? "10.0.0.1/24", domain: cfg.domain ?? "lab" };
    this.sw = new VirtualSwitch({ name: cfg.name, floodLimit: cfg.floodLimit, captureCapacity: cfg.captureCapacity ?? 2000 });
    this.tabId = env.tabId ?? Math.random().toString(36).slice(2, 10);
    // continuation of a pump round that ran out of budget: a task, so other events get in between
    this.cont = new MessageChannel();
    this.cont.port1.onmessage = () => this.pump();
    (this.cont.port1 as unknown as { unref?: () => void }).unref?.();
    this.gatewayConfig(); // validates the addresses now
    for (const h of cfg.hosts ?? []) {
      if (!/^[A-Za-z0-9][A-Za-z0-9-]{0,62}$/.test(h.name) || !/^\d{1,3}(\.\d{1,3}){3}$/.test(h.address)) throw new Error(`bad host entry ${h.name} = ${h.address}`);
    }

    const BC = env.BroadcastChannel ?? (typeof BroadcastChannel !== "undefined" ? BroadcastChannel : undefined);
    const locks = env.locks ?? (typeof navigator !== "undefined" ? (navigator as Navigator).locks : undefined);
    if ((cfg.shared ?? true) && BC) {
      this.openBridge(BC);
      if (locks) {
        void locks.request(`tabvisor-net-gateway:${cfg.name}`, () => {
          if (this.closed) return undefined;
          this.startGateway();
          return new Promise<void>((r) => { this.releaseLock = r; });
        }).catch(() => { /* closed before we got it */ });
      } else {
        this.startGateway(); // no locks: every tab serves its own gateway
      }
    } else {
      this.startGateway();
    }
  }

  private gatewayConfig() {
    const [ip, p] = this.cfg.gateway.split("/");
    const prefix = p === undefined ? 24 : Number(p);
    const ipn = parseIp(ip);
    const mask = prefixMask(prefix);
    let { poolStart, poolEnd } = this.cfg;
    if (prefix === 24 && poolStart === undefined && poolEnd === undefined) {
      const net = (ipn & mask) >>> 0;
      poolStart = ipToString(net + 100);
      poolEnd = ipToString(net + 199);
    }
    return { ip, prefix, poolStart, poolEnd };
  }

  private startGateway(): void {
    if (this.gateway || this.closed) return;
    const { ip, prefix, poolStart, poolEnd } = this.gatewayConfig();
    const now = this.sw.now();
    const gw = new Gateway(this.sw, {
      ip, prefix, poolStart, poolEnd, domain: this.cfg.domain, name: this.cfg.gatewayName,
      dhcp: this.cfg.dhcp, dns: this.cfg.dns, leases: this.lastLeases.filter((l) => (l.expiresAt ?? Infinity) > now),
    });
    for (const h of this.cfg.hosts ?? []) gw.addHost(h.name, h.address);
    this.kinds.set(gw.port.id, "gateway");
    gw.onLeaseChange = () => this.post({ t: "leases", from: this.tabId, leases: gw.exportLeases() });
    this.gateway = gw;
  }


  /** Plugs a card in (replacing a card with the same id); returns its port id. */
  plug(p: PortPlug): number {
    this.unplug(p.nic.id);
    const ch = new NicChannel(p.nic);
    let card: CardPort;
    const port = this.sw.attach({
      name: p.name,
      link: p.link,
      deliver: (frame) => {
        if (!card.ch.rx.push(frame)) return false;
        this.wakeLater(card);
        return true;
      },
    });
    card = {
      ch, port, vmCtrl: p.vmCtrl ? new Int32Array(p.vmCtrl) : undefined, vmBell: p.vmBell ?? 0,
      armed: false, wake: false, detached: false,
    };
    this.kinds.set(port.id, "card");
    port.onLinkChange = (up) => { ch.setLink(up); this.wakeVm(card); };
    ch.setLink(port.up);
    this.wakeVm(card);
    this.cards.set(p.nic.id, card);
    if (!waitAsync) card.pollTimer = setInterval(() => this.schedule(), 4); // no Atomics.waitAsync: poll
    this.schedule();
    return port.id;
  }

  /** Unplugs a card: the guest sees no carrier. */
  unplug(cardId: string): boolean {
    const card = this.cards.get(cardId);
    if (!card) return false;
    this.cards.delete(cardId);
    card.detached = true;
    if (card.pollTimer) clearInterval(card.pollTimer);
    this.kinds.delete(card.port.id);
    card.port.onLinkChange = undefined;
    card.port.detach();
    card.ch.setLink(false);
    this.wakeVm(card);
    // end the outstanding waitAsync (a bell nobody else rings any more)
    card.ch.ringSwitch();
    return true;
  }

  /** Changes a card's link (up/down, delay, loss). */
  setLink(cardId: string, cfg: Partial<LinkConfig>): void {
    const card = this.cards.get(cardId);
    if (!card) throw new Error(`no card ${cardId} on network ${this.cfg.name}`);
    card.port.setLink(cfg);
  }


  private schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    queueMicrotask(() => this.pump());
  }

  private pump(): void {
    this.scheduled = false;
    if (this.closed) return;
    let more = false;
    for (const card of this.cards.values()) {
      const seen = Atomics.load(card.ch.ctrl, NIC_CTRL.TX_BELL);
      const tx = card.ch.tx;
      for (let n = 0; n < PUMP_BUDGET; n++) {
        const f = tx.shift();
        if (!f) break;
        card.port.send(f);
        if (card.detached) break;
      }
      if (card.detached) continue;
      if (!tx.isEmpty()) more = true;
      else this.arm(card, seen);
    }
    if (more && !this.scheduled) {
      this.scheduled = true;
      this.cont.port2.postMessage(null);
    }
  }

  /** Waits (asynchronously) for the card's next bell after `seen`. */
  private arm(card: CardPort, seen: number): void {
    if (card.armed || !waitAsync) return;
    const r = waitAsync(card.ch.ctrl, NIC_CTRL.TX_BELL, seen);
    if (!r.async) { this.schedule(); return; } // rang since `seen`: look again
    card.armed = true;
    void (r.value as Promise<unknown>).then(() => {
      card.armed = false;
      if (!card.detached) this.schedule();
    });
  }

  private wakeLater(card: CardPort): void {
    card.wake = true;
    if (this.wakeScheduled) return;
    this.wakeScheduled = true;
    queueMicrotask(() => {
      this.wakeScheduled = false;
      for (const c of this.cards.values()) if (c.wake) this.wakeVm(c);
    });
  }

  private wakeVm(card: CardPort): void {
    card.wake = false;
    if (card.vmCtrl) ringDoorbell(card.vmCtrl, card.vmBell);
  }


  private openBridge(BC: typeof BroadcastChannel): void {
    const bc = new BC(`tabvisor-net:${this.cfg.name}`);
    this.bc = bc;
    bc.onmessage = (e: MessageEvent<BridgeMessage>) => this.onBridge(e.data);
    (bc as unknown as { unref?: () => void }).unref?.();
    this.post({ t: "hello", from: this.tabId });
  }

  /** The "other tabs" port is on the switch while at least one other tab has the network. */
  private addPeer(id: string): void {
    this.peers.add(id);
    if (this.bridge || this.closed) return;
    this.bridge = this.sw.attach({
      name: "other tabs",
      deliver: (frame) => { this.post({ t: "frame", from: this.tabId, f: frame }); },
    });
    this.kinds.set(this.bridge.id, "bridge");
  }

  private removePeer(id: string): void {
    this.peers.delete(id);
    if (this.peers.size > 0 || !this.bridge) return;
    this.kinds.delete(this.bridge.id);
    this.bridge.detach();
    this.bridge = undefined;
  }

  private post(m: BridgeMessage): void {
    try { this.bc?.postMessage(m); } catch { this.bridgeErrors++; }
  }

  private onBridge(m: BridgeMessage): void {
    if (this.closed || !m || typeof m !== "object" || m.from === this.tabId) return;
    switch (m.t) {
      case "hello":
        this.addPeer(m.from);
        this.post({ t: "here", from: this.tabId });
        if (this.gateway) this.post({ t: "leases", from: this.tabId, leases: this.gateway.exportLeases() });
        break;
      case "here": this.addPeer(m.from); break;
      case "bye": this.removePeer(m.from); break;
      case "leases": if (Array.isArray(m.leases)) this.lastLeases = m.leases; break;
      case "frame":
        this.addPeer(m.from);
        if (m.f instanceof Uint8Array) this.bridge?.send(m.f);
        else this.bridgeErrors++;
        break;
    }
  }


  snapshot(): SwitchSnapshot {
    const cardOf = new Map<number, string>();
    for (const [id, c] of this.cards) cardOf.set(c.port.id, id);
    const gw = this.gateway;
    return {
      name: this.cfg.name,
      gateway: this.cfg.gateway,
      domain: this.cfg.domain,
      gatewayHere: !!gw,
      peers: this.peers.size,
      ports: this.sw.ports.map((p) => ({
        id: p.id, name: p.name, kind: this.kinds.get(p.id) ?? "card", cardId: cardOf.get(p.id),
        link: p.link.config, counters: structuredClone(p.counters),
      })),
      macTable: this.sw.macTable(),
      leases: gw?.leases() ?? [],
      hosts: gw?.hosts() ?? [],
      counters: { ...this.sw.counters },
      gatewayCounters: gw ? { ...gw.counters } : undefined,
      capture: { total: this.sw.capture.total, size: this.sw.capture.size, capacity: this.sw.capture.capacity, enabled: this.sw.capture.enabled },
      bridgeErrors: this.bridgeErrors,
    };
  }

  /** Summaries of captured frames newer than `sinceSeq` (at most the newest `max`). */
  captureSince(sinceSeq = 0, max = 500): CaptureSummary[] {
    const frames = this.sw.capture.frames(sinceSeq);
    return frames.slice(Math.max(0, frames.length - max)).map(summarizeCapture);
  }

  /** The capture as a libpcap file. */
  pcap(): Uint8Array { return toPcap(this.sw.capture.frames()); }

  clearCapture(): void { this.sw.capture.clear(); }

  setCapture(enabled: boolean): void { this.sw.capture.enabled = enabled; }

  /** Opens a TCP connection from the gateway to a VM (by host name or address) and relays it over `port`
   *  (web/net/tcp-relay.ts). */
  connectTcp(host: string, tcpPort: number, port: MessagePort): void {
    relayTcp(this.closed ? undefined : this.gateway, host, tcpPort, port);
  }

  close(): void {
    if (this.closed) return;
    for (const id of [...this.cards.keys()]) this.unplug(id);
    this.closed = true;
    this.gateway?.detach();
    this.gateway = undefined;
    this.releaseLock?.();
    this.post({ t: "bye", from: this.tabId });
    this.bc?.close();
    this.cont.port1.close();
  }
}
