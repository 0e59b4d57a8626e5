// A parser for static RISC-V 64 ELF executables: the loadable segments and the symbol table.
// Every offset and size is checked against the file, so a truncated or corrupt file gives an ElfError.

export class ElfError extends Error {}

export interface ElfSegment {
  paddr: bigint;
  /** the bytes stored in the file */
  data: Uint8Array;
  /** size in memory (the part past data is zero: .bss) */
  memSize: bigint;
}

export interface ElfImage {
  entry: bigint;
  segments: ElfSegment[];
  symbols: Map<string, bigint>;
}

const EM_RISCV = 243;
const PT_LOAD = 1;
const SHT_SYMTAB = 2;

export function parseElf(bytes: Uint8Array): ElfImage {
  if (bytes.length < 64) throw new ElfError("not an ELF file (too short)");
  if (bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46) {
    throw new ElfError("not an ELF file (bad magic)");
  }
  if (bytes[4] !== 2) throw new ElfError("not a 64-bit ELF file");
  if (bytes[5] !== 1) throw new ElfError("not a little-endian ELF file");
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const machine = dv.getUint16(18, true);
  if (machine !== EM_RISCV) throw new ElfError(`not a RISC-V ELF file (machine ${machine})`);
  const entry = dv.getBigUint64(24, true);
  const phoff = Number(dv.getBigUint64(32, true));
  const shoff = Number(dv.getBigUint64(40, true));
  const phentsize = dv.getUint16(54, true);
  const phnum = dv.getUint16(56, true);
  const shentsize = dv.getUint16(58, true);
  const shnum = dv.getUint16(60, true);
  const within = (off: number, len: number) => off >= 0 && len >= 0 && off + len <= bytes.length;

  if (phnum === 0) throw new ElfError("ELF file has no program headers");
  if (phentsize < 56 || !within(phoff, phnum * phentsize)) throw new ElfError("ELF program headers are truncated");
  const segments: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const h = phoff + i * phentsize;
    if (dv.getUint32(h, true) !== PT_LOAD) continue;
    const offset = Number(dv.getBigUint64(h + 8, true));
    const paddr = dv.getBigUint64(h + 24, true);
    const fileSize = Number(dv.getBigUint64(h + 32, true));
    const memSize = dv.getBigUint64(h + 40, true);
    if (!within(offset, fileSize)) throw new ElfError(`ELF segment ${i} is truncated`);
    if (BigInt(fileSize) > memSize) throw new ElfError(`ELF segment ${i} has file size > memory size`);
    segments.push({ paddr, data: bytes.subarray(offset, offset + fileSize), memSize });
  }
  if (segments.length === 0) throw new ElfError("ELF file has no loadable segments");

  const symbols = new Map<string, bigint>();
  if (shnum > 0 && shentsize >= 64 && within(shoff, shnum * shentsize)) {
    for (let i = 0; i < shnum; i++) {
      const s = shoff + i * shentsize;
      if (dv.getUint32(s + 4, true) !== SHT_SYMTAB) continue;
      const off = Number(dv.getBigUint64(s + 24, true));
      const size = Number(dv.getBigUint64(s + 32, true));
      const link = dv.getUint32(s + 40, true);
      const entsize = Number(dv.getBigUint64(s + 56, true)) || 24;
      if (link >= shnum || !within(off, size)) throw new ElfError("ELF symbol table is truncated");
      const str = shoff + link * shentsize;
      const strOff = Number(dv.getBigUint64(str + 24, true));
      const strSize = Number(dv.getBigUint64(str + 32, true));
      if (!within(strOff, strSize)) throw new ElfError("ELF string table is truncated");
      for (let k = off; k + entsize <= off + size; k += entsize) {
        const nameOff = dv.getUint32(k, true);
        if (nameOff === 0 || nameOff >= strSize) continue;
        let end = strOff + nameOff;
        while (end < strOff + strSize && bytes[end] !== 0) end++;
        const name = new TextDecoder().decode(bytes.subarray(strOff + nameOff, end));
        symbols.set(name, dv.getBigUint64(k + 8, true));
      }
    }
  }
  return { entry, segments, symbols };
}
