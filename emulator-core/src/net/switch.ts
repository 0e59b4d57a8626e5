// A virtual Ethernet switch: one per network. Devices (VM NICs, the gateway, bridges) attach as ports; the switch
// learns which port owns which source MAC and sends frames for a known unicast MAC only to that port, and floods
// broadcast, multicast and unknown unicast to all other ports. Each port has a link (up/down, delay, loss), counters
// and a flood limit (frames per second it may send), so a broadcast storm degrades its network, not the host.
// Everything the switch forwards is recorded in a bounded capture ring.
//
// Time, randomness and delayed delivery are injectable, so tests run deterministically without real timers.
// Delivery with no delay is synchronous; a frame sent from inside a deliver callback is queued and switched after
// the current one (no recursion). Nothing here depends on Node.

import { ETH_MAX_FRAME, ETH_MIN_FRAME, isMulticastMac, macKey, macToString } from "./packet.ts";
import { FloodLimiter, Link, type LinkConfig } from "./link.ts";
import { CaptureRing } from "./pcap.ts";

export interface SwitchOptions {
  name?: string;
  /** a learned MAC is forgotten this long after the last frame from it (default 300 000 ms) */
  macAgingMs?: number;
  /** at most this many MACs are learned; beyond, frames to new MACs are flooded (default 4096) */
  maxMacEntries?: number;
  /** frames per second a port may send; the excess is dropped and counted (default 20 000; Infinity: no limit) */
  floodLimit?: number;
  /** clock in ms (default: wall-clock ms since the Unix epoch, sub-ms precision); used for aging, flood limits and
   *  capture timestamps */
  now?: () => number;
  /** uniform in [0, 1), for link loss (default Math.random) */
  random?: () => number;
  /** runs fn after delayMs, for link delays (default setTimeout) */
  schedule?: (fn: () => void, delayMs: number) => void;
  /** frames kept in the capture ring (default 1000) */
  captureCapacity?: number;
  /** capture on from the start (default true) */
  capture?: boolean;
}

export interface PortDrops {
  /** the port's link was down */
  linkDown: number;
  /** lost on a lossy link */
  loss: number;
  /** shorter than 14 bytes */
  malformed: number;
  /** longer than 1518 bytes */
  oversized: number;
  /** over the port's flood limit */
  flood: number;
  /** the device did not take a frame delivered to it */
  refused: number;
}

export interface PortCounters {
  /** frames (and their bytes) the switch accepted from this port */
  rxPackets: number;
  rxBytes: number;
  /** frames (and their bytes) the switch delivered to this port */
  txPackets: number;
  txBytes: number;
  /** frames from this port that were dropped (link down, loss, malformed, oversized, flood) */
  rxDropped: number;
  /** frames for this port that were dropped (link down, loss, refused) */
  txDropped: number;
  drops: PortDrops;
}

export interface PortOptions {
  name?: string;
  /** receives each frame the switch sends to this port; return false when the device could not take it. Frames
   *  are shared between receivers: don't modify them. */
  deliver: (frame: Uint8Array) => boolean | void;
  /** initial link settings */
  link?: Partial<LinkConfig>;
  /** this port's flood limit, frames per second (default: the switch's) */
  floodLimit?: number;
}

export interface MacTableEntry {
  mac: string;
  port: number;
  portName: string;
  /** ms since the last frame from this MAC */
  ageMs: number;
}

function newCounters(): PortCounters {
  return {
    rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, rxDropped: 0, txDropped: 0,
    drops: { linkDown: 0, loss: 0, malformed: 0, oversized: 0, flood: 0, refused: 0 },
  };
}

export class Port {
  readonly link: Link;
  readonly counters: PortCounters = newCounters();
  readonly limiter: FloodLimiter;
  /** called when the link goes up or down (e.g. to show the guest its carrier) */
  onLinkChange: ((up: boolean) => void) | undefined;
  /** called once when the port leaves the switch */
  onDetach: (() => void) | undefined;
  private isAttached = true;

  /** @internal use VirtualSwitch.attach */
  constructor(
    private readonly sw: VirtualSwitch,
    readonly id: number,
    public name: string,
    readonly deliver: (frame: Uint8Array) => boolean | void,
    link: Partial<LinkConfig>,
    floodLimit: number,
  ) {
    this.link = new Link(link);
    this.limiter = new FloodLimiter(floodLimit);
    this.link.onUpChange = (up) => {
      if (!up) sw.forgetPort(this);
      this.onLinkChange?.(up);
    };
  }

  get attached(): boolean { return this.isAttached; }
  get up(): boolean { return this.link.up; }

  /** A frame from the device into the switch. The switch copies it. */
  send(frame: Uint8Array): void { this.sw.ingress(this, frame); }

  /** Changes the link: up/down, delay, loss. */
  setLink(cfg: Partial<LinkConfig>): void { this.link.set(cfg); }

  setUp(up: boolean): void { this.link.set({ up }); }

  get floodLimit(): number { return this.limiter.limit; }
  set floodLimit(n: number) { this.limiter.limit = n; }

  /** For devices that take frames asynchronously: one frame delivered earlier was refused after all. */
  reportRefused(bytes: number): void {
    const c = this.counters;
    c.txPackets--;
    c.txBytes -= bytes;
    c.txDropped++;
    c.drops.refused++;
  }

  /** Leaves the switch; frames in flight to this port are dropped. */
  detach(): void {
    if (!this.isAttached) return;
    this.isAttached = false;
    this.sw.removePort(this);
    this.onDetach?.();
  }
}

interface MacEntry {
  port: Port;
  lastSeen: number;
  mac: Uint8Array;
}

export interface SwitchCounters {
  /** unicast frames sent to the one port owning the destination */
  forwarded: number;
  /** frames sent to all other ports (broadcast, multicast, unknown unicast) */
  flooded: number;
  /** frames whose destination is on the port they came from (not sent anywhere) */
  filtered: number;
}

const defaultNow = (): number => performance.timeOrigin + performance.now();
const defaultSchedule = (fn: () => void, ms: number): void => { setTimeout(fn, ms); };

export class VirtualSwitch {
  readonly name: string;
  readonly capture: CaptureRing;
  readonly counters: SwitchCounters = { forwarded: 0, flooded: 0, filtered: 0 };
  macAgingMs: number;
  maxMacEntries: number;
  /** default flood limit of ports attached from now on */
  floodLimit: number;
  readonly now: () => number;
  private readonly random: () => number;
  private readonly schedule: (fn: () => void, delayMs: number) => void;
  private readonly portList: Port[] = [];
  private readonly macs = new Map<number, MacEntry>();
  private nextPortId = 1;
  private busy = false;
  private readonly pending: { port: Port; frame: Uint8Array }[] = [];

  constructor(opts: SwitchOptions = {}) {
    this.name = opts.name ?? "switch";
    this.macAgingMs = opts.macAgingMs ?? 300_000;
    this.maxMacEntries = opts.maxMacEntries ?? 4096;
    this.floodLimit = opts.floodLimit ?? 20_000;
    this.now = opts.now ?? defaultNow;
    this.random = opts.random ?? Math.random;
    this.schedule = opts.schedule ?? defaultSchedule;
    this.capture = new CaptureRing(opts.captureCapacity ?? 1000);
    this.capture.enabled = opts.capture ?? true;
  }

  /** Adds a port. */
  attach(opts: PortOptions): Port {
    const id = this.nextPortId++;
    const port = new Port(this, id, opts.name ?? `port${id}`, opts.deliver, opts.link ?? {}, opts.floodLimit ?? this.floodLimit);
    this.portList.push(port);
    return port;
  }

  get ports(): readonly Port[] { return this.portList; }

  port(id: number): Port | undefined { return this.portList.find((p) => p.id === id); }

  /** @internal */
  removePort(port: Port): void {
    const i = this.portList.indexOf(port);
    if (i >= 0) this.portList.splice(i, 1);
    this.forgetPort(port);
  }

  /** @internal forgets the MACs learned on a port (its link went down or it left) */
  forgetPort(port: Port): void {
    for (const [k, e] of this.macs) if (e.port === port) this.macs.delete(k);
  }

  /** The learned MACs (expired ones removed), ordered by port then MAC. */
  macTable(): MacTableEntry[] {
    const now = this.now();
    const out: MacTableEntry[] = [];
    for (const [k, e] of this.macs) {
      if (now - e.lastSeen > this.macAgingMs) { this.macs.delete(k); continue; }
      out.push({ mac: macToString(e.mac), port: e.port.id, portName: e.port.name, ageMs: Math.max(0, now - e.lastSeen) });
    }
    return out.sort((a, b) => a.port - b.port || (a.mac < b.mac ? -1 : a.mac > b.mac ? 1 : 0));
  }

  /** Forgets every learned MAC. */
  flushMacTable(): void { this.macs.clear(); }

  /** the port a unicast MAC was learned on, if still fresh */
  lookup(mac: ArrayLike<number>): Port | undefined {
    const k = macKey(mac);
    const e = this.macs.get(k);
    if (!e) return undefined;
    if (this.now() - e.lastSeen > this.macAgingMs) { this.macs.delete(k); return undefined; }
    return e.port;
  }

  /** @internal a frame from `port` (use Port.send) */
  ingress(port: Port, frame: Uint8Array): void {
    if (!port.attached) return;
    if (this.busy) {
      this.pending.push({ port, frame: frame.slice() });
      return;
    }
    this.busy = true;
    try {
      this.switchFrame(port, frame.slice());
      this.drain();
    } finally {
      this.busy = false;
    }
  }

  private drain(): void {
    while (this.pending.length > 0) {
      const { port, frame } = this.pending.shift()!;
      if (port.attached) this.switchFrame(port, frame);
    }
  }

  private switchFrame(from: Port, frame: Uint8Array): void {
    const c = from.counters;
    if (!from.link.up) { c.rxDropped++; c.drops.linkDown++; return; }
    if (frame.length < ETH_MIN_FRAME) { c.rxDropped++; c.drops.malformed++; return; }
    if (frame.length > ETH_MAX_FRAME) { c.rxDropped++; c.drops.oversized++; return; }
    const now = this.now();
    if (!from.limiter.allow(now)) { c.rxDropped++; c.drops.flood++; return; }
    if (from.link.drops(this.random)) { c.rxDropped++; c.drops.loss++; return; }
    c.rxPackets++;
    c.rxBytes += frame.length;
    this.capture.add(now, from.id, frame);

    // learn the source
    if (!isMulticastMac(frame, 6)) {
      const k = macKey(frame, 6);
      const e = this.macs.get(k);
      if (e) {
        e.port = from;
        e.lastSeen = now;
      } else {
        if (this.macs.size >= this.maxMacEntries) this.purgeExpired(now);
        if (this.macs.size < this.maxMacEntries) this.macs.set(k, { port: from, lastSeen: now, mac: frame.slice(6, 12) });
      }
    }

    // forward
    if (!isMulticastMac(frame, 0)) {
      const k = macKey(frame, 0);
      const e = this.macs.get(k);
      if (e && now - e.lastSeen <= this.macAgingMs) {
        if (e.port === from) { this.counters.filtered++; return; }
        this.counters.forwarded++;
        this.egress(from, e.port, frame);
        return;
      }
      if (e) this.macs.delete(k);
    }
    this.counters.flooded++;
    for (const to of this.portList.slice()) if (to !== from) this.egress(from, to, frame);
  }

  private purgeExpired(now: number): void {
    for (const [k, e] of this.macs) if (now - e.lastSeen > this.macAgingMs) this.macs.delete(k);
  }

  private egress(from: Port, to: Port, frame: Uint8Array): void {
    const c = to.counters;
    if (!to.link.up) { c.txDropped++; c.drops.linkDown++; return; }
    if (to.link.drops(this.random)) { c.txDropped++; c.drops.loss++; return; }
    const delay = from.link.delayMs + to.link.delayMs;
    if (delay > 0) {
      this.schedule(() => this.deliverLater(to, frame), delay);
    } else {
      this.deliverNow(to, frame);
    }
  }

  private deliverLater(to: Port, frame: Uint8Array): void {
    if (this.busy) {
      // (only with a synchronous scheduler) keep the order: the frame goes out after the current one
      this.deliverNow(to, frame);
      return;
    }
    this.busy = true;
    try {
      this.deliverNow(to, frame);
      this.drain();
    } finally {
      this.busy = false;
    }
  }

  private deliverNow(to: Port, frame: Uint8Array): void {
    const c = to.counters;
    if (!to.attached) return;
    if (!to.link.up) { c.txDropped++; c.drops.linkDown++; return; }
    let ok: boolean | void;
    try {
      ok = to.deliver(frame);
    } catch {
      ok = false;
    }
    if (ok === false) {
      c.txDropped++;
      c.drops.refused++;
    } else {
      c.txPackets++;
      c.txBytes += frame.length;
    }
  }
}

/** What attachNic needs of a network card (VirtioNet has it all). */
export interface NicLike {
  backend: { send(frame: Uint8Array): void } | null;
  receive(frame: Uint8Array): boolean;
  setLinkUp?(up: boolean): void;
}

export interface AttachNicOptions {
  name?: string;
  /** called after frames were handed to the NIC (NodeVm.wake) */
  wake?: () => void;
  link?: Partial<LinkConfig>;
  floodLimit?: number;
  /** show the port's link state to the guest as the NIC's carrier (default true) */
  mirrorLink?: boolean;
}

/**
 * Plugs a NIC into a switch: what the guest transmits enters the switch; what the switch sends the port is handed to
 * the NIC in a microtask (never from inside the NIC's own transmit), then `wake` is called.
 */
export function attachNic(sw: VirtualSwitch, nic: NicLike, opts: AttachNicOptions = {}): Port {
  let queue: Uint8Array[] = [];
  let port: Port;
  const flush = (): void => {
    const frames = queue;
    queue = [];
    for (const f of frames) if (!nic.receive(f)) port.reportRefused(f.length);
    opts.wake?.();
  };
  port = sw.attach({
    name: opts.name,
    link: opts.link,
    floodLimit: opts.floodLimit,
    deliver: (frame) => {
      if (queue.length === 0) queueMicrotask(flush);
      queue.push(frame);
    },
  });
  nic.backend = { send: (frame) => port.send(frame) };
  if (opts.mirrorLink ?? true) {
    nic.setLinkUp?.(port.up);
    port.onLinkChange = (up) => nic.setLinkUp?.(up);
  }
  port.onDetach = () => {
    nic.backend = null;
    queue = [];
  };
  return port;
}
