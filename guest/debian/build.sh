#!/bin/bash
# guest/debian/build.sh [OUT_DIR] - build the Tabvisor Debian system disk: a
# Debian trixie riscv64 root file system in an ext4 image, from Debian's
# packages only (see guest/debian/README.md).
#
#   1. resolve and download the packages (Priority: required + PACKAGES below,
#      no recommends) through a private apt configuration in OUT_DIR, from the
#      Debian mirror the host's own apt sources use (the host's apt state is
#      not touched)
#   2. unpack the essential packages on the host (dpkg-deb | tar), enough for
#      dpkg and a shell to run
#   3. dpkg --unpack of every package, then dpkg --configure -a, as riscv64
#      code under `proot -q qemu-riscv64-static` (no binfmt_misc needed: proot
#      runs every exec through qemu); maintainer scripts run as on a real
#      install, services are not started (policy-rc.d)
#   4. Tabvisor's files (guest/debian/overlay: the init, inittab, sshd and
#      network set-up), host keys removed (each VM makes its own at first boot)
#   5. mke2fs -d: the tree into OUT_DIR/debian.ext4 (no loop mount)
#
# Output in OUT_DIR (default ${TMPDIR:-/tmp}/tabvisor-debian-build):
#   debian.ext4, packages.txt (name version, one a line), build-info.json
# Run as root (the tree keeps the packages' owners; proot runs dpkg as root).
#
# Env: IMAGE_MIB=N   ext4 image size (default 2048; unused space costs nothing
#                    once chunked: zero chunks are not stored)
#      SUITE=trixie
set -euo pipefail
# The whole script is one compound command, read before it runs: editing this
# file during a build (it takes minutes) does not change the running build.
{

HERE=$(cd "$(dirname "$0")" && pwd)
OUT_ARG=${1:-${TMPDIR:-/tmp}/tabvisor-debian-build}
mkdir -p "$OUT_ARG"
OUT=$(cd "$OUT_ARG" && pwd)
SUITE=${SUITE:-trixie}
IMAGE_MIB=${IMAGE_MIB:-2048}
# What a lab server needs (issue 10), plus: busybox-static (the console's init
# and udhcpc, the same as the busybox image's), systemd-standalone-sysusers
# (what openssh-server needs instead of all of systemd).
PACKAGES="openssh-server nginx python3 sqlite3 postgresql haproxy nftables iptables iproute2 iputils-ping
  traceroute tcpdump curl dnsutils netcat-openbsd procps less vim-tiny ca-certificates
  busybox-static systemd-standalone-sysusers"
HOST_PACKAGES="proot qemu-user-static e2fsprogs debian-archive-keyring apt dpkg tar gcc libc6-dev gcc-riscv64-linux-gnu libc6-dev-riscv64-cross"

export LC_ALL=C TZ=UTC
log() { echo "== debian/build.sh: $*" >&2; }
die() { echo "debian/build.sh: error: $*" >&2; exit 1; }
T0=$(date +%s)
step() { log "[$(( $(date +%s) - T0 )) s] $*"; }

[ "$(id -u)" = 0 ] || die "run as root: the tree must keep the packages' owners (root, postgres, ...)"
missing=()
for t in proot qemu-riscv64-static mke2fs e2fsck apt-get dpkg-deb tar gcc riscv64-linux-gnu-gcc node; do
  command -v "$t" >/dev/null || missing+=("$t")
done
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring.gpg)
[ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]}
  install: apt-get install -y --no-install-recommends $HOST_PACKAGES"

. "$HERE/../debian-mirror.sh"   # debian_mirror (the host's own Debian mirror), private_apt_conf

# --- 1. packages ----------------------------------------------------------------
A="$OUT/apt"
mkdir -p "$A"
: > "$A/status"   # an empty system: apt resolves every dependency
private_apt_conf "$A" "$A/status"
export APT_CONFIG="$A/apt.conf"
MIRROR=$(debian_mirror)
echo "deb [arch=riscv64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $SUITE main" > "$A/sources.list"
step "apt-get update ($SUITE, riscv64)"
apt-get update -q >/dev/null
# Priority: required and Essential: yes, what debootstrap's minbase takes.
REQUIRED=$(apt-cache dumpavail | awk -v RS= '/\nPriority: required/ || /\nEssential: yes/ {
  if (match($0, /^Package: [^\n]+/)) print substr($0, 10, RLENGTH - 9) }' | sort -u | tr '\n' ' ')
[ -n "$REQUIRED" ] || die "no Priority: required packages in the $SUITE index"
# shellcheck disable=SC2086
apt-get install -s -y $REQUIRED $PACKAGES > "$OUT/simulate.txt"
# "Inst NAME (VERSION ...)", in apt's unpack order
awk '/^Inst /{print $2, substr($3, 2)}' "$OUT/simulate.txt" > "$OUT/selection.txt"
step "downloading $(wc -l < "$OUT/selection.txt") packages"
# shellcheck disable=SC2086
apt-get install -d -y -q $REQUIRED $PACKAGES >/dev/null
DEBS="$OUT/debs"
rm -rf "$DEBS" && mkdir -p "$DEBS"
: > "$OUT/packages.txt"
while read -r p v; do
  f=$(ls "$A/cache/archives/${p}_$(echo "$v" | sed 's/:/%3a/')_"*.deb 2>/dev/null | head -n1)
  [ -n "$f" ] || die "no downloaded .deb for $p $v"
  ln "$f" "$DEBS/"
  echo "$p $v" >> "$OUT/packages.txt"
done < "$OUT/selection.txt"

# --- 2. the packages, unpacked on the host ------------------------------
R="$OUT/root"
step "unpacking the packages into $R (host side)"
rm -rf "$R"
mkdir -p "$R/usr/bin" "$R/usr/sbin" "$R/usr/lib" "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/etc/dpkg/dpkg.cfg.d"
# merged /usr, as trixie requires (debootstrap does the same)
ln -s usr/bin "$R/bin"; ln -s usr/sbin "$R/sbin"; ln -s usr/lib "$R/lib"
: > "$R/var/lib/dpkg/status"; : > "$R/var/lib/dpkg/available"
# Nothing a VM image needs: documentation (copyrights kept), man pages,
# translations. dpkg honours this file for every package, now and later in
# the VM; the host-side unpack below leaves out the same paths.
cp "$HERE/overlay/etc/dpkg/dpkg.cfg.d/tabvisor-nodoc" "$R/etc/dpkg/dpkg.cfg.d/"
# sshd's host keys: ours is ed25519 only, and with it in place before
# openssh-server's postinst, that makes no RSA key (slow under emulation, and
# removed below anyway: each VM makes its own)
mkdir -p "$R/etc/ssh/sshd_config.d"
cp "$HERE/overlay/etc/ssh/sshd_config.d/tabvisor.conf" "$R/etc/ssh/sshd_config.d/"
TAR_EXCLUDES=(--exclude='./usr/share/man/*' --exclude='./usr/share/info/*' --exclude='./usr/share/lintian/*'
  --exclude='./usr/share/linda/*' --exclude='./usr/share/doc/*')
# Every package's files, so that dpkg, the shells and the libraries they need
# are there when dpkg first runs in the tree (simpler than working out that
# closure; dpkg --unpack below puts the same files in place again, properly).
for f in "$DEBS"/*.deb; do
  dpkg-deb --fsys-tarfile "$f" | tar -C "$R" --keep-directory-symlink "${TAR_EXCLUDES[@]}" -xf -
done
# the first users and groups (base-passwd's postinst would copy the same)
cp "$R/usr/share/base-passwd/passwd.master" "$R/etc/passwd"
cp "$R/usr/share/base-passwd/group.master" "$R/etc/group"
# no service starts while we install (invoke-rc.d asks this)
printf '#!/bin/sh\nexit 101\n' > "$R/usr/sbin/policy-rc.d"; chmod 755 "$R/usr/sbin/policy-rc.d"

# --- 3. dpkg in the riscv64 tree, under proot + qemu-user ---------------------------
# proot -q runs every riscv64 program of the tree (and their children) through
# qemu-riscv64-static. -0: a program that drops root (su/runuser to postgres in
# PostgreSQL's scripts) cannot exec anything under proot otherwise; we are root,
# so chown still happens, but files such a program creates stay root's (fixed
# below). no-statx: proot 5.1 does not translate statx/faccessat2 (no-statx.c).
gcc -O2 -o "$OUT/no-statx" "$HERE/no-statx.c"
inroot() {
  "$OUT/no-statx" proot -0 -q qemu-riscv64-static -r "$R" -w / -b /proc -b /dev -b /sys -b "$DEBS:/tmp/debs" \
    /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TZ=UTC \
    DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true "$@"
}
step "dpkg --unpack (all packages)"
mkdir -p "$R/tmp" && chmod 1777 "$R/tmp"
# base-passwd, base-files and dpkg first (the others' preinsts may need them), then the rest in apt's order
first="base-passwd base-files dpkg"
order=$(for p in $first; do echo "$p"; done; awk '{print $1}' "$OUT/selection.txt" | grep -vxF -f <(echo "$first" | tr ' ' '\n'))
args=()
for p in $order; do args+=("/tmp/debs/$(basename "$(ls "$DEBS/${p}"_*.deb)")"); done
inroot dpkg --force-depends --force-unsafe-io --unpack "${args[@]}" > "$OUT/dpkg-unpack.log" 2>&1 ||
  { tail -30 "$OUT/dpkg-unpack.log" >&2; die "dpkg --unpack failed (log: $OUT/dpkg-unpack.log)"; }
step "dpkg --configure -a (maintainer scripts)"
inroot dpkg --force-unsafe-io --configure -a > "$OUT/dpkg-configure.log" 2>&1 ||
  { tail -40 "$OUT/dpkg-configure.log" >&2; die "dpkg --configure failed (log: $OUT/dpkg-configure.log)"; }
inroot dpkg --audit > "$OUT/dpkg-audit.log" 2>&1 || true
[ ! -s "$OUT/dpkg-audit.log" ] || { cat "$OUT/dpkg-audit.log" >&2; die "dpkg --audit: packages left half-installed"; }
# initdb ran as postgres under proot -0: its files are root's
ls -d "$R"/etc/postgresql/*/main >/dev/null 2>&1 || die "postgresql-common made no cluster (see $OUT/dpkg-configure.log)"
chown -R postgres:postgres "$R/var/lib/postgresql" "$R/etc/postgresql"
chown -R postgres:adm "$R/var/log/postgresql"

# --- 4. Tabvisor's files, and what must not be shared by every VM ---------------------
step "Tabvisor's files"
rm -f "$R/usr/sbin/policy-rc.d"
cp -a "$HERE/overlay/." "$R/"
chown -R 0:0 "$R/usr/local" "$R/root"
chmod 700 "$R/root"   # (cp -a gave it the overlay directory's mode)
# the DHCP event script is the busybox image's (same udhcpc, same behaviour)
mkdir -p "$R/etc/udhcpc"
install -m 755 "$HERE/../rootfs/etc/udhcpc/default.script" "$R/etc/udhcpc/default.script"
# PID 1 is our init; poweroff/reboot/halt are busybox's, which signal busybox init
ln -sfn ../local/sbin/tabvisor-init "$R/usr/sbin/init"
for c in poweroff reboot halt; do ln -sfn /usr/bin/busybox "$R/usr/local/sbin/$c"; done
# The host's control channel (run a command, put or get a file; guest/agent/): the busybox image's agent, built the
# same way (static, stripped, no build path in it), started by inittab.
riscv64-linux-gnu-gcc -static -Os -Wall -Wextra -Werror -ffile-prefix-map="$HERE/.."=guest \
  -o "$R/usr/local/sbin/tabvisor-agent" "$HERE/../agent/tabvisor-agent.c"
riscv64-linux-gnu-strip "$R/usr/local/sbin/tabvisor-agent"
chmod 755 "$R/usr/local/sbin/tabvisor-agent"
# The machine has no RTC and a VM's clock may start at 1970 (no tabvisor.time=):
# no "last password change" dates, which would then lie in the future (pam_unix
# complains on every su).
awk -F: 'BEGIN { OFS = ":" } { $3 = ""; print }' "$R/etc/shadow" > "$R/etc/shadow.new"
cat "$R/etc/shadow.new" > "$R/etc/shadow" && rm "$R/etc/shadow.new"   # (keeps its owner and mode)
# host keys: each VM makes its own ed25519 key at its first boot (init)
rm -f "$R"/etc/ssh/ssh_host_*
rm -f "$R/etc/machine-id" "$R/var/lib/dbus/machine-id"
: > "$R/etc/machine-id"
# caches that are rebuilt on demand
rm -rf "$R/var/cache/apt/"*.bin "$R/var/lib/apt/lists/"* "$R/var/cache/debconf/"*-old "$R/var/lib/dpkg/"*-old
rm -rf "$R/tmp/"* "$R/var/log/"*.log
# the image's apt knows where its packages came from (no network from the lab, but a VM with one can apt-get)
echo "deb $MIRROR $SUITE main" > "$R/etc/apt/sources.list"
inroot dpkg-query -W -f '${Package} ${Version}\n' > "$OUT/packages-installed.txt"

# --- 5. ext4 image ---------------------------------------------------------------------
step "mke2fs -d ($IMAGE_MIB MiB)"
IMG="$OUT/debian.ext4"
rm -f "$IMG"
# fixed UUID and hash seed: the same tree gives the same file system layout
E2FSPROGS_FAKE_TIME=${SOURCE_DATE_EPOCH:-1735689600} mke2fs -q -F -t ext4 -L tabvisor-debian \
  -U 7ab71501-deb1-4a4e-8e8d-000000000001 -E hash_seed=7ab71501-deb1-4a4e-8e8d-000000000002,root_owner=0:0 \
  -m 1 -d "$R" "$IMG" "${IMAGE_MIB}M"
e2fsck -fn "$IMG" > "$OUT/e2fsck.log" 2>&1 || { cat "$OUT/e2fsck.log" >&2; die "e2fsck finds errors in $IMG"; }
cat > "$OUT/build-info.json" <<JSON
{
  "suite": "$SUITE",
  "architecture": "riscv64",
  "image_bytes": $(stat -c %s "$IMG"),
  "tree_kib": $(du -sk "$R" | cut -f1),
  "packages": $(wc -l < "$OUT/packages-installed.txt"),
  "build_seconds": $(( $(date +%s) - T0 ))
}
JSON
step "done: $IMG"
cat "$OUT/build-info.json"
exit 0
}
