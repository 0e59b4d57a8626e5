// Which RAM pages hold code this hart decoded (icache.ts) or compiled (the JIT), so that a store into one is seen
// and FENCE.I drops only the code of the pages written since the last one, instead of all code everywhere.
//
// Linux runs FENCE.I (and its SBI remote form) each time it maps a page of user code: about a thousand times in a
// boot. When every FENCE.I dropped every decoded instruction and made every compiled region stale, the hot code
// of the kernel and of busybox was decoded and counted afresh each time, and the JIT's boot was slower than the
// interpreter's. QEMU keeps its translations through FENCE.I the same way: it watches stores to pages it
// translated code from (its TLB's "not dirty" flag) and drops the code of a page when one is written.
//
// The mechanism: the write TLB never holds a page that holds code. A store to such a page therefore misses the
// TLB on its fast path (the interpreter's and compiled code's alike) and reaches storeSlow, which calls
// codeWritten(): the page's decoded instructions go at once, and the page is queued for the JIT, whose regions
// from it are dropped at the next FENCE.I (RISC-V lets a hart run the old instructions until then). The page is
// then no longer code and enters the write TLB as any page: further stores run at full speed until it is
// decoded or compiled again. To keep the first half true, each page has at most one write-TLB entry, whose slot
// is recorded here; when a page becomes code, that entry is cleared.
//
// Map: a u32 per RAM page. Bit 31: the page holds code. Bits 0..15: its write-TLB slot + 1 (0: none recorded).
// A recorded slot may since hold another page: it is cleared only after checking which page it maps.
// The map is shared by the harts of a memory, its slots are those of the one hart that may use the JIT
// (hart 0; index.ts setJit), and with one hart per VM today that is the only one.

import { tlbWrite, TLB_ENTRY_SIZE, ramOffset, ramSize } from "./state";
import { dropDecodedPage } from "./icache";
import { jitEnabled, jitInvalidateAll } from "./jit";

const CODE: u32 = 0x80000000;
const SLOT_MASK: u32 = 0xffff;
const VPN_MASK: u64 = (<u64>1 << 52) - 1;

let mapBase: usize = 0;

/** Pages written since the last FENCE.I whose compiled regions the host must drop (hart.ts FENCE.I, src/hart.ts);
 *  more than fit: every region goes at the next FENCE.I instead. */
const PENDING_MAX: u32 = 64;
const pendingPages = memory.data(<i32>PENDING_MAX * 4, 4);
let pendingCount: u32 = 0;
let pendingOverflow = false;

export function setCodeMap(base: usize): void {
  mapBase = base;
  memory.fill(mapBase, 0, <usize>(ramSize >> 12) * 4);
  pendingCount = 0;
  pendingOverflow = false;
}

@inline function entryOf(page: u32): usize { return mapBase + (<usize>page << 2); }

/** Clears write-TLB slot `slot` if it maps the RAM page at host address hostPage. */
function evictWriteSlot(slot: u32, hostPage: usize): void {
  const te = tlbWrite + <usize>slot * TLB_ENTRY_SIZE;
  const tag = load<u64>(te);
  if (<usize>(((tag & VPN_MASK) << 12) + load<u64>(te, 8)) == hostPage) store<u64>(te, 0);
}

/** RAM page `page` now holds code (its instructions are being decoded or compiled): stores to it must be seen. */
export function markCodePage(page: u32): void {
  const ent = entryOf(page);
  const m = load<u32>(ent);
  if (m & CODE) return;
  const slot = m & SLOT_MASK;
  if (slot) evictWriteSlot(slot - 1, ramOffset + (<usize>page << 12));
  store<u32>(ent, CODE);
}

/** A store (or an A/D update, or an AMO) is about to write RAM at host address `host`. */
@inline export function codeWriteCheck(host: usize): void {
  const page = <u32>((host - ramOffset) >> 12);
  const m = load<u32>(entryOf(page));
  if (m & CODE) codeWritten(page, m);
}

function codeWritten(page: u32, m: u32): void {
  store<u32>(entryOf(page), m & ~CODE);
  dropDecodedPage(page);
  if (!jitEnabled) return;
  if (pendingCount < PENDING_MAX) {
    store<u32>(pendingPages + (<usize>pendingCount << 2), page);
    pendingCount++;
  } else pendingOverflow = true;
}

/** The write TLB's entry at address `te` now maps the RAM page at host address `host` (storeSlow, fillTlb): the
 *  page's earlier entry, if in another slot, is cleared, so that one slot per page is all markCodePage clears. */
export function recordWriteSlot(te: usize, host: usize): void {
  const page = <u32>((host - ramOffset) >> 12);
  const ent = entryOf(page);
  const m = load<u32>(ent);
  const slot = <u32>((te - tlbWrite) / TLB_ENTRY_SIZE) + 1;
  const old = m & SLOT_MASK;
  if (old != 0 && old != slot) evictWriteSlot(old - 1, host & ~<usize>0xfff);
  store<u32>(ent, (m & ~SLOT_MASK) | slot);
}

/** FENCE.I (the instruction, or an SBI remote fence.i reaching this hart): the decoded instructions of written
 *  pages are gone already. Returns the number of pages whose compiled regions the host must drop now
 *  (codeWrittenPage; then clearCodeWrites); 0 when there are none, or when there were too many and every region
 *  was made stale here instead. */
export function fenceI(): u32 {
  if (pendingOverflow) {
    jitInvalidateAll();
    clearCodeWrites();
    return 0;
  }
  return pendingCount;
}

export function codeWrittenPage(i: u32): u32 { return i < pendingCount ? load<u32>(pendingPages + (<usize>i << 2)) : 0xffffffff; }

export function clearCodeWrites(): void {
  pendingCount = 0;
  pendingOverflow = false;
}
