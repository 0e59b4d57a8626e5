#!/bin/sh
# Assembles every tests/asm/*.S into OUTDIR/<name>.elf (bare-metal RV64GC, see link.ld).
# Usage: build.sh OUTDIR [extra gcc flags, e.g. -DQEMU]
set -eu
if [ $# -lt 1 ]; then echo "usage: $0 OUTDIR [gcc flags...]" >&2; exit 2; fi
OUT=$1; shift
HERE=$(cd "$(dirname "$0")" && pwd)
CC=${RISCV_CC:-riscv64-linux-gnu-gcc}
mkdir -p "$OUT"
for src in "$HERE"/*.S; do
  name=$(basename "$src" .S)
  "$CC" -march=rv64gc -mabi=lp64d -mcmodel=medany -nostdlib -nostartfiles -static \
    -fno-pie -no-pie -Wl,--build-id=none -Wl,--no-warn-rwx-segments \
    -I"$HERE" -T"$HERE/link.ld" "$@" "$src" -o "$OUT/$name.elf"
done
