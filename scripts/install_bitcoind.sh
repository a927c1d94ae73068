#!/usr/bin/env bash
# Install Bitcoin Knots (Debian sid) for regtest tests, without adding sid to the
# system's apt sources: sid's glibc/libstdc++ stay in DEST/root and the binaries
# start through sid's own dynamic loader. Idempotent; a re-run with the binaries
# in place returns at once. Usage: install_bitcoind.sh [DEST] (default .nodes/bitcoin).
# Recipe: /work/shared/recipes/test-nodes.md (Debian has no bitcoind; knots works).
set -euo pipefail
ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
DEST=${1:-$ROOT_DIR/.nodes/bitcoin}
mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)

if [ -x "$DEST/bitcoind" ] && [ -f "$DEST/.installed" ] && "$DEST/bitcoind" --version >/dev/null 2>&1; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

A=$DEST/apt
mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$DEST/root"
# The machine's own Debian mirror (deb822 or one-line sources), suite sid.
MIRROR=""
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$MIRROR" ] && [ -f /etc/apt/sources.list ]; then
  MIRROR=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
fi
MIRROR=${MIRROR:-http://deb.debian.org/debian}
echo "deb $MIRROR sid main" > "$A/sources.list"
O=(-o "Dir::Etc::SourceList=$A/sources.list" -o Dir::Etc::SourceParts=/nonexistent
   -o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache" -o APT::Sandbox::User=root)
$SUDO apt-get "${O[@]}" update -qq
( cd "$A/cache/archives" && $SUDO apt-get "${O[@]}" download bitcoin-knots libc6 libstdc++6 libgcc-s1 )
for d in "$A"/cache/archives/*.deb; do dpkg-deb -x "$d" "$DEST/root"; done

# Shared libs from the system's own (stable) suite; refresh its lists only when
# the packages are not known yet (a fresh container has empty lists).
PKGS=(libzmq5 libevent-2.1-7 libevent-extra-2.1-7 libevent-pthreads-2.1-7 libsqlite3-0)
if ! dpkg -s "${PKGS[@]}" >/dev/null 2>&1; then
  if ! apt-cache show libzmq5 >/dev/null 2>&1; then $SUDO apt-get update -qq; fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null
fi

L=$DEST/root/usr/lib/x86_64-linux-gnu
for b in bitcoind bitcoin-cli bitcoin-tx bitcoin-util bitcoin-wallet; do
  printf '#!/bin/sh\nexec %s/ld-linux-x86-64.so.2 --library-path %s:/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu %s/usr/bin/%s "$@"\n' \
    "$L" "$L" "$DEST/root" "$b" > "$DEST/$b"
  chmod +x "$DEST/$b"
done
rm -rf "$A/cache/archives"/*.deb
"$DEST/bitcoind" --version | head -1
touch "$DEST/.installed"
