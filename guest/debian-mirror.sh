# Sourced by guest/build.sh and guest/debian/build.sh: the Debian mirror this host already uses (its own apt
# sources), so that no mirror host name is written into a recipe. The first non-security URI of the deb822 sources
# (/etc/apt/sources.list.d/*.sources), else of the one-line 'deb' entries in /etc/apt/sources.list ('[options]'
# skipped). The sourcing script defines die().
debian_mirror() {
  local m
  m=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{for (i = 2; i <= NF; i++) print $i}' |
      grep -v security | head -n1 || true)
  [ -n "$m" ] || m=$(grep -hs '^deb[[:space:]]' /etc/apt/sources.list | sed -E 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//' |
      awk '{print $1}' | grep -v security | head -n1 || true)
  [ -n "$m" ] || die "no Debian mirror found in the host's apt sources (a 'URIs:' line in /etc/apt/sources.list.d/*.sources or a 'deb' line in /etc/apt/sources.list, other than security): the guest's packages come from that mirror's trixie"
  echo "$m"
}
