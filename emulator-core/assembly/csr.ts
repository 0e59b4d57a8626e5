// Control and status registers (Zicsr, Zicntr, the privileged spec's M and S CSRs).
//
// Values are kept in module globals (one instance = one hart). Writes go through per-CSR WARL masks. An access
// to a CSR that does not exist, from too low a privilege, or a write to a read-only one raises illegal-instruction.

import {
  priv, PRV_M, PRV_S, PRV_U, raise, CAUSE_ILLEGAL_INSTRUCTION, instretBase, setInstretBase,
  IRQ_SSI, IRQ_STI, IRQ_SEI, IRQ_MSI, IRQ_MTI, IRQ_MEI,
} from "./state";
import * as SF from "./softfloat";

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

export let mstatus: u64 = XLEN64_BOTH;
export let medeleg: u64 = 0;
export let mideleg: u64 = 0;
export let mie: u64 = 0;
export let mipSoftware: u64 = 0;   // bits written by software
export let mipLines: u64 = 0;      // bits driven by devices (CLINT, PLIC) and the in-emulator SBI timer
export let mtvec: u64 = 0;
export let stvec: u64 = 0;
export let mepc: u64 = 0;
export let sepc: u64 = 0;
export let mcause: u64 = 0;
export let scause: u64 = 0;
export let mtval: u64 = 0;
export let stval: u64 = 0;
export let mscratch: u64 = 0;
export let sscratch: u64 = 0;
export let mcounteren: u64 = 0;
export let scounteren: u64 = 0;
export let menvcfg: u64 = 0;
export let senvcfg: u64 = 0;
export let mcountinhibit: u64 = 0;
export let satp: u64 = 0;
export let frm: u32 = 0;
export let mhartid: u64 = 0;
export let mtime: u64 = 0;         // the platform timer (CLINT mtime), kept current by the host
const pmpcfg = new StaticArray<u64>(16);
const pmpaddr = new StaticArray<u64>(64);
export let tselect: u64 = 0;
/** mcycle = instructions retired + cycleOffset (the two counters are written independently) */
export let cycleOffset: u64 = 0;

/** Bumped whenever translation-relevant state changes (satp, SUM, MXR, MPRV, MPP, privilege): the interpreter
 *  compares it to drop its cached fetch page and recompute TLB context keys. */
export let translationEpoch: u32 = 0;
/** Set when a write needs the TLBs flushed (satp). */
export let tlbFlushNeeded: bool = false;

export function mip(): u64 { return mipSoftware | mipLines; }

// --- setters used by trap handling (trap.ts) and the host API --------------------------------------------------
export function setMstatus(v: u64): void {
  const fs = v & MSTATUS_FS;
  v = (v & ~MSTATUS_SD) | XLEN64_BOTH;
  if (fs == MSTATUS_FS) v |= MSTATUS_SD;
  if (((v ^ mstatus) & (MSTATUS_SUM | MSTATUS_MXR | MSTATUS_MPRV | MSTATUS_MPP)) != 0) translationEpoch++;
  mstatus = v;
}
@inline export function markFsDirty(): void { mstatus |= MSTATUS_FS_DIRTY | MSTATUS_SD; }
@inline export function fpEnabled(): bool { return (mstatus & MSTATUS_FS) != 0; }
export function setMepc(v: u64): void { mepc = v & ~1; }
export function setSepc(v: u64): void { sepc = v & ~1; }
export function setMcause(v: u64): void { mcause = v; }
export function setScause(v: u64): void { scause = v; }
export function setMtval(v: u64): void { mtval = v; }
export function setStval(v: u64): void { stval = v; }
export function setMipLines(v: u64): void { mipLines = v; }
export function setMhartid(v: u64): void { mhartid = v; }
export function setMtime(v: u64): void { mtime = v; }
export function bumpEpoch(): void { translationEpoch++; }
export function setMedeleg(v: u64): void { medeleg = v & MEDELEG_WRITABLE; }
export function setMideleg(v: u64): void { mideleg = v & MIDELEG_WRITABLE; }
export function setMcounteren(v: u64): void { mcounteren = v & 0xffffffff; }
export function setScounteren(v: u64): void { scounteren = v & 0xffffffff; }
export function clearTlbFlush(): void { tlbFlushNeeded = false; }

export function resetCsrs(hartid: u64): void {
  mstatus = XLEN64_BOTH; medeleg = 0; mideleg = 0; mie = 0; mipSoftware = 0; mipLines = 0;
  mtvec = 0; stvec = 0; mepc = 0; sepc = 0; mcause = 0; scause = 0; mtval = 0; stval = 0;
  mscratch = 0; sscratch = 0; mcounteren = 0; scounteren = 0; menvcfg = 0; senvcfg = 0; mcountinhibit = 0;
  satp = 0; frm = 0; mhartid = hartid; tselect = 0; cycleOffset = 0;
  for (let i = 0; i < 16; i++) unchecked(pmpcfg[i] = 0);
  for (let i = 0; i < 64; i++) unchecked(pmpaddr[i] = 0);
  SF.fflags = 0;
  translationEpoch++;
  tlbFlushNeeded = true;
}

// --- access -----------------------------------------------------------------------------------------------------
export const CSR_FFLAGS: u32 = 0x001;
export const CSR_FRM: u32 = 0x002;
export const CSR_FCSR: u32 = 0x003;
export const CSR_SATP: u32 = 0x180;

function counterAllowed(index: u32): bool {
  if (priv == PRV_M) return true;
  if (((mcounteren >> index) & 1) == 0) return false;
  if (priv == PRV_U && ((scounteren >> index) & 1) == 0) return false;
  return true;
}

/** Whether the CSR exists and may be accessed at the current privilege (write = the instruction writes it). */
function accessible(csr: u32, write: bool): bool {
  if (write && (csr >> 10) == 3) return false;        // read-only CSR
  if (priv < ((csr >> 8) & 3)) return false;          // privilege too low
  if (csr == CSR_SATP && priv == PRV_S && (mstatus & MSTATUS_TVM) != 0) return false;
  return true;
}

/** Reads a CSR for a CSR instruction. `retired` = instructions retired so far (instret's current value). */
export function csrRead(csr: u32, write: bool, retired: u64, raw: u32): u64 {
  if (!accessible(csr, write)) { raise(CAUSE_ILLEGAL_INSTRUCTION, raw); return 0; }
  switch (csr) {
    case CSR_FFLAGS: if (!fpEnabled()) break; return SF.fflags;
    case CSR_FRM: if (!fpEnabled()) break; return frm;
    case CSR_FCSR: if (!fpEnabled()) break; return (<u64>frm << 5) | SF.fflags;
    case 0xc00: if (!counterAllowed(0)) break; return retired + cycleOffset; // one cycle per instruction
    case 0xc02: if (!counterAllowed(2)) break; return retired;
    case 0xc01: if (!counterAllowed(1)) break; return mtime;
    case 0x100: return mstatus & SSTATUS_VISIBLE;
    case 0x104: return mie & mideleg;
    case 0x105: return stvec;
    case 0x106: return scounteren;
    case 0x10a: return senvcfg;
    case 0x140: return sscratch;
    case 0x141: return sepc;
    case 0x142: return scause;
    case 0x143: return stval;
    case 0x144: return mip() & mideleg;
    case 0x180: return satp;
    case 0xf11: case 0xf12: case 0xf13: case 0xf15: return 0; // mvendorid, marchid, mimpid, mconfigptr
    case 0xf14: return mhartid;
    case 0x300: return mstatus;
    case 0x301: return MISA;
    case 0x302: return medeleg;
    case 0x303: return mideleg;
    case 0x304: return mie;
    case 0x305: return mtvec;
    case 0x306: return mcounteren;
    case 0x30a: return menvcfg;
    case 0x320: return mcountinhibit;
    case 0x340: return mscratch;
    case 0x341: return mepc;
    case 0x342: return mcause;
    case 0x343: return mtval;
    case 0x344: return mip();
    case 0xb00: return retired + cycleOffset; // mcycle
    case 0xb02: return retired; // minstret
    case 0x7a0: return tselect;
    case 0x7a1: case 0x7a2: case 0x7a3: return 0; // no triggers: tdata reads 0, writes are ignored
    default:
      if (csr >= 0xc03 && csr <= 0xc1f) { if (!counterAllowed(csr & 31)) break; return 0; } // hpmcounterN
      if (csr >= 0xb03 && csr <= 0xb1f) return 0; // mhpmcounterN
      if (csr >= 0x323 && csr <= 0x33f) return 0; // mhpmeventN
      if (csr >= 0x3a0 && csr <= 0x3af) { if (csr & 1) break; return unchecked(pmpcfg[csr - 0x3a0]); }
      if (csr >= 0x3b0 && csr <= 0x3ef) return unchecked(pmpaddr[csr - 0x3b0]);
  }
  raise(CAUSE_ILLEGAL_INSTRUCTION, raw);
  return 0;
}

/** Writes a CSR after a successful csrRead of the same CSR (so existence and privilege are already checked).
 *  `retired` as for csrRead; the counter writes make the CSR instruction itself count as the last one before. */
export function csrWrite(csr: u32, v: u64, retired: u64): void {
  switch (csr) {
    case CSR_FFLAGS: SF.fflags = <u32>v & 31; markFsDirty(); return;
    case CSR_FRM: frm = <u32>v & 7; markFsDirty(); return;
    case CSR_FCSR: SF.fflags = <u32>v & 31; frm = (<u32>v >> 5) & 7; markFsDirty(); return;
    case 0x100: setMstatus((mstatus & ~SSTATUS_WRITABLE) | (v & SSTATUS_WRITABLE)); return;
    case 0x104: mie = (mie & ~mideleg) | (v & mideleg); return;
    case 0x105: stvec = legalTvec(v); return;
    case 0x106: scounteren = v & 0xffffffff; return;
    case 0x10a: senvcfg = v & 1; return;
    case 0x140: sscratch = v; return;
    case 0x141: setSepc(v); return;
    case 0x142: scause = v; return;
    case 0x143: stval = v; return;
    case 0x144: { const m = mideleg & IRQ_SSI; mipSoftware = (mipSoftware & ~m) | (v & m); return; }
    case 0x180: writeSatp(v); return;
    case 0x300: {
      let nv = (mstatus & ~MSTATUS_WRITABLE) | (v & MSTATUS_WRITABLE);
      if (((nv >> MSTATUS_MPP_SHIFT) & 3) == 2) nv &= ~MSTATUS_MPP; // MPP is WARL: H-mode does not exist
      setMstatus(nv);
      return;
    }
    case 0x301: return; // misa is read-only here (WARL)
    case 0x302: medeleg = v & MEDELEG_WRITABLE; return;
    case 0x303: mideleg = v & MIDELEG_WRITABLE; return;
    case 0x304: mie = v & MIE_WRITABLE; return;
    case 0x305: mtvec = legalTvec(v); return;
    case 0x306: mcounteren = v & 0xffffffff; return;
    case 0x30a: menvcfg = v & 1; return;
    case 0x320: mcountinhibit = v & 0xfffffffd; return;
    case 0x340: mscratch = v; return;
    case 0x341: setMepc(v); return;
    case 0x342: mcause = v; return;
    case 0x343: mtval = v; return;
    case 0x344: mipSoftware = (mipSoftware & ~MIP_WRITABLE) | (v & MIP_WRITABLE); return;
    // The CSR instruction itself counts as the last one before the new value.
    case 0xb00: cycleOffset = v - retired - 1; return;
    case 0xb02: {
      const delta = v - retired - 1;
      setInstretBase(instretBase + delta);
      cycleOffset -= delta; // mcycle is a separate counter: it keeps its value
      return;
    }
    case 0x7a0: tselect = v; return;
    default:
      if (csr >= 0x3a0 && csr <= 0x3af) { unchecked(pmpcfg[csr - 0x3a0] = v); return; }
      if (csr >= 0x3b0 && csr <= 0x3ef) { unchecked(pmpaddr[csr - 0x3b0] = v & ((1 << 54) - 1)); return; }
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
  satp = (mode << 60) | (v & SATP_PPN_MASK); // ASID is not implemented: it reads as 0
  translationEpoch++;
  tlbFlushNeeded = true;
}

/** The status bits the interpreter's fetch/data contexts depend on */
export function effectiveDataPriv(): u32 {
  if (priv == PRV_M && (mstatus & MSTATUS_MPRV) != 0) return <u32>((mstatus >> MSTATUS_MPP_SHIFT) & 3);
  return priv;
}
export { PRV_U };
