// The F and D extensions' arithmetic: operand fetch with NaN-boxing, rounding-mode resolution, and the call into
// softfloat.ts, which computes exact IEEE results and flags (with a host-float fast path where that is exact).
// FP loads and stores are in the interpreter (hart.ts) because they share its TLB fast path; execFpMemory is their
// slow-path form, for compiled regions.

import * as O from "./ops";
import * as SF from "./softfloat";
import { E_RD, E_RS1, E_RS2, E_RAW } from "./decode";
import { H, xregs, fregs, raise, CAUSE_ILLEGAL_INSTRUCTION } from "./state";
import { fpEnabled, markFsDirty } from "./csr";

const CANONICAL_NAN_S: u32 = 0x7fc00000;
const BOX: u64 = 0xffffffff00000000;
const SIGN_S: u32 = 0x80000000;
const SIGN_D: u64 = 0x8000000000000000;

/** A binary32 operand: the low half of a properly NaN-boxed register, else the canonical NaN. */
@inline export function unboxS(v: u64): u32 { return (v & BOX) == BOX ? <u32>v : CANONICAL_NAN_S; }
@inline export function boxS(v: u32): u64 { return BOX | <u64>v; }

@inline function f(off: u32): u64 { return load<u64>(fregs + off); }

/** What an FP load of size bytes puts in its register: a binary32 is NaN-boxed. */
@inline export function fpLoaded(v: u64, size: u32): u64 { return size == 8 ? v : BOX | v; }

@inline function fs(off: u32): u32 { return unboxS(load<u64>(fregs + off)); }
@inline function setF(off: u32, v: u64): void { store<u64>(fregs + off, v); markFsDirty(); }
@inline function setFS(off: u32, v: u32): void { store<u64>(fregs + off, boxS(v)); markFsDirty(); }
@inline function x(off: u32): u64 { return load<u64>(xregs + off); }
@inline function setX(off: u32, v: u64): void { store<u64>(xregs + off, v); }

function usesRoundingMode(op: u32): bool {
  const k = op >= O.OP_FMADD_D ? op - O.OP_D_OFFSET : op;
  if (k >= O.OP_FSGNJ_S && k <= O.OP_FMAX_S) return false;
  if (k >= O.OP_FMV_X_W && k <= O.OP_FCLASS_S) return false;
  if (k == O.OP_FMV_W_X) return false;
  return true;
}

/** Executes an FP computational instruction (not a load/store). Raises illegal-instruction when the FPU is off
 *  (mstatus.FS = Off) or the rounding mode is reserved. softfloat raises flags in its own word (it is also built
 *  alone for its tests), which holds the hart's fflags for the length of the operation. */
export function execFp(op: u32, e: usize): void {
  const before = H.fflags;
  SF.fflags = before; // softfloat skips work for flags already raised (an inexact check once NX is set)
  compute(op, e);
  const after = SF.fflags;
  if (after != before) H.fflags = after;
}

function compute(op: u32, e: usize): void {
  const raw = load<u32>(e, E_RAW);
  if (!fpEnabled()) { raise(CAUSE_ILLEGAL_INSTRUCTION, raw); return; }
  let rm = (raw >> 12) & 7;
  if (usesRoundingMode(op)) {
    if (rm == 7) rm = H.frm;
    if (rm >= 5) { raise(CAUSE_ILLEGAL_INSTRUCTION, raw); return; }
  }
  const rd = <u32>load<u16>(e, E_RD);
  const a = <u32>load<u16>(e, E_RS1);
  const b = <u32>load<u16>(e, E_RS2);
  const c = ((raw >> 27) & 31) << 3;
  switch (op) {
    // binary32
    case O.OP_FMADD_S: setFS(rd, SF.f32_muladd(fs(a), fs(b), fs(c), rm)); return;
    case O.OP_FMSUB_S: setFS(rd, SF.f32_muladd(fs(a), fs(b), fs(c) ^ SIGN_S, rm)); return;
    case O.OP_FNMSUB_S: setFS(rd, SF.f32_muladd(fs(a) ^ SIGN_S, fs(b), fs(c), rm)); return;
    case O.OP_FNMADD_S: setFS(rd, SF.f32_muladd(fs(a) ^ SIGN_S, fs(b), fs(c) ^ SIGN_S, rm)); return;
    case O.OP_FADD_S: setFS(rd, SF.f32_add(fs(a), fs(b), rm)); return;
    case O.OP_FSUB_S: setFS(rd, SF.f32_sub(fs(a), fs(b), rm)); return;
    case O.OP_FMUL_S: setFS(rd, SF.f32_mul(fs(a), fs(b), rm)); return;
    case O.OP_FDIV_S: setFS(rd, SF.f32_div(fs(a), fs(b), rm)); return;
    case O.OP_FSQRT_S: setFS(rd, SF.f32_sqrt(fs(a), rm)); return;
    case O.OP_FSGNJ_S: setFS(rd, (fs(a) & ~SIGN_S) | (fs(b) & SIGN_S)); return;
    case O.OP_FSGNJN_S: setFS(rd, (fs(a) & ~SIGN_S) | (~fs(b) & SIGN_S)); return;
    case O.OP_FSGNJX_S: setFS(rd, fs(a) ^ (fs(b) & SIGN_S)); return;
    case O.OP_FMIN_S: setFS(rd, SF.f32_min(fs(a), fs(b))); return;
    case O.OP_FMAX_S: setFS(rd, SF.f32_max(fs(a), fs(b))); return;
    case O.OP_FCVT_W_S: setX(rd, SF.f32_to_i32(fs(a), rm)); return;
    case O.OP_FCVT_WU_S: setX(rd, SF.f32_to_u32(fs(a), rm)); return;
    case O.OP_FCVT_L_S: setX(rd, SF.f32_to_i64(fs(a), rm)); return;
    case O.OP_FCVT_LU_S: setX(rd, SF.f32_to_u64(fs(a), rm)); return;
    case O.OP_FMV_X_W: setX(rd, <u64><i64><i32>f(a)); return; // raw low 32 bits, no unboxing
    case O.OP_FEQ_S: setX(rd, SF.f32_eq(fs(a), fs(b))); return;
    case O.OP_FLT_S: setX(rd, SF.f32_lt(fs(a), fs(b))); return;
    case O.OP_FLE_S: setX(rd, SF.f32_le(fs(a), fs(b))); return;
    case O.OP_FCLASS_S: setX(rd, SF.f32_classify(fs(a))); return;
    case O.OP_FCVT_S_W: setFS(rd, SF.i32_to_f32(<i32>x(a), rm)); return;
    case O.OP_FCVT_S_WU: setFS(rd, SF.u32_to_f32(<u32>x(a), rm)); return;
    case O.OP_FCVT_S_L: setFS(rd, SF.i64_to_f32(<i64>x(a), rm)); return;
    case O.OP_FCVT_S_LU: setFS(rd, SF.u64_to_f32(x(a), rm)); return;
    case O.OP_FMV_W_X: setFS(rd, <u32>x(a)); return;
    case O.OP_FCVT_S_D: setFS(rd, SF.f64_to_f32(f(a), rm)); return;
    // binary64
    case O.OP_FMADD_D: setF(rd, SF.f64_muladd(f(a), f(b), f(c), rm)); return;
    case O.OP_FMSUB_D: setF(rd, SF.f64_muladd(f(a), f(b), f(c) ^ SIGN_D, rm)); return;
    case O.OP_FNMSUB_D: setF(rd, SF.f64_muladd(f(a) ^ SIGN_D, f(b), f(c), rm)); return;
    case O.OP_FNMADD_D: setF(rd, SF.f64_muladd(f(a) ^ SIGN_D, f(b), f(c) ^ SIGN_D, rm)); return;
    case O.OP_FADD_D: setF(rd, SF.f64_add(f(a), f(b), rm)); return;
    case O.OP_FSUB_D: setF(rd, SF.f64_sub(f(a), f(b), rm)); return;
    case O.OP_FMUL_D: setF(rd, SF.f64_mul(f(a), f(b), rm)); return;
    case O.OP_FDIV_D: setF(rd, SF.f64_div(f(a), f(b), rm)); return;
    case O.OP_FSQRT_D: setF(rd, SF.f64_sqrt(f(a), rm)); return;
    case O.OP_FSGNJ_D: setF(rd, (f(a) & ~SIGN_D) | (f(b) & SIGN_D)); return;
    case O.OP_FSGNJN_D: setF(rd, (f(a) & ~SIGN_D) | (~f(b) & SIGN_D)); return;
    case O.OP_FSGNJX_D: setF(rd, f(a) ^ (f(b) & SIGN_D)); return;
    case O.OP_FMIN_D: setF(rd, SF.f64_min(f(a), f(b))); return;
    case O.OP_FMAX_D: setF(rd, SF.f64_max(f(a), f(b))); return;
    case O.OP_FCVT_W_D: setX(rd, SF.f64_to_i32(f(a), rm)); return;
    case O.OP_FCVT_WU_D: setX(rd, SF.f64_to_u32(f(a), rm)); return;
    case O.OP_FCVT_L_D: setX(rd, SF.f64_to_i64(f(a), rm)); return;
    case O.OP_FCVT_LU_D: setX(rd, SF.f64_to_u64(f(a), rm)); return;
    case O.OP_FMV_X_D: setX(rd, f(a)); return;
    case O.OP_FEQ_D: setX(rd, SF.f64_eq(f(a), f(b))); return;
    case O.OP_FLT_D: setX(rd, SF.f64_lt(f(a), f(b))); return;
    case O.OP_FLE_D: setX(rd, SF.f64_le(f(a), f(b))); return;
    case O.OP_FCLASS_D: setX(rd, SF.f64_classify(f(a))); return;
    case O.OP_FCVT_D_W: setF(rd, SF.i32_to_f64(<i32>x(a), rm)); return;
    case O.OP_FCVT_D_WU: setF(rd, SF.u32_to_f64(<u32>x(a), rm)); return;
    case O.OP_FCVT_D_L: setF(rd, SF.i64_to_f64(<i64>x(a), rm)); return;
    case O.OP_FCVT_D_LU: setF(rd, SF.u64_to_f64(x(a), rm)); return;
    case O.OP_FMV_D_X: setF(rd, x(a)); return;
    case O.OP_FCVT_D_S: setF(rd, SF.f32_to_f64(fs(a))); return;
  }
  raise(CAUSE_ILLEGAL_INSTRUCTION, raw);
}
