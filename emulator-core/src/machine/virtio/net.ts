// virtio-net (device ID 1): queue 0 = receiveq, queue 1 = transmitq. Spec section 5.1.
//
// Features: MAC (config mac[6] at 0), STATUS (config status u16 at 6, LINK_UP), MTU (config mtu u16 at 10 = 1500,
// which caps the guest's MTU so its frames fit the limits below). No checksum or segmentation offloads, no
// mergeable rx buffers: every frame comes with a 12-byte virtio_net_hdr (VERSION_1 layout) that is all zero on rx
// except num_buffers = 1, and is ignored on tx.
//
// Frames are Ethernet frames without FCS, 14..1518 bytes (1514 + a VLAN tag); others are counted and dropped.
// receive(frame) delivers into the guest's rx buffers; when there is none, up to `backlog` frames wait and are
// delivered when the driver adds buffers (notify of queue 0).
//
// Snapshots hold the link state and the backlog (copies of the frames), with the MAC to refuse another card's state.

import type { NetBackend } from "./backends.ts";
import { VIRTIO_ID_NET, type VirtioDevice, type VirtioTransport } from "./mmio.ts";
import { DescChain, VirtqueueError } from "./queue.ts";
import { SnapshotError, StateReader, type StateValue } from "../../snapshot/state-value.ts";

export const VIRTIO_NET_F_MTU = 1n << 3n;
export const VIRTIO_NET_F_MAC = 1n << 5n;
export const VIRTIO_NET_F_STATUS = 1n << 16n;
export const VIRTIO_NET_S_LINK_UP = 1;

export const VIRTIO_NET_HDR_LEN = 12;
export const NET_MIN_FRAME = 14;
export const NET_MAX_FRAME = 1514 + 4;

const RXQ = 0;
const TXQ = 1;

export interface VirtioNetOptions {
  /** 6 bytes; default 52:54:00:12:34:56 */
  mac?: ArrayLike<number>;
  /** where transmitted frames go; may also be set later through `net.backend` */
  backend?: NetBackend;
  /** initial link state (default up) */
  linkUp?: boolean;
  /** frames kept while the guest has no rx buffer (default 64) */
  backlog?: number;
}

const Rx = { Delivered: 0, NoBuffer: 1, TooLarge: 2 } as const;
type Rx = (typeof Rx)[keyof typeof Rx];

export class VirtioNet implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_NET;
  readonly features = VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS | VIRTIO_NET_F_MTU;
  readonly queueCount = 2;
  readonly config = new Uint8Array(12);
  readonly mac: Uint8Array;
  backend: NetBackend | null;

  // stats (never reset)
  rxBytes = 0;
  rxPackets = 0;
  rxDropped = 0;
  txBytes = 0;
  txPackets = 0;
  txDropped = 0;

  private t: VirtioTransport | null = null;
  private chain: DescChain | null = null;
  private linkUp: boolean;
  private readonly backlog: Uint8Array[] = [];
  private readonly backlogMax: number;
  private readonly rxHdr = new Uint8Array(VIRTIO_NET_HDR_LEN);

  constructor(opts: VirtioNetOptions = {}) {
    const mac = opts.mac ?? [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    if (mac.length !== 6) throw new Error("MAC address must be 6 bytes");
    this.mac = Uint8Array.from(mac);
    this.backend = opts.backend ?? null;
    this.linkUp = opts.linkUp ?? true;
    this.backlogMax = opts.backlog ?? 64;
    this.config.set(this.mac, 0);
    this.config[6] = this.linkUp ? VIRTIO_NET_S_LINK_UP : 0;
    this.config[10] = 1500 & 0xff; // mtu
    this.config[11] = 1500 >> 8;
    this.rxHdr[10] = 1; // num_buffers
  }

  get isLinkUp(): boolean { return this.linkUp; }

  /** frames waiting for rx buffers */
  get backlogLength(): number { return this.backlog.length; }

  /** Changes the link state seen by the guest (config status) and raises a config-change interrupt. */
  setLinkUp(up: boolean): void {
    if (up === this.linkUp) return;
    this.linkUp = up;
    this.config[6] = up ? VIRTIO_NET_S_LINK_UP : 0;
    if (!up) this.backlog.length = 0;
    this.t?.configChanged();
  }

  attach(t: VirtioTransport): void {
    this.t = t;
    this.chain = new DescChain(t.mem.bytes);
  }

  reset(): void {
    this.backlog.length = 0;
  }

  /**
   * Delivers one Ethernet frame (no FCS) to the guest. Returns true when it was delivered or queued in the
   * backlog, false when it was dropped (counted in rxDropped): device not running, link down, bad size, backlog
   * full, or no guest buffer large enough. The frame is copied; the caller keeps it.
   */
  receive(frame: Uint8Array): boolean {
    const t = this.t;
    if (!t || !t.running || !this.linkUp || frame.length < NET_MIN_FRAME || frame.length > NET_MAX_FRAME) {
      this.rxDropped++;
      return false;
    }
    try {
      if (this.backlog.length === 0) {
        const r = this.deliver(frame);
        if (r === Rx.Delivered) { t.usedBuffers(t.queue(RXQ)); return true; }
        if (r === Rx.TooLarge) { this.rxDropped++; return false; }
      }
      if (this.backlog.length >= this.backlogMax) { this.rxDropped++; return false; }
      this.backlog.push(frame.slice());
      return true;
    } catch (e) {
      t.fail(e);
      this.rxDropped++;
      return false;
    }
  }

  saveState(): StateValue {
    return {
      mac: this.mac.slice(),
      linkUp: this.linkUp,
      backlog: this.backlog.map((f) => f.slice()),
      rxBytes: this.rxBytes, rxPackets: this.rxPackets, rxDropped: this.rxDropped,
      txBytes: this.txBytes, txPackets: this.txPackets, txDropped: this.txDropped,
    };
  }

  restoreState(state: StateValue): void {
    const r = new StateReader(state, "virtio-net");
    const mac = r.bytes("mac", { length: 6 });
    if (mac.some((b, i) => b !== this.mac[i])) throw new SnapshotError("virtio-net.mac: the snapshot is of a card with another MAC address");
    const linkUp = r.bool("linkUp");
    const backlog = r.array("backlog", this.backlogMax).map((f, i) => checkFrame(f, `virtio-net.backlog[${i}]`));
    // receive() drops everything while the link is down, and taking it down empties the backlog
    if (!linkUp && backlog.length > 0) throw new SnapshotError("virtio-net.backlog: frames waiting on a link that is down");
    const [rxBytes, rxPackets, rxDropped, txBytes, txPackets, txDropped] =
      ["rxBytes", "rxPackets", "rxDropped", "txBytes", "txPackets", "txDropped"].map((k) => r.num(k, 0));
    this.linkUp = linkUp;
    this.config[6] = linkUp ? VIRTIO_NET_S_LINK_UP : 0;
    this.backlog.length = 0;
    for (const f of backlog) this.backlog.push(f);
    this.rxBytes = rxBytes; this.rxPackets = rxPackets; this.rxDropped = rxDropped;
    this.txBytes = txBytes; this.txPackets = txPackets; this.txDropped = txDropped;
  }

  queueNotify(queue: number): void {
    if (queue === RXQ) this.flushBacklog();
    else if (queue === TXQ) this.transmit();
  }

  private deliver(frame: Uint8Array): Rx {
    const vq = this.t!.queue(RXQ);
    const c = this.chain!;
    if (!vq.ready || !vq.pop(c)) return Rx.NoBuffer;
    if (c.writeTotal < VIRTIO_NET_HDR_LEN) throw new VirtqueueError(`virtio-net: rx buffer of ${c.writeTotal} bytes`);
    if (VIRTIO_NET_HDR_LEN + frame.length > c.writeTotal) {
      vq.unpop(); // keep the buffer for a smaller frame
      return Rx.TooLarge;
    }
    c.copyTo(0, this.rxHdr);
    c.copyTo(VIRTIO_NET_HDR_LEN, frame);
    vq.push(c.head, VIRTIO_NET_HDR_LEN + frame.length);
    this.rxPackets++;
    this.rxBytes += frame.length;
    return Rx.Delivered;
  }

  private flushBacklog(): void {
    const t = this.t!;
    let delivered = 0;
    try {
      while (this.backlog.length > 0) {
        const r = this.deliver(this.backlog[0]);
        if (r === Rx.NoBuffer) break;
        this.backlog.shift();
        if (r === Rx.Delivered) delivered++;
        else this.rxDropped++;
      }
    } finally {
      if (delivered > 0) t.usedBuffers(t.queue(RXQ));
    }
  }

  private transmit(): void {
    const t = this.t!;
    const vq = t.queue(TXQ);
    const c = this.chain!;
    let n = 0;
    try {
      while (n < vq.num && vq.pop(c)) {
        if (c.readTotal < VIRTIO_NET_HDR_LEN) throw new VirtqueueError(`virtio-net: tx header of ${c.readTotal} bytes`);
        const len = c.readTotal - VIRTIO_NET_HDR_LEN;
        if (len < NET_MIN_FRAME || len > NET_MAX_FRAME || !this.linkUp || !this.backend) {
          this.txDropped++;
        } else {
          const frame = new Uint8Array(len);
          c.copyFrom(VIRTIO_NET_HDR_LEN, frame);
          try {
            this.backend.send(frame);
            this.txPackets++;
            this.txBytes += len;
          } catch {
            this.txDropped++;
          }
        }
        vq.push(c.head, 0);
        n++;
      }
    } finally {
      if (n > 0) t.usedBuffers(vq);
    }
  }
}

/** A saved backlog frame: bytes of a size receive() accepts, copied (the snapshot keeps its own). */
function checkFrame(v: StateValue, where: string): Uint8Array {
  if (!(v instanceof Uint8Array) || v.length < NET_MIN_FRAME || v.length > NET_MAX_FRAME) {
    throw new SnapshotError(`${where}: expected a frame of ${NET_MIN_FRAME}..${NET_MAX_FRAME} bytes`);
  }
  return v.slice();
}
