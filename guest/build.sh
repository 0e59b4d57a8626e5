#!/bin/bash
# guest/build.sh [OUT_DIR] - build the Tabvisor guest: a RISC-V 64 Linux 6.1
# kernel Image and a busybox initramfs, from Debian packages only.
#
#   kernel:   Debian bookworm's linux-source-6.1, cross-built with
#             gcc-riscv64-linux-gnu, config guest/kernel.defconfig (no modules),
#             with the small source edits of guest/kernel-edits.sh
#   userland: busybox-static from Debian trixie riscv64, fetched through a
#             private apt configuration (the host's apt setup is untouched),
#             plus the files under guest/rootfs/ and the control channel's
#             agent (guest/agent/tabvisor-agent.c, static, cross-compiled)
#
# Output in OUT_DIR (default ${TMPDIR:-/tmp}/tabvisor-guest-build):
#   Image, initramfs.cpio.gz, manifest.json (+ kernel.config, initramfs.list)
# The work files (kernel tree, objects, apt cache) stay there too, so a rebuild
# is incremental. Byte-reproducible for the same package versions.
#
# Env: JOBS=N            parallel make jobs (default: nproc)
#      BUSYBOX_VERSION=V pin of busybox-static (default below; empty = newest)
#      INITRAMFS_ONLY=1  don't build the kernel: take Image and its manifest
#                        entries from KERNEL_DIR (default: the repo's
#                        public/images) and rebuild only the initramfs
# Host packages (guest/images.sh installs them): see NEEDED_PACKAGES below
# (INITRAMFS_ONLY_PACKAGES for INITRAMFS_ONLY=1).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT_ARG=${1:-${TMPDIR:-/tmp}/tabvisor-guest-build}
mkdir -p "$OUT_ARG"
OUT=$(cd "$OUT_ARG" && pwd)
JOBS=${JOBS:-$(nproc)}
BUSYBOX_VERSION=${BUSYBOX_VERSION-1:1.37.0-6+b9}
NEEDED_PACKAGES="gcc-riscv64-linux-gnu libc6-dev-riscv64-cross linux-source-6.1 gcc libc6-dev make bc flex bison libssl-dev libelf-dev xz-utils gzip qemu-user debian-archive-keyring"
# Without the kernel build: gen_init_cpio.c from linux-source, busybox, qemu-user for its applet list.
INITRAMFS_ONLY_PACKAGES="gcc-riscv64-linux-gnu libc6-dev-riscv64-cross linux-source-6.1 gcc libc6-dev xz-utils gzip qemu-user debian-archive-keyring"
INITRAMFS_ONLY=${INITRAMFS_ONLY:-0}
KERNEL_DIR=${KERNEL_DIR:-$HERE/../public/images}

export LC_ALL=C TZ=UTC
# Fixed build identity, so the Image is byte-reproducible (used by the banner).
export KBUILD_BUILD_TIMESTAMP="2025-01-01 00:00:00 UTC"
export KBUILD_BUILD_USER=tabvisor KBUILD_BUILD_HOST=tabvisor-build KBUILD_BUILD_VERSION=1

log() { echo "== build.sh: $*" >&2; }
die() { echo "build.sh: error: $*" >&2; exit 1; }

# --- 0. host tools -------------------------------------------------------------
missing=()
if [ "$INITRAMFS_ONLY" = 1 ]; then
  tools="riscv64-linux-gnu-gcc gcc tar xz gzip sha256sum apt-get dpkg-deb dpkg-query qemu-riscv64 node"   # node reads the old manifest
  packages=$INITRAMFS_ONLY_PACKAGES
else
  tools="riscv64-linux-gnu-gcc gcc make bc flex bison tar xz gzip sha256sum apt-get dpkg-deb dpkg-query qemu-riscv64"
  packages=$NEEDED_PACKAGES
fi
for t in $tools; do
  command -v "$t" >/dev/null || missing+=("$t")
done
[ -f /usr/src/linux-source-6.1.tar.xz ] || missing+=(/usr/src/linux-source-6.1.tar.xz)
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring.gpg)
if [ ${#missing[@]} -gt 0 ]; then
  die "missing: ${missing[*]}
  install: apt-get install -y --no-install-recommends $packages
  (or run guest/images.sh, which does this)"
fi
pkgver() { dpkg-query -W -f='${Version}' "$1"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }
LINUX_SOURCE_VERSION=$(pkgver linux-source-6.1)

. "$HERE/debian-mirror.sh"   # debian_mirror, private_apt_conf

# --- 1. busybox-static (riscv64) from trixie via a private apt config ---------
A="$OUT/trixie-apt"
mkdir -p "$A/debs"
private_apt_conf "$A" /dev/null
deb=
for f in "$A"/debs/busybox-static_*_riscv64.deb; do
  [ -f "$f" ] || continue
  if [ -n "$BUSYBOX_VERSION" ] && [ "$(dpkg-deb -f "$f" Version)" = "$BUSYBOX_VERSION" ]; then deb=$f; fi
done
if [ -z "$deb" ]; then
  MIRROR=$(debian_mirror)   # an assignment, so that set -e stops the build when there is none
  log "fetching busybox-static${BUSYBOX_VERSION:+ $BUSYBOX_VERSION} (trixie, riscv64) from $MIRROR"
  echo "deb [arch=riscv64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR trixie main" > "$A/sources.list"
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
if [ "$INITRAMFS_ONLY" = 1 ]; then
  # The kernel is not rebuilt: Image and its manifest entries come from
  # KERNEL_DIR as they are, after checking that they belong together and to
  # the current guest/kernel.defconfig (else a full build is needed).
  KERNEL_DIR=$(cd "$KERNEL_DIR" && pwd) || die "KERNEL_DIR $KERNEL_DIR: no such directory"
  [ -f "$KERNEL_DIR/Image" ] && [ -f "$KERNEL_DIR/manifest.json" ] || die "INITRAMFS_ONLY=1 needs Image and manifest.json in $KERNEL_DIR"
  mf() { node -e 'const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const v = process.argv[2].split("/").reduce((o, k) => o?.[k], m);
    if (v === undefined || v === null) { console.error(`no ${process.argv[2]} in ${process.argv[1]}`); process.exit(1); }
    console.log(v);' "$KERNEL_DIR/manifest.json" "$1"; }
  [ "$(mf artefacts/Image/sha256)" = "$(sha "$KERNEL_DIR/Image")" ] &&
    [ "$(mf artefacts/Image/size)" = "$(size "$KERNEL_DIR/Image")" ] ||
    die "$KERNEL_DIR/Image is not the Image its manifest.json describes"
  [ "$(mf kernel/defconfig_sha256)" = "$(sha "$HERE/kernel.defconfig")" ] ||
    die "guest/kernel.defconfig changed since $KERNEL_DIR/Image was built: a full build is needed (without INITRAMFS_ONLY)"
  [ "$(mf kernel/edits_sha256)" = "$(sha "$HERE/kernel-edits.sh")" ] ||
    die "guest/kernel-edits.sh changed since $KERNEL_DIR/Image was built: a full build is needed (without INITRAMFS_ONLY)"
  KERNEL_RELEASE=$(mf kernel/release)
  KERNEL_CONFIG_SHA256=$(mf kernel/config_sha256)
  KERNEL_BUILD_TIMESTAMP=$(mf kernel/build_timestamp)
  KERNEL_SOURCE_VERSION=$(mf packages/linux-source-6.1)
  GCC_RISCV_VERSION=$(mf packages/gcc-riscv64-linux-gnu)
  [ "$KERNEL_DIR/Image" -ef "$OUT/Image" ] || cp "$KERNEL_DIR/Image" "$OUT/Image"
  rm -f "$OUT/kernel.config"   # not known here; its sha256 is in the manifest
  log "kernel: Linux $KERNEL_RELEASE Image from $KERNEL_DIR (not rebuilt)"
  # gen_init_cpio.c alone from the source tarball (tar still has to decompress
  # up to it, about a minute); kept for the next run of the same version.
  GEN_SRC="$OUT/gen_init_cpio-src"
  if [ "$(cat "$GEN_SRC/version" 2>/dev/null)" != "$LINUX_SOURCE_VERSION" ] || [ ! -f "$GEN_SRC/linux-source-6.1/usr/gen_init_cpio.c" ]; then
    log "extracting usr/gen_init_cpio.c from linux-source-6.1 $LINUX_SOURCE_VERSION"
    rm -rf "$GEN_SRC" && mkdir -p "$GEN_SRC"
    tar -C "$GEN_SRC" -xJf /usr/src/linux-source-6.1.tar.xz --occurrence=1 linux-source-6.1/usr/gen_init_cpio.c
    echo "$LINUX_SOURCE_VERSION" > "$GEN_SRC/version"
  fi
  GEN_INIT_CPIO_C="$GEN_SRC/linux-source-6.1/usr/gen_init_cpio.c"
else   # the full build: the kernel from linux-source
# the tree as unpacked and edited (guest/kernel-edits.sh): a new version or new edits unpack it again
SOURCE_STAMP="$LINUX_SOURCE_VERSION edits $(sha "$HERE/kernel-edits.sh")"
if [ "$(cat "$OUT/linux-source.version" 2>/dev/null)" != "$SOURCE_STAMP" ] || [ ! -f "$SRC/Makefile" ]; then
  log "unpacking linux-source-6.1 $LINUX_SOURCE_VERSION"
  rm -rf "$SRC" "$OUT/kbuild"
  tar -C "$OUT" -xf /usr/src/linux-source-6.1.tar.xz
  bash "$HERE/kernel-edits.sh" "$SRC"
  echo "$SOURCE_STAMP" > "$OUT/linux-source.version"
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
KERNEL_CONFIG_SHA256=$(sha "$OUT/kernel.config")
KERNEL_BUILD_TIMESTAMP=$KBUILD_BUILD_TIMESTAMP
KERNEL_SOURCE_VERSION=$LINUX_SOURCE_VERSION
GCC_RISCV_VERSION=$(pkgver gcc-riscv64-linux-gnu)
GEN_INIT_CPIO_C="$SRC/usr/gen_init_cpio.c"
fi   # INITRAMFS_ONLY

# --- 3. initramfs (gen_init_cpio: no root needed, fixed mtimes, fixed order) ---
gcc -O2 -o "$OUT/gen_init_cpio" "$GEN_INIT_CPIO_C"
ROOTFS="$HERE/rootfs"
# gen_init_cpio gives 'file' entries the file's own mtime (-t only covers the
# other entries), i.e. the time of the git checkout: so the archive takes
# copies with mtime 0, like everything else in it.
STAGE="$OUT/rootfs-stage"
rm -rf "$STAGE"
mkdir -p "$STAGE"
cp -a "$ROOTFS/." "$STAGE/"
cp "$BB" "$STAGE/busybox"
# The agent: static, so it runs on any riscv64 userland (this one and the Debian image); stripped, and with no
# build path in it, so the same sources give the same bytes.
riscv64-linux-gnu-gcc -static -Os -Wall -Wextra -Werror -ffile-prefix-map="$HERE"=guest \
  -o "$STAGE/tabvisor-agent" "$HERE/agent/tabvisor-agent.c"
riscv64-linux-gnu-strip "$STAGE/tabvisor-agent"
find "$STAGE" -exec touch -h -d @0 {} +
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
  echo "file /bin/busybox $STAGE/busybox 755 0 0"
  echo "file /sbin/tabvisor-agent $STAGE/tabvisor-agent 755 0 0"
  # Our files: mode from the executable bit (git keeps only that); secrets 600.
  (cd "$ROOTFS" && find . -type f | sed 's|^\.||' | sort) | while read -r f; do
    if [ "$f" = /etc/shadow ]; then m=600; elif [ -x "$ROOTFS$f" ]; then m=755; else m=644; fi
    echo "file $f $STAGE$f $m 0 0"
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
# The kernel entries describe the Image (with INITRAMFS_ONLY=1: copied from
# KERNEL_DIR's manifest); gen_init_cpio_source is the linux-source that
# gen_init_cpio, which wrote the initramfs, was compiled from.
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
    "config_sha256": "$KERNEL_CONFIG_SHA256",
    "defconfig_sha256": "$(sha "$HERE/kernel.defconfig")",
    "edits_sha256": "$(sha "$HERE/kernel-edits.sh")",
    "builtin_cmdline": "",
    "build_timestamp": "$KERNEL_BUILD_TIMESTAMP"
  },
  "packages": {
    "linux-source-6.1": "$KERNEL_SOURCE_VERSION",
    "gcc-riscv64-linux-gnu": "$GCC_RISCV_VERSION",
    "busybox-static": "$BUSYBOX_DEB_VERSION",
    "libc6-dev-riscv64-cross": "$(pkgver libc6-dev-riscv64-cross)"
  },
  "agent": { "sha256": "$(sha "$STAGE/tabvisor-agent")", "compiler": "gcc-riscv64-linux-gnu $(pkgver gcc-riscv64-linux-gnu)" },
  "busybox_source": "Debian trixie main, riscv64",
  "gen_init_cpio_source": "linux-source-6.1 $LINUX_SOURCE_VERSION"
}
JSON
cat "$OUT/manifest.json"
