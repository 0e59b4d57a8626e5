// The machine's MMIO bus: devices mapped at guest physical addresses. The hart stops on every access outside RAM;
// the machine looks the address up here and answers with a value, or with an access fault when nothing is mapped.

/** A memory-mapped device. Accesses are 1, 2 or 4 bytes at an offset inside the device's window; 8-byte
 *  accesses are split into two 4-byte ones (low word first) by the bus. */
export interface MmioDevice {
  /** bytes of address space the device decodes */
  readonly size: number;
  read(offset: number, size: 1 | 2 | 4): number;
  write(offset: number, size: 1 | 2 | 4, value: number): void;
}

interface Mapping { base: bigint; end: bigint; device: MmioDevice; name: string }

export class MmioBus {
  private readonly maps: Mapping[] = [];

  map(base: bigint, device: MmioDevice, name: string): void {
    const end = base + BigInt(device.size);
    for (const m of this.maps) {
      if (base < m.end && m.base < end) throw new Error(`${name} overlaps ${m.name}`);
    }
    this.maps.push({ base, end, device, name });
  }

  find(addr: bigint): Mapping | undefined {
    for (const m of this.maps) if (addr >= m.base && addr < m.end) return m;
    return undefined;
  }

  /** Returns the value read (zero-extended), or undefined when no device claims the address. */
  read(addr: bigint, size: number): bigint | undefined {
    const m = this.find(addr);
    if (!m || addr + BigInt(size) > m.end) return undefined;
    const off = Number(addr - m.base);
    if (size === 8) {
      const lo = m.device.read(off, 4) >>> 0;
      const hi = m.device.read(off + 4, 4) >>> 0;
      return (BigInt(hi) << 32n) | BigInt(lo);
    }
    return BigInt(m.device.read(off, size as 1 | 2 | 4) >>> 0);
  }

  /** Returns false when no device claims the address. */
  write(addr: bigint, size: number, value: bigint): boolean {
    const m = this.find(addr);
    if (!m || addr + BigInt(size) > m.end) return false;
    const off = Number(addr - m.base);
    if (size === 8) {
      m.device.write(off, 4, Number(value & 0xffffffffn));
      m.device.write(off + 4, 4, Number((value >> 32n) & 0xffffffffn));
      return true;
    }
    m.device.write(off, size as 1 | 2 | 4, Number(value & 0xffffffffn));
    return true;
  }
}
