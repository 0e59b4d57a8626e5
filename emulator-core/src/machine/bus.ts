// The machine's MMIO bus: devices mapped at guest physical addresses. The hart stops on every access outside RAM;
// the machine looks the address up here and answers with a value, or with an access fault when nothing is mapped.
//
// Every stop costs the guest time (a console line takes about ten), so the machine's own path, access(), works on
// numbers (device addresses are far below 2^53) and first tries the device it found last: a guest talking to a
// device mostly talks to it several times in a row. read() and write() take BigInts, for tests and tools.

/** A memory-mapped device. Accesses are 1, 2 or 4 bytes at an offset inside the device's window; 8-byte
 *  accesses are split into two 4-byte ones (low word first) by the bus. */
export interface MmioDevice {
  /** bytes of address space the device decodes */
  readonly size: number;
  read(offset: number, size: 1 | 2 | 4): number;
  write(offset: number, size: 1 | 2 | 4, value: number): void;
}

interface Mapping { base: number; end: number; device: MmioDevice; name: string }

/** Where access() puts a load's value: the low and high 32 bits, unsigned. */
export interface MmioValue { lo: number; hi: number }

export class MmioBus {
  private readonly maps: Mapping[] = [];
  private last: Mapping | undefined;

  map(base: bigint, device: MmioDevice, name: string): void {
    const end = base + BigInt(device.size);
    if (end > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${name} is mapped beyond 2^53`);
    const b = Number(base), e = Number(end);
    for (const m of this.maps) {
      if (b < m.end && m.base < e) throw new Error(`${name} overlaps ${m.name}`);
    }
    this.maps.push({ base: b, end: e, device, name });
  }

  /** The mapping that holds the whole access [addr, addr + size), or undefined. */
  private lookup(addr: number, size: number): Mapping | undefined {
    let m = this.last;
    if (m === undefined || addr < m.base || addr >= m.end) {
      m = undefined;
      for (const c of this.maps) if (addr >= c.base && addr < c.end) { m = c; break; }
      if (m === undefined) return undefined;
      this.last = m;
    }
    return addr + size <= m.end ? m : undefined;
  }

  /** A load (store false: `out` gets the value, zero-extended) or a store of size bytes (value in lo, and hi for
   *  8 bytes) at a guest physical address. Returns false when no device claims the whole access. */
  access(addr: number, size: number, store: boolean, lo: number, hi: number, out: MmioValue): boolean {
    const m = this.lookup(addr, size);
    if (m === undefined) return false;
    const off = addr - m.base, dev = m.device;
    if (store) {
      if (size === 8) { dev.write(off, 4, lo); dev.write(off + 4, 4, hi); } else dev.write(off, size as 1 | 2 | 4, lo);
      return true;
    }
    if (size === 8) { out.lo = dev.read(off, 4) >>> 0; out.hi = dev.read(off + 4, 4) >>> 0; }
    else { out.lo = dev.read(off, size as 1 | 2 | 4) >>> 0; out.hi = 0; }
    return true;
  }

  private readonly value: MmioValue = { lo: 0, hi: 0 };

  /** Returns the value read (zero-extended), or undefined when no device claims the address. */
  read(addr: bigint, size: number): bigint | undefined {
    if (addr > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
    if (!this.access(Number(addr), size, false, 0, 0, this.value)) return undefined;
    return (BigInt(this.value.hi) << 32n) | BigInt(this.value.lo);
  }

  /** Returns false when no device claims the address. */
  write(addr: bigint, size: number, value: bigint): boolean {
    if (addr > BigInt(Number.MAX_SAFE_INTEGER)) return false;
    return this.access(Number(addr), size, true, Number(value & 0xffffffffn), Number((value >> 32n) & 0xffffffffn), this.value);
  }
}
