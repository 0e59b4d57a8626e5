/* Privilege and traps: ecall/ebreak from U/S/M, medeleg delegation, illegal-instruction
   mtval/stval, mret/sret state changes (MPP/MPIE/SPP/SPIE/MPRV), trap-entry state,
   TSR/TVM, misaligned and access faults, vectored mtvec. */
#include "harness.h"

#define BAD_ADDR 0x10000000000          /* 1 TiB: no RAM, no device */

/* misaligned load: either a trap (cause 4, tval = address) or the right value */
.macro MISALIGNED_LD op, off, val
  addi s2, s0, \off
  li a0, 0x5a5a
  ARM .Lr\@
  \op a0, 0(s2)
.Lr\@:
  LOAD_TCAUSE a1
  DISARM
  li a2, -1
  beq a1, a2, .Lnotrap\@
  EXPECT a1, CAUSE_MISALIGNED_LOAD
  EXPECT_TVAL_R s2
  j .Ldone\@
.Lnotrap\@:
  EXPECT a0, \val
.Ldone\@:
.endm

/* misaligned store of a3: either a trap (cause 6, tval = address, memory untouched) or stored */
.macro MISALIGNED_ST op, off, check_op, val
  addi s2, s0, \off
  ARM .Lr\@
  \op a3, 0(s2)
.Lr\@:
  LOAD_TCAUSE a1
  DISARM
  li a2, -1
  beq a1, a2, .Lnotrap\@
  EXPECT a1, CAUSE_MISALIGNED_STORE
  EXPECT_TVAL_R s2
  j .Ldone\@
.Lnotrap\@:
  \check_op a0, 0(s2)
  EXPECT a0, \val
.Ldone\@:
.endm

test_main:
  CASE 1                       /* ecall from M */
  ARM 2f
1:
  ecall
2:
  EXPECT_TRAP CAUSE_ECALL_M
  EXPECT_EPC 1b
  EXPECT_TMODE 3
  EXPECT_TVAL 0
  CASE 2                       /* ecall from S, not delegated */
  GOTO_S
  ARM 2f
1:
  ecall
2:
  EXPECT_TRAP CAUSE_ECALL_S
  EXPECT_EPC 1b
  EXPECT_TMODE 3
  LOAD_TSTATUS a0
  srli a0, a0, 11              /* MPP = S */
  andi a0, a0, 3
  EXPECT a0, 1
  CASE 3                       /* ecall and ebreak from U, not delegated */
  GOTO_U
  ARM 2f
1:
  ecall
2:
  EXPECT_TRAP CAUSE_ECALL_U
  EXPECT_EPC 1b
  EXPECT_TMODE 3
  LOAD_TSTATUS a0
  srli a0, a0, 11              /* MPP = U */
  andi a0, a0, 3
  EXPECT a0, 0
  ARM 2f
1:
  ebreak
2:
  EXPECT_TRAP CAUSE_BREAKPOINT
  EXPECT_EPC 1b
  GOTO_M
  CASE 4                       /* medeleg: ecall from U to S */
  li a0, 1 << CAUSE_ECALL_U
  csrw medeleg, a0
  GOTO_U
  ARM 2f
1:
  ecall
2:
  EXPECT_TRAP CAUSE_ECALL_U
  EXPECT_EPC 1b
  EXPECT_TMODE 1
  EXPECT_TVAL 0
  LOAD_TSTATUS a0
  andi a0, a0, MSTATUS_SPP     /* SPP = U */
  EXPECT a0, 0
  GOTO_M                       /* the harness handles the delegated magic ecall too */
  csrw medeleg, zero
  CASE 5                       /* medeleg: ecall from S to S, trap-entry sstatus */
  li a0, 1 << CAUSE_ECALL_S
  csrw medeleg, a0
  GOTO_S
  csrsi sstatus, MSTATUS_SIE   /* nothing delegated in mideleg: no interrupts */
  ARM 2f
1:
  ecall
2:
  EXPECT_TRAP CAUSE_ECALL_S
  EXPECT_EPC 1b
  EXPECT_TMODE 1
  LOAD_TSTATUS a0
  andi a1, a0, MSTATUS_SPP
  EXPECT a1, MSTATUS_SPP
  andi a1, a0, MSTATUS_SPIE    /* SPIE = old SIE */
  EXPECT a1, MSTATUS_SPIE
  andi a1, a0, MSTATUS_SIE     /* SIE cleared on entry */
  EXPECT a1, 0
  csrr a0, sstatus             /* sret restored SIE from SPIE */
  andi a0, a0, MSTATUS_SIE
  EXPECT a0, MSTATUS_SIE
  csrci sstatus, MSTATUS_SIE
  GOTO_M
  csrw medeleg, zero
  CASE 6                       /* traps from M are never delegated */
  li a0, (1 << CAUSE_ECALL_M) | (1 << CAUSE_ILLEGAL) | (1 << CAUSE_BREAKPOINT)
  csrw medeleg, a0
  ARM 2f
  ecall
2:
  EXPECT_TRAP CAUSE_ECALL_M
  EXPECT_TMODE 3
  ARM 2f
  ebreak
2:
  EXPECT_TRAP CAUSE_BREAKPOINT
  EXPECT_TMODE 3
  ARM 2f
1:
  .word 0xfe000033             /* OP with funct7 = 0x7f: illegal */
2:
  EXPECT_TRAP CAUSE_ILLEGAL
  EXPECT_TMODE 3
  EXPECT_TVAL 0xfe000033
  csrw medeleg, zero
  CASE 7                       /* illegal instruction from S, delegated: stval = bits */
  li a0, 1 << CAUSE_ILLEGAL
  csrw medeleg, a0
  GOTO_S
  ARM 2f
1:
  .word 0xfe000033
2:
  EXPECT_TRAP CAUSE_ILLEGAL
  EXPECT_TMODE 1
  EXPECT_TVAL 0xfe000033
  EXPECT_EPC 1b
  ARM 2f
  mret                         /* mret from S is illegal */
2:
  EXPECT_TRAP CAUSE_ILLEGAL
  EXPECT_TMODE 1
  EXPECT_TVAL 0x30200073
  GOTO_M
  csrw medeleg, zero
  CASE 8                       /* privileged instructions from U: mtval = bits */
  GOTO_U
  ARM 2f
  sret
2:
  EXPECT_TRAP CAUSE_ILLEGAL
  EXPECT_TVAL 0x10200073
  ARM 2f
  mret
2:
  EXPECT_TRAP CAUSE_ILLEGAL
  EXPECT_TVAL 0x30200073
  ARM 2f
  sfence.vma
2:
  EXPECT_TRAP CAUSE_ILLEGAL
  EXPECT_TVAL 0x12000073
  ARM 2f
  .word 0x00000000 | 0x0000000b  /* custom-0 opcode */
2:
  EXPECT_TRAP CAUSE_ILLEGAL
  EXPECT_TVAL 0x0000000b
  GOTO_M
  CASE 9                       /* mret: MIE = MPIE, MPIE = 1, MPP = U */
  li a0, MSTATUS_MPP | MSTATUS_MPIE
  csrs mstatus, a0             /* MPP = M, MPIE = 1 */
  csrci mstatus, MSTATUS_MIE
  la a0, 1f
  csrw mepc, a0
  mret
1:
  csrr a0, mstatus
  andi a1, a0, MSTATUS_MIE
  EXPECT a1, MSTATUS_MIE
  andi a1, a0, MSTATUS_MPIE
  EXPECT a1, MSTATUS_MPIE
  srli a1, a0, 11
  andi a1, a1, 3
  EXPECT a1, 0
  csrci mstatus, MSTATUS_MIE
  li a0, MSTATUS_MPP           /* MPP = M, MPIE = 0 */
  csrs mstatus, a0
  li a0, MSTATUS_MPIE
  csrc mstatus, a0
  csrsi mstatus, MSTATUS_MIE
  la a0, 1f
  csrw mepc, a0
  mret
1:
  csrr a0, mstatus
  andi a1, a0, MSTATUS_MIE | MSTATUS_MPIE
  EXPECT a1, MSTATUS_MPIE
  CASE 10                      /* mret to S clears MPRV; we are then in S */
  li a0, MSTATUS_MPP
  csrc mstatus, a0
  li a0, MSTATUS_MPP_S | MSTATUS_MPRV
  csrs mstatus, a0
  la a0, 1f
  csrw mepc, a0
  mret
1:
  EXPECT_OK csrr a0, sstatus
  EXPECT_ILLEGAL csrr a0, mstatus
  la a0, hdata                 /* tell the harness we are in S now */
  li a1, 1
  sd a1, H_CURMODE(a0)
  GOTO_M
#ifndef QEMU /* QEMU 7.2 does not clear MPRV on mret to S/U (priv spec 1.12 requires it) */
  csrr a0, mstatus
  li a1, MSTATUS_MPRV
  and a0, a0, a1
  EXPECT a0, 0
#endif
  li a0, MSTATUS_MPRV
  csrc mstatus, a0
  CASE 11                      /* sret: SIE = SPIE, SPIE = 1, SPP = U; sret to S */
  GOTO_S
  li a0, MSTATUS_SPP | MSTATUS_SPIE
  csrs sstatus, a0
  csrci sstatus, MSTATUS_SIE
  la a0, 1f
  csrw sepc, a0
  sret
1:
  csrr a0, sstatus             /* still S: readable */
  andi a1, a0, MSTATUS_SIE
  EXPECT a1, MSTATUS_SIE
  andi a1, a0, MSTATUS_SPIE
  EXPECT a1, MSTATUS_SPIE
  andi a1, a0, MSTATUS_SPP
  EXPECT a1, 0
  csrci sstatus, MSTATUS_SIE
  CASE 12                      /* sret with SPP = U lands in U */
  la a0, 1f
  csrw sepc, a0
  sret
1:
  la a0, hdata
  sd zero, H_CURMODE(a0)
  EXPECT_ILLEGAL csrr a0, sstatus
  GOTO_M
  CASE 13                      /* sret from M goes to SPP */
  li a0, MSTATUS_SPP
  csrs mstatus, a0
  la a0, 1f
  csrw sepc, a0
  sret
1:
  la a0, hdata
  li a1, 1
  sd a1, H_CURMODE(a0)
  EXPECT_OK csrr a0, sstatus
  EXPECT_ILLEGAL csrr a0, mstatus
  GOTO_M
  CASE 14                      /* trap entry into M: MPIE = old MIE, MIE = 0, MPP = M */
  csrsi mstatus, MSTATUS_MIE   /* mie = 0: no interrupt can be taken */
  ARM 2f
  ecall
2:
  EXPECT_TRAP CAUSE_ECALL_M
  LOAD_TSTATUS a0
  andi a1, a0, MSTATUS_MIE | MSTATUS_MPIE
  EXPECT a1, MSTATUS_MPIE
  srli a1, a0, 11
  andi a1, a1, 3
  EXPECT a1, 3
  csrr a0, mstatus             /* mret restored MIE */
  andi a0, a0, MSTATUS_MIE
  EXPECT a0, MSTATUS_MIE
  csrci mstatus, MSTATUS_MIE
  CASE 15                      /* TSR: sret in S is illegal */
  li a0, MSTATUS_TSR
  csrs mstatus, a0
  GOTO_S
  ARM 2f
  sret
2:
  EXPECT_TRAP CAUSE_ILLEGAL
  EXPECT_TMODE 3
  EXPECT_TVAL 0x10200073
  GOTO_M
  li a0, MSTATUS_TSR
  csrc mstatus, a0
  CASE 16                      /* TVM: satp and sfence.vma in S are illegal */
  li a0, MSTATUS_TVM
  csrs mstatus, a0
  GOTO_S
  EXPECT_ILLEGAL csrr a0, satp
  EXPECT_ILLEGAL sfence.vma
  GOTO_M
  li a0, MSTATUS_TVM
  csrc mstatus, a0
  GOTO_S
  EXPECT_OK csrr a0, satp
  EXPECT_OK sfence.vma
  GOTO_M
  CASE 17                      /* misaligned loads: trap or correct data */
  la s0, tdata
  MISALIGNED_LD lw, 1, 0x0000000005040302
  MISALIGNED_LD lwu, 3, 0x0000000007060504
  MISALIGNED_LD lh, 7, 0x0000000000000908
  MISALIGNED_LD ld, 4, 0x0c0b0a0908070605
  MISALIGNED_LD ld, 5, 0x0d0c0b0a09080706
  MISALIGNED_LD lhu, 0xf, 0x0000000000001110
  CASE 18                      /* misaligned stores */
  li a3, 0x8877665544332211
  MISALIGNED_ST sw, 0x21, lwu, 0x44332211
  MISALIGNED_ST sd, 0x2a, ld, 0x8877665544332211
  MISALIGNED_ST sh, 0x33, lhu, 0x2211
  CASE 19                      /* access faults: load, store, fetch */
  li s2, BAD_ADDR
  ARM 2f
1:
  ld a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_LOAD_ACCESS
  EXPECT_TVAL_R s2
  EXPECT_EPC 1b
  ARM 2f
  ld zero, 0(s2)               /* rd = x0 still accesses memory */
2:
  EXPECT_TRAP CAUSE_LOAD_ACCESS
  ARM 2f
  fld f1, 8(s2)
2:
  EXPECT_TRAP CAUSE_LOAD_ACCESS
  addi a0, s2, 8
  EXPECT_TVAL_R a0
  ARM 2f
  sw a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_STORE_ACCESS
  EXPECT_TVAL_R s2
  ARM 2f
  lb a0, 0(zero)
2:
  EXPECT_TRAP CAUSE_LOAD_ACCESS
  EXPECT_TVAL 0
  ARM 2f
  jalr ra, 0(s2)
2:
  EXPECT_TRAP CAUSE_FETCH_ACCESS
  EXPECT_TVAL_R s2
  EXPECT_EPC_R s2
  CASE 20                      /* delegated access fault from S: stval */
  li a0, (1 << CAUSE_LOAD_ACCESS) | (1 << CAUSE_STORE_ACCESS)
  csrw medeleg, a0
  GOTO_S
  li s2, BAD_ADDR + 8
  ARM 2f
  lw a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_LOAD_ACCESS
  EXPECT_TMODE 1
  EXPECT_TVAL_R s2
  ARM 2f
  amoadd.w a0, a0, (s2)
2:
#ifdef QEMU /* QEMU 7.2 reports AMO faults as load faults; the spec says store/AMO */
  EXPECT_TRAP CAUSE_LOAD_ACCESS
#else
  EXPECT_TRAP CAUSE_STORE_ACCESS
#endif
  EXPECT_TMODE 1
  EXPECT_TVAL_R s2
  GOTO_M
  csrw medeleg, zero
  CASE 21                      /* vectored mtvec: exceptions go to BASE, interrupts to BASE+4*cause */
  la a0, vtable
  ori a0, a0, 1
  csrw mtvec, a0
  csrr a1, mtvec
  andi a1, a1, 3
  li a2, 1
  bne a1, a2, 9f               /* vectored mode not supported: skip */
  la a0, vflag
  sd zero, 0(a0)
  ARM 2f
  ecall
2:
  EXPECT_TRAP CAUSE_ECALL_M
  la a0, vflag
  ld a0, 0(a0)
  EXPECT a0, 0                 /* exception went through entry 0, not a vector slot */
  csrsi mie, 1 << IRQ_SSI
  csrsi mip, 1 << IRQ_SSI
  ARM 2f
  csrsi mstatus, MSTATUS_MIE
  nop
2:
  csrci mstatus, MSTATUS_MIE
  EXPECT_TRAP (INTR | IRQ_SSI)
  la a0, vflag
  ld a0, 0(a0)
  EXPECT a0, IRQ_SSI
9:
  csrci mip, 1 << IRQ_SSI
  csrw mie, zero
  la a0, mtrap_entry
  csrw mtvec, a0
  la s0, tdata
  CASE 22                      /* misaligned FP loads and stores */
  addi s2, s0, 3
  ARM 2f
  fld f1, 0(s2)
2:
  LOAD_TCAUSE a1
  DISARM
  li a2, -1
  beq a1, a2, 3f
  EXPECT a1, CAUSE_MISALIGNED_LOAD
  EXPECT_TVAL_R s2
  j 4f
3:
  fmv.x.d a0, f1
  EXPECT a0, 0x0b0a090807060504
4:
  li a0, 0x1122334455667788
  fmv.d.x f2, a0
  addi s2, s0, 0x32
  ARM 2f
  fsd f2, 0(s2)
2:
  LOAD_TCAUSE a1
  DISARM
  li a2, -1
  beq a1, a2, 3f
  EXPECT a1, CAUSE_MISALIGNED_STORE
  EXPECT_TVAL_R s2
  j 4f
3:
  ld a0, 0(s2)
  EXPECT a0, 0x1122334455667788
4:
  addi s2, s0, 0x1d
  ARM 2f
  flw f3, 0(s2)
2:
  LOAD_TCAUSE a1
  DISARM
  li a2, -1
  beq a1, a2, 3f
  EXPECT a1, CAUSE_MISALIGNED_LOAD
  j 4f
3:
  fmv.x.d a0, f3
  EXPECT a0, 0xffffffff00a5a500
4:
  PASS

  .align 8
vtable:
  .option push
  .option norvc
  j mtrap_entry                /* 0: exceptions */
  j vslot1                     /* 1: SSI */
  j vbad
  j vbad
  j vbad
  j vbad
  j vbad
  j vbad
  j vbad
  j vbad
  j vbad
  j vbad
  .option pop
vslot1:
  csrci mip, 1 << IRQ_SSI
  la t6, vflag
  li t5, IRQ_SSI
  sd t5, 0(t6)
  j mtrap_entry
vbad:
  la t6, vflag
  li t5, 99
  sd t5, 0(t6)
  j mtrap_entry

  .data
  .align 6
tdata:
  .byte 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08
  .byte 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10
  .byte 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18
  .byte 0, 0, 0, 0, 0, 0, 0xa5, 0xa5
  .fill 32, 1, 0
vflag: .dword 0
