"""``run_lab``: nodes -> contracts -> scenario -> ingest -> conversions -> tags -> ground truth -> export."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import ConfigError
from ..flows.conversions import decode_conversions, match_bridges, register_wrapped_native
from ..ingest.bitcoin_rpc import ingest_bitcoin_rpc
from ..ingest.ethereum_rpc import ingest_ethereum_rpc
from ..progress import NullProgress, Progress
from ..store import Ledger
from ..tags.store import TagColumns, write_import
from ..tags.taxonomy import CONFIDENCE_LEVELS
from .btc import BitcoinRpc, Wallets
from .compile import compile_lab_contracts
from .dataset import export_dataset
from .evm import Anvil
from .ground_truth import conservation, write_ground_truth
from .nodes import LocalNode, start_anvil, start_bitcoind
from .scenario import BRIDGE_RATE, BTC, ETH, SCALES, Delays, Scale, Scenario

ETH_CHAIN = "ethereum_lab"
BTC_CHAIN = "bitcoin_lab"
CHAIN_ID = 31_337
START_TIME = 1_740_096_000  # 2025-02-21 00:00 UTC, the day of the Bybit theft
TAG_SOURCE = "heist-lab"


@dataclass(frozen=True)
class LabParams:
    seed: int = 0
    scale: str = "default"  # a preset name, optionally with overrides: "small,splits=10,hops=4"
    background: int | None = None
    hops: int | None = None
    delays: str | None = None  # "split=600,mixer=3600"
    anvil_rpc: str | None = None
    bitcoin_rpc: str | None = None
    out: Path = Path("lab-out")
    export_demo: Path | None = None


@dataclass
class LabResult:
    params: LabParams
    scale: Scale
    ledger: Path
    eth_chain: str
    btc_chain: str
    eth_blocks: int = 0
    eth_transactions: int = 0
    btc_blocks: int = 0
    btc_transactions: int = 0
    stolen: dict[str, int] = field(default_factory=dict)
    endpoints: list[dict[str, Any]] = field(default_factory=list)  # per (chain, kind, service, asset)
    conservation: list[dict[str, Any]] = field(default_factory=list)
    swaps: int = 0
    bridge_matched: int = 0
    bridge_unmatched: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    exported: Path | None = None
    export_bytes: int = 0


def parse_scale(spec: str, background: int | None = None, hops: int | None = None) -> Scale:
    """``default``, ``small,hops=4`` or ``splits=10,stolen_eth=500`` (on top of default)."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    base = SCALES["default"]
    if parts and "=" not in parts[0]:
        if parts[0] not in SCALES:
            raise ConfigError(f"--scale: unknown preset {parts[0]!r} (known: {', '.join(SCALES)})")
        base = SCALES[parts.pop(0)]
    values: dict[str, Any] = {}
    fields = {k for k in Scale.__dataclass_fields__ if k != "name"}
    for p in parts:
        key, _, val = p.partition("=")
        if key not in fields:
            raise ConfigError(f"--scale: unknown setting {key!r} (known: {', '.join(sorted(fields))})")
        try:
            values[key] = int(val)
        except ValueError:
            raise ConfigError(f"--scale: {key} needs an integer, not {val!r}") from None
    if background is not None:
        values["background"] = background
    if hops is not None:
        values["hops"] = hops
    scale = replace(base, **values)
    if values:
        scale = replace(scale, name=f"{base.name}+custom")
    for k in ("stolen_eth", "splits", "denomination", "bridge_locks", "users", "hops", "eth_layers"):
        if getattr(scale, k) < 1:
            raise ConfigError(f"--scale: {k} must be at least 1")
    if scale.users < 2:
        raise ConfigError("--scale: users must be at least 2")
    if scale.background < 0 or scale.stolen_usdt < 0 or scale.stolen_usdc < 0:
        raise ConfigError("--scale: amounts and background must not be negative")
    return scale


def _tag_rows(sc: Scenario) -> TagColumns:
    """The lab's own attribution, as a tag source (``heist-lab``)."""
    tags = TagColumns()
    today = dt.date.fromtimestamp(START_TIME)
    kinds = {"exchange": "exchange", "otc": "exchange", "mixer": "mixing_service", "bridge": "defi_bridge",
             "dex": "defi_dex"}
    for s in sc.books.services:
        category = kinds.get(s["kind"])
        if category is None or (s["kind"] == "exchange" and s["role"] != "hot_wallet"):
            continue  # deposit addresses are left to clustering, as in real investigations
        currency = ETH if s["chain"] == sc.eth_chain else BTC
        label = {"otc": f"{s['service']} desk (OTC broker)", "exchange": f"{s['service']} hot wallet"}.get(
            s["kind"], f"{s['service']} {s['role']}")
        tags.add(currency=currency, address=s["address"], label=label, category=category,
                 confidence="ownership", confidence_level=CONFIDENCE_LEVELS["ownership"], actor=None,
                 source=TAG_SOURCE, source_url=None, valid_from=today, is_abuse=False,
                 context={"lab_service": s["service"], "lab_kind": s["kind"], "lab_role": s["role"]},
                 abuse=None, concepts=[category], is_cluster_definer=True, lastmod=today)
    for s in sc.books.seeds:
        if s["role"] != "thief":
            continue
        tags.add(currency=ETH, address=s["address"], label="heist-lab theft: first address of the thief",
                 category="perpetrator", confidence="ownership", confidence_level=CONFIDENCE_LEVELS["ownership"],
                 actor="lazarusgroup", source=TAG_SOURCE, source_url=None, valid_from=today, is_abuse=True,
                 context={"lab_role": "thief"}, abuse="service_hack", concepts=["perpetrator", "service_hack"],
                 is_cluster_definer=False, lastmod=today)
    return tags


def _remove(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".wal")):
        if p.exists():
            p.unlink()


def _check_replaceable(path: Path) -> None:
    """The lab owns its ledger file: a previous lab ledger may be replaced, anything else not."""
    if not path.exists():
        return
    with Ledger(path, read_only=True) as ledger:
        row = ledger.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'lab'").fetchone()
        names = {c["name"] for c in ledger.chains()}
    if not (row and row[0]) and names:
        raise ConfigError(f"{path} is a ledger that the lab did not write; choose another --out")


def run_lab(params: LabParams, progress: Progress | None = None) -> LabResult:
    """Play the heist lab on local nodes and write ledger, tags and ground truth (docs/lab.md)."""
    progress = progress or NullProgress()
    scale = parse_scale(params.scale, params.background, params.hops)
    delays = Delays.parse(params.delays)
    out = Path(params.out)
    out.mkdir(parents=True, exist_ok=True)
    ledger_path = out / "lab.duckdb"
    _check_replaceable(ledger_path)
    # built aside and moved into place at the end: a failed run leaves the previous ledger
    partial = out / "lab.duckdb.partial"
    _remove(partial)
    result = LabResult(params, scale, ledger_path, ETH_CHAIN, BTC_CHAIN)
    t0 = time.monotonic()
    compiled = compile_lab_contracts()
    nodes: list[LocalNode] = []
    with contextlib.ExitStack() as stack:

        def stop_nodes() -> None:
            for n in nodes:
                n.stop()

        stack.callback(stop_nodes)
        progress.message("lab: starting nodes")
        if params.anvil_rpc is None:
            nodes.append(start_anvil(CHAIN_ID, START_TIME - 3_600))
        if params.bitcoin_rpc is None:
            nodes.append(start_bitcoind(START_TIME - 2 * 86_400))
        anvil_url = params.anvil_rpc or nodes[0].rpc_url
        btc_url = params.bitcoin_rpc or nodes[-1].rpc_url
        anvil = Anvil(anvil_url)
        stack.callback(anvil.close)
        btc = BitcoinRpc(btc_url)
        stack.callback(btc.close)
        start = START_TIME
        if params.anvil_rpc is not None:  # a used node: start after its last block
            latest = anvil.rpc("eth_getBlockByNumber", "latest", False)
            start = max(start, int(latest["timestamp"], 16) + 60)
        if params.bitcoin_rpc is not None:
            start = max(start, int(btc.call("getblockchaininfo")["mediantime"]) + 3_600)
        sc = Scenario(params.seed, scale, delays, anvil, Wallets(btc), compiled, ETH_CHAIN, BTC_CHAIN, start,
                      progress)
        progress.start("lab: playing the heist", None)
        sc.setup()
        sc.heist()
        sc.close()
        result.seconds["scenario"] = time.monotonic() - t0
        result.eth_blocks, result.eth_transactions = sc.eth_blocks, sc.eth_txs
        result.btc_blocks, result.btc_transactions = sc.btc_blocks, sc.btc_txs

        t1 = time.monotonic()
        with Ledger(partial) as ledger:
            progress.message("lab: ingesting both chains with chainsleuth's ingesters")
            ingest_ethereum_rpc(ledger, anvil_url, chain=ETH_CHAIN, traces="parity", progress=progress)
            ingest_bitcoin_rpc(ledger, btc_url, chain=BTC_CHAIN, progress=progress)
            result.seconds["ingest"] = time.monotonic() - t1
            t2 = time.monotonic()
            tag_file = out / "heist-lab-tags.json"
            tags = _tag_rows(sc)
            tag_file.write_text(json.dumps(tags.cols, default=str, sort_keys=True))
            write_import(ledger, TAG_SOURCE, tag_file, tags)
            register_wrapped_native(ledger, ETH_CHAIN, sc.weth)
            result.swaps = decode_conversions(ledger, ETH_CHAIN).swaps
            bridges = match_bridges(ledger, ETH_CHAIN, BTC_CHAIN, rate=BRIDGE_RATE, contracts=[sc.bridge])
            result.bridge_matched, result.bridge_unmatched = bridges.matched, bridges.unmatched
            b = sc.books
            result.stolen = dict(b.theft)
            meta: dict[str, Any] = {
                "seed": str(params.seed), "scale": scale.name,
                "params": {**{k: str(v) if isinstance(v, Path) else v for k, v in asdict(params).items()},
                           "scale_values": asdict(scale), "delays_values": asdict(delays)},
                "eth_chain": ETH_CHAIN, "btc_chain": BTC_CHAIN, "eth_chain_id": str(CHAIN_ID),
                "stolen": {k: str(v) for k, v in b.theft.items()},
                "tokens": {"USDT": sc.usdt, "USDC": sc.usdc, "WETH": sc.weth},
                "token_decimals": {sc.usdt: 6, sc.usdc: 6, sc.weth: 18, ETH: 18, BTC: 8},
                "bridge_contract": sc.bridge, "bridge_rate": f"{BRIDGE_RATE[0]}/{BRIDGE_RATE[1]}",
                "bridge_definition": "heist_lab_btc", "dex_router": sc.router, "victim_service": sc.victim,
                "start_time": str(START_TIME), "chainsleuth_version": __version__,
                "solc_version": compiled.solc_version, "contracts_sha256": compiled.source_sha256,
                "tag_source": TAG_SOURCE,
            }
            write_ground_truth(ledger, meta, {"stolen": b.stolen, "endpoints": b.endpoints, "steps": b.steps,
                                              "conversions": b.conversions, "seeds": b.seeds,
                                              "services": b.services})
            result.conservation = conservation(ledger)
            result.endpoints = [dict(zip(("chain", "kind", "service", "asset", "value", "count"), r, strict=True))
                                for r in ledger.con.execute(
                                    "SELECT chain, kind, service, asset, sum(value), count(*) FROM lab.endpoints "
                                    "GROUP BY ALL ORDER BY ALL").fetchall()]
            result.seconds["conversions_tags_truth"] = time.monotonic() - t2
            if params.export_demo is not None:
                t3 = time.monotonic()
                export_dataset(ledger, params.export_demo)
                result.exported = Path(params.export_demo)
                result.export_bytes = sum(p.stat().st_size for p in result.exported.rglob("*") if p.is_file())
                result.seconds["export"] = time.monotonic() - t3
    _remove(ledger_path)
    partial.replace(ledger_path)
    result.seconds["total"] = time.monotonic() - t0
    return result
