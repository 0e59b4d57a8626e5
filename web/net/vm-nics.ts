// The VM worker's side of its network cards: each card's virtio-net device (the machine builds one per card of
// its description, in order eth0, eth1, ...) is wired to the card's shared memory (nic-channel.ts). What the guest
// transmits goes into the tx ring and rings the switch's bell; frames the switch put in the rx ring are handed to
// the device by pump(), which the run loop calls before each slice (the switch rings the VM's doorbell, so an idle
// guest wakes for them). The carrier the switch publishes is mirrored into the device's link status. Counters go
// to the shared memory.

import type { VirtioNet } from "../../emulator-core/src/machine/virtio/net.ts";
import type { NicAttachment } from "../../emulator-core/src/machine/description.ts";
import { NIC_CTRL, NicChannel, type NicCounters, type NicInit } from "./nic-channel.ts";
import { announceFrame } from "../../emulator-core/src/net/announce.ts";
import { parseMac } from "../../emulator-core/src/net/packet.ts";

/** Frames waiting in the device for guest buffers; past this, frames stay in the rx ring (and it fills). */
const BACKLOG_LIMIT = 60;
/** At most this many frames per card per pump (the rest on the next one: the guest runs in between). */
const PUMP_BUDGET = 256;

class RingFull extends Error {
  constructor() { super("the card's tx ring is full (the switch is behind)"); }
}
const RING_FULL = new RingFull();

interface Card {
  ch: NicChannel;
  nic: VirtioNet | undefined;
  link: boolean;
  c: NicCounters;
}

export class VmNics {
  private readonly cards: Card[];

  constructor(nics: readonly NicInit[] = []) {
    this.cards = nics.map((init) => {
      const ch = new NicChannel(init);
      return { ch, nic: undefined, link: ch.linkUp, c: ch.readCounters() };
    });
  }

  get count(): number { return this.cards.length; }

  /** The host side of each card, for building the machine: where its frames go, its carrier now. */
  attachments(): NicAttachment[] {
    return this.cards.map((card) => {
      card.link = card.ch.linkUp;
      return { linkUp: card.link, backend: { send: (frame) => this.send(card, frame) } };
    });
  }

  /** The machine's devices for the cards, in order (after the machine is built, and again when a restored machine
   *  takes its place: its devices' carrier is the saved one, so the next pump sets the card's). */
  bind(nics: readonly VirtioNet[]): void {
    if (nics.length !== this.cards.length) throw new Error(`the machine has ${nics.length} network cards, the VM ${this.cards.length}`);
    this.cards.forEach((card, i) => { card.nic = nics[i]; card.link = nics[i].isLinkUp; });
  }

  /** The guest (re)starts: frames waiting for the previous boot are dropped, and the boot is counted. */
  booted(): void {
    for (const { ch } of this.cards) {
      ch.rx.clear();
      Atomics.add(ch.ctrl, NIC_CTRL.BOOTS, 1);
    }
  }

  private send(card: Card, frame: Uint8Array): void {
    const c = card.c;
    if (!card.ch.tx.push(frame)) {
      c.txDropped++;
      card.ch.counters[4] = c.txDropped;
      throw RING_FULL; // the device counts it as dropped too
    }
    c.txPackets++;
    c.txBytes += frame.length;
    card.ch.counters[0] = c.txPackets;
    card.ch.counters[1] = c.txBytes;
    card.ch.ringSwitch();
  }

  /** Tells the switches where each card's MAC is now (after a live migration brought the machine here): a
   *  broadcast RARP from each card, sent in the guest's place (announce.ts). Not counted as the guest's traffic. */
  announce(): void {
    for (const card of this.cards) {
      if (card.ch.tx.push(announceFrame(parseMac(card.ch.init.mac)))) card.ch.ringSwitch();
    }
  }

  /** Link changes and waiting frames → the devices. Returns whether a frame was handed over. */
  pump(): boolean {
    let moved = false;
    for (const card of this.cards) {
      const nic = card.nic;
      if (!nic) continue;
      const up = card.ch.linkUp;
      if (up !== card.link) {
        card.link = up;
        nic.setLinkUp(up);
      }
      const rx = card.ch.rx;
      let n = 0;
      while (n < PUMP_BUDGET && nic.backlogLength < BACKLOG_LIMIT) {
        const f = rx.shift();
        if (!f) break;
        n++;
        if (nic.receive(f)) { card.c.rxPackets++; card.c.rxBytes += f.length; } else card.c.rxDropped++;
      }
      if (n > 0) {
        moved = true;
        card.ch.writeCounters(card.c);
      }
    }
    return moved;
  }

  /** True when a pump would hand frames over (so the loop should not sleep). */
  pending(): boolean {
    for (const card of this.cards) {
      if (card.nic && card.nic.backlogLength < BACKLOG_LIMIT && !card.ch.rx.isEmpty()) return true;
      if (card.nic && card.ch.linkUp !== card.link) return true;
    }
    return false;
  }
}
