// The interpreter: runs a slice of instructions from the decoded-instruction cache.
//
// Per instruction the loop does: a page check for pc (the fetch TLB and decode cache are consulted only when pc
// leaves the current page), one load of the cached entry's op byte, a br_table dispatch, and the handler, which
// reads its operands from the entry. Loads and stores take the TLB fast path inline; misses, faults and device
// accesses go to mmu.ts. Handlers end with `continue`; a handler that raised an exception, asked the host for
// something, or changed state that the loop caches (privilege, translation, interrupt enables) ends with `break`
// and the code after the switch sorts it out. Nothing here allocates or calls into JavaScript.
//
// With the JIT on (jit.ts, src/jit/README.md) the page-cross case is also where blocks start: every page cross,
// every backward taken branch (through probeEntry: a loop) and every return from compiled code lands there, and
// compiled regions are entered from it by call_indirect. With it off, the additions are a test of a local flag
// in the taken-branch cases and of the op in the page-cross case.

import * as O from "./ops";
import * as S from "./semantics";
import { decode16, decode32, E_LEN, E_RD, E_RS1, E_RS2, E_IMM, E_RAW, ENTRY_SIZE } from "./decode";
import {
  H, HartFields, PRV_M, PRV_S, PRV_U, xregs, fregs, tlbRead, tlbWrite, spanEntry, EXC_STOP, STOP_SLICE, STOP_WFI, STOP_MMIO,
  STOP_HTIF, STOP_ECALL, STOP_FATAL, STOP_JIT, STOP_FENCE_I, raise, requestStop, CAUSE_ILLEGAL_INSTRUCTION, CAUSE_BREAKPOINT,
  CAUSE_USER_ECALL, TLB_ENTRIES, TLB_ENTRY_SIZE, hartBase, ramHostToGuest,
} from "./state";
import { jitEnabled, jitProbe, jitNoteSteps, jitCounted, JIT_NONE, JIT_REQUEST, JIT_MAX_BLOCK } from "./jit";
import {
  mip, MSTATUS_TW, MSTATUS_TSR, MSTATUS_TVM, clearTlbFlush, fpEnabled, markFsDirty, csrRead, csrWrite,
} from "./csr";
import { updateKeys, flushTlbs, fetchPage, fetchParcel, loadSlow, storeSlow, tlbHit } from "./mmu";
import { decodedPage, flushDecodeCache } from "./icache";
import { fenceI } from "./code-pages";
import { takeTrap, pendingInterrupt, doMret, doSret } from "./trap";
import { execFp, fpLoaded } from "./fpu";
import { execAtomic } from "./atomics";

/** a compiled region's exit codes (src/jit/compile-region.ts): a pending trap or stop; a load or store at pc that
 *  its TLB fast path could not do */
const JIT_EXIT_EXC: u32 = 2;
const JIT_EXIT_MISS: u32 = 3;

/** flushRequest bits */
const FLUSH_TLB: u32 = 1;
const FLUSH_DECODED: u32 = 2;

// Instructions that straddle a page boundary are decoded into the hart's scratch entry (state.spanEntry, never
// cached), which is followed, where sequential execution steps next (+4 bytes of code = +2 entries), by a
// page-cross sentinel (written by initScratch).
export function initScratch(): void {
  memory.fill(spanEntry, 0, 48);
  store<u8>(spanEntry + 32, O.OP_PAGE_CROSS);
}
// Executing this entry looks up the entry for pc: used after any jump that leaves the current page and after
// anything that changes translation or privilege.
const crossEntry = memory.data<u8>([O.OP_PAGE_CROSS, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 16);

/** The entry for pc p: in the current decoded page when p is on it, else the page-cross sentinel. */
@inline function entryFor(p: u64, codePage: u64, codeBase: usize): usize {
  return (p & ~0xfff) == codePage ? codeBase + (<usize>(p & 0xffe) << 3) : crossEntry;
}
// With the JIT on, the block start a compiled block returned to is looked up through this entry.
const probeEntry = memory.data<u8>([O.OP_JIT_PROBE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 16);
// With the JIT on, a backward jump within the page (a loop) goes through this entry, which looks its target up as
// a block start once in LOOP_SAMPLE times (counting it LOOP_SAMPLE times): loops become hot and are compiled,
// without a lookup at every taken branch, and a compiled loop is entered within LOOP_SAMPLE iterations. A lookup
// at every backward branch cost the JIT's boot about a tenth of its time in code it never compiled.
const loopEntry = memory.data<u8>([O.OP_JIT_LOOP, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 16);
const LOOP_SAMPLE: u32 = 8;
// A user-mode block start counts USER_WEIGHT executions each time: user code is compiled after a thirtieth of the
// threshold (30000 by default: user code at 1000). A boot is mostly the kernel's initialisation, whose loops run
// thousands of times once and are not worth compiling: on 2 cores, whatever is compiled during a boot costs the boot
// (the compiler thread and V8's optimizing threads take the other core and part of this one). User programs are
// what a VM runs over and over. Measured with bench:linux (JIT, medians): at 10000 with user code at 2000, boot
// 0.42-0.44 s and the shell loop 3.16-3.23; at 30000 with user code at 1000, 0.39-0.40 and 2.95-3.06; at 100000
// with user code at 1000 the boot was no faster and gzip (whose random bytes the kernel makes) 0.1 s slower.
const USER_WEIGHT: u32 = 30;
/** Backward branches taken within a page with the JIT on (OP_JIT_LOOP). A global rather than a local of run(): a
 *  local live across the whole loop costs the interpreter a register in every instruction's case. */
let loopTick: u32 = 0;
/** The entry for the target p of a taken branch or JAL (back: backward, with the JIT on). */
@inline function takenEntry(p: u64, codePage: u64, codeBase: usize, back: bool): usize {
  return (p & ~0xfff) != codePage ? crossEntry : back ? loopEntry : codeBase + (<usize>(p & 0xffe) << 3);
}

@inline function RD(e: usize): usize { return <usize>load<u16>(e, E_RD); }
@inline function X(xr: usize, off: usize): u64 { return load<u64>(xr + off); }
@inline function setX(xr: usize, off: usize, v: u64): void { store<u64>(xr + off, v); }
@inline function sext32(v: u64): u64 { return <u64><i64><i32>v; }
@inline function RS1(xr: usize, e: usize): u64 { return X(xr, load<u16>(e, E_RS1)); }
@inline function RS2(xr: usize, e: usize): u64 { return X(xr, load<u16>(e, E_RS2)); }
/** The immediate, sign-extended: the operand form of the generated semantics (semantics.ts). */
@inline function IMM(e: usize): u64 { return <u64><i64>load<i32>(e, E_IMM); }

/** Decodes the instruction at virtual address va into entry e (or the span scratch entry); returns the entry to
 *  execute, or 0 after raising a fetch fault. */
function decodeAt(e: usize, va: u64, op: u32): usize {
  const lo = fetchParcel(va);
  if (H.exc) return 0;
  if ((lo & 3) != 3) { decode16(e, lo); return e; }
  if ((va & 0xfff) == 0xffe) {
    // the upper half is on the next page, whose mapping may change independently: decode afresh every time
    store<u8>(e, O.OP_SPANNING);
    const hi = fetchParcel(va + 2);
    if (H.exc) return 0;
    decode32(spanEntry, lo | (hi << 16));
    return spanEntry;
  }
  const hi = <u32>load<u16>(fetchPage(va) + <usize>(va & 0xfff) + 2);
  decode32(e, lo | (hi << 16));
  return e;
}

/** Runs up to budget steps (an instruction or a trap each). Returns a STOP_* reason; pc and instret (instructions
 *  retired, traps not counted) are up to date on return. */
export function run(budget: i32): u32 {
  const xr = xregs;
  const fr = fregs;
  const tR = tlbRead;
  const tW = tlbWrite;
  let p = H.pc;
  let n = budget;
  let codePage: u64 = 1; // the virtual page codeBase belongs to; 1 = none (not page aligned)
  let codeBase: usize = 0;
  let dKey: u64 = 0;
  let e: usize = crossEntry; // the decoded entry for p
  // With the JIT on (jit.ts): the page p was last looked up on (1 = none), its host address, its decoded entries
  // and its guest physical address; codePage follows it while p is interpreted there, and backward taken
  // branches within it go through probeEntry (loops' heads are counted and entered).
  const probeLoops = jitEnabled;
  let jitPage: u64 = 1;
  let jitHost: usize = 0;
  let jitBase: usize = 0; // 0 until something on the page is interpreted
  let jitPhys: u64 = 0;
  let interpretNext = false; // a region left at a load or store it could not do: interpret it before entering again

  // Another thread's remote fence (a word in the block, so it needs no call into this instance).
  if (H.flushRequest) {
    const req = atomic.xchg<u32>(changetype<usize>(H) + offsetof<HartFields>("flushRequest"), 0);
    if (req & FLUSH_TLB) flushTlbs();
    if (req & FLUSH_DECODED) flushDecodeCache();
  }
  // Sort out state before the first instruction, as after any state change.
  let irq = pendingInterrupt();
  if (irq) p = takeTrap(p, irq, 0);
  if (H.tlbFlushNeeded) { flushTlbs(); clearTlbFlush(); }
  if (H.keysEpoch != H.translationEpoch) updateKeys();
  dKey = H.dataKey;

  while (n > 0) {
    const op = <u32>load<u8>(e);
    n--;
    switch (op) {
      case O.OP_PAGE_CROSS:
      case O.OP_JIT_PROBE:
      case O.OP_JIT_LOOP: {
        // p left the decoded page (sequentially, by a jump, or after a state change): find its page's entries.
        // (OP_JIT_PROBE, OP_JIT_LOOP: p is a block start or a loop's head on the same page, to look up below.)
        n++;
        if (op == O.OP_JIT_LOOP && (++loopTick & (LOOP_SAMPLE - 1)) != 0) { e = codeBase + (<usize>(p & 0xffe) << 3); continue; }
        if (op == O.OP_PAGE_CROSS && (p & ~0xfff) == codePage) { e = codeBase + (<usize>(p & 0xffe) << 3); continue; }
        if (!jitEnabled || (p & ~0xfff) != jitPage) {
          const hostPage = fetchPage(p);
          if (H.exc) {
            H.exc = 0;
            const handler = takeTrap(p, H.excCause, H.excTval);
            if (handler == p) {
              // the trap handler itself cannot be fetched: the hart would loop forever
              H.pc = p;
              H.instret += <u64>(budget - n);
              return STOP_FATAL;
            }
            p = handler;
            n--; H.instret--; // a trap spends a step of the budget (so run() always returns) but retires nothing
            if (H.keysEpoch != H.translationEpoch) updateKeys();
            dKey = H.dataKey;
            codePage = 1;
            jitPage = 1;
            continue;
          }
          if (!jitEnabled) {
            codeBase = decodedPage(hostPage);
            codePage = p & ~0xfff;
            e = codeBase + (<usize>(p & 0xffe) << 3);
            continue;
          }
          // The page the JIT runs on: found through the fetch translation of the current context, so the physical
          // address the block start is looked up with is the one this virtual pc maps to now. Its decoded
          // entries are found only when something on it is interpreted.
          jitPage = p & ~0xfff;
          jitHost = hostPage;
          jitBase = 0;
          jitPhys = <u64>hostPage + ramHostToGuest;
        }
        // With the JIT on, p starts a block: enter its compiled code, count it, or ask the host to compile it.
        const slot = interpretNext ? 0 : jitProbe(p, jitPhys | (p & 0xfff), (op == O.OP_JIT_LOOP ? LOOP_SAMPLE : 1) * (H.priv == PRV_U ? USER_WEIGHT : 1));
        interpretNext = false;
        if (slot == JIT_REQUEST) {
          H.pc = p;
          H.instret += <u64>(budget - n);
          jitNoteSteps(budget - n);
          return STOP_JIT;
        }
        // Enter only with budget for a whole block left, so that the region's entry block fits (it stops within
        // n); else interpret from p.
        if (slot == 0 || slot == JIT_NONE || n < JIT_MAX_BLOCK) {
          // interpreted: the page is the decoded page, where taken branches go on directly (backward ones through
          // probeEntry)
          if (!jitBase) jitBase = decodedPage(jitHost);
          codePage = jitPage;
          codeBase = jitBase;
          e = jitBase + (<usize>(p & 0xffe) << 3);
          continue;
        }
        // The block's ABI (src/jit/compile-region.ts): H.pc at its first instruction, H.exc 0, the TLB keys current
        // (this loop brings them up to date after every change); none retired so far in this call. It adds what it
        // retired to H.instret, which this loop instead counts in n (instret is H.instret + budget - n on return).
        H.pc = p;
        const instretBefore = H.instret;
        const exit = call_indirect<u32>(slot, hartBase, 0, n);
        const retired = H.instret - instretBefore;
        n -= <i32>retired;
        H.instret = instretBefore;
        jitCounted(retired);
        p = H.pc;
        e = probeEntry; // the next block start: looked up through this case again, on this page or not
        // Nothing a block runs changes interrupt enables, privilege or translation (it stops before any CSR or
        // system instruction), and the host changes interrupt lines only between run() calls: there is nothing to
        // look at between blocks but a pending trap (a block touches no device: it leaves at any access its TLB
        // path cannot do, EXIT_MISS, and the interpreter does it).
        interpretNext = exit == JIT_EXIT_MISS;
        if (exit != JIT_EXIT_EXC) continue;
        n--; // the faulting instruction spends a step but does not retire: taken below as after any instruction
        break;
      }
      case O.OP_UNDECODED:
      case O.OP_SPANNING: {
        // First execution at this address (or a page-straddling instruction): decode, then dispatch again.
        const d = decodeAt(e, p, op);
        if (H.exc) break;
        e = d;
        n++;
        continue;
      }
      // ---- RV64I ----------------------------------------------------------------------------------------------
      case O.OP_LUI: setX(xr, RD(e), S.LUI(IMM(e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_AUIPC: setX(xr, RD(e), S.AUIPC(IMM(e), p)); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_JAL: { setX(xr, RD(e), p + load<u8>(e, E_LEN)); const imm = load<i32>(e, E_IMM); p += <u64><i64>imm; e = takenEntry(p, codePage, codeBase, probeLoops && imm < 0); continue; }
      case O.OP_JALR: {
        const t = (X(xr, load<u16>(e, E_RS1)) + <u64><i64>load<i32>(e, E_IMM)) & ~1;
        setX(xr, RD(e), p + load<u8>(e, E_LEN));
        p = t;
        e = entryFor(p, codePage, codeBase);
        continue;
      }
      case O.OP_BEQ:
        if (S.BEQ(RS1(xr, e), RS2(xr, e))) { const imm = load<i32>(e, E_IMM); p += <u64><i64>imm; e = takenEntry(p, codePage, codeBase, probeLoops && imm < 0); }
        else { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; }
        continue;
      case O.OP_BNE:
        if (S.BNE(RS1(xr, e), RS2(xr, e))) { const imm = load<i32>(e, E_IMM); p += <u64><i64>imm; e = takenEntry(p, codePage, codeBase, probeLoops && imm < 0); }
        else { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; }
        continue;
      case O.OP_BLT:
        if (S.BLT(RS1(xr, e), RS2(xr, e))) { const imm = load<i32>(e, E_IMM); p += <u64><i64>imm; e = takenEntry(p, codePage, codeBase, probeLoops && imm < 0); }
        else { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; }
        continue;
      case O.OP_BGE:
        if (S.BGE(RS1(xr, e), RS2(xr, e))) { const imm = load<i32>(e, E_IMM); p += <u64><i64>imm; e = takenEntry(p, codePage, codeBase, probeLoops && imm < 0); }
        else { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; }
        continue;
      case O.OP_BLTU:
        if (S.BLTU(RS1(xr, e), RS2(xr, e))) { const imm = load<i32>(e, E_IMM); p += <u64><i64>imm; e = takenEntry(p, codePage, codeBase, probeLoops && imm < 0); }
        else { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; }
        continue;
      case O.OP_BGEU:
        if (S.BGEU(RS1(xr, e), RS2(xr, e))) { const imm = load<i32>(e, E_IMM); p += <u64><i64>imm; e = takenEntry(p, codePage, codeBase, probeLoops && imm < 0); }
        else { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; }
        continue;

      // Loads and stores: a TLB hit (tag match, access inside the page) is a load at va + addend.
      case O.OP_LD: {
        const va = X(xr, load<u16>(e, E_RS1)) + <u64><i64>load<i32>(e, E_IMM);
        const h = tlbHit(tR, va, dKey, 8);
        let v: u64;
        if (h) v = load<u64>(h);
        else { v = loadSlow(va, 8); if (H.exc) break; }
        setX(xr, RD(e), v); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      }
      case O.OP_LW: {
        const va = X(xr, load<u16>(e, E_RS1)) + <u64><i64>load<i32>(e, E_IMM);
        const h = tlbHit(tR, va, dKey, 4);
        let v: u64;
        if (h) v = <u64><i64>load<i32>(h);
        else { v = sext32(loadSlow(va, 4)); if (H.exc) break; }
        setX(xr, RD(e), v); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      }
      case O.OP_LWU: {
        const va = X(xr, load<u16>(e, E_RS1)) + <u64><i64>load<i32>(e, E_IMM);
        const h = tlbHit(tR, va, dKey, 4);
        let v: u64;
        if (h) v = <u64>load<u32>(h);
        else { v = loadSlow(va, 4); if (H.exc) break; }
        setX(xr, RD(e), v); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      }
      case O.OP_LH: {
        const va = X(xr, load<u16>(e, E_RS1)) + <u64><i64>load<i32>(e, E_IMM);
        const h = tlbHit(tR, va, dKey, 2);
        let v: u64;
        if (h) v = <u64><i64>load<i16>(h);
        else { v = <u64><i64><i16>loadSlow(va, 2); if (H.exc) break; }
        setX(xr, RD(e), v); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      }
      case O.OP_LHU: {
        const va = X(xr, load<u16>(e, E_RS1)) + <u64><i64>load<i32>(e, E_IMM);
        const h = tlbHit(tR, va, dKey, 2);
        let v: u64;
        if (h) v = <u64>load<u16>(h);
        else { v = loadSlow(va, 2); if (H.exc) break; }
        setX(xr, RD(e), v); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      }
      case O.OP_LB: {
        const va = X(xr, load<u16>(e, E_RS1)) + <u64><i64>load<i32>(e, E_IMM);
        const h = tlbHit(tR, va, dKey, 1);
        let v: u64;
        if (h) v = <u64><i64>load<i8>(h);
        else { v = <u64><i64><i8>loadSlow(va, 1); if (H.exc) break; }
        setX(xr, RD(e), v); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      }
      case O.OP_LBU: {
        const va = X(xr, load<u16>(e, E_RS1)) + <u64><i64>load<i32>(e, E_IMM);
        const h = tlbHit(tR, va, dKey, 1);
        let v: u64;
        if (h) v = <u64>load<u8>(h);
        else { v = loadSlow(va, 1); if (H.exc) break; }
        setX(xr, RD(e), v); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      }
      case O.OP_SD: {
        const va = X(xr, load<u16>(e, E_RS1)) + <u64><i64>load<i32>(e, E_IMM);
        const v = X(xr, load<u16>(e, E_RS2));
        const h = tlbHit(tW, va, dKey, 8);
        if (h) store<u64>(h, v);
        else { storeSlow(va, 8, v); if (H.exc) break; }
        { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      }
      case O.OP_SW: {
        const va = X(xr, load<u16>(e, E_RS1)) + <u64><i64>load<i32>(e, E_IMM);
        const v = X(xr, load<u16>(e, E_RS2));
        const h = tlbHit(tW, va, dKey, 4);
        if (h) store<u32>(h, <u32>v);
        else { storeSlow(va, 4, v); if (H.exc) break; }
        { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      }
      case O.OP_SH: {
        const va = X(xr, load<u16>(e, E_RS1)) + <u64><i64>load<i32>(e, E_IMM);
        const v = X(xr, load<u16>(e, E_RS2));
        const h = tlbHit(tW, va, dKey, 2);
        if (h) store<u16>(h, <u16>v);
        else { storeSlow(va, 2, v); if (H.exc) break; }
        { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      }
      case O.OP_SB: {
        const va = X(xr, load<u16>(e, E_RS1)) + <u64><i64>load<i32>(e, E_IMM);
        const v = X(xr, load<u16>(e, E_RS2));
        const h = tlbHit(tW, va, dKey, 1);
        if (h) store<u8>(h, <u8>v);
        else { storeSlow(va, 1, v); if (H.exc) break; }
        { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      }

      case O.OP_ADDI: setX(xr, RD(e), S.ADDI(RS1(xr, e), IMM(e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_SLTI: setX(xr, RD(e), S.SLTI(RS1(xr, e), IMM(e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_SLTIU: setX(xr, RD(e), S.SLTIU(RS1(xr, e), IMM(e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_XORI: setX(xr, RD(e), S.XORI(RS1(xr, e), IMM(e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_ORI: setX(xr, RD(e), S.ORI(RS1(xr, e), IMM(e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_ANDI: setX(xr, RD(e), S.ANDI(RS1(xr, e), IMM(e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_SLLI: setX(xr, RD(e), S.SLLI(RS1(xr, e), IMM(e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_SRLI: setX(xr, RD(e), S.SRLI(RS1(xr, e), IMM(e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_SRAI: setX(xr, RD(e), S.SRAI(RS1(xr, e), IMM(e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_ADD: setX(xr, RD(e), S.ADD(RS1(xr, e), RS2(xr, e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_SUB: setX(xr, RD(e), S.SUB(RS1(xr, e), RS2(xr, e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_SLL: setX(xr, RD(e), S.SLL(RS1(xr, e), RS2(xr, e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_SLT: setX(xr, RD(e), S.SLT(RS1(xr, e), RS2(xr, e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_SLTU: setX(xr, RD(e), S.SLTU(RS1(xr, e), RS2(xr, e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_XOR: setX(xr, RD(e), S.XOR(RS1(xr, e), RS2(xr, e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_SRL: setX(xr, RD(e), S.SRL(RS1(xr, e), RS2(xr, e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_SRA: setX(xr, RD(e), S.SRA(RS1(xr, e), RS2(xr, e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_OR: setX(xr, RD(e), S.OR(RS1(xr, e), RS2(xr, e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_AND: setX(xr, RD(e), S.AND(RS1(xr, e), RS2(xr, e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_ADDIW: setX(xr, RD(e), S.ADDIW(RS1(xr, e), IMM(e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_SLLIW: setX(xr, RD(e), S.SLLIW(RS1(xr, e), IMM(e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_SRLIW: setX(xr, RD(e), S.SRLIW(RS1(xr, e), IMM(e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_SRAIW: setX(xr, RD(e), S.SRAIW(RS1(xr, e), IMM(e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_ADDW: setX(xr, RD(e), S.ADDW(RS1(xr, e), RS2(xr, e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_SUBW: setX(xr, RD(e), S.SUBW(RS1(xr, e), RS2(xr, e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_SLLW: setX(xr, RD(e), S.SLLW(RS1(xr, e), RS2(xr, e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_SRLW: setX(xr, RD(e), S.SRLW(RS1(xr, e), RS2(xr, e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_SRAW: setX(xr, RD(e), S.SRAW(RS1(xr, e), RS2(xr, e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }

      // ---- M --------------------------------------------------------------------------------------------------
      case O.OP_MUL: setX(xr, RD(e), S.MUL(RS1(xr, e), RS2(xr, e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_MULH: setX(xr, RD(e), S.MULH(RS1(xr, e), RS2(xr, e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_MULHSU: setX(xr, RD(e), S.MULHSU(RS1(xr, e), RS2(xr, e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_MULHU: setX(xr, RD(e), S.MULHU(RS1(xr, e), RS2(xr, e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_DIV: setX(xr, RD(e), S.DIV(RS1(xr, e), RS2(xr, e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_DIVU: setX(xr, RD(e), S.DIVU(RS1(xr, e), RS2(xr, e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_REM: setX(xr, RD(e), S.REM(RS1(xr, e), RS2(xr, e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_REMU: setX(xr, RD(e), S.REMU(RS1(xr, e), RS2(xr, e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_MULW: setX(xr, RD(e), S.MULW(RS1(xr, e), RS2(xr, e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_DIVW: setX(xr, RD(e), S.DIVW(RS1(xr, e), RS2(xr, e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_DIVUW: setX(xr, RD(e), S.DIVUW(RS1(xr, e), RS2(xr, e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_REMW: setX(xr, RD(e), S.REMW(RS1(xr, e), RS2(xr, e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_REMUW: setX(xr, RD(e), S.REMUW(RS1(xr, e), RS2(xr, e))); { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }

      // ---- A --------------------------------------------------------------------------------------------------
      case O.OP_LR_W: case O.OP_SC_W: case O.OP_AMOSWAP_W: case O.OP_AMOADD_W: case O.OP_AMOXOR_W:
      case O.OP_AMOAND_W: case O.OP_AMOOR_W: case O.OP_AMOMIN_W: case O.OP_AMOMAX_W: case O.OP_AMOMINU_W:
      case O.OP_AMOMAXU_W: case O.OP_LR_D: case O.OP_SC_D: case O.OP_AMOSWAP_D: case O.OP_AMOADD_D:
      case O.OP_AMOXOR_D: case O.OP_AMOAND_D: case O.OP_AMOOR_D: case O.OP_AMOMIN_D: case O.OP_AMOMAX_D:
      case O.OP_AMOMINU_D: case O.OP_AMOMAXU_D:
        execAtomic(op, e);
        if (H.exc) break;
        { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; }
        continue;

      // ---- F and D loads and stores ---------------------------------------------------------------------------
      case O.OP_FLW: case O.OP_FLD: {
        if (!fpEnabled()) { raise(CAUSE_ILLEGAL_INSTRUCTION, load<u32>(e, E_RAW)); break; }
        const va = X(xr, load<u16>(e, E_RS1)) + <u64><i64>load<i32>(e, E_IMM);
        const size: u32 = op == O.OP_FLD ? 8 : 4;
        const te = tR + ((<usize>(va >> 12) & (TLB_ENTRIES - 1)) * TLB_ENTRY_SIZE);
        let v: u64;
        if (load<u64>(te) == ((va >> 12) | dKey) && (<u32>va & 0xfff) <= 4096 - size) {
          const h = <usize>(va + load<u64>(te, 8));
          v = size == 8 ? load<u64>(h) : <u64>load<u32>(h);
        } else {
          v = loadSlow(va, size);
          if (H.exc) break;
        }
        store<u64>(fr + RD(e), fpLoaded(v, size));
        markFsDirty();
        { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; }
        continue;
      }
      case O.OP_FSW: case O.OP_FSD: {
        if (!fpEnabled()) { raise(CAUSE_ILLEGAL_INSTRUCTION, load<u32>(e, E_RAW)); break; }
        const va = X(xr, load<u16>(e, E_RS1)) + <u64><i64>load<i32>(e, E_IMM);
        const v = load<u64>(fr + <usize>load<u16>(e, E_RS2));
        const size: u32 = op == O.OP_FSD ? 8 : 4;
        const te = tW + ((<usize>(va >> 12) & (TLB_ENTRIES - 1)) * TLB_ENTRY_SIZE);
        if (load<u64>(te) == ((va >> 12) | dKey) && (<u32>va & 0xfff) <= 4096 - size) {
          const h = <usize>(va + load<u64>(te, 8));
          if (size == 8) store<u64>(h, v); else store<u32>(h, <u32>v);
        } else {
          storeSlow(va, size, v);
          if (H.exc) break;
        }
        { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; }
        continue;
      }

      // ---- system ---------------------------------------------------------------------------------------------
      case O.OP_FENCE: { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; continue; }
      case O.OP_FENCE_I:
        // The decoded instructions of pages written since the last one went at the stores (code-pages.ts); the
        // break below looks p's page up afresh. The JIT's regions of those pages go now, in the host.
        p += load<u8>(e, E_LEN);
        if (fenceI()) { jitNoteSteps(budget - n); requestStop(STOP_FENCE_I); }
        break;
      case O.OP_ECALL:
        if (H.sbiInHost && H.priv == PRV_S) {
          p += load<u8>(e, E_LEN);
          requestStop(STOP_ECALL);
          break;
        }
        raise(CAUSE_USER_ECALL + <u64>H.priv, 0);
        break;
      case O.OP_EBREAK: raise(CAUSE_BREAKPOINT, p); break;
      case O.OP_MRET:
        if (H.priv != PRV_M) { raise(CAUSE_ILLEGAL_INSTRUCTION, load<u32>(e, E_RAW)); break; }
        p = doMret(H.mepc);
        break;
      case O.OP_SRET:
        if (H.priv == PRV_U || (H.priv == PRV_S && (H.mstatus & MSTATUS_TSR) != 0)) {
          raise(CAUSE_ILLEGAL_INSTRUCTION, load<u32>(e, E_RAW));
          break;
        }
        p = doSret(H.sepc);
        break;
      case O.OP_WFI:
        if (H.priv == PRV_U || (H.priv == PRV_S && (H.mstatus & MSTATUS_TW) != 0)) {
          raise(CAUSE_ILLEGAL_INSTRUCTION, load<u32>(e, E_RAW));
          break;
        }
        p += load<u8>(e, E_LEN);
        if ((mip() & H.mie) == 0) requestStop(STOP_WFI);
        break;
      case O.OP_SFENCE_VMA:
        if (H.priv == PRV_U || (H.priv == PRV_S && (H.mstatus & MSTATUS_TVM) != 0)) {
          raise(CAUSE_ILLEGAL_INSTRUCTION, load<u32>(e, E_RAW));
          break;
        }
        flushTlbs();
        p += load<u8>(e, E_LEN);
        break;
      case O.OP_CSRRW: case O.OP_CSRRS: case O.OP_CSRRC: case O.OP_CSRRWI: case O.OP_CSRRSI: case O.OP_CSRRCI: {
        const raw = load<u32>(e, E_RAW);
        const csr = raw >> 20;
        const field = (raw >> 15) & 31;
        const src: u64 = op >= O.OP_CSRRWI ? <u64>field : X(xr, load<u16>(e, E_RS1));
        const isWrite = op == O.OP_CSRRW || op == O.OP_CSRRWI || field != 0;
        const retired = H.instret + <u64>(budget - n) - 1;
        const old = csrRead(csr, isWrite, retired, raw);
        if (H.exc) break;
        if (isWrite) {
          const kind = op >= O.OP_CSRRWI ? op - 3 : op;
          csrWrite(csr, kind == O.OP_CSRRW ? src : kind == O.OP_CSRRS ? old | src : old & ~src, retired);
        }
        setX(xr, RD(e), old);
        p += load<u8>(e, E_LEN);
        break; // the write may have enabled interrupts or changed translation
      }
      case O.OP_ILLEGAL: raise(CAUSE_ILLEGAL_INSTRUCTION, load<u32>(e, E_RAW)); break;
      default:
        // F and D computational instructions
        execFp(op, e);
        if (H.exc) break;
        { const l = <usize>load<u8>(e, E_LEN); p += l; e += l << 3; }
        continue;
    }

    // Reached by `break`: an exception, a stop request, or a change of state the loop caches.
    if (H.exc) {
      if (H.exc == EXC_STOP) {
        H.exc = 0;
        const reason = H.stopReason;
        if (reason == STOP_MMIO) n++; // the access is re-executed once the host has answered
        else if (reason == STOP_HTIF) p += load<u8>(e, E_LEN); // the store to tohost completed
        H.pc = p;
        H.instret += <u64>(budget - n);
        return reason;
      }
      H.exc = 0;
      // A trapping instruction does not retire, but it spends its step of the budget: a handler whose first
      // instruction traps again (a trap vector on an illegal or unfetchable word) must not keep run() from
      // returning. instret (to which run() adds the steps spent, budget - n) is lowered instead, which keeps the
      // loop's locals as they were.
      H.instret--;
      p = takeTrap(p, H.excCause, H.excTval);
    }
    irq = pendingInterrupt();
    if (irq) p = takeTrap(p, irq, 0);
    if (H.tlbFlushNeeded) { flushTlbs(); clearTlbFlush(); }
    if (H.keysEpoch != H.translationEpoch) updateKeys();
    dKey = H.dataKey;
    codePage = 1;
    jitPage = 1;
    e = crossEntry;
  }
  H.pc = p;
  H.instret += <u64>(budget - n);
  return STOP_SLICE;
}
