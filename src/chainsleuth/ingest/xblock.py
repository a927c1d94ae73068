"""XBlock Ethereum phishing transactions (per-account Etherscan CSVs) into an Ethereum-family chain.

Source: ``xblock_eth_phishing_dsc180b`` in the shared data (XBlock dataset 6, Wu et al.
2019 "T-EDGE", as copied by KazumaYamamoto2023/DSC180B-Q2-Project; see the data folder's
PROVENANCE.md). Each ``<address>.csv`` is one account's Etherscan history, two lists
concatenated and sorted by time: *normal* transactions (``txlist``: ``Input`` is the call
data, ``0x`` when empty) and *internal* transactions (``txlistinternal``: ``Input`` is the
text ``NULL``). Columns: ``,TxHash,BlockHeight,TimeStamp,From,To,Value,ContractAddress,Input,isError``.

Mapping to the canonical ledger (blockchain-etl column names):

* a normal row is a ``transactions`` row and a ``receipts`` row (``status = 1 - isError``,
  ``contract_address`` for creations; gas is not in the source, so no fee legs);
* an internal row is a ``traces`` row (``trace_type`` call, or create when it made a
  contract; ``status = 1 - isError``); the source has no call path, so ``trace_address``
  numbers the calls of one transaction in a stable order (0, 1, ...);
* ``blocks`` rows carry height and time; the source has no block hash, so ``hash`` is
  ``xblock:<height>`` (a stand-in, never a real hash).

``Value`` is ETH as decimal text with up to 18 decimals (``0.586269480000000000``) or in
exponent form (``6.91400000000E-7``, ``0E-18``); it is converted to wei exactly
(``decimal.Decimal``), and a value that is not a whole number of wei is an error.

A transaction appears in the file of each account it touches: normal rows are kept once
per hash (the copies must agree); an internal call is kept as often as it occurs in any
one file (a call repeated inside a transaction is repeated in every file that lists it).

Order inside a block: the source has no transaction index. Etherscan lists each section
(normal, internal) of a file in chain order, so every file gives an ordering of the block's
transactions it names; their union is sorted topologically (ties by hash), which gives a
``transaction_index`` that agrees with every file. It matters because an account that
receives and spends in one block must be debited after it is credited.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import duckdb

from ..errors import ConfigError, InputFileError
from ..progress import NullProgress, Progress
from ..store import Ledger

DATASET = "xblock_eth_phishing_dsc180b"
PHISHING_LIST = "phishing accounts/phishing-address.txt"
# per-account files: the 1,262 labelled phishing accounts, and the project's copy that
# adds 1,138 other accounts (its non-phishing sample); overlapping files are identical
ACCOUNT_FOLDERS = ("phishing accounts/phishing", "phishing")
DEFAULT_CHAIN = "ethereum_xblock"
WEI_PER_ETH = 10**18
SOURCE_URL = "http://xblock.pro/#/dataset/6"


@dataclass
class XblockResult:
    chain: str
    files: int = 0
    rows_read: int = 0
    transactions: int = 0
    internal_calls: int = 0
    blocks: int = 0
    first_block: int | None = None
    last_block: int | None = None
    rows: dict[str, int] = field(default_factory=dict)


def eth_to_wei(text: str, where: str = "Value") -> int:
    """Exact wei of an ETH amount written as decimal text (``0.5``, ``6.914E-7``)."""
    try:
        d = Decimal(text.strip())
    except InvalidOperation:
        raise ConfigError(f"{where}: not a number: {text!r}") from None
    if not d.is_finite() or d < 0:
        raise ConfigError(f"{where}: not a non-negative amount: {text!r}")
    # integer arithmetic on the digits: Decimal operations round to the context's 28 digits
    _, digits, exponent = d.as_tuple()
    assert isinstance(exponent, int)  # finite
    units = int("".join(map(str, digits)))
    shift = exponent + 18
    if units and len(digits) + shift > 78:  # beyond any uint256 (and no 10**huge below)
        raise ConfigError(f"{where}: {text!r} ETH is too large (10**78 wei or more)")
    if not units:
        return 0
    if shift >= 0:
        return units * 10**shift
    # units < 10**len(digits): a larger divisor always leaves a fraction of a wei
    wei, rest = divmod(units, 10 ** min(-shift, len(digits) + 1))
    if rest:
        raise ConfigError(f"{where}: {text!r} ETH is not a whole number of wei")
    return wei


def dataset_dir(data: Path) -> Path:
    """The XBlock folder inside the shared data folder (ConfigError when absent)."""
    p = data / DATASET if (data / DATASET).is_dir() else data
    if not (p / PHISHING_LIST).is_file():
        raise ConfigError(f"{p}: not the XBlock phishing dataset (no {PHISHING_LIST!r}); set CHAINSLEUTH_DATA")
    return p


def phishing_accounts(path: Path) -> list[str]:
    """The labelled phishing accounts (lower case, sorted, distinct)."""
    f = dataset_dir(path) / PHISHING_LIST
    out: set[str] = set()
    for n, line in enumerate(f.read_text().splitlines(), 1):
        a = line.strip().lower()
        if not a:
            continue
        if len(a) != 42 or not a.startswith("0x") or any(c not in "0123456789abcdef" for c in a[2:]):
            raise InputFileError(str(f), n, f"not an Ethereum address: {line.strip()!r}")
        out.add(a)
    return sorted(out)


def _read(folder: Path) -> duckdb.DuckDBPyConnection:
    """All account files as one table ``r`` (text columns, file name, section)."""
    files = sorted({str(p) for sub in ACCOUNT_FOLDERS for p in (folder / sub).glob("*.csv")})
    if not files:
        raise ConfigError(f"{folder}: no per-account CSV files in {' or '.join(ACCOUNT_FOLDERS)}")
    con = duckdb.connect()
    try:
        con.execute(
            "CREATE TABLE r AS SELECT column0, TxHash, BlockHeight, TimeStamp, lower(\"From\") AS fa, "
            "lower(\"To\") AS ta, Value, lower(ContractAddress) AS ca, Input, isError, filename, "
            "(Input = 'NULL') AS internal "
            "FROM read_csv(?, all_varchar = true, filename = true, header = true, union_by_name = true)",
            [files],
        )
    except duckdb.Error as exc:
        raise InputFileError(str(folder), None, f"cannot read the account CSVs: {exc}") from None
    bad = con.execute(
        "SELECT filename, TxHash FROM r WHERE TxHash IS NULL OR NOT regexp_full_match(TxHash, '0x[0-9a-fA-F]{64}') "
        "OR NOT regexp_full_match(coalesce(BlockHeight, ''), '[0-9]+') OR NOT regexp_full_match(coalesce(TimeStamp, ''), '[0-9]+') "
        "OR isError NOT IN ('0', '1') OR fa IS NULL OR NOT regexp_full_match(fa, '0x[0-9a-f]{40}') "
        "OR NOT (ta = 'null' OR regexp_full_match(ta, '0x[0-9a-f]{40}')) LIMIT 1"
    ).fetchone()
    if bad:
        raise InputFileError(str(bad[0]), None, f"malformed row (transaction {bad[1]!r})")
    con.execute("CREATE TABLE files AS SELECT ? AS n", [len(files)])
    return con


def _topological(nodes: Iterable[str], edges: set[tuple[str, str]]) -> list[str]:
    """Nodes in an order that respects every edge (a before b); ties and cycles by name."""
    nodes = sorted(set(nodes))
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    indeg = dict.fromkeys(nodes, 0)
    for a, b in edges:
        succ[a].append(b)
        indeg[b] += 1
    heap = [n for n in nodes if indeg[n] == 0]
    heapq.heapify(heap)
    out: list[str] = []
    done: set[str] = set()
    while len(out) < len(nodes):
        if not heap:  # a cycle (files disagree): release the smallest remaining node
            heap = [min(n for n in nodes if n not in done)]
        n = heapq.heappop(heap)
        if n in done:
            continue
        done.add(n)
        out.append(n)
        for m in succ[n]:
            indeg[m] -= 1
            if indeg[m] == 0 and m not in done:
                heapq.heappush(heap, m)
    return out


def _transaction_index(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Per transaction hash, its position in its block (see the module docstring)."""
    rows = con.execute("""
        WITH blk AS (SELECT BlockHeight FROM r GROUP BY 1 HAVING count(DISTINCT TxHash) > 1)
        SELECT r.BlockHeight, r.filename, r.internal, list(r.TxHash ORDER BY CAST(r.column0 AS BIGINT))
        FROM r JOIN blk USING (BlockHeight) GROUP BY ALL""").fetchall()  # fmt: skip
    per_block: dict[str, tuple[set[str], set[tuple[str, str]]]] = {}
    for height, _file, _internal, seq in rows:
        nodes, edges = per_block.setdefault(height, (set(), set()))
        nodes.update(seq)
        for a, b in itertools.pairwise(seq):
            if a != b:
                edges.add((a, b))
    index: dict[str, int] = {}
    for nodes, edges in per_block.values():
        for i, h in enumerate(_topological(nodes, edges)):
            index[h] = i
    return index


def read_xblock(path: Path) -> tuple[dict[str, dict[str, list[Any]]], XblockResult]:
    """Read the dataset into canonical column dicts (``blocks``, ``transactions``,
    ``receipts``, ``traces``); raises before anything is written when a row is bad."""
    folder = dataset_dir(path)
    con = _read(folder)
    res = XblockResult(chain="")
    res.files = int(con.execute("SELECT n FROM files").fetchall()[0][0])
    res.rows_read = int(con.execute("SELECT count(*) FROM r").fetchall()[0][0])
    conflict = con.execute("""
        SELECT TxHash FROM r WHERE NOT internal GROUP BY 1
        HAVING count(DISTINCT (BlockHeight, TimeStamp, fa, ta, Value, isError, ca)) > 1 LIMIT 1""").fetchone()
    if conflict:
        raise InputFileError(str(folder), None, f"transaction {conflict[0]} differs between account files")
    wei_of: dict[str, int] = {}
    for (v,) in con.execute("SELECT DISTINCT Value FROM r").fetchall():
        wei_of[v] = eth_to_wei(str(v), f"{folder}: Value")
    tx_index = _transaction_index(con)

    normal = con.execute("""
        SELECT TxHash, CAST(BlockHeight AS BIGINT), CAST(TimeStamp AS BIGINT), fa,
               CASE WHEN ta = 'null' THEN NULL ELSE ta END, Value,
               CASE WHEN ca = 'null' THEN NULL ELSE ca END, Input, CAST(isError AS BIGINT)
        FROM (SELECT *, row_number() OVER (PARTITION BY TxHash ORDER BY filename) AS k FROM r WHERE NOT internal)
        WHERE k = 1 ORDER BY 2, 1""").fetchall()  # fmt: skip
    tx: dict[str, list[Any]] = {c: [] for c in ("hash", "block_number", "block_timestamp", "transaction_index",
                                                "from_address", "to_address", "value", "input")}  # fmt: skip
    rc: dict[str, list[Any]] = {c: [] for c in ("transaction_hash", "transaction_index", "block_number",
                                                "contract_address", "status")}  # fmt: skip
    for h, bn, ts, fa, ta, val, ca, inp, err in normal:
        ti = tx_index.get(h, 0)
        tx["hash"].append(h)
        tx["block_number"].append(bn)
        tx["block_timestamp"].append(ts)
        tx["transaction_index"].append(ti)
        tx["from_address"].append(fa)
        tx["to_address"].append(ta)
        tx["value"].append(wei_of[val])
        tx["input"].append(inp)
        rc["transaction_hash"].append(h)
        rc["transaction_index"].append(ti)
        rc["block_number"].append(bn)
        rc["contract_address"].append(ca)
        rc["status"].append(1 - err)
    # internal calls: each distinct call as many times as one file lists it
    internal = con.execute("""
        WITH per_file AS (
            SELECT TxHash, BlockHeight, TimeStamp, fa, ta, ca, Value, isError, filename, count(*) AS c
            FROM r WHERE internal GROUP BY ALL),
        calls AS (
            SELECT TxHash, CAST(BlockHeight AS BIGINT) AS bn, CAST(TimeStamp AS BIGINT) AS ts, fa, ta, ca, Value,
                   CAST(isError AS BIGINT) AS err, max(c) AS c
            FROM per_file GROUP BY ALL)
        SELECT TxHash, bn, ts, fa, CASE WHEN ta = 'null' THEN ca ELSE ta END,
               CASE WHEN ta = 'null' THEN 'create' ELSE 'call' END, Value, err, c
        FROM calls ORDER BY bn, TxHash, fa, ta, ca, Value, err""").fetchall()  # fmt: skip
    trc: dict[str, list[Any]] = {c: [] for c in ("block_number", "transaction_hash", "transaction_index",
                                                 "from_address", "to_address", "value", "trace_type", "call_type",
                                                 "trace_address", "status", "trace_id", "block_timestamp")}  # fmt: skip
    seq: dict[str, int] = {}
    for h, bn, ts, fa, ta, kind, val, err, c in internal:
        for _ in range(int(c)):
            k = seq.get(h, 0)
            seq[h] = k + 1
            trc["block_number"].append(bn)
            trc["transaction_hash"].append(h)
            trc["transaction_index"].append(tx_index.get(h, 0))
            trc["from_address"].append(fa)
            trc["to_address"].append(ta)
            trc["value"].append(wei_of[val])
            trc["trace_type"].append(kind)
            trc["call_type"].append("call" if kind == "call" else None)
            trc["trace_address"].append(str(k))
            trc["status"].append(1 - int(err))
            trc["trace_id"].append(f"{kind}_{h}_{k}")
            trc["block_timestamp"].append(ts)
    blocks = con.execute("""
        SELECT CAST(BlockHeight AS BIGINT) AS n, min(CAST(TimeStamp AS BIGINT)), count(DISTINCT TxHash)
        FROM r GROUP BY 1 ORDER BY 1""").fetchall()  # fmt: skip
    con.close()
    blk: dict[str, list[Any]] = {
        "number": [b[0] for b in blocks], "hash": [f"xblock:{b[0]}" for b in blocks],
        "timestamp": [b[1] for b in blocks], "transaction_count": [b[2] for b in blocks],
    }  # fmt: skip
    res.transactions = len(tx["hash"])
    res.internal_calls = len(trc["transaction_hash"])
    res.blocks = len(blk["number"])
    res.first_block = blk["number"][0] if blocks else None
    res.last_block = blk["number"][-1] if blocks else None
    return {"blocks": blk, "transactions": tx, "receipts": rc, "traces": trc}, res


def ingest_xblock(
    ledger: Ledger, path: Path, *, chain: str = DEFAULT_CHAIN, progress: Progress | None = None
) -> XblockResult:
    """Load the XBlock phishing transactions into ``chain`` (one transaction; rerunning
    replaces the same rows, so it is idempotent)."""
    progress = progress or NullProgress()
    tables, res = read_xblock(path)
    res.chain = chain
    if res.first_block is None or res.last_block is None:
        raise ConfigError(f"{path}: the XBlock files hold no transactions")
    progress.start(f"xblock → {chain}", res.blocks)
    ledger.ensure_chain(chain, "ethereum", network="mainnet", native_asset="ETH")
    res.rows = ledger.write_batch(chain, tables, (res.first_block, res.last_block), replace=True)
    progress.advance(res.blocks, res.transactions)
    return res


def tag_phishing_accounts(ledger: Ledger, path: Path) -> int:
    """Tag the labelled phishing accounts (category ``phishing``, source xblock); returns the count.

    The labels are Etherscan's phishing flags as collected by XBlock (2019); a flag is a
    report, not a court finding (false-positive risk: a mislabelled account)."""
    from ..tags.store import TagColumns, write_import
    from ..tags.taxonomy import CONFIDENCE_LEVELS

    accounts = phishing_accounts(path)
    cols = TagColumns()
    for a in accounts:
        cols.add(currency="ETH", address=a, label="phishing (XBlock/Etherscan)", category="phishing",
                 confidence="service_data", confidence_level=CONFIDENCE_LEVELS["service_data"], actor=None,
                 source="xblock", source_url=SOURCE_URL, is_abuse=True, abuse="phishing",
                 context={"dataset": DATASET})  # fmt: skip
    write_import(ledger, "xblock", dataset_dir(path) / PHISHING_LIST, cols)
    return len(accounts)
