// virtio-blk (device ID 2), one request queue. Spec section 5.2.
//
// A request is a chain: 16-byte header {type u32, reserved u32, sector u64} and, for writes, the data (device-
// readable); then, for reads, the data buffers and finally one status byte (device-writable). Data goes straight
// between guest RAM views and the backend, with no intermediate copy.

import type { BlockBackend } from "./backends.ts";
import { VIRTIO_ID_BLOCK, type VirtioDevice, type VirtioTransport } from "./mmio.ts";
import { DescChain, VirtqueueError } from "./queue.ts";

export const VIRTIO_BLK_F_SEG_MAX = 1n << 2n;
export const VIRTIO_BLK_F_RO = 1n << 5n;
export const VIRTIO_BLK_F_FLUSH = 1n << 9n;

export const VIRTIO_BLK_T_IN = 0;
export const VIRTIO_BLK_T_OUT = 1;
export const VIRTIO_BLK_T_FLUSH = 4;
export const VIRTIO_BLK_T_GET_ID = 8;

export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;

const SECTOR = 512;
const ID_BYTES = 20;

export interface VirtioBlkOptions {
  /** refuse writes and offer VIRTIO_BLK_F_RO (default: backend.readOnly ?? false) */
  readOnly?: boolean;
  /** answer to VIRTIO_BLK_T_GET_ID (up to 20 bytes of ASCII; default "tabvisor") */
  serial?: string;
  /** seg_max advertised in config (default 126) */
  segMax?: number;
}

export class VirtioBlk implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_BLOCK;
  readonly features: bigint;
  readonly queueCount = 1;
  readonly config = new Uint8Array(64);
  readonly readOnly: boolean;

  // stats (never reset; the dashboard reads them)
  reads = 0;
  writes = 0;
  flushes = 0;
  readBytes = 0;
  writeBytes = 0;
  /** requests completed with IOERR or UNSUPP */
  errors = 0;

  private t: VirtioTransport | null = null;
  private chain: DescChain | null = null;
  private readonly hdr = new Uint8Array(16);
  private readonly hdrView = new DataView(this.hdr.buffer);
  private readonly statusByte = new Uint8Array(1);
  private readonly id = new Uint8Array(ID_BYTES);

  constructor(readonly backend: BlockBackend, opts: VirtioBlkOptions = {}) {
    if (backend.size % SECTOR !== 0) throw new Error(`disk size ${backend.size} is not a multiple of ${SECTOR}`);
    this.readOnly = opts.readOnly ?? backend.readOnly ?? false;
    this.features = VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_FLUSH | (this.readOnly ? VIRTIO_BLK_F_RO : 0n);
    const cv = new DataView(this.config.buffer);
    cv.setBigUint64(0, BigInt(backend.size / SECTOR), true); // capacity
    cv.setUint32(12, opts.segMax ?? 126, true);              // seg_max
    const serial = opts.serial ?? "tabvisor";
    for (let i = 0; i < Math.min(serial.length, ID_BYTES); i++) this.id[i] = serial.charCodeAt(i) & 0x7f;
  }

  /** capacity in 512-byte sectors */
  get capacity(): number { return this.backend.size / SECTOR; }

  attach(t: VirtioTransport): void {
    this.t = t;
    this.chain = new DescChain(t.mem.bytes);
  }

  reset(): void {}

  queueNotify(queue: number): void {
    const t = this.t!;
    const vq = t.queue(queue);
    const c = this.chain!;
    let n = 0;
    try {
      // at most one ring's worth per notify; a driver that keeps adding notifies again
      while (n < vq.num && vq.pop(c)) {
        vq.push(c.head, this.request(c));
        n++;
      }
    } finally {
      if (n > 0) t.usedBuffers(vq);
    }
  }

  /** Executes one request; returns the number of bytes written into the chain. */
  private request(c: DescChain): number {
    if (c.readTotal < 16) throw new VirtqueueError(`virtio-blk: request header of ${c.readTotal} bytes`);
    if (c.writeTotal < 1) throw new VirtqueueError("virtio-blk: request without a status byte");
    c.copyFrom(0, this.hdr);
    const type = this.hdrView.getUint32(0, true);
    const sector = this.hdrView.getUint32(8, true) + this.hdrView.getUint32(12, true) * 0x1_0000_0000;
    const dataIn = c.writeTotal - 1;
    let status = VIRTIO_BLK_S_OK;
    let written = 1;
    const b = this.backend;
    try {
      switch (type) {
        case VIRTIO_BLK_T_IN: {
          const pos = sector * SECTOR;
          if (dataIn % SECTOR !== 0 || pos + dataIn > b.size) { status = VIRTIO_BLK_S_IOERR; break; }
          c.eachWritable(0, dataIn, (v, p) => b.read(pos + p, v));
          this.reads++;
          this.readBytes += dataIn;
          written += dataIn;
          break;
        }
        case VIRTIO_BLK_T_OUT: {
          const len = c.readTotal - 16;
          const pos = sector * SECTOR;
          if (this.readOnly || len % SECTOR !== 0 || pos + len > b.size) { status = VIRTIO_BLK_S_IOERR; break; }
          c.eachReadable(16, len, (v, p) => b.write(pos + p, v));
          this.writes++;
          this.writeBytes += len;
          break;
        }
        case VIRTIO_BLK_T_FLUSH:
          if (!this.readOnly) b.flush();
          this.flushes++;
          break;
        case VIRTIO_BLK_T_GET_ID:
          written += c.copyTo(0, this.id.subarray(0, Math.min(ID_BYTES, dataIn)));
          break;
        default:
          status = VIRTIO_BLK_S_UNSUPP;
      }
    } catch {
      status = VIRTIO_BLK_S_IOERR; // the backend failed (host I/O error)
    }
    if (status !== VIRTIO_BLK_S_OK) { this.errors++; written = 1; }
    this.statusByte[0] = status;
    c.copyTo(dataIn, this.statusByte);
    return written;
  }
}
