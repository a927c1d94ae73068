"""The ``transfers`` view: every movement of value on a chain, one row per leg.

This view is the seam between the ledger and everything above it (clustering,
flows, exposure). Both ledger models are read through the same columns:

==================  ==========================================================
column              meaning
==================  ==========================================================
transaction_hash    the transaction that moves the value
block_number        height of its block
block_timestamp     time of its block (UTC)
transaction_index   position of the transaction in its block (NULL on UTXO
                    chains, where spends reference outputs and order is implied)
kind                UTXO: ``input`` | ``output`` | ``fee``;
                    account: ``native`` | ``internal`` | ``token`` | ``fee`` |
                    ``reward``
position            order of the leg inside the transaction for its kind: the
                    input or output index; 0 for native legs; 0 (burnt) and 1
                    (to the miner) for account fee legs; the
                    depth-first order of the call for internal legs; the
                    log index for token legs
from_address        who gives value (NULL for UTXO outputs, mints, rewards)
to_address          who receives it (NULL for UTXO inputs and fees)
asset               ``BTC``/``ETH`` (native) or the token contract address
amount              exact integer in base units (HUGEINT)
amount_overflow     the exact decimal digits when amount does not fit (amount
                    is then NULL); NULL otherwise
utxo_transaction_hash, utxo_index
                    UTXO chains: the coin this leg spends (input) or creates
                    (output); NULL on account chains
==================  ==========================================================

On a UTXO chain a transaction pools its inputs and pays its outputs: an
``input`` row says ``from_address`` put ``amount`` into the transaction, an
``output`` row says the transaction paid ``amount`` to ``to_address``, and the
``fee`` row is what the inputs paid that no output received (to the miner). On
an account chain each row is a direct edge ``from_address -> to_address``; the
``fee`` rows are the gas the sender paid, split as EIP-1559 does: position 0
is the burnt base fee (``to_address`` NULL), position 1 the rest, paid to the
block's miner/fee recipient (before London all of it goes to the miner). Failed
transactions and reverted calls move no value and are left out; their fee is
still paid. Before Byzantium receipts carry no status, so a failed top-level
trace marks the failure. Not yet modelled: post-Shanghai withdrawals and
EIP-4844 blob fees (their columns are not in the schema).

A bitcoin-family output with several addresses (bare multisig) is named
``multisig:<m>:<addr1>,<addr2>,...``; an output with none (OP_RETURN) has a NULL
address, i.e. the value is burnt.
"""

from __future__ import annotations

from .schema import NATIVE_ASSET, Family

_UTXO_ADDRESS = """CASE
    WHEN len({t}.addresses) = 1 THEN {t}.addresses[1]
    WHEN len({t}.addresses) > 1 THEN
        'multisig:' || coalesce(CAST({t}.required_signatures AS VARCHAR), '?') || ':'
        || array_to_string({t}.addresses, ',')
    ELSE NULL END"""


def bitcoin_transfers_sql(schema: str, asset: str) -> str:
    s = f'"{schema}"'
    return f"""
CREATE OR REPLACE VIEW {s}.transfers AS
SELECT i.transaction_hash, i.block_number, i.block_timestamp,
       CAST(NULL AS BIGINT) AS transaction_index,
       'input' AS kind, i."index" AS position,
       {_UTXO_ADDRESS.format(t="i")} AS from_address,
       CAST(NULL AS VARCHAR) AS to_address,
       '{asset}' AS asset, i.value AS amount, CAST(NULL AS VARCHAR) AS amount_overflow,
       i.spent_transaction_hash AS utxo_transaction_hash, i.spent_output_index AS utxo_index
FROM {s}.inputs i
UNION ALL
SELECT o.transaction_hash, o.block_number, o.block_timestamp,
       CAST(NULL AS BIGINT), 'output', o."index",
       CAST(NULL AS VARCHAR),
       {_UTXO_ADDRESS.format(t="o")},
       '{asset}', o.value, CAST(NULL AS VARCHAR),
       o.transaction_hash, o."index"
FROM {s}.outputs o
UNION ALL
SELECT t.hash, t.block_number, t.block_timestamp,
       CAST(NULL AS BIGINT), 'fee', 0,
       CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR),
       '{asset}', t.fee, CAST(NULL AS VARCHAR),
       CAST(NULL AS VARCHAR), CAST(NULL AS BIGINT)
FROM {s}.transactions t
WHERE NOT t.is_coinbase AND t.fee > 0
"""


def ethereum_transfers_sql(schema: str, asset: str) -> str:
    s = f'"{schema}"'
    # gas paid per tx, and the EIP-1559 base fee part of it that is burnt
    fee_split = f"""SELECT r.transaction_hash, r.block_number, t.block_timestamp,
               r.transaction_index, t.from_address, b.miner,
               CAST(r.gas_used AS HUGEINT) * coalesce(r.effective_gas_price, t.gas_price) AS paid,
               CAST(r.gas_used AS HUGEINT) * coalesce(b.base_fee_per_gas, 0) AS burnt
        FROM {s}.receipts r
        JOIN {s}.transactions t ON t.hash = r.transaction_hash
        LEFT JOIN {s}.blocks b ON b.number = r.block_number
        WHERE r.gas_used > 0"""
    return f"""
CREATE OR REPLACE VIEW {s}.transfers AS
SELECT t.hash AS transaction_hash, t.block_number, t.block_timestamp, t.transaction_index,
       'native' AS kind, 0 AS position,
       t.from_address, coalesce(t.to_address, r.contract_address) AS to_address,
       '{asset}' AS asset, t.value AS amount, t.value_overflow AS amount_overflow,
       CAST(NULL AS VARCHAR) AS utxo_transaction_hash, CAST(NULL AS BIGINT) AS utxo_index
FROM {s}.transactions t
LEFT JOIN {s}.receipts r ON r.transaction_hash = t.hash
LEFT JOIN (SELECT transaction_hash, min(status) AS status FROM {s}.traces
           WHERE coalesce(trace_address, '') = '' AND transaction_hash IS NOT NULL
           GROUP BY transaction_hash) top ON top.transaction_hash = t.hash
-- receipts before Byzantium carry no status: the top-level trace tells failure then
WHERE coalesce(r.status, top.status, 1) = 1 AND (t.value <> 0 OR t.value_overflow IS NOT NULL)
UNION ALL
SELECT tr.transaction_hash, tr.block_number, tr.block_timestamp, tr.transaction_index,
       CASE WHEN tr.trace_type = 'reward' THEN 'reward' ELSE 'internal' END,
       row_number() OVER (PARTITION BY tr.block_number, tr.transaction_hash
                          ORDER BY CAST(string_split(nullif(tr.trace_address, ''), ',') AS BIGINT[])),
       tr.from_address, tr.to_address,
       '{asset}', tr.value, tr.value_overflow,
       CAST(NULL AS VARCHAR), CAST(NULL AS BIGINT)
FROM {s}.traces tr
WHERE coalesce(tr.status, 1) = 1
  AND (tr.value <> 0 OR tr.value_overflow IS NOT NULL)
  AND (tr.trace_type = 'reward'
       OR (tr.trace_type IN ('call', 'create', 'suicide')
           AND coalesce(tr.trace_address, '') <> ''
           AND coalesce(tr.call_type, 'call') NOT IN ('delegatecall', 'staticcall', 'callcode')))
UNION ALL
SELECT tt.transaction_hash, tt.block_number, tt.block_timestamp, t.transaction_index,
       'token', tt.log_index,
       tt.from_address, tt.to_address,
       tt.token_address, tt.value, tt.value_overflow,
       CAST(NULL AS VARCHAR), CAST(NULL AS BIGINT)
FROM {s}.token_transfers tt
LEFT JOIN {s}.transactions t ON t.hash = tt.transaction_hash
UNION ALL
SELECT transaction_hash, block_number, block_timestamp, transaction_index,
       'fee', 0, from_address, CAST(NULL AS VARCHAR),
       '{asset}', burnt, CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), CAST(NULL AS BIGINT)
FROM ({fee_split}) WHERE burnt > 0
UNION ALL
SELECT transaction_hash, block_number, block_timestamp, transaction_index,
       'fee', 1, from_address, miner,
       '{asset}', paid - burnt, CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), CAST(NULL AS BIGINT)
FROM ({fee_split}) WHERE paid - burnt > 0
"""


def transfers_sql(family: Family, schema: str, asset: str | None = None) -> str:
    asset = asset or NATIVE_ASSET[family]
    if family == "bitcoin":
        return bitcoin_transfers_sql(schema, asset)
    return ethereum_transfers_sql(schema, asset)
