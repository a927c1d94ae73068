"""USD value of an amount of an asset at a time, and today.

* BTC, ETH (and WETH): the day's price from ``prices.daily`` (the transfer's UTC
  day). No price that day: ``usd`` None, flag ``no_price``; never zero.
* Stablecoins (:data:`STABLECOINS`, Ethereum mainnet contracts): 1 USD per token,
  flag ``stablecoin_par``. Risk: a de-pegged coin (USDC March 2023, UST) is over-valued.
* Other tokens: from the DEX swaps decoded into ``flows.swaps``
  (:mod:`chainsleuth.flows.conversions`): the volume-weighted ratio of the last
  :data:`DEX_SWAPS` swaps against WETH/ETH or a stablecoin within :data:`DEX_WINDOW`
  before the time, flag ``dex_swap``, the swap transactions as source. Risk: a thin or
  manipulated pool gives a wrong price (flash-loan attacks move a pool's price within
  one block); the swaps used are listed so they can be checked.

Amounts are exact integers in base units; USD values are exact Decimals
(the DEX ratio is rounded to 18 significant digits).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any

from ..errors import ConfigError
from ..store import Ledger
from .store import SCHEMA, _has_table

# Ethereum mainnet stablecoin contracts valued at par: address -> (symbol, decimals).
# Addresses and symbols: the issuers' pages (tether.to "Supported protocols", Circle
# "USDC contract addresses", MakerDAO chainlog, Paxos, Gemini, TrueUSD) and Etherscan's
# token labels (etherscan_labels_brianleect: label "stablecoin").
STABLECOINS: dict[str, tuple[str, int]] = {
    "0xdac17f958d2ee523a2206206994597c13d831ec7": ("USDT", 6),
    "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48": ("USDC", 6),
    "0x6b175474e89094c44da98b954eedeac495271d0f": ("DAI", 18),
    "0x89d24a6b4ccb1b6faa2625fe562bdd9a23260359": ("SAI", 18),
    "0x4fabb145d64652a948d72533023f6e7a623c7c53": ("BUSD", 18),
    "0x0000000000085d4780b73119b644ae5ecd22b376": ("TUSD", 18),
    "0x8e870d67f660d95d5be530380d0ec0bd388289e1": ("USDP", 18),
    "0x056fd409e1d7a124bd7017459dfea2f387b6d5cd": ("GUSD", 2),
}
WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"  # Ethereum mainnet WETH9
NATIVE_DECIMALS = {"BTC": 8, "ETH": 18}
DEX_SWAPS = 5
DEX_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class UsdValue:
    """A USD value with where it came from. ``usd`` None means no price: never read it as 0."""

    usd: Decimal | None
    price: Decimal | None  # USD per whole unit of the asset (per 10**decimals base units)
    price_day: date | None
    source: str | None
    flag: str  # daily | stablecoin_par | dex_swap | no_price

    def to_json(self) -> dict[str, Any]:
        return {"usd": usd_text(self.usd), "price": usd_text(self.price),
                "price_day": self.price_day.isoformat() if self.price_day else None,
                "source": self.source, "flag": self.flag}  # fmt: skip


def _day(at: datetime | date | None) -> date | None:
    if at is None or (isinstance(at, date) and not isinstance(at, datetime)):
        return at
    if at.tzinfo is not None:
        at = at.astimezone(UTC)
    return at.date()


def daily_price(ledger: Ledger, asset: str, day: date | None) -> tuple[date, Decimal, str] | None:
    """(day, price, source) for ``asset`` on ``day`` (None: the latest day in the table)."""
    if not _has_table(ledger):
        return None
    if day is None:
        row = ledger.con.execute(
            f"SELECT day, usd, source FROM {SCHEMA}.daily WHERE asset = ? ORDER BY day DESC LIMIT 1", [asset]
        ).fetchone()
    else:
        row = ledger.con.execute(f"SELECT day, usd, source FROM {SCHEMA}.daily WHERE asset = ? AND day = ?",
                                 [asset, day]).fetchone()  # fmt: skip
    return (row[0], _clean(Decimal(row[1])), str(row[2])) if row else None


def _clean(d: Decimal) -> Decimal:
    """Without the table's trailing zeros (25816.130000000000 -> 25816.13); whole numbers
    keep their digits (1E+3 -> 1000). Write it with :func:`usd_text`."""
    with localcontext() as ctx:
        ctx.prec = 200  # normalize/quantize round to the context: the default 28 digits cut wei-precise values
        return d.quantize(Decimal(1)) if d == d.to_integral_value() else d.normalize()


def usd_text(d: Decimal | None) -> str | None:
    """A USD amount or price as plain decimal text, never exponent form (``str`` writes
    the value of 1 wei as ``2.741593363E-15``); None stays None (no price)."""
    return None if d is None else format(d, "f")


def _base_units(amount: int, price: Decimal, decimals: int) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 80  # exact: amount and price have at most ~40 + 38 digits
        return Decimal(amount) * price / (Decimal(10) ** decimals)


def _wrapped_natives(ledger: Ledger) -> set[str]:
    out = {WETH, "eth"}
    if ledger.has_table("flows", "pools"):
        out |= {str(r[0]).lower() for r in ledger.con.execute(
            "SELECT token1 FROM flows.pools WHERE protocol = 'wrapped_native'").fetchall()}  # fmt: skip
    return out


def dex_price(ledger: Ledger, token: str, at: datetime | None) -> tuple[Fraction, date, str] | None:
    """USD per *base unit* of ``token`` from the last swaps against WETH/ETH or a
    stablecoin before ``at`` (None: the latest swaps): (price, day, source)."""
    if not ledger.has_table("flows", "swaps"):
        return None
    token = token.lower()
    wrapped = _wrapped_natives(ledger)
    quotes = sorted(wrapped | set(STABLECOINS))
    ph = ",".join("?" * len(quotes))
    params: list[Any] = [token, *quotes, token, *quotes]
    cond = ""
    if at is not None:
        at_naive = at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo else at
        cond = "AND block_timestamp <= ? AND block_timestamp >= ?"
        params += [at_naive, at_naive - DEX_WINDOW]
    rows = ledger.con.execute(
        f"""SELECT transaction_hash, block_timestamp, lower(token_in), amount_in, lower(token_out), amount_out
            FROM flows.swaps WHERE ((lower(token_in) = ? AND lower(token_out) IN ({ph}))
                                 OR (lower(token_out) = ? AND lower(token_in) IN ({ph})))
              AND amount_in > 0 AND amount_out > 0 {cond}
            ORDER BY block_timestamp DESC, transaction_index DESC, log_index DESC LIMIT {DEX_SWAPS}""",
        params,
    ).fetchall()
    if not rows:
        return None
    usd_total = Fraction(0)
    token_total = 0
    for _tx, ts, tin, ain, tout, aout in rows:
        quote, q_amount, t_amount = (tout, int(aout), int(ain)) if tin == token else (tin, int(ain), int(aout))
        if quote in STABLECOINS:
            usd_total += Fraction(q_amount, 10 ** STABLECOINS[quote][1])
        else:
            p = daily_price(ledger, "ETH", ts.date())
            if p is None:
                return None  # the quote leg has no USD price that day
            usd_total += Fraction(q_amount, 10**18) * Fraction(p[1])
        token_total += t_amount
    newest = rows[0][1]
    return usd_total / token_total, newest.date(), "dex swaps " + " ".join(r[0] for r in rows)


def usd_value(ledger: Ledger, asset: str, amount_base_units: int, decimals: int | None = None,
              at: datetime | date | None = None) -> UsdValue:  # fmt: skip
    """USD value of ``amount_base_units`` of ``asset`` on the UTC day of ``at`` (None: the
    latest price). ``asset``: BTC, ETH, or a token contract address."""
    if not isinstance(amount_base_units, int) or isinstance(amount_base_units, bool):
        raise ConfigError(f"amount must be an integer number of base units, not {amount_base_units!r}")
    key = asset.strip()
    low = key.lower()
    day = _day(at)
    if key.upper() in NATIVE_DECIMALS or low == WETH:
        sym = "ETH" if low == WETH else key.upper()
        dec = NATIVE_DECIMALS[sym] if decimals is None else decimals
        got = daily_price(ledger, sym, day)
        if got is None:
            return UsdValue(None, None, day, None, "no_price")
        return UsdValue(_clean(_base_units(amount_base_units, got[1], dec)), got[1], got[0], got[2], "daily")
    if low in STABLECOINS:
        sym, dec = STABLECOINS[low]
        return UsdValue(_clean(_base_units(amount_base_units, Decimal(1), dec)), Decimal(1), day or datetime.now(UTC).date(),
                        f"{sym} at par (stablecoin list)", "stablecoin_par")  # fmt: skip
    when = at if isinstance(at, datetime) else (datetime(at.year, at.month, at.day, 23, 59, 59) if at else None)
    got_dex = dex_price(ledger, low, when)
    if got_dex is None:
        return UsdValue(None, None, day, None, "no_price")
    per_base, pday, source = got_dex
    usd = _to_decimal(per_base * amount_base_units)
    price = _to_decimal(per_base * 10**decimals) if decimals is not None else None
    return UsdValue(usd, price, pday, source, "dex_swap")


def _to_decimal(x: Fraction) -> Decimal:
    """A Fraction as a Decimal of 18 significant digits (a DEX ratio is not exact anyway)."""
    with localcontext() as ctx:
        ctx.prec = 18
        return Decimal(x.numerator) / Decimal(x.denominator)


def value_now(ledger: Ledger, asset: str, amount_base_units: int, decimals: int | None = None) -> UsdValue:
    """USD value at the latest price in the table (its day is ``price_day``)."""
    return usd_value(ledger, asset, amount_base_units, decimals, None)


def with_usd(ledger: Ledger, result: Any, doc: dict[str, Any] | None = None) -> dict[str, Any]:
    """Annotate a trace's endpoints and holdings with USD at the time and latest.

    ``doc`` is ``result.to_json()`` (made when None) and is changed in place: each
    endpoint/holding row gets ``usd`` = {usd_at_time, usd_latest, price_day_at_time,
    price_day_latest, source_at_time, source_latest, flag} (decimal strings). The time
    of an endpoint is its ``first_time``; of a holding, the last traced edge into it
    (no such edge: no time, so only the latest value)."""
    doc = doc if doc is not None else result.to_json()
    last_in: dict[tuple[str, str], datetime] = {}
    for e in result.edges:
        ts = e.get("block_timestamp")
        if e.get("to") is not None and isinstance(ts, datetime):
            k = (e["to"], e["asset"])
            last_in[k] = max(last_in.get(k, ts), ts)
    for section, rows in (("endpoints", result.endpoints), ("holdings", result.holdings)):
        for row, out in zip(rows, doc[section], strict=True):
            when = row.get("first_time") if section == "endpoints" else last_in.get((row["address"], row["asset"]))
            asset = row["asset"]
            then = usd_value(ledger, asset, int(row["value"]), None, when) if when is not None else None
            now = value_now(ledger, asset, int(row["value"]))
            out["usd"] = {
                "usd_at_time": usd_text(then.usd) if then else None,
                "usd_latest": usd_text(now.usd),
                "price_day_at_time": then.price_day.isoformat() if then and then.price_day else None,
                "price_day_latest": now.price_day.isoformat() if now.price_day else None,
                "source_at_time": then.source if then else None, "source_latest": now.source,
                "flag": (then.flag if then else "no_time") if (then is None or then.flag != "daily") else now.flag,
            }  # fmt: skip
    return doc
