/* no-statx PROGRAM ARGS... - runs PROGRAM with the statx, faccessat2 and
 * openat2 system calls failing with ENOSYS (a seccomp filter, inherited by
 * every child).
 *
 * Why: Debian 12's proot (5.1) predates these calls and does not translate
 * their paths, so a riscv64 program run by qemu-user under proot that makes
 * them (coreutils stat and ls, access() in trixie's glibc, PostgreSQL's
 * initdb) looks up the host's file instead of the tree's. qemu-user and the
 * host's glibc fall back to fstatat and faccessat, which proot translates,
 * when the host says ENOSYS. */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: no-statx PROGRAM [ARGS...]\n"); return 2; }
  struct sock_filter f[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_statx, 0, 4),
    /* statx(fd, "", AT_EMPTY_PATH) is about an open file, no path to translate:
     * let it through (systemd relies on it; its fallback through proot breaks) */
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
    BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x1000 /* AT_EMPTY_PATH */, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 439 /* faccessat2 */, 1, 0),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 437 /* openat2 */, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = { sizeof f / sizeof f[0], f };
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) { perror("no-statx: seccomp"); return 1; }
  execvp(argv[1], argv + 1);
  perror("no-statx: exec");
  return 127;
}
