/* Helpers for the F/D tests (own code).  s9 is the scratch register of these macros. */

/* load a single from raw bits (NaN-boxed by fmv.w.x) / a double from raw bits */
.macro FLI_S freg, bits
  li s9, \bits
  fmv.w.x \freg, s9
.endm
.macro FLI_D freg, bits
  li s9, \bits
  fmv.d.x \freg, s9
.endm
/* load raw 64 bits into an f register (no NaN-boxing) */
.macro FLI_RAW freg, bits
  li s9, \bits
  fmv.d.x \freg, s9
.endm

/* the whole 64-bit f register must hold the NaN-boxed single \bits */
.macro EXPECT_S freg, bits
  fmv.x.d s9, \freg
  EXPECT s9, (0xffffffff00000000 | (\bits))
.endm
/* the f register must hold the double \bits */
.macro EXPECT_D freg, bits
  fmv.x.d s9, \freg
  EXPECT s9, \bits
.endm
/* accrued flags must equal \val; they are cleared afterwards */
.macro EXPECT_FLAGS val
  fsflags s9, zero
  EXPECT s9, \val
.endm

#define NV 0x10
#define DZ 0x08
#define OF 0x04
#define UF 0x02
#define NX 0x01
#define RNE 0
#define RTZ 1
#define RDN 2
#define RUP 3
#define RMM 4
