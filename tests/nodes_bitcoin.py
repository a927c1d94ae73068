"""Bitcoin Knots regtest fixtures (pytest plugin loaded by conftest).

``bitcoind`` (session): one node for the whole run, installed by
``scripts/install_bitcoind.sh`` into ``.nodes/bitcoin`` and started on a free
127.0.0.1 port with a temp datadir, ``-txindex=1`` and Core's default XOR of the
blk files (``blocks/xor.dat``). Tests share it safely by only *adding* blocks
and by reading heights they created themselves (``node.mine(...)`` returns
them); nothing may invalidate blocks on it. ``fresh_bitcoind`` (function scope)
gives a pristine node of its own for reorg and other destructive tests.

``make_activity(node)`` builds varied, deterministic-shape activity: payments to
legacy, p2sh-segwit, bech32 and bech32m addresses, a multi-input
consolidation, change, a bare 1-of-2 multisig output (mined with generateblock:
Knots does not relay it; the descriptor wallet cannot sign its spend, so it stays
unspent), a P2PK coinbase and an OP_RETURN output.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chainsleuth.lab.nodes import free_port  # one port picker for the lab and the tests

REPO = Path(__file__).resolve().parent.parent
NODE_DIR = REPO / ".nodes" / "bitcoin"
RPC_USER = "cs"
RPC_PASSWORD = "cs-regtest"


def install_bitcoind() -> Path:
    """Install Knots (idempotent, quick when present); skip the test when impossible."""
    if not (NODE_DIR / ".installed").exists():
        proc = subprocess.run(
            ["bash", str(REPO / "scripts" / "install_bitcoind.sh"), str(NODE_DIR)],
            capture_output=True, text=True, timeout=600, check=False,
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot install bitcoind: {proc.stderr.strip()[-500:]}")
    return NODE_DIR


class BitcoinNode:
    """A running regtest node: ``rpc_url``, ``datadir``, ``cli()``, ``rpc()``."""

    def __init__(self, bindir: Path, datadir: Path, extra_args: list[str] | None = None) -> None:
        self.bindir = bindir
        self.datadir = datadir
        self.port = free_port()
        self.rpc_url = f"http://{RPC_USER}:{RPC_PASSWORD}@127.0.0.1:{self.port}"
        args = [
            str(bindir / "bitcoind"), "-regtest", f"-datadir={datadir}", "-server",
            "-listen=0", "-dnsseed=0", "-fixedseeds=0", "-rpcbind=127.0.0.1",
            "-rpcallowip=127.0.0.1", f"-rpcport={self.port}", f"-rpcuser={RPC_USER}",
            f"-rpcpassword={RPC_PASSWORD}", "-txindex=1", "-fallbackfee=0.0002",
            "-printtoconsole=0", "-rpcthreads=8", "-rpcworkqueue=64",
            # bech32 change so that payments have modern change outputs (Knots
            # defaults to legacy change).
            "-changetype=bech32",
            *(extra_args or []),
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready()
        self.miner_address = ""

    # -- helpers ---------------------------------------------------------------------
    def cli(self, *args: str, wallet: str | None = None) -> str:
        cmd = [str(self.bindir / "bitcoin-cli"), "-regtest", "-rpcconnect=127.0.0.1",
               f"-rpcport={self.port}", f"-rpcuser={RPC_USER}", f"-rpcpassword={RPC_PASSWORD}"]
        if wallet:
            cmd.append(f"-rpcwallet={wallet}")
        proc = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"bitcoin-cli {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def rpc(self, method: str, *params: Any, wallet: str | None = None) -> Any:
        """One call through the HTTP interface (floats are fine for test assertions;
        exact amounts come from ``rpc_exact``)."""
        import httpx

        url = f"http://127.0.0.1:{self.port}/" + (f"wallet/{wallet}" if wallet else "")
        body = {"jsonrpc": "1.0", "id": 1, "method": method, "params": list(params)}
        r = httpx.post(url, json=body, auth=(RPC_USER, RPC_PASSWORD), timeout=120)
        reply = r.json()
        if reply.get("error"):
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def rpc_exact(self, method: str, *params: Any) -> Any:
        """Like :meth:`rpc` but amounts decode as ``Decimal`` (exact)."""
        import decimal

        import httpx

        body = {"jsonrpc": "1.0", "id": 1, "method": method, "params": list(params)}
        r = httpx.post(f"http://127.0.0.1:{self.port}/", json=body,
                       auth=(RPC_USER, RPC_PASSWORD), timeout=120)
        reply = json.loads(r.text, parse_float=decimal.Decimal)
        if reply.get("error"):
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"bitcoind exited early ({self.proc.returncode}): {err}")
            try:
                self.rpc("getblockchaininfo")
                return
            except Exception:
                time.sleep(0.1)
        raise RuntimeError("bitcoind did not answer RPC in time")

    def height(self) -> int:
        return int(self.rpc("getblockcount"))

    def ensure_wallet(self, name: str = "w") -> str:
        wallets = self.rpc("listwallets")
        if name not in wallets:
            self.rpc("createwallet", name)
        if not self.miner_address:
            self.miner_address = self.rpc("getnewaddress", "", "bech32", wallet=name)
        return name

    def mine(self, n: int = 1, address: str | None = None) -> list[int]:
        """Mine n blocks; returns their heights."""
        self.ensure_wallet()
        hashes = self.rpc("generatetoaddress", n, address or self.miner_address)
        top = self.height()
        return list(range(top - len(hashes) + 1, top + 1))

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.rpc("stop")
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stderr:
            self.proc.stderr.close()


def make_activity(node: BitcoinNode, wallet: str = "w") -> tuple[int, int]:
    """Varied activity in new blocks; returns (first, last) heights it mined."""
    node.ensure_wallet(wallet)
    first = node.height() + 1
    if node.height() < 110:
        node.mine(110 - node.height())
    w = wallet
    addrs = {t: node.rpc("getnewaddress", "", t, wallet=w)
             for t in ("legacy", "p2sh-segwit", "bech32", "bech32m")}
    for t, a in addrs.items():  # one payment per address type (each with change)
        node.rpc("sendtoaddress", a, {"legacy": 1.1, "p2sh-segwit": 2.2, "bech32": 3.3,
                                      "bech32m": 0.12345678}[t], wallet=w)
    # many small outputs in one tx, then a consolidation spending many of them
    small = {node.rpc("getnewaddress", "", "bech32", wallet=w): 0.01 * (k + 1) for k in range(8)}
    node.rpc("sendmany", "", {a: round(v, 8) for a, v in small.items()}, wallet=w)
    node.mine(1)
    target = node.rpc("getnewaddress", "", "bech32m", wallet=w)
    utxos = [u for u in node.rpc("listunspent", 1, 9999999, list(small), wallet=w)]
    inputs = [{"txid": u["txid"], "vout": u["vout"]} for u in utxos]
    total = sum(round(u["amount"] * 1e8) for u in utxos)
    raw = node.rpc("createrawtransaction", inputs, [{target: (total - 5000) / 1e8}])
    signed = node.rpc("signrawtransactionwithwallet", raw, wallet=w)
    node.rpc("sendrawtransaction", signed["hex"])
    # OP_RETURN (nulldata) with change
    raw = node.rpc("createrawtransaction", [], [{"data": "636861696e736c65757468"}])
    funded = node.rpc("fundrawtransaction", raw, wallet=w)
    signed = node.rpc("signrawtransactionwithwallet", funded["hex"], wallet=w)
    node.rpc("sendrawtransaction", signed["hex"])
    # bare 1-of-2 multisig output, then spend it (prevout of type multisig)
    k1 = node.rpc("getaddressinfo", addrs["bech32"], wallet=w)["pubkey"]
    k2 = node.rpc("getaddressinfo", node.rpc("getnewaddress", "", "bech32", wallet=w), wallet=w)["pubkey"]
    script = "51" + "21" + k1 + "21" + k2 + "52ae"
    spend_from = next(u for u in node.rpc("listunspent", 0, 9999999, wallet=w) if u["amount"] > 1)
    change = node.rpc("getnewaddress", "", "bech32", wallet=w)
    amount_in = round(spend_from["amount"] * 1e8)
    tx_hex = _build_tx(node, [(spend_from["txid"], spend_from["vout"])],
                       [(script, 50_000_000), (None, amount_in - 50_000_000 - 10_000, change)])
    signed = node.rpc("signrawtransactionwithwallet", tx_hex, wallet=w)
    # Knots' relay policy refuses bare multisig outputs; generateblock mines a tx
    # without the mempool policy (consensus checks only).
    node.mine(1)  # confirm the mempool first: generateblock takes only the given txs
    node.rpc("generateblock", node.miner_address, [signed["hex"]])
    # a P2PK output (coinbase to a pubkey), the address-less type of new Core
    node.rpc("generatetodescriptor", 1, f"pk({k1})")
    node.mine(101)  # matures the P2PK coinbase; confirms everything
    return first, node.height()


def send_raw(node: BitcoinNode, wallet: str, ins: list[tuple[str, int]],
             outs: list[tuple[str, int]]) -> str:
    """Spend exactly ``ins`` (txid, vout) to ``outs`` (address, satoshi), signed by ``wallet``."""
    raw = node.rpc("createrawtransaction", [{"txid": t, "vout": v} for t, v in ins],
                   [{a: f"{s / 1e8:.8f}"} for a, s in outs])  # fmt: skip
    signed = node.rpc("signrawtransactionwithwallet", raw, wallet=wallet)
    assert signed["complete"]
    return str(node.rpc("sendrawtransaction", signed["hex"]))


def vout_of(node: BitcoinNode, txid: str, address: str) -> int:
    """Index of the output of ``txid`` paying ``address``."""
    tx = node.rpc("getrawtransaction", txid, True)
    return next(o["n"] for o in tx["vout"] if o["scriptPubKey"].get("address") == address)


def _build_tx(node: BitcoinNode, ins: list[tuple[str, int]], outs: list[Any]) -> str:
    """A raw tx with arbitrary scriptPubKeys: create it with placeholder outputs,
    then swap the first output's script with bitcoin-tx-free hex editing."""
    # createrawtransaction cannot take a raw script; decode its result and rebuild.
    placeholder = node.rpc("getnewaddress", "", "legacy", wallet="w")
    outputs = []
    for o in outs:
        if o[0] is None:
            outputs.append({o[2]: o[1] / 1e8})
        else:
            outputs.append({placeholder: o[1] / 1e8})
    raw = node.rpc("createrawtransaction", [{"txid": t, "vout": v} for t, v in ins], outputs)
    decoded = node.rpc("decoderawtransaction", raw)
    old = decoded["vout"][0]["scriptPubKey"]["hex"]
    new = outs[0][0]
    old_frag = f"{len(old) // 2:02x}{old}"
    new_frag = f"{len(new) // 2:02x}{new}"
    assert raw.count(old_frag) == 1
    return raw.replace(old_frag, new_frag)


def _start(datadir: Path) -> BitcoinNode:
    bindir = install_bitcoind()
    datadir.mkdir(parents=True, exist_ok=True)
    return BitcoinNode(bindir, datadir)


@pytest.fixture(scope="session")
def bitcoind() -> Iterator[BitcoinNode]:
    """The shared regtest node (see the module docstring for the sharing rule)."""
    datadir = Path(tempfile.mkdtemp(prefix="cs-bitcoind-"))
    node = _start(datadir)
    try:
        node.ensure_wallet()
        yield node
    finally:
        node.stop()
        shutil.rmtree(datadir, ignore_errors=True)


@pytest.fixture
def fresh_bitcoind(tmp_path: Path) -> Iterator[BitcoinNode]:
    """A pristine node of the test's own (for reorgs and other destructive tests)."""
    node = _start(tmp_path / "bitcoind")
    try:
        node.ensure_wallet()
        yield node
    finally:
        node.stop()
