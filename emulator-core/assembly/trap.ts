// Trap entry (exceptions and interrupts), delegation to S-mode, and the interrupt-pending check.

import { H, PRV_M, PRV_S, CAUSE_INTERRUPT, IRQ_MEI, IRQ_MSI, IRQ_MTI, IRQ_SEI, IRQ_SSI, IRQ_STI } from "./state";
import {
  setMstatus, mip, setMepc, setSepc, setMcause, setScause, setMtval, setStval, bumpEpoch, MSTATUS_SIE, MSTATUS_MIE,
  MSTATUS_SPIE, MSTATUS_MPIE, MSTATUS_SPP, MSTATUS_MPP, MSTATUS_MPP_SHIFT,
} from "./csr";

/** Enters the trap handler for cause (bit 63 set for interrupts) raised by the instruction at pc; returns the
 *  handler's address. */
export function takeTrap(pc: u64, cause: u64, tval: u64): u64 {
  const isInterrupt = (cause & CAUSE_INTERRUPT) != 0;
  const code = cause & 63;
  const deleg = isInterrupt ? H.mideleg : H.medeleg;
  const from = H.priv;
  if (from <= PRV_S && ((deleg >> code) & 1) != 0) {
    setScause(cause);
    setSepc(pc);
    setStval(tval);
    let s = H.mstatus & ~(MSTATUS_SPP | MSTATUS_SPIE | MSTATUS_SIE);
    if (H.mstatus & MSTATUS_SIE) s |= MSTATUS_SPIE;
    if (from == PRV_S) s |= MSTATUS_SPP;
    setMstatus(s);
    H.priv = PRV_S;
    bumpEpoch();
    return vector(H.stvec, isInterrupt, code);
  }
  setMcause(cause);
  setMepc(pc);
  setMtval(tval);
  let s = H.mstatus & ~(MSTATUS_MPP | MSTATUS_MPIE | MSTATUS_MIE);
  if (H.mstatus & MSTATUS_MIE) s |= MSTATUS_MPIE;
  s |= <u64>from << MSTATUS_MPP_SHIFT;
  setMstatus(s);
  H.priv = PRV_M;
  bumpEpoch();
  return vector(H.mtvec, isInterrupt, code);
}

@inline function vector(tvec: u64, isInterrupt: bool, code: u64): u64 {
  const base = tvec & ~3;
  return isInterrupt && (tvec & 3) == 1 ? base + 4 * code : base;
}

/** The interrupt to take now, as a cause with bit 63 set, or 0 if none. Priority: MEI, MSI, MTI, SEI, SSI, STI. */
export function pendingInterrupt(): u64 {
  const pending = mip() & H.mie;
  if (pending == 0) return 0;
  // M-level: interrupts not delegated; enabled below M always, in M when MIE.
  const mEnabled = H.priv < PRV_M || (H.mstatus & MSTATUS_MIE) != 0;
  let take = mEnabled ? pending & ~H.mideleg : 0;
  if (take == 0) {
    // S-level: delegated ones; enabled below S always, in S when SIE, never in M.
    const sEnabled = H.priv < PRV_S || (H.priv == PRV_S && (H.mstatus & MSTATUS_SIE) != 0);
    take = sEnabled ? pending & H.mideleg : 0;
    if (take == 0) return 0;
  }
  if (take & IRQ_MEI) return CAUSE_INTERRUPT | 11;
  if (take & IRQ_MSI) return CAUSE_INTERRUPT | 3;
  if (take & IRQ_MTI) return CAUSE_INTERRUPT | 7;
  if (take & IRQ_SEI) return CAUSE_INTERRUPT | 9;
  if (take & IRQ_SSI) return CAUSE_INTERRUPT | 1;
  if (take & IRQ_STI) return CAUSE_INTERRUPT | 5;
  return 0;
}

/** MRET: returns the new pc (mepc). */
export function doMret(mepcValue: u64): u64 {
  const target = <u32>((H.mstatus >> MSTATUS_MPP_SHIFT) & 3);
  let s = H.mstatus & ~(MSTATUS_MPP | MSTATUS_MIE);
  if (H.mstatus & MSTATUS_MPIE) s |= MSTATUS_MIE;
  s |= MSTATUS_MPIE;
  if (target != PRV_M) s &= ~(<u64>1 << 17); // MPRV cleared when leaving M
  setMstatus(s);
  H.priv = target;
  bumpEpoch();
  return mepcValue;
}

/** SRET: returns the new pc (sepc). */
export function doSret(sepcValue: u64): u64 {
  const target = (H.mstatus & MSTATUS_SPP) != 0 ? PRV_S : 0;
  let s = H.mstatus & ~(MSTATUS_SPP | MSTATUS_SIE);
  if (H.mstatus & MSTATUS_SPIE) s |= MSTATUS_SIE;
  s |= MSTATUS_SPIE;
  s &= ~(<u64>1 << 17);
  setMstatus(s);
  H.priv = target;
  bumpEpoch();
  return sepcValue;
}
