/* RV64M: multiplication high parts, W forms, division/remainder incl. division by zero
   and signed overflow (results defined by the ISA, no traps). */
#include "harness.h"
test_main:
  CASE 1                       /* mul */
  li a0, 7
  li a1, -3
  mul a2, a0, a1
  EXPECT a2, -21
  li a0, 0x8000000000000000
  li a1, -1
  mul a2, a0, a1
  EXPECT a2, 0x8000000000000000
  li a0, 0x123456789abcdef1
  li a1, 0x0fedcba987654321
  mul a2, a0, a1
  EXPECT a2, 0x3224a4396cc6d011
  CASE 2                       /* mulh (signed x signed) */
  li a0, -1
  li a1, -1
  mulh a2, a0, a1
  EXPECT a2, 0
  li a0, 0x8000000000000000
  mulh a2, a0, a0
  EXPECT a2, 0x4000000000000000
  li a0, -1
  li a1, 1
  mulh a2, a0, a1
  EXPECT a2, -1
  li a0, 0x123456789abcdef1
  li a1, 0xf0fedcba98765432
  mulh a2, a0, a1
  EXPECT a2, 0xfeeeda38812baf85
  CASE 3                       /* mulhu */
  li a0, -1
  mulhu a2, a0, a0
  EXPECT a2, 0xfffffffffffffffe
  li a0, 0x8000000000000000
  li a1, 2
  mulhu a2, a0, a1
  EXPECT a2, 1
  li a0, 0x123456789abcdef1
  li a1, 0xf0fedcba98765432
  mulhu a2, a0, a1
  EXPECT a2, 0x112330b11be88e76
  CASE 4                       /* mulhsu (signed rs1 x unsigned rs2) */
  li a0, -1
  li a1, -1
  mulhsu a2, a0, a1
  EXPECT a2, -1
  li a0, 2
  mulhsu a2, a0, a1
  EXPECT a2, 1
  li a0, -2
  li a1, 0x8000000000000000
  mulhsu a2, a0, a1
  EXPECT a2, -1
  li a0, 0x123456789abcdef1
  li a1, 0xf0fedcba98765432
  mulhsu a2, a0, a1
  EXPECT a2, 0x112330b11be88e76
  li a0, 0xf0fedcba98765432
  li a1, 0x123456789abcdef1
  mulhsu a2, a0, a1
  EXPECT a2, 0xfeeeda38812baf85
  CASE 5                       /* mulw */
  li a0, 0x7fffffff
  li a1, 2
  mulw a2, a0, a1
  EXPECT a2, -2
  li a0, 0x100000003
  li a1, 0x100000005
  mulw a2, a0, a1
  EXPECT a2, 15
  li a0, 0x10000
  mulw a2, a0, a0
  EXPECT a2, 0
  li a0, 0x8000
  li a1, 0x10000
  mulw a2, a0, a1
  EXPECT a2, 0xffffffff80000000
  CASE 6                       /* div/rem truncate toward zero */
  li a0, -7
  li a1, 2
  div a2, a0, a1
  EXPECT a2, -3
  rem a2, a0, a1
  EXPECT a2, -1
  li a0, 7
  li a1, -2
  div a2, a0, a1
  EXPECT a2, -3
  rem a2, a0, a1
  EXPECT a2, 1
  li a0, -8
  li a1, -3
  div a2, a0, a1
  EXPECT a2, 2
  rem a2, a0, a1
  EXPECT a2, -2
  CASE 7                       /* division by zero */
  li a0, 12345
  div a2, a0, zero
  EXPECT a2, -1
  divu a2, a0, zero
  EXPECT a2, 0xffffffffffffffff
  rem a2, a0, zero
  EXPECT a2, 12345
  remu a2, a0, zero
  EXPECT a2, 12345
  li a0, -5
  div a2, a0, zero
  EXPECT a2, -1
  rem a2, a0, zero
  EXPECT a2, -5
  CASE 8                       /* signed overflow */
  li a0, 0x8000000000000000
  li a1, -1
  div a2, a0, a1
  EXPECT a2, 0x8000000000000000
  rem a2, a0, a1
  EXPECT a2, 0
  CASE 9                       /* divu/remu */
  li a0, -1
  li a1, 2
  divu a2, a0, a1
  EXPECT a2, 0x7fffffffffffffff
  remu a2, a0, a1
  EXPECT a2, 1
  li a0, 0x8000000000000000
  li a1, 0xffffffff
  divu a2, a0, a1
  EXPECT a2, 0x80000000
  remu a2, a0, a1
  EXPECT a2, 0x80000000
  CASE 10                      /* divw/remw */
  li a0, 0x80000000
  li a1, -1
  divw a2, a0, a1
  EXPECT a2, 0xffffffff80000000
  remw a2, a0, a1
  EXPECT a2, 0
  li a0, 0xffffffff00000008
  li a1, 0x1234567800000002
  divw a2, a0, a1
  EXPECT a2, 4
  li a0, -7
  li a1, 2
  divw a2, a0, a1
  EXPECT a2, -3
  remw a2, a0, a1
  EXPECT a2, -1
  CASE 11                      /* divw/remw by zero (only low 32 bits of divisor count) */
  li a0, 0x80000001
  li a1, 0x100000000
  divw a2, a0, a1
  EXPECT a2, -1
  remw a2, a0, a1
  EXPECT a2, 0xffffffff80000001
  CASE 12                      /* divuw/remuw: unsigned 32-bit, result sign-extended */
  li a0, 0xffffffff
  li a1, 1
  divuw a2, a0, a1
  EXPECT a2, -1
  li a0, 0x100000004
  li a1, 2
  divuw a2, a0, a1
  EXPECT a2, 2
  li a0, 0xffffffff
  li a1, 0x10
  remuw a2, a0, a1
  EXPECT a2, 0xf
  li a0, 0x80000000
  li a1, 3
  divuw a2, a0, a1
  EXPECT a2, 0x2aaaaaaa
  remuw a2, a0, a1
  EXPECT a2, 2
  CASE 13                      /* divuw/remuw by zero */
  li a0, 0x80000000
  divuw a2, a0, zero
  EXPECT a2, -1
  remuw a2, a0, zero
  EXPECT a2, 0xffffffff80000000
  li a0, 0x1234567800000005
  remuw a2, a0, zero
  EXPECT a2, 5
  CASE 14                      /* rd aliases a source */
  li a0, 6
  li a1, 7
  mul a0, a0, a1
  EXPECT a0, 42
  div a1, a0, a1
  EXPECT a1, 6
  PASS
