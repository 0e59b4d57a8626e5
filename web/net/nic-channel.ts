// The shared memory of one network card: what its VM worker and its network's switch worker (and the page, for
// meters) share. One SharedArrayBuffer per card, created by the page (NetworkHub), handed to the VM worker in
// VmInit.nics and to whichever switch the card is plugged into.
//
// Layout:
//   0    Int32 control words (64 bytes)
//          TX_BELL   the VM worker adds 1 and notifies after putting frames in the tx ring; the switch worker
//                    waits on it with Atomics.waitAsync (its event loop stays free)
//          LINK      carrier as the guest should see it: 1 up, 0 down (written by the switch; the VM worker
//                    mirrors it into the card's link status, and the switch rings the VM's doorbell after a change)
//          MACHINE   1 while a machine with this card is running in the VM worker, else 0
//          BOOTS     the VM worker adds 1 each time it builds the card into a new machine
//   64   Float64 counters, written by the VM worker only (meters; read without locks)
//          txPackets txBytes rxPackets rxBytes txDropped rxDropped
//   128  the tx ring (VM → switch), a FrameRing
//   ...  the rx ring (switch → VM), a FrameRing
// The switch wakes an idle VM by adding 1 to the VM's own doorbell (its control block, CTRL.DOORBELL) and
// notifying it, as the page does for typed input; it gets that control block when the card is plugged in.

import { FrameRing } from "./frame-ring.ts";

export const NIC_CTRL = { TX_BELL: 0, LINK: 1, MACHINE: 2, BOOTS: 3 } as const;
const CTRL_BYTES = 64;
const COUNTER_BYTES = 64;
const COUNTERS = ["txPackets", "txBytes", "rxPackets", "rxBytes", "txDropped", "rxDropped"] as const;

/** Default data bytes of each ring: room for ~170 full-size frames each way. */
export const NIC_RING_BYTES = 1 << 18;

/** What a VM worker needs to build one card (structured-cloneable). */
export interface NicInit {
  /** the card's id in the NetworkHub, e.g. "web1/eth0" */
  id: string;
  /** "52:54:00:12:34:56" */
  mac: string;
  /** the card's shared memory (see the layout above) */
  buffer: SharedArrayBuffer;
  /** data bytes of each of the two rings */
  ringBytes: number;
}

/** A card's counters as its VM worker publishes them (since the page created the card; they survive reboots). */
export interface NicCounters {
  txPackets: number;
  txBytes: number;
  rxPackets: number;
  rxBytes: number;
  /** frames the guest sent that did not fit the tx ring (the switch is behind) or the card refused */
  txDropped: number;
  /** frames for the guest that its card dropped (no buffer, link down) */
  rxDropped: number;
}

export class NicChannel {
  readonly ctrl: Int32Array;
  readonly counters: Float64Array;
  /** VM → switch */
  readonly tx: FrameRing;
  /** switch → VM */
  readonly rx: FrameRing;

  static bytesFor(ringBytes: number): number { return CTRL_BYTES + COUNTER_BYTES + 2 * FrameRing.bytesFor(ringBytes); }

  /** A new card's shared memory, link up. */
  static create(id: string, mac: string, ringBytes = NIC_RING_BYTES): NicInit {
    const buffer = new SharedArrayBuffer(NicChannel.bytesFor(ringBytes));
    const init = { id, mac, buffer, ringBytes };
    Atomics.store(new NicChannel(init).ctrl, NIC_CTRL.LINK, 1);
    return init;
  }

  constructor(readonly init: NicInit) {
    const { buffer, ringBytes } = init;
    if (buffer.byteLength < NicChannel.bytesFor(ringBytes)) throw new RangeError(`card ${init.id}: shared memory too small`);
    this.ctrl = new Int32Array(buffer, 0, CTRL_BYTES / 4);
    this.counters = new Float64Array(buffer, CTRL_BYTES, COUNTER_BYTES / 8);
    this.tx = new FrameRing(buffer, CTRL_BYTES + COUNTER_BYTES, ringBytes);
    this.rx = new FrameRing(buffer, CTRL_BYTES + COUNTER_BYTES + FrameRing.bytesFor(ringBytes), ringBytes);
  }

  get id(): string { return this.init.id; }

  get linkUp(): boolean { return Atomics.load(this.ctrl, NIC_CTRL.LINK) !== 0; }
  /** Switch side: the carrier the guest sees (the caller then rings the VM's doorbell). */
  setLink(up: boolean): void { Atomics.store(this.ctrl, NIC_CTRL.LINK, up ? 1 : 0); }

  get machineRunning(): boolean { return Atomics.load(this.ctrl, NIC_CTRL.MACHINE) !== 0; }

  /** VM side: tell the switch frames are waiting in the tx ring. */
  ringSwitch(): void {
    Atomics.add(this.ctrl, NIC_CTRL.TX_BELL, 1);
    Atomics.notify(this.ctrl, NIC_CTRL.TX_BELL);
  }

  readCounters(): NicCounters {
    const c = this.counters;
    return { txPackets: c[0], txBytes: c[1], rxPackets: c[2], rxBytes: c[3], txDropped: c[4], rxDropped: c[5] };
  }

  /** VM side. */
  writeCounters(v: NicCounters): void {
    const c = this.counters;
    for (let i = 0; i < COUNTERS.length; i++) c[i] = v[COUNTERS[i]];
  }
}

/** Wakes a VM worker sleeping on its doorbell (its control block's CTRL.DOORBELL word). */
export function ringDoorbell(ctrl: Int32Array, index: number): void {
  Atomics.add(ctrl, index, 1);
  Atomics.notify(ctrl, index);
}
