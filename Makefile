# chainsleuth: `make demo` runs the main job, `make test` runs the whole suite.
# Both create .venv and install what they need on a fresh machine.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: setup demo test nodes sysdeps lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

demo: setup
	$(BIN)/chainsleuth demo

sysdeps:
	bash scripts/install_system_deps.sh

nodes:
	bash scripts/install_bitcoind.sh .nodes/bitcoin
	bash scripts/install_anvil.sh .nodes/anvil

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

test: setup sysdeps nodes lint
	$(BIN)/pytest

bench: setup nodes
	bash bench/install_peer_tools.sh
	$(BIN)/python bench/bench_blk_parse.py
	BITCOIN_ETL_VENV=bench/.venvs/bitcoin-etl $(BIN)/python bench/bench_rpc_bitcoin.py
	$(BIN)/python bench/bench_rpc_ethereum.py --txs 10000 --etl bench/.venvs/ethereum-etl/bin/ethereumetl
	$(BIN)/python bench/bench_tags.py
	$(BIN)/python bench/bench_cluster.py
	$(BIN)/python bench/bench_cluster_accuracy.py

clean:
	rm -rf $(VENV) .nodes chainsleuth.duckdb bench/out
