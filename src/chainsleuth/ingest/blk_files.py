"""Ingest Bitcoin-family chains from raw ``blk*.dat`` files (no node needed).

File format (Bitcoin Core ``node/blockstorage.cpp``): records of network magic,
4-byte little-endian size and the serialised block; preallocated files end in
zero padding. Core >= 28 XORs the files with the 8-byte key in
``blocks/xor.dat`` (byte ``i`` of a file with ``key[i % 8]``).

Blocks in the files are out of height order. They are linked by their
previous-block hash; a chain's first block gets its height from the network's
genesis hash, from a parent already in the store, from BIP34 (the height the
coinbase of a version >= 2 block starts with), or from ``first_height``.

Two passes: the first reads every frame, hashes headers and validates each
block's structure (so a corrupt file fails before anything is written); the
second decodes contiguous height runs and writes each through
``Ledger.write_batch`` (atomic per batch: idempotent, resumable).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import BlockFileError, ConfigError
from ..store import Ledger
from . import _blk_kernels as kern
from .base import IngestResult, NullProgress, Progress
from .bitcoin_script import (
    base58check_encode,
    classify_script,
    hash160,
    network_by_magic,
    network_params,
    nonstandard_address,
)

BATCH_TRANSACTIONS = 100_000  # rows per write_batch: bounded memory, frequent commits
_ZERO_HASH = "0" * 64


@dataclass
class BlockRef:
    path: Path
    offset: int  # file offset of the block (after magic and size)
    size: int
    hash: str
    prev: str
    version: int
    bip34_height: int | None
    height: int = -1


def default_chain(network: str) -> str:
    name = network_params(network).name
    return {"mainnet": "bitcoin", "litecoin": "litecoin"}.get(name, f"bitcoin_{name}")


def read_xor_key(path: Path) -> bytes:
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read XOR key {path}: {exc.strerror}") from exc
    if len(key) != 8:
        raise ConfigError(f"XOR key {path} has {len(key)} bytes, expected 8")
    return key


def _unxor(data: bytes, key: bytes | None, offset: int) -> np.ndarray:
    arr = np.frombuffer(data, dtype=np.uint8)
    if key is None or not any(key):
        return arr
    k = np.frombuffer(key, dtype=np.uint8)
    k = np.roll(k, -(offset % 8))
    return arr ^ np.resize(k, arr.shape[0])


def _read(path: Path, offset: int = 0, size: int = -1) -> bytes:
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            return fh.read(size)
    except OSError as exc:
        raise BlockFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def _varint_py(buf: np.ndarray, pos: int) -> tuple[int, int]:
    # Plain Python: a handful of calls per block, and no JIT dispatch on the scan path.
    b = int(buf[pos])
    if b < 0xFD:
        return b, pos + 1
    width = 2 if b == 0xFD else 4 if b == 0xFE else 8
    return int.from_bytes(buf[pos + 1 : pos + 1 + width].tobytes(), "little"), pos + 1 + width


def _bip34_height(buf: np.ndarray, start: int, end: int) -> int | None:
    """The height a version >= 2 block's coinbase scriptSig starts with (BIP34)."""
    try:
        pos = start + 80
        _, pos = _varint_py(buf, pos)
        pos += 4
        if buf[pos] == 0:
            pos += 2
        _, pos = _varint_py(buf, pos)
        pos += 36
        slen, pos = _varint_py(buf, pos)
        if slen < 1 or pos >= end:
            return None
        op = int(buf[pos])
        if 0x51 <= op <= 0x60:  # small heights are pushed as OP_1..OP_16 (regtest)
            return op - 0x50
        if 1 <= op <= 8 and op < slen and pos + 1 + op <= end:
            raw = bytes(buf[pos + 1 : pos + 1 + op])
            if raw[-1] & 0x80:
                return None
            return int.from_bytes(raw, "little")
    except IndexError:
        return None
    return None


def _scan_file(path: Path, key: bytes | None, magic: bytes, network: str) -> list[BlockRef]:
    """Frames of one file, headers hashed, every block's structure validated."""
    data = _read(path)
    buf = _unxor(data, key, 0)
    # Core preallocates files with plain zeros written around its XOR layer, so a
    # scrambled file's unused tail is zero on disk (the key pattern once unscrambled);
    # a copy scrambled as a whole has it zero after unscrambling. Both are padding.
    on_disk = np.frombuffer(data, dtype=np.uint8)
    refs: list[BlockRef] = []
    n = buf.shape[0]
    pos = 0
    while pos < n:
        if n - pos < 8:
            if not buf[pos:].any() or not on_disk[pos:].any():
                break
            raise BlockFileError(f"{path}: truncated frame header at byte {pos}")
        head = buf[pos : pos + 4].tobytes()
        if head == b"\0\0\0\0" or (head != magic and not on_disk[pos : pos + 4].any()):
            tail = buf[pos:] if head == b"\0\0\0\0" else on_disk[pos:]
            if tail.any():
                nz = pos + int(np.flatnonzero(tail)[0])
                raise BlockFileError(f"{path}: unexpected data after zero padding at byte {nz}")
            break  # preallocated tail
        if head != magic:
            other = network_by_magic(head)
            hint = (f"it is the {other} magic: pass --network {other}" if other
                    else "not a known network's magic (not a blk file, or XOR-scrambled without its xor.dat?)")
            raise BlockFileError(
                f"{path}: wrong magic {head.hex()} at byte {pos} for {network} ({magic.hex()}); {hint}"
            )
        size = int.from_bytes(buf[pos + 4 : pos + 8].tobytes(), "little")
        start = pos + 8
        if size < 81 or start + size > n:
            raise BlockFileError(
                f"{path}: truncated block at byte {pos}: frame says {size} bytes, "
                f"{n - start} left in the file"
            )
        header = buf[start : start + 80].tobytes()
        version = int.from_bytes(header[:4], "little", signed=True)
        refs.append(BlockRef(
            path, start, size,
            hashlib.sha256(hashlib.sha256(header).digest()).digest()[::-1].hex(),
            header[4:36][::-1].hex(), version,
            _bip34_height(buf, start, start + size) if version >= 2 else None,
        ))
        pos = start + size
    if refs:
        _validate(path, buf, np.array([r.offset for r in refs], np.int64),
                  np.array([r.offset + r.size for r in refs], np.int64))
    return refs


def _validate(path: Path, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
    counts = np.zeros(4, np.int64)
    e = np.zeros(0, np.int64)
    err, where = kern.scan_blocks(buf, starts, ends, False, counts, e, *([e] * 21))
    if err:
        raise BlockFileError(f"{path}: {kern.ERR_MESSAGES[err]} at byte {where}")


# -- decoding -------------------------------------------------------------------------


def _strings(chars: np.ndarray, offsets: np.ndarray) -> pa.Array:
    """Arrow ``string`` (``large_string`` beyond 2 GiB of text) over a char buffer."""
    n = len(offsets) - 1
    if offsets[-1] < 2**31:
        return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(chars))
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets.astype(np.int64)), pa.py_buffer(chars))


def _fixed_strings(chars: np.ndarray, width: int, n: int) -> pa.Array:
    return _strings(chars, np.arange(n + 1, dtype=np.int64) * width)


@dataclass
class ParsedBlocks:
    """Structure of a batch of blocks: what a deserialiser yields, as columns.

    Scripts, prevout hashes and witness items are ``(offset, length)`` pairs into
    the batch buffer; ``txid_raw`` is the double SHA-256 of each transaction
    (internal byte order, ``nt * 32`` bytes).
    """

    blk_ntx: np.ndarray
    tx_start: np.ndarray
    tx_end: np.ndarray
    tx_wit: np.ndarray  # start of the witness section, 0 for a legacy transaction
    tx_version: np.ndarray
    tx_locktime: np.ndarray
    tx_in_first: np.ndarray
    tx_nin: np.ndarray
    tx_out_first: np.ndarray
    tx_nout: np.ndarray
    in_prev: np.ndarray
    in_vout: np.ndarray
    in_soff: np.ndarray
    in_slen: np.ndarray
    in_seq: np.ndarray
    in_wfirst: np.ndarray
    in_wcount: np.ndarray
    out_value: np.ndarray
    out_soff: np.ndarray
    out_slen: np.ndarray
    wit_off: np.ndarray
    wit_len: np.ndarray
    txid_raw: np.ndarray


def parse_blocks(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> ParsedBlocks:
    """Walk the blocks ``buf[starts[i]:ends[i]]``: transaction structure and txids."""
    nb = starts.shape[0]
    counts = np.zeros(4, np.int64)
    e = np.zeros(0, np.int64)
    err, where = kern.scan_blocks(buf, starts, ends, False, counts, e, *([e] * 21))
    if err:
        raise BlockFileError(f"{kern.ERR_MESSAGES[err]} at batch byte {where}")
    nt, ni, no, nw = (int(c) for c in counts)
    blk_ntx = np.zeros(nb, np.int64)
    cols = {f.name: np.empty(n, np.int64) for f, n in zip(
        fields(ParsedBlocks)[1:-1], [nt] * 9 + [ni] * 7 + [no] * 3 + [nw] * 2, strict=True)}
    kern.scan_blocks(buf, starts, ends, True, counts, blk_ntx, *cols.values())
    txid_raw = kern.txids(buf, cols["tx_start"], cols["tx_end"], cols["tx_wit"])
    return ParsedBlocks(blk_ntx=blk_ntx, txid_raw=txid_raw, **cols)


def decode_blocks(
    buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, heights: Sequence[int], network: str
) -> dict[str, pa.Table]:
    """Canonical rows (blocks, transactions, inputs, outputs) of the blocks in ``buf``.

    Inputs spending outputs of the same batch are resolved here; the rest keep
    NULL value/type/addresses for the store to resolve.
    """
    params = network_params(network)
    buf = np.ascontiguousarray(buf)
    nb = starts.shape[0]
    pb = parse_blocks(buf, starts, ends)
    blk_ntx = pb.blk_ntx
    nt, ni, no = pb.tx_start.shape[0], pb.in_prev.shape[0], pb.out_value.shape[0]
    tx_start, tx_end, tx_wit = pb.tx_start, pb.tx_end, pb.tx_wit
    tx_in_first, tx_nin, tx_out_first, tx_nout = pb.tx_in_first, pb.tx_nin, pb.tx_out_first, pb.tx_nout
    in_soff, in_slen = pb.in_soff, pb.in_slen
    out_value, out_soff, out_slen = pb.out_value, pb.out_soff, pb.out_slen
    txid_raw = pb.txid_raw
    i64 = np.int64

    # Block header fields.
    mv = memoryview(buf.data)  # (contiguous uint8: header slices without copying the batch)
    hdr = np.stack([buf[s : s + 80] for s in starts]) if nb else np.zeros((0, 80), np.uint8)
    block_hash = [hashlib.sha256(hashlib.sha256(mv[s : s + 80]).digest()).digest()[::-1].hex() for s in starts]
    u32 = hdr[:, 68:80].copy().view("<u4")
    parent_hex = [bytes(h[4:36][::-1]).hex() for h in hdr]

    # Transactions: ids, sizes.
    tx_block = np.repeat(np.arange(nb, dtype=i64), blk_ntx)
    first_tx = np.zeros(nb + 1, i64)
    np.cumsum(blk_ntx, out=first_tx[1:])
    size = tx_end - tx_start
    stripped = np.where(tx_wit > 0, tx_wit - tx_start - 2 + 4, size)
    weight = stripped * 3 + size
    txid_chars, _ = kern.hex_slices(txid_raw, np.arange(nt, dtype=i64) * 32, np.full(nt, 32, i64), True)
    txid_hex = _fixed_strings(txid_chars, 64, nt)
    is_coinbase = np.zeros(nt, bool)
    is_coinbase[first_tx[:-1][blk_ntx > 0]] = True
    bh_chars = np.frombuffer("".join(block_hash).encode(), np.uint8).copy()

    # Outputs: values, scripts, types, addresses.
    out_tx = np.repeat(np.arange(nt, dtype=i64), tx_nout)
    out_index = np.arange(no, dtype=i64) - tx_out_first[out_tx]
    code, poff, plen, wver = kern.classify_outputs(buf, out_soff, out_slen)
    hrp = np.frombuffer(params.hrp.encode(), np.uint8).copy()
    slots, alen = kern.encode_addresses(buf, code, poff, plen, wver, params.p2pkh_version,
                                        params.p2sh_version, hrp)
    no_addr = code == kern.T_NULLDATA
    addr_count = (~no_addr).astype(i64)
    extra_first = np.full(no, -1, i64)
    no_req = no_addr | (code == kern.T_NONSTANDARD)
    req_values = (~no_req).astype(i64)
    type_codes = code.astype(np.int32)
    extra: list[bytes] = []
    special = np.flatnonzero((code == kern.T_PUBKEY) | (code == kern.T_MULTISIG) | (code == kern.T_NONSTANDARD))
    for i in special.tolist():
        script = buf[out_soff[i] : out_soff[i] + out_slen[i]].tobytes()
        if code[i] == kern.T_PUBKEY:
            addrs: tuple[str, ...] = (_p2pk_address(script[1:-1], params.p2pkh_version),)
        elif code[i] == kern.T_NONSTANDARD:
            addrs = (nonstandard_address(script),)
        else:
            typ, req, addrs = classify_script(script, params.name)
            if typ != "multisig":
                type_codes[i] = kern.T_NONSTANDARD
                no_req[i] = True
            else:
                no_req[i] = req is None
                req_values[i] = req or 0
        extra_first[i] = len(extra)
        addr_count[i] = len(addrs)
        extra.extend(a.encode() for a in addrs)
    req_sigs = pa.array(req_values, mask=no_req)
    extra_off = np.zeros(len(extra) + 1, i64)
    np.cumsum([len(x) for x in extra], out=extra_off[1:])
    extra_buf = np.frombuffer(b"".join(extra), np.uint8) if extra else np.zeros(0, np.uint8)
    chars, val_off, list_off = kern.assemble_lists(slots, alen, addr_count, extra_buf, extra_off, extra_first)
    addresses = pa.ListArray.from_arrays(pa.array(list_off, pa.int32()), _strings(chars, val_off))
    type_names = pa.array(kern.TYPE_NAMES, pa.string())
    out_types = type_names.take(pa.array(type_codes))
    out_script_hex = _strings(*kern.hex_slices(buf, out_soff, out_slen, False))
    out_asm = _strings(*kern.asm_slices(buf, out_soff, out_slen, False, kern.OPNAME_BUF, kern.OPNAME_OFF))

    # Inputs (the coinbase input is not a row: bitcoin-etl puts it in blocks.coinbase_param).
    in_tx = np.repeat(np.arange(nt, dtype=i64), tx_nin)
    cb_in = tx_in_first[is_coinbase]
    coinbase_param = _strings(*kern.hex_slices(buf, in_soff[cb_in], in_slen[cb_in], False))
    keep = np.ones(ni, bool)
    keep[cb_in] = False
    keep_idx = np.flatnonzero(keep)
    in_tx_k = in_tx[keep_idx]
    nk = keep_idx.shape[0]
    in_index = (np.arange(ni, dtype=i64) - tx_in_first[in_tx])[keep_idx]
    in_prev_k = pb.in_prev[keep_idx]
    prev_hex = _fixed_strings(kern.hex_slices(buf, in_prev_k, np.full(nk, 32, i64), True)[0], 64, nk)
    vout = pb.in_vout[keep_idx]
    src_out, in_value, unresolved_per_tx, sum_per_tx = kern.link_inputs(
        buf, txid_raw, in_prev_k, vout, in_tx_k, tx_nout, tx_out_first, out_value)
    found = src_out >= 0
    take = pa.array(src_out, mask=~found)
    # Per-transaction totals; input_value/fee only when every input was resolved here.
    out_tx_end = tx_out_first + tx_nout
    cs_out = np.zeros(no + 1, i64)
    np.cumsum(out_value, out=cs_out[1:])
    total_out = cs_out[out_tx_end] - cs_out[tx_out_first]
    input_value = np.where(is_coinbase, 0, sum_per_tx)
    fee = np.where(is_coinbase, 0, sum_per_tx - total_out)
    tx_unknown = ~((unresolved_per_tx == 0) | is_coinbase)

    # Witness stacks: list<string> per input, NULL when the input has none (as Core's RPC).
    wcount = pb.in_wcount[keep_idx]
    wfirst = pb.in_wfirst[keep_idx]
    woffs = np.zeros(nk + 1, np.int32)
    np.cumsum(wcount, out=woffs[1:])
    widx = np.repeat(wfirst - woffs[:-1], wcount) + np.arange(int(woffs[-1]), dtype=i64)
    witness = pa.ListArray.from_arrays(
        pa.array(woffs, pa.int32()),
        _strings(*kern.hex_slices(buf, pb.wit_off[widx], pb.wit_len[widx], False)),
        mask=pa.array(wcount == 0),
    )

    heights_arr = np.asarray(heights, i64)
    timestamps = u32[:, 0].astype(i64)
    bh = pa.array(block_hash, pa.string())
    blocks = pa.table({
        "hash": bh,
        "size": (ends - starts).astype(i64),
        "stripped_size": None,  # filled below
        "weight": None,
        "number": heights_arr,
        "version": hdr[:, :4].copy().view("<i4")[:, 0].astype(i64),
        "merkle_root": [bytes(h[36:68][::-1]).hex() for h in hdr],
        "timestamp": timestamps,
        "nonce": [format(int(x), "x") for x in u32[:, 2]],
        "bits": [format(int(x), "08x") for x in u32[:, 1]],
        "coinbase_param": _take_per_block(coinbase_param, blk_ntx),
        "transaction_count": blk_ntx,
        "previous_block_hash": [None if p == _ZERO_HASH else p for p in parent_hex],
    } | _block_sizes(starts, ends, blk_ntx, first_tx, size, stripped))
    tx_ts = timestamps[tx_block]
    tx_h = heights_arr[tx_block]
    out_block = tx_block[out_tx]
    in_block = tx_block[in_tx_k]
    transactions = pa.table({
        "hash": txid_hex,
        "size": size,
        "virtual_size": (weight + 3) // 4,
        "version": pb.tx_version,
        "lock_time": pb.tx_locktime,
        "block_hash": _fixed_strings(kern.gather_fixed(bh_chars, 64, tx_block), 64, nt),
        "block_number": tx_h,
        "block_timestamp": tx_ts,
        "index": np.arange(nt, dtype=i64) - first_tx[tx_block],
        "is_coinbase": is_coinbase,
        "input_count": np.where(is_coinbase, 0, tx_nin),
        "output_count": tx_nout,
        "input_value": pa.array(input_value, mask=tx_unknown),
        "output_value": total_out,
        "fee": pa.array(fee, mask=tx_unknown),
    })
    outputs = pa.table({
        "transaction_hash": _fixed_strings(kern.gather_fixed(txid_chars, 64, out_tx), 64, no),
        "block_hash": _fixed_strings(kern.gather_fixed(bh_chars, 64, out_block), 64, no),
        "block_number": heights_arr[out_block],
        "block_timestamp": timestamps[out_block],
        "index": out_index,
        "script_asm": out_asm,
        "script_hex": out_script_hex,
        "required_signatures": req_sigs,
        "type": out_types,
        "addresses": addresses,
        "value": out_value,
    })
    in_soff_k = in_soff[keep_idx]
    in_slen_k = in_slen[keep_idx]
    in_asm = _strings(*kern.asm_slices(buf, in_soff_k, in_slen_k, True, kern.OPNAME_BUF, kern.OPNAME_OFF))
    inputs = pa.table({
        "transaction_hash": _fixed_strings(kern.gather_fixed(txid_chars, 64, in_tx_k), 64, nk),
        "block_hash": _fixed_strings(kern.gather_fixed(bh_chars, 64, in_block), 64, nk),
        "block_number": heights_arr[in_block],
        "block_timestamp": timestamps[in_block],
        "index": in_index,
        "spent_transaction_hash": prev_hex,
        "spent_output_index": vout,
        "script_asm": in_asm,
        "script_hex": _strings(*kern.hex_slices(buf, in_soff_k, in_slen_k, False)),
        "sequence": pb.in_seq[keep_idx],
        "witness": witness,
        "required_signatures": req_sigs.take(take),
        "type": out_types.take(take),
        "addresses": addresses.take(take),
        "value": pa.array(in_value, mask=~found),
    })
    return {"blocks": blocks, "transactions": transactions, "inputs": inputs, "outputs": outputs}


def _p2pk_address(pubkey: bytes, version: int) -> str:
    return _p2pk_cached(pubkey, version)


_P2PK_CACHE: dict[tuple[bytes, int], str] = {}


def _p2pk_cached(pubkey: bytes, version: int) -> str:
    # Early coinbases reuse few keys rarely; the cache matters for the heavy reusers.
    key = (pubkey, version)
    addr = _P2PK_CACHE.get(key)
    if addr is None:
        if len(_P2PK_CACHE) > 1 << 16:
            _P2PK_CACHE.clear()
        addr = _P2PK_CACHE[key] = base58check_encode(version, hash160(pubkey))
    return addr


def _take_per_block(coinbase_param: pa.Array, blk_ntx: np.ndarray) -> pa.Array:
    # One coinbase per block that has transactions (all real blocks do).
    idx = np.cumsum(blk_ntx > 0) - 1
    return coinbase_param.take(pa.array(idx, mask=blk_ntx == 0))


def _block_sizes(starts: np.ndarray, ends: np.ndarray, blk_ntx: np.ndarray, first_tx: np.ndarray,
                 size: np.ndarray, stripped: np.ndarray) -> dict[str, np.ndarray]:
    block_size = ends - starts
    wit_bytes = np.zeros(len(starts), np.int64)
    if len(size):
        per = size - stripped
        cs = np.zeros(len(per) + 1, np.int64)
        np.cumsum(per, out=cs[1:])
        wit_bytes = cs[first_tx[1:]] - cs[first_tx[:-1]]
    block_stripped = block_size - wit_bytes
    return {"stripped_size": block_stripped, "weight": block_stripped * 3 + block_size}


# -- ordering and heights -------------------------------------------------------------


def _assign_heights(refs: list[BlockRef], ledger: Ledger, chain: str, genesis: str,
                    first_height: int | None, progress: Progress) -> list[BlockRef]:
    by_hash: dict[str, BlockRef] = {}
    for r in refs:
        by_hash.setdefault(r.hash, r)
    children: dict[str, list[BlockRef]] = {}
    roots: list[BlockRef] = []
    for r in by_hash.values():
        if r.prev in by_hash:
            children.setdefault(r.prev, []).append(r)
        else:
            roots.append(r)
    stored_parents = _stored_heights(ledger, chain, [r.prev for r in roots])
    undetermined = []
    for r in roots:
        if r.hash == genesis:
            r.height = 0
        elif r.prev in stored_parents:
            r.height = stored_parents[r.prev] + 1
        elif r.bip34_height is not None:
            r.height = r.bip34_height
        else:
            undetermined.append(r)
    if undetermined:
        if first_height is None or len(undetermined) > 1:
            names = ", ".join(f"{r.hash} ({r.path.name} byte {r.offset - 8})" for r in undetermined[:3])
            more = "" if len(undetermined) <= 3 else f" and {len(undetermined) - 3} more"
            raise ConfigError(
                f"cannot tell the height of {len(undetermined)} block(s) whose parent is neither in the "
                f"files nor in the store and which carry no BIP34 height: {names}{more}. "
                + ("Pass --height for the first of them (only one such block can take it)."
                   if first_height is None else "--height can set only one of them; ingest them separately.")
            )
        undetermined[0].height = first_height
    if first_height is not None and not undetermined:
        progress.message("--height ignored: every chain start has a known height")

    # Walk each chain; at a fork keep the branch with the most blocks (the stale one is reported).
    depth: dict[str, int] = {}
    ordered: list[BlockRef] = []
    for root in roots:
        stack = [root]
        post: list[BlockRef] = []
        while stack:  # iterative DFS for depths
            node = stack.pop()
            post.append(node)
            stack.extend(children.get(node.hash, []))
        for node in reversed(post):
            kids = children.get(node.hash, [])
            depth[node.hash] = 1 + max((depth[k.hash] for k in kids), default=0)
        node = root
        while True:
            ordered.append(node)
            kids = children.get(node.hash, [])
            if not kids:
                break
            best = max(kids, key=lambda k: depth[k.hash])
            for k in kids:
                if k is not best:
                    progress.message(f"stale branch skipped at height {node.height + 1}: {k.hash}")
            best.height = node.height + 1
            node = best
    ordered.sort(key=lambda r: r.height)
    return ordered


def _stored_heights(ledger: Ledger, chain: str, hashes: list[str]) -> dict[str, int]:
    if not hashes:
        return {}
    rows = ledger.con.execute(
        f'SELECT hash, number FROM "{chain}".blocks WHERE hash IN (SELECT unnest(?::VARCHAR[]))',
        [hashes],
    ).fetchall()
    return {str(h): int(n) for h, n in rows}


# -- the ingest -----------------------------------------------------------------------


def ingest_blk_files(
    ledger: Ledger,
    paths: Sequence[Path | str],
    *,
    network: str = "mainnet",
    chain: str | None = None,
    xor_key_path: Path | str | None = None,
    first_height: int | None = None,
    progress: Progress | None = None,
    batch_transactions: int = BATCH_TRANSACTIONS,
) -> IngestResult:
    """Ingest raw blk files into ``chain`` (default ``bitcoin`` / ``bitcoin_<network>``)."""
    progress = progress or NullProgress()
    params = network_params(network)
    chain = chain or default_chain(params.name)
    if not paths:
        raise ConfigError("no blk files given")
    files = [Path(p) for p in paths]
    explicit_key = read_xor_key(Path(xor_key_path)) if xor_key_path is not None else None

    keys: dict[Path, bytes | None] = {}
    refs: list[BlockRef] = []
    progress.message(f"scanning {len(files)} file(s)")
    for f in files:
        if not f.is_file():
            raise BlockFileError(f"{f}: no such file")
        key = explicit_key
        if key is None and (f.parent / "xor.dat").is_file():
            key = read_xor_key(f.parent / "xor.dat")
        keys[f] = key
        refs.extend(_scan_file(f, key, params.magic, params.name))

    ledger.ensure_chain(chain, "bitcoin", network=params.name, native_asset=params.native_asset)
    result = IngestResult(chain=chain)
    stored = ledger.has_block_hashes(chain, [r.hash for r in refs])
    ordered = _assign_heights(refs, ledger, chain, params.genesis_hash, first_height, progress)
    todo = [r for r in ordered if r.hash not in stored]
    result.skipped_blocks = len(ordered) - len(todo)
    progress.start(f"blk files -> {chain}", len(todo))

    batch: list[BlockRef] = []
    est_tx = 0
    for r in todo:
        if batch and (r.height != batch[-1].height + 1 or est_tx >= batch_transactions):
            _write(ledger, chain, batch, keys, params.name, result, progress)
            batch, est_tx = [], 0
        batch.append(r)
        est_tx += max(1, r.size // 400)  # ~400 bytes per transaction on average
    if batch:
        _write(ledger, chain, batch, keys, params.name, result, progress)
    return result.finish()


def _write(ledger: Ledger, chain: str, batch: list[BlockRef], keys: dict[Path, bytes | None],
           network: str, result: IngestResult, progress: Progress) -> None:
    parts = [_unxor(_read(r.path, r.offset, r.size), keys[r.path], r.offset) for r in batch]
    buf = np.concatenate(parts) if len(parts) > 1 else parts[0].copy()
    sizes = np.array([r.size for r in batch], np.int64)
    ends = np.cumsum(sizes)
    starts = ends - sizes
    tables = decode_blocks(buf, starts, ends, [r.height for r in batch], network)
    written = ledger.write_batch(chain, tables, (batch[0].height, batch[-1].height))
    ntx = tables["transactions"].num_rows
    result.add_rows(written)
    result.blocks += len(batch)
    result.transactions += ntx
    lo, hi = batch[0].height, batch[-1].height
    result.first_block = lo if result.first_block is None else min(result.first_block, lo)
    result.last_block = hi if result.last_block is None else max(result.last_block, hi)
    progress.advance(len(batch), ntx)
