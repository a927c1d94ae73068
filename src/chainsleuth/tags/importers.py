"""Importers for the public attribution sources; all write through :func:`store.write_import`.

Each importer reads its whole source first and raises :class:`InputFileError` (file,
line, field) before anything is written, so a bad file imports nothing. Re-importing
the same source replaces its previous rows.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from ..errors import ChainsleuthError, ConfigError, InputFileError
from ..store import Ledger
from .normalize import b58decode_check, bech32_valid, normalize_address
from .store import SCHEMA, TagColumns, ensure_schema, write_import
from .tagpack import load_yaml, read_tagpack
from .taxonomy import (
    CONFIDENCE_LEVELS,
    LEGACY_CONCEPTS,
    check_concept,
    confidence_level,
    is_abuse_concept,
)

OFAC_SDN_URL = "https://sanctionslist.ofac.treas.gov/Home/SdnList"
OXB10C_URL = "https://github.com/0xB10C/ofac-sanctioned-digital-currency-addresses"
ULTRASOUND_URL = "https://github.com/ultrasoundmoney/ofac-ethereum-addresses"
FORTA_URL = "https://github.com/forta-network/labelled-datasets"
TAYVANO_URL = "https://github.com/tayvano/lazarus-bluenoroff-research/blob/main/hacks-and-thefts/"
BUILTIN_ACTORS = "builtin-actors"

# OFAC asset codes -> GraphSense currency codes (GraphSense writes Bitcoin as BTC).
OFAC_CURRENCY = {"XBT": "BTC"}


@dataclass
class ImportResult:
    kind: str
    path: str
    tags: int
    actors: int = 0
    files: int = 1
    skipped: int = 0
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- helpers


def _date(value: Any, path: Path, line: int | None, name: str) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    if re.fullmatch(r"\d{4}-\d{2}", text):  # month precision (e.g. Harmony 2023-01): its first day
        text += "-01"
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        raise InputFileError(str(path), line, f"field {name!r}: not a date: {value!r}") from None


def _concept(value: Any, path: Path, line: int | None, name: str) -> str | None:
    if value in (None, ""):
        return None
    try:
        return check_concept(str(value).strip())
    except ConfigError as exc:
        raise InputFileError(str(path), line, f"field {name!r}: {exc}") from None


def _confidence(value: Any, path: Path, line: int | None) -> tuple[str, int]:
    name = str(value).strip()
    try:
        return name, confidence_level(name)
    except ConfigError as exc:
        raise InputFileError(str(path), line, f"field 'confidence': {exc}") from None


def _read_csv(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a CSV with header, numbered by their line in the file (header = line 1)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # OFAC's sdn.csv is Windows-1252/Latin-1
    reader = csv.DictReader(io.StringIO(text, newline=""))
    for row in reader:
        if None in row:
            raise InputFileError(str(path), reader.line_num, "more fields than the header names")
        yield reader.line_num, {k.strip(): (v or "").strip() for k, v in row.items() if k}


@cache
def builtin_actor_pack() -> dict[str, Any]:
    text = resources.files("chainsleuth.tags").joinpath("data/dprk_actors.yaml").read_text("utf-8")
    import yaml

    doc = yaml.load(text, Loader=yaml.CSafeLoader)
    assert isinstance(doc, dict)
    return doc


@cache
def _builtin_alias_index() -> dict[str, str]:
    out: dict[str, str] = {}
    for actor in builtin_actor_pack()["actors"]:
        for name in [actor["id"], actor["label"], *actor.get("aliases", [])]:
            out[str(name).lower()] = actor["id"]
    return out


def builtin_actor_for(name: str) -> str | None:
    """The curated actor id for a party name such as 'LAZARUS GROUP', if it is one."""
    return _builtin_alias_index().get(name.strip().lower())


_ENSURED: weakref.WeakKeyDictionary[Ledger, bool] = weakref.WeakKeyDictionary()


def ensure_builtin_actors(ledger: Ledger) -> None:
    """Load the shipped DPRK actor hierarchy once (again only when the file changed)."""
    if _ENSURED.get(ledger):
        return
    ensure_schema(ledger)
    path = Path(str(resources.files("chainsleuth.tags").joinpath("data/dprk_actors.yaml")))
    from .store import file_sha256

    row = ledger.con.execute(
        f"SELECT count(*) FROM {SCHEMA}.imports WHERE kind = ? AND sha256 = ?",
        [BUILTIN_ACTORS, file_sha256(path)],
    ).fetchone()
    if not (row and row[0]):
        actors = [
            {**a, "context": {"sources": a.get("sources", []), "curated_by": "chainsleuth"}}
            for a in builtin_actor_pack()["actors"]
        ]
        write_import(ledger, BUILTIN_ACTORS, path, TagColumns(), actors=actors)
    _ENSURED[ledger] = True


# --------------------------------------------------------------------------- GraphSense

_HEADER_ONLY = {"title", "creator", "description", "owner", "is_public", "tags"}


def _tagpack_rows(path: Path, out: TagColumns, warnings: list[str]) -> int:
    header, tags = read_tagpack(path)
    if not isinstance(header.get("title"), str) or not header.get("title"):
        raise InputFileError(str(path), 1, "field 'title': missing (TagPack header needs title)")
    inherited = {k: v for k, v in header.items() if k not in _HEADER_ONLY}
    skipped = 0
    missing_conf = 0
    for line, tag in tags:
        t = {**inherited, **tag}
        address = t.get("address")
        if address is None:
            if t.get("tx_hash"):
                skipped += 1  # transaction tags have no address to screen
                continue
            raise InputFileError(str(path), line, "field 'address': missing")
        if isinstance(address, int):  # an unquoted 0x... address reads as a YAML int
            address = f"0x{address:040x}"
        label = t.get("label")
        if label in (None, ""):
            raise InputFileError(str(path), line, "field 'label': missing")
        currency = t.get("currency")
        if not currency:
            raise InputFileError(str(path), line, "field 'currency': missing")
        currency = str(currency).strip().upper()
        if t.get("confidence") is None:
            missing_conf += 1
            conf, level = "unknown", CONFIDENCE_LEVELS["unknown"]
        else:
            conf, level = _confidence(t["confidence"], path, line)
        context: dict[str, Any] = {}
        raw_ctx = t.get("context")
        if isinstance(raw_ctx, str):
            try:
                parsed = json.loads(raw_ctx)
                context = parsed if isinstance(parsed, dict) else {"text": raw_ctx}
            except ValueError:
                context = {"text": raw_ctx}
        elif isinstance(raw_ctx, dict):
            context = dict(raw_ctx)
        for name in ("category", "abuse"):
            if t.get(name) not in (None, "") and str(t[name]).strip() not in (
                _concept(t[name], path, line, name),
            ):
                context[f"original_{name}"] = t[name]
        category = _concept(t.get("category"), path, line, "category")
        abuse = _concept(t.get("abuse"), path, line, "abuse")
        concepts_raw = t.get("concepts") or []
        if not isinstance(concepts_raw, list):
            raise InputFileError(str(path), line, "field 'concepts': not a list")
        concepts = [c for c in (_concept(c, path, line, "concepts") for c in concepts_raw) if c]
        valid_from = _date(context.pop("chainsleuth_valid_from", None), path, line, "context")
        source_name = context.pop("chainsleuth_source", None) or f"graphsense:{header['title']}"
        is_abuse = bool(abuse) or is_abuse_concept(category) or any(map(is_abuse_concept, concepts))
        norm = normalize_address(str(address), currency)
        out.add(
            currency=currency,
            address=norm.address,
            label=str(label).strip(),
            category=category or abuse or (concepts[0] if concepts else None),
            confidence=conf,
            confidence_level=level,
            actor=str(t["actor"]).strip() if t.get("actor") else None,
            source=source_name,
            source_url=str(t["source"]).strip() if t.get("source") else None,
            valid_from=valid_from,
            is_abuse=is_abuse,
            context=context or None,
            abuse=abuse,
            concepts=concepts or None,
            is_cluster_definer=t.get("is_cluster_definer"),
            lastmod=_date(t.get("lastmod"), path, line, "lastmod"),
        )
    if missing_conf:
        warnings.append(f"{path.name}: {missing_conf} tags without confidence stored as 'unknown'")
    if skipped:
        warnings.append(f"{path.name}: {skipped} transaction tags (no address) skipped")
    return skipped


def _yaml_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))
        return [p for p in files if "actor" not in p.name.lower()]
    return [path]


def _import_tagpack(ledger: Ledger, path: Path, progress: Callable[[str], None]) -> ImportResult:
    files = _yaml_files(path)
    if not files:
        raise InputFileError(str(path), None, "no .yaml TagPack files found")
    # each file is its own source: re-importing one pack replaces only that pack
    parsed: list[tuple[Path, TagColumns, list[str], int]] = []
    for f in files:
        cols, warns = TagColumns(), list[str]()
        skipped = _tagpack_rows(f, cols, warns)
        parsed.append((f, cols, warns, skipped))
        progress(f"read {f.name}: {len(cols):,} tags")
    total = ImportResult("tagpack", str(path), 0, files=len(files))
    for f, cols, warns, skipped in parsed:
        write_import(ledger, "tagpack", f, cols, warnings=warns)
        total.tags += len(cols)
        total.skipped += skipped
        total.warnings.extend(warns)
    return total


def _import_actorpack(ledger: Ledger, path: Path) -> ImportResult:
    files = sorted(path.rglob("*actor*.yaml")) if path.is_dir() else [path]
    total = ImportResult("actorpack", str(path), 0, files=len(files))
    prepared = []
    for f in files:
        doc = load_yaml(f)
        if not isinstance(doc, dict) or not isinstance(doc.get("actors"), list):
            raise InputFileError(str(f), None, "field 'actors': missing or not a list")
        actors = []
        for i, a in enumerate(doc["actors"]):
            if not isinstance(a, dict) or not a.get("id"):
                raise InputFileError(str(f), None, f"actor #{i + 1}: field 'id' missing")
            raw_ctx = a.get("context")
            ctx: dict[str, Any] = raw_ctx if isinstance(raw_ctx, dict) else {}
            aliases = list(a.get("aliases") or []) + list(ctx.get("aliases") or [])
            # actor categories are descriptive (newer GraphSense packs use concepts beyond the
            # tag taxonomy, e.g. 'drugs'): kept as given, legacy ids mapped
            cats = [LEGACY_CONCEPTS.get(str(c), str(c)) for c in a.get("categories") or []]
            actors.append(
                {
                    "id": str(a["id"]),
                    "label": a.get("label"),
                    "parent": a.get("parent"),
                    "uri": a.get("uri"),
                    "categories": [c for c in cats if c],
                    "jurisdictions": a.get("jurisdictions") or [],
                    "context": ctx,
                    "aliases": [str(x) for x in aliases],
                }
            )
        prepared.append((f, actors))
    for f, actors in prepared:
        write_import(ledger, "actorpack", f, TagColumns(), actors=actors)
        total.actors += len(actors)
    return total


# --------------------------------------------------------------------------- OFAC

_SDN_ADDR = re.compile(r"Digital Currency Address - ([A-Za-z0-9]+)\s+([^;\s]*)")


def _plausible(address: str, currency: str) -> bool:
    """False for an address cut short by sdn.csv's truncated Remarks field."""
    n = normalize_address(address, currency)
    if n.kind == "evm":
        return True
    if n.kind == "bech32":
        return bech32_valid(n.address)
    if n.kind in ("base58", "tron") and currency in (
        "BTC",
        "LTC",
        "BCH",
        "BTG",
        "DASH",
        "ZEC",
        "TRX",
        "USDT",
        "BSV",
    ):
        return b58decode_check(n.address) is not None
    return len(address) >= 25


def _import_ofac_sdn(path: Path) -> tuple[TagColumns, list[str]]:
    out, warnings = TagColumns(), []
    files = sorted(path.glob("sdn*.csv")) if path.is_dir() else [path]
    if not files:
        raise InputFileError(str(path), None, "no sdn*.csv file found")
    for f in files:
        raw = f.read_bytes()
        text = raw.decode("latin-1")
        reader = csv.reader(io.StringIO(text, newline=""))
        for row in reader:
            if len(row) <= 1 and not "".join(row).strip(" \t\x1a"):  # blank, or DOS EOF (^Z)
                continue
            if len(row) != 12:
                raise InputFileError(
                    str(f), reader.line_num, f"expected 12 SDN fields, got {len(row)}"
                )
            ent_num, name, sdn_type, program = (c.strip() for c in row[:4])
            remarks = row[11]
            matches = list(_SDN_ADDR.finditer(remarks))
            for i, m in enumerate(matches):
                asset, address = m.group(1).upper(), m.group(2).rstrip(".,")
                currency = OFAC_CURRENCY.get(asset, asset)
                last = i == len(matches) - 1
                if not address or (last and not _plausible(address, currency)):
                    warnings.append(
                        f"{f.name}:{reader.line_num}: SDN {ent_num} ({name}) address {address!r} "
                        "cut off by the truncated Remarks field; skipped"
                    )
                    continue
                out.add(
                    currency=currency,
                    address=normalize_address(address, currency).address,
                    label=name,
                    category="sanction",
                    confidence="authority_data",
                    confidence_level=CONFIDENCE_LEVELS["authority_data"],
                    actor=builtin_actor_for(name),
                    source="OFAC SDN list (sdn.csv)",
                    source_url=OFAC_SDN_URL,
                    valid_from=None,
                    is_abuse=True,
                    context={
                        "party": name,
                        "program": program.replace("] [", "; ").strip("[]"),
                        "sdn_entity_number": ent_num,
                        "sdn_type": None if sdn_type == "-0-" else sdn_type,
                        "ofac_asset": asset,
                        "file": f.name,
                    },
                    abuse="sanction",
                )
    return out, warnings


def _import_ofac_lists(path: Path) -> tuple[TagColumns, list[str]]:
    out: TagColumns = TagColumns()
    files = sorted(path.glob("sanctioned_addresses_*.txt")) if path.is_dir() else [path]
    if not files:
        raise InputFileError(str(path), None, "no sanctioned_addresses_*.txt lists found")
    for f in files:
        m = re.match(r"sanctioned_addresses_([A-Za-z0-9]+)\.(txt|json)$", f.name)
        if not m:
            raise InputFileError(str(f), None, "file name must be sanctioned_addresses_<ASSET>.txt")
        asset = m.group(1).upper()
        currency = OFAC_CURRENCY.get(asset, asset)
        if f.suffix == ".json":
            try:
                items = orjson.loads(f.read_bytes())
            except orjson.JSONDecodeError as exc:
                raise InputFileError(str(f), None, f"not JSON: {exc}") from None
            lines = [(i + 1, str(a)) for i, a in enumerate(items)]
        else:
            lines = list(enumerate(f.read_text("utf-8").splitlines(), start=1))
        for lineno, text in lines:
            if not text.strip():
                continue
            norm = normalize_address(text, currency)
            if norm.kind == "other" and not re.fullmatch(r"[0-9a-f]{64}", norm.address):
                raise InputFileError(str(f), lineno, f"field 'address': not an address: {text!r}")
            out.add(
                currency=currency, address=norm.address, label="OFAC SDN listed address",
                category="sanction", confidence="authority_data",
                confidence_level=CONFIDENCE_LEVELS["authority_data"], actor=None,
                source="OFAC SDN digital currency addresses (0xB10C lists)", source_url=OXB10C_URL,
                is_abuse=True, context={"ofac_asset": asset, "file": f.name}, abuse="sanction",
            )  # fmt: skip
    return out, []


def _import_ofac_ultrasound(path: Path) -> tuple[TagColumns, list[str]]:
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    current: dict[str, tuple[str, str]] = {}
    dated: dict[str, tuple[dt.date, str, str]] = {}
    for f in files:
        for lineno, row in _read_csv(f):
            addr = row.get("address")
            if not addr:
                raise InputFileError(str(f), lineno, "field 'address': missing")
            norm = normalize_address(addr, "ETH")
            if norm.kind != "evm":
                raise InputFileError(
                    str(f), lineno, f"field 'address': not an ETH address: {addr!r}"
                )
            name = row.get("name", "")
            if "date_added" in row:
                date = _date(row["date_added"], f, lineno, "date_added")
                assert date is not None
                dated[norm.address] = (date, name, f.name)
            else:
                current[norm.address] = (name, f.name)
    out: TagColumns = TagColumns()
    for address in sorted(set(current) | set(dated)):
        name = current[address][0] if address in current else dated[address][1]
        ctx: dict[str, Any] = {"party": name, "in_current_list": address in current}
        if address in dated:
            ctx["date_added_file"] = dated[address][2]
        out.add(
            currency="ETH", address=address, label=name, category="sanction",
            confidence="authority_data", confidence_level=CONFIDENCE_LEVELS["authority_data"],
            actor=builtin_actor_for(name), source="OFAC SDN ETH addresses (ultrasound.money)",
            source_url=ULTRASOUND_URL, valid_from=dated[address][0] if address in dated else None,
            is_abuse=True, context=ctx, abuse="sanction",
        )  # fmt: skip
    return out, []


# --------------------------------------------------------------------------- EVM label dumps

EXPLORER_CURRENCY = {
    "etherscan": ("ETH", "https://etherscan.io/labelcloud"),
    "bscscan": ("BSC", "https://bscscan.com/labelcloud"),
    "polygonscan": ("MATIC", "https://polygonscan.com/labelcloud"),
    "optimism": ("OP", "https://optimistic.etherscan.io/labelcloud"),
    "arbiscan": ("ARB", "https://arbiscan.io/labelcloud"),
    "ftmscan": ("FTM", "https://ftmscan.com/labelcloud"),
    "avalanche": ("AVAX", "https://snowtrace.io/labelcloud"),
}
# Etherscan label-cloud slugs -> concepts (chainsleuth's reading of the slug's meaning).
ETHERSCAN_SLUG_CONCEPT = {
    "exchange": "exchange", "dex": "defi_dex", "bridge": "defi_bridge", "lending": "defi_lending",
    "loans": "defi_lending", "tornado-cash": "mixing_service", "mixer": "mixing_service",
    "phish-hack": "phishing", "heist": "service_hack", "exploit": "service_hack",
    "gambling": "gambling", "mining": "miner", "mining-pool": "miner", "ofac-sanctioned": "sanction",
    "sanctioned": "sanction", "ico-wallets": "ico_wallet", "payments": "payment_processor",
    "scam": "scam", "ponzi": "ponzi_scheme", "hot-wallet": "hot_wallet", "cold-wallet": "cold_wallet",
    "binance": "exchange", "coinbase": "exchange", "kraken": "exchange", "kucoin": "exchange",
    "huobi": "exchange", "okx": "exchange", "okex": "exchange", "bitfinex": "exchange",
    "gemini": "exchange", "ftx": "exchange", "crypto-com": "exchange", "gate-io": "exchange",
    "bybit": "exchange", "bitstamp": "exchange", "poloniex": "exchange", "bittrex": "exchange",
    "upbit": "exchange", "bithumb": "exchange", "hotbit": "exchange", "mexc": "exchange",
    "bitget": "exchange", "bitmex": "exchange", "htx": "exchange",
}  # fmt: skip
# priority when a label carries several slugs: abuse first, then mixers, then services
_PRIORITY = ["sanction", "service_hack", "phishing", "scam", "ponzi_scheme", "mixing_service"]


def _slug_category(slugs: list[str]) -> str | None:
    cats = [ETHERSCAN_SLUG_CONCEPT[s] for s in slugs if s in ETHERSCAN_SLUG_CONCEPT]
    for p in _PRIORITY:
        if p in cats:
            return p
    return cats[0] if cats else None


def _import_etherscan(path: Path) -> tuple[TagColumns, list[str]]:
    out: TagColumns = TagColumns()
    warnings: list[str] = []
    base = path / "data" if (path / "data").is_dir() else path
    files = sorted(base.glob("*/combined/combinedAllLabels.json"))
    if not files and path.is_file():
        files = [path]
    if not files:
        raise InputFileError(str(path), None, "no <explorer>/combined/combinedAllLabels.json found")
    for f in files:
        explorer = f.parent.parent.name
        currency, url = EXPLORER_CURRENCY.get(explorer, ("ETH", "https://etherscan.io/labelcloud"))
        try:
            doc = orjson.loads(f.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise InputFileError(str(f), None, f"not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise InputFileError(str(f), None, "expected an object {address: {name, labels}}")
        bad = 0
        for address, info in doc.items():
            norm = normalize_address(address, currency)
            if norm.kind != "evm" or not isinstance(info, dict):
                bad += 1  # the scraped dumps hold a few empty keys; skipped and counted
                continue
            slugs = [str(s) for s in info.get("labels") or []]
            name = str(info.get("name") or "").strip()
            category = _slug_category(slugs)
            out.add(
                currency=currency, address=norm.address, label=name or ", ".join(slugs),
                category=category, confidence="web_crawl",
                confidence_level=CONFIDENCE_LEVELS["web_crawl"], actor=None,
                source=f"{explorer} labels (brianleect/etherscan-labels)", source_url=url,
                is_abuse=is_abuse_concept(category), context={"labels": slugs, "explorer": explorer},
                abuse=category if is_abuse_concept(category) else None,
            )  # fmt: skip
        if bad:
            warnings.append(f"{f}: {bad} entries without a valid EVM address skipped")
    return out, warnings


FORTA_CHAIN = {"1": "ETH", "10": "OP", "56": "BSC", "137": "MATIC", "42161": "ARB"}
FORTA_LABEL_CONCEPT = {
    "phish-hack": "phishing", "etherscan-phish-hack-list": "phishing", "exploit": "service_hack",
    "etherscan-exploit-list": "service_hack", "heist": "service_hack",
    "etherscan-heist-list": "service_hack",
}  # fmt: skip


def _forta_add(
    out: TagColumns, f: Path, lineno: int, currency: str, address: str, label: str, slug: str,
    ctx: dict[str, Any],
) -> None:  # fmt: skip
    norm = normalize_address(address, currency)
    if norm.kind != "evm":
        raise InputFileError(str(f), lineno, f"field 'address': not an EVM address: {address!r}")
    # Forta's rows are all malicious by construction; an unlabelled one is a generic scam
    category = FORTA_LABEL_CONCEPT.get(slug, "scam" if not slug else None) or "abuse"
    out.add(
        currency=currency, address=norm.address, label=label, category=category,
        confidence="web_crawl", confidence_level=CONFIDENCE_LEVELS["web_crawl"],
        actor=None, source=f"Forta labelled datasets ({f.parent.name}/{f.name})",
        source_url=FORTA_URL, is_abuse=True, context=ctx, abuse=category,
    )  # fmt: skip


def _import_forta(path: Path) -> tuple[TagColumns, list[str]]:
    """Forta labelled datasets: labels/<chain id>/*.csv (etherscan labels, phishing, contracts)."""
    out: TagColumns = TagColumns()
    files = sorted(path.rglob("*.csv")) if path.is_dir() else [path]
    if not files:
        raise InputFileError(str(path), None, "no Forta CSV files found")
    for f in files:
        cur = FORTA_CHAIN.get(f.parent.name, "ETH")
        for n, row in _read_csv(f):
            if "banned_address" in row:
                _forta_add(out, f, n, cur, row["banned_address"], row.get("wallet_tag") or "malicious address",
                           row.get("data_source", ""), {"data_source": row.get("data_source")})  # fmt: skip
            elif "contract_address" in row:
                slug = row.get("contract_creator_etherscan_label", "")
                _forta_add(out, f, n, cur, row["contract_address"], row.get("contract_tag") or "malicious contract",
                           slug, {"role": "contract", "notes": row.get("notes"), "creator": row.get("contract_creator")})  # fmt: skip
                if row.get("contract_creator"):
                    _forta_add(out, f, n, cur, row["contract_creator"],
                               row.get("contract_creator_tag") or "creator of a malicious contract", slug,
                               {"role": "contract creator", "contract": row["contract_address"]})  # fmt: skip
            elif "address" in row:
                _forta_add(out, f, n, cur, row["address"], row.get("etherscan_tag") or "phishing address",
                           row.get("etherscan_labels", ""), {"is_contract": row.get("is_contract")})  # fmt: skip
            else:
                raise InputFileError(
                    str(f), n, "no address column (banned_address, contract_address, address)"
                )
    return out, []


# --------------------------------------------------------------------------- DPRK seeds, CSV

DPRK_ROLE_CONCEPT = {
    "attacker": "service_hack", "cash-out": "money_laundering", "laundering": "money_laundering",
    "victim": "victim",
}  # fmt: skip


def _import_dprk_seeds(path: Path) -> tuple[TagColumns, list[str]]:
    f = path / "dprk_hack_seed_addresses.csv" if path.is_dir() else path
    attribution = builtin_actor_pack()["hack_attribution"]
    out: TagColumns = TagColumns()
    for lineno, row in _read_csv(f):
        for name in ("hack", "date", "chain", "address", "role"):
            if not row.get(name):
                raise InputFileError(str(f), lineno, f"field {name!r}: missing")
        role_kind = row["role"].split(":", 1)[0].split("(", 1)[0].strip().lower()
        category = DPRK_ROLE_CONCEPT.get(role_kind)
        if category is None:
            raise InputFileError(
                str(f),
                lineno,
                f"field 'role': unknown role {row['role']!r}; allowed prefixes: "
                + ", ".join(DPRK_ROLE_CONCEPT),
            )
        attr = attribution.get(row["hack"], {})
        is_victim = category == "victim"
        conf = "authority_data" if "(FBI" in row["role"] else "forensic"
        src = row.get("source", "")
        md = re.search(r"([\w.-]+\.md)", src)
        currency = row["chain"].strip().upper()
        out.add(
            currency=currency, address=normalize_address(row["address"], currency).address,
            label=f"{row['hack']}: {row['role']}", category=category, confidence=conf,
            confidence_level=CONFIDENCE_LEVELS[conf],
            # a victim's address is not the attacker's: no actor on victims
            actor=None if is_victim else attr.get("actor"),
            source="DPRK hack seeds (tayvano/lazarus-bluenoroff-research, transcribed)",
            source_url=TAYVANO_URL + md.group(1) if md else TAYVANO_URL,
            valid_from=_date(row["date"], f, lineno, "date"), is_abuse=not is_victim,
            context={"hack": row["hack"], "role": row["role"], "source": src,
                     "attribution_source": attr.get("source")},
            abuse=None if is_victim else category,
        )  # fmt: skip
    return out, []


CSV_COLUMNS = [
    "address",
    "currency",
    "label",
    "category",
    "confidence",
    "actor",
    "source",
    "source_url",
    "valid_from",
]


def _import_csv(path: Path) -> tuple[TagColumns, list[str]]:
    out: TagColumns = TagColumns()
    rows = list(_read_csv(path))
    if rows and not {"address", "currency", "label", "confidence"} <= set(rows[0][1]):
        raise InputFileError(str(path), 1, f"header must name the columns {', '.join(CSV_COLUMNS)}")
    for lineno, row in rows:
        for name in ("address", "currency", "label", "confidence"):
            if not row.get(name):
                raise InputFileError(str(path), lineno, f"field {name!r}: missing")
        conf, level = _confidence(row["confidence"], path, lineno)
        category = _concept(row.get("category"), path, lineno, "category")
        currency = row["currency"].upper()
        out.add(
            currency=currency, address=normalize_address(row["address"], currency).address,
            label=row["label"], category=category, confidence=conf, confidence_level=level,
            actor=row.get("actor") or None, source=row.get("source") or path.name,
            source_url=row.get("source_url") or None,
            valid_from=_date(row.get("valid_from"), path, lineno, "valid_from"),
            is_abuse=is_abuse_concept(category), context=None,
            abuse=category if is_abuse_concept(category) else None,
        )  # fmt: skip
    return out, []


_SIMPLE: dict[str, Callable[[Path], tuple[TagColumns, list[str]]]] = {
    "ofac-sdn": _import_ofac_sdn,
    "ofac-lists": _import_ofac_lists,
    "ofac-ultrasound": _import_ofac_ultrasound,
    "etherscan": _import_etherscan,
    "forta": _import_forta,
    "dprk-seeds": _import_dprk_seeds,
    "csv": _import_csv,
}
KINDS = ["tagpack", "actorpack", *_SIMPLE]


def import_tags(
    ledger: Ledger,
    kind: str,
    path: str | Path,
    *,
    progress: Callable[[str], None] | None = None,
) -> ImportResult:
    """Import one source of tags (or actors) of ``kind`` from ``path`` (a file or folder)."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: no such file or folder")
    say = progress or (lambda _msg: None)
    ensure_builtin_actors(ledger)
    if kind == "tagpack":
        return _import_tagpack(ledger, p, say)
    if kind == "actorpack":
        return _import_actorpack(ledger, p)
    fn = _SIMPLE.get(kind)
    if fn is None:
        raise ConfigError(f"unknown tag source kind {kind!r}; allowed: {', '.join(KINDS)}")
    try:
        cols, warnings = fn(p)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(str(p), None, f"cannot read: {exc}") from None
    except ChainsleuthError:
        raise
    write_import(ledger, kind, p, cols, warnings=warnings)
    return ImportResult(kind, str(p), len(cols), warnings=warnings)
