/* Shared declarations for the bare-metal CPU benchmarks. */
#ifndef BENCH_H
#define BENCH_H
#include <stdint.h>
#include <stddef.h>

#ifndef HOST
/* crt0.S */
void exit(int code) __attribute__((noreturn));
uint64_t run_in_smode(uint64_t (*fn)(uint64_t), uint64_t arg);
#endif

void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);

#define CSR_READ(name) ({ uint64_t v_; __asm__ volatile("csrr %0, " #name : "=r"(v_)); v_; })
#define CSR_WRITE(name, v) __asm__ volatile("csrw " #name ", %0" :: "r"((uint64_t)(v)) : "memory")

#endif
