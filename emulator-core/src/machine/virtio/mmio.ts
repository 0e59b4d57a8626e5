// virtio-mmio transport, virtio 1.x "modern" register layout (Version 2), section 4.2 of the spec.
//
// Exported API
//   new VirtioMmio(mem: GuestMemory, irq: IrqLine, device: VirtioDevice, opts?: VirtioMmioOptions)
//     An MmioDevice of size 0x1000: map it on the MmioBus and describe it in the device tree
//     (compatible = "virtio,mmio", reg = <base 0x1000>, one PLIC interrupt).
//     opts.queueNumMax (default 256) is the QueueNumMax every queue reports; opts.onError(msg) is told why the
//     device entered DEVICE_NEEDS_RESET. Public state for inspection: status, failureReason, interruptStatus,
//     driverFeatures, offeredFeatures, queues.
//   Devices (each implements VirtioDevice; wrap exactly one in a VirtioMmio):
//     new VirtioBlk(backend: BlockBackend, opts?: { readOnly?, serial?, onAsyncCompletion? }) — blk.ts (ID 2)
//       blk.inflight, blk.whenIdle(): requests still with an asynchronous backend
//     new VirtioNet({ mac?, backend?, linkUp?, backlog? })                     — net.ts (device ID 1)
//       net.receive(frame) delivers one Ethernet frame; net.setLinkUp(up); backend.send(frame) for tx
//     new VirtioRng(source?: EntropySource)                                    — rng.ts (device ID 4)
//     new VirtioConsole({ name?, pendingLimit? })   — console.ts (device ID 3): one named port, the agent's channel
//       console.send(bytes) to the guest, console.onData(bytes) from it
//   Backends (backends.ts): BlockBackend, MemoryBlockBackend, NetBackend, EntropySource, cryptoEntropy;
//     Node only: FileBlockBackend in src/node/file-block-backend.ts.
//
// Robustness: read() and write() never throw. Anything the guest gets wrong (ring or buffer outside RAM, loops,
// bad sizes, notify on an unready queue, truncated request headers, a Status write that clears a bit) stops the
// device: Status reads with DEVICE_NEEDS_RESET (0x40), InterruptStatus bit 1 (config change) is raised, and
// nothing is processed until the driver writes 0 to Status. Guest RAM is only touched through GuestMemory-checked
// offsets.
// What the driver is waiting for is then completed with errors where the device can do that safely
// (VirtioDevice.failRequests): virtio-blk answers its requests in flight, and the ones the driver publishes while the
// device stays failed, with VIRTIO_BLK_S_IOERR; the balloon acknowledges inflate/deflate buffers without acting on
// them. (Linux 6.1 does not handle NEEDS_RESET: without this its I/O would hang in D state.)
//
// Offered transport features: VIRTIO_F_VERSION_1 (always) and VIRTIO_F_INDIRECT_DESC. No EVENT_IDX, no packed
// rings. The avail ring's NO_INTERRUPT flag is honoured.
//
// Snapshots: saveState() holds the transport registers, every queue and the device's own state (device.saveState);
// restoreState() checks all of it (ready queues' rings against guest RAM, as QueueReady does) before changing
// anything, then drives the interrupt line to the restored level. Guest RAM must be restored first.

import type { MmioDevice } from "../bus.ts";
import type { GuestMemory, IrqLine } from "../guest-memory.ts";
import { SnapshotError, StateReader, type StateValue, type Stateful } from "../../snapshot/state-value.ts";
import { Virtqueue } from "./queue.ts";

export const VIRTIO_MMIO_MAGIC = 0x74726976; // "virt"
export const VIRTIO_MMIO_VERSION = 2;
export const VIRTIO_VENDOR_ID = 0x53495654; // "TVIS" in memory order

export const VIRTIO_ID_NET = 1;
export const VIRTIO_ID_BLOCK = 2;
export const VIRTIO_ID_CONSOLE = 3;
export const VIRTIO_ID_RNG = 4;

export const VIRTIO_F_INDIRECT_DESC = 1n << 28n;
export const VIRTIO_F_EVENT_IDX = 1n << 29n;
export const VIRTIO_F_VERSION_1 = 1n << 32n;

export const STATUS_ACKNOWLEDGE = 1;
export const STATUS_DRIVER = 2;
export const STATUS_DRIVER_OK = 4;
export const STATUS_FEATURES_OK = 8;
export const STATUS_NEEDS_RESET = 0x40;
export const STATUS_FAILED = 0x80;

export const INT_USED_BUFFER = 1;
export const INT_CONFIG_CHANGE = 2;

/** Longest failure reason kept in a snapshot. */
const MAX_REASON = 1024;

/** Register offsets (virtio-mmio, Version 2). */
export const REG = {
  MagicValue: 0x000,
  Version: 0x004,
  DeviceID: 0x008,
  VendorID: 0x00c,
  DeviceFeatures: 0x010,
  DeviceFeaturesSel: 0x014,
  DriverFeatures: 0x020,
  DriverFeaturesSel: 0x024,
  QueueSel: 0x030,
  QueueNumMax: 0x034,
  QueueNum: 0x038,
  QueueReady: 0x044,
  QueueNotify: 0x050,
  InterruptStatus: 0x060,
  InterruptACK: 0x064,
  Status: 0x070,
  QueueDescLow: 0x080,
  QueueDescHigh: 0x084,
  QueueDriverLow: 0x090,
  QueueDriverHigh: 0x094,
  QueueDeviceLow: 0x0a0,
  QueueDeviceHigh: 0x0a4,
  SHMSel: 0x0ac,
  SHMLenLow: 0x0b0,
  SHMLenHigh: 0x0b4,
  SHMBaseLow: 0x0b8,
  SHMBaseHigh: 0x0bc,
  QueueReset: 0x0c0,
  ConfigGeneration: 0x0fc,
  Config: 0x100,
} as const;

/** What a device sees of its transport. */
export interface VirtioTransport {
  readonly mem: GuestMemory;
  /** features the driver accepted (valid once FEATURES_OK is set) */
  readonly driverFeatures: bigint;
  /** DRIVER_OK is set, the driver has not FAILED and the device does not need a reset: buffers may be used */
  readonly running: boolean;
  queue(index: number): Virtqueue;
  /** Used buffers were added to `q`: raise the used-buffer interrupt unless the driver suppressed it. */
  usedBuffers(q: Virtqueue): void;
  /** The device changed its config space: bump ConfigGeneration and raise the config-change interrupt. */
  configChanged(): void;
  /** The guest broke the rules: enter DEVICE_NEEDS_RESET. */
  fail(reason: unknown): void;
}

/**
 * A virtio device type behind a transport. saveState/restoreState cover the device's own state (the transport saves
 * its registers and queues); restoreState runs before the transport's queues are restored and must change nothing
 * when it throws.
 */
export interface VirtioDevice extends Stateful {
  readonly deviceId: number;
  /** device-type feature bits; the transport adds VERSION_1 and INDIRECT_DESC */
  readonly features: bigint;
  readonly queueCount: number;
  /** device-specific config space (little-endian), read by the driver at 0x100 */
  readonly config: Uint8Array;
  attach(t: VirtioTransport): void;
  /** the driver reset the device (status 0); queues are already reset by the transport */
  reset(): void;
  /** the driver notified a ready queue while the device is running; may throw VirtqueueError/GuestMemoryError */
  queueNotify(queue: number): void;
  /** config space write of 1/2/4 bytes (default: ignored) */
  writeConfig?(offset: number, size: 1 | 2 | 4, value: number): void;
  /**
   * The device is in DEVICE_NEEDS_RESET after DRIVER_OK: complete, with an error where the device type has one,
   * what the driver would otherwise wait for forever, as far as that can be done safely (optional; default:
   * nothing). Called once when the device fails, and again on each notify of a ready queue (`queue`) while it stays
   * failed. Must not throw, and must not consume buffers to do the device's normal work.
   */
  failRequests?(queue?: number): void;
}

export interface VirtioMmioOptions {
  queueNumMax?: number;
  onError?: (message: string) => void;
}

export class VirtioMmio implements MmioDevice, VirtioTransport, Stateful {
  readonly size = 0x1000;
  readonly queues: Virtqueue[];
  readonly offeredFeatures: bigint;
  status = 0;
  driverFeatures = 0n;
  interruptStatus = 0;
  configGeneration = 0;
  /** why the device needs a reset, or null */
  failureReason: string | null = null;

  private deviceFeaturesSel = 0;
  private driverFeaturesSel = 0;
  private queueSel = 0;
  private irqLevel = false;
  /** inside device.failRequests */
  private failing = false;
  private readonly onError?: (message: string) => void;

  constructor(readonly mem: GuestMemory, private readonly irq: IrqLine, readonly device: VirtioDevice,
              opts: VirtioMmioOptions = {}) {
    const max = opts.queueNumMax ?? 256;
    if (max < 1 || max > 32768 || (max & (max - 1)) !== 0) throw new Error(`queueNumMax ${max} is not a power of two <= 32768`);
    this.onError = opts.onError;
    this.queues = [];
    for (let i = 0; i < device.queueCount; i++) this.queues.push(new Virtqueue(mem, i, max));
    this.offeredFeatures = device.features | VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC;
    device.attach(this);
  }

  get running(): boolean {
    return (this.status & (STATUS_DRIVER_OK | STATUS_FAILED)) === STATUS_DRIVER_OK && this.failureReason === null;
  }

  get needsReset(): boolean { return this.failureReason !== null; }

  queue(index: number): Virtqueue { return this.queues[index]; }

  usedBuffers(q: Virtqueue): void {
    if (q.interruptSuppressed()) return;
    this.interruptStatus |= INT_USED_BUFFER;
    this.updateIrq();
  }

  configChanged(): void {
    this.configGeneration = (this.configGeneration + 1) >>> 0;
    if (this.status & STATUS_DRIVER_OK) {
      this.interruptStatus |= INT_CONFIG_CHANGE;
      this.updateIrq();
    }
  }

  fail(reason: unknown): void {
    const first = this.failureReason === null;
    if (first) {
      const msg = reason instanceof Error ? reason.message : String(reason);
      this.failureReason = msg;
      this.onError?.(msg);
    }
    this.configGeneration = (this.configGeneration + 1) >>> 0;
    this.interruptStatus |= INT_CONFIG_CHANGE;
    this.updateIrq();
    if (first) this.failRequests();
  }

  /**
   * NEEDS_RESET with DRIVER_OK (after FEATURES_OK) set and the driver not FAILED: let the device complete what is
   * in flight with errors (Linux 6.1 ignores NEEDS_RESET, and its I/O would otherwise wait forever). The spec
   * allows it: a driver "can't assume requests in flight will be completed if DEVICE_NEEDS_RESET is set, nor can it
   * assume that they have not been completed" (virtio 1.x, 2.1.1).
   */
  private failRequests(queue?: number): void {
    const ok = STATUS_DRIVER_OK | STATUS_FEATURES_OK;
    if (this.failing || (this.status & (ok | STATUS_FAILED)) !== ok || !this.device.failRequests) return;
    this.failing = true;
    try {
      this.device.failRequests(queue);
    } catch {
      // nothing more can be done safely; the device stays in NEEDS_RESET
    } finally {
      this.failing = false;
    }
  }

  saveState(): StateValue {
    return {
      // what this slot holds, so a snapshot of another device is refused rather than misread
      deviceId: this.device.deviceId,
      offeredFeatures: this.offeredFeatures,
      status: this.status,
      driverFeatures: this.driverFeatures,
      deviceFeaturesSel: this.deviceFeaturesSel,
      driverFeaturesSel: this.driverFeaturesSel,
      queueSel: this.queueSel,
      interruptStatus: this.interruptStatus,
      configGeneration: this.configGeneration,
      failureReason: this.failureReason === null ? null : this.failureReason.slice(0, MAX_REASON),
      queues: this.queues.map((q) => q.saveState()),
      device: this.device.saveState(),
    };
  }

  restoreState(state: StateValue): void {
    const r = new StateReader(state, "virtio-mmio");
    this.checkIdentity(r);
    const status = r.num("status", 0, 0xff);
    const driverFeatures = r.big("driverFeatures");
    const deviceFeaturesSel = r.num("deviceFeaturesSel", 0, 0xffffffff);
    const driverFeaturesSel = r.num("driverFeaturesSel", 0, 0xffffffff);
    const queueSel = r.num("queueSel", 0, 0xffffffff);
    const interruptStatus = r.num("interruptStatus", 0, INT_USED_BUFFER | INT_CONFIG_CHANGE);
    const configGeneration = r.num("configGeneration", 0, 0xffffffff);
    const failureReason = r.raw("failureReason") === null ? null : r.str("failureReason", MAX_REASON);
    this.checkStatus(status, driverFeatures, failureReason);
    const queues = r.array("queues", this.queues.length);
    if (queues.length !== this.queues.length) {
      throw new SnapshotError(`virtio-mmio.queues: expected ${this.queues.length} queues, got ${queues.length}`);
    }
    const commits = queues.map((q, i) => this.queues[i].prepareRestore(q, `virtio-mmio.queues[${i}]`));
    this.device.restoreState(r.raw("device"));
    this.status = status;
    this.driverFeatures = driverFeatures;
    this.deviceFeaturesSel = deviceFeaturesSel;
    this.driverFeaturesSel = driverFeaturesSel;
    this.queueSel = queueSel;
    this.interruptStatus = interruptStatus;
    this.configGeneration = configGeneration;
    this.failureReason = failureReason;
    for (const commit of commits) commit();
    // the PLIC was restored with its own copy of the level; drive it anyway, the device is the line's source
    this.irqLevel = interruptStatus !== 0;
    this.irq.set(this.irqLevel);
  }

  private checkIdentity(r: StateReader): void {
    const id = r.num("deviceId", 0, 0xffffffff);
    const features = r.big("offeredFeatures");
    if (id !== this.device.deviceId || features !== this.offeredFeatures) {
      throw new SnapshotError(`virtio-mmio.deviceId: the snapshot holds device ${id} (features 0x${features.toString(16)}), ` +
        `this slot device ${this.device.deviceId} (features 0x${this.offeredFeatures.toString(16)})`);
    }
  }

  /** Only what setStatus can leave behind: FEATURES_OK with an acceptable feature set, DRIVER_OK after it. */
  private checkStatus(status: number, features: bigint, failureReason: string | null): void {
    if (status & STATUS_NEEDS_RESET) throw new SnapshotError("virtio-mmio.status: NEEDS_RESET is not a stored bit");
    if ((status & STATUS_FEATURES_OK) && ((features & ~this.offeredFeatures) !== 0n || (features & VIRTIO_F_VERSION_1) === 0n)) {
      throw new SnapshotError(`virtio-mmio.driverFeatures: 0x${features.toString(16)} was not acceptable for FEATURES_OK`);
    }
    if ((status & STATUS_DRIVER_OK) && !(status & STATUS_FEATURES_OK) && failureReason === null) {
      throw new SnapshotError("virtio-mmio.status: DRIVER_OK without FEATURES_OK on a device that has not failed");
    }
  }

  private updateIrq(): void {
    const level = this.interruptStatus !== 0;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.irq.set(level);
    }
  }

  read(offset: number, size: 1 | 2 | 4): number {
    try {
      if (offset >= REG.Config) return this.readConfig(offset - REG.Config, size);
      if (size !== 4 || (offset & 3) !== 0) return 0;
      const q = this.queues[this.queueSel];
      switch (offset) {
        case REG.MagicValue: return VIRTIO_MMIO_MAGIC;
        case REG.Version: return VIRTIO_MMIO_VERSION;
        case REG.DeviceID: return this.device.deviceId;
        case REG.VendorID: return VIRTIO_VENDOR_ID;
        case REG.DeviceFeatures:
          return this.deviceFeaturesSel < 2 ? Number((this.offeredFeatures >> BigInt(32 * this.deviceFeaturesSel)) & 0xffffffffn) : 0;
        case REG.QueueNumMax: return q ? q.maxSize : 0;
        case REG.QueueReady: return q?.ready ? 1 : 0;
        case REG.InterruptStatus: return this.interruptStatus;
        case REG.Status: return this.status | (this.failureReason !== null ? STATUS_NEEDS_RESET : 0);
        case REG.SHMLenLow: case REG.SHMLenHigh: case REG.SHMBaseLow: case REG.SHMBaseHigh:
          return 0xffffffff; // no shared memory regions (length ~0)
        case REG.ConfigGeneration: return this.configGeneration;
        default: return 0;
      }
    } catch (e) {
      this.fail(e);
      return 0;
    }
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    try {
      if (offset >= REG.Config) {
        const off = offset - REG.Config;
        if (off + size <= this.device.config.length) this.device.writeConfig?.(off, size, value >>> 0);
        return;
      }
      if (size !== 4 || (offset & 3) !== 0) return;
      this.writeReg(offset, value >>> 0);
    } catch (e) {
      this.fail(e);
    }
  }

  private readConfig(off: number, size: number): number {
    const c = this.device.config;
    if (off + size > c.length) return 0;
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + c[off + i];
    return v;
  }

  private writeReg(offset: number, v: number): void {
    const q = this.queues[this.queueSel];
    switch (offset) {
      case REG.DeviceFeaturesSel: this.deviceFeaturesSel = v; return;
      case REG.DriverFeaturesSel: this.driverFeaturesSel = v; return;
      case REG.DriverFeatures: {
        if (this.status & STATUS_FEATURES_OK) return;
        if (this.driverFeaturesSel === 0) this.driverFeatures = (this.driverFeatures & ~0xffffffffn) | BigInt(v);
        else if (this.driverFeaturesSel === 1) this.driverFeatures = (this.driverFeatures & 0xffffffffn) | (BigInt(v) << 32n);
        return;
      }
      case REG.QueueSel: this.queueSel = v; return;
      case REG.QueueNum: {
        if (!q || q.ready) return;
        if (v === 0 || v > q.maxSize || (v & (v - 1)) !== 0) {
          this.fail(`queue ${this.queueSel}: QueueNum ${v} is not a power of two in [1, ${q.maxSize}]`);
          return;
        }
        q.num = v;
        return;
      }
      case REG.QueueReady: {
        if (v & 1) {
          if (!q) { this.fail(`QueueReady on nonexistent queue ${this.queueSel}`); return; }
          if (!q.ready) q.enable();
        } else if (q) {
          q.ready = false;
        }
        return;
      }
      case REG.QueueNotify: this.notify(v); return;
      case REG.InterruptACK:
        this.interruptStatus &= ~v;
        this.updateIrq();
        return;
      case REG.Status: this.setStatus(v & 0xff); return;
      case REG.QueueDescLow: case REG.QueueDescHigh:
      case REG.QueueDriverLow: case REG.QueueDriverHigh:
      case REG.QueueDeviceLow: case REG.QueueDeviceHigh: {
        if (!q || q.ready) return;
        const high = (offset & 4) !== 0;
        const set = (old: bigint) => high ? (old & 0xffffffffn) | (BigInt(v) << 32n) : (old & ~0xffffffffn) | BigInt(v);
        if (offset < REG.QueueDriverLow) q.descAddr = set(q.descAddr);
        else if (offset < REG.QueueDeviceLow) q.driverAddr = set(q.driverAddr);
        else q.deviceAddr = set(q.deviceAddr);
        return;
      }
      default: return;
    }
  }

  private notify(index: number): void {
    if (this.status === 0) return;
    const q = this.queues[index];
    if (this.failureReason !== null) {
      if (q?.ready) this.failRequests(index);
      return;
    }
    if (!q || !q.ready) {
      this.fail(`notify on ${q ? "unready" : "nonexistent"} queue ${index}`);
      return;
    }
    if (!this.running) return; // buffers are not consumed before DRIVER_OK
    this.device.queueNotify(index);
  }

  private setStatus(v: number): void {
    if (v === 0) { this.reset(); return; }
    v &= ~STATUS_NEEDS_RESET;
    const old = this.status;
    // Only a reset clears status bits (virtio 1.x, 2.1.2: the driver MUST NOT clear a device status bit). Taking
    // FEATURES_OK back from a running device would leave it running on features it never accepted, a state no
    // device goes through and one a snapshot of the machine would refuse to restore.
    if (old & ~v) {
      this.fail(`Status 0x${v.toString(16)} clears bits 0x${(old & ~v).toString(16)} of 0x${old.toString(16)} without a reset`);
      return;
    }
    if ((v & STATUS_FEATURES_OK) && !(old & STATUS_FEATURES_OK)) {
      const f = this.driverFeatures;
      if ((f & ~this.offeredFeatures) !== 0n || (f & VIRTIO_F_VERSION_1) === 0n) v &= ~STATUS_FEATURES_OK;
    }
    this.status = v;
    if ((v & STATUS_DRIVER_OK) && !(old & STATUS_DRIVER_OK)) {
      if (!(v & STATUS_FEATURES_OK)) { this.fail("DRIVER_OK set without FEATURES_OK"); return; }
      // the driver may have queued buffers before DRIVER_OK: look at every ready queue once
      for (let i = 0; i < this.queues.length && this.running; i++) {
        if (this.queues[i].ready) this.device.queueNotify(i);
      }
    }
  }

  /** Device reset (Status = 0): queues, features, interrupts, NEEDS_RESET. */
  reset(): void {
    this.status = 0;
    this.failureReason = null;
    this.driverFeatures = 0n;
    this.deviceFeaturesSel = this.driverFeaturesSel = this.queueSel = 0;
    this.interruptStatus = 0;
    for (const q of this.queues) q.reset();
    this.device.reset();
    this.updateIrq();
  }
}
