/* Interrupts without a CLINT: software-writable pending bits (mip.SSIP/STIP/SEIP) taken in
   M and (delegated) in S, global enables per privilege, priorities, WFI with interrupts
   globally disabled but pending and enabled (must continue). */
#include "harness.h"

#define SSI_BIT (1 << IRQ_SSI)
#define STI_BIT (1 << IRQ_STI)
#define SEI_BIT (1 << IRQ_SEI)

/* mret from M into mode \mpp at label \target without the harness (keeps the armed state) */
.macro MRET_TO mpp, target
  li t6, MSTATUS_MPP
  csrc mstatus, t6
  li t6, (\mpp << 11)
  csrs mstatus, t6
  la t6, hdata
  li t5, \mpp
  sd t5, H_CURMODE(t6)
  la t6, \target
  csrw mepc, t6
  mret
.endm

.macro CLEAN_IRQ
  csrci mstatus, MSTATUS_MIE | MSTATUS_SIE
  csrw mie, zero
  csrw mip, zero
  csrw mideleg, zero
.endm

test_main:
  CASE 1                       /* pending + enabled, MIE = 0: not taken; WFI continues */
  CLEAN_IRQ
  csrw mie, SSI_BIT
  csrw mip, SSI_BIT
  ARM 2f
  nop
  wfi
  nop
2:
  EXPECT_NO_TRAP
  csrr a0, mip
  andi a0, a0, SSI_BIT
  EXPECT a0, SSI_BIT
  CASE 2                       /* MIE = 1: taken in M right after the csrs */
  ARM 2f
  csrsi mstatus, MSTATUS_MIE
1:
  nop
  nop
2:
  csrci mstatus, MSTATUS_MIE
  EXPECT_TRAP (INTR | IRQ_SSI)
  EXPECT_TMODE 3
  EXPECT_EPC 1b
  EXPECT_TVAL 0
  csrr a0, mie                 /* the harness disabled the source */
  EXPECT a0, 0
  LOAD_TSTATUS a0              /* entry: MIE = 0, MPIE = 1, MPP = M */
  andi a1, a0, MSTATUS_MIE | MSTATUS_MPIE
  EXPECT a1, MSTATUS_MPIE
  CASE 3                       /* mie bit clear: not taken even with MIE = 1 */
  CLEAN_IRQ
  csrw mip, SSI_BIT
  ARM 2f
  csrsi mstatus, MSTATUS_MIE
  nop
  nop
2:
  EXPECT_NO_TRAP
  CLEAN_IRQ
  CASE 4                       /* M-destined interrupt is taken in S even with MIE = 0 */
  csrw mie, SSI_BIT
  csrw mip, SSI_BIT
  ARM 2f
  MRET_TO 1, 1f
1:
  nop
  nop
2:
  EXPECT_TRAP (INTR | IRQ_SSI)
  EXPECT_TMODE 3
  EXPECT_EPC 1b
  LOAD_TSTATUS a0
  srli a0, a0, 11
  andi a0, a0, 3
  EXPECT a0, 1                 /* MPP = S */
  EXPECT_OK csrr a0, sstatus   /* resumed in S */
  GOTO_M
  CLEAN_IRQ
  CASE 5                       /* delegated SSI: never taken in M */
  csrw mideleg, SSI_BIT
  csrw mie, SSI_BIT
  csrw mip, SSI_BIT
  ARM 2f
  csrsi mstatus, MSTATUS_MIE
  nop
  nop
2:
  EXPECT_NO_TRAP
  csrci mstatus, MSTATUS_MIE
  CASE 6                       /* delegated SSI in S: waits for SIE, then goes to S */
  GOTO_S
  ARM 2f
  nop
  wfi                          /* pending and enabled in sie: continues */
  nop
2:
  EXPECT_NO_TRAP
  ARM 2f
  csrsi sstatus, MSTATUS_SIE
1:
  nop
  nop
2:
  csrci sstatus, MSTATUS_SIE
  EXPECT_TRAP (INTR | IRQ_SSI)
  EXPECT_TMODE 1
  EXPECT_EPC 1b
  LOAD_TSTATUS a0              /* sstatus on entry: SPP = S, SPIE = 1, SIE = 0 */
  andi a1, a0, MSTATUS_SPP | MSTATUS_SPIE | MSTATUS_SIE
  EXPECT a1, MSTATUS_SPP | MSTATUS_SPIE
  csrr a0, sie                 /* the S handler disabled the source */
  EXPECT a0, 0
  csrci sip, SSI_BIT           /* S can clear a delegated SSIP */
  csrr a0, sip
  EXPECT a0, 0
  GOTO_M
  CLEAN_IRQ
  CASE 7                       /* delegated SSI from U is taken with SIE = 0 */
  csrw mideleg, SSI_BIT
  csrw mie, SSI_BIT
  csrw mip, SSI_BIT
  ARM 2f
  MRET_TO 0, 1f
1:
  nop
  nop
2:
  EXPECT_TRAP (INTR | IRQ_SSI)
  EXPECT_TMODE 1
  EXPECT_EPC 1b
  LOAD_TSTATUS a0
  andi a1, a0, MSTATUS_SPP
  EXPECT a1, 0                 /* came from U */
  EXPECT_ILLEGAL csrr a0, sstatus    /* resumed in U */
  GOTO_M
  CLEAN_IRQ
  CASE 8                       /* STIP written by M, delegated: supervisor timer interrupt */
  li a0, STI_BIT
  csrw mideleg, a0
  csrw mie, a0
  csrs mip, a0
  csrr a1, mip
  and a1, a1, a0
  EXPECT_EQ a1, a0
  GOTO_S
  csrr a1, sip
  EXPECT a1, STI_BIT

  ARM 2f
  csrsi sstatus, MSTATUS_SIE
1:
  nop
2:
  csrci sstatus, MSTATUS_SIE
  EXPECT_TRAP (INTR | IRQ_STI)
  EXPECT_TMODE 1
  EXPECT_EPC 1b
  GOTO_M
  CLEAN_IRQ
  CASE 9                       /* SEIP written by M, delegated: supervisor external interrupt */
  li a0, SEI_BIT
  csrw mideleg, a0
  csrw mie, a0
  csrs mip, a0
  GOTO_S
  ARM 2f
  csrsi sstatus, MSTATUS_SIE
  nop
2:
  csrci sstatus, MSTATUS_SIE
  EXPECT_TRAP (INTR | IRQ_SEI)
  EXPECT_TMODE 1
  GOTO_M
  CLEAN_IRQ
#ifndef QEMU /* QEMU 7.2 takes SSI before SEI; priv spec 4.1.3 orders SEI, SSI, STI */
  CASE 10                      /* priority within S: SEI > SSI > STI */
  li a0, SSI_BIT | STI_BIT | SEI_BIT
  csrw mideleg, a0
  csrw mie, a0
  csrs mip, a0
  GOTO_S
  ARM 2f
  csrsi sstatus, MSTATUS_SIE
  nop
2:
  csrci sstatus, MSTATUS_SIE
  EXPECT_TRAP (INTR | IRQ_SEI)
  ARM 2f
  csrsi sstatus, MSTATUS_SIE
  nop
2:
  csrci sstatus, MSTATUS_SIE
  EXPECT_TRAP (INTR | IRQ_SSI)
  ARM 2f
  csrsi sstatus, MSTATUS_SIE
  nop
2:
  csrci sstatus, MSTATUS_SIE
  EXPECT_TRAP (INTR | IRQ_STI)
  GOTO_M
  CLEAN_IRQ
#endif
  CASE 11                      /* an M-destined interrupt wins over an S-destined one */
  li a0, STI_BIT
  csrw mideleg, a0             /* STI to S, SSI stays with M */
  li a0, SSI_BIT | STI_BIT
  csrw mie, a0
  csrs mip, a0
  csrsi mstatus, MSTATUS_SIE
  ARM2 2f
  MRET_TO 1, 1f
1:
  nop
2:
  nop                          /* resumed in S with SIE = 1: the STI follows at once */
  nop
  EXPECT_FIRST_TRAP (INTR | IRQ_SSI)
  EXPECT_TRAP (INTR | IRQ_STI)
  EXPECT_TRAP_COUNT 2
  EXPECT_TMODE 1
  GOTO_M
  CLEAN_IRQ
  PASS
