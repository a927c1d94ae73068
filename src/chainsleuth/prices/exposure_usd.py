"""Exposure in USD: today, and (for direct exposure) at the time of the transfers.

An exposure row (:func:`chainsleuth.flows.exposure.exposure_of`) is an aggregate over
an address's whole history, so "USD at the time" needs a definition:

* **today** (``*_usd_latest``): the row's exact base-unit value (direct, indirect,
  total) at the latest price in ``prices.daily`` (or the latest DEX swaps / par for
  tokens), with that price's day and source;
* **at the time, direct** (``direct_usd_at_time``): each direct counterparty transfer
  valued on its own UTC day and summed, read again from the ``transfers`` rows with the
  categories the last exposure build stored in ``flows.exposure_totals``. Account
  chains: every leg between the address and a categorised counterparty. UTXO chains:
  per transaction, ``floor(out_b * category_inputs / all_inputs)`` (the build's pro
  rata share), valued on the transaction's day. The per-transfer amounts are summed
  again and must equal the stored ``direct_value``; if they do not (the ledger changed
  since the build) the figure is not given (flag ``ledger_changed``);
* **at the time, indirect**: not given (flag ``not_defined``). Indirect values are
  haircut estimates of value that crossed intermediaries at many earlier times; the
  sweep does not keep when the categorised value first entered the path, so no single
  day (or set of days) prices it honestly.

A figure with no price is ``None`` with flag ``no_price`` (and, at the time, the
unpriced base units and days), never 0. USD are exact ``Decimal`` (strings in the
result); base units stay ints.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal, localcontext
from typing import Any

from ..errors import ConfigError
from ..flows.exposure import SCHEMA, entity_exposure_of, exposure_of
from ..store import Ledger
from .valuation import UsdValue, usd_text, usd_value, value_now

MAX_LISTED_DAYS = 20  # unpriced days listed per row; the count is always given

# (asset, direction, category) -> {day: base units}
DirectByDay = dict[tuple[str, str, str], dict[date, int]]


def _chain_sql(chain: str) -> str:
    return '"' + chain.replace('"', '""') + '"'


def direct_transfers_by_day(ledger: Ledger, chain: str, address: str) -> DirectByDay:
    """The address's direct exposure split by UTC day: the same amounts the exposure build
    summed into ``direct_value``, with the categories that build stored."""
    s = _chain_sql(chain)
    cats = f"""cats AS (SELECT DISTINCT address, category FROM {SCHEMA}.exposure_totals
                        WHERE chain = $chain AND category IS NOT NULL
                          AND address IN (SELECT from_address FROM legs UNION SELECT to_address FROM legs))"""
    if ledger.family(chain) == "ethereum":
        sql = f"""
            WITH legs AS (SELECT asset, CAST(block_timestamp AS DATE) AS day, from_address, to_address, amount
                          FROM {s}.transfers WHERE (to_address = $addr OR from_address = $addr)
                            AND amount IS NOT NULL),
            {cats}
            SELECT l.asset, 'in', c.category, l.day, sum(l.amount) FROM legs l
              JOIN cats c ON c.address = l.from_address WHERE l.to_address = $addr GROUP BY ALL
            UNION ALL
            SELECT l.asset, 'out', c.category, l.day, sum(l.amount) FROM legs l
              JOIN cats c ON c.address = l.to_address WHERE l.from_address = $addr GROUP BY ALL"""
    else:
        # the build's pro rata share, floored per leg: output b of a transaction got
        # floor(out_b * (inputs from category c) / all inputs); the mirror for inputs
        sql = f"""
            WITH mine AS (SELECT DISTINCT transaction_hash FROM {s}.transfers
                          WHERE (kind = 'output' AND to_address = $addr) OR (kind = 'input' AND from_address = $addr)),
            legs AS (SELECT t.transaction_hash, t.kind, t.from_address, t.to_address, t.asset, t.amount,
                            CAST(t.block_timestamp AS DATE) AS day
                     FROM {s}.transfers t JOIN mine USING (transaction_hash) WHERE t.kind IN ('input', 'output')),
            {cats},
            tin AS (SELECT transaction_hash, sum(amount) AS v FROM legs WHERE kind = 'input' GROUP BY 1),
            cin AS (SELECT l.transaction_hash, c.category, sum(l.amount) AS v FROM legs l
                    JOIN cats c ON c.address = l.from_address WHERE l.kind = 'input' GROUP BY ALL),
            cout AS (SELECT l.transaction_hash, c.category, sum(l.amount) AS v FROM legs l
                     JOIN cats c ON c.address = l.to_address WHERE l.kind = 'output' GROUP BY ALL)
            SELECT o.asset, 'in', cin.category, o.day, sum(o.amount * cin.v // tin.v)
            FROM legs o JOIN cin USING (transaction_hash) JOIN tin USING (transaction_hash)
            WHERE o.kind = 'output' AND o.to_address = $addr AND tin.v > 0 GROUP BY ALL
            UNION ALL
            SELECT i.asset, 'out', cout.category, i.day, sum(i.amount * cout.v // tin.v)
            FROM legs i JOIN cout USING (transaction_hash) JOIN tin USING (transaction_hash)
            WHERE i.kind = 'input' AND i.from_address = $addr AND tin.v > 0 GROUP BY ALL"""
    out: DirectByDay = defaultdict(dict)
    for asset, direction, category, day, value in ledger.con.execute(sql, {"addr": address, "chain": chain}).fetchall():
        if value:
            key = (str(asset), str(direction), str(category))
            out[key][day] = out[key].get(day, 0) + int(value)
    return dict(out)


def _latest(ledger: Ledger, asset: str, values: dict[str, int], cache: dict[str, UsdValue]) -> dict[str, Any]:
    """``{name}_usd_latest`` for each value, plus the price, its day, source and flag."""
    if asset not in cache:
        cache[asset] = value_now(ledger, asset, 0)
    unit = cache[asset]
    out: dict[str, Any] = {}
    for name, v in values.items():
        out[f"{name}_usd_latest"] = usd_text(value_now(ledger, asset, int(v)).usd)
    out.update(price_latest=usd_text(unit.price), price_day_latest=unit.price_day.isoformat() if unit.price_day else None,
               source_latest=unit.source, flag_latest=unit.flag)  # fmt: skip
    return out


def _at_time(ledger: Ledger, asset: str, direct_value: int, by_day: dict[date, int] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"direct_usd_at_time": None, "indirect_usd_at_time": None,
                           "indirect_at_time": "not_defined", "sources_at_time": [], "first_day": None,
                           "last_day": None, "days": 0, "unpriced_value": "0", "unpriced_days": [],
                           "unpriced_day_count": 0}  # fmt: skip
    if direct_value == 0:
        out["flag_at_time"] = "no_direct_value"
        return out
    by_day = by_day or {}
    if sum(by_day.values()) != direct_value:
        out["flag_at_time"] = "ledger_changed"  # rebuild exposure: the transfers no longer add up
        return out
    total = Decimal(0)
    flags: set[str] = set()
    sources: set[str] = set()
    unpriced: list[date] = []
    unpriced_value = 0
    for day in sorted(by_day):
        v = usd_value(ledger, asset, by_day[day], None, day)
        if v.usd is None:
            unpriced.append(day)
            unpriced_value += by_day[day]
            continue
        with localcontext() as ctx:
            ctx.prec = 200  # exact: a wei amount's USD has ~40 significant digits, the default keeps 28
            total += v.usd
        flags.add(v.flag)
        if v.source:
            sources.add(v.source)
    days = sorted(by_day)
    out.update(sources_at_time=sorted(sources), first_day=days[0].isoformat(), last_day=days[-1].isoformat(),
               days=len(days), unpriced_value=str(unpriced_value),
               unpriced_days=[d.isoformat() for d in unpriced[:MAX_LISTED_DAYS]], unpriced_day_count=len(unpriced))  # fmt: skip
    if unpriced:
        out["flag_at_time"] = "no_price"  # a partial sum would read as the whole: not given
    else:
        out["direct_usd_at_time"] = usd_text(total)
        out["flag_at_time"] = flags.pop() if len(flags) == 1 else "mixed"
    return out


def exposure_with_usd(ledger: Ledger, chain: str, doc: dict[str, Any], *, at_time: bool = True) -> dict[str, Any]:
    """Add ``usd`` to each exposure row (and to each total) of an :func:`exposure_of` or
    :func:`entity_exposure_of` result, in place; returns it.

    Rows get ``direct/indirect/total_usd_latest`` with ``price_latest``, ``price_day_latest``,
    ``source_latest``, ``flag_latest``; for an address (``at_time``), also
    ``direct_usd_at_time`` (see the module text for what it means), ``flag_at_time``,
    ``sources_at_time``, ``first_day``/``last_day``/``days`` of the direct transfers and the
    unpriced part. Entities get today's values only (``flag_at_time`` ``not_computed``)."""
    cache: dict[str, UsdValue] = {}
    by_day = direct_transfers_by_day(ledger, chain, doc["address"]) if at_time and "address" in doc else None
    for row in doc["exposure"]:
        usd = _latest(ledger, row["asset"], {"direct": row["direct_value"], "indirect": row["indirect_value"],
                                              "total": row["total_value"]}, cache)  # fmt: skip
        if by_day is None:
            usd.update(direct_usd_at_time=None, indirect_usd_at_time=None, flag_at_time="not_computed")
        else:
            usd.update(_at_time(ledger, row["asset"], int(row["direct_value"]),
                                by_day.get((row["asset"], row["direction"], row["category"]))))  # fmt: skip
        row["usd"] = usd
    for t in doc.get("totals", []):
        t["usd"] = _latest(ledger, t["asset"], {"total_in": t["total_in"], "total_out": t["total_out"]}, cache)
    doc["usd_method"] = ("latest: each value at the latest price; at the time: direct exposure only, each direct "
                         "counterparty transfer valued on its own UTC day (indirect: not defined)")  # fmt: skip
    return doc


def exposure_usd_of(ledger: Ledger, chain: str, address: str) -> dict[str, Any]:
    """:func:`exposure_of` with USD today and, for direct exposure, at the time of the transfers."""
    return exposure_with_usd(ledger, chain, exposure_of(ledger, chain, address))


def entity_exposure_usd_of(ledger: Ledger, chain: str, cluster_id: int) -> dict[str, Any]:
    """:func:`entity_exposure_of` with USD today (at the time is not computed for entities)."""
    if cluster_id < 0:
        raise ConfigError(f"cluster id must be non-negative, got {cluster_id}")
    return exposure_with_usd(ledger, chain, entity_exposure_of(ledger, chain, cluster_id), at_time=False)
