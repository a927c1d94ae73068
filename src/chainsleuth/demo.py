"""The README's main job: investigate the heist lab's laundering end to end, and a real-data leg.

:func:`run_heist_demo` (``chainsleuth demo``) needs no node: it loads the demo dataset
shipped in ``chainsleuth/demo_data/heist`` (both lab chains, the lab's tags, the decoded
conversions, the ground truth in schema ``lab``) and, when the shared data folder is
there, the real tag sources (OFAC lists, GraphSense TagPacks, Etherscan labels); then it
clusters, builds exposure, traces forward from the heist's seed addresses across the DEX
swaps and the bridge, and scores the trace against the ground truth
(:mod:`chainsleuth.lab.evaluate`). :func:`write_heist_report` writes the HTML report.

:func:`run_real_demo` (``chainsleuth demo --real``) runs the same engine on real mainnet
data that nobody here generated: the XBlock phishing transactions
(:mod:`chainsleuth.ingest.xblock`), the 1,262 labelled phishing accounts as seeds and the
real Etherscan labels as service stops.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .flows.trace import STOP_CATEGORIES, TraceResult, trace
from .ingest.base import IngestResult
from .progress import NullProgress, Progress, start_counting
from .store import Ledger

DEMO_DATASET = "heist"
MODELS = ("haircut", "poison", "fifo", "lifo")
# real tag sources in the shared data folder: (kind, relative path)
REAL_TAG_SOURCES = (
    ("ofac-sdn", "ofac_sdn_csv"),
    ("ofac-lists", "ofac_0xb10c"),
    ("ofac-ultrasound", "ofac_eth_ultrasound"),
    ("actorpack", "graphsense_tagpacks/actors"),
    ("tagpack", "graphsense_tagpacks/packs"),
    ("etherscan", "etherscan_labels_brianleect"),
)
MIXER_CATEGORIES = ("mixing_service", "coinjoin")
# Where the demo's trace stops: the engine's service stops less DEX contracts. A router or
# pair custodies nothing and is the recipient of the swaps it routes; decoded swaps are
# followed through it (flows.conversions), so stopping there would end every swap.
DEMO_STOPS = tuple(c for c in STOP_CATEGORIES if c != "defi_dex")
SERVICE_CATEGORIES = ("exchange",)
DECIMALS = {"BTC": 8, "ETH": 18}


def format_units(value: int, decimals: int) -> str:
    """Exact decimal text of a base-unit amount (no float on the way)."""
    return f"{Decimal(value).scaleb(-decimals):,.{decimals}f}"


def _rows(ledger: Ledger, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    rel = ledger.con.execute(sql, params or [])
    names = [d[0] for d in rel.description]
    return [dict(zip(names, r, strict=True)) for r in rel.fetchall()]


# ----------------------------------------------------------------------------- real-data leg
@dataclass
class RealSummary:
    """What ``demo --real`` found; amounts are exact wei."""

    chain: str
    model: str
    labelled_accounts: int
    seed_accounts: int  # labelled accounts with at least one transaction in the files
    transactions: int
    internal_calls: int
    etherscan_tags: int
    seed_value: int
    exchanges: list[dict[str, Any]] = field(default_factory=list)  # per labelled exchange address
    other_services: list[dict[str, Any]] = field(default_factory=list)  # DEX, bridge, mixer, ... endpoints
    holdings_value: int = 0
    holdings_addresses: int = 0
    fees: int = 0
    left_untraced: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    result: TraceResult | None = None

    def exchange_totals(self) -> list[tuple[str, int]]:
        """Per exchange name (label without its trailing wallet number), the wei received."""
        out: dict[str, int] = {}
        for e in self.exchanges:
            out[e["exchange"]] = out.get(e["exchange"], 0) + e["value"]
        return sorted(out.items(), key=lambda kv: (-kv[1], kv[0]))


def _exchange_name(label: str) -> str:
    """'Bitfinex 3' -> 'Bitfinex' (Etherscan numbers the wallets of one exchange)."""
    parts = label.rsplit(" ", 1)
    return parts[0] if len(parts) == 2 and parts[1].isdigit() else label


def run_real_demo(
    ledger: Ledger, data: Path, *, model: str = "haircut", progress: Progress | None = None
) -> RealSummary:
    """Ingest the XBlock phishing transactions, tag the phishing accounts and the Etherscan
    labels, trace the phishing proceeds forward (service stops) and total what reached
    each labelled exchange."""
    from .ingest.xblock import (
        DEFAULT_CHAIN,
        ingest_xblock,
        phishing_accounts,
        tag_phishing_accounts,
    )
    from .tags.importers import import_tags

    if model not in MODELS:
        raise ConfigError(f"unknown taint model {model!r}; choose one of {', '.join(MODELS)}")
    progress = progress or NullProgress()
    secs: dict[str, float] = {}
    t0 = time.monotonic()
    ing = ingest_xblock(ledger, data, progress=progress)
    secs["ingest"] = time.monotonic() - t0
    labels = data / "etherscan_labels_brianleect"
    if not labels.is_dir():
        raise ConfigError(f"{labels} not found: the real leg needs the Etherscan labels in CHAINSLEUTH_DATA")
    t0 = time.monotonic()
    progress.message("tags: the XBlock phishing accounts and the Etherscan labels")
    n_phish = tag_phishing_accounts(ledger, data)
    eth_tags = import_tags(ledger, "etherscan", labels).tags
    secs["tags"] = time.monotonic() - t0
    accounts = phishing_accounts(data)
    ledger.con.execute("CREATE OR REPLACE TEMP TABLE _cs_phish AS SELECT unnest(?::VARCHAR[]) AS a", [accounts])
    seeds = [r[0] for r in ledger.con.execute(f"""
        SELECT a FROM _cs_phish WHERE a IN (SELECT from_address FROM "{DEFAULT_CHAIN}".transfers
                                          UNION SELECT to_address FROM "{DEFAULT_CHAIN}".transfers)
        ORDER BY a""").fetchall()]  # fmt: skip
    t0 = time.monotonic()
    progress.message(f"trace: forward from {len(seeds):,} phishing accounts ({model})")
    res = trace(ledger, DEFAULT_CHAIN, seeds, model=model)
    secs["trace"] = time.monotonic() - t0
    out = RealSummary(chain=DEFAULT_CHAIN, model=model, labelled_accounts=n_phish, seed_accounts=len(seeds),
                      transactions=ing.transactions, internal_calls=ing.internal_calls, etherscan_tags=eth_tags,
                      seed_value=res.seed_value.get("ETH", 0), seconds=secs, result=res)  # fmt: skip
    for e in res.endpoints:
        row = {"address": e["address"], "label": ", ".join(e.get("labels") or []), "category": e.get("category"),
               "value": int(e["value"]), "first_time": e["first_time"], "last_time": e["last_time"]}  # fmt: skip
        if e.get("category") in SERVICE_CATEGORIES:
            row["exchange"] = _exchange_name(row["label"] or e["address"])
            out.exchanges.append(row)
        else:
            out.other_services.append(row)
    out.holdings_value = sum(int(h["value"]) for h in res.holdings)
    out.holdings_addresses = len(res.holdings)
    out.fees = res.fees.get("ETH", 0)
    out.left_untraced = sum(v for d in res.left.values() for v in d.values())
    return out


# ----------------------------------------------------------------------------- heist demo
def default_dataset() -> Path:
    """The demo dataset shipped in the package (``chainsleuth/demo_data/heist``)."""
    return Path(str(resources.files("chainsleuth") / "demo_data" / DEMO_DATASET))


def load_dataset(ledger: Ledger, directory: Path, progress: Progress | None = None) -> dict[str, int]:
    """Load a heist dataset folder (written by ``chainsleuth lab --export-demo``, see
    :mod:`chainsleuth.lab.dataset`): both chains, the lab's tags, the decoded conversions
    and the ground truth. Only what the dataset owns is replaced (a user's own tags, chains
    and flows stay); rerunning changes nothing. Returns rows per ``schema.table``."""
    from .lab.dataset import load_dataset as load_lab_dataset

    if not (directory / "_schemas" / "tables.json").is_file():
        raise ConfigError(f"demo dataset not found at {directory} (build it with `chainsleuth lab --export-demo DIR`)")
    return load_lab_dataset(ledger, directory, progress)


def load_real_tags(ledger: Ledger, data: Path, progress: Progress | None = None) -> dict[str, int]:
    """Import the real tag sources found in the shared data folder; kind -> tags."""
    from .tags.importers import import_tags

    progress = progress or NullProgress()
    found = [(kind, data / rel) for kind, rel in REAL_TAG_SOURCES if (data / rel).exists()]
    start_counting(progress, "tags: real sources", len(found), ("sources", "tags"))
    out: dict[str, int] = {}
    for kind, path in found:
        r = import_tags(ledger, kind, path)
        out[kind] = r.tags + r.actors
        progress.advance(1, out[kind])
    return out


@dataclass
class HeistSummary:
    model: str
    chains: list[str]
    loaded: dict[str, int]
    real_tags: dict[str, int]
    clusters: dict[str, int]
    exposure_rows: dict[str, int]
    seeds: dict[str, list[str]]
    results: list[TraceResult]
    stolen: dict[str, int]  # asset -> value (lab ground truth)
    seed_value: dict[str, int]
    services: list[dict[str, Any]]  # endpoints at exchanges / OTC (and other non-mixer stops)
    mixer: list[dict[str, Any]]
    holdings: list[dict[str, Any]]
    evaluation: Any  # chainsleuth.lab.evaluate.Evaluation or None (no ground truth)
    symbols: dict[str, str] = field(default_factory=dict)  # token contract -> symbol
    decimals: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    usd: dict[str, Any] = field(default_factory=dict)  # asset -> chainsleuth.prices.UsdValue at the theft day


def stolen_totals(ledger: Ledger) -> dict[str, int]:
    """Stolen value per asset from the lab's ground truth: ``lab.meta`` (a ``stolen...`` key
    holding a JSON object asset -> amount, or ``stolen_<asset>`` keys), else the
    ``lab.stolen`` rows of the theft step."""
    import json

    from .tags.store import table_exists

    out: dict[str, int] = {}
    if table_exists(ledger, "lab", "meta"):
        for r in _rows(ledger, "SELECT key, CAST(value AS VARCHAR) AS value FROM lab.meta WHERE key LIKE 'stolen%' ORDER BY key"):
            key, val = str(r["key"]), str(r["value"])
            try:
                doc = json.loads(val)
            except ValueError:
                doc = val
            if isinstance(doc, dict):
                out.update({str(a): int(v) for a, v in doc.items()})
            elif key.startswith("stolen_") and str(doc).lstrip("-").isdigit():
                out[key.removeprefix("stolen_")] = int(doc)
    if not out and table_exists(ledger, "lab", "stolen"):
        for r in _rows(ledger, "SELECT asset, CAST(sum(value) AS VARCHAR) AS v FROM lab.stolen "
                               "WHERE CAST(step AS VARCHAR) IN ('theft', '1') GROUP BY asset ORDER BY asset"):  # fmt: skip
            out[str(r["asset"])] = int(r["v"])
    return out


def _decode_conversions(ledger: Ledger, progress: Progress) -> None:
    """A dataset without decoded conversions: decode the swaps of every account chain and
    match the lab bridge's locks to its payouts on every UTXO chain."""
    from .flows.conversions import decode_conversions, match_bridges

    chains = ledger.chains()
    accounts = [c["name"] for c in chains if c["family"] == "ethereum"]
    utxo = [c["name"] for c in chains if c["family"] == "bitcoin"]
    for a in accounts:
        progress.message(f"conversions: decoding swaps on {a}")
        decode_conversions(ledger, a)
        for b in utxo:
            match_bridges(ledger, a, b)


def _token_names(ledger: Ledger) -> tuple[dict[str, str], dict[str, int]]:
    """Symbols and decimals of the lab's tokens (``lab.meta`` keys ``tokens``: symbol ->
    contract, ``token_decimals``: contract -> decimals)."""
    import json

    from .tags.store import table_exists

    symbols: dict[str, str] = {}
    decimals: dict[str, int] = dict(DECIMALS)
    if table_exists(ledger, "lab", "meta"):
        meta = {str(k): str(v) for k, v in ledger.con.execute(
            "SELECT key, value FROM lab.meta WHERE key IN ('tokens', 'token_decimals')").fetchall()}  # fmt: skip
        try:
            for sym, addr in json.loads(meta.get("tokens", "{}")).items():
                symbols[str(addr).lower()] = str(sym)
            for addr, d in json.loads(meta.get("token_decimals", "{}")).items():
                decimals[str(addr).lower() if str(addr).startswith("0x") else str(addr)] = int(d)
        except (ValueError, AttributeError):
            pass  # a malformed entry only costs the pretty names
    return symbols, decimals


def run_heist_demo(
    ledger: Ledger,
    *,
    dataset: Path | None = None,
    data: Path | None = None,
    model: str = "haircut",
    progress: Progress | None = None,
) -> HeistSummary:
    """The whole investigation on the demo dataset (see the module docstring)."""
    from .tags.store import table_exists

    if model not in MODELS:
        raise ConfigError(f"unknown taint model {model!r}; choose one of {', '.join(MODELS)}")
    progress = progress or NullProgress()
    t0 = time.monotonic()
    progress.message("1/5 load the demo dataset")
    loaded = load_dataset(ledger, dataset or default_dataset(), progress)
    if not table_exists(ledger, "lab", "seeds"):
        raise ConfigError("the demo dataset has no lab.seeds table: not a heist lab dataset")
    real_tags = load_real_tags(ledger, data, progress) if data is not None else {}
    if not any(k.startswith("flows.") for k in loaded):
        _decode_conversions(ledger, progress)
    load_s = time.monotonic() - t0
    known = {c["name"] for c in ledger.chains()}
    chains = sorted(c for c in known if any(str(k).startswith(f"{c}.") for k in loaded))
    s = investigate(ledger, chains, model=model, progress=progress)
    s.loaded, s.real_tags = loaded, real_tags
    s.seconds["load"] = load_s
    if data is not None:
        s.usd = stolen_usd(ledger, data, s.stolen, s.decimals, progress)
    return s


def stolen_usd(ledger: Ledger, data: Path, stolen: dict[str, int], decimals: dict[str, int],
               progress: Progress | None = None) -> dict[str, Any]:  # fmt: skip
    """USD of the stolen amounts on the theft day (``chainsleuth.prices``: daily BTC/ETH
    closes from the shared data, tokens from DEX swaps); assets without a price are left out."""
    from datetime import UTC, datetime

    from .prices import DEFAULT_FILES, import_prices, usd_value
    from .tags.store import table_exists

    files = [data / f for f in DEFAULT_FILES if (data / f).is_file()]
    if not files or not table_exists(ledger, "lab", "meta"):
        return {}
    for f in files:
        (progress or NullProgress()).message(f"prices: {f.name}")
        import_prices(ledger, f)
    row = ledger.con.execute("SELECT value FROM lab.meta WHERE key = 'start_time'").fetchone()
    if not row or not str(row[0]).isdigit():
        return {}
    at = datetime.fromtimestamp(int(row[0]), tz=UTC)
    out: dict[str, Any] = {}
    for asset, value in stolen.items():
        key = asset.lower() if asset.startswith("0x") else asset
        v = usd_value(ledger, asset, value, decimals.get(key), at)
        if v.usd is not None:
            out[asset] = v
    return out


def heist_seeds(ledger: Ledger) -> dict[str, list[str]]:
    """chain -> the heist's seed addresses (``lab.seeds``; the victim's wallet, listed with
    role 'victim' for context, is not a seed: the trace starts at the thief)."""
    seeds: dict[str, list[str]] = {}
    for r in _rows(ledger, "SELECT chain, address FROM lab.seeds WHERE coalesce(role, '') <> 'victim' "
                           "ORDER BY chain, address"):  # fmt: skip
        seeds.setdefault(str(r["chain"]), []).append(str(r["address"]))
    return seeds


def investigate(
    ledger: Ledger,
    chains: list[str],
    *,
    model: str = "haircut",
    progress: Progress | None = None,
    cluster: bool = True,
    exposure: bool = True,
    stop_categories: tuple[str, ...] = DEMO_STOPS,
) -> HeistSummary:
    """Steps 2-5 on a ledger that holds a heist (lab chains, tags, conversions, ``lab.*``):
    cluster, build exposure, trace forward from ``lab.seeds``, summarise and score.
    ``stop_categories`` without ``mixing_service`` follows taint through the mixer's pool
    (the evaluation measures what the mixer stop costs that way)."""
    from .entities.cluster import cluster_chain
    from .flows.exposure import build_exposure
    from .lab.evaluate import evaluate
    from .tags.store import table_exists

    progress = progress or NullProgress()
    secs: dict[str, float] = {}
    seeds = heist_seeds(ledger)
    known = {c["name"] for c in ledger.chains()}
    t0 = time.monotonic()
    clusters: dict[str, int] = {}
    if cluster:
        progress.message("2/5 cluster")
        for c in chains:
            clusters[c] = cluster_chain(ledger, c, progress=progress).clusters
    secs["cluster"] = time.monotonic() - t0
    t0 = time.monotonic()
    exposure_rows: dict[str, int] = {}
    if exposure:
        progress.message("3/5 exposure")
        for c in chains:
            exposure_rows[c] = build_exposure(ledger, c).exposure_rows
    secs["exposure"] = time.monotonic() - t0
    t0 = time.monotonic()
    progress.message(f"4/5 trace forward from {sum(map(len, seeds.values()))} seed addresses ({model})")
    results = [trace(ledger, c, addrs, model=model, stop_categories=stop_categories)
               for c, addrs in sorted(seeds.items()) if c in known]  # fmt: skip
    secs["trace"] = time.monotonic() - t0
    progress.message("5/5 summarise and score against the ground truth")
    seed_value: dict[str, int] = {}
    services: list[dict[str, Any]] = []
    mixer: list[dict[str, Any]] = []
    holdings: list[dict[str, Any]] = []
    for res in results:
        for a, v in res.seed_value.items():
            seed_value[a] = seed_value.get(a, 0) + v
        for e in res.endpoints:
            row = {**e, "chain": e.get("chain", res.chain)}
            (mixer if e.get("category") in MIXER_CATEGORIES else services).append(row)
        for h in res.holdings:
            holdings.append({**h, "chain": h.get("chain", res.chain)})
    ev = evaluate(ledger, results) if table_exists(ledger, "lab", "endpoints") else None
    symbols, decimals = _token_names(ledger)
    return HeistSummary(model=model, chains=chains, loaded={}, real_tags={}, clusters=clusters,
                        exposure_rows=exposure_rows, seeds=seeds, results=results, stolen=stolen_totals(ledger),
                        seed_value=seed_value, services=services, mixer=mixer, holdings=holdings,
                        evaluation=ev, symbols=symbols, decimals=decimals, seconds=secs)  # fmt: skip


def amount_text(value: int, asset: str, symbols: dict[str, str], decimals: dict[str, int]) -> str:
    """``1,234.5 ETH``-style exact text; unknown tokens in base units."""
    key = asset.lower() if asset.startswith("0x") else asset
    sym = symbols.get(key, asset if not asset.startswith("0x") else asset[:10] + "…")
    d = decimals.get(key, decimals.get(asset))
    return f"{format_units(value, d)} {sym}" if d is not None else f"{value:,} {sym} (base units)"


def write_heist_report(summary: HeistSummary, path: Path) -> Path:
    """The self-contained HTML report: Sankey by hop type, timeline, endpoint table with
    evidence, recall against the ground truth, and the method and its limits."""
    from .report.charts import trace_sankey, trace_timeline
    from .report.html import Bullets, Chart, Heading, Paragraph, Table, render_page

    s = summary
    sym, dec = s.symbols, s.decimals

    def amt(v: int, a: str) -> str:
        return amount_text(v, a, sym, dec)

    sections: list[Any] = [Heading("Summary")]
    sections.append(Bullets([
        *(f"stolen (ground truth): {amt(v, a)}"
          + (f" = {s.usd[a].usd:,.2f} USD ({s.usd[a].source}, {s.usd[a].price_day})" if a in s.usd else "")
          for a, v in s.stolen.items()),
        *(f"traced seed value: {amt(v, a)}" for a, v in s.seed_value.items()),
        f"seed addresses: {', '.join(f'{len(v)} on {c}' for c, v in s.seeds.items())}",
        f"taint model: {s.model}; trace stops at {', '.join(DEMO_STOPS)}",
    ]))  # fmt: skip
    if s.evaluation is not None:
        ev = s.evaluation
        rows = [[r.kind, r.chain, sym.get(r.asset, r.asset), amt(r.truth, r.asset), amt(r.found, r.asset),
                 f"{float(r.ratio):.2%}" if r.ratio is not None else ""] for r in ev.recall]  # fmt: skip
        sections += [Heading("Recall against the ground truth"),
                     Table(["kind", "chain", "asset", "true value", "found", "recall"], rows,
                           numeric=["true value", "found", "recall"]),
                     Paragraph(f"Flagged endpoints: {ev.endpoints_flagged}; at a true endpoint address: "
                               f"{ev.endpoints_true} ({_pct(ev.endpoint_precision)}); at a service that received stolen "
                               f"value: {ev.endpoints_true_service}. Flagged addresses: {ev.addresses_flagged}, "
                               f"true: {ev.addresses_true} (precision {_pct(ev.address_precision)}, "
                               f"recall {_pct(ev.address_recall)}).")]  # fmt: skip
    sections += [Heading("Flow by hop type"),
                 Chart(trace_sankey(s.results, by="hop_type", decimals=dec, symbols=sym),
                       caption="Exact amounts in the node and link labels; widths are drawn from them."),
                 Heading("Timeline"), Chart(trace_timeline(s.results, decimals=dec, symbols=sym))]  # fmt: skip
    evidence: dict[tuple[str, str], list[str]] = {}
    senders: dict[tuple[str, str], list[str]] = {}
    for res in s.results:
        for e in res.edges:
            key = (str(e.get("chain", res.chain)), str(e.get("to")))
            evidence.setdefault(key, []).append(str(e.get("transaction_hash")))
            senders.setdefault(key, []).append(str(e.get("from")))

    def some(items: list[str], n: int = 5) -> str:
        uniq = sorted(set(items))
        return " ".join(uniq[:n]) + (f" (+{len(uniq) - n} more)" if len(uniq) > n else "")

    end_rows = []
    for e in [*s.services, *s.mixer]:
        key = (e["chain"], e["address"])
        end_rows.append([e["chain"], e["address"], ", ".join(e.get("labels") or []), e.get("category") or "",
                         amt(int(e["value"]), str(e["asset"])), str(e["first_time"]), str(e["last_time"]),
                         some(senders.get(key, [])), some(evidence.get(key, []))])  # fmt: skip
    sections += [Heading("Endpoints and evidence"),
                 Paragraph("Each endpoint with the tags that make it a stop, the exact traced value, and the "
                           "tainted transfers that delivered it: from which addresses (for an exchange hot wallet, "
                           "the customer deposit addresses that swept to it) and in which transactions."),
                 Table(["chain", "address", "tags", "category", "traced value", "first", "last", "received from",
                        "transactions"], end_rows, numeric=["traced value"])]  # fmt: skip
    held = sorted(s.holdings, key=lambda h: -int(h["value"]))[:25]
    sections += [Heading("Unspent (holdings, largest 25)"),
                 Table(["chain", "address", "value"], [[h["chain"], h["address"], amt(int(h["value"]), str(h["asset"]))]
                                                        for h in held], numeric=["value"])]  # fmt: skip
    sections += [Heading("Method and limits"), Bullets(METHOD_NOTES[s.model] + COMMON_LIMITS)]
    path.write_text(render_page("chainsleuth demo: the heist lab investigation", sections,
                                subtitle=f"taint model {s.model}; chains {', '.join(s.chains)}"))  # fmt: skip
    return path


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{float(x):.1%}"


METHOD_NOTES: dict[str, list[str]] = {
    "haircut": ["Haircut (Möser, Böhme, Breuker 2014): every output gets the pool's tainted fraction of its value; "
                "exact integer split, taint conserved. Over in breadth (co-mingled recipients get a share), under in "
                "depth (nobody is charged the whole amount)."],
    "poison": ["Poison (Möser et al. 2014): any taint in a pool taints all of every output; an upper bound that "
               "creates taint, never an amount to freeze."],
    "fifo": ["FIFO (Anderson et al. 2019, Clayton's rule): inputs are poured into outputs in order; whole amounts to "
             "few recipients, dependent on an order the sender chose."],
    "lifo": ["LIFO: the mirror of FIFO, the latest lot leaves first (a bracket to FIFO)."],
}  # fmt: skip
COMMON_LIMITS = [
    "Service stops: value reaching an address tagged exchange, mixing service, bridge or payment processor "
    "(and its whole cluster) is an endpoint and is not followed further. DEX routers and pairs are no stops: "
    "they custody nothing, and the decoded swaps are followed through them.",
    "A mixer breaks the link between deposits and withdrawals by design: value deposited is reported at the mixer "
    "and the withdrawals are not followed, which costs recall downstream of the mixer.",
    "DEX swaps and the lock/release bridge are followed with exact conversion (taint * amount_out // amount_in).",
    "Clustering evidence and tag sources are shown per endpoint; tags are claims by their sources, not findings.",
]


# ----------------------------------------------------------------------------- real blocks
# The foundation demo, kept for the clustering test on real blocks (tests/test_entities_demo.py):
# the real Bitcoin mainnet/testnet blocks in raw_blocks/ and two Ethereum mainnet blocks.
# Real blocks (hadoopcryptoledger test data, see shared/data/PROVENANCE.md), with the
# height where neither genesis linkage nor BIP34 gives it. ``block176149.blk`` is
# mainnet block 176,149 (version 1, before BIP34). ``version1.blk`` (a 2010 block)
# and ``multiblock.blk`` (which holds it) have no knowable height offline; skipped.
BITCOIN_MAINNET_FILES: list[tuple[str, int | None]] = [
    ("genesis.blk", None),
    ("block176149.blk", 176149),
    ("version2.blk", None),
    ("version3.blk", None),
    ("version4.blk", None),
    ("scriptwitness.blk", None),
]
BITCOIN_TESTNET_FILES = ["testnet3genesis.blk"]
ETHEREUM_ETL_EXPORT = "ethereum_etl_test_resources/test_stream/blocks_17173049_17173050"


@dataclass
class RealBlocksSummary:
    results: list[IngestResult] = field(default_factory=list)
    bitcoin_by_type: list[dict[str, Any]] = field(default_factory=list)
    bitcoin_largest: list[dict[str, Any]] = field(default_factory=list)
    bitcoin_conservation: dict[str, Any] = field(default_factory=dict)
    ethereum_by_kind: list[dict[str, Any]] = field(default_factory=list)
    ethereum_top_tokens: list[dict[str, Any]] = field(default_factory=list)


def run_real_blocks(ledger: Ledger, data: Path, progress: Progress | None = None) -> RealBlocksSummary:
    """Ingest the real blocks of the shared data into ``ledger`` and compute a summary."""
    from .ingest.blk_files import ingest_blk_files
    from .ingest.etl_files import ingest_etl_files

    progress = progress or NullProgress()
    raw = data / "raw_blocks"
    if not raw.is_dir():
        raise ConfigError(f"{raw} not found: set CHAINSLEUTH_DATA to the shared data folder")
    out = RealBlocksSummary()
    for name, height in BITCOIN_MAINNET_FILES:
        out.results.append(
            ingest_blk_files(ledger, [raw / name], network="mainnet", chain="bitcoin",
                             first_height=height, progress=progress)
        )
    out.results.append(
        ingest_blk_files(ledger, [raw / f for f in BITCOIN_TESTNET_FILES], network="testnet",
                         chain="bitcoin_testnet", progress=progress)
    )
    out.results.append(
        ingest_etl_files(ledger, data / ETHEREUM_ETL_EXPORT, chain="ethereum", progress=progress)
    )

    out.bitcoin_by_type = _rows(ledger, """
        SELECT type, count(*) AS outputs, sum(value) AS satoshi
        FROM bitcoin.outputs GROUP BY type ORDER BY outputs DESC""")
    out.bitcoin_largest = _rows(ledger, """
        SELECT to_address AS address, amount AS satoshi, block_number, transaction_hash
        FROM bitcoin.transfers WHERE kind = 'output' AND to_address IS NOT NULL
        ORDER BY amount DESC LIMIT 5""")
    out.bitcoin_conservation = _rows(ledger, """
        WITH per_tx AS (
          SELECT transaction_hash,
                 sum(CASE WHEN kind = 'input' THEN amount END) AS inputs,
                 sum(CASE WHEN kind = 'output' THEN amount END) AS outputs,
                 coalesce(sum(CASE WHEN kind = 'fee' THEN amount END), 0) AS fee,
                 count(*) FILTER (WHERE kind = 'input' AND amount IS NULL) AS unresolved
          FROM bitcoin.transfers GROUP BY transaction_hash)
        SELECT count(*) FILTER (WHERE inputs IS NOT NULL AND unresolved = 0) AS resolved_spends,
               count(*) FILTER (WHERE unresolved > 0) AS spends_with_unknown_prevouts,
               count(*) FILTER (WHERE inputs IS NOT NULL AND unresolved = 0
                                AND inputs <> outputs + fee) AS violations
        FROM per_tx""")[0]
    out.ethereum_by_kind = _rows(ledger, """
        SELECT kind, CASE WHEN asset = 'ETH' THEN 'ETH' ELSE 'tokens' END AS asset,
               count(*) AS legs,
               sum(CASE WHEN asset = 'ETH' THEN amount END) AS wei
        FROM ethereum.transfers GROUP BY ALL ORDER BY legs DESC""")
    out.ethereum_top_tokens = _rows(ledger, """
        SELECT asset AS token, count(*) AS transfers, count(DISTINCT from_address) AS senders,
               count(DISTINCT to_address) AS receivers
        FROM ethereum.transfers WHERE kind = 'token'
        GROUP BY asset ORDER BY transfers DESC LIMIT 5""")
    return out


run_demo = run_real_blocks  # the foundation demo's name (tests/test_entities_demo.py)
