/* RV64D: rounding modes (static/dynamic), fflags, conversions between formats and to/from
   integers with saturation, fused multiply-add, NaN handling, classify, loads/stores. */
#include "harness.h"
#include "fp.h"

#define D_ONE 0x3ff0000000000000
#define D_ONE_ULP 0x3ff0000000000001
#define D_MONE 0xbff0000000000000
#define D_MONE_ULP 0xbff0000000000001
#define D_HALF_ULP 0x3ca0000000000000   /* 2^-53 */
#define D_QNAN 0x7ff8000000000000
#define D_SNAN 0x7ff0000000000001
#define D_PINF 0x7ff0000000000000
#define D_NINF 0xfff0000000000000

test_main:
  fsflags zero
  CASE 1                       /* 1 + 2^-53 (a tie) under each static rounding mode */
  FLI_D f1, D_ONE
  FLI_D f2, D_HALF_ULP
  fadd.d f3, f1, f2, rne
  EXPECT_D f3, D_ONE
  fadd.d f3, f1, f2, rtz
  EXPECT_D f3, D_ONE
  fadd.d f3, f1, f2, rdn
  EXPECT_D f3, D_ONE
  fadd.d f3, f1, f2, rup
  EXPECT_D f3, D_ONE_ULP
  fadd.d f3, f1, f2, rmm
  EXPECT_D f3, D_ONE_ULP
  EXPECT_FLAGS NX
  CASE 2                       /* -1 - 2^-53 */
  FLI_D f1, D_MONE
  fsub.d f3, f1, f2, rne
  EXPECT_D f3, D_MONE
  fsub.d f3, f1, f2, rtz
  EXPECT_D f3, D_MONE
  fsub.d f3, f1, f2, rdn
  EXPECT_D f3, D_MONE_ULP
  fsub.d f3, f1, f2, rup
  EXPECT_D f3, D_MONE
  fsub.d f3, f1, f2, rmm
  EXPECT_D f3, D_MONE_ULP
  EXPECT_FLAGS NX
  CASE 3                       /* 1 + 0.75 ulp: not a tie */
  FLI_D f1, D_ONE
  FLI_D f2, 0x3ca8000000000000 /* 1.5 * 2^-53 */
  fadd.d f3, f1, f2, rne
  EXPECT_D f3, D_ONE_ULP
  fadd.d f3, f1, f2, rtz
  EXPECT_D f3, D_ONE
  fadd.d f3, f1, f2, rmm
  EXPECT_D f3, D_ONE_ULP
  EXPECT_FLAGS NX
  CASE 4                       /* dynamic rounding */
  fsrmi RDN
  FLI_D f1, D_MONE
  FLI_D f2, D_HALF_ULP
  fsub.d f3, f1, f2
  EXPECT_D f3, D_MONE_ULP
  fsrmi RUP
  fsub.d f3, f1, f2
  EXPECT_D f3, D_MONE
  fsrmi RNE
  EXPECT_FLAGS NX
  CASE 5                       /* reserved dynamic rounding mode -> illegal */
  fsrmi 6
  ARM 2f
  fmul.d f3, f1, f1
2:
  EXPECT_TRAP CAUSE_ILLEGAL
  fsrmi RNE
  ARM 2f
  .word 0x023170d3             /* fadd.d f1, f2, f3, rm=7 with frm=0 is fine... */
2:
  EXPECT_NO_TRAP
  fsrmi 7                      /* ... and illegal once frm is reserved (7 = dyn itself) */
  ARM 2f
  .word 0x023170d3
2:
  EXPECT_TRAP CAUSE_ILLEGAL
  EXPECT_TVAL 0x023170d3
  fsrmi RNE
  CASE 6                       /* flags */
  FLI_D f1, D_ONE
  FLI_D f2, 0x4008000000000000 /* 3 */
  fdiv.d f3, f1, f2
  EXPECT_D f3, 0x3fd5555555555555
  EXPECT_FLAGS NX
  fmv.d.x f2, zero
  fdiv.d f3, f1, f2
  EXPECT_D f3, D_PINF
  EXPECT_FLAGS DZ
  fneg.d f2, f2
  fdiv.d f3, f1, f2            /* 1 / -0 = -inf */
  EXPECT_D f3, D_NINF
  EXPECT_FLAGS DZ
  FLI_D f1, 0x7fefffffffffffff
  fmul.d f3, f1, f1
  EXPECT_D f3, D_PINF
  EXPECT_FLAGS (OF | NX)
  fmul.d f3, f1, f1, rdn
  EXPECT_D f3, 0x7fefffffffffffff
  EXPECT_FLAGS (OF | NX)
  FLI_D f1, 0x0000000000000001
  FLI_D f2, 0x3fe0000000000000 /* 0.5 */
  fmul.d f3, f1, f2
  EXPECT_D f3, 0
  EXPECT_FLAGS (UF | NX)
  fmul.d f3, f1, f2, rup
  EXPECT_D f3, 1
  EXPECT_FLAGS (UF | NX)
  FLI_D f1, D_PINF
  fsub.d f3, f1, f1
  EXPECT_D f3, D_QNAN
  EXPECT_FLAGS NV
  CASE 7                       /* fcvt.s.d rounding, overflow, NaN */
  FLI_D f1, 0x3ff0000010000000 /* 1 + 2^-24: tie in single */
  fcvt.s.d f3, f1
  EXPECT_S f3, 0x3f800000
  fcvt.s.d f3, f1, rup
  EXPECT_S f3, 0x3f800001
  fcvt.s.d f3, f1, rmm
  EXPECT_S f3, 0x3f800001
  EXPECT_FLAGS NX
  FLI_D f1, 0x7e37e43c8800759c /* 1e300 */
  fcvt.s.d f3, f1
  EXPECT_S f3, 0x7f800000
  EXPECT_FLAGS (OF | NX)
  fcvt.s.d f3, f1, rtz
  EXPECT_S f3, 0x7f7fffff
  EXPECT_FLAGS (OF | NX)
  FLI_D f1, 0x7ff4000000000001 /* sNaN -> canonical single NaN, NV */
  fcvt.s.d f3, f1
  EXPECT_S f3, 0x7fc00000
  EXPECT_FLAGS NV
  FLI_D f1, 0xfff8000000000123 /* qNaN -> canonical, no flag */
  fcvt.s.d f3, f1
  EXPECT_S f3, 0x7fc00000
  EXPECT_FLAGS 0
  FLI_D f1, 0x3ff8000000000000 /* 1.5 exact */
  fcvt.s.d f3, f1
  EXPECT_S f3, 0x3fc00000
  EXPECT_FLAGS 0
  CASE 8                       /* fcvt.d.s */
  FLI_S f1, 0x3fc00000
  fcvt.d.s f3, f1
  EXPECT_D f3, 0x3ff8000000000000
  FLI_S f1, 0x00000001         /* subnormal single is normal as double */
  fcvt.d.s f3, f1
  EXPECT_D f3, 0x36a0000000000000
  EXPECT_FLAGS 0
  FLI_S f1, 0x7f800001
  fcvt.d.s f3, f1
  EXPECT_D f3, D_QNAN
  EXPECT_FLAGS NV
  FLI_RAW f1, 0x000000003fc00000  /* not NaN-boxed */
  fcvt.d.s f3, f1
  EXPECT_D f3, D_QNAN
  EXPECT_FLAGS 0
  CASE 9                       /* fcvt.w.d / fcvt.wu.d */
  FLI_D f1, 0x41e0000000000000 /* 2^31 */
  fcvt.w.d a0, f1
  EXPECT a0, 0x7fffffff
  EXPECT_FLAGS NV
  FLI_D f1, 0xc1e0000000000000 /* -2^31 */
  fcvt.w.d a0, f1
  EXPECT a0, 0xffffffff80000000
  EXPECT_FLAGS 0
  FLI_D f1, 0x41dfffffffe00000 /* 2147483647.5 */
  fcvt.w.d a0, f1, rtz
  EXPECT a0, 0x7fffffff
  EXPECT_FLAGS NX
  fcvt.w.d a0, f1, rne         /* rounds to 2^31: out of range */
  EXPECT a0, 0x7fffffff
  EXPECT_FLAGS NV
  FLI_D f1, 0x41efffffffe00000 /* 4294967295.0 */
  fcvt.wu.d a0, f1
  EXPECT a0, -1
  EXPECT_FLAGS 0
  FLI_D f1, 0x41f0000000000000 /* 2^32 */
  fcvt.wu.d a0, f1
  EXPECT a0, -1
  EXPECT_FLAGS NV
  FLI_D f1, D_QNAN
  fcvt.w.d a0, f1
  EXPECT a0, 0x7fffffff
  fcvt.wu.d a0, f1
  EXPECT a0, -1
  EXPECT_FLAGS NV
  FLI_D f1, D_NINF
  fcvt.w.d a0, f1
  EXPECT a0, 0xffffffff80000000
  fcvt.wu.d a0, f1
  EXPECT a0, 0
  EXPECT_FLAGS NV
  FLI_D f1, 0xc004000000000000 /* -2.5 */
  fcvt.w.d a0, f1, rne
  EXPECT a0, -2
  fcvt.w.d a0, f1, rdn
  EXPECT a0, -3
  fcvt.w.d a0, f1, rup
  EXPECT a0, -2
  fcvt.w.d a0, f1, rmm
  EXPECT a0, -3
  EXPECT_FLAGS NX
  CASE 10                      /* fcvt.l.d / fcvt.lu.d */
  FLI_D f1, 0x43e0000000000000 /* 2^63 */
  fcvt.l.d a0, f1
  EXPECT a0, 0x7fffffffffffffff
  EXPECT_FLAGS NV
  fcvt.lu.d a0, f1
  EXPECT a0, 0x8000000000000000
  EXPECT_FLAGS 0
  FLI_D f1, 0xc3e0000000000000 /* -2^63 */
  fcvt.l.d a0, f1
  EXPECT a0, 0x8000000000000000
  EXPECT_FLAGS 0
  FLI_D f1, 0xc3e0000000000001 /* just below -2^63 */
  fcvt.l.d a0, f1
  EXPECT a0, 0x8000000000000000
  EXPECT_FLAGS NV
  FLI_D f1, 0x43f0000000000000 /* 2^64 */
  fcvt.lu.d a0, f1
  EXPECT a0, -1
  EXPECT_FLAGS NV
  FLI_D f1, D_MONE
  fcvt.lu.d a0, f1
  EXPECT a0, 0
  EXPECT_FLAGS NV
  FLI_D f1, 0x3ff8000000000000 /* 1.5 */
  fcvt.lu.d a0, f1, rtz
  EXPECT a0, 1
  fcvt.l.d a0, f1, rne
  EXPECT a0, 2
  EXPECT_FLAGS NX
  FLI_D f1, D_SNAN
  fcvt.l.d a0, f1
  EXPECT a0, 0x7fffffffffffffff
  EXPECT_FLAGS NV
  FLI_D f1, 0x433fffffffffffff /* 2^53 - 1, exact */
  fcvt.l.d a0, f1
  EXPECT a0, 0x1fffffffffffff
  EXPECT_FLAGS 0
  CASE 11                      /* int -> double */
  li a0, 0x20000000000001      /* 2^53 + 1 */
  fcvt.d.l f1, a0
  EXPECT_D f1, 0x4340000000000000
  EXPECT_FLAGS NX
  fcvt.d.l f1, a0, rup
  EXPECT_D f1, 0x4340000000000001
  EXPECT_FLAGS NX
  li a0, -1
  fcvt.d.lu f1, a0
  EXPECT_D f1, 0x43f0000000000000
  EXPECT_FLAGS NX
  fcvt.d.l f1, a0
  EXPECT_D f1, D_MONE
  fcvt.d.w f1, a0
  EXPECT_D f1, D_MONE
  fcvt.d.wu f1, a0
  EXPECT_D f1, 0x41efffffffe00000
  li a0, 0xffffffff80000000
  fcvt.d.w f1, a0
  EXPECT_D f1, 0xc1e0000000000000
  li a0, 0x0000000180000000    /* only the low word counts */
  fcvt.d.wu f1, a0
  EXPECT_D f1, 0x41e0000000000000
  EXPECT_FLAGS 0
  CASE 12                      /* fused multiply-add */
  FLI_D f1, 0x3ff0000002000000 /* 1 + 2^-27 */
  FLI_D f2, D_MONE
  fmadd.d f3, f1, f1, f2
  EXPECT_D f3, 0x3e50000001000000
  EXPECT_FLAGS 0
  fmul.d f4, f1, f1
  fadd.d f4, f4, f2
  EXPECT_D f4, 0x3e50000000000000
  EXPECT_FLAGS NX
  FLI_D f1, 0x4000000000000000
  FLI_D f2, 0x4008000000000000
  FLI_D f3, D_ONE
  fmadd.d f4, f1, f2, f3
  EXPECT_D f4, 0x401c000000000000
  fmsub.d f4, f1, f2, f3
  EXPECT_D f4, 0x4014000000000000
  fnmsub.d f4, f1, f2, f3
  EXPECT_D f4, 0xc014000000000000
  fnmadd.d f4, f1, f2, f3
  EXPECT_D f4, 0xc01c000000000000
  EXPECT_FLAGS 0
  FLI_D f1, D_NINF
  fmv.d.x f2, zero
  FLI_D f3, D_QNAN
  fmadd.d f4, f2, f1, f3
  EXPECT_D f4, D_QNAN
  EXPECT_FLAGS NV
  CASE 13                      /* min/max/compare */
  FLI_D f1, 0x8000000000000000
  fmv.d.x f2, zero
  fmin.d f3, f2, f1
  EXPECT_D f3, 0x8000000000000000
  fmax.d f3, f1, f2
  EXPECT_D f3, 0
  FLI_D f1, D_SNAN
  FLI_D f2, D_MONE
  fmax.d f3, f1, f2
  EXPECT_D f3, D_MONE
  EXPECT_FLAGS NV
  FLI_D f1, D_QNAN
  fmin.d f3, f1, f1
  EXPECT_D f3, D_QNAN
  EXPECT_FLAGS 0
  fle.d a0, f1, f2
  EXPECT a0, 0
  EXPECT_FLAGS NV
  feq.d a0, f1, f2
  EXPECT a0, 0
  EXPECT_FLAGS 0
  flt.d a0, f2, f3
  EXPECT a0, 0
  EXPECT_FLAGS NV
  FLI_D f3, D_ONE
  flt.d a0, f2, f3
  EXPECT a0, 1
  fle.d a0, f3, f3
  EXPECT a0, 1
  feq.d a0, f3, f3
  EXPECT a0, 1
  EXPECT_FLAGS 0
  CASE 14                      /* fclass.d */
  FLI_D f1, D_NINF
  fclass.d a0, f1
  EXPECT a0, 0x001
  FLI_D f1, D_MONE
  fclass.d a0, f1
  EXPECT a0, 0x002
  FLI_D f1, 0x800fffffffffffff
  fclass.d a0, f1
  EXPECT a0, 0x004
  FLI_D f1, 0x8000000000000000
  fclass.d a0, f1
  EXPECT a0, 0x008
  fmv.d.x f1, zero
  fclass.d a0, f1
  EXPECT a0, 0x010
  FLI_D f1, 1
  fclass.d a0, f1
  EXPECT a0, 0x020
  FLI_D f1, 0x0010000000000000
  fclass.d a0, f1
  EXPECT a0, 0x040
  FLI_D f1, D_PINF
  fclass.d a0, f1
  EXPECT a0, 0x080
  FLI_D f1, D_SNAN
  fclass.d a0, f1
  EXPECT a0, 0x100
  FLI_D f1, 0xfff8000000000000
  fclass.d a0, f1
  EXPECT a0, 0x200
  CASE 15                      /* sign injection keeps payloads */
  FLI_D f1, D_SNAN
  FLI_D f2, D_MONE
  fsgnjn.d f3, f1, f2
  EXPECT_D f3, 0x7ff0000000000001
  fsgnj.d f3, f1, f2
  EXPECT_D f3, 0xfff0000000000001
  fsgnjx.d f3, f2, f2
  EXPECT_D f3, D_ONE
  EXPECT_FLAGS 0
  CASE 16                      /* sqrt/div */
  FLI_D f1, 0x4000000000000000
  fsqrt.d f3, f1
  EXPECT_D f3, 0x3ff6a09e667f3bcd
  EXPECT_FLAGS NX
  FLI_D f1, 0x4022000000000000 /* 9 */
  fsqrt.d f3, f1
  EXPECT_D f3, 0x4008000000000000
  EXPECT_FLAGS 0
  FLI_D f1, D_MONE
  fsqrt.d f3, f1
  EXPECT_D f3, D_QNAN
  EXPECT_FLAGS NV
  CASE 17                      /* subnormal operands and results */
  FLI_D f1, 1                  /* 2^-1074 */
  fadd.d f3, f1, f1
  EXPECT_D f3, 2
  FLI_D f2, 0x4330000000000000 /* 2^52 */
  fmul.d f3, f1, f2
  EXPECT_D f3, 0x0010000000000000
  fsqrt.d f3, f1
  EXPECT_D f3, 0x1e60000000000000  /* 2^-537 */
  FLI_D f1, 0x0010000000000000
  FLI_D f2, 0x3fe0000000000000
  fmul.d f3, f1, f2            /* exact tiny result: no UF */
  EXPECT_D f3, 0x0008000000000000
  EXPECT_FLAGS 0
  FLI_D f1, 0x36a8000000000000 /* 1.5 * 2^-149 -> single subnormal, tie to even */
  fcvt.s.d f3, f1
  EXPECT_S f3, 0x00000002
  EXPECT_FLAGS (UF | NX)
  FLI_D f1, 0x000fffffffffffff /* largest subnormal + smallest: min normal, exact */
  FLI_D f2, 1
  fadd.d f3, f1, f2
  EXPECT_D f3, 0x0010000000000000
  EXPECT_FLAGS 0
  fsub.d f3, f2, f1            /* 2^-1074 - (2^-1022 - 2^-1074) */
  EXPECT_D f3, 0x800ffffffffffffe
  EXPECT_FLAGS 0
  CASE 18                      /* loads/stores, fmv */
  la s0, ddata
  fld f1, 0(s0)
  EXPECT_D f1, 0x0123456789abcdef
  fsd f1, 8(s0)
  ld a0, 8(s0)
  EXPECT a0, 0x0123456789abcdef
  fmv.x.d a0, f1
  EXPECT a0, 0x0123456789abcdef
  li a0, 0xfedcba9876543210
  fmv.d.x f2, a0
  fsd f2, 16(s0)
  ld a1, 16(s0)
  EXPECT_EQ a0, a1
  flw f3, 16(s0)               /* flw of the low half boxes it */
  EXPECT_D f3, 0xffffffff76543210
  EXPECT_FLAGS 0
  PASS

  .data
  .align 4
ddata:
  .dword 0x0123456789abcdef, 0, 0, 0
