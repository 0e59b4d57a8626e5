// Where things live in the shared wasm memory of one VM (see emulator-core/README.md).

import { HART_BLOCK } from "./hart-state.ts";

export const WASM_PAGE = 65536;
export const RAM_BASE = 0x8000_0000n;

const MiB = 1024 * 1024;
const HART_REGION = 1 * MiB;         // first hart block (the AssemblyScript data sits below)
/** a decoded instruction's entry (assembly/decode.ts): one per halfword of a page */
export const DECODED_ENTRY_BYTES = 16;
const DECODE_SLOT_BYTES = 2049 * DECODED_ENTRY_BYTES; // 2048 parcels per 4 KiB page + a page-end sentinel

export interface MemoryLayout {
  ramBytes: number;
  /** hart i's state block is at hartBase + i * hartBlockBytes */
  hartBase: number;
  hartBlockBytes: number;
  harts: number;
  /** one bit per RAM page: pages written while write logging is on (live migration) */
  dirtyMap: number;
  decodeMap: number;
  /** a u32 per RAM page: holds code the hart decoded or compiled, and its write-TLB slot (assembly/code-pages.ts) */
  codeMap: number;
  decodeOwners: number;
  decodeSlots: number;
  decodeSlotCount: number;
  ramOffset: number;
  totalBytes: number;
  /** wasm pages to create the memory with */
  pages: number;
}

const align = (v: number, a: number) => Math.ceil(v / a) * a;

/** Largest guest RAM this build supports: the whole memory must stay under wasm32's 4 GiB. */
export const MAX_RAM_MIB = 2048;

export function computeLayout(ramMiB: number, decodeSlotCount = 512, harts = 1): MemoryLayout {
  if (!Number.isInteger(ramMiB) || ramMiB < 1 || ramMiB > MAX_RAM_MIB) {
    throw new RangeError(`guest RAM must be a whole number of MiB between 1 and ${MAX_RAM_MIB}, not ${ramMiB}`);
  }
  const ramBytes = ramMiB * MiB;
  const hartBase = HART_REGION;
  const hartBlockBytes = align(HART_BLOCK.SIZE, 4096);
  const dirtyMap = hartBase + harts * hartBlockBytes;
  const decodeMap = align(dirtyMap + ramBytes / 4096 / 8, 64);
  const codeMap = align(decodeMap + (ramBytes / 4096) * 4, 64);
  const decodeOwners = align(codeMap + (ramBytes / 4096) * 4, 64);
  const decodeSlots = align(decodeOwners + decodeSlotCount * 4, 4096);
  const ramOffset = align(decodeSlots + decodeSlotCount * DECODE_SLOT_BYTES, WASM_PAGE);
  const totalBytes = ramOffset + ramBytes;
  return {
    ramBytes, hartBase, hartBlockBytes, harts, dirtyMap, decodeMap, codeMap, decodeOwners, decodeSlots, decodeSlotCount, ramOffset, totalBytes,
    pages: totalBytes / WASM_PAGE,
  };
}
