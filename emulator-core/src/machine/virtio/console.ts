// virtio-console (device ID 3) with VIRTIO_CONSOLE_F_MULTIPORT and one port: the host's control channel into the
// guest (its agent, see emulator-core/src/agent), apart from the user's console on the UART. Spec section 5.3.
//
// Why multiport for one port: without it, port 0 is a console, which Linux turns into a tty (hvc) with a line
// discipline and small buffers. A multiport device's ports are plain character devices (/dev/vport0p0) that move
// whole buffers, and they have a name the guest finds them by (/sys/class/virtio-ports/vport0p0/name), as QEMU's
// guest agent channel does.
//
// Queues: 0 = port 0 receiveq (host to guest), 1 = port 0 transmitq (guest to host), 2 = control receiveq (device
// to driver), 3 = control transmitq (driver to device). Config: cols u16, rows u16, max_nr_ports u32 (= 1),
// emerg_wr u32.
//
// The handshake Linux does: the driver sends DEVICE_READY(1); the device answers PORT_ADD for port 0; the driver
// sends PORT_READY(0, 1); the device gives the port its name (PORT_NAME) and says the host side is open
// (PORT_OPEN(0, 1): the host always listens, so a guest read blocks instead of seeing end of file). The driver sends
// PORT_OPEN(0, 1/0) when a guest process opens or closes the port.
//
// Host to guest bytes wait in `pending` until a guest process has the port open (Linux drops data for a port that
// is closed) and the driver gives receive buffers, as many as `pendingLimit` allows (the host is told when there is
// room again: onDrain, also when a close or a reset dropped what was pending). Guest to host bytes go to `onData` as
// they come; a transmit chain of more than MAX_TX_CHAIN bytes is a driver error (NEEDS_RESET): Linux's writes are
// 32 KiB at most (a splice a pipe's worth), and a guest must not make the host copy gigabytes in one notify. A driver
// reset drops what was pending and what the control queue had not delivered; onReset tells the host, whose
// requests in flight are then lost.
//
// The host may call send() from inside any of its callbacks (AgentClient sends CANCEL from inside onData): each
// queue has its own DescChain, so a delivery started from a callback does not overwrite the chain being worked on,
// and a loop stops when a callback's delivery failed the device.

import { VIRTIO_ID_CONSOLE, type VirtioDevice, type VirtioTransport } from "./mmio.ts";
import { DescChain, VirtqueueError } from "./queue.ts";
import { SnapshotError, StateReader, type StateValue } from "../../snapshot/state-value.ts";

export const VIRTIO_CONSOLE_F_MULTIPORT = 1n << 1n;

/** Control events (struct virtio_console_control.event). */
export const CONSOLE_CTRL = {
  DEVICE_READY: 0,
  PORT_ADD: 1,
  PORT_REMOVE: 2,
  PORT_READY: 3,
  CONSOLE_PORT: 4,
  RESIZE: 5,
  PORT_OPEN: 6,
  PORT_NAME: 7,
} as const;

/** The name of the agent's port (a guest finds its device through /sys/class/virtio-ports/NAME-of-port). */
export const AGENT_PORT_NAME = "org.tabvisor.agent.0";

const PORT_RXQ = 0;
const PORT_TXQ = 1;
const CTRL_RXQ = 2;
const CTRL_TXQ = 3;
/** struct virtio_console_control: id u32, event u16, value u16 */
const CTRL_LEN = 8;
/** host bytes held for the guest by default before send() refuses more */
const DEFAULT_PENDING_LIMIT = 4 << 20;
/** control messages the device will hold undelivered (the handshake needs three) */
const MAX_CTRL_PENDING = 16;
/** largest transmit chain (readable bytes) the device takes: Linux's port writes are 32 KiB at most, a splice a
 *  pipe's worth (1 MiB unless root raised it) */
export const MAX_TX_CHAIN = 1 << 20;

export interface VirtioConsoleOptions {
  /** the port's name (default AGENT_PORT_NAME) */
  name?: string;
  /** bytes send() holds for the guest at most (default 4 MiB) */
  pendingLimit?: number;
}

export class VirtioConsole implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_CONSOLE;
  readonly features = VIRTIO_CONSOLE_F_MULTIPORT;
  readonly queueCount = 4;
  readonly config = new Uint8Array(12);
  readonly name: string;
  readonly pendingLimit: number;

  /** guest to host bytes (a view the device reuses: copy what you keep) */
  onData: ((bytes: Uint8Array) => void) | null = null;
  /** room again under pendingLimit after send() returned false, or everything delivered */
  onDrain: (() => void) | null = null;
  /** the guest opened (true) or closed (false) the port; at a close, pending host bytes were dropped */
  onGuestOpen: ((open: boolean) => void) | null = null;
  /** the driver reset the device: pending host bytes were dropped */
  onReset: (() => void) | null = null;

  /** the driver has the port (it sent PORT_READY) */
  portReady = false;
  /** a guest process has the port open */
  guestOpen = false;

  // stats (never reset)
  rxBytes = 0; // host to guest
  txBytes = 0; // guest to host

  private t: VirtioTransport | null = null;
  /** one chain per queue: a callback may start a delivery while a chain of another queue is being worked on */
  private readonly chains: DescChain[] = [];
  /** host to guest bytes not yet in a guest buffer, oldest first; the first may be partly delivered (`headUsed`) */
  private readonly pending: Uint8Array[] = [];
  private headUsed = 0;
  private pendingBytes = 0;
  private wantDrain = false;
  /** device to driver control messages not yet delivered */
  private readonly ctrlOut: Uint8Array[] = [];
  private readonly txBuf = new Uint8Array(65536);
  private readonly ctrlIn = new Uint8Array(CTRL_LEN);

  constructor(opts: VirtioConsoleOptions = {}) {
    this.name = opts.name ?? AGENT_PORT_NAME;
    this.pendingLimit = opts.pendingLimit ?? DEFAULT_PENDING_LIMIT;
    new DataView(this.config.buffer).setUint32(4, 1, true); // max_nr_ports
  }

  /** host bytes waiting for the guest */
  get queued(): number { return this.pendingBytes; }

  attach(t: VirtioTransport): void {
    this.t = t;
    for (let q = 0; q < this.queueCount; q++) this.chains[q] = new DescChain(t.mem.bytes);
  }

  reset(): void {
    const hadPort = this.portReady;
    const wasOpen = this.guestOpen;
    this.ctrlOut.length = 0;
    this.portReady = false;
    this.guestOpen = false;
    const waited = this.dropPending();
    if (wasOpen) this.onGuestOpen?.(false);
    if (hadPort) this.onReset?.();
    // a host that was refused waits for onDrain: the drop made room (told last, once it knows of the reset)
    if (waited) this.onDrain?.();
  }

  /**
   * Queues bytes for the guest's port (copied). Returns false, taking nothing, when they do not fit under
   * pendingLimit; onDrain is called when there is room. A chunk larger than the limit is taken when nothing is
   * pending (so any size goes through, one at a time).
   */
  send(bytes: Uint8Array): boolean {
    if (bytes.length === 0) return true;
    if (this.pendingBytes > 0 && this.pendingBytes + bytes.length > this.pendingLimit) {
      this.wantDrain = true;
      return false;
    }
    this.pending.push(bytes.slice());
    this.pendingBytes += bytes.length;
    const t = this.t;
    if (t && t.running) {
      try {
        this.deliver();
      } catch (e) {
        t.fail(e);
      }
    }
    return true;
  }

  saveState(): StateValue {
    const rest = this.pending.map((b, i) => (i === 0 ? b.slice(this.headUsed) : b.slice()));
    return {
      portReady: this.portReady,
      guestOpen: this.guestOpen,
      pending: rest,
      ctrlOut: this.ctrlOut.map((m) => m.slice()),
      rxBytes: this.rxBytes,
      txBytes: this.txBytes,
    };
  }

  restoreState(state: StateValue): void {
    const r = new StateReader(state, "virtio-console");
    const portReady = r.bool("portReady");
    const guestOpen = r.bool("guestOpen");
    const pending = r.array("pending", 1 << 16).map((v, i) => {
      if (!(v instanceof Uint8Array)) throw new SnapshotError(`virtio-console.pending[${i}]: expected bytes`);
      return v.slice();
    });
    const total = pending.reduce((n, b) => n + b.length, 0);
    if (total > Math.max(this.pendingLimit, 64 << 20)) throw new SnapshotError(`virtio-console.pending: ${total} bytes`);
    const ctrlOut = r.array("ctrlOut", MAX_CTRL_PENDING).map((v, i) => {
      if (!(v instanceof Uint8Array) || v.length < CTRL_LEN || v.length > CTRL_LEN + 256) {
        throw new SnapshotError(`virtio-console.ctrlOut[${i}]: expected a control message`);
      }
      return v.slice();
    });
    const rxBytes = r.num("rxBytes", 0);
    const txBytes = r.num("txBytes", 0);
    this.portReady = portReady;
    this.guestOpen = guestOpen;
    this.pending.length = 0;
    for (const b of pending) if (b.length > 0) this.pending.push(b);
    this.headUsed = 0;
    this.pendingBytes = total;
    this.ctrlOut.length = 0;
    this.ctrlOut.push(...ctrlOut);
    this.rxBytes = rxBytes;
    this.txBytes = txBytes;
  }

  queueNotify(queue: number): void {
    switch (queue) {
      case PORT_RXQ: this.deliver(); break;
      case PORT_TXQ: this.transmit(); break;
      case CTRL_RXQ: this.deliverControl(); break;
      case CTRL_TXQ: this.control(); break;
    }
  }

  /** Fills the guest's receive buffers from `pending`. */
  private deliver(): void {
    const t = this.t!;
    const vq = t.queue(PORT_RXQ);
    // Linux throws away what arrives for a port no process has open: hold it until the agent opens the port.
    if (!vq.ready || !this.portReady || !this.guestOpen) return;
    const c = this.chains[PORT_RXQ];
    let n = 0;
    try {
      while (this.pendingBytes > 0 && n < vq.num && t.running && vq.pop(c)) {
        let at = 0;
        while (at < c.writeTotal && this.pending.length > 0) {
          const head = this.pending[0];
          const w = c.copyTo(at, head.subarray(this.headUsed));
          at += w;
          this.headUsed += w;
          if (this.headUsed === head.length) { this.pending.shift(); this.headUsed = 0; }
        }
        vq.push(c.head, at);
        this.pendingBytes -= at;
        this.rxBytes += at;
        n++;
      }
    } finally {
      if (n > 0) t.usedBuffers(vq);
    }
    if (this.wantDrain && this.pendingBytes <= this.pendingLimit / 2) {
      this.wantDrain = false;
      this.onDrain?.();
    }
  }

  /** Takes what the guest wrote to the port. */
  private transmit(): void {
    const t = this.t!;
    const vq = t.queue(PORT_TXQ);
    const c = this.chains[PORT_TXQ];
    let n = 0;
    try {
      // a callback (onData) may have failed the device (a delivery it started met a bad buffer): stop then
      while (n < vq.num && t.running && vq.pop(c)) {
        if (c.readTotal > MAX_TX_CHAIN) throw new VirtqueueError(`virtio-console: transmit chain of ${c.readTotal} bytes`);
        for (let at = 0; at < c.readTotal;) {
          const len = c.copyFrom(at, this.txBuf.subarray(0, Math.min(this.txBuf.length, c.readTotal - at)));
          at += len;
          this.txBytes += len;
          if (this.portReady) this.onData?.(this.txBuf.subarray(0, len));
        }
        vq.push(c.head, 0);
        n++;
      }
    } finally {
      if (n > 0) t.usedBuffers(vq);
    }
  }

  /** Control messages from the driver. */
  private control(): void {
    const t = this.t!;
    const vq = t.queue(CTRL_TXQ);
    const c = this.chains[CTRL_TXQ];
    let n = 0;
    try {
      while (n < vq.num && t.running && vq.pop(c)) {
        if (c.readTotal < CTRL_LEN) throw new VirtqueueError(`virtio-console: control message of ${c.readTotal} bytes`);
        c.copyFrom(0, this.ctrlIn);
        vq.push(c.head, 0);
        n++;
        const dv = new DataView(this.ctrlIn.buffer);
        this.onControl(dv.getUint32(0, true), dv.getUint16(4, true), dv.getUint16(6, true));
      }
    } finally {
      if (n > 0) t.usedBuffers(vq);
    }
    if (t.running) this.deliverControl();
  }

  private onControl(id: number, event: number, value: number): void {
    switch (event) {
      case CONSOLE_CTRL.DEVICE_READY:
        if (value === 1) this.queueControl(0, CONSOLE_CTRL.PORT_ADD, 0);
        break;
      case CONSOLE_CTRL.PORT_READY:
        if (id !== 0) break; // no such port: nothing to answer
        if (value !== 1) { this.portReady = false; break; }
        this.portReady = true;
        this.queueControl(0, CONSOLE_CTRL.PORT_NAME, 0, new TextEncoder().encode(this.name));
        this.queueControl(0, CONSOLE_CTRL.PORT_OPEN, 1);
        break;
      case CONSOLE_CTRL.PORT_OPEN: {
        if (id !== 0) break;
        const open = value === 1;
        const was = this.guestOpen;
        this.guestOpen = open;
        // What was on its way to a process that closed the port is for requests it will never answer: drop it, so
        // that the next process starts on a clean stream. (The port is closed first: what the host sends from
        // inside a callback waits for the next process.)
        const waited = !open && this.dropPending();
        if (open !== was) this.onGuestOpen?.(open);
        if (waited) this.onDrain?.();
        if (open) this.deliver();
        break;
      }
      default:
        break; // events a driver does not send, or ones this device does not need (RESIZE)
    }
  }

  /** Drops the host bytes not yet delivered; returns whether the host waits to be told there is room (the caller
   *  calls onDrain once its other callbacks are done). */
  private dropPending(): boolean {
    this.pending.length = 0;
    this.headUsed = 0;
    this.pendingBytes = 0;
    const waited = this.wantDrain;
    this.wantDrain = false;
    return waited;
  }

  private queueControl(id: number, event: number, value: number, payload?: Uint8Array): void {
    // A driver that keeps asking (DEVICE_READY over and over) cannot grow this without bound.
    if (this.ctrlOut.length >= MAX_CTRL_PENDING) throw new VirtqueueError("virtio-console: control messages not taken by the driver");
    const m = new Uint8Array(CTRL_LEN + (payload?.length ?? 0));
    const dv = new DataView(m.buffer);
    dv.setUint32(0, id, true);
    dv.setUint16(4, event, true);
    dv.setUint16(6, value, true);
    if (payload) m.set(payload, CTRL_LEN);
    this.ctrlOut.push(m);
  }

  /** Hands queued control messages to the driver's control receive buffers. */
  private deliverControl(): void {
    const t = this.t!;
    const vq = t.queue(CTRL_RXQ);
    if (!vq.ready) return;
    const c = this.chains[CTRL_RXQ];
    let n = 0;
    try {
      while (this.ctrlOut.length > 0 && vq.pop(c)) {
        const m = this.ctrlOut[0];
        if (c.writeTotal < m.length) throw new VirtqueueError(`virtio-console: control buffer of ${c.writeTotal} bytes`);
        c.copyTo(0, m);
        vq.push(c.head, m.length);
        this.ctrlOut.shift();
        n++;
      }
    } finally {
      if (n > 0) t.usedBuffers(vq);
    }
  }
}
