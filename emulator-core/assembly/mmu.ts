// Address translation (Sv39, Sv48), the software TLBs, and the slow paths of loads, stores and fetches.
//
// The interpreter's fast path for a load is: index the read TLB by the virtual page number, compare the tag, add
// the entry's addend to get the wasm address. Everything else (misses, page walks, accesses that cross a page,
// MMIO, tohost) comes here. A TLB entry maps one 4 KiB page of guest RAM; its tag is the virtual page number
// with the access context (effective privilege, SUM, MXR) in the top byte, so a change of privilege or of SUM
// (which Linux toggles around every user copy) selects other entries instead of flushing the TLB.

import {
  H, PRV_M, PRV_S, PRV_U, tlbRead, tlbWrite, tlbFetch, TLB_ENTRIES, TLB_ENTRY_SIZE, TLB_BYTES, ramBase, ramSize,
  ramHostToGuest, raise, requestStop, markDirty, CAUSE_FETCH_ACCESS, CAUSE_LOAD_ACCESS, CAUSE_STORE_ACCESS,
  CAUSE_FETCH_PAGE_FAULT, CAUSE_LOAD_PAGE_FAULT, CAUSE_STORE_PAGE_FAULT, STOP_MMIO, STOP_HTIF, MMIO_NONE,
  MMIO_READY, MMIO_FAULT, setMmioRequest,
} from "./state";
import { MSTATUS_SUM, MSTATUS_MXR, SATP_MODE_SV39, effectiveDataPriv } from "./csr";
import { codeWriteCheck, recordWriteSlot } from "./code-pages";
import { jitForgetJumps } from "./jit";

export const ACC_READ: u32 = 0;
export const ACC_WRITE: u32 = 1;
export const ACC_FETCH: u32 = 2;

const PTE_V: u64 = 1 << 0;
const PTE_R: u64 = 1 << 1;
const PTE_W: u64 = 1 << 2;
const PTE_X: u64 = 1 << 3;
const PTE_U: u64 = 1 << 4;
const PTE_A: u64 = 1 << 6;
const PTE_D: u64 = 1 << 7;
const PTE_RESERVED: u64 = 0xffc0000000000000; // N, PBMT and reserved bits: Svnapot/Svpbmt are not implemented
const PPN_MASK: u64 = (1 << 44) - 1;
const PHYS_LIMIT: u64 = 1 << 56;

// TLB tags: the virtual page number (bits 0..51) with a key in bits 52..63: the access context (effective
// privilege, SUM, MXR, and bit 54 always set so a zeroed entry never matches) and a flush generation. Flushing
// bumps the generation, so sfence.vma and satp writes cost O(1); the arrays are cleared only when it wraps.
export const TLB_GENERATIONS: u32 = 128;

export function updateKeys(): void {
  const dp = effectiveDataPriv();
  let ctx: u64 = <u64>dp | 4;
  if (H.mstatus & MSTATUS_SUM) ctx |= 8;
  if (H.mstatus & MSTATUS_MXR) ctx |= 16;
  const gen = <u64>H.tlbGeneration << 5;
  H.dataKey = (ctx | gen) << 52;
  H.fetchKey = ((<u64>H.priv | 4) | gen) << 52;
  H.keysEpoch = H.translationEpoch;
}

export function flushTlbs(): void {
  H.tlbGeneration = (H.tlbGeneration + 1) & (TLB_GENERATIONS - 1);
  if (H.tlbGeneration == 0) clearTlbEntries(); // wrapped: old tags could match again
  updateKeys();
}

/** Empties the TLBs (a zeroed entry never matches: every key has bit 54 set), and the JIT's jump cache, whose
 *  entries are keyed by the fetch key as the fetch TLB's are. */
export function clearTlbEntries(): void {
  memory.fill(tlbRead, 0, TLB_BYTES * 3);
  jitForgetJumps();
}

/** Empties the TLBs and starts the generations over (reset). */
export function clearTlbs(): void {
  clearTlbEntries();
  H.tlbGeneration = 0;
  updateKeys();
}

@inline export function tlbSlot(tlb: usize, va: u64): usize {
  return tlb + ((<usize>(va >> 12) & (TLB_ENTRIES - 1)) * TLB_ENTRY_SIZE);
}

/** The host address of an access of size bytes at va when tlb (tlbRead or tlbWrite) maps its page under key (the
 *  current dataKey), else 0: the fast path of a load or store. The tag is compared with the page of the access's
 *  last byte, so an access that crosses into the next page (misaligned) never matches and takes the slow path
 *  without a separate check. The interpreter's loads and stores use it, as do the instructions the hart runs
 *  outside run()'s cases (the atomics). */
@inline export function tlbHit(tlb: usize, va: u64, key: u64, size: u32): usize {
  const te = tlb + ((<usize>(va >> 12) & (TLB_ENTRIES - 1)) * TLB_ENTRY_SIZE);
  return load<u64>(te) == (((va + (size - 1)) >> 12) | key) ? <usize>(va + load<u64>(te, 8)) : 0;
}

/** Enters va's page, at host address host (RAM), in the read TLB: after a translation for reading. */
@inline function enterRead(va: u64, host: usize): void {
  const te = tlbSlot(tlbRead, va);
  store<u64>(te, (va >> 12) | H.dataKey);
  store<u64>(te, <u64>(host & ~0xfff) - (va & ~0xfff), 8);
}

/** Enters va's page, at host address host (RAM, not the tohost page), in the write TLB: after a translation for
 *  writing, which set the PTE's dirty bit; the page was marked in the dirty log and is not code (codeWriteCheck). */
@inline function enterWrite(va: u64, host: usize): void {
  const te = tlbSlot(tlbWrite, va);
  recordWriteSlot(te, host);
  store<u64>(te, (va >> 12) | H.dataKey);
  store<u64>(te, <u64>(host & ~0xfff) - (va & ~0xfff), 8);
}

@inline function onTohostPage(pa: u64): bool { return H.tohostAddr != 0 && (pa & ~0xfff) == (H.tohostAddr & ~0xfff); }

@inline function inRam(pa: u64, size: u32): bool {
  return pa - ramBase < ramSize && pa - ramBase + size <= ramSize;
}

@inline function hostOf(pa: u64): usize { return <usize>(pa - ramHostToGuest); }

function pageFaultCause(acc: u32): u64 {
  return acc == ACC_FETCH ? CAUSE_FETCH_PAGE_FAULT : acc == ACC_WRITE ? CAUSE_STORE_PAGE_FAULT : CAUSE_LOAD_PAGE_FAULT;
}
function accessFaultCause(acc: u32): u64 {
  return acc == ACC_FETCH ? CAUSE_FETCH_ACCESS : acc == ACC_WRITE ? CAUSE_STORE_ACCESS : CAUSE_LOAD_ACCESS;
}

/** Translates va for an access at privilege p. Returns the guest physical address, or raises and returns 0. */
export function translate(va: u64, acc: u32, p: u32): u64 {
  const mode = H.satp >> 60;
  if (p == PRV_M || mode == 0) return va;
  const levels: i32 = mode == SATP_MODE_SV39 ? 3 : 4;
  const vaBits = 12 + 9 * levels;
  const top = <i64>va >> (vaBits - 1);
  if (top != 0 && top != -1) { raise(pageFaultCause(acc), va); return 0; }
  let table = (H.satp & PPN_MASK) << 12;
  for (let level = levels - 1; level >= 0; level--) {
    const vpn = (va >> (12 + 9 * <u64>level)) & 511;
    const pteAddr = table + vpn * 8;
    if (!inRam(pteAddr, 8)) { raise(accessFaultCause(acc), va); return 0; }
    const host = hostOf(pteAddr);
    const pte = atomic.load<u64>(host);
    if ((pte & PTE_V) == 0 || ((pte & PTE_R) == 0 && (pte & PTE_W) != 0) || (pte & PTE_RESERVED) != 0) break;
    if ((pte & (PTE_R | PTE_X)) == 0) { // pointer to the next level
      if ((pte & (PTE_U | PTE_A | PTE_D)) != 0) break; // reserved for non-leaf PTEs
      table = ((pte >> 10) & PPN_MASK) << 12;
      continue;
    }
    // leaf: permissions
    if (p == PRV_U) {
      if ((pte & PTE_U) == 0) break;
    } else if ((pte & PTE_U) != 0) {
      if (acc == ACC_FETCH || (H.mstatus & MSTATUS_SUM) == 0) break;
    }
    if (acc == ACC_FETCH) {
      if ((pte & PTE_X) == 0) break;
    } else if (acc == ACC_READ) {
      if ((pte & PTE_R) == 0 && !((H.mstatus & MSTATUS_MXR) != 0 && (pte & PTE_X) != 0)) break;
    } else if ((pte & PTE_W) == 0) break;
    const ppn = (pte >> 10) & PPN_MASK;
    const lowBits: u64 = 12 + 9 * <u64>level;
    const superMask: u64 = (<u64>1 << (lowBits - 12)) - 1;
    if ((ppn & superMask) != 0) break; // misaligned superpage
    // Hardware A/D update (Svadu behaviour); atomic so another hart's update is not lost.
    const need = acc == ACC_WRITE ? PTE_A | PTE_D : PTE_A;
    if ((pte & need) != need) { codeWriteCheck(host); atomic.or<u64>(host, need); markDirty(host); }
    return (ppn << 12) | (va & ((<u64>1 << lowBits) - 1));
  }
  raise(pageFaultCause(acc), va);
  return 0;
}

// --- fetch -------------------------------------------------------------------------------------------------------

/** The host address of va's page when the fetch TLB holds its translation in the current context, else 0 (no
 *  host page is at 0: RAM lies above the module's data). Compiled regions do the same lookup when they leave
 *  (src/jit/compile-region.ts $leave). */
@inline function fetchPageCached(va: u64): usize {
  const te = tlbSlot(tlbFetch, va);
  return load<u64>(te) == ((va >> 12) | H.fetchKey) ? <usize>((va & ~0xfff) + load<u64>(te, 8)) : 0;
}

/** Host (wasm) address of the 4 KiB page holding instruction address va, or 0 after raising a fault. */
export function fetchPage(va: u64): usize {
  const cached = fetchPageCached(va);
  if (cached) return cached;
  const te = tlbSlot(tlbFetch, va);
  const pa = translate(va, ACC_FETCH, H.priv);
  if (H.exc) return 0;
  if (!inRam(pa, 2)) { raise(CAUSE_FETCH_ACCESS, va); return 0; }
  const hostPage = hostOf(pa & ~0xfff);
  store<u64>(te, (va >> 12) | H.fetchKey);
  store<u64>(te, <u64>hostPage - (va & ~0xfff), 8);
  return hostPage;
}

/** Reads the 16-bit instruction parcel at va (slow path, used by the decoder). */
export function fetchParcel(va: u64): u32 {
  const page = fetchPage(va);
  if (H.exc) return 0;
  return <u32>load<u16>(page + <usize>(va & 0xfff));
}

// --- loads -------------------------------------------------------------------------------------------------------

@inline function readHost(host: usize, size: u32): u64 {
  if (size == 8) return load<u64>(host);
  if (size == 4) return <u64>load<u32>(host);
  if (size == 2) return <u64>load<u16>(host);
  return <u64>load<u8>(host);
}
@inline function writeHost(host: usize, size: u32, v: u64): void {
  if (size == 8) store<u64>(host, v);
  else if (size == 4) store<u32>(host, <u32>v);
  else if (size == 2) store<u16>(host, <u16>v);
  else store<u8>(host, <u8>v);
}

/** Load of size bytes at va, zero-extended; raises or requests a stop on failure (check exc). */
export function loadSlow(va: u64, size: u32): u64 {
  if ((va & 0xfff) + size > 4096) {
    // Misaligned across a page boundary. Both pages are translated first (a page fault on either is raised before
    // anything is read), and the access is emulated only when both halves are RAM. Device memory has side effects
    // and takes one access per instruction (one MMIO answer slot), so a misaligned access that reaches it is not
    // split: it raises a load access fault, which the ISA manual allows instead of address-misaligned when the
    // access should not be emulated, as for stores (storeSlow).
    const dp = effectiveDataPriv();
    const pa0 = translate(va, ACC_READ, dp);
    if (H.exc) return 0;
    const pa1 = translate((va + size - 1) & ~0xfff, ACC_READ, dp); // tval of a fault: where the second part starts
    if (H.exc) return 0;
    if (!inRam(pa0, 1) || !inRam(pa1, 1)) { raise(CAUSE_LOAD_ACCESS, va); return 0; }
    let v: u64 = 0;
    for (let i: u32 = 0; i < size; i++) {
      const a = va + i;
      const pa = (a & ~0xfff) == (va & ~0xfff) ? pa0 + i : pa1 + (a & 0xfff);
      v |= <u64>load<u8>(hostOf(pa)) << (8 * <u64>i);
    }
    return v;
  }
  const pa = translate(va, ACC_READ, effectiveDataPriv());
  if (H.exc) return 0;
  if (inRam(pa, size)) {
    const host = hostOf(pa);
    enterRead(va, host);
    return readHost(host, size);
  }
  return mmioAccess(va, pa, size, false, 0);
}

// --- stores ------------------------------------------------------------------------------------------------------

/** Store of the low size bytes of v at va; raises or requests a stop on failure (check exc). */
export function storeSlow(va: u64, size: u32, v: u64): void {
  if ((va & 0xfff) + size > 4096) {
    // Translate both pages before writing anything, so a fault leaves memory untouched.
    const dp = effectiveDataPriv();
    const last = va + size - 1;
    const pa0 = translate(va, ACC_WRITE, dp);
    if (H.exc) return;
    const pa1 = translate(last, ACC_WRITE, dp);
    if (H.exc) return;
    if (!inRam(pa0, 1) || !inRam(pa1 & ~0xfff, 1)) { raise(CAUSE_STORE_ACCESS, va); return; }
    for (let i: u32 = 0; i < size; i++) {
      const a = va + i;
      const pa = (a & ~0xfff) == (va & ~0xfff) ? pa0 + i : (pa1 & ~0xfff) + (a & 0xfff);
      codeWriteCheck(hostOf(pa));
      store<u8>(hostOf(pa), <u8>(v >> (8 * <u64>i)));
      markDirty(hostOf(pa));
    }
    return;
  }
  const pa = translate(va, ACC_WRITE, effectiveDataPriv());
  if (H.exc) return;
  if (inRam(pa, size)) {
    const host = hostOf(pa);
    codeWriteCheck(host);
    writeHost(host, size, v);
    markDirty(host);
    if (onTohostPage(pa)) {
      // the tohost page is never entered in the write TLB, so every store to it comes here
      if (pa - H.tohostAddr < 8) {
        H.htifValue = load<u64>(hostOf(H.tohostAddr));
        requestStop(STOP_HTIF);
      }
      return;
    }
    enterWrite(va, host);
    return;
  }
  mmioAccess(va, pa, size, true, v);
}

/** Enters va's translation in the read TLB or the write TLB, as loadSlow or storeSlow does after an access to RAM
 *  there (a store also sets the PTE's dirty bit and marks the page in the dirty log); false, and nothing entered,
 *  when the access would fault, is not RAM, or (a store) is on the tohost page. */
export function fillTlb(va: u64, write: bool): bool {
  const pa = translate(va, write ? ACC_WRITE : ACC_READ, effectiveDataPriv());
  if (H.exc) { H.exc = 0; return false; }
  if (!inRam(pa, 1)) return false;
  if (write && onTohostPage(pa)) return false;
  const host = hostOf(pa);
  if (write) { codeWriteCheck(host); markDirty(host); enterWrite(va, host); }
  else enterRead(va, host);
  return true;
}

/** Translates va for an atomic access (read and write permission) and returns the host address; the access must
 *  be naturally aligned and in RAM (AMOs to I/O raise an access fault). A page the write TLB maps is writable,
 *  so readable (W without R is reserved), dirty, in the dirty log and not code: its entry is all an AMO needs, and
 *  a translation fills it as a store's does (an AMO is a store: without it, every AMO walked the page table). */
export function amoAddress(va: u64, size: u32): usize {
  const hit = tlbHit(tlbWrite, va, H.dataKey, size);
  if (hit) return hit;
  const dp = effectiveDataPriv();
  const pa = translate(va, ACC_WRITE, dp);
  if (H.exc) return 0;
  if (!inRam(pa, size)) { raise(CAUSE_STORE_ACCESS, va); return 0; }
  const host = hostOf(pa);
  codeWriteCheck(host);
  markDirty(host);
  if (!onTohostPage(pa)) enterWrite(va, host);
  return host;
}

/** Translates va for an LR (aligned: checked by the caller) and returns the host address, or 0 after raising: the
 *  read TLB's entry when it maps the page, else a translation that fills it, as a load's does. */
export function lrAddress(va: u64, size: u32): usize {
  const hit = tlbHit(tlbRead, va, H.dataKey, size);
  if (hit) return hit;
  const pa = translate(va, ACC_READ, effectiveDataPriv());
  if (H.exc) return 0;
  if (!inRam(pa, size)) { raise(CAUSE_LOAD_ACCESS, va); return 0; }
  const host = hostOf(pa);
  enterRead(va, host);
  return host;
}

/** Loads and stores outside RAM go to the host's devices: the hart stops with STOP_MMIO, the host answers, and
 *  the re-executed instruction finds the answer here. */
function mmioAccess(va: u64, pa: u64, size: u32, isStore: bool, v: u64): u64 {
  if (pa >= PHYS_LIMIT) { raise(isStore ? CAUSE_STORE_ACCESS : CAUSE_LOAD_ACCESS, va); return 0; }
  if (H.mmioAnswer != MMIO_NONE && H.mmioAddr == pa && H.mmioIsStore == isStore) {
    const kind = H.mmioAnswer;
    H.mmioAnswer = MMIO_NONE;
    if (kind == MMIO_FAULT) { raise(isStore ? CAUSE_STORE_ACCESS : CAUSE_LOAD_ACCESS, va); return 0; }
    return H.mmioData;
  }
  setMmioRequest(pa, size, isStore, v);
  requestStop(STOP_MMIO);
  return 0;
}
