// The hart module's exports: what the TypeScript machine (emulator-core/src) calls.
// u64 values cross the boundary as BigInt.

import * as S from "./state";
import * as C from "./csr";
import { setDecodeCache, flushDecodeCache } from "./icache";
import { flushTlbs, updateKeys } from "./mmu";
import { decode16, decode32 } from "./decode";

export { run, setSbiInHost } from "./hart";
import { initScratch } from "./hart";
export { STOP_SLICE, STOP_WFI, STOP_MMIO, STOP_HTIF, STOP_FATAL, STOP_ECALL, HART_BLOCK_SIZE } from "./state";
export { SLOT_BYTES } from "./icache";

/** Lays the hart out in memory and resets it. All addresses are offsets in the shared wasm memory. */
export function init(
  hartId: u32, hartBase: usize, ramOffset: usize, ramBase: u64, ramSize: u64,
  decodeMap: usize, decodeOwners: usize, decodeSlots: usize, decodeSlotCount: u32,
): void {
  S.setLayout(hartBase, ramOffset, ramBase, ramSize);
  initScratch();
  setDecodeCache(decodeMap, decodeOwners, decodeSlots, decodeSlotCount);
  reset(hartId, ramBase);
}

/** Architectural reset: M-mode at pc, registers zero, a0 = hartid. */
export function reset(hartId: u32, pc: u64): void {
  memory.fill(S.xregs, 0, 33 * 8);
  memory.fill(S.fregs, 0, 32 * 8);
  C.resetCsrs(hartId);
  S.pc = pc;
  S.priv = S.PRV_M;
  S.exc = 0;
  S.instretBase = 0;
  S.setReservation(false, 0, 0);
  S.setMmioAnswer(S.MMIO_NONE, 0);
  store<u64>(S.xregs + 10 * 8, <u64>hartId);
  memory.fill(S.tlbRead, 0, S.TLB_BYTES * 3);
  C.clearTlbFlush();
  updateKeys();
}

export function getPc(): u64 { return S.pc; }
export function setPc(v: u64): void { S.pc = v; }
export function getPriv(): u32 { return S.priv; }
export function setPriv(p: u32): void { S.priv = p; C.bumpEpoch(); }
export function getInstret(): u64 { return S.instretBase; }
export function getXregsAddr(): usize { return S.xregs; }
export function getFregsAddr(): usize { return S.fregs; }

// MMIO exchange (see state.ts)
export function getMmioAddr(): u64 { return S.mmioAddr; }
export function getMmioSize(): u32 { return S.mmioSize; }
export function getMmioIsStore(): bool { return S.mmioIsStore; }
export function getMmioData(): u64 { return S.mmioData; }
export function mmioComplete(value: u64): void { S.setMmioAnswer(S.MMIO_READY, value); }
export function mmioFail(): void { S.setMmioAnswer(S.MMIO_FAULT, 0); }

// HTIF
export function setTohost(addr: u64): void { S.setTohost(addr); flushTlbs(); }
export function getHtifValue(): u64 { return S.htifValue; }

// Platform
export function setInterruptLines(mask: u64): void { C.setMipLines(mask); }
export function getInterruptLines(): u64 { return C.mipLines; }
export function setMtime(t: u64): void { C.setMtime(t); }
export function getMip(): u64 { return C.mip(); }
export function getMie(): u64 { return C.mie; }
export function getMstatus(): u64 { return C.mstatus; }
export function getSatp(): u64 { return C.satp; }
export function getMcause(): u64 { return C.mcause; }
export function getScause(): u64 { return C.scause; }
export function getMepc(): u64 { return C.mepc; }
export function getSepc(): u64 { return C.sepc; }
export function getMtval(): u64 { return C.mtval; }
export function getStval(): u64 { return C.stval; }
/** Flushes the TLBs (SBI remote sfence.vma reaching this hart). */
export function flushTlb(): void { flushTlbs(); }
export function setMedeleg(v: u64): void { C.setMedeleg(v); }
export function setMideleg(v: u64): void { C.setMideleg(v); }
export function setMcounteren(v: u64): void { C.setMcounteren(v); }
export function setScounteren(v: u64): void { C.setScounteren(v); }
/** Drops all decoded instructions (the host calls this after writing guest RAM behind the hart's back). */
export function invalidateDecoded(): void { flushDecodeCache(); }

// Decoder access for unit tests: decodes one instruction into a scratch entry and returns the entry's address.
const testEntry = memory.data(16, 16);
export function decodeForTest(inst: u32): usize {
  if ((inst & 3) != 3) decode16(testEntry, inst & 0xffff);
  else decode32(testEntry, inst);
  return testEntry;
}
