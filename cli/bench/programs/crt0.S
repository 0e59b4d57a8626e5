/* crt0 for the bare-metal CPU benchmarks (HTIF convention of emulator-core/README.md):
   sets up PMP (so S-mode may access RAM), the FPU (mstatus.FS), the stack and .bss, calls
   main and reports its return value v through tohost as (v << 1) | 1 (0 = success).
   run_in_smode(fn, arg) runs fn(arg) in S-mode and returns its result in M-mode; any
   other trap ends the program with exit code 200 + mcause. */
  .section .text.init, "ax", @progbits
  .globl _start
_start:
  la t0, 1f
  csrw mtvec, t0
  li t0, -1
  csrw pmpaddr0, t0
  li t0, 0x1f
  csrw pmpcfg0, t0
  .align 2
1:
  la t0, trap_entry
  csrw mtvec, t0
  csrwi medeleg, 0
  csrwi mideleg, 0
  csrwi mie, 0
  csrwi satp, 0
  li t0, 1 << 13               /* FS = Initial */
  csrw mstatus, t0
  csrwi fcsr, 0
  la sp, __stack_top
  la t0, __bss_start
  la t1, __bss_end
2:
  bgeu t0, t1, 3f
  sd zero, 0(t0)
  addi t0, t0, 8
  j 2b
3:
  li a0, 0
  li a1, 0
  call main
  j exit

  .text
  .globl exit
exit:
  slli a0, a0, 1
  ori a0, a0, 1
  la t0, tohost
  sd a0, 0(t0)
1:
  j 1b

  .globl run_in_smode
run_in_smode:                  /* a0 = fn, a1 = arg */
  la t0, mctx
  sd ra, 0(t0)
  sd sp, 8(t0)
  sd s0, 16(t0)
  sd s1, 24(t0)
  sd s2, 32(t0)
  sd s3, 40(t0)
  sd s4, 48(t0)
  sd s5, 56(t0)
  sd s6, 64(t0)
  sd s7, 72(t0)
  sd s8, 80(t0)
  sd s9, 88(t0)
  sd s10, 96(t0)
  sd s11, 104(t0)
  sd gp, 112(t0)
  sd tp, 120(t0)
  csrw mepc, a0
  mv a0, a1
  li t0, 3 << 11
  csrc mstatus, t0
  li t0, 1 << 11               /* MPP = S */
  csrs mstatus, t0
  la ra, smode_return
  mret
smode_return:                  /* fn returned in S-mode: result in a0 */
  ecall

  .align 4
trap_entry:
  csrr t0, mcause
  li t1, 9                     /* ecall from S: back to run_in_smode's caller */
  bne t0, t1, 1f
  la t0, mctx
  ld ra, 0(t0)
  ld sp, 8(t0)
  ld s0, 16(t0)
  ld s1, 24(t0)
  ld s2, 32(t0)
  ld s3, 40(t0)
  ld s4, 48(t0)
  ld s5, 56(t0)
  ld s6, 64(t0)
  ld s7, 72(t0)
  ld s8, 80(t0)
  ld s9, 88(t0)
  ld s10, 96(t0)
  ld s11, 104(t0)
  ld gp, 112(t0)
  ld tp, 120(t0)
  ret
1:
  addi a0, t0, 200
  li t1, 55
  bltu t0, t1, 2f
  li a0, 255                   /* interrupts and large causes */
2:
  j exit

  .section .tohost, "aw", @progbits
  .align 6
  .globl tohost
tohost: .dword 0
  .align 6
  .globl fromhost
fromhost: .dword 0

  .bss
  .align 4
mctx: .skip 128
