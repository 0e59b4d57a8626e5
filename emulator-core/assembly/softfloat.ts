// softfloat.ts — exact IEEE-754 binary32/binary64 arithmetic with RISC-V F/D semantics.
//
// Values are raw bit patterns (f32 as u32, f64 as u64). `rm` is an already
// resolved rounding mode 0..4 (RNE, RTZ, RDN, RUP, RMM). Exception flags are
// OR-ed into the exported global `fflags` (NV=16 DZ=8 OF=4 UF=2 NX=1), which is
// the fflags CSR value (the hart saves/restores it). Any NaN result is the
// canonical NaN; tininess is detected after rounding (as on RISC-V).
//
// Structure
// ---------
// * Fast paths use the host's (WebAssembly's) float instructions, which are
//   IEEE binary32/binary64 round-to-nearest-even without flags. A fast path is
//   only taken when rm == RNE and the host result is provably the exact RISC-V
//   result *and* every flag the operation could raise is either impossible or
//   detected:
//     - OF: the host result is finite (finite inputs are implied by a finite
//       result for + - * / sqrt, except x/inf and 0*finite which are exact).
//     - UF: the result magnitude is >= 2*MIN_NORMAL (so it is not tiny even
//       with tininess-after-rounding) or it is an exact zero.
//     - NV/DZ: impossible when the inputs and the result are finite/non-NaN.
//     - NX: either already set (it is sticky) or detected exactly:
//       add/sub via TwoSum; f32 mul/div/sqrt/fma via exact f64 products of f32
//       values (a 24x24-bit product is exact in binary64); f32 fma computes the
//       exact product in f64, adds c with TwoSum and declines when the f64 sum
//       is inexact and lands on an f32 rounding midpoint (double rounding).
//     f64 mul/div/sqrt take the fast path only when NX is already set;
//     f64 fma is always done in software (wasm has no fused multiply-add).
//   Float->int conversions use the host's nearest/trunc/floor/ceil (exact) for
//   rm 0..3 when the rounded value is in range; int->float uses the host when the
//   integer is exactly representable (or rm==RNE with NX detectable);
//   compares/min/max use host compares when no NaN is involved.
// * Everything else goes through an exact software path. Operands are unpacked
//   into (sign, unbiased exponent e, significand sig) with the leading one of
//   sig at bit 62, i.e. value = sig * 2^(e-62), for both formats. Lost low bits
//   are "jammed" (OR-ed) into bit 0 (sticky). `roundPack` rounds such a value to
//   the target format with rm, handling overflow, subnormals and
//   after-rounding tininess. f64 products/FMA use 128-bit intermediates as
//   pairs of u64. Division is restoring long division, sqrt is bit-by-bit
//   integer square root, both producing >= p+2 bits plus a sticky bit.
//
// Matches Berkeley SoftFloat-3 (RISCV specialization) behaviour, e.g. for FMA
// inf*0 + qNaN raises NV and returns the canonical NaN.
//
// No heap allocation: only locals and module globals are used.

export let fflags: u32 = 0;

// Set to false to force the software path (used by tests).
const FAST: bool = true;

const NV: u32 = 16;
const DZ: u32 = 8;
const OF: u32 = 4;
const UF: u32 = 2;
const NX: u32 = 1;

const RNE: u32 = 0;
const RTZ: u32 = 1;
const RDN: u32 = 2;
const RUP: u32 = 3;
const RMM: u32 = 4;

const CNAN32: u32 = 0x7fc00000;
const CNAN64: u64 = 0x7ff8000000000000;

// operand classes
const C_ZERO: i32 = 0;
const C_FIN: i32 = 1;
const C_INF: i32 = 2;
const C_QNAN: i32 = 3;
const C_SNAN: i32 = 4;

// f32 min normal * 2, f64 min normal * 2
const INF32: f32 = <f32>Infinity;
const F32_SAFE_MIN: f32 = 2.350988701644575e-38; // 2^-125
const F64_SAFE_MIN: f64 = 4.450147717014403e-308; // 2^-1021

// ---------------------------------------------------------------------------
// Unpacking

let uSign: u32 = 0;
let uExp: i32 = 0;
let uCls: i32 = 0;

// Unpacks x (f64 bits if is64, else f32 bits in the low 32 bits). Returns sig
// (leading one at bit 62 for finite nonzero) and sets uSign/uExp/uCls.
@inline
function unpack(x: u64, is64: bool): u64 {
  if (is64) {
    uSign = <u32>(x >> 63);
    let E = <i32>((x >> 52) & 0x7ff);
    let f = x & 0x000fffffffffffff;
    if (E == 0x7ff) {
      uCls = f == 0 ? C_INF : (f & 0x0008000000000000) ? C_QNAN : C_SNAN;
      return 0;
    }
    if (E == 0) {
      if (f == 0) { uCls = C_ZERO; return 0; }
      let lz = <i32>clz<u64>(f) - 1;
      uExp = -1012 - lz;
      uCls = C_FIN;
      return f << <u64>lz;
    }
    uCls = C_FIN;
    uExp = E - 1023;
    return (f | 0x0010000000000000) << 10;
  } else {
    let y = <u32>x;
    uSign = y >> 31;
    let E = <i32>((y >> 23) & 0xff);
    let f = <u64>(y & 0x7fffff);
    if (E == 0xff) {
      uCls = f == 0 ? C_INF : (f & 0x400000) ? C_QNAN : C_SNAN;
      return 0;
    }
    if (E == 0) {
      if (f == 0) { uCls = C_ZERO; return 0; }
      let lz = <i32>clz<u64>(f) - 1;
      uExp = -87 - lz;
      uCls = C_FIN;
      return f << <u64>lz;
    }
    uCls = C_FIN;
    uExp = E - 127;
    return (f | 0x800000) << 39;
  }
}

@inline function cnan(is64: bool): u64 { return is64 ? CNAN64 : <u64>CNAN32; }
@inline function signBit(is64: bool): u64 { return is64 ? 0x8000000000000000 : 0x80000000; }
@inline function infBits(is64: bool): u64 { return is64 ? 0x7ff0000000000000 : 0x7f800000; }
@inline function zeroBits(sign: u32, is64: bool): u64 { return sign ? signBit(is64) : 0; }
@inline function isNaNBits(x: u64, is64: bool): bool {
  return is64 ? (x & 0x7fffffffffffffff) > 0x7ff0000000000000 : (<u32>x & 0x7fffffff) > 0x7f800000;
}
@inline function isSNaNBits(x: u64, is64: bool): bool {
  return is64
    ? (x & 0x7ff8000000000000) == 0x7ff0000000000000 && (x & 0x0007ffffffffffff) != 0
    : (<u32>x & 0x7fc00000) == 0x7f800000 && (<u32>x & 0x003fffff) != 0;
}

// ---------------------------------------------------------------------------
// Rounding

let inx: bool = false;

// Shifts sig (< 2^63) right by sh >= 1 and rounds the integer result per rm.
// Sets `inx` when bits were lost.
@inline
function rnd(sign: u32, sig: u64, sh: i32, rm: u32): u64 {
  let q: u64, rest: u64, half: u64;
  if (sh >= 64) {
    q = 0; rest = sig; half = 0x8000000000000000;
  } else {
    q = sig >> <u64>sh;
    rest = sig & ((<u64>1 << <u64>sh) - 1);
    half = <u64>1 << <u64>(sh - 1);
  }
  if (rest == 0) { inx = false; return q; }
  inx = true;
  if (rm == RNE) {
    if (rest > half || (rest == half && (q & 1) != 0)) q++;
  } else if (rm == RMM) {
    if (rest >= half) q++;
  } else if (rm == RDN) {
    if (sign) q++;
  } else if (rm == RUP) {
    if (!sign) q++;
  }
  return q;
}

@inline
function shiftRightJam(x: u64, d: i32): u64 {
  if (d <= 0) return x;
  if (d < 63) return (x >> <u64>d) | <u64>((x << <u64>(64 - d)) != 0);
  return <u64>(x != 0);
}

// value = sig * 2^(e-62), sig has its leading one at bit 62 (sig != 0).
function roundPack(sign: u32, e: i32, sig: u64, rm: u32, is64: bool): u64 {
  let p: i32 = is64 ? 53 : 24;
  let bias: i32 = is64 ? 1023 : 127;
  let maxE: i32 = is64 ? 2047 : 255;
  let S = zeroBits(sign, is64);
  let E = e + bias;
  if (E >= 1) {
    let q = rnd(sign, sig, 63 - p, rm);
    if (q >> <u64>p) { q >>= 1; E++; }
    if (E >= maxE) {
      fflags |= OF | NX;
      let toMax = rm == RTZ || (rm == RDN && !sign) || (rm == RUP && sign != 0);
      let inf = S | (<u64>maxE << <u64>(p - 1));
      return toMax ? inf - 1 : inf;
    }
    if (inx) fflags |= NX;
    return S | ((<u64>(E - 1) << <u64>(p - 1)) + q);
  }
  let q = rnd(sign, sig, 63 - p + 1 - E, rm);
  if (inx) {
    let tiny = true;
    if (E == 0) {
      let q2 = rnd(sign, sig, 63 - p, rm);
      if (q2 >> <u64>p) tiny = false;
    }
    fflags |= tiny ? (UF | NX) : NX;
  }
  return S | q;
}

// ---------------------------------------------------------------------------
// 128-bit helpers

let hi128: u64 = 0;

// Returns the low 64 bits of a*b, sets hi128 to the high 64 bits.
@inline
function mul128(a: u64, b: u64): u64 {
  let a0 = a & 0xffffffff, a1 = a >> 32;
  let b0 = b & 0xffffffff, b1 = b >> 32;
  let p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  let mid = (p00 >> 32) + (p01 & 0xffffffff) + (p10 & 0xffffffff);
  hi128 = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
  return (mid << 32) | (p00 & 0xffffffff);
}

// (hi, lo) >> d with jamming; returns low word, sets hi128 to the high word.
function srj128(hi: u64, lo: u64, d: i32): u64 {
  if (d <= 0) { hi128 = hi; return lo; }
  if (d < 64) {
    hi128 = hi >> <u64>d;
    return (lo >> <u64>d) | (hi << <u64>(64 - d)) | <u64>((lo << <u64>(64 - d)) != 0);
  }
  hi128 = 0;
  if (d == 64) return hi | <u64>(lo != 0);
  if (d < 128) return (hi >> <u64>(d - 64)) | <u64>(((hi << <u64>(128 - d)) | lo) != 0);
  return <u64>((hi | lo) != 0);
}

// ---------------------------------------------------------------------------
// Software operations (generic over the format)

function addSoft(a: u64, b: u64, rm: u32, is64: bool): u64 {
  let sigA = unpack(a, is64); let sa = uSign, ea = uExp, ca = uCls;
  let sigB = unpack(b, is64); let sb = uSign, eb = uExp, cb = uCls;
  if (ca >= C_INF || cb >= C_INF) {
    if (ca >= C_QNAN || cb >= C_QNAN) {
      if (ca == C_SNAN || cb == C_SNAN) fflags |= NV;
      return cnan(is64);
    }
    if (ca == C_INF && cb == C_INF) {
      if (sa != sb) { fflags |= NV; return cnan(is64); }
      return a;
    }
    return ca == C_INF ? a : b;
  }
  if (ca == C_ZERO) {
    if (cb == C_ZERO) return sa == sb ? a : zeroBits(<u32>(rm == RDN), is64);
    return b;
  }
  if (cb == C_ZERO) return a;
  // both finite nonzero: make |A| >= |B|
  if (ea < eb || (ea == eb && sigA < sigB)) {
    let t = sigA; sigA = sigB; sigB = t;
    let te = ea; ea = eb; eb = te;
    let ts = sa; sa = sb; sb = ts;
  }
  sigB = shiftRightJam(sigB, ea - eb);
  let s: u64;
  if (sa == sb) {
    s = sigA + sigB;
    if (s >> 63) { s = (s >> 1) | (s & 1); ea++; }
  } else {
    s = sigA - sigB;
    if (s == 0) return zeroBits(<u32>(rm == RDN), is64);
    let lz = <i32>clz<u64>(s) - 1;
    s <<= <u64>lz;
    ea -= lz;
  }
  return roundPack(sa, ea, s, rm, is64);
}

function mulSoft(a: u64, b: u64, rm: u32, is64: bool): u64 {
  let sigA = unpack(a, is64); let sa = uSign, ea = uExp, ca = uCls;
  let sigB = unpack(b, is64); let sb = uSign, eb = uExp, cb = uCls;
  let sign = sa ^ sb;
  if (ca >= C_INF || cb >= C_INF) {
    if (ca >= C_QNAN || cb >= C_QNAN) {
      if (ca == C_SNAN || cb == C_SNAN) fflags |= NV;
      return cnan(is64);
    }
    if (ca == C_ZERO || cb == C_ZERO) { fflags |= NV; return cnan(is64); }
    return zeroBits(sign, is64) | infBits(is64);
  }
  if (ca == C_ZERO || cb == C_ZERO) return zeroBits(sign, is64);
  let lo = mul128(sigA, sigB);
  let hi = hi128;
  let sig = (hi << 2) | (lo >> 62) | <u64>((lo << 2) != 0);
  let e = ea + eb;
  if (sig >> 63) { sig = (sig >> 1) | (sig & 1); e++; }
  return roundPack(sign, e, sig, rm, is64);
}

function divSoft(a: u64, b: u64, rm: u32, is64: bool): u64 {
  let sigA = unpack(a, is64); let sa = uSign, ea = uExp, ca = uCls;
  let sigB = unpack(b, is64); let sb = uSign, eb = uExp, cb = uCls;
  let sign = sa ^ sb;
  if (ca >= C_QNAN || cb >= C_QNAN) {
    if (ca == C_SNAN || cb == C_SNAN) fflags |= NV;
    return cnan(is64);
  }
  if (ca == C_INF) {
    if (cb == C_INF) { fflags |= NV; return cnan(is64); }
    return zeroBits(sign, is64) | infBits(is64);
  }
  if (cb == C_INF) return zeroBits(sign, is64);
  if (cb == C_ZERO) {
    if (ca == C_ZERO) { fflags |= NV; return cnan(is64); }
    fflags |= DZ;
    return zeroBits(sign, is64) | infBits(is64);
  }
  if (ca == C_ZERO) return zeroBits(sign, is64);
  let e = ea - eb;
  let sig: u64;
  if (!is64) {
    let num = (sigA >> 39) << 40;
    let den = sigB >> 39;
    let q = num / den;
    let r = num - q * den;
    sig = q << 22;
    if (!(sig >> 62)) { sig <<= 1; e--; }
    sig |= <u64>(r != 0);
  } else {
    let r = sigA;
    if (r < sigB) { r <<= 1; e--; }
    let q: u64 = 0;
    for (let i = 0; i < 56; i++) {
      q <<= 1;
      if (r >= sigB) { r -= sigB; q |= 1; }
      r <<= 1;
    }
    sig = (q << 7) | <u64>(r != 0);
  }
  return roundPack(sign, e, sig, rm, is64);
}

function sqrtSoft(a: u64, rm: u32, is64: bool): u64 {
  let sig = unpack(a, is64); let s = uSign, e = uExp, c = uCls;
  if (c >= C_QNAN) {
    if (c == C_SNAN) fflags |= NV;
    return cnan(is64);
  }
  if (c == C_ZERO) return a;
  if (s) { fflags |= NV; return cnan(is64); }
  if (c == C_INF) return a;
  if (e & 1) { sig <<= 1; e -= 1; }
  let rem: u64 = 0, root: u64 = 0, xs = sig;
  for (let i = 0; i < 32; i++) {
    rem = (rem << 2) | (xs >> 62);
    xs <<= 2;
    let t = (root << 2) | 1;
    if (rem >= t) { rem -= t; root = (root << 1) | 1; } else root <<= 1;
  }
  for (let i = 0; i < 26; i++) {
    rem <<= 2;
    let t = (root << 2) | 1;
    if (rem >= t) { rem -= t; root = (root << 1) | 1; } else root <<= 1;
  }
  return roundPack(0, e >> 1, (root << 5) | <u64>(rem != 0), rm, is64);
}

function fmaSoft(a: u64, b: u64, c: u64, rm: u32, is64: bool): u64 {
  let sigA = unpack(a, is64); let sa = uSign, ea = uExp, ca = uCls;
  let sigB = unpack(b, is64); let sb = uSign, eb = uExp, cb = uCls;
  let sigC = unpack(c, is64); let sc = uSign, ec = uExp, cc = uCls;
  let sp = sa ^ sb;
  if (ca >= C_QNAN || cb >= C_QNAN) {
    if (ca == C_SNAN || cb == C_SNAN || cc == C_SNAN) fflags |= NV;
    return cnan(is64);
  }
  if (ca == C_INF || cb == C_INF) {
    if (ca == C_ZERO || cb == C_ZERO) { fflags |= NV; return cnan(is64); }
    if (cc >= C_QNAN) {
      if (cc == C_SNAN) fflags |= NV;
      return cnan(is64);
    }
    if (cc == C_INF && sc != sp) { fflags |= NV; return cnan(is64); }
    return zeroBits(sp, is64) | infBits(is64);
  }
  if (cc >= C_QNAN) {
    if (cc == C_SNAN) fflags |= NV;
    return cnan(is64);
  }
  if (cc == C_INF) return c;
  if (ca == C_ZERO || cb == C_ZERO) {
    if (cc == C_ZERO) return sp == sc ? c : zeroBits(<u32>(rm == RDN), is64);
    return c;
  }
  // product: value = (hi:lo) * 2^(E-124)
  let lo = mul128(sigA, sigB);
  let hi = hi128;
  let E = ea + eb;
  let sign = sp;
  if (cc != C_ZERO) {
    let chi = sigC >> 2, clo = sigC << 62;
    if (E >= ec) {
      clo = srj128(chi, clo, E - ec); chi = hi128;
    } else {
      lo = srj128(hi, lo, ec - E); hi = hi128;
      E = ec;
    }
    if (sp == sc) {
      let nlo = lo + clo;
      hi = hi + chi + <u64>(nlo < lo);
      lo = nlo;
    } else {
      if (hi > chi || (hi == chi && lo >= clo)) {
        let nlo = lo - clo;
        hi = hi - chi - <u64>(lo < clo);
        lo = nlo;
      } else {
        let nlo = clo - lo;
        hi = chi - hi - <u64>(clo < lo);
        lo = nlo;
        sign = sc;
      }
      if ((hi | lo) == 0) return zeroBits(<u32>(rm == RDN), is64);
    }
  }
  let L: i32 = hi != 0 ? 127 - <i32>clz<u64>(hi) : 63 - <i32>clz<u64>(lo);
  let sig: u64;
  if (L > 62) sig = srj128(hi, lo, L - 62);
  else sig = lo << <u64>(62 - L);
  return roundPack(sign, E - 124 + L, sig, rm, is64);
}

// float -> integer. kind: 0 i32, 1 u32, 2 i64, 3 u64
function toIntSoft(x: u64, rm: u32, is64: bool, kind: i32): u64 {
  let sig = unpack(x, is64); let sign = uSign, e = uExp, c = uCls;
  let maxv: u64 = kind == 0 ? 0x7fffffff : kind == 2 ? 0x7fffffffffffffff : 0xffffffffffffffff;
  let minv: u64 = kind == 0 ? 0xffffffff80000000 : kind == 2 ? 0x8000000000000000 : 0;
  if (c >= C_QNAN) { fflags |= NV; return maxv; }
  if (c == C_INF) { fflags |= NV; return sign ? minv : maxv; }
  if (c == C_ZERO) return 0;
  let mag: u64 = 0;
  let ovf = false;
  inx = false;
  if (e >= 64) ovf = true;
  else if (e >= 62) mag = sig << <u64>(e - 62);
  else mag = rnd(sign, sig, 62 - e, rm);
  if (!ovf) {
    if (kind == 0) ovf = mag > (sign ? <u64>0x80000000 : <u64>0x7fffffff);
    else if (kind == 1) ovf = sign ? mag != 0 : mag > 0xffffffff;
    else if (kind == 2) ovf = mag > (sign ? <u64>0x8000000000000000 : <u64>0x7fffffffffffffff);
    else ovf = sign != 0 && mag != 0;
  }
  if (ovf) { fflags |= NV; return sign ? minv : maxv; }
  if (inx) fflags |= NX;
  let r = sign ? 0 - mag : mag;
  if (kind < 2) r = <u64><i64><i32>r;
  return r;
}

function fromIntSoft(mag: u64, sign: u32, rm: u32, is64: bool): u64 {
  if (mag == 0) return 0;
  let lz = <i32>clz<u64>(mag);
  let sig: u64;
  if (lz == 0) sig = (mag >> 1) | (mag & 1);
  else sig = mag << <u64>(lz - 1);
  return roundPack(sign, 63 - lz, sig, rm, is64);
}

// convert between formats (fromIs64 -> !fromIs64)
function cvtSoft(x: u64, rm: u32, fromIs64: bool): u64 {
  let sig = unpack(x, fromIs64); let s = uSign, e = uExp, c = uCls;
  let to64 = !fromIs64;
  if (c >= C_QNAN) {
    if (c == C_SNAN) fflags |= NV;
    return cnan(to64);
  }
  if (c == C_INF) return zeroBits(s, to64) | infBits(to64);
  if (c == C_ZERO) return zeroBits(s, to64);
  return roundPack(s, e, sig, rm, to64);
}

// Total order "a < b" for non-NaN values (-0 < +0).
@inline
function orderedLess(a: u64, b: u64, is64: bool): bool {
  let sh: u64 = is64 ? 63 : 31;
  let sa = (a >> sh) & 1, sb = (b >> sh) & 1;
  if (sa != sb) return sa != 0;
  return sa ? a > b : a < b;
}

function minMaxSoft(a: u64, b: u64, is64: bool, isMax: bool): u64 {
  let na = isNaNBits(a, is64), nb = isNaNBits(b, is64);
  if (isSNaNBits(a, is64) || isSNaNBits(b, is64)) fflags |= NV;
  if (na && nb) return cnan(is64);
  if (na) return b;
  if (nb) return a;
  let less = orderedLess(a, b, is64);
  return isMax ? (less ? b : a) : (less ? a : b);
}

function classify(x: u64, is64: bool): u64 {
  let sig = unpack(x, is64); let s = uSign, c = uCls;
  if (c == C_SNAN) return 1 << 8;
  if (c == C_QNAN) return 1 << 9;
  if (c == C_INF) return s ? 1 : 1 << 7;
  if (c == C_ZERO) return s ? 1 << 3 : 1 << 4;
  let sub = is64 ? (x & 0x7ff0000000000000) == 0 : (x & 0x7f800000) == 0;
  if (sub) return s ? 1 << 2 : 1 << 5;
  return s ? 1 << 1 : 1 << 6;
}

// ---------------------------------------------------------------------------
// Host-float helpers

// Exact rounding error of a+b (TwoSum), for finite a+b.
@inline
function twoSumErr64(a: f64, b: f64, s: f64): f64 {
  let bp = s - a;
  let ap = s - bp;
  return (a - ap) + (b - bp);
}

@inline
function twoSumErr32(a: f32, b: f32, s: f32): f32 {
  let bp = s - a;
  let ap = s - bp;
  return (a - ap) + (b - bp);
}

// float (as f64, exactly) -> integer via host rounding. Returns true and sets
// cvtOut when handled.
let cvtOut: u64 = 0;

@inline
function toIntFast(x: f64, rm: u32, kind: i32): bool {
  if (rm > RUP) return false;
  let r = rm == RNE ? nearest<f64>(x) : rm == RTZ ? trunc<f64>(x) : rm == RDN ? floor<f64>(x) : ceil<f64>(x);
  if (kind == 0) {
    if (!(r >= -2147483648.0 && r <= 2147483647.0)) return false;
    cvtOut = <u64><i64><i32>r;
  } else if (kind == 1) {
    if (!(r >= 0.0 && r <= 4294967295.0)) return false;
    cvtOut = <u64><i64><i32><u32>r;
  } else if (kind == 2) {
    if (!(r >= -9223372036854775808.0 && r < 9223372036854775808.0)) return false;
    cvtOut = <u64><i64>r;
  } else {
    if (!(r >= 0.0 && r < 18446744073709551616.0)) return false;
    cvtOut = <u64>r;
  }
  if (r != x) fflags |= NX;
  return true;
}

// ---------------------------------------------------------------------------
// binary32 API

export function f32_add(a: u32, b: u32, rm: u32): u32 {
  if (FAST && rm == RNE) {
    let x = reinterpret<f32>(a), y = reinterpret<f32>(b);
    let r = x + y;
    if (abs<f32>(r) < INF32) {
      if (fflags & NX) return reinterpret<u32>(r);
      let err = twoSumErr32(x, y, r);
      if (abs<f32>(err) < INF32) {
        if (err != 0) fflags |= NX;
        return reinterpret<u32>(r);
      }
    }
  }
  return <u32>addSoft(a, b, rm, false);
}

export function f32_sub(a: u32, b: u32, rm: u32): u32 {
  return f32_add(a, b ^ 0x80000000, rm);
}

export function f32_mul(a: u32, b: u32, rm: u32): u32 {
  if (FAST && rm == RNE) {
    let p = <f64>reinterpret<f32>(a) * <f64>reinterpret<f32>(b); // exact
    let r = <f32>p;
    if (abs<f32>(r) < INF32 && (abs<f32>(r) >= F32_SAFE_MIN || p == 0)) {
      if (<f64>r != p) fflags |= NX;
      return reinterpret<u32>(r);
    }
  }
  return <u32>mulSoft(a, b, rm, false);
}

export function f32_div(a: u32, b: u32, rm: u32): u32 {
  if (FAST && rm == RNE) {
    let x = reinterpret<f32>(a), y = reinterpret<f32>(b);
    let r = x / y;
    if (abs<f32>(r) < INF32 && (abs<f32>(r) >= F32_SAFE_MIN || x == 0)) {
      if (x != 0 && <f64>r * <f64>y != <f64>x) fflags |= NX;
      return reinterpret<u32>(r);
    }
  }
  return <u32>divSoft(a, b, rm, false);
}

export function f32_sqrt(a: u32, rm: u32): u32 {
  let x = reinterpret<f32>(a);
  if (FAST && x >= 0 && x < INF32) {
    let r = sqrt<f32>(x);
    let d = <f64>r * <f64>r; // exact
    let xd = <f64>x;
    let bits = reinterpret<u32>(r);
    if (d != xd) {
      fflags |= NX;
      // r is the nearest; the exact root is below r if d > x. No ties exist.
      if (rm == RTZ || rm == RDN) { if (d > xd) bits--; }
      else if (rm == RUP) { if (d < xd) bits++; }
    }
    return bits;
  }
  return <u32>sqrtSoft(a, rm, false);
}

export function f32_muladd(a: u32, b: u32, c: u32, rm: u32): u32 {
  if (FAST && rm == RNE) {
    let p = <f64>reinterpret<f32>(a) * <f64>reinterpret<f32>(b); // exact
    let z = <f64>reinterpret<f32>(c);
    let s = p + z;
    if (abs<f64>(s) < Infinity) {
      let err = twoSumErr64(p, z, s);
      let sb = reinterpret<u64>(s);
      if (abs<f64>(err) < Infinity) {
        if (err == 0) {
          if (abs<f64>(s) >= <f64>F32_SAFE_MIN || s == 0) {
            let r = <f32>s;
            if (abs<f32>(r) < INF32) {
              if (<f64>r != s) fflags |= NX;
              return reinterpret<u32>(r);
            }
          }
        } else if (abs<f64>(s) >= <f64>F32_SAFE_MIN && (sb & 0x1fffffff) != 0x10000000) {
          let r = <f32>s;
          if (abs<f32>(r) < INF32) {
            fflags |= NX;
            return reinterpret<u32>(r);
          }
        }
      }
    }
  }
  return <u32>fmaSoft(a, b, c, rm, false);
}

export function f32_min(a: u32, b: u32): u32 {
  let x = reinterpret<f32>(a), y = reinterpret<f32>(b);
  if (x < y) return a;
  if (y < x) return b;
  if (x == y) return a | b;
  return <u32>minMaxSoft(a, b, false, false);
}

export function f32_max(a: u32, b: u32): u32 {
  let x = reinterpret<f32>(a), y = reinterpret<f32>(b);
  if (x > y) return a;
  if (y > x) return b;
  if (x == y) return a & b;
  return <u32>minMaxSoft(a, b, false, true);
}

export function f32_eq(a: u32, b: u32): u64 {
  if (reinterpret<f32>(a) == reinterpret<f32>(b)) return 1;
  if (isSNaNBits(a, false) || isSNaNBits(b, false)) fflags |= NV;
  return 0;
}

export function f32_lt(a: u32, b: u32): u64 {
  let x = reinterpret<f32>(a), y = reinterpret<f32>(b);
  if (x < y) return 1;
  if (x != x || y != y) fflags |= NV;
  return 0;
}

export function f32_le(a: u32, b: u32): u64 {
  let x = reinterpret<f32>(a), y = reinterpret<f32>(b);
  if (x <= y) return 1;
  if (x != x || y != y) fflags |= NV;
  return 0;
}

export function f32_classify(a: u32): u64 {
  return classify(a, false);
}

export function f32_to_i32(a: u32, rm: u32): u64 {
  if (FAST && toIntFast(<f64>reinterpret<f32>(a), rm, 0)) return cvtOut;
  return toIntSoft(a, rm, false, 0);
}

export function f32_to_u32(a: u32, rm: u32): u64 {
  if (FAST && toIntFast(<f64>reinterpret<f32>(a), rm, 1)) return cvtOut;
  return toIntSoft(a, rm, false, 1);
}

export function f32_to_i64(a: u32, rm: u32): u64 {
  if (FAST && toIntFast(<f64>reinterpret<f32>(a), rm, 2)) return cvtOut;
  return toIntSoft(a, rm, false, 2);
}

export function f32_to_u64(a: u32, rm: u32): u64 {
  if (FAST && toIntFast(<f64>reinterpret<f32>(a), rm, 3)) return cvtOut;
  return toIntSoft(a, rm, false, 3);
}

export function i32_to_f32(a: i32, rm: u32): u32 {
  if (FAST && a >= -0x1000000 && a <= 0x1000000) return reinterpret<u32>(<f32>a);
  return <u32>fromIntSoft(a < 0 ? <u64>(0 - <i64>a) : <u64>a, <u32>(a < 0), rm, false);
}

export function u32_to_f32(a: u32, rm: u32): u32 {
  if (FAST && a <= 0x1000000) return reinterpret<u32>(<f32>a);
  return <u32>fromIntSoft(<u64>a, 0, rm, false);
}

export function i64_to_f32(a: i64, rm: u32): u32 {
  if (FAST && a >= -0x1000000 && a <= 0x1000000) return reinterpret<u32>(<f32>a);
  return <u32>fromIntSoft(a < 0 ? <u64>0 - <u64>a : <u64>a, <u32>(a < 0), rm, false);
}

export function u64_to_f32(a: u64, rm: u32): u32 {
  if (FAST && a <= 0x1000000) return reinterpret<u32>(<f32>a);
  return <u32>fromIntSoft(a, 0, rm, false);
}

export function f32_to_f64(a: u32): u64 {
  let x = reinterpret<f32>(a);
  if (FAST && x == x) return reinterpret<u64>(<f64>x);
  return cvtSoft(a, RNE, false);
}

// ---------------------------------------------------------------------------
// binary64 API

export function f64_add(a: u64, b: u64, rm: u32): u64 {
  if (FAST && rm == RNE) {
    let x = reinterpret<f64>(a), y = reinterpret<f64>(b);
    let r = x + y;
    if (abs<f64>(r) < Infinity) {
      if (fflags & NX) return reinterpret<u64>(r);
      let err = twoSumErr64(x, y, r);
      if (abs<f64>(err) < Infinity) {
        if (err != 0) fflags |= NX;
        return reinterpret<u64>(r);
      }
    }
  }
  return addSoft(a, b, rm, true);
}

export function f64_sub(a: u64, b: u64, rm: u32): u64 {
  return f64_add(a, b ^ 0x8000000000000000, rm);
}

export function f64_mul(a: u64, b: u64, rm: u32): u64 {
  if (FAST && rm == RNE && (fflags & NX)) {
    let x = reinterpret<f64>(a), y = reinterpret<f64>(b);
    let r = x * y;
    if (abs<f64>(r) < Infinity && (abs<f64>(r) >= F64_SAFE_MIN || (r == 0 && (x == 0 || y == 0)))) {
      return reinterpret<u64>(r);
    }
  }
  return mulSoft(a, b, rm, true);
}

export function f64_div(a: u64, b: u64, rm: u32): u64 {
  if (FAST && rm == RNE && (fflags & NX)) {
    let x = reinterpret<f64>(a), y = reinterpret<f64>(b);
    let r = x / y;
    if (abs<f64>(r) < Infinity && (abs<f64>(r) >= F64_SAFE_MIN || x == 0)) {
      return reinterpret<u64>(r);
    }
  }
  return divSoft(a, b, rm, true);
}

export function f64_sqrt(a: u64, rm: u32): u64 {
  if (FAST && rm == RNE && (fflags & NX)) {
    let x = reinterpret<f64>(a);
    if (x >= 0 && x < Infinity) return reinterpret<u64>(sqrt<f64>(x));
  }
  return sqrtSoft(a, rm, true);
}

// Fused multiply-add fast path (RNE, NX already set): wasm has no fma, so emulate it exactly with
// error-free transformations and rounding to odd (Boldo & Melquiond, "Emulation of FMA and correctly rounded
// sums: proved algorithms using rounding to odd", IEEE TC 2008): uh + ul = a*b exactly (Dekker/Veltkamp),
// th + tl = c + uh exactly (TwoSum), v = RO(tl + ul), result = RN(th + v) is the correctly rounded a*b + c.
// The operand and result ranges below keep every step free of overflow and underflow, which the proof needs
// and which also rules out the OF and UF flags; everything else takes the exact software path.
const FMA_LO: f64 = 1.1754943508222875e-38 * 1.1754943508222875e-38 * 1.1754943508222875e-38; // ~2^-378
const FMA_HI: f64 = 1.0 / FMA_LO;
const SPLITTER: f64 = 134217729.0; // 2^27 + 1

@inline function inFmaRange(x: f64): bool {
  const m = abs<f64>(x);
  return m >= FMA_LO && m <= FMA_HI;
}

function fmaFast64(x: f64, y: f64, z: f64): f64 {
  // exact product uh + ul
  const uh = x * y;
  let t = SPLITTER * x;
  const xh = t - (t - x), xl = x - xh;
  t = SPLITTER * y;
  const yh = t - (t - y), yl = y - yh;
  const ul = ((xh * yh - uh) + xh * yl + xl * yh) + xl * yl;
  // exact sum th + tl = z + uh
  const th = z + uh;
  const tl = twoSumErr64(z, uh, th);
  // v = tl + ul rounded to odd
  let v = tl + ul;
  const ve = twoSumErr64(tl, ul, v);
  if (ve != 0) {
    let bits = reinterpret<u64>(v);
    if ((bits & 1) == 0) {
      bits = (ve > 0) == (v > 0) ? bits + 1 : bits - 1;
      v = reinterpret<f64>(bits);
    }
  }
  return th + v;
}

export function f64_muladd(a: u64, b: u64, c: u64, rm: u32): u64 {
  if (FAST && rm == RNE && (fflags & NX)) {
    const x = reinterpret<f64>(a), y = reinterpret<f64>(b), z = reinterpret<f64>(c);
    if (inFmaRange(x) && inFmaRange(y) && (z == 0 ? (c & 0x7fffffffffffffff) == 0 : inFmaRange(z))) {
      const r = fmaFast64(x, y, z);
      if (inFmaRange(r)) return reinterpret<u64>(r);
    }
  }
  return fmaSoft(a, b, c, rm, true);
}

export function f64_min(a: u64, b: u64): u64 {
  let x = reinterpret<f64>(a), y = reinterpret<f64>(b);
  if (x < y) return a;
  if (y < x) return b;
  if (x == y) return a | b;
  return minMaxSoft(a, b, true, false);
}

export function f64_max(a: u64, b: u64): u64 {
  let x = reinterpret<f64>(a), y = reinterpret<f64>(b);
  if (x > y) return a;
  if (y > x) return b;
  if (x == y) return a & b;
  return minMaxSoft(a, b, true, true);
}

export function f64_eq(a: u64, b: u64): u64 {
  if (reinterpret<f64>(a) == reinterpret<f64>(b)) return 1;
  if (isSNaNBits(a, true) || isSNaNBits(b, true)) fflags |= NV;
  return 0;
}

export function f64_lt(a: u64, b: u64): u64 {
  let x = reinterpret<f64>(a), y = reinterpret<f64>(b);
  if (x < y) return 1;
  if (x != x || y != y) fflags |= NV;
  return 0;
}

export function f64_le(a: u64, b: u64): u64 {
  let x = reinterpret<f64>(a), y = reinterpret<f64>(b);
  if (x <= y) return 1;
  if (x != x || y != y) fflags |= NV;
  return 0;
}

export function f64_classify(a: u64): u64 {
  return classify(a, true);
}

export function f64_to_i32(a: u64, rm: u32): u64 {
  if (FAST && toIntFast(reinterpret<f64>(a), rm, 0)) return cvtOut;
  return toIntSoft(a, rm, true, 0);
}

export function f64_to_u32(a: u64, rm: u32): u64 {
  if (FAST && toIntFast(reinterpret<f64>(a), rm, 1)) return cvtOut;
  return toIntSoft(a, rm, true, 1);
}

export function f64_to_i64(a: u64, rm: u32): u64 {
  if (FAST && toIntFast(reinterpret<f64>(a), rm, 2)) return cvtOut;
  return toIntSoft(a, rm, true, 2);
}

export function f64_to_u64(a: u64, rm: u32): u64 {
  if (FAST && toIntFast(reinterpret<f64>(a), rm, 3)) return cvtOut;
  return toIntSoft(a, rm, true, 3);
}

export function i32_to_f64(a: i32, rm: u32): u64 {
  return reinterpret<u64>(<f64>a); // always exact
}

export function u32_to_f64(a: u32, rm: u32): u64 {
  return reinterpret<u64>(<f64>a); // always exact
}

export function i64_to_f64(a: i64, rm: u32): u64 {
  if (FAST && a >= -0x20000000000000 && a <= 0x20000000000000) return reinterpret<u64>(<f64>a);
  return fromIntSoft(a < 0 ? <u64>0 - <u64>a : <u64>a, <u32>(a < 0), rm, true);
}

export function u64_to_f64(a: u64, rm: u32): u64 {
  if (FAST && a <= 0x20000000000000) return reinterpret<u64>(<f64>a);
  return fromIntSoft(a, 0, rm, true);
}

export function f64_to_f32(a: u64, rm: u32): u32 {
  if (FAST && rm == RNE) {
    let x = reinterpret<f64>(a);
    let r = <f32>x;
    if (abs<f32>(r) < INF32 && (abs<f32>(r) >= F32_SAFE_MIN || x == 0)) {
      if (<f64>r != x) fflags |= NX;
      return reinterpret<u32>(r);
    }
  }
  return <u32>cvtSoft(a, rm, true);
}
