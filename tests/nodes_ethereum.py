"""anvil fixtures: a real Ethereum dev node (npm @foundry-rs/anvil) for tests.

``anvil`` is one node for the session; ``anvil_fresh`` a node of its own for a
test that rewrites history (reorgs). Both install anvil and solc-js with
``scripts/install_anvil.sh`` on first use and skip with the reason when that
cannot be done (no npm, no registry). Contracts in ``tests/contracts`` are
compiled with solc-js once per session.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from chainsleuth.lab.nodes import free_port  # one port picker for the lab and the tests

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = Path(os.environ.get("CHAINSLEUTH_ANVIL_DIR", ROOT / ".nodes" / "anvil"))
CONTRACTS = Path(__file__).resolve().parent / "contracts"


def install_anvil() -> Path:
    """Install (or find) anvil and solc-js; returns the anvil binary."""
    script = ROOT / "scripts" / "install_anvil.sh"
    if shutil.which("npm") is None:
        pytest.skip("anvil tests need npm (apt-get install nodejs npm)")
    proc = subprocess.run(
        ["bash", str(script), str(NODE_DIR)], capture_output=True, text=True, timeout=600, check=False
    )
    if proc.returncode != 0:
        pytest.skip(f"could not install anvil: {proc.stderr.strip()[-400:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


# -- ABI encoding, just what the tests need ------------------------------------------------
def _word(value: int | str) -> str:
    if isinstance(value, str):  # an address
        return value.lower().removeprefix("0x").rjust(64, "0")
    return format(value, "064x")


def encode_args(*args: int | str | Sequence[str]) -> str:
    """ABI-encode static ints/addresses and dynamic address arrays (hex, no 0x)."""
    head: list[str] = []
    tail: list[str] = []
    for arg in args:
        if isinstance(arg, (list, tuple)):
            head.append("")  # offset, set below
            tail.append(_word(len(arg)) + "".join(_word(a) for a in arg))
        else:
            head.append(_word(arg))  # type: ignore[arg-type]
    offset = 32 * len(head)
    out: list[str] = []
    ti = 0
    for h in head:
        if h == "":
            out.append(_word(offset))
            offset += len(tail[ti]) // 2
            ti += 1
        else:
            out.append(h)
    return "".join(out) + "".join(tail)


@dataclass
class Compiled:
    abi: list[dict[str, Any]]
    bytecode: str
    methods: dict[str, str]  # "transfer(address,uint256)" -> selector hex


def compile_contracts(node_dir: Path = NODE_DIR) -> dict[str, Compiled]:
    """Compile tests/contracts/*.sol with solc-js; cached by source hash."""
    sources = sorted(CONTRACTS.glob("*.sol"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    cache = node_dir / f"compiled-{digest}.json"
    if not cache.exists():
        proc = subprocess.run(
            ["node", str(CONTRACTS / "compile.js"), *map(str, sources)],
            capture_output=True, timeout=300, check=False,
            env={**os.environ, "NODE_PATH": str(node_dir / "node_modules")},
        )
        if proc.returncode != 0:
            raise RuntimeError(f"solc-js failed: {proc.stderr.decode()[-2000:]}")
        cache.write_bytes(proc.stdout)
    raw = orjson.loads(cache.read_bytes())
    return {name: Compiled(c["abi"], c["bytecode"], c["methods"]) for name, c in raw.items()}


class RpcFailed(Exception):
    pass


@dataclass
class AnvilNode:
    """A running anvil with helpers to deploy contracts and send transactions."""

    binary: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    accounts: list[str] = field(default_factory=list)
    contracts: dict[str, Compiled] = field(default_factory=dict)

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, extra: Sequence[str] = ()) -> AnvilNode:
        self.process = subprocess.Popen(
            [str(self.binary), "--host", "127.0.0.1", "--port", str(self.port),
             "--chain-id", "31337", "--silent", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.rpc("eth_blockNumber")
                break
            except (httpx.HTTPError, RpcFailed):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("anvil did not start") from None
                time.sleep(0.05)
        self.accounts = [a.lower() for a in self.rpc("eth_accounts")]
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    # -- JSON-RPC ---------------------------------------------------------------------------
    def rpc(self, method: str, *params: Any) -> Any:
        body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        resp = httpx.post(self.rpc_url, content=body, headers={"content-type": "application/json"}, timeout=60)
        reply = orjson.loads(resp.content)
        if reply.get("error"):
            raise RpcFailed(f"{method}: {reply['error']}")
        return reply.get("result")

    def rpc_batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        body = orjson.dumps(
            [{"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)} for i, (m, p) in enumerate(calls)]
        )
        resp = httpx.post(self.rpc_url, content=body, headers={"content-type": "application/json"}, timeout=120)
        replies = sorted(orjson.loads(resp.content), key=lambda r: r["id"])
        for r in replies:
            if r.get("error"):
                raise RpcFailed(str(r["error"]))
        return [r.get("result") for r in replies]

    def block_number(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def balance(self, address: str, block: int | str = "latest") -> int:
        tag = hex(block) if isinstance(block, int) else block
        return int(self.rpc("eth_getBalance", address, tag), 16)

    def mine(self, blocks: int = 1) -> None:
        for _ in range(blocks):
            self.rpc("evm_mine")

    def set_automine(self, on: bool) -> None:
        self.rpc("evm_setAutomine", on)

    # -- transactions -----------------------------------------------------------------------
    def tx(self, sender: str, to: str | None = None, value: int = 0, data: str = "0x",
           gas: int | None = None) -> str:
        """Send a transaction from an unlocked dev account; returns its hash."""
        tx: dict[str, Any] = {"from": sender, "value": hex(value), "data": data}
        if to is not None:
            tx["to"] = to
        if gas is not None:
            tx["gas"] = hex(gas)
        return str(self.rpc("eth_sendTransaction", tx))

    def receipt(self, tx_hash: str) -> dict[str, Any]:
        r = self.rpc("eth_getTransactionReceipt", tx_hash)
        assert r is not None, f"no receipt for {tx_hash} (automine off?)"
        return dict(r)

    def calldata(self, contract: str, signature: str, *args: Any) -> str:
        selector = self.contracts[contract].methods[signature]
        return "0x" + selector + encode_args(*args)

    def deploy(self, contract: str, *args: Any, sender: str | None = None, value: int = 0) -> str:
        code = self.contracts[contract].bytecode + encode_args(*args)
        tx_hash = self.tx(sender or self.accounts[0], None, value, code)
        address = self.receipt(tx_hash)["contractAddress"]
        return str(address).lower()

    def call_view(self, to: str, contract: str, signature: str, *args: Any) -> int:
        out = self.rpc("eth_call", {"to": to, "data": self.calldata(contract, signature, *args)}, "latest")
        return int(out, 16)


def _start(tmp: Path | None = None) -> AnvilNode:
    binary = install_anvil()
    node = AnvilNode(binary, free_port()).start()
    node.contracts = compile_contracts()
    return node


@pytest.fixture(scope="session")
def anvil() -> Iterator[AnvilNode]:
    """One anvil for the session. Tests that change history must use ``anvil_fresh``."""
    node = _start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def anvil_fresh() -> Iterator[AnvilNode]:
    """An anvil of its own for one test (reorgs, snapshots)."""
    node = _start()
    try:
        yield node
    finally:
        node.stop()
