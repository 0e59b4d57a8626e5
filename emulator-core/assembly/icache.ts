// The decoded-instruction cache: guest RAM pages that hold code get a slot of pre-decoded entries, one per
// 16-bit parcel (an instruction may start at any even address with the C extension). Entries are filled lazily
// the first time an address is executed, so the interpreter never decodes the same instruction twice while its
// page stays cached. It is keyed by physical page, so every virtual mapping of a page shares one decode.
//
// Coherence: a page with a slot is marked as code (code-pages.ts), so the first store to it reaches the slow path,
// which drops its slot at once (RISC-V would allow the old instructions until the next FENCE.I; the hart may run
// them until it leaves the page). A device's write (DMA) drops the pages it wrote; the host, after it wrote RAM
// itself, and a state restore drop the whole cache; slots are reused round-robin when the pool is full.

import { ENTRY_SIZE } from "./decode";
import { OP_PAGE_CROSS } from "./ops";
import { ramOffset, ramSize } from "./state";
import { jitInvalidateAll } from "./jit";
import { markCodePage, clearCodeWrites } from "./code-pages";

// One entry per parcel, plus a page-cross sentinel where sequential execution steps off the end of the page.
export const SLOT_BYTES: u32 = (4096 / 2 + 1) * ENTRY_SIZE;
const SENTINEL_OFFSET: usize = (4096 / 2) * ENTRY_SIZE;

let mapBase: usize = 0;    // u32 per RAM page: slot index + 1, or 0 when the page has no slot
let ownerBase: usize = 0;  // u32 per slot: the RAM page it holds, + 1
let slotsBase: usize = 0;
let slotCount: u32 = 0;
let nextSlot: u32 = 0;

export function setDecodeCache(map: usize, owners: usize, slots: usize, count: u32): void {
  mapBase = map; ownerBase = owners; slotsBase = slots; slotCount = count; nextSlot = 0;
  flushDecodeCache();
}

export function flushDecodeCache(): void {
  memory.fill(mapBase, 0, <usize>(ramSize >> 12) * 4);
  memory.fill(ownerBase, 0, <usize>slotCount * 4);
  // compiled blocks hold decoded code too: every reason to drop all decoded instructions drops them (jit.ts), and
  // with them the pages queued for FENCE.I
  jitInvalidateAll();
  clearCodeWrites();
}

/** Drops the decoded instructions of RAM page `page` (counted from RAM's start), if it has any: a device wrote it
 *  (src/hart.ts deviceWrote). Only between run() calls, which look their pages up afresh. */
export function dropDecodedPage(page: u32): void {
  const mapEntry = mapBase + (<usize>page << 2);
  const slot = load<u32>(mapEntry);
  if (slot == 0) return;
  store<u32>(ownerBase + (<usize>(slot - 1) << 2), 0);
  store<u32>(mapEntry, 0);
}

/** The decoded entries of RAM page `page` (counted from RAM's start), or 0 when it has no slot: for the JIT, which
 *  takes an entry's op (0 until the interpreter first executes the instruction there) as a record of which of the
 *  page's instructions have run since the slot was filled. */
export function decodedSlotOf(page: u32): usize {
  const slot = load<u32>(mapBase + (<usize>page << 2));
  return slot == 0 ? 0 : slotsBase + <usize>(slot - 1) * SLOT_BYTES;
}

/** The decoded-entry slot for the RAM page at host address hostPage (allocating and clearing one if needed). */
export function decodedPage(hostPage: usize): usize {
  const page = <u32>((hostPage - ramOffset) >> 12);
  const mapEntry = mapBase + (<usize>page << 2);
  let slot = load<u32>(mapEntry);
  if (slot == 0) {
    const s = nextSlot;
    nextSlot = s + 1 == slotCount ? 0 : s + 1;
    const owner = load<u32>(ownerBase + (<usize>s << 2));
    if (owner != 0) store<u32>(mapBase + (<usize>(owner - 1) << 2), 0);
    store<u32>(ownerBase + (<usize>s << 2), page + 1);
    const base = slotsBase + <usize>s * SLOT_BYTES;
    memory.fill(base, 0, SLOT_BYTES);
    store<u8>(base + SENTINEL_OFFSET, OP_PAGE_CROSS);
    slot = s + 1;
    store<u32>(mapEntry, slot);
    markCodePage(page);
  }
  return slotsBase + <usize>(slot - 1) * SLOT_BYTES;
}
