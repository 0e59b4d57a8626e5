#!/bin/bash
# guest/build.sh [OUT_DIR] - build the Tabvisor guest: a RISC-V 64 Linux 6.1
# kernel Image and a busybox initramfs, from Debian packages only.
#
#   kernel:   Debian bookworm's linux-source-6.1, cross-built with
#             gcc-riscv64-linux-gnu, config guest/kernel.defconfig (no modules)
#   userland: busybox-static from Debian trixie riscv64, fetched through a
#             private apt configuration (the host's apt setup is untouched),
#             plus the files under guest/rootfs/
#
# Output in OUT_DIR (default ${TMPDIR:-/tmp}/tabvisor-guest-build):
#   Image, initramfs.cpio.gz, manifest.json (+ kernel.config, initramfs.list)
# The work files (kernel tree, objects, apt cache) stay there too, so a rebuild
# is incremental. Byte-reproducible for the same package versions.
#
# Env: JOBS=N            parallel make jobs (default: nproc)
#      BUSYBOX_VERSION=V pin of busybox-static (default below; empty = newest)
# Host packages (guest/images.sh installs them): see NEEDED_PACKAGES below.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT_ARG=${1:-${TMPDIR:-/tmp}/tabvisor-guest-build}
mkdir -p "$OUT_ARG"
OUT=$(cd "$OUT_ARG" && pwd)
JOBS=${JOBS:-$(nproc)}
BUSYBOX_VERSION=${BUSYBOX_VERSION-1:1.37.0-6+b9}
NEEDED_PACKAGES="gcc-riscv64-linux-gnu linux-source-6.1 gcc libc6-dev make bc flex bison libssl-dev libelf-dev xz-utils gzip qemu-user debian-archive-keyring"

export LC_ALL=C TZ=UTC
# Fixed build identity, so the Image is byte-reproducible (used by the banner).
export KBUILD_BUILD_TIMESTAMP="2025-01-01 00:00:00 UTC"
export KBUILD_BUILD_USER=tabvisor KBUILD_BUILD_HOST=tabvisor-build KBUILD_BUILD_VERSION=1

log() { echo "== build.sh: $*" >&2; }
die() { echo "build.sh: error: $*" >&2; exit 1; }

# --- 0. host tools -------------------------------------------------------------
missing=()
for t in riscv64-linux-gnu-gcc gcc make bc flex bison xz gzip sha256sum apt-get dpkg-deb dpkg-query qemu-riscv64; do
  command -v "$t" >/dev/null || missing+=("$t")
done
[ -f /usr/src/linux-source-6.1.tar.xz ] || missing+=(/usr/src/linux-source-6.1.tar.xz)
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring.gpg)
if [ ${#missing[@]} -gt 0 ]; then
  die "missing: ${missing[*]}
  install: apt-get install -y --no-install-recommends $NEEDED_PACKAGES
  (or run guest/images.sh, which does this)"
fi
pkgver() { dpkg-query -W -f='${Version}' "$1"; }
LINUX_SOURCE_VERSION=$(pkgver linux-source-6.1)
GCC_RISCV_VERSION=$(pkgver gcc-riscv64-linux-gnu)

# --- 1. busybox-static (riscv64) from trixie via a private apt config ---------
A="$OUT/trixie-apt"
mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$A/debs"
echo "deb [arch=riscv64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" > "$A/sources.list"
cat > "$A/apt.conf" <<CONF
Dir::Etc::SourceList "$A/sources.list";
Dir::Etc::SourceParts "/dev/null";
Dir::State::Lists "$A/lists";
Dir::State::status "/dev/null";
Dir::Cache "$A/cache";
APT::Architecture "riscv64";
APT::Architectures "riscv64";
APT::Sandbox::User "root";
CONF
deb=
for f in "$A"/debs/busybox-static_*_riscv64.deb; do
  [ -f "$f" ] || continue
  if [ -n "$BUSYBOX_VERSION" ] && [ "$(dpkg-deb -f "$f" Version)" = "$BUSYBOX_VERSION" ]; then deb=$f; fi
done
if [ -z "$deb" ]; then
  log "fetching busybox-static${BUSYBOX_VERSION:+ $BUSYBOX_VERSION} (trixie, riscv64)"
  APT_CONFIG="$A/apt.conf" apt-get update -q
  rm -f "$A"/debs/busybox-static_*.deb
  (cd "$A/debs" && APT_CONFIG="$A/apt.conf" apt-get download "busybox-static${BUSYBOX_VERSION:+=$BUSYBOX_VERSION}") ||
    die "could not download busybox-static${BUSYBOX_VERSION:+=$BUSYBOX_VERSION}; BUSYBOX_VERSION= (empty) takes the newest"
  deb=$(ls "$A"/debs/busybox-static_*_riscv64.deb)
fi
BUSYBOX_DEB_VERSION=$(dpkg-deb -f "$deb" Version)
rm -rf "$OUT/busybox-root"
dpkg-deb -x "$deb" "$OUT/busybox-root"
BB="$OUT/busybox-root/usr/bin/busybox"
log "busybox-static $BUSYBOX_DEB_VERSION"

# --- 2. kernel -------------------------------------------------------------------
SRC="$OUT/linux-source-6.1"
if [ "$(cat "$OUT/linux-source.version" 2>/dev/null)" != "$LINUX_SOURCE_VERSION" ] || [ ! -f "$SRC/Makefile" ]; then
  log "unpacking linux-source-6.1 $LINUX_SOURCE_VERSION"
  rm -rf "$SRC" "$OUT/kbuild"
  tar -C "$OUT" -xf /usr/src/linux-source-6.1.tar.xz
  echo "$LINUX_SOURCE_VERSION" > "$OUT/linux-source.version"
fi
KMAKE=(make -s -C "$SRC" O="$OUT/kbuild" ARCH=riscv CROSS_COMPILE=riscv64-linux-gnu-)
mkdir -p "$OUT/kbuild"
cp "$HERE/kernel.defconfig" "$OUT/kbuild/.config"
"${KMAKE[@]}" olddefconfig
# The defconfig must be canonical: anything Kconfig dropped or changed shows here.
"${KMAKE[@]}" savedefconfig
if ! diff -u <(awk '!/^#/ || /^# CONFIG_[A-Za-z0-9_]+ is not set$/' "$HERE/kernel.defconfig") "$OUT/kbuild/defconfig" >&2; then
  die "guest/kernel.defconfig is not what 'make savedefconfig' gives back (diff above)"
fi
# No built-in command line may override the device tree's bootargs.
grep -qx 'CONFIG_CMDLINE=""' "$OUT/kbuild/.config" || die "CONFIG_CMDLINE must be empty"
! grep -Eq '^CONFIG_CMDLINE_(FORCE|EXTEND)=y' "$OUT/kbuild/.config" || die "CONFIG_CMDLINE_FORCE/EXTEND must be off"
KERNEL_RELEASE=$("${KMAKE[@]}" kernelrelease)
log "building Linux $KERNEL_RELEASE Image with $JOBS jobs"
"${KMAKE[@]}" -j"$JOBS" Image
cp "$OUT/kbuild/arch/riscv/boot/Image" "$OUT/Image"
cp "$OUT/kbuild/.config" "$OUT/kernel.config"

# --- 3. initramfs (gen_init_cpio: no root needed, fixed mtimes, fixed order) ---
gcc -O2 -o "$OUT/gen_init_cpio" "$SRC/usr/gen_init_cpio.c"
ROOTFS="$HERE/rootfs"
LIST="$OUT/initramfs.list"
{
  # Directories (parents sort before children).
  {
    for d in /bin /sbin /usr /usr/bin /usr/sbin /usr/share /dev /proc /sys /run /etc /mnt /var /var/log /home; do
      echo "dir $d 755 0 0"
    done
    echo "dir /tmp 1777 0 0"
    echo "dir /root 700 0 0"
    (cd "$ROOTFS" && find . -mindepth 1 -type d | sed 's|^\.||') | while read -r d; do echo "dir $d 755 0 0"; done
  } | sort -u -k2,2
  echo "nod /dev/console 600 0 0 c 5 1"
  echo "nod /dev/null 666 0 0 c 1 3"
  echo "slink /var/run /run 777 0 0"
  echo "slink /var/tmp /tmp 777 0 0"
  echo "slink /etc/mtab /proc/self/mounts 777 0 0"
  echo "file /bin/busybox $BB 755 0 0"
  # Our files: mode from the executable bit (git keeps only that); secrets 600.
  (cd "$ROOTFS" && find . -type f | sed 's|^\.||' | sort) | while read -r f; do
    if [ "$f" = /etc/shadow ]; then m=600; elif [ -x "$ROOTFS$f" ]; then m=755; else m=644; fi
    echo "file $f $ROOTFS$f $m 0 0"
  done
  # Applet symlinks (what 'busybox --install -s' would make), from the riscv64
  # binary itself run under qemu-user; our own files take precedence.
  qemu-riscv64 "$BB" --list-full | sed 's|^|/|' | sort |
    while read -r p; do
      case "$p" in /linuxrc|/bin/busybox) continue ;; esac
      [ -e "$ROOTFS$p" ] || echo "slink $p /bin/busybox 777 0 0"
    done
} > "$LIST"
grep -q '^slink /bin/sh ' "$LIST" && grep -q '^slink /sbin/init ' "$LIST" || die "busybox applet list looks wrong"
"$OUT/gen_init_cpio" -t 0 "$LIST" > "$OUT/initramfs.cpio"
gzip -9 -n -c "$OUT/initramfs.cpio" > "$OUT/initramfs.cpio.gz"
rm -f "$OUT/initramfs.cpio"

# --- 4. manifest -------------------------------------------------------------------
sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }
cat > "$OUT/manifest.json" <<JSON
{
  "description": "Tabvisor guest: RISC-V 64 Linux kernel Image and busybox initramfs",
  "reproduce": "npm run images",
  "artefacts": {
    "Image": { "size": $(size "$OUT/Image"), "sha256": "$(sha "$OUT/Image")" },
    "initramfs.cpio.gz": { "size": $(size "$OUT/initramfs.cpio.gz"), "sha256": "$(sha "$OUT/initramfs.cpio.gz")" }
  },
  "kernel": {
    "release": "$KERNEL_RELEASE",
    "config_sha256": "$(sha "$OUT/kernel.config")",
    "defconfig_sha256": "$(sha "$HERE/kernel.defconfig")",
    "builtin_cmdline": "",
    "build_timestamp": "$KBUILD_BUILD_TIMESTAMP"
  },
  "packages": {
    "linux-source-6.1": "$LINUX_SOURCE_VERSION",
    "gcc-riscv64-linux-gnu": "$GCC_RISCV_VERSION",
    "busybox-static": "$BUSYBOX_DEB_VERSION"
  },
  "busybox_source": "Debian trixie main, riscv64"
}
JSON
cat "$OUT/manifest.json"
