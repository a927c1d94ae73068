"""Start the lab's local nodes: anvil and Bitcoin Knots in regtest mode.

Binaries come from ``make nodes`` (``scripts/install_anvil.sh`` into
``.nodes/anvil``, ``scripts/install_bitcoind.sh`` into ``.nodes/bitcoin``),
looked up in ``$CHAINSLEUTH_NODES_DIR``, ``./.nodes`` and the source
checkout's ``.nodes``. A missing binary is a clear :class:`ConfigError`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from ..errors import ConfigError, NodeError

RPC_USER = "cs"
RPC_PASSWORD = "cs-regtest"
ANVIL_RELATIVE = Path("anvil/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
SOLC_RELATIVE = Path("anvil/node_modules/solc/solc.js")


def node_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("CHAINSLEUTH_NODES_DIR"):
        dirs.append(Path(os.environ["CHAINSLEUTH_NODES_DIR"]))
    dirs.append(Path.cwd() / ".nodes")
    dirs.append(Path(__file__).resolve().parents[3] / ".nodes")  # source checkout
    return dirs


def find_node_file(relative: Path, what: str) -> Path:
    for d in node_dirs():
        if (d / relative).exists():
            return d / relative
    raise ConfigError(f"{what} not found under {', '.join(str(d) for d in node_dirs())}: "
                      "run `make nodes` (or set CHAINSLEUTH_NODES_DIR), or pass the node's RPC URL")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalNode:
    """A node process the lab started; ``stop()`` ends it and removes its data dir."""

    def __init__(self, proc: subprocess.Popen[bytes], rpc_url: str, datadir: Path | None) -> None:
        self.proc = proc
        self.rpc_url = rpc_url
        self.datadir = datadir

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.datadir is not None:
            shutil.rmtree(self.datadir, ignore_errors=True)


def _wait(probe: str, body: dict[str, object], proc: subprocess.Popen[bytes], what: str,
          auth: tuple[str, str] | None = None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise NodeError(f"{what} exited at start (code {proc.returncode})")
        with contextlib.suppress(httpx.HTTPError, ValueError):
            r = httpx.post(probe, json=body, auth=auth, timeout=5)
            if r.status_code == 200 and not r.json().get("error"):
                return
        time.sleep(0.1)
    proc.kill()
    raise NodeError(f"{what} did not answer RPC within {timeout:.0f} s")


def start_anvil(chain_id: int, genesis_timestamp: int) -> LocalNode:
    """anvil with a fixed chain id and genesis time, no automine, FIFO ordering
    (transactions keep the order the lab sent them in)."""
    binary = find_node_file(ANVIL_RELATIVE, "anvil")
    port = free_port()
    proc = subprocess.Popen(
        [str(binary), "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(chain_id),
         "--timestamp", str(genesis_timestamp), "--order", "fifo", "--no-mining", "--silent",
         "--accounts", "1", "--base-fee", "1000000000", "--gas-limit", "60000000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    _wait(url, {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}, proc, "anvil")
    return LocalNode(proc, url, None)


def start_bitcoind(mocktime: int) -> LocalNode:
    """Knots regtest with a temp datadir, txindex, and the clock set to ``mocktime``."""
    bindir = find_node_file(Path("bitcoin/bitcoind"), "bitcoind (Bitcoin Knots)").parent
    datadir = Path(tempfile.mkdtemp(prefix="cs-lab-bitcoind-"))
    port = free_port()
    proc = subprocess.Popen(
        [str(bindir / "bitcoind"), "-regtest", f"-datadir={datadir}", "-server", "-listen=0",
         "-dnsseed=0", "-fixedseeds=0", "-rpcbind=127.0.0.1", "-rpcallowip=127.0.0.1",
         f"-rpcport={port}", f"-rpcuser={RPC_USER}", f"-rpcpassword={RPC_PASSWORD}", "-txindex=1",
         "-printtoconsole=0", "-rpcthreads=8", "-rpcworkqueue=64", f"-mocktime={mocktime}",
         "-acceptnonstdtxn=0", "-minrelaytxfee=0.00001", "-walletbroadcast=1", "-keypool=100"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://{RPC_USER}:{RPC_PASSWORD}@127.0.0.1:{port}"
    _wait(f"http://127.0.0.1:{port}/", {"jsonrpc": "1.0", "id": 1, "method": "getblockchaininfo",
                                        "params": []}, proc, "bitcoind", auth=(RPC_USER, RPC_PASSWORD))
    return LocalNode(proc, url, datadir)
