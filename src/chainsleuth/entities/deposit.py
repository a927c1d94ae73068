"""Account-model clustering: exchange deposit-address reuse (Ethereum family).

Source: Victor (2020), "Address clustering heuristics for Ethereum", Financial
Cryptography 2020, §4.1. Exchanges give each customer a deposit address and
sweep it to a hot wallet. An address D is taken as a deposit address when

* every outgoing transfer of D goes to one address E (the sweep target), and
  D forwards at least once;
* a forward moves (nearly) all of what D received in that asset during the
  ``max_delay_blocks`` blocks before it (Victor: 3,200): at
  most ``max_native_shortfall`` wei less for ETH (Victor: 0.01 ETH, the gas
  the exchange pays), at most ``max_token_shortfall_ppm`` parts per million
  less for tokens (our choice; tokens carry no gas);
* E receives such forwards from at least ``min_deposits_per_sink`` distinct
  deposit addresses (a hot wallet sweeps many; a single forward is just a
  payment).

Then all senders into D are one customer: evidence rows join each sender to
D's first sender, on the sender's first transfer into D, heuristic
``deposit_reuse``. D and E themselves belong to the exchange, not the customer,
and are not joined.

False positives: custodial services, payment processors and OTC desks that pool
many customers behind one deposit address; gift or payroll addresses that
forward; senders that are themselves exchanges (hot wallets paying out to a
user's deposit address at another exchange link the two exchanges' customers,
so senders that are sweep targets E are skipped). Victor reports the heuristic
links 17.9% of active EOAs; its precision was not measured against ground truth.

:func:`deposit_addresses` lists the D themselves (with sink E), stored by clustering in
``entities.deposit_addresses``; :func:`utxo_deposit_addresses` is the sweep analogue on
UTXO chains. A forward trace stops at a D whose E is a tagged exchange (the deposit
address is whom to ask the exchange about). Extra false-positive risk of that use: a
user's own address that empties itself into a service is taken for the service's
deposit address (the trace stops one hop early, still naming the service).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from ..store import Ledger

HEURISTIC = "deposit_reuse"
CONFIDENCE = 0.8
MAX_DELAY_BLOCKS = 3200
MAX_NATIVE_SHORTFALL = 10**16  # 0.01 ETH in wei
MAX_TOKEN_SHORTFALL_PPM = 10_000  # 1%
MIN_DEPOSITS_PER_SINK = 2


def _detection_sql(chain: str) -> str:
    """The CTEs shared by :func:`deposit_reuse` and :func:`deposit_addresses`: legs ``t``,
    qualifying ``forwards`` (one row per forward leg), ``sinks`` and ``deposits``.
    Parameters: last block, max delay, native asset, native shortfall, token ppm, min deposits."""
    s = f'"{chain}"'
    return f"""
WITH t AS (
  SELECT from_address AS src, to_address AS dst, asset, amount, block_number AS b,
         coalesce(transaction_index, 0) AS ti, position AS pos, transaction_hash AS h
  FROM {s}.transfers
  WHERE kind IN ('native', 'internal', 'token') AND from_address IS NOT NULL
    AND to_address IS NOT NULL AND from_address <> to_address AND amount IS NOT NULL
    AND amount > 0 AND block_number <= ?
),
single_sink AS (  -- addresses whose every outgoing transfer goes to one address
  SELECT src AS d, min(dst) AS e FROM t GROUP BY src HAVING count(DISTINCT dst) = 1
),
forwards AS (  -- a forward of (nearly) all that came in during the window before it
  SELECT o.src AS d, o.dst AS e, o.h, o.b, min(o.ti) AS ti, o.pos
  FROM t o JOIN single_sink ss ON ss.d = o.src
  JOIN t i ON i.dst = o.src AND i.asset = o.asset
  WHERE i.b <= o.b AND o.b - i.b <= ?
  GROUP BY o.src, o.dst, o.h, o.b, o.pos, o.asset, o.amount
  HAVING o.amount <= sum(i.amount)
     AND (CASE WHEN o.asset = ? THEN sum(i.amount) - o.amount <= ?
               ELSE (sum(i.amount) - o.amount) * 1000000 <= sum(i.amount) * ? END)
),
sinks AS (
  SELECT e FROM forwards GROUP BY e HAVING count(DISTINCT d) >= ?
),
deposits AS (
  SELECT DISTINCT f.d, f.e FROM forwards f JOIN sinks USING (e)
)"""


def _params(
    last_block: int | None, native_asset: str, max_delay_blocks: int, max_native_shortfall: int,
    max_token_shortfall_ppm: int, min_deposits_per_sink: int,
) -> list[Any]:
    hi = last_block if last_block is not None else 2**62
    return [hi, max_delay_blocks, native_asset, max_native_shortfall, max_token_shortfall_ppm,
            min_deposits_per_sink]


def deposit_reuse(
    ledger: Ledger,
    chain: str,
    *,
    last_block: int | None = None,
    native_asset: str = "ETH",
    max_delay_blocks: int = MAX_DELAY_BLOCKS,
    max_native_shortfall: int = MAX_NATIVE_SHORTFALL,
    max_token_shortfall_ppm: int = MAX_TOKEN_SHORTFALL_PPM,
    min_deposits_per_sink: int = MIN_DEPOSITS_PER_SINK,
) -> pa.Table:
    """Evidence rows ``(address_a, address_b, transaction_hash, block_number,
    heuristic, confidence)`` from the chain's ``transfers`` view (native,
    internal and token legs) up to ``last_block``, ordered by block."""
    sql = _detection_sql(chain) + f""",
senders AS (  -- each sender's first transfer into each deposit address
  SELECT i.dst AS d, i.src AS sender, i.b, i.ti, i.pos, i.h,
         row_number() OVER (PARTITION BY i.dst, i.src ORDER BY i.b, i.ti, i.pos, i.h) AS rn
  FROM t i JOIN deposits dp ON dp.d = i.dst
  WHERE i.src NOT IN (SELECT e FROM sinks) AND i.src NOT IN (SELECT d FROM deposits)
),
firsts AS (SELECT * FROM senders WHERE rn = 1),
ranked AS (
  SELECT d, sender, b, ti, pos, h,
         first_value(sender) OVER (PARTITION BY d ORDER BY b, ti, pos, h, sender) AS anchor
  FROM firsts
)
SELECT anchor AS address_a, sender AS address_b, h AS transaction_hash, b AS block_number,
       '{HEURISTIC}' AS heuristic, {CONFIDENCE} AS confidence, d AS deposit_address
FROM ranked WHERE sender <> anchor
ORDER BY b, ti, pos, h, sender
"""
    return ledger.query(sql, _params(last_block, native_asset, max_delay_blocks, max_native_shortfall,
                                     max_token_shortfall_ppm, min_deposits_per_sink))


def deposit_addresses(
    ledger: Ledger,
    chain: str,
    *,
    last_block: int | None = None,
    native_asset: str = "ETH",
    max_delay_blocks: int = MAX_DELAY_BLOCKS,
    max_native_shortfall: int = MAX_NATIVE_SHORTFALL,
    max_token_shortfall_ppm: int = MAX_TOKEN_SHORTFALL_PPM,
    min_deposits_per_sink: int = MIN_DEPOSITS_PER_SINK,
) -> pa.Table:
    """The deposit addresses themselves: one row ``(address, sink, first_forward_tx,
    first_forward_block, n_forwards, heuristic, confidence)`` per detected D, with its
    sweep target E (``sink``), its first qualifying forward and how many qualifying
    forwards it made, ordered by address. Same rule and parameters as
    :func:`deposit_reuse`; a D whose sink is a tagged service is a deposit address *of
    that service* (the trace stops there: :func:`chainsleuth.flows.trace.trace`)."""
    sql = _detection_sql(chain) + f""",
fw AS (
  SELECT f.d, f.e, f.h, f.b,
         row_number() OVER (PARTITION BY f.d ORDER BY f.b, f.ti, f.pos, f.h) AS rn,
         count(*) OVER (PARTITION BY f.d) AS n
  FROM forwards f JOIN sinks USING (e)
)
SELECT d AS address, e AS sink, h AS first_forward_tx, b AS first_forward_block,
       n AS n_forwards, '{HEURISTIC}' AS heuristic, {CONFIDENCE} AS confidence
FROM fw WHERE rn = 1 ORDER BY address
"""
    return ledger.query(sql, _params(last_block, native_asset, max_delay_blocks, max_native_shortfall,
                                     max_token_shortfall_ppm, min_deposits_per_sink))


# UTXO chains: a week of blocks between a deposit and its sweep (our choice; exchanges
# sweep within hours to days).
UTXO_MAX_DELAY_BLOCKS = 1008


def utxo_deposit_addresses(
    ledger: Ledger,
    chain: str,
    *,
    last_block: int | None = None,
    max_delay_blocks: int = UTXO_MAX_DELAY_BLOCKS,
    min_deposits_per_sink: int = MIN_DEPOSITS_PER_SINK,
) -> pa.Table:
    """Single-purpose forwarding addresses on a UTXO chain, the same rows as
    :func:`deposit_addresses`: an address D is a deposit address of sink E when every
    transaction spending D's coins pays all its outputs to the one address E (a sweep:
    inputs less the fee, so "(nearly) all"), each spent coin was received at most
    ``max_delay_blocks`` before, and E receives such sweeps from at least
    ``min_deposits_per_sink`` distinct D. The account-chain rule of Victor (2020) carried
    to coins; exchanges sweep their customers' deposit addresses this way.

    False positives: a user who empties a wallet into one service address ("send max"),
    where two such users pay the same address; a service's own consolidation into a cold
    wallet (then D is the service's change or hot address, still the service's).
    Multi-signature and non-standard outputs (not exactly one address) never qualify.
    """
    s = f'"{chain}"'
    hi = last_block if last_block is not None else 2**62
    sql = f"""
WITH sweep_tx AS (  -- transactions whose outputs all pay one single-address script
  SELECT transaction_hash AS h, min(addresses[1]) AS e
  FROM {s}.outputs WHERE block_number <= ? AND value > 0
  GROUP BY transaction_hash
  HAVING bool_and(len(addresses) = 1) AND count(DISTINCT addresses[1]) = 1
),
spends AS (  -- every spend of a single-address coin, with the block the coin arrived in
  SELECT i.addresses[1] AS d, i.transaction_hash AS h, i.block_number AS b, i.index AS pos,
         t.index AS ti, i.block_number - o.block_number AS delay, st.e
  FROM {s}.inputs i
  JOIN {s}.outputs o ON o.transaction_hash = i.spent_transaction_hash AND o.index = i.spent_output_index
  LEFT JOIN sweep_tx st ON st.h = i.transaction_hash
  LEFT JOIN {s}.transactions t ON t.hash = i.transaction_hash
  WHERE i.block_number <= ? AND len(i.addresses) = 1
),
cand AS (
  SELECT d, min(e) AS e FROM spends GROUP BY d
  HAVING bool_and(e IS NOT NULL AND delay <= ?) AND count(DISTINCT e) = 1 AND min(e) <> d
),
sinks AS (SELECT e FROM cand GROUP BY e HAVING count(*) >= ?),
fw AS (
  SELECT sp.d, sp.e, sp.h, sp.b,
         dense_rank() OVER (PARTITION BY sp.d ORDER BY sp.b, coalesce(sp.ti, 0), sp.h) AS rn
  FROM spends sp JOIN cand c ON c.d = sp.d JOIN sinks k ON k.e = c.e
  WHERE sp.d NOT IN (SELECT e FROM sinks)
)
SELECT d AS address, min(e) AS sink, min(h) FILTER (WHERE rn = 1) AS first_forward_tx,
       min(b) AS first_forward_block, count(DISTINCT h) AS n_forwards,
       'utxo_sweep' AS heuristic, {CONFIDENCE} AS confidence
FROM fw GROUP BY d ORDER BY address
"""
    return ledger.query(sql, [hi, hi, max_delay_blocks, min_deposits_per_sink])
