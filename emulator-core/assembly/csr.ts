// Control and status registers (Zicsr, Zicntr, the privileged spec's M and S CSRs).
//
// Values live in the hart's state block (H.*, see hart-state.mjs). Writes go through per-CSR WARL masks. An access
// to a CSR that does not exist, from too low a privilege, or a write to a read-only one raises illegal-instruction.

import {
  H, pmpcfgs, pmpaddrs, PRV_M, PRV_S, PRV_U, raise, CAUSE_ILLEGAL_INSTRUCTION, setInstretBase, IRQ_SSI, IRQ_STI, IRQ_SEI, IRQ_MSI,
  IRQ_MTI, IRQ_MEI,
} from "./state";

// mstatus fields
export const MSTATUS_SIE: u64 = 1 << 1;
export const MSTATUS_MIE: u64 = 1 << 3;
export const MSTATUS_SPIE: u64 = 1 << 5;
export const MSTATUS_MPIE: u64 = 1 << 7;
export const MSTATUS_SPP: u64 = 1 << 8;
export const MSTATUS_MPP_SHIFT: u64 = 11;
export const MSTATUS_MPP: u64 = 3 << 11;
export const MSTATUS_FS: u64 = 3 << 13;
export const MSTATUS_FS_DIRTY: u64 = 3 << 13;
export const MSTATUS_MPRV: u64 = 1 << 17;
export const MSTATUS_SUM: u64 = 1 << 18;
export const MSTATUS_MXR: u64 = 1 << 19;
export const MSTATUS_TVM: u64 = 1 << 20;
export const MSTATUS_TW: u64 = 1 << 21;
export const MSTATUS_TSR: u64 = 1 << 22;
export const MSTATUS_UXL: u64 = 3 << 32;
export const MSTATUS_SXL: u64 = 3 << 34;
export const MSTATUS_SD: u64 = 1 << 63;
const XLEN64_BOTH: u64 = (2 << 32) | (2 << 34); // UXL = SXL = 64-bit, read-only

const MSTATUS_WRITABLE: u64 = MSTATUS_SIE | MSTATUS_MIE | MSTATUS_SPIE | MSTATUS_MPIE | MSTATUS_SPP | MSTATUS_MPP |
  MSTATUS_FS | MSTATUS_MPRV | MSTATUS_SUM | MSTATUS_MXR | MSTATUS_TVM | MSTATUS_TW | MSTATUS_TSR;
export const SSTATUS_VISIBLE: u64 = MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP | MSTATUS_FS | MSTATUS_SUM | MSTATUS_MXR |
  MSTATUS_UXL | MSTATUS_SD;
const SSTATUS_WRITABLE: u64 = MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP | MSTATUS_FS | MSTATUS_SUM | MSTATUS_MXR;

// misa: RV64 (MXL = 2) with A, C, D, F, I, M, S, U
export const MISA: u64 = (2 << 62) | (1 << 0) | (1 << 2) | (1 << 3) | (1 << 5) | (1 << 8) | (1 << 12) | (1 << 18) | (1 << 20);

const MEDELEG_WRITABLE: u64 = 0xb3ff; // every synchronous cause but ECALL from M (11) and the reserved ones
const MIDELEG_WRITABLE: u64 = IRQ_SSI | IRQ_STI | IRQ_SEI;
const MIE_WRITABLE: u64 = IRQ_SSI | IRQ_STI | IRQ_SEI | IRQ_MSI | IRQ_MTI | IRQ_MEI;
const MIP_WRITABLE: u64 = IRQ_SSI | IRQ_STI | IRQ_SEI; // MSIP, MTIP, MEIP are driven by devices
const SATP_MODE_BARE: u64 = 0;
export const SATP_MODE_SV39: u64 = 8;
export const SATP_MODE_SV48: u64 = 9;
const SATP_PPN_MASK: u64 = (1 << 44) - 1;

// PMP registers are stored (in the block's PMPCFG and PMPADDR regions) but not enforced.
@inline function pmpcfgAt(i: u32): usize { return pmpcfgs + (<usize>i << 3); }
@inline function pmpaddrAt(i: u32): usize { return pmpaddrs + (<usize>i << 3); }

export function mip(): u64 { return H.mipSoftware | H.mipLines; }

// --- setters used by trap handling (trap.ts) and the host API --------------------------------------------------
export function setMstatus(v: u64): void {
  const fs = v & MSTATUS_FS;
  v = (v & ~MSTATUS_SD) | XLEN64_BOTH;
  if (fs == MSTATUS_FS) v |= MSTATUS_SD;
  if (((v ^ H.mstatus) & (MSTATUS_SUM | MSTATUS_MXR | MSTATUS_MPRV | MSTATUS_MPP)) != 0) H.translationEpoch++;
  H.mstatus = v;
}
// Every FP register write marks the state dirty; it almost always is already, and a load is cheaper than a store
// in the interpreter's loop.
@inline export function markFsDirty(): void {
  const s = H.mstatus;
  if ((s & MSTATUS_FS_DIRTY) != MSTATUS_FS_DIRTY) H.mstatus = s | MSTATUS_FS_DIRTY | MSTATUS_SD;
}
@inline export function fpEnabled(): bool { return (H.mstatus & MSTATUS_FS) != 0; }
export function setMepc(v: u64): void { H.mepc = v & ~1; }
export function setSepc(v: u64): void { H.sepc = v & ~1; }
export function setMcause(v: u64): void { H.mcause = v; }
export function setScause(v: u64): void { H.scause = v; }
export function setMtval(v: u64): void { H.mtval = v; }
export function setStval(v: u64): void { H.stval = v; }
export function setMipLines(v: u64): void { H.mipLines = v; }
export function setMhartid(v: u64): void { H.mhartid = v; }
export function setMtime(v: u64): void { H.mtime = v; }
export function bumpEpoch(): void { H.translationEpoch++; }
export function setMedeleg(v: u64): void { H.medeleg = v & MEDELEG_WRITABLE; }
export function setMideleg(v: u64): void { H.mideleg = v & MIDELEG_WRITABLE; }
export function setMcounteren(v: u64): void { H.mcounteren = v & 0xffffffff; }
export function setScounteren(v: u64): void { H.scounteren = v & 0xffffffff; }
export function clearTlbFlush(): void { H.tlbFlushNeeded = 0; }

export function resetCsrs(hartid: u64): void {
  H.mstatus = XLEN64_BOTH; H.medeleg = 0; H.mideleg = 0; H.mie = 0; H.mipSoftware = 0; H.mipLines = 0;
  H.mtvec = 0; H.stvec = 0; H.mepc = 0; H.sepc = 0; H.mcause = 0; H.scause = 0; H.mtval = 0; H.stval = 0;
  H.mscratch = 0; H.sscratch = 0; H.mcounteren = 0; H.scounteren = 0; H.menvcfg = 0; H.senvcfg = 0; H.mcountinhibit = 0;
  H.satp = 0; H.frm = 0; H.mhartid = hartid; H.tselect = 0; H.cycleOffset = 0;
  memory.fill(pmpcfgs, 0, 16 * 8);
  memory.fill(pmpaddrs, 0, 64 * 8);
  H.fflags = 0;
  H.translationEpoch++;
  H.tlbFlushNeeded = 1;
}

// --- access -----------------------------------------------------------------------------------------------------
export const CSR_FFLAGS: u32 = 0x001;
export const CSR_FRM: u32 = 0x002;
export const CSR_FCSR: u32 = 0x003;
export const CSR_SATP: u32 = 0x180;

function counterAllowed(index: u32): bool {
  if (H.priv == PRV_M) return true;
  if (((H.mcounteren >> index) & 1) == 0) return false;
  if (H.priv == PRV_U && ((H.scounteren >> index) & 1) == 0) return false;
  return true;
}

/** Whether the CSR exists and may be accessed at the current privilege (write = the instruction writes it). */
function accessible(csr: u32, write: bool): bool {
  if (write && (csr >> 10) == 3) return false;        // read-only CSR
  if (H.priv < ((csr >> 8) & 3)) return false;          // privilege too low
  if (csr == CSR_SATP && H.priv == PRV_S && (H.mstatus & MSTATUS_TVM) != 0) return false;
  return true;
}

/** Reads a CSR for a CSR instruction. `retired` = instructions retired so far (instret's current value). */
export function csrRead(csr: u32, write: bool, retired: u64, raw: u32): u64 {
  if (!accessible(csr, write)) { raise(CAUSE_ILLEGAL_INSTRUCTION, raw); return 0; }
  switch (csr) {
    case CSR_FFLAGS: if (!fpEnabled()) break; return H.fflags;
    case CSR_FRM: if (!fpEnabled()) break; return H.frm;
    case CSR_FCSR: if (!fpEnabled()) break; return (<u64>H.frm << 5) | H.fflags;
    case 0xc00: if (!counterAllowed(0)) break; return retired + H.cycleOffset; // one cycle per instruction
    case 0xc02: if (!counterAllowed(2)) break; return retired;
    case 0xc01: if (!counterAllowed(1)) break; return H.mtime;
    case 0x100: return H.mstatus & SSTATUS_VISIBLE;
    case 0x104: return H.mie & H.mideleg;
    case 0x105: return H.stvec;
    case 0x106: return H.scounteren;
    case 0x10a: return H.senvcfg;
    case 0x140: return H.sscratch;
    case 0x141: return H.sepc;
    case 0x142: return H.scause;
    case 0x143: return H.stval;
    case 0x144: return mip() & H.mideleg;
    case 0x180: return H.satp;
    case 0xf11: case 0xf12: case 0xf13: case 0xf15: return 0; // mvendorid, marchid, mimpid, mconfigptr
    case 0xf14: return H.mhartid;
    case 0x300: return H.mstatus;
    case 0x301: return MISA;
    case 0x302: return H.medeleg;
    case 0x303: return H.mideleg;
    case 0x304: return H.mie;
    case 0x305: return H.mtvec;
    case 0x306: return H.mcounteren;
    case 0x30a: return H.menvcfg;
    case 0x320: return H.mcountinhibit;
    case 0x340: return H.mscratch;
    case 0x341: return H.mepc;
    case 0x342: return H.mcause;
    case 0x343: return H.mtval;
    case 0x344: return mip();
    case 0xb00: return retired + H.cycleOffset; // mcycle
    case 0xb02: return retired; // minstret
    case 0x7a0: return H.tselect;
    case 0x7a1: case 0x7a2: case 0x7a3: return 0; // no triggers: tdata reads 0, writes are ignored
    default:
      if (csr >= 0xc03 && csr <= 0xc1f) { if (!counterAllowed(csr & 31)) break; return 0; } // hpmcounterN
      if (csr >= 0xb03 && csr <= 0xb1f) return 0; // mhpmcounterN
      if (csr >= 0x323 && csr <= 0x33f) return 0; // mhpmeventN
      if (csr >= 0x3a0 && csr <= 0x3af) { if (csr & 1) break; return load<u64>(pmpcfgAt(csr - 0x3a0)); }
      if (csr >= 0x3b0 && csr <= 0x3ef) return load<u64>(pmpaddrAt(csr - 0x3b0));
  }
  raise(CAUSE_ILLEGAL_INSTRUCTION, raw);
  return 0;
}

/** Writes a CSR after a successful csrRead of the same CSR (so existence and privilege are already checked).
 *  `retired` as for csrRead; the counter writes make the CSR instruction itself count as the last one before. */
export function csrWrite(csr: u32, v: u64, retired: u64): void {
  switch (csr) {
    case CSR_FFLAGS: H.fflags = <u32>v & 31; markFsDirty(); return;
    case CSR_FRM: H.frm = <u32>v & 7; markFsDirty(); return;
    case CSR_FCSR: H.fflags = <u32>v & 31; H.frm = (<u32>v >> 5) & 7; markFsDirty(); return;
    case 0x100: setMstatus((H.mstatus & ~SSTATUS_WRITABLE) | (v & SSTATUS_WRITABLE)); return;
    case 0x104: H.mie = (H.mie & ~H.mideleg) | (v & H.mideleg); return;
    case 0x105: H.stvec = legalTvec(v); return;
    case 0x106: H.scounteren = v & 0xffffffff; return;
    case 0x10a: H.senvcfg = v & 1; return;
    case 0x140: H.sscratch = v; return;
    case 0x141: setSepc(v); return;
    case 0x142: H.scause = v; return;
    case 0x143: H.stval = v; return;
    case 0x144: { const m = H.mideleg & IRQ_SSI; H.mipSoftware = (H.mipSoftware & ~m) | (v & m); return; }
    case 0x180: writeSatp(v); return;
    case 0x300: {
      let nv = (H.mstatus & ~MSTATUS_WRITABLE) | (v & MSTATUS_WRITABLE);
      if (((nv >> MSTATUS_MPP_SHIFT) & 3) == 2) nv &= ~MSTATUS_MPP; // MPP is WARL: H-mode does not exist
      setMstatus(nv);
      return;
    }
    case 0x301: return; // misa is read-only here (WARL)
    case 0x302: H.medeleg = v & MEDELEG_WRITABLE; return;
    case 0x303: H.mideleg = v & MIDELEG_WRITABLE; return;
    case 0x304: H.mie = v & MIE_WRITABLE; return;
    case 0x305: H.mtvec = legalTvec(v); return;
    case 0x306: H.mcounteren = v & 0xffffffff; return;
    case 0x30a: H.menvcfg = v & 1; return;
    case 0x320: H.mcountinhibit = v & 0xfffffffd; return;
    case 0x340: H.mscratch = v; return;
    case 0x341: setMepc(v); return;
    case 0x342: H.mcause = v; return;
    case 0x343: H.mtval = v; return;
    case 0x344: H.mipSoftware = (H.mipSoftware & ~MIP_WRITABLE) | (v & MIP_WRITABLE); return;
    // The CSR instruction itself counts as the last one before the new value.
    case 0xb00: H.cycleOffset = v - retired - 1; return;
    case 0xb02: {
      const delta = v - retired - 1;
      setInstretBase(H.instret + delta);
      H.cycleOffset -= delta; // mcycle is a separate counter: it keeps its value
      return;
    }
    case 0x7a0: H.tselect = v; return;
    default:
      if (csr >= 0x3a0 && csr <= 0x3af) { store<u64>(pmpcfgAt(csr - 0x3a0), v); return; }
      if (csr >= 0x3b0 && csr <= 0x3ef) { store<u64>(pmpaddrAt(csr - 0x3b0), v & ((1 << 54) - 1)); return; }
      // the remaining accessible CSRs (counters, IDs, tdata) ignore writes
  }
}

function legalTvec(v: u64): u64 {
  // MODE 0 (direct) and 1 (vectored) exist; the reserved modes keep the base and fall back to direct.
  return (v & 3) >= 2 ? v & ~3 : v;
}

function writeSatp(v: u64): void {
  const mode = v >> 60;
  // A write of an unsupported mode has no effect (the kernel probes Sv57, Sv48, Sv39 this way).
  if (mode != SATP_MODE_BARE && mode != SATP_MODE_SV39 && mode != SATP_MODE_SV48) return;
  H.satp = (mode << 60) | (v & SATP_PPN_MASK); // ASID is not implemented: it reads as 0
  H.translationEpoch++;
  H.tlbFlushNeeded = 1;
}

/** The status bits the interpreter's fetch/data contexts depend on */
export function effectiveDataPriv(): u32 {
  if (H.priv == PRV_M && (H.mstatus & MSTATUS_MPRV) != 0) return <u32>((H.mstatus >> MSTATUS_MPP_SHIFT) & 3);
  return H.priv;
}
export { PRV_U };
