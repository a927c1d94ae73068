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
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..store import Ledger
from . import propagate
from .conversions import BridgeEdge, bridge_edges, convert_amount
from .models import MODELS

# Service categories (GraphSense taxonomy) where a trace stops: value that
# reaches them is an endpoint, to be followed up with the service, not traced.
STOP_CATEGORIES = (
    "exchange", "mixing_service", "coinjoin", "bridge", "defi_bridge", "defi_dex",
    "payment_processor",
)  # fmt: skip


# Stop categories whose services keep per-customer deposit addresses that they sweep: a
# trace ends at such a deposit address (see _deposit_stops). Bridges, mixers and DEXes
# take value from the user's own address in one call: an address that empties into them
# is the user's, and the bridge must stay followable.
DEPOSIT_CATEGORIES = ("exchange", "payment_processor")


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
    # Conversions followed (swaps, wrapped native, bridges): one row each, and per asset the
    # taint that left it by conversion (out) and that entered it by conversion (in).
    conversions: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    converted_in: dict[str, int] = dataclasses.field(default_factory=dict)
    converted_out: dict[str, int] = dataclasses.field(default_factory=dict)
    # Backward on account chains: where a limit stopped the walk, one row per account and
    # limit ({address, asset, value, limit, sources}); the values are part of ``left``.
    frontier: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def accounted(self, asset: str) -> int:
        """Taint of ``asset`` that reached an endpoint, a holding, a fee or a conversion.

        Per asset, ``seed_value + converted_in = accounted + left untraced`` exactly
        (haircut, FIFO, LIFO)."""
        return (
            sum(e["value"] for e in self.endpoints if e["asset"] == asset)
            + sum(h["value"] for h in self.holdings if h["asset"] == asset)
            + self.fees.get(asset, 0)
            + self.converted_out.get(asset, 0)
        )

    def accounted_share(self, asset: str) -> Fraction:
        """Share of the asset's taint (seed value plus converted in) accounted for
        (1 unless a limit left value untraced)."""
        total = self.seed_value.get(asset, 0) + self.converted_in.get(asset, 0)
        return Fraction(self.accounted(asset), total) if total else Fraction(0)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: amounts as decimal strings, times as ISO 8601 UTC."""

        def conv(row: dict[str, Any]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for k, v in row.items():
                if isinstance(v, int) and not isinstance(v, bool) and k not in ("hop", "cluster_id", "dst_position"):
                    out[k] = str(v)
                elif isinstance(v, datetime):
                    out[k] = v.isoformat()
                else:
                    out[k] = v
            return out

        assets = [*self.seed_value, *(a for a in self.converted_in if a not in self.seed_value)]
        return {
            "chain": self.chain, "model": self.model,
            "direction": "backward" if self.backward else "forward", "seeds": self.seeds,
            "seed_value": {a: str(v) for a, v in self.seed_value.items()},
            "accounted": {a: str(self.accounted(a)) for a in assets},
            "accounted_share": {a: float(self.accounted_share(a)) for a in assets},
            "converted_in": {a: str(v) for a, v in self.converted_in.items()},
            "converted_out": {a: str(v) for a, v in self.converted_out.items()},
            "conversions": [conv(c) for c in self.conversions],
            "fees": {a: str(v) for a, v in self.fees.items()},
            "left_untraced": {lim: {a: str(v) for a, v in d.items()} for lim, d in self.left.items()},
            "edges": [conv(e) for e in self.edges],
            "endpoints": [conv(e) for e in self.endpoints],
            "holdings": [conv(h) for h in self.holdings],
            **({"frontier": [conv(f) for f in self.frontier]} if self.frontier else {}),
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
    if ledger.read_only:  # nothing can be created; no tag table means no stops
        if not table_exists(ledger, "tags", "tags"):
            return set()
    else:
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


def _deposit_stops(ledger: Ledger, chain: str, currency: str, categories: Sequence[str],
                   stops: set[str]) -> dict[str, str]:
    """Deposit address -> sweep target, for every detected deposit address of ``chain``
    (``entities.deposit_addresses``, written by clustering; Victor 2020, see
    :mod:`chainsleuth.entities.deposit`) whose sweep target is a stop of a
    :data:`DEPOSIT_CATEGORIES` category (or in the cluster of one).

    Such a D is the service's account for one customer: value reaching it is at the
    service, and D (not the hot wallet) is whom to ask the service about, so a forward
    trace ends there. False positives are the heuristic's (a custodian, payment processor
    or OTC desk pooling customers behind one address; a personal address that happens to
    forward everything to a tagged service at least once, with the service sweeping at
    least one other such address): the trace then stops one hop early, at an address
    that forwards to the service anyway, so the service is still right; only the
    "deposit address" label is wrong. Empty when clustering has not run.
    """
    from ..tags.store import table_exists

    if not stops or not table_exists(ledger, "entities", "deposit_addresses"):
        return {}
    services = _stop_addresses(ledger, chain, currency, [c for c in categories if c in DEPOSIT_CATEGORIES])
    if not services:
        return {}
    _temp_list(ledger, "_cs_stop", "address", "VARCHAR", sorted(services))
    rows = ledger.con.execute(
        "SELECT d.address, d.sink FROM entities.deposit_addresses d "
        "JOIN _cs_stop s ON s.address = d.sink WHERE d.chain = ?",
        [chain],
    ).fetchall()
    return {str(a): str(e) for a, e in rows if a not in stops}


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
    stop_categories: Sequence[str] | None = None,
    follow_conversions: bool = True,
    follow_bridges: bool = True,
) -> TraceResult:
    """Trace ``seeds`` (addresses, transaction hashes, ``txid:n`` outputs) on ``chain``.

    Forward: where did the seeds' value go. Backward: where did the value the seeds
    received (or the seed transactions moved) come from: on UTXO chains the same rule
    on the reversed pools, on account chains a balance-level walk back in time
    (:mod:`.backward`); origins (coinbase, mints, balances from before the ledger)
    are the holdings. Limits: ``hops`` (address
    hops from a seed), ``since``/``until`` (block time window, inclusive),
    ``min_value`` (a share below it is not followed), ``max_fanout`` (a
    transaction with more outputs, or an account with more distinct recipients,
    is not followed). Value that a limit stops is reported per limit in
    ``TraceResult.left``. Addresses tagged with a ``stop_categories`` category
    (and their whole cluster when clustering ran) are endpoints; by default
    (None) :data:`STOP_CATEGORIES`, less ``defi_dex`` when a forward trace follows
    conversions on a chain with decoded swaps (:func:`default_stop_categories`).

    ``follow_conversions`` (forward, account chains, when :func:`~.conversions.decode_conversions`
    or :func:`~.conversions.match_bridges` stored rows): taint entering a decoded swap
    continues in the output token to the swap's recipient, in proportion
    (:func:`~.conversions.convert_amount`), instead of stopping at the pool; with
    ``follow_bridges`` too, taint locked in a matched bridge continues on the
    destination (UTXO) chain from the payout coin. Both are listed in
    ``TraceResult.conversions`` and as edges of kind ``swap`` / ``bridge``.
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
    if family != "bitcoin":
        _warm_kernels()  # as early as possible: it overlaps the DuckDB queries below
    currency = str(chains[chain]["native_asset"])
    addresses, txids, outputs = _parse_seeds(seeds)
    if stop_categories is None:
        stop_categories = default_stop_categories(ledger, chain, follow_conversions=follow_conversions and not backward)
    seed_list = [*addresses, *txids, *(f"{t}:{n}" for t, n in outputs)]
    stops = _stop_addresses(ledger, chain, currency, stop_categories)
    # forward only: a backward walk never reaches a deposit address without passing its
    # (stopping) sweep target first
    deposits = {} if backward else _deposit_stops(ledger, chain, currency, stop_categories, stops)
    ctx = _Ctx(ledger, chain, currency, backward, model, hops if hops is not None else 1 << 29,
               _ts(since), _ts(until), min_value, max_fanout or 0,
               stops | set(deposits), tuple(stop_categories),
               follow_conversions and not backward, follow_conversions and follow_bridges and not backward,
               deposits)  # fmt: skip
    if family == "bitcoin":
        res = _trace_utxo(ctx, addresses, txids, outputs)
    else:
        if outputs:
            raise SeedError(f"{chain} is an account chain: outputs like {outputs[0][0]}:{outputs[0][1]} do not exist")
        res = (_trace_account_backward if backward else _trace_account)(ctx, addresses, txids)
    res.seeds = seed_list
    _annotate_endpoints(ctx, res)
    return res


def default_stop_categories(ledger: Ledger, chain: str, *, follow_conversions: bool = True) -> tuple[str, ...]:
    """The service categories where a trace of ``chain`` stops by default.

    :data:`STOP_CATEGORIES`, less ``defi_dex`` when conversions are followed and the chain
    has decoded swaps (``flows.swaps``): a DEX router or pair custodies nothing and is the
    recipient of the swaps it routes (the router of a token -> ETH swap receives the WETH
    it unwraps), so stopping there would end every swap that the conversions follow.
    Without decoded swaps a DEX contract stays a stop: value sent to it is a trade whose
    output the trace cannot see.
    """
    from ..tags.store import table_exists
    from .conversions import SCHEMA

    if follow_conversions and ledger.family(chain) != "bitcoin" and table_exists(ledger, SCHEMA, "swaps"):
        row = ledger.con.execute(f'SELECT count(*) FROM "{SCHEMA}".swaps WHERE chain = ? LIMIT 1', [chain]).fetchone()
        if row and row[0]:
            return tuple(c for c in STOP_CATEGORIES if c != "defi_dex")
    return STOP_CATEGORIES


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
    stop_categories: tuple[str, ...] = STOP_CATEGORIES
    follow_conversions: bool = False
    follow_bridges: bool = False
    deposits: dict[str, str] = dataclasses.field(default_factory=dict)  # deposit address -> service address


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
def _trace_utxo(ctx: _Ctx, addresses: list[str], txids: list[str], outputs: list[tuple[str, int]], *,
                coin_seeds: Sequence[tuple[str, int, int, int]] = ()) -> TraceResult:
    """``coin_seeds``: (txid, n, taint, hop) coins tainted by a conversion (a bridge payout)."""
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
    conv_in = 0
    conv_left = 0
    direct: list[tuple[str, int, int]] = []  # payouts straight to a stop: (address, value, row)
    if coin_seeds:
        pos_rows = np.asarray(con.execute("SELECT position FROM _cs_utxo ORDER BY rn").fetchnumpy()["position"])
        for t, n, amt, h in coin_seeds:
            conv_in += amt
            m = out_rows[(txh[out_rows] == t) & (pos_rows[out_rows] == n)]
            if m.shape[0] == 0:  # the payout is outside the ledger or the window
                conv_left += amt
                continue
            c = coin_of_row[m[0]]
            room = int(value[c]) - int(taint[c])
            conv_left += max(0, amt - room)  # never more taint than the coin holds
            amt = min(amt, room)
            if stop[c]:
                direct.append((str(coin_addr[c]), amt, int(m[0])))
            elif amt > 0:
                taint[c] += amt
                hop[c] = min(int(hop[c]), h)
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
                      "hop": int(hop[c]), "kind": "transfer"})  # fmt: skip
        if stop[c]:
            _add_endpoint(endpoints, str(a_dst), asset, v, int(ts_rows[r0]))
    for a_stop, v, r in direct:
        _add_endpoint(endpoints, a_stop, asset, v, int(ts_rows[r]))
    holdings: dict[tuple[str, str], int] = {}
    for c in np.nonzero((taint != 0) & (stop == 0) & ~is_fee_coin)[0]:
        key = str(coin_addr[c]) if coin_addr[c] is not None else "(burnt)"
        # backward, taint stays on a created coin only when its transaction has no inputs
        # (coinbase), and on an input coin when it was created before the window
        origin = "" if not ctx.backward else "mint" if c < n_out else "before"
        holdings[key, origin] = holdings.get((key, origin), 0) + int(taint[c])
    lefts = {propagate.LIMITS[i]: {asset: int(left[i])} for i in range(4) if left[i]}
    if conv_left:  # bridged value whose payout coin is not in the window
        lefts["bridge"] = {asset: conv_left}
    return TraceResult(
        chain=ctx.chain, model=ctx.model, backward=ctx.backward, seeds=[],
        seed_value={asset: seed_total} if seed_total or not coin_seeds else {}, edges=edges,
        endpoints=list(endpoints.values()),
        holdings=[{"address": a, "asset": asset, "value": v, **({"origin": o} if o else {})}
                  for (a, o), v in sorted(holdings.items())],
        fees={asset: fees} if fees else {}, left=lefts,
        converted_in={asset: conv_in} if conv_in else {},
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
def _account_seeds(ctx: _Ctx, legs: dict[str, Any], addresses: list[str], txids: list[str]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Seed and stop address ids among the loaded legs, and the legs of the seed transactions."""
    con = ctx.ledger.con

    def lookup(addrs: Iterable[str]) -> dict[str, int]:
        """Ids of the addresses among the loaded ones. A short list is an IN filter, which
        DuckDB prunes by the zone maps of the (sorted) index table; a long one a join."""
        lst = sorted(set(addrs))
        if not lst:
            return {}
        if len(lst) <= 256:
            rows = con.execute(f"SELECT address, id FROM _cs_addr WHERE address IN ({','.join('?' * len(lst))})", lst)
        else:
            _temp_list(ctx.ledger, "_cs_q", "address", "VARCHAR", lst)
            rows = con.execute("SELECT address, id FROM _cs_addr JOIN _cs_q USING (address)")
        return {str(a): int(i) for a, i in rows.fetchall()}

    # seeds among the loaded addresses need no scan of the chain; the rest are checked
    lowered = [a.lower() for a in addresses]
    known = lookup(lowered)
    rest, more_tx = _check_known(ctx, [a for a, low in zip(addresses, lowered, strict=True) if low not in known], txids)
    txids = [t if t.startswith("0x") else "0x" + t for t in more_tx]
    found = {**known, **lookup(rest)}
    seed_ids = np.array(sorted(found.values()), dtype=np.int64)
    stop_ids = np.array(sorted(lookup(ctx.stops).values()), dtype=np.int64)
    seed_tx = np.zeros(legs["src"].shape[0], dtype=bool)
    if txids:
        ph = ",".join("?" * len(txids))
        rns = con.execute(f"SELECT rn - 1 FROM _cs_acct WHERE transaction_hash IN ({ph})", txids).fetchall()
        seed_tx[[r[0] for r in rns]] = True
    return seed_ids, stop_ids, seed_tx


def _member(ids: np.ndarray, n_states: int, states: np.ndarray) -> np.ndarray:
    """Which ``states`` (address ids, -1 for none) are in ``ids``: one gather from a lookup
    table instead of ``np.isin``'s sort of the whole column."""
    lut = np.zeros(n_states + 1, dtype=np.bool_)
    lut[ids] = True
    return lut[states]  # -1 reads the spare last slot, False


def _trace_account(ctx: _Ctx, addresses: list[str], txids: list[str]) -> TraceResult:
    legs = _load_account(ctx)
    seed_ids, stop_ids, seed_tx_orig = _account_seeds(ctx, legs, addresses, txids)
    names, n_states = dict(legs["names"]), legs["n_states"]
    cv = _account_conversions(ctx, legs, names) if ctx.follow_conversions else None
    if cv is None:
        src, dst, asset_id, is_fee, ts, amount = (legs[k] for k in ("src", "dst", "asset_id", "is_fee", "ts", "amount"))
        orig = None  # the legs are the loaded ones: row r is leg r (no 10M-long identity array)
    else:
        src, dst, asset_id, is_fee, ts, amount, orig = (cv[k] for k in ("src", "dst", "asset_id", "is_fee", "ts", "amount", "orig"))  # fmt: skip
    n = src.shape[0]
    is_fee_r = is_fee

    def orig_of(r: int) -> int:
        """The loaded leg of row r (-1: a virtual leg added for a conversion)."""
        return r if orig is None else int(orig[r])

    if cv is None:
        seed_tx_rows = seed_tx_orig
    else:
        seed_tx_rows = np.zeros(n, dtype=bool)
        assert orig is not None
        seed_tx_rows[orig >= 0] = seed_tx_orig[orig[orig >= 0]]
    seed_row = _member(seed_ids, n_states, dst) | seed_tx_rows
    stop_row = _member(stop_ids, n_states, dst)
    is_seed_state = np.zeros(n_states, dtype=np.int8)
    is_seed_state[seed_ids] = 1
    swaps: list[dict[str, Any]] = cv["swaps"] if cv is not None else []
    bridges: list[dict[str, Any]] = cv["bridges"] if cv is not None else []
    m = n if swaps or bridges else 1  # the conversion arrays are only read with conversions
    divert = np.zeros(m, dtype=np.int8)
    for sw in swaps:
        divert[sw["in_row"]] = 1
    for br in bridges:
        divert[br["row"]] = 1
    inject = np.zeros(m, dtype=amount.dtype)
    inject_hop = np.full(m, 1 << 30, dtype=np.int64)
    base_assets = set(np.unique(asset_id[seed_row | (_member(seed_ids, n_states, src) & ~is_fee_r)]).tolist())
    blocked_of: dict[int, np.ndarray] = {}
    # One asset in all legs (most benchmarks, many chains): views, not copies, of 10M-long arrays.
    single = n == 0 or int(asset_id.min()) == int(asset_id.max())

    def run_assets() -> dict[int, tuple[Any, dict[str, np.ndarray]]]:
        assets = base_assets | (set(np.unique(asset_id[inject > 0]).tolist()) if swaps else set())
        res: dict[int, tuple[Any, dict[str, np.ndarray]]] = {}
        for aid in sorted(assets):
            sel: Any = slice(None) if single else np.nonzero(asset_id == aid)[0]
            a_src, a_dst = src[sel], dst[sel]
            blocked = blocked_of.get(aid)
            if blocked is None:
                blocked = np.zeros(n_states, dtype=np.bool_)
                if ctx.max_fanout:
                    nf = ~is_fee_r[sel] & (a_src >= 0) & (a_dst >= 0)
                    pairs = np.unique(np.stack([a_src[nf], a_dst[nf]]), axis=1)
                    blocked = np.bincount(pairs[0], minlength=n_states) > ctx.max_fanout
                blocked_of[aid] = blocked
            conv = bool(swaps or bridges)
            res[aid] = (sel, propagate.run_account(
                a_src, a_dst, amount[sel], is_fee_r[sel], seed_row[sel], stop_row[sel],
                is_seed_state, blocked, n_states, model=ctx.model, max_hops=ctx.hops,
                min_value=ctx.min_value, inject=inject[sel] if conv else None,
                inject_hop=inject_hop[sel] if conv else None, divert=divert[sel] if conv else None,
            ))  # fmt: skip
        return res

    # Conversions link assets: taint a swap's input leg carries becomes taint on its
    # output leg, which may feed a later swap. Legs are in time order, so rerunning until
    # the injected amounts stop changing settles in at most (longest swap chain + 1) runs.
    outs = run_assets()
    for _ in range(len(swaps) + 1 if swaps else 0):
        diverted = np.zeros(n, dtype=amount.dtype)
        leg_hop = np.full(n, 1 << 30, dtype=np.int64)
        for sel, out in outs.values():
            diverted[sel] = out["diverted"]
            leg_hop[sel] = out["leg_hop"]
        new = np.zeros(n, dtype=amount.dtype)
        new_hop = np.full(n, 1 << 30, dtype=np.int64)
        for sw in swaps:
            got = int(diverted[sw["in_row"]])
            sw["value_in"] = got
            sw["value_out"] = convert_amount(got, sw["amount_in"], sw["amount_out"])
            sw["hop"] = int(leg_hop[sw["in_row"]])
            if sw["value_out"]:
                new[sw["out_row"]] += sw["value_out"]
                new_hop[sw["out_row"]] = min(int(new_hop[sw["out_row"]]), sw["hop"])
        if np.array_equal(new, inject) and np.array_equal(new_hop, inject_hop):
            break
        inject, inject_hop = new, new_hop
        outs = run_assets()
    edges: list[dict[str, Any]] = []
    endpoints: dict[str, dict[str, Any]] = {}
    holdings: list[dict[str, Any]] = []
    seed_value: dict[str, int] = {}
    fees: dict[str, int] = {}
    left: dict[str, dict[str, int]] = {}
    converted_in: dict[str, int] = {}
    converted_out: dict[str, int] = {}
    edge_rows: list[tuple[int, int, int, int]] = []  # (row, value, src state, dst state)
    diverted_all = np.zeros(n if bridges else 0, dtype=amount.dtype)
    leg_hop_all = np.full(n if bridges else 0, 1 << 30, dtype=np.int64)
    stop_set = set(stop_ids.tolist())

    def asset_name(aid: int) -> str:
        name = names[int(aid)]
        return ctx.currency if name is None or name == "native" else str(name)

    for aid, (sel, out) in sorted(outs.items()):
        a_src, a_dst = src[sel], dst[sel]
        blocked = blocked_of[aid]
        asset = asset_name(aid)
        totals = out["totals"]
        if aid in base_assets:
            seed_value[asset] = int(totals[1])
        if totals[0]:
            fees[asset] = int(totals[0])
        if totals[3]:
            converted_out[asset] = int(totals[3])
        if totals[4]:
            converted_in[asset] = int(totals[4])
        if bridges:
            diverted_all[sel] = out["diverted"]
            leg_hop_all[sel] = out["leg_hop"]
        lf = out["left"]
        tnt = out["tnt"]
        fan_left = int(sum(int(x) for x in tnt[blocked])) if blocked.any() else 0
        for i in range(4):
            v = int(lf[i]) + (fan_left if i == 2 else 0)
            if v:
                left.setdefault(propagate.LIMITS[i], {})[asset] = v
        if totals[5]:  # converted taint larger than the output leg (the pool paid less)
            left.setdefault("conversion", {})[asset] = int(totals[5])
        nz = np.nonzero(out["received"])[0]
        rec = out["received"][nz] - out["injected"][nz]  # the injected part is drawn as the conversion edge
        for j, v in zip(nz.tolist(), rec.tolist(), strict=True):
            if not v or (a_dst[j] >= 0 and is_seed_state[a_dst[j]]):
                continue  # value into a seed is seed value, not a flow out of the seeds
            edge_rows.append((j if single else int(sel[j]), int(v), int(a_src[j]), int(a_dst[j])))
        for sid in np.nonzero(tnt)[0]:
            if blocked[sid] or int(sid) in stop_set:
                continue
            holdings.append({"_id": int(sid), "asset": asset, "value": int(tnt[sid])})
    # Names of the addresses and hashes involved, in one query each.
    conv_rows = [sw["in_row"] for sw in swaps if sw.get("value_in")] + [sw["out_row"] for sw in swaps if sw.get("value_in")]
    want_ids = ({i for _, _, s, d in edge_rows for i in (s, d) if i >= 0} | {h["_id"] for h in holdings}
                | {int(x) for r in conv_rows for x in (src[r], dst[r]) if x >= 0})  # fmt: skip
    id_name = _address_names(ctx, want_ids)
    rn_list = sorted({o for r, _, _, _ in edge_rows if (o := orig_of(r)) >= 0})
    tx_of = _tx_hashes(ctx, rn_list)
    virtual_tx: dict[int, str] = cv["virtual_tx"] if cv is not None else {}

    def tx_at(r: int) -> str | None:
        o = orig_of(r)
        return tx_of.get(o) if o >= 0 else virtual_tx.get(r)

    for r, v, s, d in sorted(edge_rows):
        asset = asset_name(int(asset_id[r]))
        a_from, a_to = id_name.get(s), id_name.get(d)
        edges.append({"from": a_from, "to": a_to, "asset": asset, "value": v, "transaction_hash": tx_at(r),
                      "block_timestamp": _dt(int(ts[r])), "kind": "transfer"})  # fmt: skip
        if a_to in ctx.stops:
            _add_endpoint(endpoints, str(a_to), asset, v, int(ts[r]))
    conversions: list[dict[str, Any]] = []
    for sw in swaps:
        if not sw.get("value_in"):
            continue
        r_in, r_out = sw["in_row"], sw["out_row"]
        frm, to = id_name.get(int(src[r_in])), id_name.get(int(dst[r_out]))
        t = _dt(int(ts[r_out]))
        conversions.append({"kind": "swap", "protocol": sw["protocol"], "chain": ctx.chain, "pool": sw["pool"],
                            "transaction_hash": sw["transaction_hash"], "block_timestamp": t,
                            "from": frm, "to": to, "asset_in": sw["token_in"], "value_in": sw["value_in"],
                            "asset_out": sw["token_out"], "value_out": sw["value_out"]})  # fmt: skip
        if sw["value_out"]:
            edges.append({"from": frm, "to": to, "asset": sw["token_out"], "value": sw["value_out"],
                          "transaction_hash": sw["transaction_hash"], "block_timestamp": t, "kind": "swap",
                          "asset_in": sw["token_in"], "value_in": sw["value_in"]})  # fmt: skip
            if to in ctx.stops:
                _add_endpoint(endpoints, str(to), sw["token_out"], sw["value_out"], int(ts[r_out]))
    for h in holdings:
        h["address"] = id_name.get(h.pop("_id"))
    holdings.sort(key=lambda h: (h["asset"], h["address"] or ""))
    res = TraceResult(
        chain=ctx.chain, model=ctx.model, backward=ctx.backward, seeds=[], seed_value=seed_value,
        edges=edges, endpoints=list(endpoints.values()),
        holdings=[{"address": h["address"], "asset": h["asset"], "value": h["value"]} for h in holdings],
        fees=fees, left=left, conversions=conversions, converted_in=converted_in, converted_out=converted_out,
    )  # fmt: skip
    for br in bridges:
        got = int(diverted_all[br["row"]])
        if got:
            br["value_in"] = got
            br["hop"] = int(leg_hop_all[br["row"]])
    _follow_bridges(ctx, res, [br for br in bridges if br.get("value_in")])
    return res


def _trace_account_backward(ctx: _Ctx, addresses: list[str], txids: list[str]) -> TraceResult:
    """Where the value the seeds received (or the seed transactions moved) came from, at
    balance level, per asset; see :mod:`.backward` for the models."""
    from .backward import run_account_backward

    legs = _load_account(ctx)
    seed_ids, stop_ids, seed_tx = _account_seeds(ctx, legs, addresses, txids)
    names, n_states = dict(legs["names"]), legs["n_states"]
    src, dst, asset_id, is_fee, ts, amount = (legs[k] for k in ("src", "dst", "asset_id", "is_fee", "ts", "amount"))
    seed_row = (_member(seed_ids, n_states, dst) | seed_tx) & ~is_fee
    stop_src = _member(stop_ids, n_states, src)
    single = src.shape[0] == 0 or int(asset_id.min()) == int(asset_id.max())

    def asset_name(aid: int) -> str:
        name = names[int(aid)]
        return ctx.currency if name is None or name == "native" else str(name)

    seed_value: dict[str, int] = {}
    left: dict[str, dict[str, int]] = {}
    edge_rows: list[tuple[int, int, int]] = []  # (row, value, hop)
    end_rows: list[tuple[int, int]] = []  # (row, value): came from the stop sender of the row
    origins: dict[tuple[int, str, str], int] = {}  # (address id, asset, origin) -> value
    # (address id reached, asset, limit) -> [value, ids of the senders not followed]
    frontier: dict[tuple[int, str, str], list[Any]] = {}
    for aid in sorted(set(np.unique(asset_id[seed_row]).tolist())):
        sel: Any = slice(None) if single else np.nonzero(asset_id == aid)[0]
        a_src, a_dst = src[sel], dst[sel]
        blocked = np.zeros(n_states, dtype=np.bool_)
        if ctx.max_fanout:  # walking back, the fan-out of an account is its distinct senders
            nf = ~is_fee[sel] & (a_src >= 0) & (a_dst >= 0)
            pairs = np.unique(np.stack([a_dst[nf], a_src[nf]]), axis=1)
            blocked = np.bincount(pairs[0], minlength=n_states) > ctx.max_fanout
        out = run_account_backward(a_src, a_dst, amount[sel], is_fee[sel], seed_row[sel], stop_src[sel], blocked,
                                   n_states, model=ctx.model, max_hops=ctx.hops, min_value=ctx.min_value)  # fmt: skip
        asset = asset_name(aid)
        seed_value[asset] = int(out["totals"][0])
        for i in range(4):
            if out["left"][i]:
                left.setdefault(propagate.LIMITS[i], {})[asset] = int(out["left"][i])
        dem, hop_leg = out["dem"], out["hop_leg"]
        for j in np.nonzero((dem != 0) & (a_src >= 0))[0]:
            edge_rows.append((int(j) if single else int(sel[j]), int(dem[j]), int(hop_leg[j])))
        for j in np.nonzero(out["endpoint"])[0]:
            end_rows.append((int(j) if single else int(sel[j]), int(out["endpoint"][j])))
        for j in np.nonzero(out["limited"])[0]:
            lim = int(out["limit_of"][j])
            at, source = (int(a_src[j]), -1) if lim == 2 else (int(a_dst[j]), int(a_src[j]))
            row = frontier.setdefault((at, asset, propagate.LIMITS[lim]), [0, set()])
            row[0] += int(out["limited"][j])
            if source >= 0:
                row[1].add(source)
        for col, who, origin in (("origin_mint", a_dst, "mint"), ("origin_before", a_src, "before")):
            for j in np.nonzero(out[col])[0]:
                key = (int(who[j]), asset, origin)
                origins[key] = origins.get(key, 0) + int(out[col][j])
    id_name = _address_names(ctx, {i for r, _, _ in edge_rows for i in (int(src[r]), int(dst[r])) if i >= 0}
                             | {i for i, _, _ in origins} | {int(src[r]) for r, _ in end_rows}
                             | {i for (i, _, _), (_, ss) in frontier.items() for i in (i, *ss)})  # fmt: skip
    tx_of = _tx_hashes(ctx, sorted({r for r, _, _ in edge_rows}))
    edges = [{"from": id_name.get(int(src[r])), "to": id_name.get(int(dst[r])), "asset": asset_name(int(asset_id[r])),
              "value": v, "transaction_hash": tx_of.get(r), "block_timestamp": _dt(int(ts[r])), "hop": h,
              "kind": "transfer"} for r, v, h in sorted(edge_rows)]  # fmt: skip
    endpoints: dict[str, dict[str, Any]] = {}
    for r, v in sorted(end_rows):
        _add_endpoint(endpoints, id_name[int(src[r])], asset_name(int(asset_id[r])), v, int(ts[r]))
    holdings = [{"address": id_name.get(i), "asset": a, "value": v, "origin": o}
                for (i, a, o), v in origins.items()]  # fmt: skip
    holdings.sort(key=lambda h: (h["asset"], h["address"] or "", h["origin"]))
    front = [{"address": id_name.get(i), "asset": a, "value": v, "limit": lim,
              "sources": sorted(str(id_name.get(x)) for x in ss)}
             for (i, a, lim), (v, ss) in frontier.items()]  # fmt: skip
    front.sort(key=lambda f: (-f["value"], f["address"] or "", f["asset"]))
    return TraceResult(chain=ctx.chain, model=ctx.model, backward=True, seeds=[], seed_value=seed_value,
                       edges=edges, endpoints=list(endpoints.values()), holdings=holdings, fees={},
                       left=left, frontier=front)  # fmt: skip


def _account_conversions(ctx: _Ctx, legs: dict[str, Any], names: dict[int, Any]) -> dict[str, Any] | None:
    """Swaps and bridge locks of the chain matched to the loaded legs they stand for.

    None when no conversion was decoded (``flows.swaps`` / ``flows.bridge_transfers``
    absent or empty for the chain): the trace then runs as without conversions.
    A swap needs its input leg (token_in into the pool) and its output leg (token_out
    from the pool to the recipient) with the decoded amounts; wrapped-native
    deposits and withdrawals have no ``Transfer`` for the wrapped side, so that leg
    is added here (virtual), keeping the wrapped balance right. Swaps whose legs are
    not found are not converted (their taint stays where the legs put it).
    """
    from ..tags.store import table_exists
    from .conversions import SCHEMA, load_swaps

    con = ctx.ledger.con
    have_swaps = table_exists(ctx.ledger, SCHEMA, "swaps")
    have_bridges = ctx.follow_bridges and table_exists(ctx.ledger, SCHEMA, "bridge_transfers")
    swap_rows = load_swaps(ctx.ledger, ctx.chain) if have_swaps else []
    locks = [b for b in bridge_edges(ctx.ledger) if b.src_chain == ctx.chain] if have_bridges else []
    chains = {c["name"]: c for c in ctx.ledger.chains()}
    locks = [b for b in locks if b.dst_chain in chains and ctx.ledger.family(b.dst_chain) == "bitcoin"]
    if not swap_rows and not locks:
        return None
    hashes = sorted({str(s["transaction_hash"]) for s in swap_rows} | {b.src_transaction_hash for b in locks})
    _temp_list(ctx.ledger, "_cs_convtx", "transaction_hash", "VARCHAR", hashes)
    by_tx: dict[str, list[tuple[int, str, str | None, str | None, int]]] = {}
    for rn, tx, asset, fa, ta, amt in con.execute(
        "SELECT a.rn - 1, a.transaction_hash, a.asset, fa.address, ta.address, "
        "coalesce(CAST(a.amount AS VARCHAR), a.amount_overflow) FROM _cs_acct a JOIN _cs_convtx USING (transaction_hash) "
        "LEFT JOIN _cs_addr fa ON fa.id = a.src LEFT JOIN _cs_addr ta ON ta.id = a.dst "
        "WHERE NOT a.is_fee ORDER BY a.rn"
    ).fetchall():  # fmt: skip
        by_tx.setdefault(str(tx), []).append((int(rn), str(asset), fa, ta, int(amt) if amt is not None else -1))
    asset_of = {str(v): int(k) for k, v in names.items()}
    addr_ids: dict[str, int] = {}
    wanted = sorted({str(s[k]) for s in swap_rows for k in ("pool", "trader", "recipient") if s.get(k)})
    if wanted:
        _temp_list(ctx.ledger, "_cs_q", "address", "VARCHAR", wanted)
        addr_ids = {str(a): int(i) for a, i in con.execute("SELECT address, id FROM _cs_addr JOIN _cs_q USING (address)").fetchall()}  # fmt: skip
    n_orig = legs["src"].shape[0]
    virtual: list[dict[str, Any]] = []  # extra legs: key (sort position), src, dst, asset_id, amount, tx, ts
    swaps: list[dict[str, Any]] = []
    used_in: set[int] = set()
    used_out: set[int] = set()

    def pick(cands: list[tuple[int, str, str | None, str | None, int]], used: set[int], prefer: Any, col: int) -> int | None:
        free = [c for c in cands if c[0] not in used]
        best = [c for c in free if c[col] == prefer] or free
        return best[0][0] if best else None

    for s in swap_rows:
        t_in, t_out, a_in, a_out = s.get("token_in"), s.get("token_out"), s.get("amount_in"), s.get("amount_out")
        if t_in is None or t_out is None or a_in is None or a_out is None or not a_in or not s.get("recipient"):
            continue
        t_in, t_out = str(t_in), str(t_out)
        tx_legs = by_tx.get(str(s["transaction_hash"]), [])
        pool, trader, recipient = s["pool"], s.get("trader"), s["recipient"]
        r_in = pick([c for c in tx_legs if c[1] == t_in and c[3] == pool and c[4] == a_in], used_in, trader, 2)
        r_out = pick([c for c in tx_legs if c[1] == t_out and c[2] == pool and c[3] == recipient and c[4] == a_out],
                     used_out, recipient, 3)  # fmt: skip
        if (r_in is None) != (r_out is None) and s["protocol"] == "wrapped_native":
            # WETH9 mints and burns without a Transfer event: the wrapped side is added
            tok = t_out if r_out is None else t_in
            if tok not in asset_of:
                asset_of[tok] = max([*names, -1]) + 1
                names[asset_of[tok]] = tok
            ids = (addr_ids.get(pool), addr_ids.get(str(trader)), addr_ids.get(recipient))
            if None not in ids:
                anchor = r_in if r_out is None else r_out
                assert anchor is not None
                leg = {"key": 2 * anchor + (1 if r_out is None else -1), "asset_id": asset_of[tok],
                       "amount": a_out if r_out is None else a_in, "tx": str(s["transaction_hash"]),
                       "ts": int(legs["ts"][anchor])}  # fmt: skip
                leg["src"], leg["dst"] = (ids[0], ids[2]) if r_out is None else (ids[1], ids[0])
                virtual.append(leg)
                vref = -len(virtual)  # virtual legs are referred to as -1, -2, ...
                r_in, r_out = (r_in, vref) if r_out is None else (vref, r_out)
        if r_in is None or r_out is None:
            continue
        used_in.add(r_in)
        used_out.add(r_out)
        swaps.append({"in_row": r_in, "out_row": r_out, "protocol": s["protocol"], "pool": pool,
                      "transaction_hash": str(s["transaction_hash"]), "token_in": t_in, "token_out": t_out,
                      "amount_in": int(a_in), "amount_out": int(a_out)})  # fmt: skip
    bridges: list[dict[str, Any]] = []
    used_lock: set[int] = set()
    for b in locks:
        cands = [c for c in by_tx.get(b.src_transaction_hash, [])
                 if c[1] == b.src_asset and c[2] == b.src_address and c[4] == b.src_amount]  # fmt: skip
        r = pick(cands, used_lock, b.src_address, 2)
        if r is not None:
            used_lock.add(r)
            bridges.append({"row": r, "edge": b})
    # Merge the virtual legs into time order (an added leg sits next to its swap's other leg).
    keys = np.concatenate([2 * np.arange(n_orig, dtype=np.int64), np.array([v["key"] for v in virtual], dtype=np.int64)])
    _order_funds_first(ctx, legs, names, keys, by_tx, virtual, swaps)
    order = np.argsort(keys, kind="stable")
    where = np.empty_like(order)
    where[order] = np.arange(order.shape[0])

    def pos(r: int) -> int:
        return int(where[r if r >= 0 else n_orig + (-r - 1)])

    def cat(name: str, extra: list[Any], dtype: Any) -> np.ndarray:
        return np.concatenate([legs[name], np.array(extra, dtype=dtype)])[order]

    amount_dt = legs["amount"].dtype
    if amount_dt.kind != "O" and any(v["amount"] > propagate.INT64_MAX for v in virtual):
        amount_dt = object
    out: dict[str, Any] = {
        "src": cat("src", [v["src"] for v in virtual], np.int64), "dst": cat("dst", [v["dst"] for v in virtual], np.int64),
        "asset_id": cat("asset_id", [v["asset_id"] for v in virtual], np.int64),
        "is_fee": cat("is_fee", [False] * len(virtual), np.bool_), "ts": cat("ts", [v["ts"] for v in virtual], np.int64),
        "amount": np.concatenate([legs["amount"].astype(amount_dt), np.array([v["amount"] for v in virtual], dtype=amount_dt)])[order],
        "orig": np.concatenate([np.arange(n_orig), np.full(len(virtual), -1)])[order],
        "virtual_tx": {pos(-k - 1): v["tx"] for k, v in enumerate(virtual)},
    }  # fmt: skip
    for sw in swaps:
        sw["in_row"], sw["out_row"] = pos(sw["in_row"]), pos(sw["out_row"])
    for br in bridges:
        br["row"] = pos(br["row"])
    out["swaps"], out["bridges"] = swaps, bridges
    return out


def _order_funds_first(ctx: _Ctx, legs: dict[str, Any], names: dict[int, Any], keys: np.ndarray,
                       by_tx: dict[str, list[tuple[int, str, str | None, str | None, int]]],
                       virtual: list[dict[str, Any]], swaps: list[dict[str, Any]]) -> None:  # fmt: skip
    """Reorder, in ``keys``, the legs of the conversion transactions funds first
    (:mod:`.leg_order`): a router's WETH burn after the WETH reaches it, a swap's output
    after its input.

    Only these transactions: the kernel runs each asset on its own (assets are linked by
    conversions only, settled by reruns), and within one asset every other transaction's
    legs come from one recorded stream (native legs: the top-level transfer, then the
    traces in call order; token legs: the logs in log order), whose order is execution
    order. Legs of unrecorded position (the added wrapped-native legs) exist only here.
    """
    from .leg_order import UNKNOWN_STREAM, funds_first_keys

    n_orig = legs["src"].shape[0]
    native = {k for k, v in names.items() if v is None or v in ("native", ctx.currency)}
    tx_id = {t: i for i, t in enumerate(by_tx)}
    rows = np.array([c[0] for t in by_tx.values() for c in t], dtype=np.int64)
    if rows.shape[0] + len(virtual) < 2:
        return
    r_tx = np.array([tx_id[t] for t, cs in by_tx.items() for _ in cs], dtype=np.int64)
    v_tx = np.array([tx_id.get(v["tx"], len(tx_id) + k) for k, v in enumerate(virtual)], dtype=np.int64)
    r_asset = np.asarray(legs["asset_id"][rows], dtype=np.int64)
    # streams: 0 native legs (top-level, then traces in call order), 1 token logs; added legs unknown
    r_stream = np.where(np.isin(r_asset, np.array(sorted(native), dtype=np.int64)), 0, 1).astype(np.int64)
    local = {int(r): i for i, r in enumerate(rows.tolist())}

    def loc(ref: int) -> int:
        return local.get(ref, -1) if ref >= 0 else rows.shape[0] + (-ref - 1)

    pairs = [(loc(sw["in_row"]), loc(sw["out_row"])) for sw in swaps]
    before = np.array([p for p in pairs if p[0] >= 0 and p[1] >= 0], dtype=np.int64).reshape(-1, 2)
    members = np.concatenate([rows, n_orig + np.arange(len(virtual), dtype=np.int64)])
    new = funds_first_keys(
        np.concatenate([r_tx, v_tx]), keys[members],
        np.concatenate([np.asarray(legs["src"][rows], dtype=np.int64), np.array([v["src"] for v in virtual], dtype=np.int64)]),
        np.concatenate([np.asarray(legs["dst"][rows], dtype=np.int64), np.array([v["dst"] for v in virtual], dtype=np.int64)]),
        np.concatenate([r_asset, np.array([v["asset_id"] for v in virtual], dtype=np.int64)]),
        np.concatenate([r_stream, np.full(len(virtual), UNKNOWN_STREAM, dtype=np.int64)]), before)  # fmt: skip
    keys[members] = new


def _follow_bridges(ctx: _Ctx, res: TraceResult, bridges: list[dict[str, Any]]) -> None:
    """Continue the trace on each destination chain from the matched payouts (UTXO coins)."""
    by_chain: dict[str, list[dict[str, Any]]] = {}
    for br in bridges:
        by_chain.setdefault(br["edge"].dst_chain, []).append(br)
    chains = {c["name"]: c for c in ctx.ledger.chains()}
    for dst_chain, group in sorted(by_chain.items()):
        currency = str(chains[dst_chain]["native_asset"])
        dst_stops = _stop_addresses(ctx.ledger, dst_chain, currency, ctx.stop_categories)
        dst_deposits = _deposit_stops(ctx.ledger, dst_chain, currency, ctx.stop_categories, dst_stops)
        sub_ctx = dataclasses.replace(ctx, chain=dst_chain, currency=currency,
                                      stops=dst_stops | set(dst_deposits), deposits=dst_deposits)  # fmt: skip
        coin_seeds = []
        for br in group:
            e: BridgeEdge = br["edge"]
            br["value_out"] = convert_amount(br["value_in"], e.src_amount, e.dst_amount)
            coin_seeds.append((e.dst_transaction_hash, e.dst_position, br["value_out"], br["hop"]))
        sub = _trace_utxo(sub_ctx, [], [], [], coin_seeds=coin_seeds)
        _annotate_endpoints(sub_ctx, sub)
        q = f'"{dst_chain}"'
        for br in group:
            e = br["edge"]
            row = ctx.ledger.con.execute(f"SELECT epoch(block_timestamp)::BIGINT FROM {q}.transactions WHERE hash = ?",
                                         [e.dst_transaction_hash]).fetchone()  # fmt: skip
            t = _dt(int(row[0])) if row else None
            res.conversions.append({"kind": "bridge", "protocol": e.bridge, "chain": ctx.chain, "dst_chain": dst_chain,
                                    "transaction_hash": e.src_transaction_hash, "block_timestamp": t,
                                    "dst_transaction_hash": e.dst_transaction_hash, "dst_position": e.dst_position,
                                    "from": e.src_address, "to": e.dst_address, "asset_in": e.src_asset,
                                    "value_in": br["value_in"], "asset_out": e.dst_asset, "value_out": br["value_out"]})  # fmt: skip
            if br["value_out"]:
                res.edges.append({"from": e.src_address, "to": e.dst_address, "asset": e.dst_asset,
                                  "value": br["value_out"], "transaction_hash": e.dst_transaction_hash,
                                  "block_timestamp": t, "kind": "bridge", "asset_in": e.src_asset,
                                  "value_in": br["value_in"], "chain": dst_chain})  # fmt: skip
        for row_list in (sub.edges, sub.endpoints, sub.holdings):
            for r in row_list:
                r["chain"] = dst_chain
        res.edges += sub.edges
        res.endpoints += sub.endpoints
        res.holdings += sub.holdings
        for src_d, dst_d in ((sub.fees, res.fees), (sub.converted_in, res.converted_in)):
            for a, v in src_d.items():
                dst_d[a] = dst_d.get(a, 0) + v
        for lim, d in sub.left.items():
            for a, v in d.items():
                res.left.setdefault(lim, {})[a] = res.left.get(lim, {}).get(a, 0) + v


_WARMING: list[threading.Thread] = []


def _warm_up_kernels() -> None:
    one = np.zeros(1, dtype=np.int64)
    flag = np.zeros(1, dtype=np.bool_)
    try:  # the same argument types as the real calls, so the same compiled signature
        propagate.run_account(one, one, one + 1, flag, flag, flag, one.astype(np.int8), flag, 1,
                              model="haircut", max_hops=1, min_value=0)  # fmt: skip
        from .backward import run_account_backward

        run_account_backward(one, one, one + 1, flag, flag, flag, flag, 1, model="haircut", max_hops=1, min_value=0)
    except Exception:  # a real call raises the same error, where it can be reported
        pass


def _warm_kernels() -> None:
    """Load the compiled int64 account kernels in a thread, once per process.

    Loading them from Numba's disk cache costs ~0.3-0.5 s (mostly Numba's own imports),
    about as long as DuckDB takes to read 10M legs; DuckDB releases the GIL while it
    reads, so the two overlap instead of adding up.
    """
    if not _WARMING:
        t = threading.Thread(target=_warm_up_kernels, name="chainsleuth-warm-kernels", daemon=True)
        t.start()
        _WARMING.append(t)


# Loaded legs per (connection, chain, window, tip): repeated traces in one session skip
# the load. The temp tables they index live on the same connection.
_LEGS: dict[tuple[Any, ...], dict[str, Any]] = {}


def _load_account(ctx: _Ctx) -> dict[str, Any]:
    """The window's legs as arrays, and the session views ``_cs_acct`` (legs, ``rn`` =
    1-based position in the arrays) and ``_cs_addr`` (address ids) for name lookups.

    From the chain's trace index (:mod:`.trace_index`; built here when missing or stale
    and the ledger is writable): its memory-mapped arrays, or a scan of its narrow integer
    columns (which writes the arrays for the next session). Without one (a read-only
    ledger), the window's legs are encoded into temporary tables (slow).
    """
    from . import trace_index as ti

    con = ctx.ledger.con
    # the ledger key (tip and row counts) also catches back-filled blocks below the tip
    key = (id(con), ctx.chain, ctx.since, ctx.until, ti.ledger_key(ctx.ledger, ctx.chain))
    hit = _LEGS.get(key)
    if hit is not None and hit["con"] is con:  # holding the connection keeps its id unique
        return hit
    _LEGS.clear()  # one entry: the session views are replaced below
    info = ti.fresh_index(ctx.ledger, ctx.chain)
    if info is None and not ctx.ledger.read_only:
        info = ti.build_index(ctx.ledger, ctx.chain)
    windowed = ctx.since is not None or ctx.until is not None
    if info is not None:
        legs_t, addr_t, assets_t = (f'"{ti.SCHEMA}"."trace_{k}_{ctx.chain}"' for k in ("legs", "addresses", "assets"))
        con.execute(f"CREATE OR REPLACE TEMP VIEW _cs_addr AS SELECT address, id FROM {addr_t}")
        if windowed:
            cond = ["TRUE"] + ([f"ts >= {ctx.since}"] if ctx.since is not None else []) + (
                [f"ts <= {ctx.until}"] if ctx.until is not None else [])  # fmt: skip
            con.execute(f"""CREATE OR REPLACE TEMP TABLE _cs_acct_t AS
                SELECT row_number() OVER (ORDER BY rn) AS rn, * EXCLUDE (rn) FROM {legs_t}
                WHERE {" AND ".join(cond)} ORDER BY rn""")  # fmt: skip
            con.execute("CREATE OR REPLACE TEMP VIEW _cs_acct AS SELECT * FROM _cs_acct_t")
        else:
            con.execute(f"CREATE OR REPLACE TEMP VIEW _cs_acct AS SELECT * FROM {legs_t}")
        names = dict(con.execute(f"SELECT asset_id, asset FROM {assets_t}").fetchall())
        n_row = con.execute(f"SELECT count(*) FROM {addr_t}").fetchone()
        fits = bool(info["fits_int64"])
    else:
        addr_sql, legs_sql = ti._legs_sql(ctx.chain, _window(ctx.since, ctx.until))
        con.execute(f"CREATE OR REPLACE TEMP TABLE _cs_addr_t AS {addr_sql}")
        con.execute("CREATE OR REPLACE TEMP VIEW _cs_addr AS SELECT * FROM _cs_addr_t")
        con.execute("CREATE OR REPLACE TEMP VIEW _cs_addr_src AS SELECT * FROM _cs_addr_t")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _cs_acct_t AS {legs_sql}")
        con.execute("CREATE OR REPLACE TEMP VIEW _cs_acct AS SELECT * FROM _cs_acct_t")
        names = dict(con.execute("SELECT DISTINCT asset_id, asset FROM _cs_acct").fetchall())
        n_row = con.execute("SELECT count(*) FROM _cs_addr").fetchone()
        nulls = con.execute("SELECT count(*) FILTER (WHERE amount64 IS NULL) FROM _cs_acct").fetchone()
        fits = bool(nulls and nulls[0] == 0)
    n_states = int(n_row[0]) if n_row else 0
    one_asset = len(names) <= 1
    side = ti.load_sidecar(ctx.ledger, ctx.chain, info["key"]) if info is not None else None
    if side is not None and ("amount" in side) == fits:
        if windowed:  # the same rows, in the same order, as the _cs_acct_t window above
            keep = np.ones(side["ts"].shape[0], dtype=np.bool_)
            if ctx.since is not None:
                keep &= side["ts"] >= ctx.since
            if ctx.until is not None:
                keep &= side["ts"] <= ctx.until
            arr = {c: side[c][keep] for c in ti.SIDECAR_COLUMNS if c in side}
        else:
            arr = {c: side[c] for c in ti.SIDECAR_COLUMNS if c in side}
    else:
        # The tables were written in rn order and DuckDB keeps insertion order in scans
        # (preserve_insertion_order), so no sort here. One asset: its ids need no reading.
        cols = "src, dst, is_fee, ts" + ("" if one_asset else ", asset_id") + (", amount64 AS amount" if fits else "")
        arr = con.execute(f"SELECT {cols} FROM _cs_acct").fetchnumpy()
        if info is not None and not windowed and not ctx.ledger.read_only:
            ti.save_sidecar(ctx.ledger, ctx.chain, info["key"], {
                "src": np.asarray(arr["src"], dtype=np.int64), "dst": np.asarray(arr["dst"], dtype=np.int64),
                "is_fee": np.asarray(arr["is_fee"], dtype=np.bool_), "ts": np.asarray(arr["ts"], dtype=np.int64),
                **({} if one_asset else {"asset_id": np.asarray(arr["asset_id"], dtype=np.int64)}),
                **({"amount": np.asarray(arr["amount"], dtype=np.int64)} if fits else {})}, n_states)  # fmt: skip
    src = np.asarray(arr["src"], dtype=np.int64)
    dst = np.asarray(arr["dst"], dtype=np.int64)
    asset_id = np.asarray(arr["asset_id"], dtype=np.int64) if "asset_id" in arr else np.zeros(src.shape[0], dtype=np.int64)
    is_fee = np.asarray(arr["is_fee"], dtype=np.bool_)
    ts = np.asarray(arr["ts"], dtype=np.int64)
    amount = np.asarray(arr["amount"], dtype=np.int64) if fits else _fetch_values(ctx, "_cs_acct")
    legs = {"con": con, "src": src, "dst": dst, "asset_id": asset_id, "is_fee": is_fee, "ts": ts, "amount": amount,
            "names": names, "n_states": n_states}  # fmt: skip
    _LEGS[key] = legs
    return legs


def _lookup_in(ctx: _Ctx, sql: str, values: list[int]) -> list[tuple[Any, ...]]:
    """Run ``sql`` (with ``{in}`` for the list) over ``values`` in chunks of constant IN lists.

    A constant IN list of at most 2,048 values is answered from the trace index's ART
    index on ``rn`` (or by zone maps on the sorted ``id``): a 10M-leg table is not
    scanned for the ~1,000 rows a trace reports (a join scans it: ~0.15 s)."""
    out: list[tuple[Any, ...]] = []
    for k in range(0, len(values), 2000):
        chunk = values[k:k + 2000]
        out += ctx.ledger.con.execute(sql.replace("{in}", ",".join(str(int(v)) for v in chunk))).fetchall()
    return out


def _tx_hashes(ctx: _Ctx, rows: list[int]) -> dict[int, str]:
    """Transaction hash of each loaded leg (0-based row)."""
    got = _lookup_in(ctx, "SELECT rn, transaction_hash FROM _cs_acct WHERE rn IN ({in})", [r + 1 for r in rows])
    return {int(r) - 1: str(h) for r, h in got}


def _address_names(ctx: _Ctx, ids: set[int]) -> dict[int, str]:
    rows = _lookup_in(ctx, "SELECT id, address FROM _cs_addr WHERE id IN ({in})", sorted(ids))
    return {int(i): str(a) for i, a in rows}


def _annotate_endpoints(ctx: _Ctx, res: TraceResult) -> None:
    """Add cluster id, labels and category (from the tag store) to each endpoint."""
    from ..tags import tags_for_addresses
    from ..tags.store import table_exists

    todo = [e for e in res.endpoints if "labels" not in e]  # those of a bridged chain are done
    addrs = sorted({e["address"] for e in todo} | {ctx.deposits[e["address"]] for e in todo if e["address"] in ctx.deposits})
    if not todo:
        res.endpoints.sort(key=lambda e: (-e["value"], e["address"], e["asset"]))
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
    for e in todo:
        ts = by_addr.get(e["address"].lower(), [])
        e["cluster_id"] = clusters.get(e["address"])
        e["labels"] = sorted({str(t["label"]) for t in ts})
        cats = [str(t["category"]) for t in ts if t["category"]]
        e["category"] = cats[0] if cats else None
        service = ctx.deposits.get(e["address"])
        if service is not None:  # a deposit address: name the service it sweeps to
            sts = by_addr.get(service.lower(), [])
            names = sorted({str(t["label"]) for t in sts}) or [service]
            e["labels"] = sorted({*e["labels"], *(f"deposit address of {n}" for n in names)})
            scats = [str(t["category"]) for t in sts if t["category"]]
            e["category"] = scats[0] if scats else e["category"]
            e["service_address"] = service
    res.endpoints.sort(key=lambda e: (-e["value"], e["address"], e["asset"]))
