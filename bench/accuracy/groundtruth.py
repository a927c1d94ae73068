"""A seeded scenario of real wallets on a Bitcoin regtest node, one wallet per owner.

Owners: a miner (the node's wallet ``w``), ``users`` individuals, ``exchanges``
exchanges (one reused deposit address per customer, sweeps, batch payouts), one
merchant (a few static, reused invoice addresses) and a Whirlpool-style
coordinator (collects Tx0 fees). Each user has one address type for receiving
(legacy, p2sh-segwit, bech32 or bech32m, in turn) and makes change of that
type, except every third user whose wallet makes bech32 change whatever it
receives on (as Knots/Core do with ``-changetype``); every fourth user pays
change back to one fixed address (change reuse).

Each round (then one block is mined):

* payments between owners with automatic coin selection and change (35% round
  amounts, the rest odd amounts);
* exchange batch payouts (``sendmany``), half of them several equal 0.1 BTC
  withdrawals;
* every third round the exchanges sweep everything into one hot address
  (``sendall``: a multi-input consolidation), every fourth round a user
  consolidates its coins;
* a peel chain by user 0: 1-input 2-output hops, each spending the previous
  hop's change;
* every ``coinjoin_every`` rounds a joint transaction built with PSBTs from
  several wallets (``createpsbt`` -> ``walletprocesspsbt`` per wallet ->
  ``combinepsbt`` -> ``finalizepsbt`` -> ``sendrawtransaction``), in turn:
  generic (3-5 participants, mixed types, equal outputs + change each),
  Whirlpool-shaped (five Tx0s paying the coordinator fee with an OP_RETURN and
  two premixes each, then two 5x5 mixes at the 0.01 BTC pool), and
  JoinMarket-shaped (all P2WPKH; a taker without change plus makers with
  change).

The plan is drawn from ``random.Random(seed)``; the node's keys and coin
selection are its own, so addresses and txids differ between runs while the
shape (owners, counts, amounts) stays the same. Ground truth: every address each
wallet derived (``listdescriptors`` + ``deriveaddresses`` up to each
descriptor's ``next_index``), which covers change addresses too.
"""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx

COIN = 100_000_000
TYPES = ("legacy", "p2sh-segwit", "bech32", "bech32m")
ROUND_AMOUNTS = (1_000_000, 2_000_000, 5_000_000, 10_000_000, 20_000_000, 25_000_000, 50_000_000)
WHIRLPOOL_POOL = 1_000_000  # 0.01 BTC pool denomination
MINER = "w"  # the node fixture's wallet, which also mines


def btc(sats: int) -> str:
    """Satoshi -> exact BTC decimal string (bitcoind accepts amounts as strings)."""
    return f"{sats // COIN}.{sats % COIN:08d}"


def sats(amount: Any) -> int:
    return int(Decimal(str(amount)) * COIN)


class Rpc:
    """Keep-alive JSON-RPC client; amounts decode as Decimal (exact)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.base = f"{parts.scheme}://{parts.hostname}:{parts.port}/"
        self.http = httpx.Client(auth=(parts.username or "", parts.password or ""), timeout=300)

    def __call__(self, method: str, *params: Any, wallet: str | None = None) -> Any:
        url = self.base + (f"wallet/{wallet}" if wallet else "")
        body = {"jsonrpc": "1.0", "id": 1, "method": method, "params": list(params)}
        reply = json.loads(self.http.post(url, json=body).text, parse_float=Decimal)
        if reply.get("error"):
            raise RuntimeError(f"{method} ({wallet}): {reply['error']}")
        return reply["result"]

    def close(self) -> None:
        self.http.close()


@dataclass(frozen=True)
class ScenarioConfig:
    seed: int = 7
    users: int = 6
    exchanges: int = 2
    rounds: int = 6
    payments_per_round: int = 6
    coinjoin_every: int = 2
    peel_hops: int = 3


SMALL = ScenarioConfig()
LARGE = ScenarioConfig(users=16, rounds=60, payments_per_round=16, coinjoin_every=2, peel_hops=5)


@dataclass
class Owner:
    name: str
    kind: str  # miner | user | exchange | merchant | coordinator
    addr_type: str
    change_type: str
    reuse_change: bool = False
    change_address: str = ""
    static: list[str] = field(default_factory=list)  # reused receive addresses


@dataclass
class Scenario:
    """What was done, for the harness and the tests' exact checks."""

    config: ScenarioConfig
    first_height: int = 0
    last_height: int = 0
    owner_of: dict[str, str] = field(default_factory=dict)  # address -> wallet
    joint: dict[str, str] = field(default_factory=dict)  # txid -> generic|whirlpool|joinmarket
    joint_owners: dict[str, list[str]] = field(default_factory=dict)  # txid -> participants
    tx0: list[str] = field(default_factory=list)
    consolidations: dict[str, str] = field(default_factory=dict)  # txid -> owner
    batch_payouts: list[str] = field(default_factory=list)
    peel_chains: list[list[str]] = field(default_factory=list)
    payments: int = 0
    skipped: int = 0

    def counts(self) -> dict[str, int]:
        kinds = list(self.joint.values())
        return {
            "owners": len(set(self.owner_of.values())),
            "addresses": len(self.owner_of),
            "blocks": self.last_height - self.first_height + 1,
            "payments": self.payments,
            "batch_payouts": len(self.batch_payouts),
            "consolidations": len(self.consolidations),
            "peel_hops": sum(len(c) for c in self.peel_chains),
            "coinjoin_generic": kinds.count("generic"),
            "coinjoin_whirlpool": kinds.count("whirlpool"),
            "coinjoin_joinmarket": kinds.count("joinmarket"),
            "whirlpool_tx0": len(self.tx0),
            "skipped_actions": self.skipped,
        }


class _Gen:
    def __init__(self, rpc: Rpc, config: ScenarioConfig) -> None:
        self.rpc = rpc
        self.cfg = config
        self.rng = random.Random(config.seed)
        self.sc = Scenario(config)
        self.owners: dict[str, Owner] = {}
        self.deposit: dict[tuple[str, str], str] = {}  # (exchange, customer) -> address

    # -- wallet helpers -------------------------------------------------------------
    def addr(self, o: Owner, typ: str | None = None) -> str:
        return str(self.rpc("getnewaddress", "", typ or o.addr_type, wallet=o.name))

    def change_addr(self, o: Owner, typ: str | None = None) -> str:
        return str(self.rpc("getrawchangeaddress", typ or o.change_type, wallet=o.name))

    def balance(self, o: Owner) -> int:
        b = self.rpc("getbalances", wallet=o.name)["mine"]
        return sats(b["trusted"])

    def unspent(self, o: Owner, minconf: int = 1) -> list[dict[str, Any]]:
        rows = self.rpc("listunspent", minconf, 9999999, wallet=o.name)
        rows = [u for u in rows if u.get("spendable", True) and u.get("safe", True)]
        return sorted(rows, key=lambda u: (sats(u["amount"]), u["txid"], u["vout"]))

    def receive_address(self, payee: Owner, payer: Owner) -> str:
        if payee.kind == "exchange":  # one deposit address per customer, reused
            key = (payee.name, payer.name)
            if key not in self.deposit:
                self.deposit[key] = self.addr(payee)
            return self.deposit[key]
        if payee.static and self.rng.random() < 0.7:
            return self.rng.choice(payee.static)
        return self.addr(payee)

    def send(self, payer: Owner, outputs: list[dict[str, str]], **options: Any) -> str:
        opts: dict[str, Any] = {}
        if "change_address" in options:
            pass
        elif payer.reuse_change:
            opts["change_address"] = payer.change_address
        else:
            opts["change_type"] = payer.change_type
        opts.update(options)
        res = self.rpc("send", outputs, None, "unset", 2, opts, wallet=payer.name)
        return str(res["txid"])

    def mine(self, n: int = 1) -> None:
        miner = self.owners[MINER]
        self.rpc("generatetoaddress", n, miner.static[0])

    # -- setup -----------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.cfg
        wallets = set(self.rpc("listwallets"))
        specs: list[Owner] = [Owner(MINER, "miner", "bech32", "bech32")]
        for i in range(cfg.users):
            typ = TYPES[i % 4]
            specs.append(Owner(f"user{i:02d}", "user", typ, "bech32" if i % 3 == 2 else typ,
                               reuse_change=i % 4 == 3))
        for i in range(cfg.exchanges):
            typ = ("bech32", "p2sh-segwit")[i % 2]
            specs.append(Owner(f"exchange{i}", "exchange", typ, typ))
        specs.append(Owner("merchant", "merchant", "bech32", "bech32"))
        specs.append(Owner("coordinator", "coordinator", "bech32", "bech32"))
        todo = [o.name for o in specs if o.name not in wallets]
        with ThreadPoolExecutor(4) as pool:  # createwallet derives 8 keypools: ~1 s each
            list(pool.map(lambda n: self.rpc("createwallet", n), todo))
        for o in specs:
            self.owners[o.name] = o
        miner = self.owners[MINER]
        miner.static.append(self.addr(miner))
        for o in specs:
            if o.reuse_change:
                o.change_address = self.change_addr(o)
            if o.kind == "merchant":
                o.static.extend(self.addr(o) for _ in range(3))
        self.sc.first_height = int(self.rpc("getblockcount")) + 1
        self.mine(max(0, 110 - int(self.rpc("getblockcount"))) + 1)
        # funding: three sendmany rounds from the miner, so users hold several coins
        users = self.of_kind("user")
        for _ in range(3):
            outs = {self.addr(u): btc(self.rng.randrange(COIN, 5 * COIN, 1000)) for u in users}
            self.rpc("sendmany", "", outs, wallet=MINER)
        for e in self.of_kind("exchange"):
            self.rpc("sendmany", "", {self.addr(e): btc(20 * COIN)}, wallet=MINER)
        self.mine(1)

    def of_kind(self, kind: str) -> list[Owner]:
        return [o for o in self.owners.values() if o.kind == kind]

    # -- actions ------------------------------------------------------------------------
    def payment(self) -> None:
        users = self.of_kind("user")
        payer = self.rng.choice(users)
        # 30% to an exchange deposit, 20% to the merchant, the rest to other users
        draw = self.rng.random()
        kind = "exchange" if draw < 0.3 else "merchant" if draw < 0.5 else "user"
        payee = self.rng.choice([o for o in self.of_kind(kind) if o.name != payer.name])
        balance = self.balance(payer)
        # odd amounts up to 60% of the balance, so that fragmented wallets spend
        # several coins at once (the co-spends the multi-input heuristic sees)
        amount = (self.rng.choice(ROUND_AMOUNTS) if self.rng.random() < 0.35
                  else self.rng.randrange(50_000, max(50_001, balance * 6 // 10)))
        if balance < amount + 100_000:
            self.sc.skipped += 1
            return
        self.send(payer, [{self.receive_address(payee, payer): btc(amount)}])
        self.sc.payments += 1

    def batch_payout(self, ex: Owner) -> None:
        users = self.rng.sample(self.of_kind("user"), self.rng.randint(2, min(6, self.cfg.users)))
        equal = self.rng.random() < 0.5
        outs = [{self.addr(u): btc(10_000_000 if equal else self.rng.randrange(100_000, 30_000_000))}
                for u in users]
        total = sum(sats(next(iter(o.values()))) for o in outs)
        if self.balance(ex) < total + 100_000:
            self.sc.skipped += 1
            return
        self.sc.batch_payouts.append(self.send(ex, outs))

    def consolidate(self, o: Owner, to: str) -> None:
        coins = self.unspent(o)
        if len(coins) < 2:
            self.sc.skipped += 1
            return
        ins = [{"txid": u["txid"], "vout": u["vout"]} for u in coins]
        res = self.rpc("sendall", [to], None, "unset", 2, {"inputs": ins}, wallet=o.name)
        self.sc.consolidations[str(res["txid"])] = o.name

    def peel_chain(self, o: Owner) -> None:
        coins = [u for u in self.unspent(o) if sats(u["amount"]) > 20_000_000]
        if not coins:
            self.sc.skipped += 1
            return
        coin = coins[-1]
        prev = {"txid": coin["txid"], "vout": coin["vout"]}
        left = sats(coin["amount"])
        chain: list[str] = []
        others = [p for p in self.owners.values() if p.kind in ("user", "merchant") and p is not o]
        for _ in range(self.cfg.peel_hops):
            amount = self.rng.randrange(100_000, max(100_001, left // 8))
            payee = self.rng.choice(others)
            txid = self.send(o, [{self.receive_address(payee, o): btc(amount)}],
                             inputs=[prev], add_inputs=False, change_position=1,
                             change_address=self.change_addr(o))
            chain.append(txid)
            prev = {"txid": txid, "vout": 1}
            tx = self.rpc("getrawtransaction", txid, 1)
            left = sats(tx["vout"][1]["value"])
            if left < 2_000_000:
                break
        self.sc.peel_chains.append(chain)

    def joint(self, kind: str, parts: list[tuple[Owner, dict[str, Any]]],
              outputs: list[dict[str, str]]) -> str:
        """One PSBT-built transaction spending ``(owner, utxo)`` inputs of several wallets."""
        ins = [{"txid": u["txid"], "vout": u["vout"]} for _, u in parts]
        psbt = self.rpc("createpsbt", ins, outputs)
        wallets = list(dict.fromkeys(o.name for o, _ in parts))
        # first every wallet adds its inputs' prevouts without signing: a Taproot
        # signature (BIP 341) commits to the amounts and scripts of all inputs
        for name in wallets:
            psbt = self.rpc("walletprocesspsbt", psbt, False, wallet=name)["psbt"]
        signed = [self.rpc("walletprocesspsbt", psbt, True, wallet=name)["psbt"]
                  for name in wallets]
        combined = self.rpc("combinepsbt", signed)
        final = self.rpc("finalizepsbt", combined)
        if not final["complete"]:
            raise RuntimeError(f"{kind} joint transaction not complete")
        txid = str(self.rpc("sendrawtransaction", final["hex"]))
        self.sc.joint[txid] = kind
        self.sc.joint_owners[txid] = [o.name for o, _ in parts]
        return txid

    def coin_at_least(self, o: Owner, amount: int, typ: str | None = None) -> dict[str, Any] | None:
        for u in self.unspent(o):
            if sats(u["amount"]) >= amount and (typ is None or _type_of(u["address"]) == typ):
                return u
        return None

    def coinjoin_generic(self) -> None:
        denom = self.rng.choice((2_000_000, 5_000_000, 10_000_000))
        fee = 3_000
        cands = self.rng.sample(self.of_kind("user"), self.cfg.users)
        parts = []
        for o in cands:
            coin = self.coin_at_least(o, denom + fee + 100_000)
            if coin is not None:
                parts.append((o, coin))
            if len(parts) == self.rng.randint(3, 5):
                break
        if len(parts) < 3:
            self.sc.skipped += 1
            return
        outs: list[dict[str, str]] = []
        for o, coin in parts:
            outs.append({self.addr(o): btc(denom)})
            outs.append({self.change_addr(o): btc(sats(coin["amount"]) - denom - fee)})
        self.rng.shuffle(outs)
        self.joint("generic", parts, outs)

    def self_coin(self, o: Owner, amount: int, typ: str) -> dict[str, Any]:
        """Pay ``amount`` to a fresh own address of ``typ``; return that (unconfirmed) coin."""
        a = self.addr(o, typ)
        txid = self.send(o, [{a: btc(amount)}])
        tx = self.rpc("getrawtransaction", txid, 1)
        vout = next(v["n"] for v in tx["vout"] if v["scriptPubKey"].get("address") == a)
        return {"txid": txid, "vout": vout, "amount": Decimal(btc(amount)), "address": a}

    def whirlpool(self) -> None:
        users = [u for u in self.of_kind("user") if self.balance(u) > 5_000_000]
        if len(users) < 5:
            self.sc.skipped += 1
            return
        parts = self.rng.sample(users, 5)
        coord = self.owners["coordinator"]
        fee_share = 1_000  # each premix pays its share of the mix's miner fee
        premix: list[list[dict[str, Any]]] = []
        for o in parts:
            a1, a2 = self.addr(o, "bech32"), self.addr(o, "bech32")
            fee_out = self.addr(coord)
            txid = self.send(o, [{a1: btc(WHIRLPOOL_POOL + fee_share)},
                                 {a2: btc(WHIRLPOOL_POOL + fee_share)},
                                 {fee_out: btc(WHIRLPOOL_POOL * 5 // 100 - 7_500)},
                                 {"data": "776869726c706f6f6c"}])
            self.sc.tx0.append(txid)
            tx = self.rpc("getrawtransaction", txid, 1)
            premix.append([{"txid": txid, "vout": v["n"]} for v in tx["vout"]
                           if v["scriptPubKey"].get("address") in (a1, a2)])
        for k in range(2):  # two 5x5 mixes, one premix of each participant in each
            mix_parts = [(o, premix[i][k]) for i, o in enumerate(parts)]
            order = list(range(5))
            self.rng.shuffle(order)
            outs = [{self.addr(parts[i], "bech32"): btc(WHIRLPOOL_POOL)} for i in order]
            self.joint("whirlpool", mix_parts, outs)

    def joinmarket(self) -> None:
        users = [u for u in self.of_kind("user") if self.balance(u) > 80_000_000]
        n = self.rng.randint(3, 5)
        if len(users) < n:
            self.sc.skipped += 1
            return
        parts = self.rng.sample(users, n)
        denom = self.rng.choice((10_000_000, 15_000_000, 30_000_000))
        maker_fee, miner_fee = 250, 4_000
        taker, makers = parts[0], parts[1:]
        coins = [self.self_coin(taker, denom + maker_fee * len(makers) + miner_fee, "bech32")]
        coins += [self.self_coin(m, denom + self.rng.randrange(2_000_000, 40_000_000), "bech32")
                  for m in makers]
        outs = [{self.addr(o, "bech32"): btc(denom)} for o in parts]
        outs += [{self.addr(m, "bech32"): btc(sats(c["amount"]) - denom + maker_fee)}
                 for m, c in zip(makers, coins[1:], strict=True)]
        self.rng.shuffle(outs)
        self.joint("joinmarket", list(zip(parts, coins, strict=True)), outs)

    # -- the run ------------------------------------------------------------------------------
    def run(self) -> Scenario:
        self.setup()
        kinds = ("generic", "whirlpool", "joinmarket")
        n_cj = 0
        for r in range(self.cfg.rounds):
            for _ in range(self.cfg.payments_per_round):
                self.payment()
            for ex in self.of_kind("exchange"):
                if self.rng.random() < 0.7:
                    self.batch_payout(ex)
                if r % 3 == 2:
                    self.consolidate(ex, self.addr(ex))
            if r % 4 == 1:
                u = self.rng.choice(self.of_kind("user"))
                self.consolidate(u, self.addr(u))
            self.peel_chain(self.owners["user00"])
            if r % self.cfg.coinjoin_every == 0:
                kind = kinds[n_cj % 3]
                n_cj += 1
                {"generic": self.coinjoin_generic, "whirlpool": self.whirlpool,
                 "joinmarket": self.joinmarket}[kind]()
            self.mine(1)
        self.mine(1)
        self.sc.last_height = int(self.rpc("getblockcount"))
        self.sc.owner_of = self.ground_truth()
        return self.sc

    def ground_truth(self) -> dict[str, str]:
        owner_of: dict[str, str] = {}
        for name in self.owners:
            for d in self.rpc("listdescriptors", wallet=name)["descriptors"]:
                nxt = int(d.get("next_index", d.get("next", 0)))
                if nxt <= 0:
                    continue
                for a in self.rpc("deriveaddresses", d["desc"], [0, nxt - 1]):
                    if owner_of.setdefault(a, name) != name:
                        raise RuntimeError(f"address {a} derived by two wallets")
        return owner_of


def _type_of(address: str) -> str:
    if address.startswith("bcrt1q"):
        return "bech32"
    if address.startswith("bcrt1p"):
        return "bech32m"
    return "p2sh-segwit" if address.startswith("2") else "legacy"


def generate(rpc_url: str, config: ScenarioConfig = SMALL) -> Scenario:
    """Run the scenario on the node at ``rpc_url`` (which must have the miner wallet
    ``w`` or lets this create it) and return what was done with the ground truth."""
    rpc = Rpc(rpc_url)
    try:
        if MINER not in rpc("listwallets"):
            rpc("createwallet", MINER)
        return _Gen(rpc, config).run()
    finally:
        rpc.close()
