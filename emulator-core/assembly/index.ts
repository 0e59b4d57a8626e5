// The hart module's exports: what the TypeScript machine (emulator-core/src) calls.
// u64 values cross the boundary as BigInt. The hart's state itself is not exported field by field: it lives in
// the hart state block (hart-state.mjs), which the host reads and writes through src/hart-state.ts. These exports
// are the operations that do more than a store.

import * as S from "./state";
import * as C from "./csr";
import { setDecodeCache, flushDecodeCache, dropDecodedPage, decodedSlotOf } from "./icache";
import { flushTlbs, clearTlbs, clearTlbEntries, updateKeys, TLB_GENERATIONS, fillTlb } from "./mmu";
import { takeTrap } from "./trap";
import { decode16, decode32, E_OP, E_RD, E_RS1, E_RS2, E_IMM, E_RAW } from "./decode";
import * as O from "./ops";
import { execAtomic } from "./atomics";
import { execFp } from "./fpu";

export { run } from "./hart";
import { initScratch } from "./hart";
export { STOP_SLICE, STOP_WFI, STOP_MMIO, STOP_HTIF, STOP_FATAL, STOP_ECALL, STOP_JIT, STOP_FENCE_I, HART_BLOCK_SIZE } from "./state";
export { fenceI, codeWrittenPage, clearCodeWrites, markCodePage } from "./code-pages";
import { setCodeMap } from "./code-pages";
export { jitRequestPc, jitRequestPhys, jitRequestSteps, jitInstall, jitEvict, jitUsed, jitInvalidations, jitCallCount, jitRetiredCount, jitChainCount, JIT_NONE } from "./jit";
import { jitSetup, JIT_JUMPS, JIT_TABLE, JIT_BYTES } from "./jit";
export { hartFieldsLayoutOk } from "./hart-state";
export { SLOT_BYTES } from "./icache";

/** Lays the hart out in memory and resets it. All addresses are offsets in the shared wasm memory. */
export function init(
  hartId: u32, hartBase: usize, ramOffset: usize, ramBase: u64, ramSize: u64,
  decodeMap: usize, decodeOwners: usize, decodeSlots: usize, decodeSlotCount: u32, dirtyMap: usize, codeMap: usize,
): void {
  S.setLayout(hartBase, ramOffset, ramBase, ramSize, dirtyMap);
  jitSetup(false, 1);
  initScratch();
  setCodeMap(codeMap);
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

/** Turns the JIT on or off for this hart (src/jit/tier.ts): with it on, run() counts block starts and stops with
 *  STOP_JIT when one becomes hot (executed `threshold` times), and enters the compiled blocks the host installs in
 *  this module's function table. Returns false (and leaves it off) when the JIT's lookup does not fit below this
 *  hart's block: only hart 0 of a memory may use it. */
export function setJit(on: bool, threshold: u32): bool {
  const fits = <usize>__heap_base <= JIT_JUMPS && JIT_TABLE + JIT_BYTES <= S.hartBase && S.H.mhartid == 0;
  jitSetup(on && fits, threshold);
  return fits || !on;
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

/** A device wrote RAM page `page` (counted from RAM's start): the instructions decoded from it go (src/hart.ts). */
export function dropDecoded(page: u32): void { dropDecodedPage(page); }

/** The address of RAM page `page`'s decoded entries (ENTRY_SIZE bytes per halfword, the op first: 0 where nothing
 *  was executed since they were filled), or 0 when the page has none (src/jit/tier.ts). */
export function jitDecodedEntries(page: u32): usize { return decodedSlotOf(page); }

/** Enters va's translation in the read TLB, or the write TLB, as a load or store of RAM there would; false when it
 *  would fault or is not RAM (tests: the JIT's differential test starts blocks with TLB entries in place, so that
 *  their loads and stores take the compiled fast path). */
export function fillTlbForTest(va: u64, write: bool): bool { return fillTlb(va, write); }

// For compiled regions (src/jit/compile-region.ts), which import it from this instance, wasm to wasm.

/** Executes one A instruction or one F or D instruction other than a load or store (regions do those themselves)
 *  for a compiled region, from its decoded fields (as in a decoded entry: registers as byte offsets), with the
 *  interpreter's own code: the region stores the integer registers it names before and reloads its rd after. On
 *  failure H.exc is set to a trap (an atomic's fault: none of these touches a device). */
export function jitExec(op: u32, rd: u32, rs1: u32, rs2: u32, imm: i32, raw: u32): void {
  const e = execEntry;
  store<u8>(e, <u8>op, E_OP);
  store<u16>(e, <u16>rd, E_RD);
  store<u16>(e, <u16>rs1, E_RS1);
  store<u16>(e, <u16>rs2, E_RS2);
  store<i32>(e, imm, E_IMM);
  store<u32>(e, raw, E_RAW);
  if (op >= O.OP_LR_W && op <= O.OP_AMOMAXU_D) execAtomic(op, e);
  else execFp(op, e);
}
const execEntry = memory.data(16, 16);

/** Finishes what a compiled block left pending in H.exc, as run() does after the instruction: a trap is taken
 *  (the handler's address goes to H.pc, which the block left at the faulting instruction) and STOP_SLICE
 *  returned (a stop request, which blocks no longer leave, is cleared and its reason returned). With nothing
 *  pending it returns STOP_SLICE. The TLB keys are brought up to date, since a trap changes privilege. */
export function takePendingTrap(): u32 {
  const H = S.H;
  const exc = H.exc;
  H.exc = 0;
  let reason = S.STOP_SLICE;
  if (exc == S.EXC_TRAP) H.pc = takeTrap(H.pc, H.excCause, H.excTval);
  else if (exc == S.EXC_STOP) reason = H.stopReason;
  if (H.keysEpoch != H.translationEpoch) updateKeys();
  return reason;
}
