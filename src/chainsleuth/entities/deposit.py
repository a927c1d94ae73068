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
"""

from __future__ import annotations

import pyarrow as pa

from ..store import Ledger

HEURISTIC = "deposit_reuse"
CONFIDENCE = 0.8
MAX_DELAY_BLOCKS = 3200
MAX_NATIVE_SHORTFALL = 10**16  # 0.01 ETH in wei
MAX_TOKEN_SHORTFALL_PPM = 10_000  # 1%
MIN_DEPOSITS_PER_SINK = 2


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
    s = f'"{chain}"'
    hi = last_block if last_block is not None else 2**62
    sql = f"""
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
  SELECT o.src AS d, o.dst AS e
  FROM t o JOIN single_sink ss ON ss.d = o.src
  JOIN t i ON i.dst = o.src AND i.asset = o.asset
  WHERE i.b <= o.b AND o.b - i.b <= ?
  GROUP BY o.src, o.dst, o.h, o.pos, o.asset, o.amount
  HAVING o.amount <= sum(i.amount)
     AND (CASE WHEN o.asset = ? THEN sum(i.amount) - o.amount <= ?
               ELSE (sum(i.amount) - o.amount) * 1000000 <= sum(i.amount) * ? END)
),
sinks AS (
  SELECT e FROM forwards GROUP BY e HAVING count(DISTINCT d) >= ?
),
deposits AS (
  SELECT f.d, f.e FROM forwards f JOIN sinks USING (e)
),
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
    params = [hi, max_delay_blocks, native_asset, max_native_shortfall,
              max_token_shortfall_ppm, min_deposits_per_sink]
    return ledger.query(sql, params)


