#!/bin/bash
# guest/images.sh - what `npm run images` runs: rebuild the guest images and
# put them in public/images/ (Image, initramfs.cpio.gz, manifest.json).
#
# Env: SKIP_APT=1        don't apt-get install the host packages
#      GUEST_BUILD_DIR   work dir (default ${TMPDIR:-/tmp}/tabvisor-guest-build;
#                        kept between runs so rebuilds are incremental)
#      INITRAMFS_ONLY=1  keep public/images/Image (and its manifest entries),
#                        rebuild only initramfs.cpio.gz: no kernel build
#      JOBS, BUSYBOX_VERSION: passed to guest/build.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${GUEST_BUILD_DIR:-${TMPDIR:-/tmp}/tabvisor-guest-build}
DEST="$ROOT/public/images"
PACKAGES=(gcc-riscv64-linux-gnu libc6-dev-riscv64-cross linux-source-6.1 gcc libc6-dev make bc flex bison libssl-dev
          libelf-dev xz-utils gzip qemu-user debian-archive-keyring)
FILES=(Image initramfs.cpio.gz manifest.json)
if [ "${INITRAMFS_ONLY:-0}" = 1 ]; then
  # gen_init_cpio.c comes from linux-source; qemu-user runs busybox for its applet list.
  # The agent is cross-compiled (guest/agent).
  PACKAGES=(gcc-riscv64-linux-gnu libc6-dev-riscv64-cross linux-source-6.1 gcc libc6-dev xz-utils gzip qemu-user debian-archive-keyring)
  FILES=(initramfs.cpio.gz manifest.json)   # build.sh took Image from public/images and checked it
  export INITRAMFS_ONLY KERNEL_DIR="$DEST"
fi

if [ "${SKIP_APT:-0}" != 1 ]; then
  SUDO=
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${PACKAGES[@]}"
fi

bash "$ROOT/guest/build.sh" "$WORK"

mkdir -p "$DEST"
for f in "${FILES[@]}"; do
  cp -f "$WORK/$f" "$DEST/$f.tmp"
  chmod 644 "$DEST/$f.tmp"
  mv -f "$DEST/$f.tmp" "$DEST/$f"
done
echo "images.sh: updated $DEST:"
ls -l "$DEST"

# The template new VMs start from (a snapshot of this image waiting for its identity): it must match the images.
(cd "$ROOT" && npm run -s template)
