#!/usr/bin/env bash
# Install the peer tools the benchmarks compare against, each in its own venv
# (their pinned dependencies clash with each other and with chainsleuth's):
#   bench/.venvs/bitcoin-etl   bitcoin-etl 1.5.2
#   bench/.venvs/ethereum-etl  ethereum-etl 2.4.2 (+ parsimonious 0.9.0: 0.8 needs
#                              inspect.getargspec, gone in Python 3.11; 0.10 breaks eth-abi 2)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
V=$ROOT/bench/.venvs
PY=${PYTHON:-python3}
if [[ ! -x $V/bitcoin-etl/bin/bitcoinetl ]]; then
  $PY -m venv "$V/bitcoin-etl"
  "$V/bitcoin-etl/bin/pip" install -q --disable-pip-version-check bitcoin-etl==1.5.2
fi
if [[ ! -x $V/ethereum-etl/bin/ethereumetl ]]; then
  $PY -m venv "$V/ethereum-etl"
  "$V/ethereum-etl/bin/pip" install -q --disable-pip-version-check ethereum-etl==2.4.2
  "$V/ethereum-etl/bin/pip" install -q --disable-pip-version-check --no-deps 'parsimonious==0.9.0' regex
fi
echo "$V"
