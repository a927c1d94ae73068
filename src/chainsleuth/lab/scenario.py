"""The heist scenario: services, background users and the laundering run, on live nodes.

Typology (docs/lab.md has the sources): Bybit 2025, Ronin 2022 and Harmony 2022
were all drained from an exchange/bridge hot wallet, split at once across many
fresh addresses, stablecoins swapped to ETH on DEXes (stablecoins can be
frozen), part mixed through Tornado Cash, part bridged to Bitcoin, then peel
chains, consolidation and cash-out at exchanges and OTC brokers.

Everything the scenario does to stolen value it writes in its own books
(:class:`Books`), from the receipts and the transactions it built: that is the
ground truth, independent of any trace engine. The books are checked against
the chains at the end (every thief address's balance and every unspent output
must be what the books say), so a bookkeeping slip fails the run.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ChainsleuthError, ConfigError
from ..progress import NullProgress, Progress
from .btc import Utxo, Wallets
from .compile import Compiled
from .evm import Anvil, address_of, calldata, encode, keccak256, private_key

ETH = "ETH"
BTC = "BTC"
WEI = 10**18
SWAP_TOPIC = "0xd78ad95fa46c994b6551d0da85fc275fe613ce37657fb8d5e3d130840159d822"
LOCKED_TOPIC = "0x6cc5b4132852c3b3dd8423c5e97c4ea0f7123ff59f5b90e8022d744f3b3a6867"
# The bridge's fixed price: 1 BTC = 20 ETH, i.e. satoshi = wei // 2e11 (flows.match_bridges rate).
BRIDGE_RATE = (1, 200_000_000_000)
BRIDGE_FEE_BPS = 10  # the relayer keeps 0.1 %
ETH_USD = 2_500
MAX_UINT = 2**256 - 1


class LabError(ChainsleuthError):
    """The lab could not play its scenario (a node refused a step, the books disagree)."""


@dataclass(frozen=True)
class Scale:
    name: str
    stolen_eth: int  # whole ETH
    stolen_usdt: int  # whole tokens
    stolen_usdc: int
    splits: int  # fresh addresses of the first split
    eth_layers: int  # forwarding hops after the split
    denomination: int  # mixer note the thief uses, whole ETH
    bridge_locks: int
    users: int  # background users per chain
    background: int  # background actions in all
    hops: int  # peel hops per chain on the Bitcoin side


# Core/Knots refuse a transaction with 25 or more unconfirmed ancestors
# (-limitancestorcount, "too-long-mempool-chain"); a peel chain longer than this gets a
# block in between. The presets' chains are shorter, so their runs have no extra block.
PEEL_HOPS_PER_BLOCK = 20

SCALES: dict[str, Scale] = {
    "tiny": Scale("tiny", 60, 50_000, 25_000, 3, 1, 5, 2, 3, 30, 2),
    "small": Scale("small", 300, 400_000, 200_000, 6, 1, 10, 3, 8, 200, 3),
    "default": Scale("default", 3_000, 4_000_000, 2_000_000, 20, 2, 100, 8, 40, 5_000, 6),
    "large": Scale("large", 20_000, 30_000_000, 15_000_000, 60, 3, 100, 20, 100, 30_000, 10),
}


@dataclass(frozen=True)
class Delays:
    """Seconds between the scenario's stages (the Bybit run took days; defaults are hours)."""

    eth_block: int = 12
    split: int = 900  # theft -> first split
    swap: int = 1_800
    mixer: int = 6 * 3_600  # last deposit -> first withdrawal
    bridge: int = 1_200  # lock -> relayer payout
    peel: int = 1_800  # between peel hops
    cashout: int = 3 * 3_600  # before the exchange and OTC deposits

    @staticmethod
    def parse(spec: str | None) -> Delays:
        """``split=600,mixer=3600`` -> Delays (unknown keys and non-integers are errors)."""
        if not spec:
            return Delays()
        values: dict[str, int] = {}
        known = set(Delays.__dataclass_fields__)
        for part in spec.split(","):
            key, _, val = part.partition("=")
            key = key.strip()
            if key not in known:
                raise ConfigError(f"--delays: unknown stage {key!r} (known: {', '.join(sorted(known))})")
            try:
                values[key] = int(val)
            except ValueError:
                raise ConfigError(f"--delays: {key} needs whole seconds, not {val!r}") from None
            if values[key] < 1:
                raise ConfigError(f"--delays: {key} must be at least 1 second")
        return Delays(**values)


# -- the books -------------------------------------------------------------------------------
@dataclass
class Books:
    """What the lab did with stolen value (ground truth rows, see ground_truth.py)."""

    stolen: list[dict[str, Any]] = field(default_factory=list)
    endpoints: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    conversions: list[dict[str, Any]] = field(default_factory=list)
    seeds: list[dict[str, Any]] = field(default_factory=list)
    services: list[dict[str, Any]] = field(default_factory=list)
    theft: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # account chains: (address, asset) -> stolen value held; UTXO: outpoint -> (address, value)
    held: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    coins: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)

    def step(self, chain: str, tx: str, step: str) -> None:
        self.steps.append({"chain": chain, "transaction_hash": tx, "step": step})

    def credit(self, chain: str, address: str, asset: str, value: int, tx: str, step: str) -> None:
        self.held[(address, asset)] += value
        self.stolen.append({"chain": chain, "address": address, "transaction_hash": tx,
                            "output_index": None, "asset": asset, "value": value, "step": step})

    def debit(self, address: str, asset: str, value: int) -> None:
        have = self.held[(address, asset)]
        if value > have:
            raise LabError(f"books: {address} spends {value} {asset} but holds {have}")
        self.held[(address, asset)] = have - value

    def coin(self, chain: str, txid: str, vout: int, address: str, value: int, step: str) -> Utxo:
        self.coins[(txid, vout)] = (address, value)
        self.stolen.append({"chain": chain, "address": address, "transaction_hash": txid,
                            "output_index": vout, "asset": BTC, "value": value, "step": step})
        return Utxo(txid, vout, address, value)

    def endpoint(self, chain: str, service: str, kind: str, address: str, tx: str | None,
                 asset: str, value: int) -> None:
        if value:
            self.endpoints.append({"chain": chain, "service": service, "kind": kind, "address": address,
                                   "transaction_hash": tx, "asset": asset, "value": value})

    def service(self, chain: str, service: str, kind: str, role: str, address: str) -> None:
        self.services.append({"chain": chain, "service": service, "kind": kind, "role": role,
                              "address": address})


@dataclass
class Note:
    pool: str
    denomination: int  # wei
    deposit_tx: str
    commitment: str
    nullifier: str
    thief: bool


@dataclass
class _Pending:
    tx: str
    sender: str
    step: str
    on_receipt: Callable[[dict[str, Any]], None] | None


# -- the scenario ----------------------------------------------------------------------------
class Scenario:
    """Plays the setup, the background traffic and the heist on the two nodes."""

    def __init__(self, seed: int, scale: Scale, delays: Delays, anvil: Anvil, wallets: Wallets,
                 compiled: Compiled, eth_chain: str, btc_chain: str, start_time: int,
                 progress: Progress | None = None) -> None:
        self.seed = seed
        self.scale = scale
        self.delays = delays
        self.anvil = anvil
        self.w = wallets
        self.compiled = compiled
        self.eth_chain = eth_chain
        self.btc_chain = btc_chain
        self.now = start_time
        self.rng = random.Random(seed)
        self.books = Books()
        self.progress = progress or NullProgress()
        self.pending: list[_Pending] = []
        self.nonces: dict[str, int] = {}
        self.thief_set: set[str] = set()
        self.labels: dict[str, int] = defaultdict(int)
        self.notes: list[Note] = []
        self.notes_made = 0
        self.queued_out: dict[tuple[str, str], int] = defaultdict(int)
        self.block_prices: dict[str, int] = {}
        self.eth_blocks = 0
        self.btc_blocks = 0
        self.eth_txs = 0
        self.btc_txs = 0
        self.miner_address = ""
        self.btc_ready = False
        self.last_btc = start_time

    # -- keys and addresses -------------------------------------------------------------------
    def eth_address(self, label: str) -> str:
        return address_of(private_key(self.seed, label))

    def fresh(self, role: str) -> str:
        self.labels[role] += 1
        return self.eth_address(f"{role}/{self.labels[role]}")

    def fresh_thief(self) -> str:
        a = self.fresh("thief")
        self.thief_set.add(a)
        return a

    def gas_price(self, sender: str) -> int:
        """1.5 .. 4 gwei, legacy pricing (exact fees). A sender's prices never rise within a
        block: a node ordering by fee (anvil's default) drops a later nonce that outbids
        an earlier one."""
        gp = self.rng.randrange(15, 40) * 10**8
        gp = min(gp, self.block_prices.get(sender, gp))
        self.block_prices[sender] = gp
        return gp

    # -- EVM transactions -------------------------------------------------------------------
    def send(self, sender: str, to: str | None, value: int = 0, data: str = "0x", gas: int = 21_000,
             step: str = "background", on_receipt: Callable[[dict[str, Any]], None] | None = None,
             gas_price: int | None = None) -> str:
        """Queue a transaction for the next block (explicit nonce, gas limit and legacy gas
        price, so that nothing depends on the node's estimates); returns its hash."""
        if sender not in self.nonces:
            self.nonces[sender] = int(self.anvil.rpc("eth_getTransactionCount", sender, "latest"), 16)
        price = self.gas_price(sender) if gas_price is None else gas_price
        tx: dict[str, Any] = {"from": sender, "value": hex(value), "data": data, "gas": hex(gas),
                              "gasPrice": hex(price), "nonce": hex(self.nonces[sender])}
        if to is not None:
            tx["to"] = to
        tx_hash = str(self.anvil.rpc("eth_sendTransaction", tx))
        self.nonces[sender] += 1
        self.pending.append(_Pending(tx_hash, sender, step, on_receipt))
        return tx_hash

    def mine_eth(self, seconds: int | None = None) -> list[dict[str, Any]]:
        """Mine one block ``seconds`` after the clock (default one block time); checks every
        receipt, books the thieves' gas, runs the callbacks. Returns the receipts."""
        self.now += self.delays.eth_block if seconds is None else seconds
        self.anvil.rpc("evm_setNextBlockTimestamp", self.now)
        self.anvil.rpc("evm_mine")
        pending, self.pending = self.pending, []
        self.queued_out.clear()
        self.block_prices.clear()
        receipts = self.anvil.batch([("eth_getTransactionReceipt", (p.tx,)) for p in pending])
        gas_prices = self.anvil.batch([("eth_getTransactionByHash", (p.tx,)) for p in pending])
        for p, r, t in zip(pending, receipts, gas_prices, strict=True):
            if r is None:
                raise LabError(f"transaction {p.tx} ({p.step}) was not mined")
            if int(r["status"], 16) != 1:
                raise LabError(f"transaction {p.tx} ({p.step}) reverted")
            self.books.step(self.eth_chain, p.tx, p.step)
            if p.sender in self.thief_set:
                fee = int(r["gasUsed"], 16) * int(t["gasPrice"], 16)
                self.books.debit(p.sender, ETH, fee)
                self.books.endpoint(self.eth_chain, "gas", "fee", p.sender, p.tx, ETH, fee)
            if p.on_receipt is not None:
                p.on_receipt(r)
        self.eth_blocks += 1
        self.eth_txs += len(pending)
        self.progress.advance(1, len(pending))
        if self.btc_ready and self.now - self.last_btc >= 600:
            self.mine_btc()
        return list(receipts)

    def deploy(self, name: str, args: str = "") -> str:
        tx = self.send(self.treasury, None, 0, self.compiled.contracts[name].bytecode + args, gas=6_000_000,
                       step="setup")
        receipts = self.mine_eth()
        r = next(r for r in receipts if r["transactionHash"] == tx)
        return str(r["contractAddress"]).lower()

    def token_balance(self, token: str, holder: str) -> int:
        return int.from_bytes(self.anvil.call(token, calldata("balanceOf(address)", holder)), "big")

    # -- Bitcoin transactions -----------------------------------------------------------------
    def mine_btc(self) -> None:
        self.last_btc = self.now
        self.w.rpc.call("setmocktime", self.now)
        self.w.rpc.call("generatetoaddress", 1, self.miner_address)
        self.btc_blocks += 1
        self.progress.advance(1, 0)

    def btc_step(self, txid: str, step: str) -> None:
        self.books.step(self.btc_chain, txid, step)
        self.btc_txs += 1

    # =========================================================================================
    def setup(self) -> None:
        s, sc = self.seed, self.scale
        self.progress.message("setup: contracts, liquidity, services and users")
        self.treasury = self.eth_address("treasury")
        self.anvil.rpc("anvil_autoImpersonateAccount", True)
        self.anvil.rpc("evm_setAutomine", False)  # blocks are mined by the lab, at its clock
        self.anvil.rpc("anvil_setBalance", self.treasury, hex(10_000_000 * WEI))
        self.usdt = self.deploy("LabToken", encode(["string", "string", "uint8"], ["Tether USD (lab)", "USDT", 6]).hex())
        self.usdc = self.deploy("LabToken", encode(["string", "string", "uint8"], ["USD Coin (lab)", "USDC", 6]).hex())
        self.weth = self.deploy("WETH9")
        self.factory = self.deploy("UniswapV2Factory")
        self.router = self.deploy("UniswapV2Router", encode(["address", "address"], [self.factory, self.weth]).hex())
        self.mixer_operator = self.eth_address("mixer/operator")
        self.pools: dict[int, str] = {}
        for denom in sorted({1, 10, sc.denomination}):
            self.pools[denom] = self.deploy(
                "Mixer", encode(["uint256", "address"], [denom * WEI, self.mixer_operator]).hex())
        self.bridge_relayer_eth = self.eth_address("bridge/relayer")
        self.bridge = self.deploy("LabBridge", encode(["address"], [self.bridge_relayer_eth]).hex())

        # liquidity: pools ~10x the stolen stablecoins, price 1 ETH = ETH_USD
        depth = 10 * max(sc.stolen_usdt, 1_000_000)
        for tok in (self.usdt, self.usdc):
            self.send(self.treasury, tok, 0, calldata("mint(address,uint256)", self.treasury, 10 * depth * 10**6),
                      gas=100_000, step="setup")
            self.send(self.treasury, tok, 0, calldata("approve(address,uint256)", self.router, MAX_UINT),
                      gas=100_000, step="setup")
        self.mine_eth()
        for tok in (self.usdt, self.usdc):
            self.send(self.treasury, self.router, depth // ETH_USD * WEI,
                      calldata("addLiquidityETH(address,uint256,address)", tok, depth * 10**6, self.treasury),
                      gas=4_000_000, step="setup")
        self.send(self.treasury, self.router, 0,
                  calldata("addLiquidity(address,address,uint256,uint256,address)", self.usdt, self.usdc,
                           depth * 10**6, depth * 10**6, self.treasury), gas=4_000_000, step="setup")
        self.mine_eth()
        self.pairs = [str(self.anvil.call(self.factory, calldata("getPair(address,address)", a, b))[-20:].hex())
                      for a, b in ((self.usdt, self.weth), (self.usdc, self.weth), (self.usdt, self.usdc))]
        self.pairs = ["0x" + p for p in self.pairs]

        # services (ETH side)
        self.victim = "northwind"
        self.exchanges = ["kestrel", "meridian"]
        self.otc = "harbor-otc"
        self.hot = {x: self.eth_address(f"{x}/hot") for x in [self.victim, *self.exchanges]}
        self.otc_eth = self.eth_address(f"{self.otc}/desk")
        self.deposits: dict[tuple[str, str], str] = {}  # (exchange, customer) -> deposit address
        fund = [(self.hot[self.victim], 2 * sc.stolen_eth * WEI), (self.mixer_operator, 100 * WEI),
                (self.bridge_relayer_eth, 10 * WEI)]
        fund += [(self.hot[x], max(100, sc.stolen_eth // 4) * WEI) for x in self.exchanges]
        fund.append((self.otc_eth, 50 * WEI))
        self.users = [self.eth_address(f"user/{i}") for i in range(sc.users)]
        fund += [(u, (5 * sc.denomination + 200 + self.rng.randrange(0, 300)) * WEI) for u in self.users]
        for addr, value in fund:
            self.send(self.treasury, addr, value, step="setup")
        for tok, amount in ((self.usdt, sc.stolen_usdt), (self.usdc, sc.stolen_usdc)):
            self.send(self.treasury, tok, 0,
                      calldata("transfer(address,uint256)", self.hot[self.victim], 2 * amount * 10**6),
                      gas=100_000, step="setup")
            for u in self.users:
                self.send(self.treasury, tok, 0, calldata("transfer(address,uint256)", u,
                                                          self.rng.randrange(1_000, 50_000) * 10**6),
                          gas=100_000, step="setup")
        self.mine_eth()

        b = self.books
        for x in [self.victim, *self.exchanges]:
            b.service(self.eth_chain, x, "exchange", "hot_wallet", self.hot[x])
        b.service(self.eth_chain, self.otc, "otc", "desk", self.otc_eth)
        for d, pool in self.pools.items():
            b.service(self.eth_chain, f"mixer-{d}eth", "mixer", "pool", pool)
        b.service(self.eth_chain, "lab-bridge", "bridge", "contract", self.bridge)
        b.service(self.eth_chain, "uniswap-v2-lab", "dex", "router", self.router)
        b.service(self.eth_chain, "uniswap-v2-lab", "dex", "factory", self.factory)
        for p in self.pairs:
            b.service(self.eth_chain, "uniswap-v2-lab", "dex", "pair", p)
        b.service(self.eth_chain, "weth", "token", "wrapped_native", self.weth)

        # Bitcoin side: seeded wallets, coinbase funds, services and users
        for name in ["miner", "bridge", "thief", "harbor-otc", *self.exchanges,
                     *(f"user{i}" for i in range(sc.users))]:
            self.w.create(name, keccak256(f"chainsleuth-lab/{s}/btc/{name}".encode()))
        self.miner_address = self.w.new_address("miner")
        self.btc_vault = self.w.new_address("bridge")
        self.btc_hot = {x: self.w.new_address(x) for x in self.exchanges}
        self.btc_otc = self.w.new_address("harbor-otc")
        self.btc_users = {i: self.w.new_address(f"user{i}") for i in range(sc.users)}
        # the relayer's float covers every ETH the thief could bridge (theft + swapped stablecoins)
        bridgeable = (sc.stolen_eth + (sc.stolen_usdt + sc.stolen_usdc) // ETH_USD) * WEI
        bridged_btc = bridgeable * BRIDGE_RATE[0] // BRIDGE_RATE[1] + 50 * 10**8
        outs = [(self.btc_vault, bridged_btc)] + [(self.btc_hot[x], 40 * 10**8) for x in self.exchanges]
        outs += [(self.btc_users[i], (2 + self.rng.randrange(0, 20)) * 10**8) for i in range(sc.users)]
        need = sum(v for _, v in outs)
        blocks = 101 + -(-need // (25 * 10**8)) + 2  # coinbase: 50 BTC, 25 after regtest's first halving
        self.w.rpc.call("setmocktime", self.now)
        self.w.rpc.call("generatetoaddress", blocks, self.miner_address)
        self.btc_blocks += blocks
        # coinbase coins are 50 BTC each: pay in chunks so that each payment fits in a few coins
        while outs:
            chunk, outs = outs[:6], outs[6:]
            txid, _, _ = self.w.pay("miner", chunk)
            self.btc_step(txid, "setup")
        self.mine_btc()
        for x in self.exchanges:
            b.service(self.btc_chain, x, "exchange", "hot_wallet", self.btc_hot[x])
        b.service(self.btc_chain, self.otc, "otc", "desk", self.btc_otc)
        b.service(self.btc_chain, "lab-bridge", "bridge", "relayer_vault", self.btc_vault)
        self.btc_ready = True

    # -- background traffic -------------------------------------------------------------------
    def deposit_address(self, exchange: str, customer: str) -> str:
        key = (exchange, customer)
        if key not in self.deposits:
            self.deposits[key] = self.eth_address(f"{exchange}/deposit/{customer}")
            self.books.service(self.eth_chain, exchange, "exchange", "deposit", self.deposits[key])
        return self.deposits[key]

    def can_spend(self, addr: str, value: int, token: str | None = None) -> bool:
        """Whether ``addr`` still has ``value`` (plus gas) after what it queued in this block."""
        key = (addr, token or ETH)
        have = self.anvil.balance(addr) if token is None else self.token_balance(token, addr)
        need = value + (10**17 if token is None else 0)
        if have - self.queued_out[key] < need:
            return False
        self.queued_out[key] += need
        return True

    def background(self, n: int) -> None:
        """Queue ``n`` ordinary actions on both chains (mined with the next blocks); an action
        whose sender lacks the funds is skipped."""
        rng = self.rng
        for _ in range(n):
            kind = rng.choices(["pay", "token", "swap", "exdep", "exwd", "mix", "unmix", "btcpay", "btcdep",
                                "btcwd"], weights=[20, 12, 8, 10, 8, 5, 5, 14, 10, 8])[0]
            u, v = rng.sample(self.users, 2)
            value = rng.randrange(1, 500) * 10**16
            if kind == "pay":
                if self.can_spend(u, value):
                    self.send(u, v, value)
            elif kind == "token":
                tok = rng.choice([self.usdt, self.usdc])
                amount = rng.randrange(10, 900) * 10**6
                if self.can_spend(u, amount, tok) and self.can_spend(u, 0):
                    self.send(u, tok, 0, calldata("transfer(address,uint256)", v, amount), gas=80_000)
            elif kind == "swap":
                tok = rng.choice([self.usdt, self.usdc])
                value = value // 3
                if self.can_spend(u, value):
                    self.send(u, self.router, value,
                              calldata("swapExactETHForTokens(uint256,address[],address)", 0, [self.weth, tok], u),
                              gas=250_000)
            elif kind == "exdep":
                x = rng.choice(self.exchanges)
                if self.can_spend(u, value):
                    self.send(u, self.deposit_address(x, u), value)
            elif kind == "exwd":
                x = rng.choice(self.exchanges)
                if self.can_spend(self.hot[x], value):
                    self.send(self.hot[x], u, value)
            elif kind == "mix":
                denom = rng.choice(sorted(self.pools))
                if (denom <= 10 or rng.random() < 0.5) and self.can_spend(u, denom * WEI):
                    self.mixer_deposit(u, denom, thief=False)
            elif kind == "unmix":
                waiting = [n for n in self.notes if not n.thief and n.deposit_tx]  # deposit mined
                if waiting:
                    note = waiting[0]
                    self.mixer_withdraw(note, self.fresh("user-fresh"))
            else:
                self.btc_background(kind)

    def traffic(self, actions: int, duration: int) -> None:
        """Mine what is queued at once, then ``actions`` background actions spread over blocks
        until ``duration`` seconds have passed (a Bitcoin block about every 10 minutes)."""
        step = self.delays.eth_block
        blocks = max(1, min(actions // 6 + 1, duration // step))
        spacing = max(step, (duration - step) // blocks)
        per, extra = divmod(actions, blocks)
        self.mine_eth(step)
        for k in range(blocks):
            self.background(per + (1 if k < extra else 0))
            self.mine_eth(spacing + self.rng.randrange(0, 3) * step if spacing > 3 * step else spacing)

    def btc_background(self, kind: str) -> None:
        """One ordinary Bitcoin payment. Background spends confirmed coins only, so that
        unconfirmed chains stay short (Core/Knots refuse more than 25 ancestors)."""
        rng = self.rng
        i, j = rng.sample(range(len(self.btc_users)), 2)
        amount = rng.randrange(1, 200) * 10**6
        if kind == "btcwd":
            x = rng.choice(self.exchanges)
            if sum(u.value for u in self.w.utxos(x, [self.btc_hot[x]], 1)) < amount + 10**6:
                return
            txid, _, _ = self.w.pay(x, [(self.w.new_address(f"user{j}"), amount)],
                                    change=self.btc_hot[x], from_addresses=[self.btc_hot[x]], minconf=1)
            self.btc_step(txid, "background")
            return
        if sum(u.value for u in self.w.utxos(f"user{i}", None, 1)) < amount + 10**6:
            return
        if kind == "btcpay":
            to = self.w.new_address(f"user{j}")
        else:
            x = rng.choice(self.exchanges)
            to = self.w.new_address(x)
            self.books.service(self.btc_chain, x, "exchange", "deposit", to)
        txid, _, _ = self.w.pay(f"user{i}", [(to, amount)], minconf=1)
        self.btc_step(txid, "background")

    def sweeps(self) -> None:
        """Exchanges sweep their deposit addresses into the hot wallets (both chains)."""
        addrs = list(self.deposits.items())
        balances = self.anvil.balances([a for _, a in addrs])
        for ((x, _), dep), bal in zip(addrs, balances, strict=True):
            gp = self.gas_price(dep)
            if bal > 21_000 * gp:
                self.send_exact(dep, self.hot[x], bal - 21_000 * gp, gp)
        for x in self.exchanges:
            coins = [u for u in self.w.utxos(x, None, 1) if u.address != self.btc_hot[x]]
            if coins:
                coins.sort(key=lambda u: (u.txid, u.vout))
                fee = self.w.fee(len(coins), 1)
                txid = self.w.spend(x, coins, [(self.btc_hot[x], sum(u.value for u in coins) - fee)])
                self.btc_step(txid, "background")

    def send_exact(self, sender: str, to: str, value: int, gas_price: int, step: str = "background",
                   on_receipt: Callable[[dict[str, Any]], None] | None = None) -> str:
        """A plain transfer at a given gas price (so that ``value`` can be the balance less the fee)."""
        return self.send(sender, to, value, step=step, on_receipt=on_receipt, gas_price=gas_price)

    # -- mixer ----------------------------------------------------------------------------------
    def mixer_deposit(self, sender: str, denom: int, thief: bool) -> None:
        k = self.notes_made
        self.notes_made += 1
        commitment = "0x" + keccak256(f"lab/{self.seed}/commitment/{k}".encode()).hex()
        nullifier = "0x" + keccak256(f"lab/{self.seed}/nullifier/{k}".encode()).hex()
        pool = self.pools[denom]
        note = Note(pool, denom * WEI, "", commitment, nullifier, thief)
        self.notes.append(note)

        def booked(r: dict[str, Any]) -> None:
            note.deposit_tx = r["transactionHash"]
            if thief:
                self.books.debit(sender, ETH, note.denomination)

        self.send(sender, pool, denom * WEI, calldata("deposit(bytes32)", commitment), gas=150_000,
                  step="mixer_deposit" if thief else "background", on_receipt=booked)

    def mixer_withdraw(self, note: Note, recipient: str) -> None:
        self.notes.remove(note)

        def booked(r: dict[str, Any]) -> None:
            if note.thief:
                self.books.credit(self.eth_chain, recipient, ETH, note.denomination, r["transactionHash"],
                                  "mixer_withdraw")

        self.send(self.mixer_operator, note.pool, 0,
                  calldata("withdraw(bytes32,address,address,uint256)", note.nullifier, recipient,
                           self.mixer_operator, 0),
                  gas=150_000, step="mixer_withdraw" if note.thief else "background", on_receipt=booked)

    # =========================================================================================
    def heist(self) -> None:
        sc, d, b, rng = self.scale, self.delays, self.books, self.rng
        chain = self.eth_chain

        def pct(p: int) -> int:
            return sc.background * p // 100

        self.traffic(pct(15), 3 * 3_600)
        self.sweeps()
        self.mine_eth()
        self.mine_btc()

        # 1. theft from the victim's hot wallet (one drain address, as in Bybit and Ronin)
        self.progress.message("heist: theft from the exchange hot wallet")
        seed_addr = self.fresh_thief()
        victim = self.hot[self.victim]
        b.seeds += [{"chain": chain, "address": seed_addr, "role": "thief"},
                    {"chain": chain, "address": victim, "role": "victim"}]
        stolen = {ETH: sc.stolen_eth * WEI, self.usdt: sc.stolen_usdt * 10**6, self.usdc: sc.stolen_usdc * 10**6}
        for asset, value in stolen.items():
            b.theft[asset] += value

            def took(r: dict[str, Any], asset: str = asset, value: int = value) -> None:
                b.credit(chain, seed_addr, asset, value, r["transactionHash"], "theft")

            if asset == ETH:
                self.send(victim, seed_addr, value, step="theft", on_receipt=took)
            else:
                self.send(victim, asset, 0, calldata("transfer(address,uint256)", seed_addr, value), gas=100_000,
                          step="theft", on_receipt=took)
        self.traffic(pct(2), d.split)

        # 2. split: tokens first, then all the ETH, across fresh addresses
        self.progress.message("heist: split across fresh addresses")
        splits = [self.fresh_thief() for _ in range(sc.splits)]
        token_holders: list[tuple[str, str]] = []
        for tok in (self.usdt, self.usdc):
            holders = rng.sample(splits, max(1, len(splits) // 2))
            parts = self._shares(stolen[tok], len(holders))
            for h, part in zip(holders, parts, strict=True):
                token_holders.append((h, tok))
                self._move_token(seed_addr, h, tok, part, "split")
        self.traffic(pct(3), 300)
        self._spread_eth(seed_addr, splits, "split")
        self.traffic(pct(3), d.swap)

        # 3. swaps: stablecoins to ETH on the DEX (approve, then swap)
        self.progress.message("heist: stablecoins swapped to ETH")
        for h, tok in token_holders:
            self.send(h, tok, 0, calldata("approve(address,uint256)", self.router, MAX_UINT), gas=60_000,
                      step="swap")
        self.traffic(pct(2), 120)
        for h, tok in token_holders:
            amount = b.held[(h, tok)]

            def swapped(r: dict[str, Any], h: str = h, tok: str = tok, amount: int = amount) -> None:
                out = _swap_out(r)
                b.debit(h, tok, amount)
                b.credit(chain, h, ETH, out, r["transactionHash"], "swap")
                b.conversions.append({"src_chain": chain, "src_transaction_hash": r["transactionHash"],
                                      "src_asset": tok, "src_value": amount, "dst_chain": chain,
                                      "dst_transaction_hash": r["transactionHash"], "dst_asset": ETH,
                                      "dst_value": out, "step": "swap"})

            self.send(h, self.router, 0, calldata("swapExactTokensForETH(uint256,uint256,address[],address)",
                                                  amount, 0, [tok, self.weth], h),
                      gas=300_000, step="swap", on_receipt=swapped)
        self.traffic(pct(3), 1_800)

        # 4. layering: each split address forwards everything to a fresh one, eth_layers times
        layer = splits
        for _ in range(sc.eth_layers):
            nxt = [self.fresh_thief() for _ in layer]
            for a, z in zip(layer, nxt, strict=True):
                self._forward_all(a, z, "split")
            self.traffic(pct(3), rng.randrange(600, 3_600))
            layer = nxt
        holders = layer

        # 5. mixer deposits: about 40 % of the ETH in whole notes
        self.progress.message("heist: mixer deposits")
        total = sum(b.held[(a, ETH)] for a in holders)
        notes_left = int(0.4 * total) // (sc.denomination * WEI)
        reserve = 10**17  # keep 0.1 ETH for gas
        for a in holders:
            queued = 0
            while notes_left and queued < 5 and b.held[(a, ETH)] - 2 * reserve >= sc.denomination * WEI * (queued + 1):
                self.mixer_deposit(a, sc.denomination, thief=True)
                notes_left -= 1
                queued += 1
        self.traffic(pct(25), d.mixer)

        # 6. withdrawals to fresh addresses: 80 % of the notes (the rest still sits in the pool)
        thief_notes = [n for n in self.notes if n.thief]
        withdrawn = thief_notes[: max(1, (len(thief_notes) * 4) // 5)]
        fresh_out: list[str] = []
        for i, note in enumerate(withdrawn):
            r = self.fresh_thief()
            fresh_out.append(r)
            self.mixer_withdraw(note, r)
            if i % 4 == 3:
                self.traffic(pct(1), rng.randrange(600, 3_600))
        self.traffic(pct(4), 1_800)

        # 7. bridge to Bitcoin: the biggest holders lock everything
        self.progress.message("heist: bridge to Bitcoin")
        candidates = sorted(set(holders) | set(fresh_out), key=lambda a: (-b.held[(a, ETH)], a))
        lockers = candidates[: sc.bridge_locks]
        rest = [a for a in candidates if a not in lockers]
        locks: list[tuple[str, str, int, str]] = []  # (locker, btc address, value, tx)
        for a in lockers:
            btc_addr = self.w.new_address("thief")
            gp = self.gas_price(a)
            value = b.held[(a, ETH)] - 120_000 * gp

            def locked(r: dict[str, Any], a: str = a, btc_addr: str = btc_addr, value: int = value) -> None:
                b.debit(a, ETH, value)
                dep_id = next(lg["topics"][2] for lg in r["logs"] if lg["topics"][0] == LOCKED_TOPIC)
                locks.append((r["transactionHash"], btc_addr, value, dep_id))

            self.send(a, self.bridge, value, calldata("lock(string)", btc_addr), gas=120_000, step="bridge_lock",
                      on_receipt=locked, gas_price=gp)
        self.traffic(pct(3), d.bridge)

        # relayer pays on Bitcoin with the deposit id in OP_RETURN (flows/decoders/bridges.py)
        payouts: list[Utxo] = []
        for tx, btc_addr, value, dep_id in locks:
            sats = value * BRIDGE_RATE[0] // BRIDGE_RATE[1]
            sats -= sats * BRIDGE_FEE_BPS // 10_000
            txid, _, _ = self.w.pay("bridge", [(btc_addr, sats)], op_return=bytes.fromhex(dep_id[2:]),
                                    change=self.btc_vault, from_addresses=[self.btc_vault])
            self.btc_step(txid, "bridge_payout")
            payouts.append(b.coin(self.btc_chain, txid, 0, btc_addr, sats, "bridge_payout"))
            b.conversions.append({"src_chain": chain, "src_transaction_hash": tx, "src_asset": ETH,
                                  "src_value": value, "dst_chain": self.btc_chain, "dst_transaction_hash": txid,
                                  "dst_asset": BTC, "dst_value": sats, "step": "bridge"})
        for _ in range(max(1, sc.background // 40)):
            self.btc_background(self.rng.choice(["btcpay", "btcdep", "btcwd"]))
        self.mine_btc()

        # 8. ETH cash-out: exchange deposits and the OTC desk; a few addresses keep their ETH
        self.progress.message("heist: cash-out on Ethereum")
        self.traffic(pct(8), d.cashout)
        keep = rest[-max(1, len(rest) // 5):] if rest else []
        for i, a in enumerate(x for x in rest if x not in keep):
            if b.held[(a, ETH)] < 10**17:
                continue
            if i % 3 == 2:
                service, kind, to = self.otc, "otc", self.otc_eth
            else:
                service, kind = self.exchanges[i % 2], "exchange"
                to = self.deposit_address(service, a)  # the thief as a customer of its own
            self._deposit_all(a, to, service, kind)
        self.traffic(pct(3), 600)
        self.sweeps()
        self.mine_eth()

        # 9. peel chains on Bitcoin
        self.progress.message("heist: peel chains on Bitcoin")
        peel_to = [(x, "exchange") for x in self.exchanges] + [(self.otc, "otc")]
        ends: list[Utxo] = []
        for coin in payouts:
            for _hop in range(sc.hops):
                service, kind = rng.choice(peel_to)
                dest = self.btc_otc if kind == "otc" else self.w.new_address(service)
                if kind == "exchange":
                    b.service(self.btc_chain, service, "exchange", "deposit", dest)
                peel = coin.value * rng.randrange(3, 10) // 100
                fee = self.w.fee(1, 2)
                next_addr = self.w.new_address("thief")
                txid = self.w.spend("thief", [coin], [(dest, peel), (next_addr, coin.value - peel - fee)])
                self.btc_step(txid, "peel")
                self._spent_coin(coin, txid, fee)
                b.endpoint(self.btc_chain, service, kind, dest, txid, BTC, peel)
                coin = b.coin(self.btc_chain, txid, 1, next_addr, coin.value - peel - fee, "peel")
                if rng.random() < 0.4:
                    self.btc_background(self.rng.choice(["btcpay", "btcdep", "btcwd"]))
                self.now += d.peel // 2
                if (_hop + 1) % PEEL_HOPS_PER_BLOCK == 0 and _hop + 1 < sc.hops:
                    self.mine_btc()  # confirm the chain so far: the next hop would be refused
            ends.append(coin)
            self.traffic(pct(10) // len(payouts), d.peel)
            self.mine_btc()

        # 10. consolidation of the chain ends (one is left untouched, unspent)
        self.progress.message("heist: consolidation and cash-out on Bitcoin")
        merge = ends[:-1] if len(ends) > 1 else ends
        target = self.w.new_address("thief")
        fee = self.w.fee(len(merge), 1)
        value = sum(c.value for c in merge) - fee
        txid = self.w.spend("thief", merge, [(target, value)])
        self.btc_step(txid, "consolidation")
        for c in merge:
            self._spent_coin(c, txid, 0)
        self._fee(txid, merge[0].address, fee)
        merged = b.coin(self.btc_chain, txid, 0, target, value, "consolidation")
        self.mine_btc()
        self.traffic(pct(5), d.cashout)

        # 11. deposits at two exchanges and the OTC desk; 10 % stays as change
        outs: list[tuple[str, int, str, str]] = []
        shares = [35, 30, 25]
        for (service, kind), share in zip(peel_to, shares, strict=True):
            dest = self.btc_otc if kind == "otc" else self.w.new_address(service)
            if kind == "exchange":
                b.service(self.btc_chain, service, "exchange", "deposit", dest)
            outs.append((dest, merged.value * share // 100, service, kind))
        fee = self.w.fee(1, len(outs) + 1)
        change = self.w.new_address("thief")
        change_value = merged.value - sum(o[1] for o in outs) - fee
        txid = self.w.spend("thief", [merged], [(a, v) for a, v, _, _ in outs] + [(change, change_value)])
        step = "otc_deposit" if all(k == "otc" for *_, k in outs) else "exchange_deposit"
        self.btc_step(txid, step)
        self._spent_coin(merged, txid, fee)
        for dest, v, service, kind in outs:
            b.endpoint(self.btc_chain, service, kind, dest, txid, BTC, v)
        b.coin(self.btc_chain, txid, len(outs), change, change_value, step)
        for _ in range(max(1, sc.background // 40)):
            self.btc_background(self.rng.choice(["btcpay", "btcdep", "btcwd"]))
        self.mine_btc()
        self.sweeps()
        self.traffic(pct(10), 3 * 3_600)
        self.mine_btc()
        # whatever background queued after the last ETH block still needs mining
        if self.pending:
            self.mine_eth()

    # -- helpers of the heist -----------------------------------------------------------------
    @staticmethod
    def _shares(total: int, n: int) -> list[int]:
        """``total`` split into ``n`` uneven parts that sum to it exactly."""
        weights = [3 + (i * 7919) % 11 for i in range(n)]
        parts = [total * w // sum(weights) for w in weights]
        parts[-1] += total - sum(parts)
        return parts

    def _move_token(self, a: str, z: str, tok: str, value: int, step: str) -> None:
        b = self.books

        def moved(r: dict[str, Any]) -> None:
            b.debit(a, tok, value)
            b.credit(self.eth_chain, z, tok, value, r["transactionHash"], step)

        self.send(a, tok, 0, calldata("transfer(address,uint256)", z, value), gas=80_000, step=step,
                  on_receipt=moved)

    def _spread_eth(self, a: str, targets: list[str], step: str) -> None:
        """All of ``a``'s ETH to ``targets`` in uneven shares, gas included: ``a`` ends at 0."""
        b = self.books
        gps = [self.gas_price(a) for _ in targets]
        budget = b.held[(a, ETH)] - sum(21_000 * g for g in gps)
        for z, part, gp in zip(targets, self._shares(budget, len(targets)), gps, strict=True):

            def moved(r: dict[str, Any], z: str = z, part: int = part) -> None:
                b.debit(a, ETH, part)
                b.credit(self.eth_chain, z, ETH, part, r["transactionHash"], step)

            self.send_exact(a, z, part, gp, step, moved)

    def _forward_all(self, a: str, z: str, step: str) -> None:
        self._spread_eth(a, [z], step)

    def _deposit_all(self, a: str, to: str, service: str, kind: str) -> None:
        b = self.books
        gp = self.gas_price(a)
        value = b.held[(a, ETH)] - 21_000 * gp

        def deposited(r: dict[str, Any]) -> None:
            b.debit(a, ETH, value)
            b.endpoint(self.eth_chain, service, kind, to, r["transactionHash"], ETH, value)

        self.send_exact(a, to, value, gp, "otc_deposit" if kind == "otc" else "exchange_deposit", deposited)

    def _spent_coin(self, coin: Utxo, txid: str, fee: int) -> None:
        if self.books.coins.pop((coin.txid, coin.vout), None) is None:
            raise LabError(f"books: {coin.txid}:{coin.vout} is not a stolen coin")
        if fee:
            self._fee(txid, coin.address, fee)

    def _fee(self, txid: str, payer: str, fee: int) -> None:
        self.books.endpoint(self.btc_chain, "miner", "fee", payer, txid, BTC, fee)

    # -- the end: what is left, and a check of the books against the chains -------------------
    def close(self) -> None:
        b = self.books
        for n in self.notes:
            if n.thief:
                b.endpoint(self.eth_chain, f"mixer-{n.denomination // WEI}eth", "mixer", n.pool, n.deposit_tx, ETH,
                           n.denomination)
        # every thief address's holdings must be its balance on chain (they hold only stolen value)
        addrs = sorted(self.thief_set)
        balances = dict(zip(addrs, self.anvil.balances(addrs), strict=True))
        for a in addrs:
            for asset in (ETH, self.usdt, self.usdc):
                held = b.held.get((a, asset), 0)
                real = balances[a] if asset == ETH else self.token_balance(asset, a)
                if held != real:
                    raise LabError(f"books disagree with the chain: {a} holds {real} {asset}, books say {held}")
                if held:
                    b.endpoint(self.eth_chain, "", "unspent", a, None, asset, held)
        onchain = {(u.txid, u.vout): u.value for u in self.w.utxos("thief")}
        booked = {k: v for k, (_, v) in b.coins.items()}
        if onchain != booked:
            raise LabError(f"books disagree with the thief's Bitcoin wallet: {onchain} vs {booked}")
        for (txid, vout), (addr, value) in sorted(b.coins.items()):
            b.endpoints.append({"chain": self.btc_chain, "service": "", "kind": "unspent", "address": addr,
                                "transaction_hash": txid, "asset": BTC, "value": value, "output_index": vout})


def _swap_out(receipt: dict[str, Any]) -> int:
    """The output amount of the (single) V2 Swap log of a receipt."""
    for lg in receipt["logs"]:
        if lg["topics"][0] == SWAP_TOPIC:
            data = lg["data"][2:]
            ws = [int(data[i : i + 64], 16) for i in range(0, 256, 64)]
            return ws[2] or ws[3]
    raise LabError(f"no Swap event in {receipt['transactionHash']}")
