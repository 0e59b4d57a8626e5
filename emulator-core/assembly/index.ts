// The hart module's exports: what the TypeScript machine (emulator-core/src) calls.
// u64 values cross the boundary as BigInt. The hart's state itself is not exported field by field: it lives in
// the hart state block (hart-state.mjs), which the host reads and writes through src/hart-state.ts. These exports
// are the operations that do more than a store.

import * as S from "./state";
import * as C from "./csr";
import { setDecodeCache, flushDecodeCache } from "./icache";
import { flushTlbs, clearTlbs, clearTlbEntries, updateKeys, TLB_GENERATIONS } from "./mmu";
import { decode16, decode32 } from "./decode";

export { run } from "./hart";
import { initScratch } from "./hart";
export { STOP_SLICE, STOP_WFI, STOP_MMIO, STOP_HTIF, STOP_FATAL, STOP_ECALL, HART_BLOCK_SIZE } from "./state";
export { hartFieldsLayoutOk } from "./hart-state";
export { SLOT_BYTES } from "./icache";

/** Lays the hart out in memory and resets it. All addresses are offsets in the shared wasm memory. */
export function init(
  hartId: u32, hartBase: usize, ramOffset: usize, ramBase: u64, ramSize: u64,
  decodeMap: usize, decodeOwners: usize, decodeSlots: usize, decodeSlotCount: u32, dirtyMap: usize,
): void {
  S.setLayout(hartBase, ramOffset, ramBase, ramSize, dirtyMap);
  initScratch();
  setDecodeCache(decodeMap, decodeOwners, decodeSlots, decodeSlotCount);
  reset(hartId, ramBase);
}

/** Architectural reset: M-mode at pc, registers zero, a0 = hartid. */
export function reset(hartId: u32, pc: u64): void {
  memory.fill(S.xregs, 0, 33 * 8);
  memory.fill(S.fregs, 0, 32 * 8);
  C.resetCsrs(hartId);
  const H = S.H;
  H.pc = pc;
  H.priv = S.PRV_M;
  H.exc = 0;
  H.instret = 0;
  H.flushRequest = 0;
  S.setReservation(false, 0, 0);
  S.setMmioAnswer(S.MMIO_NONE, 0);
  store<u64>(S.xregs + 10 * 8, <u64>hartId);
  clearTlbs();
  C.clearTlbFlush();
  updateKeys();
}

/** Before the host copies the state block out: bring what is derived from the state (TLB keys, the scratch
 *  entry) to the values a restore recomputes, so that save, restore, save gives the same bytes. */
export function prepareSave(): void {
  initScratch();
  if (S.H.keysEpoch != S.H.translationEpoch) updateKeys();
}

/** The host has written the state block (a restored snapshot or a migrated hart): empty the TLBs and the decoded
 *  instructions, which belonged to the old memory, and recompute what is derived from the state, so that nothing
 *  a corrupt block holds beyond the architectural fields is ever used. */
export function stateRestored(): void {
  initScratch();
  clearTlbEntries();
  flushDecodeCache();
  S.H.tlbGeneration &= TLB_GENERATIONS - 1;
  updateKeys();
}

/** HTIF: watch the tohost word at this guest physical address (0: none). */
export function setTohost(addr: u64): void { S.setTohost(addr); flushTlbs(); }

/** Flushes the TLBs (SBI remote sfence.vma reaching this hart). */
export function flushTlb(): void { flushTlbs(); }

/** Drops all decoded instructions (the host calls this after writing guest RAM behind the hart's back). */
export function invalidateDecoded(): void { flushDecodeCache(); }

// Decoder access for unit tests: decodes one instruction into a scratch entry and returns the entry's address.
// (Static data is shared by every instance on a memory; only tests use this entry.)
const testEntry = memory.data(16, 16);
export function decodeForTest(inst: u32): usize {
  if ((inst & 3) != 3) decode16(testEntry, inst & 0xffff);
  else decode32(testEntry, inst);
  return testEntry;
}
