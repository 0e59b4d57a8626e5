/* RV64C: every compressed form in explicit c.* spelling (stack-pointer-relative loads and
   stores, c.addi16sp/c.addi4spn, c.lui, jumps and branches, register ALU forms, c.addiw,
   shifts), 32-bit instructions at 2-byte aligned addresses and across a page boundary,
   c.ebreak, and reserved compressed encodings that must raise illegal instruction. */
#include "harness.h"

/* an illegal 16-bit instruction must trap with mtval = its bits */
.macro ILLEGAL16 bits
  ARM .Lr\@
  .2byte \bits
  .balign 4                    /* harmless padding if misassembled */
.Lr\@:
  EXPECT_TRAP CAUSE_ILLEGAL
  EXPECT_TVAL \bits
.endm

test_main:
  CASE 1                       /* c.li */
  c.li a0, -32
  EXPECT a0, -32
  c.li a0, 31
  EXPECT a0, 31
  CASE 2                       /* c.addi */
  c.addi a0, -1
  EXPECT a0, 30
  c.addi a0, 31
  EXPECT a0, 61
  c.addi a0, -32
  EXPECT a0, 29
  CASE 3                       /* c.lui sign-extends */
  c.lui a0, 1
  EXPECT a0, 0x1000
  c.lui a0, 31
  EXPECT a0, 0x1f000
  c.lui a0, 0xfffe0
  EXPECT a0, 0xfffffffffffe0000
  c.lui a1, 0xfffff
  EXPECT a1, 0xfffffffffffff000
  CASE 4                       /* c.addi16sp */
  mv s2, sp
  c.addi16sp sp, -512
  sub a0, s2, sp
  EXPECT a0, 512
  c.addi16sp sp, 496
  sub a0, s2, sp
  EXPECT a0, 16
  c.addi16sp sp, 16
  EXPECT_EQ sp, s2
  CASE 5                       /* c.addi4spn */
  c.addi4spn a0, sp, 1020
  sub a0, a0, sp
  EXPECT a0, 1020
  c.addi4spn s1, sp, 4
  sub a0, s1, sp
  EXPECT a0, 4
  CASE 6                       /* c.swsp / c.lwsp (sign extension) / c.sdsp / c.ldsp */
  addi sp, sp, -512
  li a1, 0x80000001
  c.swsp a1, 252(sp)
  c.lwsp a2, 252(sp)
  EXPECT a2, 0xffffffff80000001
  lwu a2, 252(sp)
  EXPECT a2, 0x80000001
  li a1, 0x0123456789abcdef
  c.sdsp a1, 504(sp)
  c.ldsp a3, 504(sp)
  EXPECT a3, 0x0123456789abcdef
  c.sdsp a1, 0(sp)
  ld a3, 0(sp)
  EXPECT a3, 0x0123456789abcdef
  c.swsp zero, 4(sp)
  c.ldsp a3, 0(sp)
  EXPECT a3, 0x0000000089abcdef
  CASE 7                       /* c.fsdsp / c.fldsp */
  li a1, 0x400921fb54442d18
  fmv.d.x f8, a1
  c.fsdsp f8, 496(sp)
  c.fldsp f9, 496(sp)
  fmv.x.d a2, f9
  EXPECT a2, 0x400921fb54442d18
  addi sp, sp, 512
  CASE 8                       /* c.sw / c.lw / c.sd / c.ld / c.fsd / c.fld with x8-x15 */
  la s0, cdata
  li a5, 0xfffffffe
  c.sw a5, 124(s0)
  c.lw a4, 124(s0)
  EXPECT a4, -2
  li a5, 0x1122334455667788
  c.sd a5, 248(s0)
  c.ld s1, 248(s0)
  EXPECT s1, 0x1122334455667788
  fmv.d.x f15, a5
  c.fsd f15, 8(s0)
  c.fld f14, 8(s0)
  fmv.x.d a4, f14
  EXPECT a4, 0x1122334455667788
  c.lw a4, 8(s0)
  EXPECT a4, 0x55667788
  CASE 9                       /* c.mv / c.add / c.sub / c.xor / c.or / c.and */
  li a1, 0x0ff0
  li a2, 0x00ff
  c.mv a0, a1
  EXPECT a0, 0x0ff0
  c.add a0, a2
  EXPECT a0, 0x10ef
  mv s1, a1
  c.sub s1, a2
  EXPECT s1, 0x0ef1
  mv s1, a1
  c.xor s1, a2
  EXPECT s1, 0x0f0f
  mv s1, a1
  c.or s1, a2
  EXPECT s1, 0x0fff
  mv s1, a1
  c.and s1, a2
  EXPECT s1, 0x00f0
  CASE 10                      /* c.addw / c.subw / c.addiw */
  li s1, 0x7fffffff
  li a2, 1
  c.addw s1, a2
  EXPECT s1, 0xffffffff80000000
  li s1, 0x100000000
  c.subw s1, a2
  EXPECT s1, -1
  li a0, 0x0000000080000000
  c.addiw a0, 0
  EXPECT a0, 0xffffffff80000000
  li a0, 0x1234567800000000
  c.addiw a0, -1
  EXPECT a0, -1
  li a0, 0x7fffffff
  c.addiw a0, 1
  EXPECT a0, 0xffffffff80000000
  CASE 11                      /* c.slli / c.srli / c.srai / c.andi */
  li a0, 1
  c.slli a0, 63
  EXPECT a0, 0x8000000000000000
  li a0, 0xffffffff
  c.slli a0, 32
  EXPECT a0, 0xffffffff00000000
  li s1, 0x8000000000000000
  c.srli s1, 63
  EXPECT s1, 1
  li s1, 0x8000000000000000
  c.srai s1, 32
  EXPECT s1, 0xffffffff80000000
  li s1, 0x8000000000000000
  c.srli s1, 32
  EXPECT s1, 0x80000000
  li s1, -1
  c.andi s1, 0x1f
  EXPECT s1, 0x1f
  li s1, 0x12345
  c.andi s1, -32
  EXPECT s1, 0x12340
  CASE 12                      /* c.j forward and backward */
  li a0, 0
  c.j 2f
1:
  addi a0, a0, 10
  c.j 3f
2:
  addi a0, a0, 1
  c.j 1b
3:
  EXPECT a0, 11
  CASE 13                      /* c.beqz / c.bnez */
  li s1, 0
  c.beqz s1, 1f
  FAIL
1:
  c.bnez s1, 2f
  li s1, 3
  li a0, 0
3:
  addi a0, a0, 1
  addi s1, s1, -1
  c.bnez s1, 3b
  EXPECT a0, 3
  li s1, 5
  c.beqz s1, 2f
  j 4f
2:
  FAIL
4:
  CASE 14                      /* c.jr / c.jalr: link = pc + 2 */
  la a1, 1f
  c.jr a1
  FAIL
1:
  la a1, cfunc
2:
  c.jalr a1
3:
  la a2, 3b
  EXPECT_EQ a0, a2             /* cfunc returns its ra */
  la a2, 2b
  sub a2, a0, a2
  EXPECT a2, 2
  CASE 15                      /* c.nop, c.mv keeps other regs */
  li a0, 9
  c.nop
  c.nop
  EXPECT a0, 9
  CASE 16                      /* 32-bit instructions at pc % 4 == 2 */
  .balign 4
  c.nop
  .option push
  .option norvc
  addi a0, zero, 123
  add a0, a0, a0
  .option pop
  EXPECT a0, 246
  CASE 17                      /* 32-bit instruction straddling a page boundary */
  li a0, 1
  call cross_page
  EXPECT a0, 8
  CASE 18                      /* c.ebreak and ebreak */
  ARM 2f
1:
  c.ebreak
2:
  EXPECT_TRAP CAUSE_BREAKPOINT
  EXPECT_EPC 1b
  ARM 2f
1:
  .option push
  .option norvc
  ebreak
  .option pop
2:
  EXPECT_TRAP CAUSE_BREAKPOINT
  EXPECT_EPC 1b
  CASE 19                      /* all-zero halfword is illegal */
  ILLEGAL16 0x0000
  CASE 20                      /* reserved: c.addi4spn with nzuimm = 0 */
  ILLEGAL16 0x0004
  CASE 21                      /* reserved: c.lui with imm = 0 */
  ILLEGAL16 0x6501
  CASE 22                      /* reserved: c.addi16sp with imm = 0 */
  ILLEGAL16 0x6101
  CASE 23                      /* reserved: c.lwsp / c.ldsp with rd = x0 */
  ILLEGAL16 0x4002
  ILLEGAL16 0x6002
  CASE 24                      /* reserved: c.jr with rs1 = x0 */
  ILLEGAL16 0x8002
  CASE 25                      /* compressed loop with mixed 16/32-bit code */
  li a0, 0
  li s1, 100
1:
  c.addi a0, 3
  .option push
  .option norvc
  addi a0, a0, -1
  .option pop
  c.addi s1, -1
  c.bnez s1, 1b
  EXPECT a0, 200
  PASS

cfunc:
  mv a0, ra
  ret

  .balign 4096
  .skip 4092
cross_page:                    /* page offset 4092 */
  c.nop
  .option push
  .option norvc
  addi a0, a0, 7               /* bytes 4094..4097: crosses into the next page */
  .option pop
  ret

  .data
  .align 4
cdata: .fill 64, 8, 0
