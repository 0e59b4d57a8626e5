/* Helpers for the paging tests (own code). */
#define PTE_V 0x01
#define PTE_R 0x02
#define PTE_W 0x04
#define PTE_X 0x08
#define PTE_U 0x10
#define PTE_G 0x20
#define PTE_A 0x40
#define PTE_D 0x80
#define PTE_RW (PTE_V | PTE_R | PTE_W | PTE_A | PTE_D)
#define PTE_RWX (PTE_RW | PTE_X)

#define SATP_SV39 (8 << 60)
#define SATP_SV48 (9 << 60)

/* scratch physical pages used as translation targets (the image is far below) */
#define SCRATCH_PA 0x80300000
#define PAGE(n) (SCRATCH_PA + (n) * 0x1000)

/* table[idx] = PTE(pa, flags); pa given as a register.  Clobbers t0, t1. */
.macro SETPTE_R table, idx, pareg, flags
  srli t0, \pareg, 12
  slli t0, t0, 10
  li t1, \flags
  or t0, t0, t1
  la t1, \table + (\idx * 8)
  sd t0, 0(t1)
.endm
/* same with the target given as a constant physical address. Clobbers t0-t2. */
.macro SETPTE table, idx, pa, flags
  li t2, \pa
  SETPTE_R \table, \idx, t2, \flags
.endm
/* same with the target given as a symbol (its physical address). Clobbers t0-t2. */
.macro SETPTE_SYM table, idx, sym, flags
  la t2, \sym
  SETPTE_R \table, \idx, t2, \flags
.endm
/* table[idx] = pointer to next-level table \next */
.macro SETPTR table, idx, next
  la t2, \next
  SETPTE_R \table, \idx, t2, PTE_V
.endm
/* load the PTE table[idx] into \reg */
.macro LDPTE reg, table, idx
  la \reg, \table + (\idx * 8)
  ld \reg, 0(\reg)
.endm

/* zero \n pages starting at the address in a0 (clobbers a0, a1) */
.macro ZERO_PAGES n
  li a1, \n * 4096
  add a1, a1, a0
.Lz\@:
  sd zero, 0(a0)
  addi a0, a0, 8
  bltu a0, a1, .Lz\@
.endm

/* fill the 8-byte word at physical address \pa with \val (M-mode; clobbers t0, t1) */
.macro POKE pa, val
  li t0, \pa
  li t1, \val
  sd t1, 0(t0)
.endm
