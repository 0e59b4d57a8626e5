/* dhry: a Dhrystone-like integer mix written for Tabvisor (not the original Dhrystone):
   string copies and compares, record copies through pointers, small procedures with
   switch statements, table updates and integer arithmetic (incl. division), folded into a
   64-bit checksum that is compared with the known result of DHRY_ITERATIONS iterations.
   Returns 0 on success, a small non-zero code on a failed check. */
#include "bench.h"

#ifndef DHRY_ITERATIONS
#define DHRY_ITERATIONS 360000
#endif
/* checksum after DHRY_ITERATIONS iterations (computed with a host build: gcc -DHOST) */
#ifndef DHRY_EXPECTED
#define DHRY_EXPECTED 0xd46a1186b15f116aULL
#endif

typedef enum { K_ALPHA, K_BETA, K_GAMMA, K_DELTA, K_EPSILON } kind_t;

typedef struct record {
  struct record *link;
  kind_t kind;
  uint32_t number;
  int32_t value;
  uint32_t flags;
  char text[40];
} record_t;

static record_t rec_a, rec_b, rec_c;
static char str_first[40], str_work[40];
static int32_t table1[64];
static int32_t table2[64][64];
static uint32_t g_counter;
static char g_letter;
static int g_bool;

static const char *const second_strings[4] = {
  "TABVISOR INTEGER MIX, SECOND STRING",
  "TABVISOR INTEGER MIX, 2ND STRING...",
  "TABVISOR INTEGER MIX, THIRD STRING!",
  "TABVISOR INTEGER MIX, FIRST STRING",
};

__attribute__((noinline)) static void str_copy(char *d, const char *s) {
  while ((*d++ = *s++) != 0) {
  }
}

__attribute__((noinline)) static int str_cmp(const char *a, const char *b) {
  while (*a != 0 && *a == *b) {
    a++;
    b++;
  }
  return (int)(unsigned char)*a - (int)(unsigned char)*b;
}

__attribute__((noinline)) static uint32_t str_len(const char *s) {
  uint32_t n = 0;
  while (s[n] != 0) n++;
  return n;
}

__attribute__((noinline)) static kind_t classify(uint32_t n) {
  switch (n % 7) {
    case 0: return K_ALPHA;
    case 1:
    case 2: return K_BETA;
    case 3: return K_GAMMA;
    case 4: return (n & 8) ? K_DELTA : K_GAMMA;
    case 5: return K_DELTA;
    default: return K_EPSILON;
  }
}

__attribute__((noinline)) static int kind_matches(kind_t k, char c) {
  switch (k) {
    case K_ALPHA: return c == 'A';
    case K_BETA: return c == 'B' || c == 'C';
    case K_GAMMA: return c >= 'C' && c <= 'E';
    case K_DELTA: return c != 'A';
    default: return 0;
  }
}

__attribute__((noinline)) static int32_t mix3(int32_t a, int32_t b, int32_t c) {
  int32_t t = a * 7 + b;
  return t / (c | 1) - (a % 13) + (t >> 3);
}

__attribute__((noinline)) static void fill_tables(int32_t *t1, int32_t (*t2)[64], int idx, int32_t v) {
  t1[idx] = v;
  t1[idx + 1] = t1[idx] ^ idx;
  t1[idx + 30] = idx;
  for (int k = idx; k <= idx + 1; k++) t2[idx][k] = idx + k;
  t2[idx][idx - 1] += 1;
  t2[idx + 20][idx] = t1[idx];
  g_counter += (uint32_t)t2[idx][idx - 1];
}

__attribute__((noinline)) static void update_record(record_t *r, uint32_t i) {
  record_t *next = r->link;
  *next = *r;                       /* structure copy */
  next->number = r->number + (i & 7);
  next->kind = classify(next->number);
  next->value = mix3((int32_t)(i & 0xffff), (int32_t)next->number & 0xff, (int32_t)(i % 11));
  if (next->kind == K_DELTA) {
    next->flags |= 1u << (i & 15);
    str_copy(next->text, "DELTA RECORD");
  } else {
    next->flags ^= i;
    next->text[0] = (char)('A' + next->kind);
  }
  r->number = next->number ^ (uint32_t)next->value;
  r->link = next->link;
  next->link = r;
}

__attribute__((noinline)) static char next_letter(char c, uint32_t i) {
  if (c >= 'E') return 'A';
  return (char)(c + 1 + (i & 1) * ((c & 1) == 0));
}

static uint64_t fold(uint64_t h, uint64_t v) {
  h ^= v;
  h *= 0x100000001b3ULL;
  return h;
}

/* returns the checksum, or 0 if an invariant failed (then *err says which) */
static uint64_t run(uint32_t iterations, int *err) {
  uint64_t h = 0xcbf29ce484222325ULL;
  rec_a.link = &rec_b;
  rec_b.link = &rec_c;
  rec_c.link = &rec_a;
  rec_a.number = 40;
  str_copy(rec_a.text, "TABVISOR RECORD A");
  str_copy(str_first, "TABVISOR INTEGER MIX, FIRST STRING");
  g_letter = 'A';
  for (uint32_t i = 1; i <= iterations; i++) {
    const char *src = second_strings[i & 3];
    str_copy(str_work, src);
    if (str_len(str_work) != str_len(src)) { *err = 2; return 0; }
    int c = str_cmp(str_first, str_work);
    if ((i & 3) == 3 && c != 0) { *err = 3; return 0; }
    if ((i & 3) != 3 && c == 0) { *err = 4; return 0; }
    g_bool = c < 0;

    int32_t a = (int32_t)(i & 0x3ff), b = 3, x;
    x = mix3(a, b, (int32_t)(i % 17));
    while (a < b * 40) {
      a += b * 5 - 1;
      x ^= a;
    }
    x = x * (b + 1) - (a / 7);

    fill_tables(table1, table2, 8 + (int)(i & 7), x);
    update_record(&rec_a, i);

    int matches = 0;
    for (char ch = 'A'; ch <= g_letter; ch++) matches += kind_matches(rec_a.link->kind, ch);
    g_letter = next_letter(g_letter, i);

    h = fold(h, (uint32_t)x);
    h = fold(h, rec_a.number + ((uint64_t)(uint32_t)c << 32));
    h = fold(h, (uint64_t)matches + (uint64_t)g_bool * 2 + (uint64_t)g_counter * 4);
  }
  h = fold(h, rec_b.flags);
  h = fold(h, rec_c.flags);
  h = fold(h, (uint32_t)table2[9][8] + (uint32_t)table1[37]);
  return h;
}

#ifdef HOST
#include <stdio.h>
int main(void) {
  int err = 0;
  uint64_t h = run(DHRY_ITERATIONS, &err);
  printf("dhry iterations=%u err=%d checksum=0x%016llxULL\n", DHRY_ITERATIONS, err, (unsigned long long)h);
  return err;
}
#else
int main(void) {
  int err = 0;
  uint64_t h = run(DHRY_ITERATIONS, &err);
  if (err != 0) return err;
  if (h != DHRY_EXPECTED) return 1;
  return 0;
}
#endif
