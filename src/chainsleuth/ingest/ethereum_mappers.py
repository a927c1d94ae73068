"""Pure mappers from Ethereum JSON-RPC answers to the canonical ledger rows.

Every function here is a plain transformation of JSON values (no I/O), so the
etl-files importer and the tests can use them directly. Field names and rules
follow ethereum-etl 2.x (``ethereumetl/mappers/*``, ``service/token_transfer_extractor.py``,
``service/trace_status_calculator.py``, ``service/trace_id_calculator.py``,
``mappers/trace_mapper.py``; MIT, https://github.com/blockchain-etl/ethereum-etl)
so that our rows equal its exports field by field. Deliberate differences:

* Token transfers: ethereum-etl accepts any ``Transfer`` log whose topics plus
  32-byte data words number four, which also takes ERC-721 transfers (four
  topics, no data) and books the token id as an amount. We keep ERC-20 only:
  three topics and one data word, or the rare unindexed form (one topic and
  three data words). ERC-721 logs stay in ``logs``.
* Geth traces: ethereum-etl's ``extract_geth_traces`` leaves ``transaction_hash``,
  ``status`` and ``trace_id`` empty; we fill them (hash from the block's
  transaction list, status and id by the same rules as parity traces), and map
  ``CREATE2`` to ``create`` as parity reports it. Geth has no reward traces.
* Genesis allocations and the DAO-fork state changes that ethereum-etl can add
  as synthetic traces are not produced.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from ..store.schema import ETHEREUM_TABLES, split_amount

Row = dict[str, Any]

TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


# -- scalars --------------------------------------------------------------------------
def hex_to_int(value: Any) -> int | None:
    """``"0x1a"`` -> 26; ints pass through (parity gives blockNumber as int); None stays None."""
    if value is None:
        return None
    if isinstance(value, int):
        return value
    text = str(value)
    if text in ("", "0x"):
        return 0 if text == "0x" else None
    return int(text, 16)


def normalize_address(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) else None


def word_to_address(word: str) -> str:
    """A 32-byte topic/data word -> its low 20 bytes as a lower-case address."""
    return "0x" + word[-40:].lower()


def split_to_words(data: str | None) -> list[str]:
    """ABI data ``0x...`` -> its 32-byte words (hex, with 0x)."""
    if not data or len(data) <= 2:
        return []
    body = data[2:]
    return ["0x" + body[i : i + 64] for i in range(0, len(body), 64)]


# -- blocks and transactions ------------------------------------------------------------
def block_to_row(block: Mapping[str, Any]) -> Row:
    """``eth_getBlockByNumber`` result -> a ``blocks`` row."""
    txs = block.get("transactions") or []
    return {
        "number": hex_to_int(block.get("number")),
        "hash": block.get("hash"),
        "parent_hash": block.get("parentHash"),
        "nonce": block.get("nonce"),
        "sha3_uncles": block.get("sha3Uncles"),
        "logs_bloom": block.get("logsBloom"),
        "transactions_root": block.get("transactionsRoot"),
        "state_root": block.get("stateRoot"),
        "receipts_root": block.get("receiptsRoot"),
        "miner": normalize_address(block.get("miner")),
        "difficulty": hex_to_int(block.get("difficulty")),
        "total_difficulty": hex_to_int(block.get("totalDifficulty")),
        "size": hex_to_int(block.get("size")),
        "extra_data": block.get("extraData"),
        "gas_limit": hex_to_int(block.get("gasLimit")),
        "gas_used": hex_to_int(block.get("gasUsed")),
        "timestamp": hex_to_int(block.get("timestamp")),
        "transaction_count": len(txs),
        "base_fee_per_gas": hex_to_int(block.get("baseFeePerGas")),
        "withdrawals_root": block.get("withdrawalsRoot"),
        "blob_gas_used": hex_to_int(block.get("blobGasUsed")),
        "excess_blob_gas": hex_to_int(block.get("excessBlobGas")),
    }


def transaction_to_row(tx: Mapping[str, Any], block_timestamp: int | None) -> Row:
    """One full transaction object of a block -> a ``transactions`` row."""
    return {
        "hash": tx.get("hash"),
        "nonce": hex_to_int(tx.get("nonce")),
        "block_hash": tx.get("blockHash"),
        "block_number": hex_to_int(tx.get("blockNumber")),
        "transaction_index": hex_to_int(tx.get("transactionIndex")),
        "from_address": normalize_address(tx.get("from")),
        "to_address": normalize_address(tx.get("to")),
        "value": hex_to_int(tx.get("value")),
        "gas": hex_to_int(tx.get("gas")),
        "gas_price": hex_to_int(tx.get("gasPrice")),
        "input": tx.get("input"),
        "block_timestamp": block_timestamp,
        "max_fee_per_gas": hex_to_int(tx.get("maxFeePerGas")),
        "max_priority_fee_per_gas": hex_to_int(tx.get("maxPriorityFeePerGas")),
        "transaction_type": hex_to_int(tx.get("type")),
    }


def block_to_rows(block: Mapping[str, Any]) -> tuple[Row, list[Row]]:
    """A block with full transactions -> its ``blocks`` row and ``transactions`` rows."""
    row = block_to_row(block)
    ts = row["timestamp"]
    txs = [transaction_to_row(tx, ts) for tx in block.get("transactions") or [] if isinstance(tx, Mapping)]
    return row, txs


# -- receipts, logs, token transfers -------------------------------------------------------
def receipt_to_row(receipt: Mapping[str, Any]) -> Row:
    return {
        "transaction_hash": receipt.get("transactionHash"),
        "transaction_index": hex_to_int(receipt.get("transactionIndex")),
        "block_hash": receipt.get("blockHash"),
        "block_number": hex_to_int(receipt.get("blockNumber")),
        "cumulative_gas_used": hex_to_int(receipt.get("cumulativeGasUsed")),
        "gas_used": hex_to_int(receipt.get("gasUsed")),
        "contract_address": normalize_address(receipt.get("contractAddress")),
        "root": receipt.get("root"),
        "status": hex_to_int(receipt.get("status")),
        "effective_gas_price": hex_to_int(receipt.get("effectiveGasPrice")),
    }


def log_to_row(log: Mapping[str, Any]) -> Row:
    return {
        "log_index": hex_to_int(log.get("logIndex")),
        "transaction_hash": log.get("transactionHash"),
        "transaction_index": hex_to_int(log.get("transactionIndex")),
        "block_hash": log.get("blockHash"),
        "block_number": hex_to_int(log.get("blockNumber")),
        "address": normalize_address(log.get("address")),
        "data": log.get("data"),
        "topics": list(log.get("topics") or []),
    }


def receipts_to_rows(receipts: Iterable[Mapping[str, Any]]) -> tuple[list[Row], list[Row]]:
    """Receipts -> ``receipts`` rows and the ``logs`` rows they carry."""
    receipt_rows: list[Row] = []
    log_rows: list[Row] = []
    for receipt in receipts:
        receipt_rows.append(receipt_to_row(receipt))
        log_rows.extend(log_to_row(log) for log in receipt.get("logs") or [])
    return receipt_rows, log_rows


def log_row_to_token_transfer(log: Mapping[str, Any], block_timestamp: int | None = None) -> Row | None:
    """An ERC-20 ``Transfer(address,address,uint256)`` log row -> a ``token_transfers`` row.

    Takes a ``logs`` row (topics as a list or a comma-joined string, as in
    ethereum-etl CSV). Returns None for other events and for ERC-721 transfers.
    """
    topics = log.get("topics")
    if isinstance(topics, str):
        topics = [t for t in topics.split(",") if t]
    if not topics or str(topics[0]).lower() != TRANSFER_TOPIC:
        return None
    words = split_to_words(log.get("data"))
    # ERC-20: 3 topics + 1 word; some old tokens index nothing: 1 topic + 3 words.
    # ERC-721 (4 topics, 0 words) is a token id, not an amount: left out on purpose.
    if len(topics) == 4 or len(topics) + len(words) != 4:
        return None
    fields = list(topics) + words
    return {
        "token_address": normalize_address(log.get("address")),
        "from_address": word_to_address(fields[1]),
        "to_address": word_to_address(fields[2]),
        "value": int(fields[3], 16),  # exact uint256; rows_to_arrow handles overflow
        "transaction_hash": log.get("transaction_hash"),
        "log_index": log.get("log_index"),
        "block_number": log.get("block_number"),
        "block_hash": log.get("block_hash"),
        "block_timestamp": block_timestamp,
    }


def token_transfers_from_logs(
    log_rows: Iterable[Mapping[str, Any]], timestamps: Mapping[int, int | None] | None = None
) -> list[Row]:
    out: list[Row] = []
    for log in log_rows:
        ts = timestamps.get(log.get("block_number") or -1) if timestamps else None
        row = log_row_to_token_transfer(log, ts)
        if row is not None:
            out.append(row)
    return out


# -- traces ------------------------------------------------------------------------------
def trace_address_to_str(address: Sequence[int] | None, sep: str = ",") -> str:
    return sep.join(str(i) for i in address or [])


def parity_trace_to_row(trace: Mapping[str, Any]) -> Row:
    """One ``trace_block`` entry -> a ``traces`` row (without status and trace_id)."""
    action = trace.get("action") or {}
    result = trace.get("result") or {}
    trace_type = trace.get("type")
    row: Row = {
        "block_number": hex_to_int(trace.get("blockNumber")),
        "transaction_hash": trace.get("transactionHash"),
        "transaction_index": trace.get("transactionPosition"),
        "from_address": None,
        "to_address": None,
        "value": None,
        "input": None,
        "output": None,
        "trace_type": trace_type,
        "call_type": None,
        "reward_type": None,
        "gas": None,
        "gas_used": None,
        "subtraces": trace.get("subtraces"),
        "trace_address": list(trace.get("traceAddress") or []),
        "error": trace.get("error") or None,
        "status": None,
        "trace_id": None,
        "block_hash": trace.get("blockHash"),
    }
    if trace_type in ("call", "create"):
        row["from_address"] = normalize_address(action.get("from"))
        row["value"] = hex_to_int(action.get("value"))
        row["gas"] = hex_to_int(action.get("gas"))
        row["gas_used"] = hex_to_int(result.get("gasUsed"))
    if trace_type == "call":
        row["call_type"] = action.get("callType")
        row["to_address"] = normalize_address(action.get("to"))
        row["input"] = action.get("input")
        row["output"] = result.get("output")
    elif trace_type == "create":
        row["to_address"] = normalize_address(result.get("address"))
        row["input"] = action.get("init")
        row["output"] = result.get("code")
    elif trace_type == "suicide":
        row["from_address"] = normalize_address(action.get("address"))
        row["to_address"] = normalize_address(action.get("refundAddress"))
        row["value"] = hex_to_int(action.get("balance"))
    elif trace_type == "reward":
        row["to_address"] = normalize_address(action.get("author"))
        row["value"] = hex_to_int(action.get("value"))
        row["reward_type"] = action.get("rewardType")
    return row


def parity_traces_to_rows(traces: Iterable[Mapping[str, Any]]) -> list[Row]:
    """``trace_block`` result(s) -> ``traces`` rows with status and trace_id, as ethereum-etl."""
    rows = [parity_trace_to_row(t) for t in traces]
    finish_traces(rows)
    return rows


def _geth_call_to_rows(
    block_number: int, tx_index: int, tx_hash: str | None, call: Mapping[str, Any],
    address: list[int], out: list[Row],
) -> None:
    trace_type = str(call.get("type") or "").lower()
    call_type = None
    if trace_type == "selfdestruct":
        trace_type = "suicide"  # parity's name
    elif trace_type == "create2":
        trace_type = "create"  # parity reports CREATE2 as create
    elif trace_type in ("call", "callcode", "delegatecall", "staticcall"):
        call_type, trace_type = trace_type, "call"
    children = call.get("calls") or []
    out.append({
        "block_number": block_number,
        "transaction_hash": tx_hash,
        "transaction_index": tx_index,
        "from_address": normalize_address(call.get("from")),
        "to_address": normalize_address(call.get("to")),
        "value": hex_to_int(call.get("value")),
        "input": call.get("input"),
        "output": call.get("output"),
        "trace_type": trace_type,
        "call_type": call_type,
        "reward_type": None,
        "gas": hex_to_int(call.get("gas")),
        "gas_used": hex_to_int(call.get("gasUsed")),
        "subtraces": len(children),
        "trace_address": address,
        "error": call.get("error") or None,
        "status": None,
        "trace_id": None,
        "block_hash": None,
    })
    for i, child in enumerate(children):
        _geth_call_to_rows(block_number, tx_index, tx_hash, child, [*address, i], out)


def geth_traces_to_rows(
    block_number: int,
    tx_traces: Sequence[Mapping[str, Any]],
    tx_hashes: Sequence[str | None] | None = None,
    block_hash: str | None = None,
) -> list[Row]:
    """``debug_traceBlockByNumber`` (callTracer) result -> ``traces`` rows, depth first.

    ``tx_traces`` items are ``{"result": call}`` (or bare calls, as in ethereum-etl's
    ``geth_traces.json``); ``tx_hashes`` gives each transaction's hash by position
    when the node does not send ``txHash``.
    """
    rows: list[Row] = []
    for index, item in enumerate(tx_traces):
        call = item.get("result", item) if "result" in item or "txHash" in item else item
        tx_hash = item.get("txHash") or (tx_hashes[index] if tx_hashes and index < len(tx_hashes) else None)
        _geth_call_to_rows(block_number, index, tx_hash, call or {}, [], rows)
    for row in rows:
        row["block_hash"] = block_hash
    finish_traces(rows)
    return rows


def finish_traces(rows: list[Row]) -> None:
    """Set ``status`` and ``trace_id`` and render ``trace_address``, as ethereum-etl does.

    status: 0 when the trace has an error or any ancestor in its transaction failed
    (trace_status_calculator); trace_id: ``<type>_<tx hash>_<address joined by _>``,
    or ``<type>_<block>_<index>`` for block-scoped traces such as rewards
    (trace_id_calculator). trace_address becomes the comma-joined text of the CSV export,
    and NULL (None) for a top-level or block-scoped trace, whose export cell is empty:
    the etl import reads that empty cell (or ``[]`` in JSON) as NULL, so both sources
    store the same value.
    """
    for row in rows:
        row["status"] = 0 if row.get("error") else 1
    by_tx: dict[str, list[Row]] = defaultdict(list)
    block_scoped: dict[tuple[Any, Any], list[Row]] = defaultdict(list)
    for row in rows:
        if row.get("transaction_hash"):
            by_tx[row["transaction_hash"]].append(row)
        else:
            block_scoped[(row["block_number"], row["trace_type"])].append(row)
    for tx_rows in by_tx.values():
        ordered = sorted(tx_rows, key=lambda r: len(r["trace_address"]))
        status = {tuple(r["trace_address"]): r for r in ordered}
        for row in ordered:
            addr = row["trace_address"]
            if addr:
                parent = status.get(tuple(addr[:-1]))
                if parent is not None and parent["status"] == 0:
                    row["status"] = 0
            row["trace_id"] = f"{row['trace_type']}_{row['transaction_hash']}_{trace_address_to_str(addr, '_')}"
    for (block_number, trace_type), group in block_scoped.items():
        group.sort(key=lambda r: (r["reward_type"] or "", r["from_address"] or "", r["to_address"] or "", r["value"] or 0))
        for index, row in enumerate(group):
            row["trace_id"] = f"{trace_type}_{block_number}_{index}"
    for row in rows:
        if isinstance(row["trace_address"], list):
            row["trace_address"] = trace_address_to_str(row["trace_address"]) or None


# -- rows -> Arrow ------------------------------------------------------------------------------
_ARROW_TYPES = {
    "BIGINT": pa.int64(),
    "VARCHAR": pa.string(),
    "TIMESTAMP": pa.int64(),  # epoch seconds; the ledger converts
    "BOOLEAN": pa.bool_(),
    "VARCHAR[]": pa.list_(pa.string()),
}


def rows_to_arrow(table: str, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Rows of an Ethereum table -> an Arrow table with every canonical column.

    Amounts (HUGEINT) go as int64 when they all fit, else as decimal text that the
    ledger casts; values beyond HUGEINT go to ``<col>_overflow`` (exact digits).
    """
    columns = ETHEREUM_TABLES[table]
    names = {name for name, _ in columns}
    arrays: dict[str, pa.Array] = {}
    for name, sql_type in columns:
        base = sql_type.split(" NOT NULL")[0].strip()
        if name.endswith("_overflow") and name[: -len("_overflow")] in names:
            continue  # filled with its amount column
        values = [r.get(name) for r in rows]
        if base == "HUGEINT":
            try:
                arrays[name] = pa.array(values, pa.int64())
                if f"{name}_overflow" in names:
                    arrays[f"{name}_overflow"] = pa.nulls(len(values), pa.string())
                continue
            except (OverflowError, pa.ArrowInvalid):
                pass
            fits: list[str | None] = []
            over: list[str | None] = []
            for v in values:
                small, big = split_amount(v)
                fits.append(None if small is None else str(small))
                over.append(big)
            if any(o is not None for o in over) and f"{name}_overflow" not in names:
                raise ValueError(f"{table}.{name}: amount beyond HUGEINT and no overflow column")
            arrays[name] = pa.array(fits, pa.string())
            if f"{name}_overflow" in names:
                arrays[f"{name}_overflow"] = pa.array(over, pa.string())
        else:
            arrays[name] = pa.array(values, _ARROW_TYPES[base])
    return pa.table(arrays)
