/*
 * Tabvisor bare-metal assembly test harness (own code, not derived from riscv-tests).
 *
 * Include once at the top of a test program, then write the body after the label
 * `test_main` (placed in .text) and finish with `PASS`.
 *
 *   #include "harness.h"
 *   test_main:
 *     CASE 1
 *     li a0, 2
 *     EXPECT a0, 2
 *     PASS
 *
 * Conventions
 *   - tp holds the current case number (set by CASE); a failing program exits with
 *     exit code = case number (tohost = case << 1 | 1), exit code 0 means pass.
 *   - t5 and t6 are scratch registers of the macros and of the trap handlers; every
 *     other register is preserved by the trap handlers.
 *   - The program starts in M-mode with sp at the top of a 16 KiB stack, FS = Initial,
 *     satp = 0, medeleg = mideleg = mie = 0, PMP entry 0 open for S/U (if PMP exists),
 *     mtvec -> harness M-mode handler, stvec -> harness S-mode handler.
 *   - Expected traps: `ARM label` arms the handlers; the next trap (in any mode, to
 *     either M or S) is recorded (cause, tval, epc, status, handler mode) and execution
 *     resumes at `label` in the mode that trapped.  An expected interrupt also clears its
 *     enable bit in mie (M handler) or sie (S handler) and returns with MIE (SIE) = 0, so
 *     no interrupt is taken right after the xRET.  EXPECT_TRAP then checks the cause and
 *     disarms.  Unexpected traps print the trap CSRs and fail with the current case.
 *   - GOTO_S / GOTO_U / GOTO_M switch privilege and continue at the next instruction (they
 *     use an ecall with a7 = HMAGIC handled by the harness, so a7 is clobbered).
 *   - HTIF: tohost/fromhost symbols in section .tohost (-DHARNESS_QUIET: no console
 *     output, only the exit code); -DQEMU instead targets the QEMU
 *     `virt` machine (UART putchar, sifive_test exit) for cross-checking on
 *     `qemu-system-riscv64 -M virt -bios none -kernel X.elf`.
 */

#define HMAGIC 0x7ab0c0de

#define CAUSE_MISALIGNED_FETCH 0
#define CAUSE_FETCH_ACCESS 1
#define CAUSE_ILLEGAL 2
#define CAUSE_BREAKPOINT 3
#define CAUSE_MISALIGNED_LOAD 4
#define CAUSE_LOAD_ACCESS 5
#define CAUSE_MISALIGNED_STORE 6
#define CAUSE_STORE_ACCESS 7
#define CAUSE_ECALL_U 8
#define CAUSE_ECALL_S 9
#define CAUSE_ECALL_M 11
#define CAUSE_FETCH_PAGE 12
#define CAUSE_LOAD_PAGE 13
#define CAUSE_STORE_PAGE 15
#define INTR (1 << 63)
#define IRQ_SSI 1
#define IRQ_MSI 3
#define IRQ_STI 5
#define IRQ_MTI 7
#define IRQ_SEI 9

#define MSTATUS_SIE (1 << 1)
#define MSTATUS_MIE (1 << 3)
#define MSTATUS_SPIE (1 << 5)
#define MSTATUS_UBE (1 << 6)
#define MSTATUS_MPIE (1 << 7)
#define MSTATUS_SPP (1 << 8)
#define MSTATUS_MPP (3 << 11)
#define MSTATUS_MPP_S (1 << 11)
#define MSTATUS_FS (3 << 13)
#define MSTATUS_FS_INITIAL (1 << 13)
#define MSTATUS_FS_CLEAN (2 << 13)
#define MSTATUS_FS_DIRTY (3 << 13)
#define MSTATUS_MPRV (1 << 17)
#define MSTATUS_SUM (1 << 18)
#define MSTATUS_MXR (1 << 19)
#define MSTATUS_TVM (1 << 20)
#define MSTATUS_TW (1 << 21)
#define MSTATUS_TSR (1 << 22)
#define MSTATUS_SD (1 << 63)

/* harness data block offsets */
#define H_RESUME 0
#define H_CAUSE 8
#define H_TVAL 16
#define H_EPC 24
#define H_STATUS 32
#define H_MODE 40
#define H_SAVE0 48
#define H_SAVE1 56
#define H_CURMODE 64
#define H_COUNT 72
#define H_RESUME2 80
#define H_CAUSE1 88
#define H_RESUME_M 96

/* ------------------------------------------------------------------ macros */

.macro CASE n
  li tp, \n
.endm

/* reg == immediate (any 64-bit constant) */
.macro EXPECT reg, val
  mv t5, \reg
  li t6, \val
  beq t5, t6, .Lok\@
  auipc s8, 0         /* pc of the failing check, for the message */
  j fail_cmp
.Lok\@:
.endm

/* reg == reg */
.macro EXPECT_EQ ra, rb
  mv t5, \ra
  mv t6, \rb
  beq t5, t6, .Lok\@
  auipc s8, 0         /* pc of the failing check, for the message */
  j fail_cmp
.Lok\@:
.endm

/* reg != 0 */
.macro EXPECT_NZ reg
  mv t5, \reg
  bnez t5, .Lok\@
  li t6, 0
  auipc s8, 0         /* pc of the failing check, for the message */
  j fail_cmp_nz
.Lok\@:
.endm

/* unconditional failure of the current case */
.macro FAIL
  auipc s8, 0
  j fail
.endm

.macro PASS
  j pass
.endm

/* arm the trap handlers: the next trap resumes at \label */
.macro ARM label
  la t6, hdata
  la t5, \label
  sd t5, H_RESUME(t6)
  li t5, -1
  sd t5, H_CAUSE(t6)
  sd t5, H_TVAL(t6)
  sd zero, H_MODE(t6)
  sd zero, H_COUNT(t6)
  sd zero, H_RESUME2(t6)
  sd t5, H_CAUSE1(t6)
  sd zero, H_RESUME_M(t6)
.endm

/* like ARM, but the M-mode handler resumes at \label in M-mode (for code running in U or S
   from pages the resume label is not executable in) */
.macro ARM_M label
  ARM \label
  la t6, hdata
  li t5, 1
  sd t5, H_RESUME_M(t6)
.endm

/* arm for two traps, both resuming at \label (EXPECT_FIRST_TRAP checks the first cause) */
.macro ARM2 label
  ARM \label
  la t6, hdata
  la t5, \label
  sd t5, H_RESUME2(t6)
.endm

.macro EXPECT_FIRST_TRAP cause
  la t6, hdata
  ld t5, H_CAUSE1(t6)
  li t6, \cause
  beq t5, t6, .Lok\@
  auipc s8, 0
  j fail_trap
.Lok\@:
.endm

.macro EXPECT_TRAP_COUNT n
  la t6, hdata
  ld t5, H_COUNT(t6)
  li t6, \n
  beq t5, t6, .Lok\@
  auipc s8, 0
  j fail_cmp
.Lok\@:
.endm

/* disarm and check that the trap happened with the given cause */
.macro EXPECT_TRAP cause
  la t6, hdata
  sd zero, H_RESUME(t6)
  ld t5, H_CAUSE(t6)
  li t6, \cause
  beq t5, t6, .Lok\@
  auipc s8, 0         /* pc of the failing check, for the message */
  j fail_trap
.Lok\@:
.endm

/* disarm and check that no trap happened */
.macro EXPECT_NO_TRAP
  la t6, hdata
  sd zero, H_RESUME(t6)
  ld t5, H_CAUSE(t6)
  li t6, -1
  beq t5, t6, .Lok\@
  auipc s8, 0         /* pc of the failing check, for the message */
  j fail_trap
.Lok\@:
.endm

/* recorded xtval == immediate / == register */
.macro EXPECT_TVAL val
  la t6, hdata
  ld t5, H_TVAL(t6)
  li t6, \val
  beq t5, t6, .Lok\@
  auipc s8, 0         /* pc of the failing check, for the message */
  j fail_cmp
.Lok\@:
.endm

.macro EXPECT_TVAL_R reg
  la t6, hdata
  ld t5, H_TVAL(t6)
  mv t6, \reg
  beq t5, t6, .Lok\@
  auipc s8, 0         /* pc of the failing check, for the message */
  j fail_cmp
.Lok\@:
.endm

/* recorded xtval == the 32-bit instruction at \label (read as two halfwords) */
.macro EXPECT_TVAL_INSN label
  la t6, \label
  lhu t5, 2(t6)
  lhu t6, 0(t6)
  slli t5, t5, 16
  or t6, t6, t5
  la t5, hdata
  ld t5, H_TVAL(t5)
  beq t5, t6, .Lok\@
  auipc s8, 0         /* pc of the failing check, for the message */
  j fail_cmp
.Lok\@:
.endm

/* an instruction (given as arguments) must raise illegal instruction with tval = its bits */
.macro EXPECT_ILLEGAL insn:vararg
  ARM .Lr\@
.option push
.option norvc
.Li\@:
  \insn
.option pop
.Lr\@:
  EXPECT_TRAP CAUSE_ILLEGAL
  EXPECT_TVAL_INSN .Li\@
.endm

/* an instruction must execute without trapping */
.macro EXPECT_OK insn:vararg
  ARM .Lr\@
  \insn
.Lr\@:
  EXPECT_NO_TRAP
.endm

/* recorded xepc == address of label */
.macro EXPECT_EPC label
  la t6, hdata
  ld t5, H_EPC(t6)
  la t6, \label
  beq t5, t6, .Lok\@
  auipc s8, 0         /* pc of the failing check, for the message */
  j fail_cmp
.Lok\@:
.endm

.macro EXPECT_EPC_R reg
  la t6, hdata
  ld t5, H_EPC(t6)
  mv t6, \reg
  beq t5, t6, .Lok\@
  auipc s8, 0         /* pc of the failing check, for the message */
  j fail_cmp
.Lok\@:
.endm

/* which handler took the recorded trap: 3 = M, 1 = S */
.macro EXPECT_TMODE m
  la t6, hdata
  ld t5, H_MODE(t6)
  li t6, \m
  beq t5, t6, .Lok\@
  auipc s8, 0         /* pc of the failing check, for the message */
  j fail_cmp
.Lok\@:
.endm

/* load the recorded xstatus (value of mstatus/sstatus read inside the handler) */
.macro LOAD_TSTATUS reg
  la t6, hdata
  ld \reg, H_STATUS(t6)
.endm

.macro LOAD_TCAUSE reg
  la t6, hdata
  ld \reg, H_CAUSE(t6)
.endm

/* disarm only (use after LOAD_TCAUSE-based custom checks) */
.macro DISARM
  la t6, hdata
  sd zero, H_RESUME(t6)
.endm

.macro LOAD_TTVAL reg
  la t6, hdata
  ld \reg, H_TVAL(t6)
.endm

/* privilege switches (continue at the next instruction); GOTO_S/GOTO_U work from any
   mode (they first return to M with the magic ecall) and clobber a7 */
.macro GOTO_MODE mpp
  li a7, HMAGIC
  ecall
  csrr t6, mstatus         /* MPIE = MIE, so that the mret keeps M's MIE unchanged */
  andi t6, t6, MSTATUS_MIE
  slli t6, t6, 4
  li t5, MSTATUS_MPIE
  csrc mstatus, t5
  csrs mstatus, t6
  li t6, MSTATUS_MPP
  csrc mstatus, t6
  li t6, (\mpp << 11)
  csrs mstatus, t6
  la t6, hdata
  li t5, \mpp
  sd t5, H_CURMODE(t6)
  la t6, .Lnext\@
  csrw mepc, t6
  mret
.Lnext\@:
.endm

.macro GOTO_S
  GOTO_MODE 1
.endm

.macro GOTO_U
  GOTO_MODE 0
.endm

.macro GOTO_M
  li a7, HMAGIC
  ecall
.endm

/* ------------------------------------------------------------------ code */

  .section .text.init, "ax", @progbits
  .globl _start
_start:
  /* PMP: open everything for S/U if PMP exists (skip if the CSR write traps) */
  la t0, 1f
  csrw mtvec, t0
  li t0, -1
  csrw pmpaddr0, t0
  li t0, 0x1f
  csrw pmpcfg0, t0
  .align 2
1:
  la t0, mtrap_entry
  csrw mtvec, t0
  la t0, strap_entry
  csrw stvec, t0
  csrwi medeleg, 0
  csrwi mideleg, 0
  csrwi mie, 0
  csrwi mip, 0
  csrwi satp, 0
  li t0, MSTATUS_FS_INITIAL
  csrw mstatus, t0
  csrwi fcsr, 0
  la sp, hstack_top
  li tp, 0
  la t0, hdata
  li t1, 3
  sd t1, H_CURMODE(t0)
  j test_main

/* ---- M-mode trap handler ---- */
  .text
  .align 6
  .globl mtrap_entry
mtrap_entry:
  la t6, hdata
  sd t0, H_SAVE0(t6)
  sd t1, H_SAVE1(t6)
  ld t0, H_RESUME(t6)
  beqz t0, .Lm_unarmed
  ld t1, H_RESUME2(t6)
  sd t1, H_RESUME(t6)
  sd zero, H_RESUME2(t6)
  csrr t1, mcause
  sd t1, H_CAUSE(t6)
  ld t5, H_COUNT(t6)
  bnez t5, 1f
  sd t1, H_CAUSE1(t6)
1:
  csrr t1, mtval
  sd t1, H_TVAL(t6)
  csrr t1, mepc
  sd t1, H_EPC(t6)
  csrr t1, mstatus
  sd t1, H_STATUS(t6)
  li t1, 3
  sd t1, H_MODE(t6)
  ld t1, H_COUNT(t6)
  addi t1, t1, 1
  sd t1, H_COUNT(t6)
  csrr t1, mcause
  bgez t1, 1f
  li t5, 1                 /* interrupt: clear its enable bit in mie so that it */
  sll t5, t5, t1           /* cannot be taken again right after the mret, */
  csrc mie, t5
  li t5, MSTATUS_MPIE      /* and return with MIE = 0 (no other interrupt either) */
  csrc mstatus, t5
1:
  ld t1, H_RESUME_M(t6)
  beqz t1, 1f
  sd zero, H_RESUME_M(t6)  /* ARM_M: resume in M-mode */
  li t1, MSTATUS_MPP
  csrs mstatus, t1
  li t1, 3
  sd t1, H_CURMODE(t6)
1:
  csrw mepc, t0
  ld t0, H_SAVE0(t6)
  ld t1, H_SAVE1(t6)
  mret
.Lm_unarmed:
  /* ecall with a7 == HMAGIC from any mode: continue in M after the ecall */
  csrr t0, mcause
  li t1, CAUSE_ECALL_U
  beq t0, t1, 2f
  li t1, CAUSE_ECALL_S
  beq t0, t1, 2f
  li t1, CAUSE_ECALL_M
  beq t0, t1, 2f
  li t1, CAUSE_ILLEGAL     /* the S handler's escape when ecall from S is delegated */
  bne t0, t1, .Lm_unexpected
  csrr t0, mepc
  la t1, .Ls_escape
  bne t0, t1, .Lm_unexpected
2:
  li t1, HMAGIC
  bne a7, t1, .Lm_unexpected
  csrr t0, mepc
  addi t0, t0, 4
  csrw mepc, t0
  li t0, MSTATUS_MPP
  csrs mstatus, t0
  li t0, 3
  sd t0, H_CURMODE(t6)
  ld t0, H_SAVE0(t6)
  ld t1, H_SAVE1(t6)
  mret
.Lm_unexpected:
  la a0, str_unexp_m
  call hputs
  csrr a0, mcause
  call hputhex
  la a0, str_epc
  call hputs
  csrr a0, mepc
  call hputhex
  la a0, str_tval
  call hputs
  csrr a0, mtval
  call hputhex
  la a0, str_nl
  call hputs
  j hexit_fail

/* ---- S-mode trap handler ---- */
  .align 6
  .globl strap_entry
strap_entry:
  la t6, hdata
  sd t0, H_SAVE0(t6)
  sd t1, H_SAVE1(t6)
  ld t0, H_RESUME(t6)
  beqz t0, .Ls_unarmed
  ld t1, H_RESUME2(t6)
  sd t1, H_RESUME(t6)
  sd zero, H_RESUME2(t6)
  csrr t1, scause
  sd t1, H_CAUSE(t6)
  ld t5, H_COUNT(t6)
  bnez t5, 1f
  sd t1, H_CAUSE1(t6)
1:
  csrr t1, stval
  sd t1, H_TVAL(t6)
  csrr t1, sepc
  sd t1, H_EPC(t6)
  csrr t1, sstatus
  sd t1, H_STATUS(t6)
  li t1, 1
  sd t1, H_MODE(t6)
  ld t1, H_COUNT(t6)
  addi t1, t1, 1
  sd t1, H_COUNT(t6)
  csrr t1, scause
  bgez t1, 1f
  li t5, 1                 /* interrupt: clear its enable bit in sie */
  sll t5, t5, t1
  csrc sie, t5
  li t5, MSTATUS_SPIE      /* and return with SIE = 0 */
  csrc sstatus, t5
1:
  csrw sepc, t0
  ld t0, H_SAVE0(t6)
  ld t1, H_SAVE1(t6)
  sret
.Ls_unarmed:
  csrr t0, scause
  li t1, CAUSE_ECALL_U
  beq t0, t1, 2f
  li t1, CAUSE_ECALL_S
  bne t0, t1, .Ls_unexpected
2:
  li t1, HMAGIC
  bne a7, t1, .Ls_unexpected
  /* magic ecall delegated to S: trap again from S to reach M, then jump back.  From U
     that is an ecall; if the ecall came from S, ecall-from-S is delegated, so use an
     illegal instruction (an M-only CSR read) the M handler recognises by its address. */
  csrr t1, scause
  csrr t0, sepc
  addi t0, t0, 4
  csrw sscratch, t0
  li t0, CAUSE_ECALL_U
  beq t1, t0, 3f
  ld t0, H_SAVE0(t6)
  ld t1, H_SAVE1(t6)
  .option push
  .option norvc
.Ls_escape:
  csrr zero, mscratch   /* a7 still HMAGIC; resumes after it in M-mode */
  .option pop
  j 4f
3:
  ld t0, H_SAVE0(t6)
  ld t1, H_SAVE1(t6)
  ecall                 /* a7 still HMAGIC; resumes here in M-mode */
4:
  csrr t6, sscratch
  jr t6
.Ls_unexpected:
  la a0, str_unexp_s
  call hputs
  csrr a0, scause
  call hputhex
  la a0, str_epc
  call hputs
  csrr a0, sepc
  call hputhex
  la a0, str_tval
  call hputs
  csrr a0, stval
  call hputhex
  la a0, str_nl
  call hputs
  j hexit_fail

/* ---- pass / fail ---- */
  .globl pass
pass:
  la t0, hdata
  ld t1, H_CURMODE(t0)
  li t2, 3
  beq t1, t2, 1f
  GOTO_M
1:
#ifdef QEMU
  li t0, 0x100000
  li t1, 0x5555
  sw t1, 0(t0)
#else
  li t1, 1
  la t0, tohost
  sd t1, 0(t0)
#endif
2:
  j 2b

  .globl fail_cmp
fail_cmp:                  /* t5 = got, t6 = expected */
  mv s10, t5
  mv s11, t6
  call fail_to_m
  la a0, str_fail
  call hputs
  mv a0, tp
  call hputdec
  la a0, str_got
  call hputs
  mv a0, s10
  call hputhex
  la a0, str_exp
  call hputs
  mv a0, s11
  call hputhex
  j fail_pc_nl

fail_cmp_nz:
  mv s10, t5
  call fail_to_m
  la a0, str_fail
  call hputs
  mv a0, tp
  call hputdec
  la a0, str_nz
  call hputs
  j fail_pc_nl

fail_trap:                 /* t5 = recorded cause, t6 = expected cause */
  mv s10, t5
  mv s11, t6
  call fail_to_m
  la a0, str_fail
  call hputs
  mv a0, tp
  call hputdec
  la a0, str_tcause
  call hputs
  mv a0, s10
  call hputhex
  la a0, str_exp
  call hputs
  mv a0, s11
  call hputhex
  la a0, str_tv
  call hputs
  la t0, hdata
  ld a0, H_TVAL(t0)
  call hputhex
  j fail_pc_nl

  .globl fail
fail:
  call fail_to_m
  la a0, str_fail
  call hputs
  mv a0, tp
  call hputdec
fail_pc_nl:                /* s8 = pc of the failing check */
  la a0, str_atpc
  call hputs
  mv a0, s8
  call hputhex
  la a0, str_nl
  call hputs
hexit_fail:
  mv a0, tp
  bnez a0, 1f
  li a0, 999
1:
#ifdef QEMU
  slli a0, a0, 16
  li t0, 0x3333
  or a0, a0, t0
  li t0, 0x100000
  sw a0, 0(t0)
#else
  slli a0, a0, 1
  ori a0, a0, 1
  la t0, tohost
  sd a0, 0(t0)
#endif
2:
  j 2b

/* back to M-mode (console and tohost may be unmapped in S/U) */
fail_to_m:
  la t0, hdata
  sd zero, H_RESUME(t0)
  ld t1, H_CURMODE(t0)
  li t2, 3
  beq t1, t2, 1f
  GOTO_M
1:
  ret

/* ---- console (clobbers t0-t4, a0-a3) ---- */
hputc:                     /* a0 = char */
#if defined(HARNESS_QUIET)       /* -DHARNESS_QUIET: no console output at all */
#elif defined(QEMU)
  li t0, 0x10000000
  sb a0, 0(t0)
#else
  li t0, 0x0101000000000000
  or t0, t0, a0
  la t1, tohost
  sd t0, 0(t1)
  la t1, fromhost
  li t2, 100000
1:
  ld t3, 0(t1)
  bnez t3, 2f
  addi t2, t2, -1
  bnez t2, 1b
2:
  sd zero, 0(t1)
#endif
  ret

hputs:                     /* a0 = NUL-terminated string */
  mv a2, ra
  mv a1, a0
1:
  lbu a0, 0(a1)
  beqz a0, 2f
  call hputc
  addi a1, a1, 1
  j 1b
2:
  jr a2

hputhex:                   /* a0 = value, printed as 0x + 16 hex digits */
  mv a3, ra
  mv a1, a0
  li a0, '0'
  call hputc
  li a0, 'x'
  call hputc
  li a2, 60
1:
  srl a0, a1, a2
  andi a0, a0, 15
  li t4, 10
  blt a0, t4, 2f
  addi a0, a0, 'a' - '0' - 10
2:
  addi a0, a0, '0'
  call hputc
  addi a2, a2, -4
  bgez a2, 1b
  jr a3

hputdec:                   /* a0 = value < 10^6 */
  mv a3, ra
  mv a1, a0
  li a2, 100000
  li t4, 0                 /* printed a digit yet */
1:
  divu a0, a1, a2
  remu a1, a1, a2
  bnez a0, 2f
  bnez t4, 2f
  li t3, 1
  bne a2, t3, 3f
2:
  li t4, 1
  addi a0, a0, '0'
  call hputc
3:
  li t3, 10
  divu a2, a2, t3
  bnez a2, 1b
  jr a3

/* ---- data ---- */
  .section .rodata
str_unexp_m: .asciz "unexpected M-mode trap: mcause="
str_unexp_s: .asciz "unexpected S-mode trap: scause="
str_epc: .asciz " epc="
str_tval: .asciz " tval="
str_nl: .asciz "\n"
str_fail: .asciz "FAIL case "
str_got: .asciz ": got "
str_exp: .asciz " expected "
str_nz: .asciz ": got zero, expected nonzero"
str_atpc: .asciz " at pc "
str_tcause: .asciz ": trap cause "
str_tv: .asciz " tval="

  .section .tohost, "aw", @progbits
  .align 6
  .globl tohost
tohost: .dword 0
  .align 6
  .globl fromhost
fromhost: .dword 0

  .data
  .align 6
  .globl hdata
hdata: .fill 32, 8, 0

  .bss
  .align 12
hstack: .skip 16384
hstack_top:

  .text
  .globl test_main
