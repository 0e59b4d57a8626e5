#!/bin/bash
# guest/kernel-edits.sh SRC - the changes Tabvisor's guest kernel makes to Debian's linux-source-6.1, applied by
# guest/build.sh to the unpacked tree SRC before it builds. Each edit must apply exactly once (a new linux-source
# that moved the code stops the build here rather than building without the edit). The script's sha256 is in the
# manifest (kernel.edits_sha256): an INITRAMFS_ONLY build checks the Image was built with these edits.
set -euo pipefail
SRC=${1:?usage: kernel-edits.sh SRC}

# edit FILE PATTERN SED-EXPRESSION: FILE must have exactly one line matching PATTERN, which the expression changes.
edit() {
  local file="$SRC/$1" n
  n=$(grep -c -- "$2" "$file" || true)
  [ "$n" = 1 ] || { echo "kernel-edits.sh: $1: expected one line matching '$2', found $n" >&2; exit 1; }
  sed -i -e "$3" "$file"
  ! grep -q -- "$2" "$file" || { echo "kernel-edits.sh: $1: the edit of '$2' did not apply" >&2; exit 1; }
}

# virtio-net without a TX watchdog. The core's watchdog timer re-arms every 5 s for as long as the link is up, and
# each expiry wakes an idle guest: with the timer tick that follows, most of what an idle VM runs. Its only action
# in this driver is a log line about a stalled queue (it resets nothing), and the device is the emulator's.
edit drivers/net/virtio_net.c '^	\.ndo_tx_timeout[[:space:]]*= virtnet_tx_timeout,$' '/^	\.ndo_tx_timeout[[:space:]]*= virtnet_tx_timeout,$/d'
edit drivers/net/virtio_net.c '^static void virtnet_tx_timeout(' 's/^static void virtnet_tx_timeout(/static void __maybe_unused virtnet_tx_timeout(/'
