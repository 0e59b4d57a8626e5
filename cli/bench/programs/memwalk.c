/* memwalk: memory-system benchmark.  M-mode builds Sv39 page tables that identity-map the
   program and a 24 MiB arena with 4 KiB pages (so every arena access needs the TLB), then
   runs the walk in S-mode: it links the arena's 64-byte nodes into one random cycle
   (Sattolo's algorithm), chases the pointers around the cycle many times and walks the
   arena with page-crossing strides.  Every walk visits each node a known number of times,
   so the sums have closed forms; a mismatch returns a non-zero code. */
#include "bench.h"

#define RAM_BASE 0x80000000UL
#define ARENA_BYTES (24UL << 20)
#define NODES (ARENA_BYTES / sizeof(node_t))
#define CHASE_CYCLES 80
#define STRIDE_ROUNDS 4
#define MAX_L0 32

typedef struct node {
  struct node *next;
  uint64_t payload;
  uint64_t pad[6];
} node_t;

static node_t arena[ARENA_BYTES / 64] __attribute__((section(".bigbss"), aligned(4096)));
static uint64_t pt_root[512] __attribute__((aligned(4096)));
static uint64_t pt_l1[512] __attribute__((aligned(4096)));
static uint64_t pt_l0[MAX_L0][512] __attribute__((aligned(4096)));
static volatile uint64_t marker = 0x5a5aa5a5f00dcafeULL;
extern char _end[];

#define PTE_V 1
#define PTE_RWXAD (2 | 4 | 8 | 64 | 128)
#define PTE(pa, flags) ((((uint64_t)(pa)) >> 12) << 10 | (flags))

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static inline uint64_t rng(void) {
  uint64_t x = rng_state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  rng_state = x;
  return x * 0x2545f4914f6cdd1dULL;
}
/* uniform-ish value in [0, n) without a division */
static inline uint64_t below(uint64_t n) { return (uint64_t)(((unsigned __int128)rng() * n) >> 64); }

static int setup_paging(void) {
  uint64_t pages = ((uint64_t)(uintptr_t)_end - RAM_BASE + 4095) / 4096;
  if (pages > MAX_L0 * 512UL) return 0;
  for (uint64_t p = 0; p < pages; p++) {
    pt_l0[p / 512][p % 512] = PTE(RAM_BASE + p * 4096, PTE_V | PTE_RWXAD);
  }
  for (uint64_t t = 0; t < (pages + 511) / 512; t++) pt_l1[t] = PTE((uintptr_t)pt_l0[t], PTE_V);
  pt_root[2] = PTE((uintptr_t)pt_l1, PTE_V);                  /* VA 0x80000000: 4 KiB pages */
  pt_root[1] = PTE(RAM_BASE, PTE_V | PTE_RWXAD);               /* VA 0x40000000: RAM alias */
  CSR_WRITE(satp, (8ULL << 60) | ((uintptr_t)pt_root >> 12));
  __asm__ volatile("sfence.vma" ::: "memory");
  return 1;
}

static uint64_t expected_sum(uint64_t add) {   /* sum over all nodes of (3i + 1 + add) */
  return 3 * (NODES * (NODES - 1) / 2) + NODES * (1 + add);
}

/* runs in S-mode; returns 0 on success */
static uint64_t walk(uint64_t arg) {
  (void)arg;
  /* paging really is on: the alias at 0x40000000 reads the marker */
  volatile uint64_t *alias = (volatile uint64_t *)((uintptr_t)&marker - RAM_BASE + 0x40000000UL);
  if (*alias != marker) return 10;

  for (uint64_t i = 0; i < NODES; i++) {
    arena[i].next = &arena[i];
    arena[i].payload = 3 * i + 1;
  }
  for (uint64_t i = NODES - 1; i > 0; i--) {   /* Sattolo: one cycle through all nodes */
    uint64_t j = below(i);
    node_t *t = arena[i].next;
    arena[i].next = arena[j].next;
    arena[j].next = t;
  }

  /* pointer chase: CHASE_CYCLES times around the cycle */
  node_t *p = &arena[0];
  uint64_t sum = 0;
  for (uint64_t s = 0; s < (uint64_t)CHASE_CYCLES * NODES; s++) {
    sum += p->payload;
    p = p->next;
  }
  if (p != &arena[0]) return 11;
  if (sum != CHASE_CYCLES * expected_sum(0)) return 12;

  /* strided walks: strides coprime with NODES visit every node once per pass */
  static const uint64_t strides[3] = {65, 131, 1025};   /* nodes: 4160, 8384, 65600 bytes */
  uint64_t add = 0;
  for (int round = 0; round < STRIDE_ROUNDS; round++) {
    for (int k = 0; k < 3; k++) {
      uint64_t idx = (uint64_t)round * 7, st = strides[k];
      if (k == 0) {
        for (uint64_t n = 0; n < NODES; n++) {     /* write pass */
          arena[idx].payload += 2;
          idx += st;
          if (idx >= NODES) idx -= NODES;
        }
        add += 2;
      } else {
        uint64_t s2 = 0;
        for (uint64_t n = 0; n < NODES; n++) {     /* read pass */
          s2 += arena[idx].payload;
          idx += st;
          if (idx >= NODES) idx -= NODES;
        }
        if (s2 != expected_sum(add)) return 13;
      }
    }
  }
  return 0;
}

int main(void) {
  if (!setup_paging()) return 2;
  uint64_t r = run_in_smode(walk, 0);
  CSR_WRITE(satp, 0);
  __asm__ volatile("sfence.vma" ::: "memory");
  return (int)r;
}
