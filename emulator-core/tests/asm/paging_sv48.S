/* Sv48 paging: four-level walks, 4 KiB pages, 2 MiB / 1 GiB / 512 GiB superpages, the upper
   canonical half, non-canonical addresses (bits 63:48 must copy bit 47), page faults with
   stval, hardware A/D updates on leaf and superpage PTEs, a non-leaf PTE at the last level,
   misaligned superpages, sfence.vma after re-pointing a superpage, delegation to S. */
#include "harness.h"
#include "paging.h"

#define VA_RW 0x1000
#define VA_NOAD 0x2000
#define VA_INVALID 0x3000
#define VA_BADLEAF 0x4000             /* l0[4] is a pointer: no leaf at level 0 */
#define VA_MEGA 0x200000              /* l1[1] -> MEGA_PA */
#define VA_GIGA 0x40000000            /* l2[1] -> RAM alias, A = D = 0 */
#define VA_TERA 0x8000000000          /* root[1]: 512 GiB page at PA 0 */
#define VA_TERA_BAD 0x10000000000     /* root[2]: misaligned 512 GiB page */
#define VA_HIGH 0xffffff8000000000    /* root[511] -> l2 (so +0x80000000 is RAM) */
#define MEGA_PA 0x80400000
#define MEGA2_PA 0x80600000

setup:
  la a0, pt_root
  ZERO_PAGES 4
  li a0, SCRATCH_PA
  ZERO_PAGES 4
  SETPTR pt_root, 0, pt_l2
  SETPTE pt_root, 1, 0, PTE_RWX
  SETPTE pt_root, 2, 0x80000000, PTE_RWX
  SETPTR pt_root, 511, pt_l2
  SETPTR pt_l2, 0, pt_l1
  SETPTE pt_l2, 1, 0x80000000, PTE_V | PTE_R | PTE_W
  SETPTE pt_l2, 2, 0x80000000, PTE_RWX | PTE_G
  SETPTR pt_l1, 0, pt_l0
  SETPTE pt_l1, 1, MEGA_PA, PTE_RW
  SETPTE pt_l0, 1, PAGE(1), PTE_RW
  SETPTE pt_l0, 2, PAGE(2), PTE_V | PTE_R | PTE_W
  SETPTR pt_l0, 4, pt_l1
  POKE PAGE(1), 0x1111
  POKE PAGE(2), 0x2222
  POKE MEGA_PA + 0x5558, 0x5558
  POKE MEGA2_PA + 0x5558, 0x7558
  la a0, pt_root
  srli a0, a0, 12
  li a1, SATP_SV48
  or a0, a0, a1
  csrw satp, a0
  sfence.vma
  ret

test_main:
  call setup
  CASE 1                       /* Sv48 is supported */
  csrr a0, satp
  srli a0, a0, 60
  EXPECT a0, 9
  CASE 2                       /* 4 KiB page through four levels */
  GOTO_S
  li s2, VA_RW
  ld a0, 0(s2)
  EXPECT a0, 0x1111
  li a1, 0x1234
  sd a1, 8(s2)
  ld a0, 8(s2)
  EXPECT a0, 0x1234
  CASE 3                       /* superpages: 2 MiB, 1 GiB, 512 GiB */
  li s2, VA_MEGA + 0x5558
  ld a0, 0(s2)
  EXPECT a0, 0x5558
  la s3, gdata
  li a0, 0x80000000
  sub s4, s3, a0               /* offset of gdata in RAM */
  li a0, VA_GIGA
  add s2, s4, a0
  ld a0, 0(s2)
  EXPECT a0, 0x600d
  li a0, VA_TERA
  add s2, s3, a0               /* VA_TERA + PA */
  ld a0, 0(s2)
  EXPECT a0, 0x600d
  CASE 4                       /* upper canonical half */
  li a0, VA_HIGH
  add s2, s3, a0               /* 0xffffff80_8000xxxx -> l2[2] -> RAM */
  ld a0, 0(s2)
  EXPECT a0, 0x600d
  CASE 5                       /* non-canonical addresses */
  li s2, 0x0000800000000000
  ARM 2f
  ld a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_LOAD_PAGE
  EXPECT_TVAL_R s2
  li a0, 0x0001000000000000    /* bit 48 set: would alias gdata if ignored */
  add s2, s3, a0
  ARM 2f
  sd a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_STORE_PAGE
  EXPECT_TVAL_R s2
  li s2, 0xffff7fff80000000    /* bit 47 clear but 63:48 set */
  ARM 2f
  jalr ra, 0(s2)
2:
  EXPECT_TRAP CAUSE_FETCH_PAGE
  EXPECT_TVAL_R s2
  CASE 6                       /* Sv48-only range: valid address, unmapped */
  li s2, 0x0000004000000000
  ARM 2f
  ld a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_LOAD_PAGE
  EXPECT_TVAL_R s2
  CASE 7                       /* invalid leaf, and a pointer where a leaf must be */
  li s2, VA_INVALID + 0x18
  ARM 2f
1:
  lw a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_LOAD_PAGE
  EXPECT_TVAL_R s2
  EXPECT_EPC 1b
  li s2, VA_BADLEAF
  ARM 2f
  ld a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_LOAD_PAGE
  EXPECT_TVAL_R s2
  CASE 8                       /* misaligned 512 GiB page */
  li s2, VA_TERA_BAD + 0x80000000
  ARM 2f
  ld a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_LOAD_PAGE
  EXPECT_TVAL_R s2
  CASE 9                       /* A/D on a 4 KiB leaf */
  LDPTE a0, pt_l0, 2
  andi a0, a0, PTE_A | PTE_D
  EXPECT a0, 0
  li s2, VA_NOAD
  ld a0, 0(s2)
  EXPECT a0, 0x2222
  LDPTE a0, pt_l0, 2
  andi a0, a0, PTE_A | PTE_D
  EXPECT a0, PTE_A
  sd a0, 8(s2)
  LDPTE a0, pt_l0, 2
  andi a0, a0, PTE_A | PTE_D
  EXPECT a0, PTE_A | PTE_D
  CASE 10                      /* A/D on a 1 GiB leaf */
  li a0, VA_GIGA
  add s2, s4, a0
  ld a0, 0(s2)
  LDPTE a0, pt_l2, 1
  andi a0, a0, PTE_A | PTE_D
  EXPECT a0, PTE_A
  sd a0, 8(s2)
  LDPTE a0, pt_l2, 1
  andi a0, a0, PTE_A | PTE_D
  EXPECT a0, PTE_A | PTE_D
  CASE 11                      /* re-point a 2 MiB page, sfence.vma by address */
  li s2, VA_MEGA + 0x5558
  ld a0, 0(s2)
  EXPECT a0, 0x5558
  li a1, MEGA2_PA
  srli a1, a1, 12
  slli a1, a1, 10
  ori a1, a1, PTE_RW
  la a0, pt_l1
  sd a1, 8(a0)
  li a0, VA_MEGA + 0x1000      /* any address inside the superpage */
  sfence.vma a0
  ld a0, 0(s2)
  EXPECT a0, 0x7558
  CASE 12                      /* page faults delegated to S */
  GOTO_M
  li a0, (1 << CAUSE_LOAD_PAGE) | (1 << CAUSE_STORE_PAGE) | (1 << CAUSE_FETCH_PAGE)
  csrw medeleg, a0
  GOTO_S
  li s2, VA_INVALID
  ARM 2f
  sd a0, 0(s2)
2:
  EXPECT_TRAP CAUSE_STORE_PAGE
  EXPECT_TMODE 1
  EXPECT_TVAL_R s2
  li s2, 0x0000800000001000
  ARM 2f
  jalr ra, 0(s2)
2:
  EXPECT_TRAP CAUSE_FETCH_PAGE
  EXPECT_TMODE 1
  EXPECT_TVAL_R s2
  GOTO_M
  csrw medeleg, zero
  csrw satp, zero
  PASS

  .data
  .align 3
gdata: .dword 0x600d

  .bss
  .align 12
pt_root: .skip 4096
pt_l2: .skip 4096
pt_l1: .skip 4096
pt_l0: .skip 4096
