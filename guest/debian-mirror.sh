# Sourced by guest/build.sh and guest/debian/build.sh: where their Debian packages come from, and how apt gets them.
# debian_mirror: the Debian mirror this host already uses (its own apt sources), so that no mirror host name is
# written into a recipe: the first non-security URI of the deb822 sources (/etc/apt/sources.list.d/*.sources), else
# of the one-line 'deb' entries in /etc/apt/sources.list ('[options]' skipped). The sourcing script defines die().
debian_mirror() {
  local m
  m=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{for (i = 2; i <= NF; i++) print $i}' |
      grep -v security | head -n1 || true)
  [ -n "$m" ] || m=$(grep -hs '^deb[[:space:]]' /etc/apt/sources.list | sed -E 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//' |
      awk '{print $1}' | grep -v security | head -n1 || true)
  [ -n "$m" ] || die "no Debian mirror found in the host's apt sources (a 'URIs:' line in /etc/apt/sources.list.d/*.sources or a 'deb' line in /etc/apt/sources.list, other than security): the guest's packages come from that mirror's trixie"
  echo "$m"
}

# A private apt configuration in DIR (for riscv64, nothing of the host's apt touched): its own sources
# (DIR/sources.list, written by the caller), lists and cache; STATUS is the dpkg status apt believes (/dev/null or an
# empty file: nothing installed). Writes DIR/apt.conf; use it with APT_CONFIG=DIR/apt.conf.
private_apt_conf() {
  local dir=$1 status=$2
  mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
  cat > "$dir/apt.conf" <<CONF
Dir::Etc::SourceList "$dir/sources.list";
Dir::Etc::SourceParts "/dev/null";
Dir::Etc::Preferences "/dev/null";
Dir::Etc::PreferencesParts "/dev/null";
Dir::State::Lists "$dir/lists";
Dir::State::status "$status";
Dir::Cache "$dir/cache";
APT::Architecture "riscv64";
APT::Architectures "riscv64";
APT::Install-Recommends "false";
APT::Sandbox::User "root";
CONF
}
