#!/bin/bash
# guest/debian/images.sh - what `npm run images:debian` runs: installs the host
# packages (SKIP_APT=1 skips that), builds the Debian disk in a work directory
# (guest/debian/build.sh; DEBIAN_BUILD_DIR, default
# ${TMPDIR:-/tmp}/tabvisor-debian-build) and publishes it as chunks in
# public/images/debian/ (guest/debian/publish.ts). Root on a Debian machine.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${DEBIAN_BUILD_DIR:-${TMPDIR:-/tmp}/tabvisor-debian-build}
if [ "${SKIP_APT:-0}" != 1 ]; then
  [ "$(id -u)" = 0 ] || { echo "images:debian: run as root (apt-get, and the tree keeps the packages' owners)" >&2; exit 1; }
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    proot qemu-user-static e2fsprogs debian-archive-keyring apt dpkg tar gcc libc6-dev gcc-riscv64-linux-gnu libc6-dev-riscv64-cross
fi
bash "$ROOT/guest/debian/build.sh" "$WORK"
cd "$ROOT" && node --import tsx guest/debian/publish.ts "$WORK" "$ROOT/public/images/debian"
