// Per-hart state: where this hart's state block is, and the constants the rest of the hart shares.
//
// One wasm instance runs one hart. Its whole architectural state lives in its block of the shared memory
// (hartBase; layout generated from emulator-core/hart-state.mjs into hart-state.ts): registers, pc, privilege,
// every CSR, the LR/SC reservation, the exception and MMIO exchange words, the TLB keys. The host reads and writes
// the same block for snapshots and migration, and two harts on one memory share nothing but RAM and code caches.
// Module globals hold only where things are (addresses copied from the layout), never state.

import {
  HartFields, HB_XREGS, HB_FREGS, HB_FIELDS, HB_TLB, HB_SPAN, HB_PMPCFG, HB_PMPADDR,
} from "./hart-state";
export { HartFields, HART_BLOCK_SIZE, HB_TLB, HB_SPAN } from "./hart-state";

// Privilege levels
export const PRV_U: u32 = 0;
export const PRV_S: u32 = 1;
export const PRV_M: u32 = 3;

export const TLB_ENTRIES: u32 = 8192;
export const TLB_ENTRY_SIZE: u32 = 16; // u64 tag, u64 addend (host address = va + addend)
export const TLB_BYTES: u32 = TLB_ENTRIES * TLB_ENTRY_SIZE;

/** This hart's fields (pc, priv, CSRs, exchange words): H.mstatus is a load from the block. */
export let H: HartFields = changetype<HartFields>(0);

// Memory map handed over by the host
export let hartBase: usize = 0;
export let xregs: usize = 0;
export let fregs: usize = 0;
export let pmpcfgs: usize = 0;
export let pmpaddrs: usize = 0;
export let tlbRead: usize = 0;
export let tlbWrite: usize = 0;
export let tlbFetch: usize = 0;
export let spanEntry: usize = 0;
export let ramOffset: usize = 0;   // where guest RAM starts in wasm memory
export let ramBase: u64 = 0;       // guest physical address of RAM
export let ramSize: u64 = 0;
export let ramHostToGuest: u64 = 0; // ramBase - ramOffset: add to a host address to get the guest physical one
export let dirtyMap: usize = 0;     // one bit per RAM page, set by writes while H.dirtyLog is on (shared by all harts)

/** Marks the RAM page holding wasm address `host` written, when the host is logging writes. Every path that
 *  writes RAM without the write TLB calls it; the write TLB only ever holds pages already marked (the host
 *  flushes the TLBs when it starts logging and each time it collects the bitmap), so fast-path writes need no
 *  check. */
@inline export function markDirty(host: usize): void {
  if (H.dirtyLog) {
    const page = (host - ramOffset) >> 12;
    atomic.or<u8>(dirtyMap + (page >> 3), <u8>(<u32>1 << <u32>(page & 7)));
  }
}

export function setLayout(hart: usize, ramOff: usize, ramPhys: u64, ramBytes: u64, dirty: usize): void {
  dirtyMap = dirty;
  hartBase = hart;
  H = changetype<HartFields>(hart + HB_FIELDS);
  xregs = hart + HB_XREGS;
  fregs = hart + HB_FREGS;
  pmpcfgs = hart + HB_PMPCFG;
  pmpaddrs = hart + HB_PMPADDR;
  tlbRead = hart + HB_TLB;
  tlbWrite = tlbRead + TLB_BYTES;
  tlbFetch = tlbWrite + TLB_BYTES;
  spanEntry = hart + HB_SPAN;
  ramOffset = ramOff;
  ramBase = ramPhys;
  ramSize = ramBytes;
  ramHostToGuest = ramPhys - <u64>ramOff;
}

// Why the last run() call stopped
export const STOP_SLICE: u32 = 0;    // the instruction budget ran out
export const STOP_WFI: u32 = 1;      // WFI with no interrupt pending: the host may sleep until an event
export const STOP_MMIO: u32 = 2;     // a load or store to a non-RAM physical address: see mmio* below
export const STOP_HTIF: u32 = 3;     // the guest wrote tohost: see htifValue
export const STOP_FATAL: u32 = 4;    // the hart cannot go on (see fatalCode)
export const STOP_ECALL: u32 = 5;    // an ECALL the host handles itself (SBI in the emulator); pc is past it
export const STOP_JIT: u32 = 6;      // with the JIT on: the block at pc became hot; the host compiles it (jit.ts)
export const STOP_FENCE_I: u32 = 7;  // with the JIT on: a FENCE.I retired after stores into compiled code's pages; the
                                     // host drops those pages' regions (code-pages.ts fenceI)

// Pending exception or exit raised by a slow path (0 = none). The interpreter checks it after each slow path.
export const EXC_TRAP: u32 = 1;
export const EXC_STOP: u32 = 2;

@inline export function raise(cause: u64, tval: u64): void {
  H.exc = EXC_TRAP;
  H.excCause = cause;
  H.excTval = tval;
}
@inline export function requestStop(reason: u32): void {
  H.exc = EXC_STOP;
  H.stopReason = reason;
}
export function clearExc(): void { H.exc = 0; }

// Exception causes
export const CAUSE_MISALIGNED_FETCH: u64 = 0;
export const CAUSE_FETCH_ACCESS: u64 = 1;
export const CAUSE_ILLEGAL_INSTRUCTION: u64 = 2;
export const CAUSE_BREAKPOINT: u64 = 3;
export const CAUSE_MISALIGNED_LOAD: u64 = 4;
export const CAUSE_LOAD_ACCESS: u64 = 5;
export const CAUSE_MISALIGNED_STORE: u64 = 6;
export const CAUSE_STORE_ACCESS: u64 = 7;
export const CAUSE_USER_ECALL: u64 = 8;
export const CAUSE_SUPERVISOR_ECALL: u64 = 9;
export const CAUSE_MACHINE_ECALL: u64 = 11;
export const CAUSE_FETCH_PAGE_FAULT: u64 = 12;
export const CAUSE_LOAD_PAGE_FAULT: u64 = 13;
export const CAUSE_STORE_PAGE_FAULT: u64 = 15;
export const CAUSE_INTERRUPT: u64 = 1 << 63;

// Interrupt bits (mip/mie)
export const IRQ_SSI: u64 = 1 << 1;
export const IRQ_MSI: u64 = 1 << 3;
export const IRQ_STI: u64 = 1 << 5;
export const IRQ_MTI: u64 = 1 << 7;
export const IRQ_SEI: u64 = 1 << 9;
export const IRQ_MEI: u64 = 1 << 11;

// MMIO exchange with the host. A load stops the hart before the instruction completes; the host answers with
// mmioComplete(value) (or mmioFail()) and the hart re-executes the load, which then takes the answer.
export const MMIO_NONE: u32 = 0;
export const MMIO_READY: u32 = 1;
export const MMIO_FAULT: u32 = 2;
export function setMmioRequest(addr: u64, size: u32, isStore: bool, data: u64): void {
  H.mmioAddr = addr; H.mmioSize = size; H.mmioIsStore = isStore; H.mmioData = data; H.mmioAnswer = MMIO_NONE;
}
export function setMmioAnswer(kind: u32, data: u64): void { H.mmioAnswer = kind; H.mmioData = data; }

// HTIF: the guest physical address of tohost (0 = none) and the last value written there
export function setTohost(addr: u64): void { H.tohostAddr = addr; }
export function setHtifValue(v: u64): void { H.htifValue = v; }

// LR/SC reservation
export function setReservation(valid: bool, addr: usize, value: u64): void {
  H.reservationValid = valid; H.reservationAddr = addr; H.reservationValue = value;
}

// Retired instructions: H.instret plus what the current run() call has retired so far.
export function setInstretBase(v: u64): void { H.instret = v; }
