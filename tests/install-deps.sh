#!/bin/bash
# Installs the Debian packages the build, the fixtures and the tests use.
# apt-get update runs once per machine (a stamp under /var/lib/krun-fixtures).
set -euo pipefail
pkgs=(
  # fixtures (tests/fixtures/registry.sh)
  docker-registry skopeo umoci busybox-static debootstrap apache2-utils openssl
  python3 curl jq zstd procps time bc
  # the probe tests build a static gRPC health server (glibc's libc.a)
  libc6-dev
  # runtime, network and peers the tests compare against
  libseccomp-dev pkg-config runc crun podman iproute2 nftables iptables iperf3
  containernetworking-plugins
  # the pure cgroup v2 conformance run boots Debian's kernel under qemu (tests/vm)
  linux-image-amd64 qemu-system-x86 cpio binutils
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  stamp=/var/lib/krun-fixtures/.apt-updated
  if [[ ! -e $stamp ]]; then
    apt-get update -q
    mkdir -p "$(dirname "$stamp")" && touch "$stamp"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi
export PATH="${HOME:-/root}/.cargo/bin:$PATH"
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt
