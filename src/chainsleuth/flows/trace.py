"""Trace value forward (where did it go?) or backward (where did it come from?).

One DuckDB query loads the chain's ``transfers`` legs in the time window as
NumPy arrays; :mod:`.propagate` moves taint through them under a model of
:mod:`.models`; this module turns seeds into initial taint, service tags into
stops, and the kernel's arrays into edges, endpoints, holdings and the
accounting of where the seed value went::

    seed value = endpoints + holdings + fees + left untraced (per limit)

exactly, for haircut, FIFO and LIFO (poison creates taint: its totals are an
upper bound).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..store import Ledger
from . import propagate
from .models import MODELS

# Service categories (GraphSense taxonomy) where a trace stops: value that
# reaches them is an endpoint, to be followed up with the service, not traced.
STOP_CATEGORIES = (
    "exchange", "mixing_service", "coinjoin", "bridge", "defi_bridge", "defi_dex",
    "payment_processor",
)  # fmt: skip


class SeedError(ConfigError):
    """A seed names no address, transaction or output of the chain."""


@dataclasses.dataclass
class TraceResult:
    """What a trace found. Values are exact integers in base units, per asset."""

    chain: str
    model: str
    backward: bool
    seeds: list[str]
    seed_value: dict[str, int]
    edges: list[dict[str, Any]]
    endpoints: list[dict[str, Any]]
    holdings: list[dict[str, Any]]
    fees: dict[str, int]
    left: dict[str, dict[str, int]]  # limit -> asset -> value left untraced

    def accounted(self, asset: str) -> int:
        """Seed value of ``asset`` that reached an endpoint, a holding or a fee."""
        return (
            sum(e["value"] for e in self.endpoints if e["asset"] == asset)
            + sum(h["value"] for h in self.holdings if h["asset"] == asset)
            + self.fees.get(asset, 0)
        )

    def accounted_share(self, asset: str) -> Fraction:
        """Share of the seed value accounted for (1 unless a limit left value untraced)."""
        total = self.seed_value.get(asset, 0)
        return Fraction(self.accounted(asset), total) if total else Fraction(0)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: amounts as decimal strings, times as ISO 8601 UTC."""

        def conv(row: dict[str, Any]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for k, v in row.items():
                if isinstance(v, int) and not isinstance(v, bool) and k not in ("hop", "cluster_id"):
                    out[k] = str(v)
                elif isinstance(v, datetime):
                    out[k] = v.isoformat()
                else:
                    out[k] = v
            return out

        return {
            "chain": self.chain, "model": self.model,
            "direction": "backward" if self.backward else "forward", "seeds": self.seeds,
            "seed_value": {a: str(v) for a, v in self.seed_value.items()},
            "accounted": {a: str(self.accounted(a)) for a in self.seed_value},
            "accounted_share": {a: float(self.accounted_share(a)) for a in self.seed_value},
            "fees": {a: str(v) for a, v in self.fees.items()},
            "left_untraced": {lim: {a: str(v) for a, v in d.items()} for lim, d in self.left.items()},
            "edges": [conv(e) for e in self.edges],
            "endpoints": [conv(e) for e in self.endpoints],
            "holdings": [conv(h) for h in self.holdings],
        }  # fmt: skip


def _ts(value: datetime | str | int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"not a date/time: {value!r} (use ISO 8601, e.g. 2024-05-01)") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp())


def _as_ints(col: Any) -> np.ndarray:
    """A fetched HUGEINT/VARCHAR column as an int64 array, or an object array of ints."""
    return np.array([int(x) if x is not None else 0 for x in col], dtype=object)


def _window(since: int | None, until: int | None) -> str:
    cond = ["TRUE"]
    if since is not None:
        cond.append(f"epoch(block_timestamp) >= {since}")
    if until is not None:
        cond.append(f"epoch(block_timestamp) <= {until}")
    return " AND ".join(cond)


def _stop_addresses(ledger: Ledger, chain: str, currency: str, categories: Sequence[str]) -> set[str]:
    """Addresses of the chain tagged with a stop category, and every address of their clusters."""
    from ..tags.store import ensure_schema, table_exists

    if not categories:
        return set()
    ensure_schema(ledger)
    cur = currency.upper()
    currencies = ("ETH", "USDT", "USDC", "DAI", "WETH") if cur == "ETH" else (cur,)
    ph_c = ",".join("?" * len(categories))
    ph_k = ",".join("?" * len(currencies))
    rows = ledger.con.execute(
        f"SELECT DISTINCT address FROM tags.tags WHERE category IN ({ph_c}) AND currency IN ({ph_k})",
        [*categories, *currencies],
    ).fetchall()
    stops = {r[0] for r in rows}
    if stops and table_exists(ledger, "entities", "address_clusters"):
        _temp_list(ledger, "_cs_stop", "address", "VARCHAR", sorted(stops))
        more = ledger.con.execute(
            "SELECT c2.address FROM entities.address_clusters c1 "
            "JOIN _cs_stop s ON s.address = c1.address "
            "JOIN entities.address_clusters c2 ON c2.chain = c1.chain AND c2.cluster_id = c1.cluster_id "
            "WHERE c1.chain = ?",
            [chain],
        ).fetchall()
        stops |= {r[0] for r in more}
    return stops


def _temp_list(ledger: Ledger, table: str, column: str, sql_type: str, values: list[Any]) -> None:
    """A one-column relation from a Python list (an Arrow table registered by name: no copy)."""
    import pyarrow as pa

    typ = pa.int64() if sql_type == "BIGINT" else pa.string()
    ledger.con.register(table, pa.table({column: pa.array(values, type=typ)}))


def _parse_seeds(seeds: Iterable[str]) -> tuple[list[str], list[str], list[tuple[str, int]]]:
    addresses: list[str] = []
    txids: list[str] = []
    outputs: list[tuple[str, int]] = []
    for raw in seeds:
        s = raw.strip()
        if not s:
            continue
        if ":" in s and s.rsplit(":", 1)[1].isdigit() and not s.startswith("multisig:"):
            tx, n = s.rsplit(":", 1)
            outputs.append((tx, int(n)))
        elif len(s.removeprefix("0x")) == 64 and all(c in "0123456789abcdefABCDEF" for c in s.removeprefix("0x")):
            txids.append(s.lower())  # a hash (any case); matched as stored
        else:
            addresses.append(s)
    if not (addresses or txids or outputs):
        raise SeedError("no seeds given")
    return addresses, txids, outputs


def trace(
    ledger: Ledger,
    chain: str,
    seeds: Iterable[str],
    *,
    backward: bool = False,
    model: str = "haircut",
    hops: int | None = None,
    since: datetime | str | int | None = None,
    until: datetime | str | int | None = None,
    min_value: int = 0,
    max_fanout: int | None = None,
    stop_categories: Sequence[str] = STOP_CATEGORIES,
) -> TraceResult:
    """Trace ``seeds`` (addresses, transaction hashes, ``txid:n`` outputs) on ``chain``.

    Forward: where did the seeds' value go. Backward: where did it come from
    (the same model run on the time-reversed graph). Limits: ``hops`` (address
    hops from a seed), ``since``/``until`` (block time window, inclusive),
    ``min_value`` (a share below it is not followed), ``max_fanout`` (a
    transaction with more outputs, or an account with more distinct recipients,
    is not followed). Value that a limit stops is reported per limit in
    ``TraceResult.left``. Addresses tagged with a ``stop_categories`` category
    (and their whole cluster when clustering ran) are endpoints.
    """
    if model not in MODELS:
        raise ConfigError(f"unknown taint model {model!r}; choose one of {', '.join(MODELS)}")
    if hops is not None and hops < 1:
        raise ConfigError("--hops must be at least 1")
    if min_value < 0:
        raise ConfigError("--min-value must not be negative")
    if max_fanout is not None and max_fanout < 1:
        raise ConfigError("--max-fanout must be at least 1")
    chains = {c["name"]: c for c in ledger.chains()}
    if chain not in chains:
        raise ConfigError(f"unknown chain {chain!r}; the ledger has: {', '.join(sorted(chains)) or 'none'}")
    family = ledger.family(chain)
    currency = str(chains[chain]["native_asset"])
    addresses, txids, outputs = _parse_seeds(seeds)
    seed_list = [*addresses, *txids, *(f"{t}:{n}" for t, n in outputs)]
    ctx = _Ctx(ledger, chain, currency, backward, model, hops if hops is not None else 1 << 29,
               _ts(since), _ts(until), min_value, max_fanout or 0,
               _stop_addresses(ledger, chain, currency, stop_categories))  # fmt: skip
    if family == "bitcoin":
        res = _trace_utxo(ctx, addresses, txids, outputs)
    else:
        if outputs:
            raise SeedError(f"{chain} is an account chain: outputs like {outputs[0][0]}:{outputs[0][1]} do not exist")
        if backward:
            # Reversing time does not give balance-level attribution on accounts (an
            # outflow must be split over the balance *at its time*); not built yet.
            raise ConfigError(f"{chain} is an account chain: backward tracing is implemented for UTXO chains only")
        res = _trace_account(ctx, addresses, txids)
    res.seeds = seed_list
    _annotate_endpoints(ctx, res)
    return res


@dataclasses.dataclass
class _Ctx:
    ledger: Ledger
    chain: str
    currency: str
    backward: bool
    model: str
    hops: int
    since: int | None
    until: int | None
    min_value: int
    max_fanout: int
    stops: set[str]


def _check_known(ctx: _Ctx, addresses: list[str], txids: list[str]) -> tuple[list[str], list[str]]:
    """Seed addresses and txids as the ledger spells them; SeedError for unknown ones."""
    con = ctx.ledger.con
    q = f'"{ctx.chain}"'
    found: list[str] = []
    found_tx: list[str] = list(txids)
    for a in addresses:
        row = con.execute(
            f"SELECT any_value(x) FROM (SELECT from_address x FROM {q}.transfers WHERE from_address IN (?, lower(?)) "
            f"UNION ALL SELECT to_address FROM {q}.transfers WHERE to_address IN (?, lower(?)))",
            [a, a, a, a],
        ).fetchone()
        if row and row[0] is not None:
            found.append(str(row[0]))
            continue
        tx = con.execute(f"SELECT any_value(hash) FROM {q}.transactions WHERE hash IN (?, lower(?))", [a, a]).fetchone()
        if tx and tx[0] is not None:
            found_tx.append(str(tx[0]))
            continue
        raise SeedError(f"seed address {a!r} does not occur on chain {ctx.chain!r}")
    for t in txids:
        row = con.execute(f"SELECT count(*) FROM {q}.transactions WHERE hash IN (?, ?, ?)",
                          [t, t.removeprefix("0x"), "0x" + t.removeprefix("0x")]).fetchone()  # fmt: skip
        if not row or not row[0]:
            raise SeedError(f"seed transaction {t!r} is not in chain {ctx.chain!r}")
    return found, found_tx


def _fetch_values(ctx: _Ctx, table: str, where: str = "TRUE") -> np.ndarray:
    """The amount column of ``table`` as int64 when all fit, else exact Python ints."""
    con = ctx.ledger.con
    row = con.execute(f"SELECT max(abs(amount)), count(*) FILTER (WHERE amount IS NULL) FROM {table} WHERE {where}").fetchone()  # fmt: skip
    if row is not None and (row[0] is None or int(row[0]) <= propagate.INT64_MAX) and not row[1]:
        got = con.execute(f"SELECT CAST(coalesce(amount, 0) AS BIGINT) AS v FROM {table} WHERE {where} ORDER BY rn").fetchnumpy()  # fmt: skip
        return np.asarray(got["v"], dtype=np.int64)
    vals = con.execute(
        f"SELECT coalesce(CAST(amount AS VARCHAR), amount_overflow, '0') FROM {table} WHERE {where} ORDER BY rn"
    ).fetchall()
    return _as_ints([v[0] for v in vals])


def _to_py(x: Any) -> int:
    return int(x)


# -- UTXO chains ------------------------------------------------------------------------------
def _trace_utxo(ctx: _Ctx, addresses: list[str], txids: list[str], outputs: list[tuple[str, int]]) -> TraceResult:
    con = ctx.ledger.con
    q = f'"{ctx.chain}"'
    addresses, txids = _check_known(ctx, addresses, txids)
    for t, n in outputs:
        row = con.execute(f"SELECT count(*) FROM {q}.outputs WHERE transaction_hash = ? AND \"index\" = ?", [t, n]).fetchone()  # fmt: skip
        if not row or not row[0]:
            raise SeedError(f"seed output {t}:{n} is not in chain {ctx.chain!r}")
    # One query: every leg in the window with its step (transaction in chain order),
    # and for inputs the coin (output row) they spend when it is loaded too.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _cs_utxo AS
        WITH t AS (
            SELECT tr.*, dense_rank() OVER (ORDER BY tr.block_number, x."index", tr.transaction_hash) - 1 AS step
            FROM {q}.transfers tr JOIN {q}.transactions x ON x.hash = tr.transaction_hash
            WHERE {_window(ctx.since, ctx.until).replace("block_timestamp", "tr.block_timestamp")}),
        o AS (SELECT transaction_hash, position, row_number() OVER (ORDER BY step, position) - 1 AS coin
              FROM t WHERE kind = 'output')
        SELECT row_number() OVER (ORDER BY t.step, CASE t.kind WHEN 'input' THEN 0 WHEN 'output' THEN 1 ELSE 2 END, t.position) AS rn,
               t.step, CASE t.kind WHEN 'input' THEN 0 WHEN 'output' THEN 1 ELSE 2 END AS k,
               t.position, coalesce(t.from_address, t.to_address) AS address, t.amount, t.amount_overflow,
               t.transaction_hash, epoch(t.block_timestamp)::BIGINT AS ts,
               CASE WHEN t.kind = 'output' THEN o2.coin ELSE o.coin END AS coin
        FROM t
        LEFT JOIN o ON t.kind = 'input' AND o.transaction_hash = t.utxo_transaction_hash AND o.position = t.utxo_index
        LEFT JOIN o o2 ON t.kind = 'output' AND o2.transaction_hash = t.transaction_hash AND o2.position = t.position
    """)  # fmt: skip
    arr = con.execute("SELECT step, k, coalesce(coin, -1) AS coin, ts FROM _cs_utxo ORDER BY rn").fetchnumpy()
    value_rows = _fetch_values(ctx, "_cs_utxo")
    step = np.asarray(arr["step"], dtype=np.int64)
    kind = np.asarray(arr["k"], dtype=np.int64)
    coin_of_row = np.asarray(arr["coin"], dtype=np.int64)
    n_rows = step.shape[0]
    n_steps = int(step.max()) + 1 if n_rows else 0
    is_out = kind == 1
    n_out = int(is_out.sum())
    # Coins: outputs, then inputs whose coin is outside the window, then one fee coin per step.
    ext = (kind == 0) & (coin_of_row < 0)
    coin_of_row = coin_of_row.copy()
    coin_of_row[ext] = n_out + np.arange(int(ext.sum()))
    fee_rows = kind == 2
    coin_of_row[fee_rows] = n_out + int(ext.sum()) + np.arange(int(fee_rows.sum()))
    n_coins = n_out + int(ext.sum()) + int(fee_rows.sum())
    value = np.zeros(n_coins, dtype=value_rows.dtype)
    owner_row = np.full(n_coins, -1, dtype=np.int64)  # the row naming the coin's address
    mask_val = is_out | ext | fee_rows
    value[coin_of_row[mask_val]] = value_rows[mask_val]
    owner_row[coin_of_row[is_out | ext]] = np.nonzero(is_out | ext)[0]
    is_fee_coin = np.zeros(n_coins, dtype=bool)
    is_fee_coin[coin_of_row[fee_rows]] = True
    # Addresses and txs of the rows (strings only for the seed and stop checks).
    addr_rows = con.execute("SELECT address, transaction_hash FROM _cs_utxo ORDER BY rn").fetchnumpy()
    addr = np.asarray(addr_rows["address"], dtype=object)
    txh = np.asarray(addr_rows["transaction_hash"], dtype=object)
    coin_addr = np.full(n_coins, None, dtype=object)
    has_owner = owner_row >= 0
    coin_addr[has_owner] = addr[owner_row[has_owner]]
    stop = np.zeros(n_coins, dtype=np.int8)
    if ctx.stops:
        stop[np.isin(coin_addr, list(ctx.stops)) & has_owner] = 1
    # CSR of sources and sinks per step.
    src_rows = np.nonzero(kind == 0)[0] if not ctx.backward else np.nonzero((kind == 1) | (kind == 2))[0]
    dst_rows = np.nonzero((kind == 1) | (kind == 2))[0] if not ctx.backward else np.nonzero(kind == 0)[0]
    order = np.arange(n_steps)
    src_ptr = np.searchsorted(step[src_rows], np.arange(n_steps + 1)).astype(np.int64)
    dst_ptr = np.searchsorted(step[dst_rows], np.arange(n_steps + 1)).astype(np.int64)
    src_coin = coin_of_row[src_rows]
    dst_coin = coin_of_row[dst_rows]
    if ctx.backward:  # time-reversed: the last step first
        order = order[::-1]
        src_coin, src_ptr = _reverse_csr(src_coin, src_ptr)
        dst_coin, dst_ptr = _reverse_csr(dst_coin, dst_ptr)
    # Seeds.
    taint = np.zeros(n_coins, dtype=value.dtype)
    hop = np.full(n_coins, 1 << 30, dtype=np.int64)
    seed_coin = np.zeros(n_coins, dtype=bool)
    out_rows = np.nonzero(is_out)[0]
    if addresses:
        # forward: what the seed received leaves from it; backward: what funded it
        seed_coin[coin_of_row[out_rows[np.isin(addr[out_rows], addresses)]]] = True
    if txids:
        seed_coin[coin_of_row[out_rows[np.isin(txh[out_rows], txids)]]] = True
    if outputs:
        pos = con.execute("SELECT position FROM _cs_utxo ORDER BY rn").fetchnumpy()["position"]
        for t, n in outputs:
            m = out_rows[(txh[out_rows] == t) & (np.asarray(pos)[out_rows] == n)]
            seed_coin[coin_of_row[m]] = True
    seed_coin &= stop == 0
    taint[seed_coin] = value[seed_coin]
    hop[seed_coin] = 0
    seed_total = sum(_to_py(v) for v in value[seed_coin]) if value.dtype == object else int(value[seed_coin].sum())
    received, from_coin, left = propagate.run_utxo(
        src_ptr, src_coin, dst_ptr, dst_coin, value, stop, is_fee_coin.astype(np.int8), taint, hop,
        model=ctx.model, max_hops=ctx.hops, min_value=ctx.min_value, max_fanout=ctx.max_fanout,
    )  # fmt: skip
    asset = ctx.currency
    ts_rows = np.asarray(arr["ts"], dtype=np.int64)
    # the step of each sink coin, for edges (time and tx)
    sink_step = np.full(n_coins, -1, dtype=np.int64)
    sink_step[coin_of_row[dst_rows]] = step[dst_rows]
    step_row = np.searchsorted(step, np.arange(n_steps))  # first row of each step
    edges: list[dict[str, Any]] = []
    endpoints: dict[str, dict[str, Any]] = {}
    fees = 0
    for c in np.nonzero(received)[0]:
        v = int(received[c])
        if is_fee_coin[c]:
            fees += v
            continue
        r0 = step_row[sink_step[c]]
        src = from_coin[c]
        a_src = coin_addr[src] if src >= 0 else None
        a_dst = coin_addr[c]
        e_from, e_to = (a_dst, a_src) if ctx.backward else (a_src, a_dst)
        edges.append({"from": e_from, "to": e_to, "asset": asset, "value": v,
                      "transaction_hash": str(txh[r0]), "block_timestamp": _dt(int(ts_rows[r0])),
                      "hop": int(hop[c])})  # fmt: skip
        if stop[c]:
            _add_endpoint(endpoints, str(a_dst), asset, v, int(ts_rows[r0]))
    holdings: dict[str, int] = {}
    for c in np.nonzero((taint != 0) & (stop == 0) & ~is_fee_coin)[0]:
        key = str(coin_addr[c]) if coin_addr[c] is not None else "(burnt)"
        holdings[key] = holdings.get(key, 0) + int(taint[c])
    return TraceResult(
        chain=ctx.chain, model=ctx.model, backward=ctx.backward, seeds=[],
        seed_value={asset: seed_total}, edges=edges, endpoints=list(endpoints.values()),
        holdings=[{"address": a, "asset": asset, "value": v} for a, v in sorted(holdings.items())],
        fees={asset: fees} if fees else {},
        left={propagate.LIMITS[i]: {asset: int(left[i])} for i in range(4) if left[i]},
    )  # fmt: skip


def _reverse_csr(items: np.ndarray, ptr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The CSR with its groups in reverse order (each group's items keep their order)."""
    n = ptr.shape[0] - 1
    lengths = np.diff(ptr)[::-1]
    new_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_ptr[1:])
    idx = np.concatenate([np.arange(ptr[g], ptr[g + 1]) for g in range(n - 1, -1, -1)]) if n else np.zeros(0, np.int64)
    return items[idx.astype(np.int64)], new_ptr


def _dt(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def _add_endpoint(endpoints: dict[str, dict[str, Any]], address: str, asset: str, value: int, ts: int) -> None:
    key = f"{address}\x00{asset}"
    e = endpoints.get(key)
    if e is None:
        endpoints[key] = {"address": address, "asset": asset, "value": value,
                          "first_time": _dt(ts), "last_time": _dt(ts)}  # fmt: skip
    else:
        e["value"] += value
        e["first_time"] = min(e["first_time"], _dt(ts))
        e["last_time"] = max(e["last_time"], _dt(ts))


# -- account chains ---------------------------------------------------------------------------
def _trace_account(ctx: _Ctx, addresses: list[str], txids: list[str]) -> TraceResult:
    con = ctx.ledger.con
    legs = _load_account(ctx)
    # seeds among the loaded addresses need no scan of the chain; the rest are checked
    lowered = [a.lower() for a in addresses]
    _temp_list(ctx.ledger, "_cs_q", "address", "VARCHAR", lowered)
    known = {r[0] for r in con.execute("SELECT address FROM _cs_addr JOIN _cs_q USING (address)").fetchall()}
    rest, more_tx = _check_known(ctx, [a for a, low in zip(addresses, lowered, strict=True) if low not in known], txids)
    addresses = sorted(known) + rest
    txids = [t if t.startswith("0x") else "0x" + t for t in more_tx]
    src, dst, asset_id, is_fee, ts, amount = (legs[k] for k in ("src", "dst", "asset_id", "is_fee", "ts", "amount"))
    names, n_states = legs["names"], legs["n_states"]

    def ids_of(addrs: Iterable[str]) -> np.ndarray:
        lst = sorted(set(addrs))
        if not lst:
            return np.zeros(0, dtype=np.int64)
        _temp_list(ctx.ledger, "_cs_q", "address", "VARCHAR", lst)
        got = con.execute("SELECT id FROM _cs_addr JOIN _cs_q USING (address)").fetchall()
        return np.array([g[0] for g in got], dtype=np.int64)

    seed_ids = ids_of(addresses)
    stop_ids = ids_of(ctx.stops) if ctx.stops else np.zeros(0, dtype=np.int64)
    seed_tx_rows = np.zeros(src.shape[0], dtype=bool)
    if txids:
        ph = ",".join("?" * len(txids))
        rns = con.execute(f"SELECT rn - 1 FROM _cs_acct WHERE transaction_hash IN ({ph})", txids).fetchall()
        seed_tx_rows[[r[0] for r in rns]] = True
    rows = np.arange(src.shape[0])  # forward only (trace() refuses backward on accounts)
    is_fee_r = is_fee[rows]
    seed_row = np.isin(dst, seed_ids) | seed_tx_rows[rows]
    stop_row = np.isin(dst, stop_ids)
    is_seed_state = np.zeros(n_states, dtype=np.int8)
    is_seed_state[seed_ids] = 1
    edges: list[dict[str, Any]] = []
    endpoints: dict[str, dict[str, Any]] = {}
    holdings: list[dict[str, Any]] = []
    seed_value: dict[str, int] = {}
    fees: dict[str, int] = {}
    left: dict[str, dict[str, int]] = {}
    tainted_assets = np.unique(asset_id[rows][seed_row | (np.isin(src, seed_ids) & ~is_fee_r)])
    edge_rows: list[tuple[int, int, int, int]] = []  # (row, value, src state, dst state)
    for aid in tainted_assets:
        sel = np.nonzero(asset_id[rows] == aid)[0]
        a_src, a_dst = src[sel], dst[sel]
        blocked = np.zeros(n_states, dtype=np.bool_)
        if ctx.max_fanout:
            nf = ~is_fee_r[sel] & (a_src >= 0) & (a_dst >= 0)
            pairs = np.unique(np.stack([a_src[nf], a_dst[nf]]), axis=1)
            blocked = np.bincount(pairs[0], minlength=n_states) > ctx.max_fanout
        out = propagate.run_account(
            a_src, a_dst, amount[rows[sel]], is_fee_r[sel], seed_row[sel], stop_row[sel],
            is_seed_state, blocked, n_states, model=ctx.model, max_hops=ctx.hops,
            min_value=ctx.min_value,
        )  # fmt: skip
        asset = str(names[int(aid)])
        if asset == "native" or asset is None:
            asset = ctx.currency
        totals = out["totals"]
        seed_value[asset] = int(totals[1])
        if totals[0]:
            fees[asset] = int(totals[0])
        lf = out["left"]
        tnt = out["tnt"]
        fan_left = int(sum(int(x) for x in tnt[blocked])) if blocked.any() else 0
        for i in range(4):
            v = int(lf[i]) + (fan_left if i == 2 else 0)
            if v:
                left.setdefault(propagate.LIMITS[i], {})[asset] = v
        rec = out["received"]
        for j in np.nonzero(rec)[0]:
            if a_dst[j] >= 0 and is_seed_state[a_dst[j]]:
                continue  # value into a seed is seed value, not a flow out of the seeds
            edge_rows.append((int(rows[sel[j]]), int(rec[j]), int(a_src[j]), int(a_dst[j])))
        stop_set = set(stop_ids.tolist())
        for sid in np.nonzero(tnt)[0]:
            if blocked[sid] or int(sid) in stop_set:
                continue
            holdings.append({"_id": int(sid), "asset": asset, "value": int(tnt[sid])})
    # Names of the addresses and hashes involved, in one query each.
    want_ids = {i for _, _, s, d in edge_rows for i in (s, d) if i >= 0} | {h["_id"] for h in holdings}
    id_name = _address_names(ctx, want_ids)
    rn_list = sorted({r for r, _, _, _ in edge_rows})
    tx_of: dict[int, str] = {}
    if rn_list:
        _temp_list(ctx.ledger, "_cs_rn", "rn", "BIGINT", [r + 1 for r in rn_list])
        tx_of = {int(r) - 1: str(h) for r, h in con.execute(
            "SELECT a.rn, a.transaction_hash FROM _cs_acct a JOIN _cs_rn USING (rn)").fetchall()}  # fmt: skip
    for r, v, s, d in sorted(edge_rows):
        asset = str(names[int(asset_id[r])])
        a_from, a_to = id_name.get(s), id_name.get(d)
        edges.append({"from": a_from, "to": a_to, "asset": asset, "value": v,
                      "transaction_hash": tx_of.get(r), "block_timestamp": _dt(int(ts[r]))})  # fmt: skip
        if a_to in ctx.stops:
            _add_endpoint(endpoints, str(a_to), asset, v, int(ts[r]))
    for h in holdings:
        h["address"] = id_name.get(h.pop("_id"))
    holdings.sort(key=lambda h: (h["asset"], h["address"] or ""))
    return TraceResult(
        chain=ctx.chain, model=ctx.model, backward=ctx.backward, seeds=[], seed_value=seed_value,
        edges=edges, endpoints=list(endpoints.values()),
        holdings=[{"address": h["address"], "asset": h["asset"], "value": h["value"]} for h in holdings],
        fees=fees, left=left,
    )  # fmt: skip


# Loaded legs per (connection, chain, window, tip): repeated traces in one session skip
# the load. The temp tables they index live on the same connection.
_LEGS: dict[tuple[Any, ...], dict[str, Any]] = {}


def _load_account(ctx: _Ctx) -> dict[str, Any]:
    """The window's legs as arrays (one materialising query, then column fetches)."""
    con = ctx.ledger.con
    q = f'"{ctx.chain}"'
    key = (id(con), ctx.chain, ctx.since, ctx.until, ctx.ledger.tip(ctx.chain))
    hit = _LEGS.get(key)
    if hit is not None and hit["con"] is con:  # holding the connection keeps its id unique
        return hit
    _LEGS.clear()  # one entry: the temp tables are replaced below
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _cs_addr AS
        WITH t AS (SELECT from_address, to_address FROM {q}.transfers WHERE {_window(ctx.since, ctx.until)})
        SELECT address, (row_number() OVER ()) - 1 AS id FROM
            (SELECT DISTINCT from_address AS address FROM t UNION SELECT DISTINCT to_address FROM t)
        WHERE address IS NOT NULL""")  # fmt: skip
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _cs_acct AS
        WITH t AS (SELECT * FROM {q}.transfers WHERE {_window(ctx.since, ctx.until)}),
        s AS (SELECT asset, (row_number() OVER (ORDER BY asset)) - 1 AS asset_id FROM (SELECT DISTINCT asset FROM t))
        SELECT row_number() OVER (ORDER BY t.block_number, t.transaction_index,
                   CASE t.kind WHEN 'native' THEN 0 WHEN 'internal' THEN 1 WHEN 'token' THEN 2
                               WHEN 'fee' THEN 3 ELSE 4 END, t.position) AS rn,
               coalesce(fa.id, -1) AS src, coalesce(ta.id, -1) AS dst, s.asset_id,
               (t.kind = 'fee') AS is_fee, t.amount, t.amount_overflow,
               epoch(t.block_timestamp)::BIGINT AS ts, t.transaction_hash, t.asset
        FROM t LEFT JOIN _cs_addr fa ON fa.address = t.from_address LEFT JOIN _cs_addr ta ON ta.address = t.to_address
        JOIN s ON s.asset = t.asset
    """)  # fmt: skip
    arr = con.execute("SELECT src, dst, asset_id, is_fee, ts FROM _cs_acct ORDER BY rn").fetchnumpy()
    src = np.asarray(arr["src"], dtype=np.int64)
    dst = np.asarray(arr["dst"], dtype=np.int64)
    asset_id = np.asarray(arr["asset_id"], dtype=np.int64)
    is_fee = np.asarray(arr["is_fee"], dtype=np.bool_)
    ts = np.asarray(arr["ts"], dtype=np.int64)
    amount = _fetch_values(ctx, "_cs_acct")
    names = dict(con.execute("SELECT DISTINCT asset_id, asset FROM _cs_acct").fetchall())
    n_row = con.execute("SELECT count(*) FROM _cs_addr").fetchone()
    legs = {"con": con, "src": src, "dst": dst, "asset_id": asset_id, "is_fee": is_fee, "ts": ts, "amount": amount,
            "names": names, "n_states": int(n_row[0]) if n_row else 0}  # fmt: skip
    _LEGS[key] = legs
    return legs



def _address_names(ctx: _Ctx, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    con = ctx.ledger.con
    _temp_list(ctx.ledger, "_cs_ids", "id", "BIGINT", sorted(ids))
    rows = con.execute("SELECT a.id, a.address FROM _cs_addr a JOIN _cs_ids USING (id)").fetchall()
    return {int(i): str(a) for i, a in rows}


def _annotate_endpoints(ctx: _Ctx, res: TraceResult) -> None:
    """Add cluster id, labels and category (from the tag store) to each endpoint."""
    from ..tags import tags_for_addresses
    from ..tags.store import table_exists

    addrs = sorted({e["address"] for e in res.endpoints})
    if not addrs:
        return
    tags = tags_for_addresses(ctx.ledger, ctx.currency, addrs)
    by_addr: dict[str, list[dict[str, Any]]] = {}
    for t in tags:
        by_addr.setdefault(str(t["address"]).lower(), []).append(t)
    clusters: dict[str, int] = {}
    if table_exists(ctx.ledger, "entities", "address_clusters"):
        ph = ",".join("?" * len(addrs))
        clusters = {a: int(c) for a, c in ctx.ledger.con.execute(
            f"SELECT address, cluster_id FROM entities.address_clusters WHERE chain = ? AND address IN ({ph})",
            [ctx.chain, *addrs]).fetchall()}  # fmt: skip
    for e in res.endpoints:
        ts = by_addr.get(e["address"].lower(), [])
        e["cluster_id"] = clusters.get(e["address"])
        e["labels"] = sorted({str(t["label"]) for t in ts})
        cats = [str(t["category"]) for t in ts if t["category"]]
        e["category"] = cats[0] if cats else None
    res.endpoints.sort(key=lambda e: (-e["value"], e["address"], e["asset"]))
