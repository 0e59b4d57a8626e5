/* RV64F: static and dynamic rounding modes, fflags, NaN boxing, fcvt saturation,
   fused multiply-add, min/max/compare/classify, reserved rounding modes. */
#include "harness.h"
#include "fp.h"

#define ONE 0x3f800000
#define ONE_ULP 0x3f800001
#define MONE 0xbf800000
#define MONE_ULP 0xbf800001
#define HALF_ULP 0x33800000        /* 2^-24 */
#define QNAN 0x7fc00000
#define SNAN 0x7f800001
#define PINF 0x7f800000
#define NINF 0xff800000

test_main:
  fsflags zero
  CASE 1                       /* tie: 1 + 2^-24 under each static rounding mode */
  FLI_S f1, ONE
  FLI_S f2, HALF_ULP
  fadd.s f3, f1, f2, rne
  EXPECT_S f3, ONE
  EXPECT_FLAGS NX
  fadd.s f3, f1, f2, rtz
  EXPECT_S f3, ONE
  EXPECT_FLAGS NX
  fadd.s f3, f1, f2, rdn
  EXPECT_S f3, ONE
  EXPECT_FLAGS NX
  fadd.s f3, f1, f2, rup
  EXPECT_S f3, ONE_ULP
  EXPECT_FLAGS NX
  fadd.s f3, f1, f2, rmm
  EXPECT_S f3, ONE_ULP
  EXPECT_FLAGS NX
  CASE 2                       /* negative tie: -1 - 2^-24 */
  FLI_S f1, MONE
  fsub.s f3, f1, f2, rne
  EXPECT_S f3, MONE
  fsub.s f3, f1, f2, rtz
  EXPECT_S f3, MONE
  fsub.s f3, f1, f2, rdn
  EXPECT_S f3, MONE_ULP
  fsub.s f3, f1, f2, rup
  EXPECT_S f3, MONE
  fsub.s f3, f1, f2, rmm
  EXPECT_S f3, MONE_ULP
  EXPECT_FLAGS NX
  CASE 3                       /* dynamic rounding mode from frm */
  FLI_S f1, ONE
  li a0, RUP
  fsrm a1, a0                  /* swap, old frm = 0 */
  EXPECT a1, 0
  fadd.s f3, f1, f2, dyn
  EXPECT_S f3, ONE_ULP
  fsrmi RMM
  fadd.s f3, f1, f2
  EXPECT_S f3, ONE_ULP
  fsrmi RTZ
  fadd.s f3, f1, f2
  EXPECT_S f3, ONE
  fadd.s f3, f1, f2, rup       /* static mode overrides frm */
  EXPECT_S f3, ONE_ULP
  frrm a0
  EXPECT a0, RTZ
  csrr a0, fcsr
  EXPECT a0, (RTZ << 5) | NX
  fsrmi RNE
  EXPECT_FLAGS NX
  CASE 4                       /* fcvt.w.s rounding of +-2.5 */
  FLI_S f1, 0x40200000         /* 2.5 */
  fcvt.w.s a0, f1, rne
  EXPECT a0, 2
  fcvt.w.s a0, f1, rtz
  EXPECT a0, 2
  fcvt.w.s a0, f1, rdn
  EXPECT a0, 2
  fcvt.w.s a0, f1, rup
  EXPECT a0, 3
  fcvt.w.s a0, f1, rmm
  EXPECT a0, 3
  EXPECT_FLAGS NX
  FLI_S f1, 0xc0200000         /* -2.5 */
  fcvt.w.s a0, f1, rne
  EXPECT a0, -2
  fcvt.w.s a0, f1, rtz
  EXPECT a0, -2
  fcvt.w.s a0, f1, rdn
  EXPECT a0, -3
  fcvt.w.s a0, f1, rup
  EXPECT a0, -2
  fcvt.w.s a0, f1, rmm
  EXPECT a0, -3
  EXPECT_FLAGS NX
  CASE 5                       /* fflags: NX, DZ, NV, OF, UF and accumulation */
  FLI_S f1, ONE
  FLI_S f2, 0x40400000         /* 3.0 */
  fdiv.s f3, f1, f2
  EXPECT_S f3, 0x3eaaaaab
  EXPECT_FLAGS NX
  fmv.w.x f2, zero
  fdiv.s f3, f1, f2
  EXPECT_S f3, PINF
  EXPECT_FLAGS DZ
  FLI_S f1, MONE
  fsqrt.s f3, f1
  EXPECT_S f3, QNAN
  EXPECT_FLAGS NV
  FLI_S f1, 0x7f7fffff         /* max float */
  fadd.s f3, f1, f1
  EXPECT_S f3, PINF
  EXPECT_FLAGS (OF | NX)
  fadd.s f3, f1, f1, rtz       /* overflow rounding toward zero gives max float */
  EXPECT_S f3, 0x7f7fffff
  EXPECT_FLAGS (OF | NX)
  FLI_S f1, 0x00000001         /* min subnormal * 0.5 -> 0 */
  FLI_S f2, 0x3f000000
  fmul.s f3, f1, f2
  EXPECT_S f3, 0
  EXPECT_FLAGS (UF | NX)
  FLI_S f1, 0x00800000         /* min normal * 0.5 is exact: no UF */
  fmul.s f3, f1, f2
  EXPECT_S f3, 0x00400000
  EXPECT_FLAGS 0
  FLI_S f1, ONE
  FLI_S f2, 0x40400000
  fdiv.s f3, f1, f2
  fmv.w.x f2, zero
  fdiv.s f3, f1, f2
  EXPECT_FLAGS (NX | DZ)       /* flags accrue */
  CASE 6                       /* fcsr / frm / fflags aliasing and masking */
  li a0, 0xffffffff
  fscsr a1, a0
  csrr a0, fcsr
  EXPECT a0, 0xff
  frrm a0
  EXPECT a0, 7
  frflags a0
  EXPECT a0, 0x1f
  li a0, 0x3e5                 /* frm = 7 (bits 7:5), flags = 5, bit 9 ignored */
  csrw fcsr, a0
  csrr a0, fcsr
  EXPECT a0, 0xe5
  fsflagsi 0x2
  csrr a0, fcsr
  EXPECT a0, 0xe2
  csrsi fflags, 0x8
  frflags a0
  EXPECT a0, 0xa
  csrci fflags, 0xa
  csrwi frm, 1
  csrr a0, fcsr
  EXPECT a0, 0x20
  fscsr zero
  CASE 7                       /* reserved dynamic rounding mode -> illegal instruction */
  fsrmi 5
  frrm a0
  EXPECT a0, 5
  FLI_S f1, ONE
  ARM 2f
1:
  .option push
  .option norvc
  fadd.s f3, f1, f1, dyn
  .option pop
2:
  EXPECT_TRAP CAUSE_ILLEGAL
  la a0, 1b
  lwu a0, 0(a0)
  EXPECT_TVAL_R a0
  FLI_S f3, 0x12345
  fsgnj.s f3, f1, f1           /* no rounding mode involved: no trap */
  EXPECT_S f3, ONE
  fsrmi 7
  ARM 2f
  fmul.s f3, f1, f1
2:
  EXPECT_TRAP CAUSE_ILLEGAL
  fsrmi RNE
  CASE 8                       /* reserved static rounding mode 5 -> illegal instruction */
  ARM 2f
  .word 0x003150d3             /* fadd.s f1, f2, f3, rm=5 */
2:
  EXPECT_TRAP CAUSE_ILLEGAL
  EXPECT_TVAL 0x003150d3
  ARM 2f
  .word 0x003160d3             /* fadd.s f1, f2, f3, rm=6 */
2:
  EXPECT_TRAP CAUSE_ILLEGAL
  EXPECT_TVAL 0x003160d3
  CASE 9                       /* NaN boxing produced by fmv.w.x / flw / arithmetic */
  li a0, 0x40490fdb
  fmv.w.x f1, a0
  fmv.x.d a1, f1
  EXPECT a1, 0xffffffff40490fdb
  la s0, fdata
  flw f2, 0(s0)
  fmv.x.d a1, f2
  EXPECT a1, 0xffffffffc0000000
  fadd.s f3, f2, f2
  fmv.x.d a1, f3
  EXPECT a1, 0xffffffffc0800000
  CASE 10                      /* improperly boxed inputs behave as canonical NaN */
  FLI_RAW f1, 0x000000003f800000
  FLI_S f2, ONE
  fadd.s f3, f1, f2
  EXPECT_S f3, QNAN
  EXPECT_FLAGS 0
  fsgnj.s f3, f1, f1
  EXPECT_S f3, QNAN
  fsgnjn.s f3, f2, f1          /* sign taken from canonical NaN (positive) -> -1 */
  EXPECT_S f3, MONE
  fclass.s a0, f1
  EXPECT a0, 0x200
  fmin.s f3, f1, f2            /* NaN input ignored */
  EXPECT_S f3, ONE
  feq.s a0, f1, f1
  EXPECT a0, 0
  EXPECT_FLAGS 0
  FLI_RAW f1, 0xfffffffe3f800000  /* almost boxed is still not boxed */
  fadd.s f3, f1, f2
  EXPECT_S f3, QNAN
  CASE 11                      /* transfers do not check boxing */
  FLI_RAW f1, 0x12345678bf800000
  fmv.x.w a0, f1
  EXPECT a0, 0xffffffffbf800000
  la s0, fdata
  fsw f1, 8(s0)
  lwu a0, 8(s0)
  EXPECT a0, 0xbf800000
  lwu a0, 12(s0)               /* fsw wrote 32 bits only */
  EXPECT a0, 0x22222222
  FLI_S f1, 0x7f800001         /* signalling NaN stays untouched through fmv */
  fmv.x.w a0, f1
  EXPECT a0, 0x7f800001
  EXPECT_FLAGS 0
  CASE 12                      /* fcvt.w.s / fcvt.wu.s saturation */
  FLI_S f1, QNAN
  fcvt.w.s a0, f1, rtz
  EXPECT a0, 0x7fffffff
  EXPECT_FLAGS NV
  FLI_S f1, PINF
  fcvt.w.s a0, f1, rtz
  EXPECT a0, 0x7fffffff
  EXPECT_FLAGS NV
  FLI_S f1, NINF
  fcvt.w.s a0, f1, rtz
  EXPECT a0, 0xffffffff80000000
  EXPECT_FLAGS NV
  FLI_S f1, 0x4f32d05e         /* 3e9 */
  fcvt.w.s a0, f1, rtz
  EXPECT a0, 0x7fffffff
  EXPECT_FLAGS NV
  fcvt.wu.s a0, f1, rtz        /* 3e9 fits in u32; result sign-extended */
  EXPECT a0, 0xffffffffb2d05e00
  EXPECT_FLAGS 0
  FLI_S f1, 0xcf32d05e         /* -3e9 */
  fcvt.w.s a0, f1, rtz
  EXPECT a0, 0xffffffff80000000
  EXPECT_FLAGS NV
  FLI_S f1, 0xcf000000         /* -2^31 exactly */
  fcvt.w.s a0, f1, rtz
  EXPECT a0, 0xffffffff80000000
  EXPECT_FLAGS 0
  FLI_S f1, MONE
  fcvt.wu.s a0, f1, rtz
  EXPECT a0, 0
  EXPECT_FLAGS NV
  FLI_S f1, 0xbf000000         /* -0.5 rounds to 0 */
  fcvt.wu.s a0, f1, rtz
  EXPECT a0, 0
  EXPECT_FLAGS NX
  fcvt.wu.s a0, f1, rdn        /* ... but to -1 when rounding down: invalid */
  EXPECT a0, 0
  EXPECT_FLAGS NV
  FLI_S f1, QNAN
  fcvt.wu.s a0, f1
  EXPECT a0, -1
  EXPECT_FLAGS NV
  FLI_S f1, PINF
  fcvt.wu.s a0, f1
  EXPECT a0, -1
  EXPECT_FLAGS NV
  FLI_S f1, NINF
  fcvt.wu.s a0, f1
  EXPECT a0, 0
  EXPECT_FLAGS NV
  CASE 13                      /* fcvt.l.s / fcvt.lu.s saturation */
  FLI_S f1, QNAN
  fcvt.l.s a0, f1
  EXPECT a0, 0x7fffffffffffffff
  fcvt.lu.s a0, f1
  EXPECT a0, 0xffffffffffffffff
  EXPECT_FLAGS NV
  FLI_S f1, NINF
  fcvt.l.s a0, f1
  EXPECT a0, 0x8000000000000000
  fcvt.lu.s a0, f1
  EXPECT a0, 0
  EXPECT_FLAGS NV
  FLI_S f1, 0x5f000000         /* 2^63 */
  fcvt.l.s a0, f1
  EXPECT a0, 0x7fffffffffffffff
  EXPECT_FLAGS NV
  fcvt.lu.s a0, f1
  EXPECT a0, 0x8000000000000000
  EXPECT_FLAGS 0
  FLI_S f1, 0xdf000000         /* -2^63 */
  fcvt.l.s a0, f1
  EXPECT a0, 0x8000000000000000
  EXPECT_FLAGS 0
  FLI_S f1, 0x5f800000         /* 2^64 */
  fcvt.lu.s a0, f1
  EXPECT a0, -1
  EXPECT_FLAGS NV
  CASE 14                      /* int -> float conversions */
  li a0, 0x7fffffff
  fcvt.s.w f1, a0
  EXPECT_S f1, 0x4f000000
  EXPECT_FLAGS NX
  li a0, -1
  fcvt.s.wu f1, a0
  EXPECT_S f1, 0x4f800000
  EXPECT_FLAGS NX
  fcvt.s.w f1, a0
  EXPECT_S f1, MONE
  EXPECT_FLAGS 0
  li a0, 0x1234567800000003    /* fcvt.s.w uses only the low 32 bits */
  fcvt.s.w f1, a0
  EXPECT_S f1, 0x40400000
  fcvt.s.lu f1, a0, rtz
  EXPECT_S f1, 0x5d91a2b3
  EXPECT_FLAGS NX
  li a0, 0x8000000000000000
  fcvt.s.l f1, a0
  EXPECT_S f1, 0xdf000000
  fcvt.s.lu f1, a0
  EXPECT_S f1, 0x5f000000
  li a0, 0xffffff01            /* 2^32 - 255: ties and rounding directions */
  fcvt.s.wu f1, a0, rne
  EXPECT_S f1, 0x4f7fffff
  fcvt.s.wu f1, a0, rup
  EXPECT_S f1, 0x4f800000
  EXPECT_FLAGS NX
  CASE 15                      /* fused multiply-add rounds once */
  FLI_S f1, 0x3f800800         /* 1 + 2^-12 */
  FLI_S f2, MONE
  fmadd.s f3, f1, f1, f2
  EXPECT_S f3, 0x3a000400      /* 2^-11 + 2^-24 */
  EXPECT_FLAGS 0
  fmul.s f4, f1, f1
  fadd.s f4, f4, f2
  EXPECT_S f4, 0x3a000000      /* unfused: 2^-11 */
  EXPECT_FLAGS NX
  CASE 16                      /* fmadd/fmsub/fnmsub/fnmadd signs */
  FLI_S f1, 0x40000000         /* 2 */
  FLI_S f2, 0x40400000         /* 3 */
  FLI_S f3, ONE
  fmadd.s f4, f1, f2, f3
  EXPECT_S f4, 0x40e00000      /* 7 */
  fmsub.s f4, f1, f2, f3
  EXPECT_S f4, 0x40a00000      /* 5 */
  fnmsub.s f4, f1, f2, f3
  EXPECT_S f4, 0xc0a00000      /* -5 */
  fnmadd.s f4, f1, f2, f3
  EXPECT_S f4, 0xc0e00000      /* -7 */
  EXPECT_FLAGS 0
  CASE 17                      /* fma: inf * 0 + qNaN raises NV */
  FLI_S f1, PINF
  fmv.w.x f2, zero
  FLI_S f3, QNAN
  fmadd.s f4, f1, f2, f3
  EXPECT_S f4, QNAN
  EXPECT_FLAGS NV
  FLI_S f3, ONE
  fmadd.s f4, f1, f2, f3
  EXPECT_S f4, QNAN
  EXPECT_FLAGS NV
  FLI_S f1, ONE                /* qNaN addend alone: no flag */
  FLI_S f3, 0x7fc12345
  fmadd.s f4, f1, f1, f3
  EXPECT_S f4, QNAN            /* NaN results are canonical */
  EXPECT_FLAGS 0
  CASE 18                      /* fmin/fmax: signed zeros, NaNs */
  FLI_S f1, 0x80000000         /* -0 */
  fmv.w.x f2, zero             /* +0 */
  fmin.s f3, f1, f2
  EXPECT_S f3, 0x80000000
  fmin.s f3, f2, f1
  EXPECT_S f3, 0x80000000
  fmax.s f3, f1, f2
  EXPECT_S f3, 0
  fmax.s f3, f2, f1
  EXPECT_S f3, 0
  FLI_S f1, QNAN
  FLI_S f2, ONE
  fmin.s f3, f1, f2
  EXPECT_S f3, ONE
  fmax.s f3, f2, f1
  EXPECT_S f3, ONE
  EXPECT_FLAGS 0
  FLI_S f1, SNAN
  fmin.s f3, f1, f2
  EXPECT_S f3, ONE
  EXPECT_FLAGS NV
  FLI_S f2, 0x7fc00055
  fmax.s f3, f1, f2
  EXPECT_S f3, QNAN
  EXPECT_FLAGS NV
  fmin.s f3, f2, f2
  EXPECT_S f3, QNAN
  EXPECT_FLAGS 0
  CASE 19                      /* compares: quiet vs signalling */
  FLI_S f1, QNAN
  FLI_S f2, ONE
  feq.s a0, f1, f2
  EXPECT a0, 0
  EXPECT_FLAGS 0
  flt.s a0, f1, f2
  EXPECT a0, 0
  EXPECT_FLAGS NV
  fle.s a0, f2, f1
  EXPECT a0, 0
  EXPECT_FLAGS NV
  FLI_S f1, SNAN
  feq.s a0, f1, f2
  EXPECT a0, 0
  EXPECT_FLAGS NV
  FLI_S f1, 0x80000000
  fmv.w.x f2, zero
  feq.s a0, f1, f2             /* -0 == +0 */
  EXPECT a0, 1
  flt.s a0, f1, f2
  EXPECT a0, 0
  fle.s a0, f1, f2
  EXPECT a0, 1
  FLI_S f1, MONE
  FLI_S f2, ONE
  flt.s a0, f1, f2
  EXPECT a0, 1
  EXPECT_FLAGS 0
  CASE 20                      /* fclass.s */
  FLI_S f1, NINF
  fclass.s a0, f1
  EXPECT a0, 0x001
  FLI_S f1, MONE
  fclass.s a0, f1
  EXPECT a0, 0x002
  FLI_S f1, 0x80000001
  fclass.s a0, f1
  EXPECT a0, 0x004
  FLI_S f1, 0x80000000
  fclass.s a0, f1
  EXPECT a0, 0x008
  FLI_S f1, 0
  fclass.s a0, f1
  EXPECT a0, 0x010
  FLI_S f1, 0x007fffff
  fclass.s a0, f1
  EXPECT a0, 0x020
  FLI_S f1, ONE
  fclass.s a0, f1
  EXPECT a0, 0x040
  FLI_S f1, PINF
  fclass.s a0, f1
  EXPECT a0, 0x080
  FLI_S f1, SNAN
  fclass.s a0, f1
  EXPECT a0, 0x100
  FLI_S f1, QNAN
  fclass.s a0, f1
  EXPECT a0, 0x200
  EXPECT_FLAGS 0
  CASE 21                      /* sign injection keeps NaN payloads, no flags */
  FLI_S f1, SNAN
  FLI_S f2, MONE
  fsgnj.s f3, f1, f2
  EXPECT_S f3, 0xff800001
  fsgnjn.s f3, f1, f2
  EXPECT_S f3, 0x7f800001
  fsgnjx.s f3, f2, f2          /* -1 xor - = +1 */
  EXPECT_S f3, ONE
  fneg.s f3, f2
  EXPECT_S f3, ONE
  fabs.s f3, f2
  EXPECT_S f3, ONE
  EXPECT_FLAGS 0
  CASE 22                      /* arithmetic NaN results are canonical; inf - inf invalid */
  FLI_S f1, PINF
  fsub.s f3, f1, f1
  EXPECT_S f3, QNAN
  EXPECT_FLAGS NV
  FLI_S f1, 0xffc11111         /* negative qNaN with payload */
  FLI_S f2, ONE
  fmul.s f3, f1, f2
  EXPECT_S f3, QNAN
  EXPECT_FLAGS 0
  FLI_S f1, SNAN
  fadd.s f3, f1, f2
  EXPECT_S f3, QNAN
  EXPECT_FLAGS NV
  fmv.w.x f1, zero
  fdiv.s f3, f1, f1            /* 0/0 invalid, not DZ */
  EXPECT_S f3, QNAN
  EXPECT_FLAGS NV
  CASE 23                      /* sqrt, div, exact results */
  FLI_S f1, 0x40800000         /* 4 */
  fsqrt.s f3, f1
  EXPECT_S f3, 0x40000000
  EXPECT_FLAGS 0
  FLI_S f1, 0x40000000
  fsqrt.s f3, f1
  EXPECT_S f3, 0x3fb504f3
  EXPECT_FLAGS NX
  FLI_S f1, 0x80000000         /* sqrt(-0) = -0 */
  fsqrt.s f3, f1
  EXPECT_S f3, 0x80000000
  EXPECT_FLAGS 0
  CASE 24                      /* round-trip through memory */
  la s0, fdata
  FLI_S f5, 0x12345678
  fsw f5, 16(s0)
  flw f6, 16(s0)
  EXPECT_S f6, 0x12345678
  lw a0, 16(s0)
  EXPECT a0, 0x12345678
  CASE 25                      /* writing f registers or fflags sets mstatus.FS to Dirty */
  li a0, MSTATUS_FS
  csrc mstatus, a0
  li a0, MSTATUS_FS_CLEAN
  csrs mstatus, a0
  csrr a0, mstatus
  srli a0, a0, 13
  andi a0, a0, 3
  EXPECT a0, 2
  fadd.s f1, f2, f2
  csrr a0, mstatus
  srli a1, a0, 13
  andi a1, a1, 3
  EXPECT a1, 3
  srli a1, a0, 63              /* SD summarises FS == Dirty */
  EXPECT a1, 1
  li a0, MSTATUS_FS
  csrc mstatus, a0
  li a0, MSTATUS_FS_CLEAN
  csrs mstatus, a0
  fsflagsi 1
  csrr a0, mstatus
  srli a1, a0, 13
  andi a1, a1, 3
  EXPECT a1, 3
  fsflagsi 0
  PASS

  .data
  .align 4
fdata:
  .word 0xc0000000, 0, 0x11111111, 0x22222222, 0, 0, 0, 0
