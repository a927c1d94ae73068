#!/usr/bin/env bash
# Install the anvil dev node (npm @foundry-rs/anvil) and solc-js (npm solc) into DEST.
# Idempotent: returns at once when both are already there. Usage: install_anvil.sh [DEST]
set -euo pipefail
ANVIL_VERSION=1.7.1
SOLC_VERSION=0.8.26
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST=${1:-$ROOT/.nodes/anvil}
mkdir -p "$DEST" && DEST=$(cd "$DEST" && pwd)  # absolute: we cd into it below
BIN=$DEST/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil
SOLCJS=$DEST/node_modules/solc/solc.js
if [[ -x $BIN && -f $SOLCJS && -f $DEST/.installed-$ANVIL_VERSION-$SOLC_VERSION ]]; then
  echo "$BIN"
  exit 0
fi
command -v npm >/dev/null || { echo "install_anvil.sh: npm not found (apt-get install nodejs npm)" >&2; exit 1; }
mkdir -p "$DEST"
cd "$DEST"
[[ -f package.json ]] || echo '{"name":"chainsleuth-anvil","private":true}' > package.json
npm install --no-audit --no-fund --silent "@foundry-rs/anvil@$ANVIL_VERSION" "solc@$SOLC_VERSION" >&2
[[ -x $BIN ]] || { echo "install_anvil.sh: anvil binary missing at $BIN after npm install" >&2; exit 1; }
touch "$DEST/.installed-$ANVIL_VERSION-$SOLC_VERSION"
echo "$BIN"
