/* Sv39 paging: page tables built by the test; translation through 4 KiB pages, 2 MiB and
   1 GiB superpages; load/store/fetch page faults with cause and stval/mtval; permissions
   (R-only, X-only with MXR, U pages with SUM, S fetch from U page, U access to S page);
   hardware A/D updates; reserved PTE encodings and bits; misaligned superpages;
   non-canonical addresses; sfence.vma after changing a PTE; MPRV; delegation to S;
   a fetch fault on the second half of an instruction that crosses a page boundary. */
#include "harness.h"
#include "paging.h"

/* virtual addresses of the 4 KiB test pages (table l0, VA 0x0 .. 0x1fffff) */
#define VA_RW 0x1000         /* S RW */
#define VA_RO 0x2000         /* S R */
#define VA_XO 0x3000         /* S X only */
#define VA_USER 0x4000       /* U RW */
#define VA_INVALID 0x5000    /* V = 0 */
#define VA_NOAD 0x6000       /* S RW with A = D = 0 */
#define VA_WO 0x7000         /* W without R: reserved */
#define VA_SCODE 0x8000      /* xpage, S X only */
#define VA_UCODE 0x9000      /* xpage, U R X */
#define VA_RSVD 0xa000       /* reserved bit 60 set */
#define VA_SWAP 0xb000       /* re-pointed by the sfence test */
#define VA_CROSS 0xc000      /* xpage2, S X; 0xd000 is invalid */
#define VA_NOD 0xe000        /* S RW with A = 1, D = 0 */
#define VA_MEGA 0x200000     /* 2 MiB superpage -> 0x80400000 */
#define VA_MEGA_BAD 0x400000 /* misaligned 2 MiB superpage */
#define VA_GIGA 0x40000000   /* 1 GiB superpage alias of RAM (0x80000000) */
#define VA_GIGA_BAD 0xc0000000 /* misaligned 1 GiB superpage */
#define VA_HIGH 0xffffffffc0000000 /* top gigapage: alias of RAM */
#define MEGA_PA 0x80400000

/* M-mode: make the harness/test mapping and switch satp on */
setup:
  la a0, pt_root
  ZERO_PAGES 3
  li a0, SCRATCH_PA
  ZERO_PAGES 16
  SETPTR pt_root, 0, pt_l1
  SETPTE pt_root, 1, 0x80000000, PTE_RWX             /* VA_GIGA alias */
  SETPTE pt_root, 2, 0x80000000, PTE_RWX | PTE_G     /* identity map of RAM */
  SETPTE pt_root, 3, 0x80001000, PTE_RWX             /* misaligned gigapage */
  SETPTE pt_root, 511, 0x80000000, PTE_RWX           /* VA_HIGH */
  SETPTR pt_l1, 0, pt_l0
  SETPTE pt_l1, 1, MEGA_PA, PTE_RW                   /* VA_MEGA */
  SETPTE pt_l1, 2, MEGA_PA + 0x1000, PTE_RW          /* misaligned megapage */
  SETPTE pt_l0, 1, PAGE(1), PTE_RW
  SETPTE pt_l0, 2, PAGE(2), PTE_V | PTE_R | PTE_A
  SETPTE pt_l0, 3, PAGE(3), PTE_V | PTE_X | PTE_A
  SETPTE pt_l0, 4, PAGE(4), PTE_RW | PTE_U
  SETPTE pt_l0, 5, PAGE(5), PTE_RW & ~PTE_V
  SETPTE pt_l0, 6, PAGE(6), PTE_V | PTE_R | PTE_W
  SETPTE pt_l0, 7, PAGE(7), PTE_V | PTE_W | PTE_A | PTE_D
  SETPTE_SYM pt_l0, 8, xpage, PTE_V | PTE_X | PTE_A
  SETPTE_SYM pt_l0, 9, xpage, PTE_V | PTE_R | PTE_X | PTE_U | PTE_A
  li t2, PAGE(10)              /* pt_l0[10]: reserved PTE bit 60 set */
  srli t0, t2, 12
  slli t0, t0, 10
  ori t0, t0, PTE_RW
  li t1, 1 << 60
  or t0, t0, t1
  la t1, pt_l0
  sd t0, 80(t1)
  SETPTE pt_l0, 11, PAGE(11), PTE_RW
  SETPTE_SYM pt_l0, 12, xpage2, PTE_V | PTE_X | PTE_A
  SETPTE pt_l0, 14, PAGE(14), PTE_V | PTE_R | PTE_W | PTE_A
  POKE PAGE(1), 0x1111
  POKE PAGE(2), 0x2222
  POKE PAGE(3), 0x3333
  POKE PAGE(4), 0x4444
  POKE PAGE(6), 0x6666
  POKE PAGE(11), 0xaaaa
  POKE PAGE(12), 0xbbbb
  POKE MEGA_PA + 0x12348, 0x12348
  la a0, pt_root
  srli a0, a0, 12
  li a1, SATP_SV39
  or a0, a0, a1
  csrw satp, a0
  sfence.vma
  ret

test_main:
  call setup
  CASE 1                       /* satp reads back Sv39 */
  csrr a0, satp
  srli a0, a0, 60
  EXPECT a0, 8
#ifndef QEMU /* QEMU virt has a boot ROM at physical 0x1000 */
  CASE 2                       /* M-mode ignores satp: VA_RW is not RAM physically */
  li s2, VA_RW
  ARM 2f
  ld a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_LOAD_ACCESS
#endif
  CASE 3                       /* S-mode: 4 KiB page translation, load and store */
  GOTO_S
  li s2, VA_RW
  ld a0, 0(s2)
  EXPECT a0, 0x1111
  li a1, 0x1212
  sd a1, 8(s2)
  ld a0, 8(s2)
  EXPECT a0, 0x1212
  GOTO_M
  li a0, PAGE(1) + 8
  ld a0, 0(a0)
  EXPECT a0, 0x1212
  CASE 4                       /* superpages: 2 MiB and 1 GiB, and the top gigapage */
  GOTO_S
  li s2, VA_MEGA + 0x12348
  ld a0, 0(s2)
  EXPECT a0, 0x12348
  la s3, gdata                 /* gdata through its RAM alias at VA_GIGA */
  li a0, 0x80000000
  sub s3, s3, a0
  li a0, VA_GIGA
  add s2, s3, a0
  ld a0, 0(s2)
  EXPECT a0, 0x600d
  li a0, VA_HIGH
  add s2, s3, a0
  ld a0, 0(s2)
  EXPECT a0, 0x600d
  CASE 5                       /* invalid PTE: load, store, fetch page faults (to M) */
  li s2, VA_INVALID + 0x10
  ARM 2f
1:
  ld a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_LOAD_PAGE
  EXPECT_TVAL_R s2
  EXPECT_EPC 1b
  EXPECT_TMODE 3
  ARM 2f
  sw a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_STORE_PAGE
  EXPECT_TVAL_R s2
  ARM 2f
  amoor.d a0, a0, (s2)
2:
#ifdef QEMU /* QEMU 7.2 reports AMO faults as load faults; the spec says store/AMO */
  EXPECT_TRAP CAUSE_LOAD_PAGE
#else
  EXPECT_TRAP CAUSE_STORE_PAGE
#endif
  EXPECT_TVAL_R s2
  ARM 2f
  jalr ra, 0(s2)
2:
  EXPECT_TRAP CAUSE_FETCH_PAGE
  EXPECT_TVAL_R s2
  EXPECT_EPC_R s2
  CASE 6                       /* read-only page */
  li s2, VA_RO
  ld a0, 0(s2)
  EXPECT a0, 0x2222
  ARM 2f
  sd a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_STORE_PAGE
  EXPECT_TVAL_R s2
  ARM 2f
  lr.d a0, (s2)                /* LR only reads */
  sc.d a1, a0, (s2)            /* SC faults as a store (or fails without writing) */
2:
  LOAD_TCAUSE a0
  DISARM
  li a1, -1
  beq a0, a1, 3f
  EXPECT a0, CAUSE_STORE_PAGE
3:
  ARM 2f
  jalr ra, 0(s2)               /* not executable */
2:
  EXPECT_TRAP CAUSE_FETCH_PAGE
  CASE 7                       /* execute-only page: MXR */
  li s2, VA_XO
  ARM 2f
  ld a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_LOAD_PAGE
  EXPECT_TVAL_R s2
  li a0, MSTATUS_MXR
  csrs sstatus, a0
  ld a0, 0(s2)
  EXPECT a0, 0x3333
  ARM 2f
  sd a0, 0(s2)                 /* MXR does not make it writable */
2:
  EXPECT_TRAP CAUSE_STORE_PAGE
  li a0, MSTATUS_MXR
  csrc sstatus, a0
  CASE 8                       /* fetch from an execute-only page */
  li s2, VA_SCODE
  li a0, 0
  jalr ra, 0(s2)
  EXPECT a0, 0x77
  CASE 9                       /* U page from S: SUM */
  li s2, VA_USER
  ARM 2f
  ld a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_LOAD_PAGE
  EXPECT_TVAL_R s2
  ARM 2f
  sd a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_STORE_PAGE
  li a0, MSTATUS_SUM
  csrs sstatus, a0
  ld a0, 0(s2)
  EXPECT a0, 0x4444
  li a1, 0x4545
  sd a1, 8(s2)
  ld a0, 8(s2)
  EXPECT a0, 0x4545
  CASE 10                      /* S never executes U pages, even with SUM */
  li s2, VA_UCODE
  ARM 2f
  jalr ra, 0(s2)
2:
  EXPECT_TRAP CAUSE_FETCH_PAGE
  EXPECT_TVAL_R s2
  li a0, MSTATUS_SUM
  csrc sstatus, a0
  GOTO_M
  CASE 11                      /* U-mode: code in a U page, U data OK, S data faults */
  li a1, VA_USER
  ARM_M 2f
  la t6, hdata
  sd zero, H_CURMODE(t6)
  li t6, MSTATUS_MPP
  csrc mstatus, t6
  li t6, VA_UCODE + 16         /* ld a0, 0(a1); ecall */
  csrw mepc, t6
  mret
2:
  EXPECT_TRAP CAUSE_ECALL_U
  EXPECT a0, 0x4444
  li a1, VA_RW
  ARM_M 2f
  la t6, hdata
  sd zero, H_CURMODE(t6)
  li t6, MSTATUS_MPP
  csrc mstatus, t6
  li t6, VA_UCODE + 16
  csrw mepc, t6
  mret
2:
  EXPECT_TRAP CAUSE_LOAD_PAGE
  EXPECT_TVAL_R a1
  li a0, VA_UCODE + 16
  EXPECT_EPC_R a0
  li a1, VA_RW                 /* store to an S page from U */
  ARM_M 2f
  la t6, hdata
  sd zero, H_CURMODE(t6)
  li t6, MSTATUS_MPP
  csrc mstatus, t6
  li t6, VA_UCODE + 32         /* sd a2, 0(a1); ecall */
  csrw mepc, t6
  mret
2:
  EXPECT_TRAP CAUSE_STORE_PAGE
  EXPECT_TVAL_R a1
  li a1, VA_SCODE              /* U fetch from an S page */
  ARM_M 2f
  la t6, hdata
  sd zero, H_CURMODE(t6)
  li t6, MSTATUS_MPP
  csrc mstatus, t6
  li t6, VA_UCODE + 48         /* jr a1 */
  csrw mepc, t6
  mret
2:
  EXPECT_TRAP CAUSE_FETCH_PAGE
  EXPECT_TVAL_R a1
  CASE 12                      /* hardware sets A on access and D on write */
  GOTO_S
  LDPTE a0, pt_l0, 6
  andi a0, a0, PTE_A | PTE_D
  EXPECT a0, 0
  li s2, VA_NOAD
  ld a0, 0(s2)
  EXPECT a0, 0x6666
  LDPTE a0, pt_l0, 6
  andi a0, a0, PTE_A | PTE_D
  EXPECT a0, PTE_A
  sd a0, 8(s2)
  LDPTE a0, pt_l0, 6
  andi a0, a0, PTE_A | PTE_D
  EXPECT a0, PTE_A | PTE_D
  li s2, VA_NOD
  sd a0, 0(s2)
  LDPTE a0, pt_l0, 14
  andi a0, a0, PTE_A | PTE_D
  EXPECT a0, PTE_A | PTE_D
  CASE 13                      /* a store to a clean page with A = D = 0 sets both */
  la a0, pt_l0
  ld a1, 48(a0)
  andi a1, a1, ~(PTE_A | PTE_D)
  sd a1, 48(a0)
  sfence.vma
  li s2, VA_NOAD
  sd a0, 16(s2)
  LDPTE a0, pt_l0, 6
  andi a0, a0, PTE_A | PTE_D
  EXPECT a0, PTE_A | PTE_D
  CASE 14                      /* a faulting access does not set A */
  la a0, pt_l0
  ld a1, 16(a0)
  andi a1, a1, ~PTE_A          /* VA_RO with A = 0 */
  sd a1, 16(a0)
  sfence.vma
  li s2, VA_RO
  ARM 2f
  sd a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_STORE_PAGE
  LDPTE a0, pt_l0, 2
  andi a0, a0, PTE_A | PTE_D
  EXPECT a0, 0
  CASE 15                      /* reserved encodings: W without R, reserved high bits */
  li s2, VA_WO
  ARM 2f
  ld a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_LOAD_PAGE
  ARM 2f
  sd a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_STORE_PAGE
  li s2, VA_RSVD
  ARM 2f
  ld a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_LOAD_PAGE
  EXPECT_TVAL_R s2
  CASE 16                      /* misaligned superpages fault */
  li s2, VA_MEGA_BAD
  ARM 2f
  ld a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_LOAD_PAGE
  EXPECT_TVAL_R s2
  li s2, VA_GIGA_BAD + 0x2000
  ARM 2f
  ld a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_LOAD_PAGE
  EXPECT_TVAL_R s2
  CASE 17                      /* non-canonical virtual addresses fault */
  li s2, 0x0000004000000000    /* bit 38 set, bits 63:39 clear */
  ARM 2f
  ld a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_LOAD_PAGE
  EXPECT_TVAL_R s2
  li s2, 0xff00000080000000    /* would be the identity map if bits 63:39 were ignored */
  ARM 2f
  sd a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_STORE_PAGE
  EXPECT_TVAL_R s2
  CASE 18                      /* sfence.vma after changing a PTE */
  li s2, VA_SWAP
  ld a0, 0(s2)
  EXPECT a0, 0xaaaa
  li a1, PAGE(12)
  srli a1, a1, 12
  slli a1, a1, 10
  ori a1, a1, PTE_RW
  la a0, pt_l0
  sd a1, 88(a0)
  sfence.vma s2, zero
  ld a0, 0(s2)
  EXPECT a0, 0xbbbb
  la a0, pt_l0                 /* invalidate it: fault after sfence.vma */
  sd zero, 88(a0)
  sfence.vma zero, zero
  ARM 2f
  ld a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_LOAD_PAGE
  li a1, PAGE(11)              /* and back */
  srli a1, a1, 12
  slli a1, a1, 10
  ori a1, a1, PTE_RW
  la a0, pt_l0
  sd a1, 88(a0)
  sfence.vma s2, zero
  ld a0, 0(s2)
  EXPECT a0, 0xaaaa
  CASE 19                      /* sfence.vma after changing permissions */
  la a0, pt_l0
  ld a1, 88(a0)
  andi a1, a1, ~PTE_W
  sd a1, 88(a0)
  sfence.vma s2
  ARM 2f
  sd a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_STORE_PAGE
  CASE 20                      /* fetch fault on the second half of a page-crossing instruction */
  li s2, VA_CROSS + 0xffc
  ARM 2f
  jalr ra, 0(s2)
2:
  EXPECT_TRAP CAUSE_FETCH_PAGE
  li a0, VA_CROSS + 0xffe
  EXPECT_EPC_R a0
  EXPECT_TVAL VA_CROSS + 0x1000
  CASE 21                      /* page faults delegated to S: scause/stval/sepc */
  GOTO_M
  li a0, (1 << CAUSE_LOAD_PAGE) | (1 << CAUSE_STORE_PAGE) | (1 << CAUSE_FETCH_PAGE)
  csrw medeleg, a0
  GOTO_S
  li s2, VA_INVALID + 0x123
  ARM 2f
1:
  lbu a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_LOAD_PAGE
  EXPECT_TMODE 1
  EXPECT_TVAL_R s2
  EXPECT_EPC 1b
  li s2, VA_RO + 0x8
  ARM 2f
  sh a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_STORE_PAGE
  EXPECT_TMODE 1
  EXPECT_TVAL_R s2
  li s2, VA_UCODE
  ARM 2f
  jalr ra, 0(s2)
2:
  EXPECT_TRAP CAUSE_FETCH_PAGE
  EXPECT_TMODE 1
  EXPECT_TVAL_R s2
  GOTO_M
  csrw medeleg, zero
  CASE 22                      /* MPRV: M-mode loads/stores translated with MPP's privilege */
  li a0, MSTATUS_MPP
  csrc mstatus, a0
  li a0, MSTATUS_MPP_S | MSTATUS_MPRV
  csrs mstatus, a0
  li s2, VA_RW
  ld a0, 0(s2)
  EXPECT a0, 0x1111
  li s2, VA_USER               /* S without SUM cannot touch U pages */
  ARM 2f
  ld a0, 0(s2)
2:
  li a0, MSTATUS_MPRV          /* the trap's mret left MPP = U with MPRV = 1: */
  csrc mstatus, a0             /* drop MPRV before the harness touches its data */
  EXPECT_TRAP CAUSE_LOAD_PAGE
  EXPECT_TMODE 3
  li a0, MSTATUS_MPRV
  csrs mstatus, a0
  li a0, MSTATUS_MPP
  csrc mstatus, a0             /* MPP = U */
  li s2, VA_USER               /* (no harness memory access while loads act as U) */
  ld a0, 0(s2)
  li a1, MSTATUS_MPRV
  csrc mstatus, a1
  EXPECT a0, 0x4444
  la a0, gdata                 /* fetches are not affected by MPRV; plain M access again */
  ld a0, 0(a0)
  EXPECT a0, 0x600d
  CASE 23                      /* code written through another virtual alias, then fence.i */
  GOTO_S
  la s2, xpage3
  li a0, 0
  jalr ra, 0(s2)               /* warm up whatever caches the old code */
  EXPECT a0, 0x11
  li a0, 0x80000000
  sub a1, s2, a0
  li a0, VA_GIGA
  add a1, a1, a0               /* alias of xpage3 */
  li a0, 0x05500513            /* addi a0, zero, 0x55 */
  sw a0, 0(a1)
  fence.i
  jalr ra, 0(s2)
  EXPECT a0, 0x55
  CASE 24                      /* re-pointing a code page: sfence.vma, new code runs */
  li s2, VA_SCODE
  jalr ra, 0(s2)
  EXPECT a0, 0x77
  la a0, xpage3
  srli a0, a0, 12
  slli a0, a0, 10
  ori a0, a0, PTE_V | PTE_X | PTE_A
  la a1, pt_l0
  sd a0, 64(a1)
  sfence.vma s2
  jalr ra, 0(s2)
  EXPECT a0, 0x55
  CASE 25                      /* misaligned load crossing into an unmapped page */
  li s2, VA_NOD + 0xffc        /* VA 0xf000 is not mapped */
  ARM 2f
  ld a0, 0(s2)
2:
  LOAD_TCAUSE a0
  DISARM
  li a1, CAUSE_MISALIGNED_LOAD
  beq a0, a1, 3f
  EXPECT a0, CAUSE_LOAD_PAGE   /* handled in hardware: the second page faults */
  LOAD_TTVAL a0
  beq a0, s2, 3f               /* tval: the access or its faulting portion */
  EXPECT a0, VA_NOD + 0x1000
3:
  GOTO_M
  csrw satp, zero
  PASS

  .option push
  .option norvc
  .balign 4096
xpage:
  li a0, 0x77                  /* +0: S fetch test */
  ret
  .balign 16
  ld a0, 0(a1)                 /* +16: U load */
  ecall
  .balign 16
  sd a2, 0(a1)                 /* +32: U store */
  ecall
  .balign 16
  jr a1                        /* +48: U fetch */
  .balign 4096
xpage3:
  li a0, 0x11
  ret
  .balign 4096
xpage2:
  .fill 0xffc / 4, 4, 0x00000013
  .option pop
  c.nop                        /* VA_CROSS + 0xffc */
  .option push
  .option norvc
  addi a0, a0, 1               /* VA_CROSS + 0xffe: second half in an unmapped page */
  ret
  .option pop

  .data
  .align 3
gdata: .dword 0x600d

  .bss
  .align 12
pt_root: .skip 4096
pt_l1: .skip 4096
pt_l0: .skip 4096
