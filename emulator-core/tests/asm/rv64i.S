/* RV64I: arithmetic, W-ops, shift edge cases, lui/auipc, loads/stores with sign/zero
   extension, branches, jal/jalr, x0, fence.i with self-modifying code. */
#include "harness.h"
test_main:
  CASE 1                       /* add wraps */
  li a0, 0x7fffffffffffffff
  li a1, 1
  add a2, a0, a1
  EXPECT a2, 0x8000000000000000
  CASE 2                       /* addi with negative immediate, -2048 */
  li a0, 5
  addi a1, a0, -7
  EXPECT a1, -2
  addi a1, a0, -2048
  EXPECT a1, -2043
  addi a1, a0, 2047
  EXPECT a1, 2052
  CASE 3                       /* sub */
  li a0, 0
  li a1, 1
  sub a2, a0, a1
  EXPECT a2, -1
  li a0, 0x8000000000000000
  sub a2, a0, a1
  EXPECT a2, 0x7fffffffffffffff
  CASE 4                       /* addw: 32-bit overflow sign-extends */
  li a0, 0x7fffffff
  li a1, 1
  addw a2, a0, a1
  EXPECT a2, 0xffffffff80000000
  CASE 5                       /* addw ignores upper halves */
  li a0, 0xdeadbeef00000001
  li a1, 0x1234567800000002
  addw a2, a0, a1
  EXPECT a2, 3
  CASE 6                       /* addiw / sext.w */
  li a0, 0x00000000ffffffff
  addiw a1, a0, 0
  EXPECT a1, -1
  li a0, 0x123456787fffffff
  addiw a1, a0, 1
  EXPECT a1, 0xffffffff80000000
  addiw a1, a0, -2048
  EXPECT a1, 0x7ffff7ff
  CASE 7                       /* subw */
  li a0, 0x80000000
  subw a1, zero, a0
  EXPECT a1, 0xffffffff80000000
  li a0, 1
  li a1, 2
  subw a2, a0, a1
  EXPECT a2, -1
  CASE 8                       /* lui sign-extends bit 31 */
  lui a0, 0x80000
  EXPECT a0, 0xffffffff80000000
  lui a0, 0x7ffff
  EXPECT a0, 0x7ffff000
  lui a0, 0xfffff
  EXPECT a0, 0xfffffffffffff000
  CASE 9                       /* auipc */
1:
  auipc a0, 0
  la a1, 1b
  EXPECT_EQ a0, a1
2:
  auipc a0, 1
  la a1, 2b
  li a2, 0x1000
  add a1, a1, a2
  EXPECT_EQ a0, a1
3:
  auipc a0, 0xfffff            /* -4096 */
  la a1, 3b
  li a2, -0x1000
  add a1, a1, a2
  EXPECT_EQ a0, a1
  CASE 10                      /* sll/srl/sra use rs2[5:0] */
  li a0, 1
  li a1, 64
  sll a2, a0, a1
  EXPECT a2, 1
  li a1, 63
  sll a2, a0, a1
  EXPECT a2, 0x8000000000000000
  li a1, 65
  sll a2, a0, a1
  EXPECT a2, 2
  li a1, -1                    /* shamt 63 */
  sll a2, a0, a1
  EXPECT a2, 0x8000000000000000
  CASE 11
  li a0, 0x8000000000000000
  li a1, 63
  srl a2, a0, a1
  EXPECT a2, 1
  sra a2, a0, a1
  EXPECT a2, -1
  li a1, 128                   /* shamt 0 */
  srl a2, a0, a1
  EXPECT a2, 0x8000000000000000
  sra a2, a0, a1
  EXPECT a2, 0x8000000000000000
  li a1, 4
  sra a2, a0, a1
  EXPECT a2, 0xf800000000000000
  CASE 12                      /* immediate shifts, 6-bit shamt */
  li a0, 0x00000000ffffffff
  slli a1, a0, 32
  EXPECT a1, 0xffffffff00000000
  slli a1, a0, 63
  EXPECT a1, 0x8000000000000000
  srli a1, a1, 63
  EXPECT a1, 1
  li a0, 0x8123456789abcdef
  srai a1, a0, 63
  EXPECT a1, -1
  srai a1, a0, 36
  EXPECT a1, 0xfffffffff8123456
  srli a1, a0, 36
  EXPECT a1, 0x0000000008123456
  srai a1, a0, 0
  EXPECT a1, 0x8123456789abcdef
  CASE 13                      /* sllw: 5-bit shamt, result sign-extended */
  li a0, 1
  li a1, 33
  sllw a2, a0, a1
  EXPECT a2, 2
  li a1, 31
  sllw a2, a0, a1
  EXPECT a2, 0xffffffff80000000
  li a0, 0xffffffff00000003
  li a1, 30
  sllw a2, a0, a1
  EXPECT a2, 0xffffffffc0000000
  CASE 14                      /* srlw: operates on low 32 bits, sign-extends result */
  li a0, 0xffffffff80000000
  li a1, 31
  srlw a2, a0, a1
  EXPECT a2, 1
  li a1, 32                    /* shamt 0 */
  srlw a2, a0, a1
  EXPECT a2, 0xffffffff80000000
  li a0, 0x0000000080000000
  li a1, 0
  srlw a2, a0, a1
  EXPECT a2, 0xffffffff80000000
  li a0, -1
  li a1, 1
  srlw a2, a0, a1
  EXPECT a2, 0x7fffffff
  CASE 15                      /* sraw */
  li a0, 0x0000000080000000
  li a1, 4
  sraw a2, a0, a1
  EXPECT a2, 0xfffffffff8000000
  li a0, 0x1234567800000010
  li a1, 0x21                  /* shamt 1 */
  sraw a2, a0, a1
  EXPECT a2, 8
  li a0, 0x000000007fffffff
  li a1, 31
  sraw a2, a0, a1
  EXPECT a2, 0
  CASE 16                      /* slliw/srliw/sraiw */
  li a0, 3
  slliw a1, a0, 31
  EXPECT a1, 0xffffffff80000000
  li a0, -1
  srliw a1, a0, 1
  EXPECT a1, 0x7fffffff
  srliw a1, a0, 0
  EXPECT a1, -1
  li a0, 0x0000000080000000
  sraiw a1, a0, 31
  EXPECT a1, -1
  sraiw a1, a0, 0
  EXPECT a1, 0xffffffff80000000
  li a0, 0xffffffff7fffffff
  sraiw a1, a0, 31
  EXPECT a1, 0
  srliw a1, a0, 31
  EXPECT a1, 0
  CASE 17                      /* slt/sltu/slti/sltiu */
  li a0, -1
  li a1, 1
  slt a2, a0, a1
  EXPECT a2, 1
  sltu a2, a0, a1
  EXPECT a2, 0
  slt a2, a1, a1
  EXPECT a2, 0
  slti a2, a0, 0
  EXPECT a2, 1
  slti a2, a1, -1
  EXPECT a2, 0
  sltiu a2, a1, -1             /* imm sign-extended then compared unsigned */
  EXPECT a2, 1
  sltiu a2, a0, -1
  EXPECT a2, 0
  sltiu a2, zero, 1            /* seqz */
  EXPECT a2, 1
  sltu a2, zero, a0            /* snez */
  EXPECT a2, 1
  CASE 18                      /* logic ops */
  li a0, 0xff00ff00ff00ff00
  li a1, 0x0ff00ff00ff00ff0
  and a2, a0, a1
  EXPECT a2, 0x0f000f000f000f00
  or a2, a0, a1
  EXPECT a2, 0xfff0fff0fff0fff0
  xor a2, a0, a1
  EXPECT a2, 0xf0f0f0f0f0f0f0f0
  xori a2, a0, -1
  EXPECT a2, 0x00ff00ff00ff00ff
  andi a2, a0, -2048
  EXPECT a2, 0xff00ff00ff00f800
  ori a2, zero, -2048
  EXPECT a2, 0xfffffffffffff800
  andi a2, a0, 0x7f0
  EXPECT a2, 0x700
  CASE 19                      /* loads: sign and zero extension */
  la s0, ldata
  lb a0, 0(s0)
  EXPECT a0, -128
  lbu a0, 0(s0)
  EXPECT a0, 0x80
  lb a0, 1(s0)
  EXPECT a0, 0x7f
  lh a0, 2(s0)
  EXPECT a0, 0xffffffffffff8001
  lhu a0, 2(s0)
  EXPECT a0, 0x8001
  lw a0, 4(s0)
  EXPECT a0, 0xffffffff80000002
  lwu a0, 4(s0)
  EXPECT a0, 0x80000002
  ld a0, 8(s0)
  EXPECT a0, 0x8877665544332211
  lw a0, 8(s0)
  EXPECT a0, 0x44332211
  lwu a0, 12(s0)
  EXPECT a0, 0x88776655
  addi s1, s0, 16
  ld a0, -8(s1)
  EXPECT a0, 0x8877665544332211
  lbu a0, -1(s1)
  EXPECT a0, 0x88
  CASE 20                      /* stores of each width */
  la s0, sdata
  li a0, -1
  sd a0, 0(s0)
  li a0, 0x1122334455667788
  sb a0, 0(s0)
  ld a1, 0(s0)
  EXPECT a1, 0xffffffffffffff88
  sh a0, 2(s0)
  ld a1, 0(s0)
  EXPECT a1, 0xffffffff7788ff88
  sw a0, 4(s0)
  ld a1, 0(s0)
  EXPECT a1, 0x556677887788ff88
  sd a0, 8(s0)
  ld a1, 8(s0)
  EXPECT a1, 0x1122334455667788
  addi s1, s0, 24
  sd a0, -8(s1)
  ld a1, 16(s0)
  EXPECT a1, 0x1122334455667788
  CASE 21                      /* x0 is hardwired */
  addi x0, x0, 5
  li a0, 0
  add a0, a0, x0
  EXPECT a0, 0
  lui x0, 0x12345
  EXPECT x0, 0
  CASE 22                      /* branches: signed vs unsigned */
  li a0, -1
  li a1, 1
  blt a0, a1, 1f
  FAIL
1:
  bltu a0, a1, 2f
  j 3f
2:
  FAIL
3:
  bgeu a0, a1, 4f
  FAIL
4:
  bge a0, a1, 5f
  j 6f
5:
  FAIL
6:
  bge a1, a1, 7f
  FAIL
7:
  bgeu a1, a1, 8f
  FAIL
8:
  beq a0, a1, 9f
  bne a0, a1, 10f
9:
  FAIL
10:
  CASE 23                      /* backward branch loop */
  li a0, 10
  li a1, 0
1:
  addi a1, a1, 3
  addi a0, a0, -1
  bnez a0, 1b
  EXPECT a1, 30
  CASE 24                      /* jal links pc+4 */
  jal a0, 1f
2:
  FAIL
1:
  la a1, 2b
  EXPECT_EQ a0, a1
  CASE 25                      /* jalr: bit 0 of target cleared, negative offset, rd == rs1 */
  la a0, 1f
  addi a0, a0, 1
  jalr a1, 0(a0)
  FAIL
  .align 2
1:
  la a0, 2f + 8
  jalr a0, -8(a0)
3:
  FAIL
2:
  la a1, 3b
  EXPECT_EQ a0, a1
  CASE 26                      /* call/ret */
  li a0, 7
  call double_a0
  EXPECT a0, 14
  CASE 27                      /* fence.i after modifying code */
  call patch_slot
  EXPECT a0, 1
  li s2, 50                    /* make the slot hot first */
1:
  call patch_slot
  addi s2, s2, -1
  bnez s2, 1b
  la s0, patch_slot
  li a0, 0x02a00513            /* addi a0, zero, 42 */
  sw a0, 0(s0)
  fence.i
  call patch_slot
  EXPECT a0, 42
  CASE 28                      /* modify code in another page, then fence.i */
  call patch_slot2
  EXPECT a0, 2
  la s0, patch_slot2
  li a0, 0x06300513            /* addi a0, zero, 99 */
  sw a0, 0(s0)
  fence.i
  call patch_slot2
  EXPECT a0, 99
  CASE 29                      /* modify an instruction ahead in the page being executed */
  li s2, 3
1:
  la s0, 2f
  li a0, 0x00700513            /* addi a0, zero, 7 */
  sw a0, 0(s0)
  fence.i
  .option push
  .option norvc
2:
  addi a0, zero, 1             /* replaced by addi a0, zero, 7 before it runs */
  .option pop
  EXPECT a0, 7
  la s0, 2b
  li a0, 0x00100513            /* restore, and go around again */
  sw a0, 0(s0)
  fence.i
  addi s2, s2, -1
  bnez s2, 1b
  CASE 30                      /* fence variants execute as no-ops */
  fence
  fence rw, rw
  fence.tso
  fence i, o
  li a0, 3
  EXPECT a0, 3
  PASS

double_a0:
  add a0, a0, a0
  ret

  .option push
  .option norvc
  .align 12
patch_slot:
  addi a0, zero, 1
  ret
  .align 12
patch_slot2:
  addi a0, zero, 2
  ret
  .option pop

  .data
  .align 4
ldata:
  .byte 0x80, 0x7f
  .half 0x8001
  .word 0x80000002
  .dword 0x8877665544332211
sdata:
  .fill 4, 8, 0
