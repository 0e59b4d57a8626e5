// Per-hart architectural state.
//
// One wasm instance runs one hart, so module globals here are per-hart; the integer and FP register files and the
// TLBs live in this hart's block of the shared memory (hartBase), where the host can read them for snapshots.

// Privilege levels
export const PRV_U: u32 = 0;
export const PRV_S: u32 = 1;
export const PRV_M: u32 = 3;

// Layout of the hart block (offsets from hartBase)
export const HB_XREGS: u32 = 0;       // 33 x u64: x0..x31 and the scratch slot that absorbs writes to x0
export const HB_FREGS: u32 = 512;     // 32 x u64
export const HB_TLB: u32 = 4096;      // three TLBs: read, write, fetch
export const TLB_ENTRIES: u32 = 8192;
export const TLB_ENTRY_SIZE: u32 = 16; // u64 tag, u64 addend (host address = va + addend)
export const TLB_BYTES: u32 = TLB_ENTRIES * TLB_ENTRY_SIZE;
export const HB_SPAN: u32 = 1024;     // scratch entry for page-straddling instructions (+ a page-cross sentinel)
export const HART_BLOCK_SIZE: u32 = HB_TLB + 3 * TLB_BYTES;

// Memory map handed over by the host
export let hartBase: usize = 0;
export let xregs: usize = 0;
export let fregs: usize = 0;
export let tlbRead: usize = 0;
export let tlbWrite: usize = 0;
export let tlbFetch: usize = 0;
export let spanEntry: usize = 0;
export let ramOffset: usize = 0;   // where guest RAM starts in wasm memory
export let ramBase: u64 = 0;       // guest physical address of RAM
export let ramSize: u64 = 0;
export let ramHostToGuest: u64 = 0; // ramBase - ramOffset: add to a host address to get the guest physical one

export function setLayout(hart: usize, ramOff: usize, ramPhys: u64, ramBytes: u64): void {
  hartBase = hart;
  xregs = hart + HB_XREGS;
  fregs = hart + HB_FREGS;
  tlbRead = hart + HB_TLB;
  tlbWrite = tlbRead + TLB_BYTES;
  tlbFetch = tlbWrite + TLB_BYTES;
  spanEntry = hart + HB_SPAN;
  ramOffset = ramOff;
  ramBase = ramPhys;
  ramSize = ramBytes;
  ramHostToGuest = ramPhys - <u64>ramOff;
}

// Program counter and privilege (the run loop keeps pc in a local and writes it back on exit)
export let pc: u64 = 0;
export let priv: u32 = PRV_M;

// Why the last run() call stopped
export const STOP_SLICE: u32 = 0;    // the instruction budget ran out
export const STOP_WFI: u32 = 1;      // WFI with no interrupt pending: the host may sleep until an event
export const STOP_MMIO: u32 = 2;     // a load or store to a non-RAM physical address: see mmio* below
export const STOP_HTIF: u32 = 3;     // the guest wrote tohost: see htifValue
export const STOP_FATAL: u32 = 4;    // the hart cannot go on (see fatalCode)
export const STOP_ECALL: u32 = 5;    // an ECALL the host handles itself (SBI in the emulator); pc is past it

// Pending exception or exit raised by a slow path (0 = none). The interpreter checks it after each slow path.
export let exc: i32 = 0;
export let excCause: u64 = 0;
export let excTval: u64 = 0;
export const EXC_TRAP: i32 = 1;
export const EXC_STOP: i32 = 2;
export let stopReason: u32 = 0;

@inline export function raise(cause: u64, tval: u64): void {
  exc = EXC_TRAP;
  excCause = cause;
  excTval = tval;
}
@inline export function requestStop(reason: u32): void {
  exc = EXC_STOP;
  stopReason = reason;
}
export function clearExc(): void { exc = 0; }

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
export let mmioAddr: u64 = 0;
export let mmioSize: u32 = 0;
export let mmioIsStore: bool = false;
export let mmioData: u64 = 0;
export let mmioAnswer: u32 = 0; // 0 none, 1 value ready for mmioAddr, 2 access fault for mmioAddr
export const MMIO_NONE: u32 = 0;
export const MMIO_READY: u32 = 1;
export const MMIO_FAULT: u32 = 2;
export function setMmioRequest(addr: u64, size: u32, isStore: bool, data: u64): void {
  mmioAddr = addr; mmioSize = size; mmioIsStore = isStore; mmioData = data; mmioAnswer = MMIO_NONE;
}
export function setMmioAnswer(kind: u32, data: u64): void { mmioAnswer = kind; mmioData = data; }

// HTIF: the guest physical address of tohost (0 = none) and the last value written there
export let tohostAddr: u64 = 0;
export let htifValue: u64 = 0;
export function setTohost(addr: u64): void { tohostAddr = addr; }
export function setHtifValue(v: u64): void { htifValue = v; }

// LR/SC reservation
export let reservationValid: bool = false;
export let reservationAddr: usize = 0; // host address
export let reservationValue: u64 = 0;
export function setReservation(valid: bool, addr: usize, value: u64): void {
  reservationValid = valid; reservationAddr = addr; reservationValue = value;
}

// Retired instructions: instretBase plus what the current run() call has retired so far.
export let instretBase: u64 = 0;
export function setInstretBase(v: u64): void { instretBase = v; }
