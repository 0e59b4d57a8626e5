/* Zicsr and Zicntr: csrrw/csrrs/csrrc and immediate forms, read-only and missing CSRs,
   privilege checks, WARL fields (misa, mstatus views, sstatus/sie/sip, mepc, satp),
   FS = Off, counters and counter-enable registers. */
#include "harness.h"
test_main:
  CASE 1                       /* csrrw returns the old value */
  li a0, 0x1234
  csrw mscratch, a0
  li a1, 0x5678
  csrrw a2, mscratch, a1
  EXPECT a2, 0x1234
  csrr a3, mscratch
  EXPECT a3, 0x5678
  CASE 2                       /* csrrs / csrrc */
  li a0, 0xf0
  csrw mscratch, a0
  li a1, 0x0f
  csrrs a2, mscratch, a1
  EXPECT a2, 0xf0
  csrr a2, mscratch
  EXPECT a2, 0xff
  li a1, 0x3c
  csrrc a2, mscratch, a1
  EXPECT a2, 0xff
  csrr a2, mscratch
  EXPECT a2, 0xc3
  csrrs a2, mscratch, zero
  EXPECT a2, 0xc3
  csrrc a2, mscratch, zero
  EXPECT a2, 0xc3
  CASE 3                       /* immediate forms: 5-bit zero-extended */
  csrrwi a2, mscratch, 31
  EXPECT a2, 0xc3
  csrr a2, mscratch
  EXPECT a2, 31
  csrrci a2, mscratch, 0x11
  EXPECT a2, 31
  csrrsi a2, mscratch, 0x20 & 0x1f
  csrr a2, mscratch
  EXPECT a2, 0x0e
  csrrsi a2, mscratch, 0x10
  csrr a2, mscratch
  EXPECT a2, 0x1e
  li a0, -1
  csrw mscratch, a0
  csrr a2, mscratch
  EXPECT a2, -1
  CASE 4                       /* rd = rs1 */
  li a0, 100
  csrw mscratch, a0
  li a0, 200
  csrrw a0, mscratch, a0
  EXPECT a0, 100
  csrr a0, mscratch
  EXPECT a0, 200
  CASE 5                       /* reading read-only CSRs without writing is fine */
  EXPECT_OK csrrs a0, cycle, zero
  EXPECT_OK csrrc a0, instret, zero
  EXPECT_OK csrrsi a0, mhartid, 0
  EXPECT_OK csrrci a0, mvendorid, 0
  EXPECT_OK csrr a0, marchid
  EXPECT_OK csrr a0, mimpid
  csrr a0, mhartid
  EXPECT a0, 0
  CASE 6                       /* writing read-only CSRs raises illegal instruction */
  li a1, 0
  EXPECT_ILLEGAL csrw cycle, a1
#ifndef QEMU /* QEMU 7.2 decides by the register value; the spec (and Spike) by rs1 != x0 */
  EXPECT_ILLEGAL csrrs a0, mhartid, a1      /* rs1 != x0 is a write even if 0 */
#endif
  EXPECT_ILLEGAL csrrw zero, mvendorid, zero
  EXPECT_ILLEGAL csrrwi a0, instret, 0
  EXPECT_ILLEGAL csrrci a0, time, 1
  CASE 7                       /* CSRs that do not exist */
#ifndef QEMU /* QEMU's default CPU has the H extension */
  EXPECT_ILLEGAL csrr a0, 0x600               /* hstatus: no H extension */
#endif
  EXPECT_ILLEGAL csrr a0, 0x008               /* vstart: no V extension */
  EXPECT_ILLEGAL csrw 0x7ff, a1
  CASE 8                       /* misa: RV64 with I, M, A, F, D, C, S, U */
  csrr a0, misa
  srli a1, a0, 62
  EXPECT a1, 2
  li a2, (1 << 0) | (1 << 2) | (1 << 3) | (1 << 5) | (1 << 8) | (1 << 12) | (1 << 18) | (1 << 20)
  and a1, a0, a2
  EXPECT_EQ a1, a2
  CASE 9                       /* mstatus: UXL = SXL = 64-bit */
  csrr a0, mstatus
  srli a0, a0, 32
  andi a0, a0, 0xf
  EXPECT a0, 0xa
  CASE 10                      /* sstatus is a view of mstatus */
  csrci mstatus, MSTATUS_SIE
  csrsi sstatus, MSTATUS_SIE
  csrr a0, mstatus
  andi a0, a0, MSTATUS_SIE
  EXPECT a0, MSTATUS_SIE
  csrci sstatus, MSTATUS_SIE
  csrr a0, mstatus
  andi a0, a0, MSTATUS_SIE
  EXPECT a0, 0
  li a0, MSTATUS_SUM | MSTATUS_MXR
  csrs sstatus, a0
  csrr a1, mstatus
  and a1, a1, a0
  EXPECT_EQ a1, a0
  csrc mstatus, a0
  csrr a1, sstatus
  and a1, a1, a0
  EXPECT a1, 0
  li a0, MSTATUS_MPP           /* M-only fields are invisible in sstatus */
  csrs mstatus, a0
  csrr a1, sstatus
  and a1, a1, a0
  EXPECT a1, 0
  li a0, MSTATUS_MIE | MSTATUS_MPIE | MSTATUS_TVM | MSTATUS_TSR | MSTATUS_TW | MSTATUS_MPRV
  csrc mstatus, a0
  csrs sstatus, a0             /* and cannot be set through it */
  csrr a1, mstatus
  and a1, a1, a0
  EXPECT a1, 0
  li a0, MSTATUS_MPP
  csrc mstatus, a0
  CASE 11                      /* mideleg/medeleg writable bits */
  li a0, -1
  csrw mideleg, a0
  csrr a1, mideleg
  li a2, 0x222
  and a3, a1, a2
  EXPECT a3, 0x222
  li a3, 0x888                 /* M-level interrupts cannot be delegated */
  and a3, a1, a3
  EXPECT a3, 0
  csrw mideleg, zero
  csrw medeleg, a0
  csrr a1, medeleg
  li a2, (1 << 0) | (1 << 2) | (1 << 3) | (1 << 8) | (1 << 12) | (1 << 13) | (1 << 15)
  and a3, a1, a2
  EXPECT_EQ a3, a2
  csrw medeleg, zero
  CASE 12                      /* sie/sip only expose delegated interrupts */
  csrw mideleg, zero
  csrw mie, zero
  li a0, 0x222
  csrs sie, a0
  csrr a1, sie
  EXPECT a1, 0
  csrr a1, mie
  EXPECT a1, 0
  li a0, 0x2
  csrw mideleg, a0
  li a0, 0x222
  csrs sie, a0
  csrr a1, sie
  EXPECT a1, 0x2
  csrr a1, mie
  EXPECT a1, 0x2
  csrw mie, zero
  csrsi mip, 0x2               /* SSIP written in mip shows in sip */
  csrr a1, sip
  EXPECT a1, 0x2
  csrci sip, 0x2               /* and S-mode can clear it */
  csrr a1, mip
  andi a1, a1, 0x2
  EXPECT a1, 0
  csrw mideleg, zero
  csrw mip, zero
#ifndef QEMU /* QEMU 7.2 keeps mepc[0] as written; the spec says it is always zero */
  CASE 13                      /* mepc/sepc: bit 0 always zero */
  li a0, 0x80001233
  csrw mepc, a0
  csrr a1, mepc
  EXPECT a1, 0x80001232
  csrw sepc, a0
  csrr a1, sepc
  EXPECT a1, 0x80001232
#endif
  CASE 14                      /* satp: unsupported MODE means the write is ignored */
  csrw satp, zero
  li a0, (5 << 60) | 0x123
  csrw satp, a0
  csrr a1, satp
  EXPECT a1, 0
  li a0, (8 << 60) | 0x80123
  csrw satp, a0
  csrr a1, satp
  EXPECT_EQ a1, a0
  csrw satp, zero
  CASE 15                      /* FS = Off: FP instructions and FP CSRs are illegal */
  li a0, MSTATUS_FS
  csrc mstatus, a0
  EXPECT_ILLEGAL fadd.d f1, f2, f3
  EXPECT_ILLEGAL fmv.x.d a0, f1
  EXPECT_ILLEGAL fld f1, 0(sp)
  EXPECT_ILLEGAL csrr a0, fcsr
  EXPECT_ILLEGAL csrwi fflags, 1
  li a0, MSTATUS_FS_INITIAL
  csrs mstatus, a0
  EXPECT_OK fmv.x.d a0, f1
  CASE 16                      /* privilege checks on CSR access */
  GOTO_S
  EXPECT_ILLEGAL csrr a0, mstatus
  EXPECT_ILLEGAL csrw mscratch, a0
  EXPECT_ILLEGAL csrr a0, mhartid
  EXPECT_OK csrr a0, sstatus
  EXPECT_OK csrw sscratch, a0
  GOTO_U
  EXPECT_ILLEGAL csrr a0, sstatus
  EXPECT_ILLEGAL csrr a0, sscratch
  EXPECT_ILLEGAL csrr a0, mstatus
  EXPECT_OK frflags a0
  GOTO_M
#ifndef QEMU /* QEMU (TCG without icount) does not count instructions */
  CASE 17                      /* instret counts exactly */
  rdinstret a0
  rdinstret a1
  sub a2, a1, a0
  EXPECT a2, 1
  rdinstret a0
  li s1, 1000
1:
  addi s1, s1, -1
  bnez s1, 1b
  rdinstret a1
  sub a2, a1, a0
  EXPECT a2, 2002
  csrr a0, minstret
  csrr a1, instret
  sub a2, a1, a0
  EXPECT a2, 1
#endif
  CASE 18                      /* cycle increases */
  rdcycle a0
  li s1, 100
1:
  addi s1, s1, -1
  bnez s1, 1b
  rdcycle a1
  bgtu a1, a0, 2f
  FAIL
2:
  csrr a0, mcycle
  bgeu a0, a1, 3f
  FAIL
3:
  CASE 19                      /* time increases */
  rdtime a0
  li s1, 2000000              /* ~8M instructions: plenty for any real-time clock */
1:
  rdtime a1
  bne a1, a0, 2f
  addi s1, s1, -1
  bnez s1, 1b
  FAIL
2:
  bgtu a1, a0, 3f
  FAIL
3:
#ifndef QEMU
  CASE 20                      /* minstret/mcycle are writable */
  li a0, 1000000
  csrw minstret, a0
  rdinstret a1
  sub a1, a1, a0
  sltiu a2, a1, 3              /* 1000000 .. 1000002 */
  EXPECT a2, 1
  li a0, 1 << 40
  csrw mcycle, a0
  rdcycle a1
  bgeu a1, a0, 1f
  FAIL
1:
  rdinstret a1                 /* minstret is a separate counter */
  li a0, 1000000 + 100
  bltu a1, a0, 2f
  FAIL
2:
#endif
  CASE 21                      /* counters from S/U need mcounteren / scounteren */
  csrw mcounteren, zero
  csrw scounteren, zero
  GOTO_S
  EXPECT_ILLEGAL rdcycle a0
  EXPECT_ILLEGAL rdtime a0
  EXPECT_ILLEGAL rdinstret a0
  GOTO_M
  li a0, 7
  csrw mcounteren, a0
  csrr a1, mcounteren
  andi a1, a1, 7
  EXPECT a1, 7
  GOTO_S
  EXPECT_OK rdcycle a0
  EXPECT_OK rdtime a0
  EXPECT_OK rdinstret a0
  GOTO_U
  EXPECT_ILLEGAL rdinstret a0    /* scounteren still 0 */
  GOTO_M
  li a0, 5                       /* CY and IR for U */
  csrw scounteren, a0
  GOTO_U
  EXPECT_OK rdcycle a0
  EXPECT_OK rdinstret a0
  EXPECT_ILLEGAL rdtime a0
  GOTO_M
  li a0, 2                       /* mcounteren.CY = 0 blocks U even with scounteren.CY */
  csrw mcounteren, a0
  GOTO_U
  EXPECT_ILLEGAL rdcycle a0
  GOTO_M
  csrw mcounteren, zero
  csrw scounteren, zero
  CASE 22                      /* mstatus WARL: MPP never holds the reserved value 2; little endian */
  li a0, MSTATUS_MPP
  csrc mstatus, a0
  li a0, 2 << 11
  csrs mstatus, a0
  csrr a1, mstatus
  srli a1, a1, 11
  andi a1, a1, 3
  li a2, 2
#ifndef QEMU /* QEMU 7.2 keeps MPP = 2 */
  bne a1, a2, 1f
  FAIL
1:
#endif
  li a0, MSTATUS_MPP
  csrc mstatus, a0
  csrr a1, mstatus
  li a2, (1 << 6) | (3 << 36)  /* UBE, SBE, MBE */
  and a1, a1, a2
  EXPECT a1, 0
  PASS
