#!/bin/sh
# Builds the bare-metal CPU benchmarks into OUTDIR/<name>.elf.
# Usage: build.sh OUTDIR [extra gcc flags]
set -eu
if [ $# -lt 1 ]; then echo "usage: $0 OUTDIR [gcc flags...]" >&2; exit 2; fi
OUT=$1; shift
HERE=$(cd "$(dirname "$0")" && pwd)
CC=${RISCV_CC:-riscv64-linux-gnu-gcc}
mkdir -p "$OUT"
# -ffp-contract=off: no implicit fused multiply-add, so the FP results are those of plain
# IEEE double arithmetic (fpkernel uses __builtin_fma where it wants fmadd.d).
CFLAGS="-O2 -march=rv64gc -mabi=lp64d -mcmodel=medany -ffreestanding -fno-builtin
  -fno-tree-loop-distribute-patterns -fno-math-errno -ffp-contract=off -fno-pie
  -fno-stack-protector -fno-asynchronous-unwind-tables -Wall"
LDFLAGS="-nostdlib -nostartfiles -static -no-pie -Wl,--build-id=none -Wl,--no-warn-rwx-segments -T$HERE/link.ld"
for prog in dhry memwalk fpkernel; do
  # shellcheck disable=SC2086
  "$CC" $CFLAGS "$@" $LDFLAGS -I"$HERE" "$HERE/crt0.S" "$HERE/rt.c" "$HERE/$prog.c" -o "$OUT/$prog.elf" -lgcc
done
