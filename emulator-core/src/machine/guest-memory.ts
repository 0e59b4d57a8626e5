// Checked access to guest RAM for devices (DMA). Every address and length a guest hands a device goes through
// here: anything outside RAM throws GuestMemoryError, which the device turns into its failed state. A hostile
// guest can never make a device touch host memory outside its own RAM.

export class GuestMemoryError extends Error {}

export class GuestMemory {
  readonly base: bigint;
  readonly size: number;
  readonly bytes: Uint8Array;
  private readonly dv: DataView;

  constructor(buffer: ArrayBufferLike, offset: number, size: number, base: bigint) {
    this.base = base;
    this.size = size;
    this.bytes = new Uint8Array(buffer, offset, size);
    this.dv = new DataView(buffer, offset, size);
  }

  /** Offset into RAM of [addr, addr + len), or throws. */
  check(addr: bigint, len: number): number {
    const off = addr - this.base;
    if (len < 0 || off < 0n || off + BigInt(len) > BigInt(this.size)) {
      throw new GuestMemoryError(`guest address 0x${addr.toString(16)} (+${len}) is outside RAM`);
    }
    return Number(off);
  }

  /** While set (live migration), device writes to RAM are reported here as [offset, length) ranges. */
  onWrite: ((off: number, len: number) => void) | undefined;
  /** Every device write to RAM is reported here too: the hart drops code it decoded or compiled from those pages
   *  (Hart.watchDeviceWrites). */
  onCodeWrite: ((off: number, len: number) => void) | undefined;

  /** A device wrote (or is about to write) RAM [off, off + len) behind the hart's back: reported to onWrite and
   *  onCodeWrite. Every device write must pass here or through the setters below; the virtqueue marks the
   *  device-writable buffers of each chain it pops and the used-ring entries it pushes. */
  markWritten(off: number, len: number): void {
    this.onWrite?.(off, len);
    this.onCodeWrite?.(off, len);
  }

  /** A view of guest RAM (no copy): writes through it land in the guest (mark them with markWritten). */
  view(addr: bigint, len: number): Uint8Array {
    const off = this.check(addr, len);
    return this.bytes.subarray(off, off + len);
  }

  private written(addr: bigint, len: number): number {
    const off = this.check(addr, len);
    this.markWritten(off, len);
    return off;
  }

  read(addr: bigint, dst: Uint8Array): void { dst.set(this.view(addr, dst.length)); }
  write(addr: bigint, src: Uint8Array): void { const off = this.written(addr, src.length); this.bytes.set(src, off); }

  u8(addr: bigint): number { return this.dv.getUint8(this.check(addr, 1)); }
  u16(addr: bigint): number { return this.dv.getUint16(this.check(addr, 2), true); }
  u32(addr: bigint): number { return this.dv.getUint32(this.check(addr, 4), true); }
  u64(addr: bigint): bigint { return this.dv.getBigUint64(this.check(addr, 8), true); }
  setU8(addr: bigint, v: number): void { this.dv.setUint8(this.written(addr, 1), v); }
  setU16(addr: bigint, v: number): void { this.dv.setUint16(this.written(addr, 2), v, true); }
  setU32(addr: bigint, v: number): void { this.dv.setUint32(this.written(addr, 4), v, true); }
  setU64(addr: bigint, v: bigint): void { this.dv.setBigUint64(this.written(addr, 8), v, true); }
}

/** An interrupt line into the PLIC: level-triggered. */
export interface IrqLine {
  set(level: boolean): void;
}
