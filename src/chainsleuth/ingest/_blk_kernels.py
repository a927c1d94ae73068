# ruff: noqa: SIM103
# mypy: ignore-errors
# (Numba kernels: untyped by design; the typed API is blk_files.decode_blocks.)
"""Numba kernels for raw block parsing: the hot loops of ``blk_files``.

Everything here works on a NumPy ``uint8`` view of the raw bytes and returns
offset arrays or character buffers, so that Python never loops per input or
output: Arrow string columns are built straight from the buffers.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir as _ir
from numba import njit
from numba.core import cgutils as _cgutils
from numba.core import types as _types
from numba.extending import intrinsic as _intrinsic

from .bitcoin_script import OP_NAMES

# Error codes returned by scan_blocks (no exceptions inside Numba).
ERR_OK, ERR_TRUNCATED, ERR_TRAILING, ERR_BAD_FLAG = 0, 1, 2, 3
ERR_MESSAGES = {
    ERR_TRUNCATED: "block data ends inside a transaction (corrupt or truncated block)",
    ERR_TRAILING: "block size does not match its transactions (bytes left over)",
    ERR_BAD_FLAG: "unknown transaction serialisation flag",
}

# Output script type codes (see TYPE_NAMES).
T_NONSTANDARD, T_PUBKEY, T_PUBKEYHASH, T_SCRIPTHASH, T_MULTISIG, T_NULLDATA = 0, 1, 2, 3, 4, 5
T_WPKH, T_WSH, T_TAPROOT, T_WUNKNOWN, T_ANCHOR = 6, 7, 8, 9, 10
TYPE_NAMES = [
    "nonstandard", "pubkey", "pubkeyhash", "scripthash", "multisig", "nulldata",
    "witness_v0_keyhash", "witness_v0_scripthash", "witness_v1_taproot", "witness_unknown", "anchor",
]

_NAME_BYTES = [n.encode() for n in OP_NAMES]
OPNAME_BUF = np.frombuffer(b"".join(_NAME_BYTES), dtype=np.uint8).copy()
OPNAME_OFF = np.zeros(257, dtype=np.int64)
OPNAME_OFF[1:] = np.cumsum([len(n) for n in _NAME_BYTES])
HEX_CHARS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8).copy()
B58_CHARS = np.frombuffer(b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz", dtype=np.uint8).copy()
BECH32_CHARS = np.frombuffer(b"qpzry9x8gf2tvdw0s3jn54khce6mua7l", dtype=np.uint8).copy()
ADDR_WIDTH = 96

_SHA_K = np.array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
], dtype=np.int64)
_SHA_H0 = np.array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19], dtype=np.int64)
_M32 = 0xFFFFFFFF


# -- SHA-256 ------------------------------------------------------------------------
#
# txids hash every byte of every transaction twice. OpenSSL's one-shot ``SHA256``
# (SHA-NI/AVX2 code paths) is called straight from the Numba loops, so there is no
# Python call per transaction. The symbol is bound by name when the kernels are
# linked, which keeps ``cache=True`` valid. Where libcrypto cannot be loaded, a
# Numba SHA-256 compiled as a C callback is registered under the same symbol.


@njit(cache=True, nogil=True)
def _rotr(x, n):
    return ((x >> n) | (x << (32 - n))) & _M32


@njit(cache=True, nogil=True)
def _sha256_compress(state, msg, off, w):
    for i in range(16):
        p = off + 4 * i
        w[i] = (np.int64(msg[p]) << 24) | (np.int64(msg[p + 1]) << 16) | (np.int64(msg[p + 2]) << 8) \
            | np.int64(msg[p + 3])
    for i in range(16, 64):
        s0 = _rotr(w[i - 15], 7) ^ _rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
        s1 = _rotr(w[i - 2], 17) ^ _rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) & _M32
    a, b, c, d, e, f, g, h = state[0], state[1], state[2], state[3], state[4], state[5], state[6], state[7]
    for i in range(64):
        sig1 = _rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)
        ch = (e & f) ^ ((~e & _M32) & g)
        t1 = (h + sig1 + ch + _SHA_K[i] + w[i]) & _M32
        sig0 = _rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)
        maj = (a & b) ^ (a & c) ^ (b & c)
        t2 = (sig0 + maj) & _M32
        h, g, f, e, d, c, b, a = g, f, e, (d + t1) & _M32, c, b, a, (t1 + t2) & _M32
    state[0] = (state[0] + a) & _M32
    state[1] = (state[1] + b) & _M32
    state[2] = (state[2] + c) & _M32
    state[3] = (state[3] + d) & _M32
    state[4] = (state[4] + e) & _M32
    state[5] = (state[5] + f) & _M32
    state[6] = (state[6] + g) & _M32
    state[7] = (state[7] + h) & _M32


CTX_BYTES = 256  # >= sizeof(SHA256_CTX) (112) and the fallback's state + pending block


@njit(cache=True, nogil=True)
def _ctx_update(ctx, msg, length):
    """Fallback SHA256_Update. ``ctx``: bytes 0..63 the state (int64 words), 64 the
    length so far, 72 the bytes pending, 128..191 the pending block."""
    words = ctx[:80].view(np.int64)
    state = words[:8]
    block = ctx[128:192]
    w = np.empty(64, dtype=np.int64)
    fill = words[9]
    k = 0
    if fill:
        while k < length and fill < 64:
            block[fill] = msg[k]
            fill += 1
            k += 1
        if fill == 64:
            _sha256_compress(state, block, 0, w)
            fill = 0
    while length - k >= 64:
        _sha256_compress(state, msg, k, w)
        k += 64
    while k < length:
        block[fill] = msg[k]
        fill += 1
        k += 1
    words[8] += length
    words[9] = fill


@njit(cache=True, nogil=True)
def _ctx_final(ctx, out):
    words = ctx[:80].view(np.int64)
    total = words[8]
    pad = np.zeros(72, dtype=np.uint8)
    pad[0] = 0x80
    npad = (55 - total) % 64 + 1
    bits = total * 8
    for k in range(8):
        pad[npad + 7 - k] = (bits >> (8 * k)) & 0xFF
    _ctx_update(ctx, pad, npad + 8)
    for i in range(8):
        v = words[i]
        out[4 * i] = (v >> 24) & 0xFF
        out[4 * i + 1] = (v >> 16) & 0xFF
        out[4 * i + 2] = (v >> 8) & 0xFF
        out[4 * i + 3] = v & 0xFF


def _bind_sha256() -> bool:
    """Make ``SHA256_Init/Update/Final`` resolvable for the kernels; True when from OpenSSL.

    OpenSSL 3's one-shot ``SHA256()`` looks the algorithm up on every call (~6x slower
    for small inputs), hence the low-level context functions.
    """
    import ctypes
    import ctypes.util
    import os
    import sys

    import llvmlite.binding as llvm

    if sys.platform.startswith("linux") and os.environ.get("CHAINSLEUTH_SHA256") != "numba":
        # (not on macOS: it aborts the process on unversioned libcrypto loads)
        names = [n for n in (ctypes.util.find_library("crypto"),) if n] + ["libcrypto.so.3", "libcrypto.so.1.1"]
        for name in names:
            try:
                lib = ctypes.CDLL(name)
                lib.SHA256_Init, lib.SHA256_Update, lib.SHA256_Final  # noqa: B018 (must be exported)
                llvm.load_library_permanently(name)
            except (OSError, AttributeError, RuntimeError):
                continue
            return True
    from numba import carray, cfunc
    from numba.core import types as nbt

    u8p = nbt.CPointer(nbt.uint8)

    @cfunc(nbt.int32(u8p), cache=True)
    def _init(ctx):
        words = carray(ctx, (CTX_BYTES,))[:80].view(np.int64)
        for i in range(8):
            words[i] = _SHA_H0[i]
        words[8] = 0
        words[9] = 0
        return 1

    @cfunc(nbt.int32(u8p, u8p, nbt.int64), cache=True)
    def _update(ctx, src, length):
        _ctx_update(carray(ctx, (CTX_BYTES,)), carray(src, (max(length, 1),)), length)
        return 1

    @cfunc(nbt.int32(u8p, u8p), cache=True)
    def _final(out, ctx):
        _ctx_final(carray(ctx, (CTX_BYTES,)), carray(out, (32,)))
        return 1

    for name, fn in (("SHA256_Init", _init), ("SHA256_Update", _update), ("SHA256_Final", _final)):
        llvm.add_symbol(name, fn.address)
    return False


HAVE_OPENSSL = _bind_sha256()


def _c_call(name, params):
    """Codegen calling C function ``name``; "p" parameters are integer addresses."""
    def codegen(context, builder, signature, args):
        i8p = _ir.IntType(8).as_pointer()
        fnty = _ir.FunctionType(_ir.IntType(32), [i8p if p == "p" else _ir.IntType(64) for p in params])
        fn = _cgutils.get_or_insert_function(builder.module, fnty, name)
        builder.call(fn, [builder.inttoptr(a, i8p) if p == "p" else a for a, p in zip(args, params, strict=True)])
        return context.get_dummy_value()
    return codegen


@_intrinsic
def _sha_init(typingctx, ctx):
    return _types.void(_types.uintp), _c_call("SHA256_Init", "p")


@_intrinsic
def _sha_update(typingctx, ctx, src, length):
    return _types.void(_types.uintp, _types.uintp, _types.int64), _c_call("SHA256_Update", "ppi")


@_intrinsic
def _sha_final(typingctx, dst, ctx):
    return _types.void(_types.uintp, _types.uintp), _c_call("SHA256_Final", "pp")


@njit(cache=True, nogil=True)
def _sha256_at(src_addr, length, dst_addr, ctx_addr):
    """SHA-256 of ``length`` bytes at address ``src_addr`` into ``dst_addr`` (32 bytes)."""
    _sha_init(ctx_addr)
    _sha_update(ctx_addr, src_addr, np.int64(length))
    _sha_final(dst_addr, ctx_addr)


@njit(cache=True, nogil=True)
def sha256(msg, length, out):
    """SHA-256 of ``msg[:length]`` into ``out[:32]``."""
    ctx = np.empty(CTX_BYTES, dtype=np.uint8)
    _sha256_at(msg.ctypes.data, length, out.ctypes.data, ctx.ctypes.data)


@njit(cache=True, nogil=True)
def _txids(buf, tx_start, tx_end, tx_wit):
    nt = tx_start.shape[0]
    out = np.empty(nt * 32, dtype=np.uint8)
    first = np.empty(32, dtype=np.uint8)
    ctx = np.empty(CTX_BYTES, dtype=np.uint8)
    c = ctx.ctypes.data
    base = buf.ctypes.data
    out_base = out.ctypes.data
    first_addr = first.ctypes.data
    for i in range(nt):
        s = tx_start[i]
        e = tx_end[i]
        w = tx_wit[i]
        _sha_init(c)
        if w:  # the txid hashes version | inputs | outputs | locktime (BIP141)
            _sha_update(c, base + s, np.int64(4))
            _sha_update(c, base + s + 6, np.int64(w - s - 6))
            _sha_update(c, base + e - 4, np.int64(4))
        else:
            _sha_update(c, base + s, np.int64(e - s))
        _sha_final(first_addr, c)
        _sha256_at(first_addr, 32, out_base + 32 * i, c)
    return out


def txids(buf: np.ndarray, tx_start: np.ndarray, tx_end: np.ndarray, tx_wit: np.ndarray) -> np.ndarray:
    """Double SHA-256 (internal byte order) of every transaction, ``nt * 32`` bytes."""
    return _txids(np.ascontiguousarray(buf), tx_start, tx_end, tx_wit)


# -- structure scan -------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _varint(buf: np.ndarray, pos: int, end: int) -> tuple[int, int]:
    if pos >= end:
        return -1, pos
    b = buf[pos]
    if b < 0xFD:
        return np.int64(b), pos + 1
    width = 2 if b == 0xFD else 4 if b == 0xFE else 8
    if pos + 1 + width > end:
        return -1, pos
    v = np.int64(0)
    for k in range(width):
        v |= np.int64(buf[pos + 1 + k]) << (8 * k)
    if v < 0:
        return -1, pos
    return v, pos + 1 + width


@njit(cache=True, nogil=True)
def _u32(buf: np.ndarray, pos: int) -> int:
    return (np.int64(buf[pos]) | (np.int64(buf[pos + 1]) << 8)
            | (np.int64(buf[pos + 2]) << 16) | (np.int64(buf[pos + 3]) << 24))


@njit(cache=True, nogil=True)
def scan_blocks(buf, bstarts, bends, fill, counts, blk_ntx,
                tx_start, tx_end, tx_wit, tx_version, tx_locktime, tx_in_first, tx_nin,
                tx_out_first, tx_nout,
                in_prev, in_vout, in_soff, in_slen, in_seq, in_wfirst, in_wcount,
                out_value, out_soff, out_slen, wit_off, wit_len):
    """Walk the transactions of blocks ``buf[bstarts[i]:bends[i]]`` (each from its header).

    With ``fill`` False only ``counts`` (txs, inputs, outputs, witness items) is
    set; with ``fill`` True the arrays, sized from a counting pass, are filled.
    ``tx_wit`` is the witness section's start (0 for a legacy transaction).
    Returns ``(error_code, byte_offset)``.
    """
    nt = 0
    ni = 0
    no = 0
    nw = 0
    for b in range(bstarts.shape[0]):
        end = bends[b]
        pos = bstarts[b] + 80
        if pos > end:
            return ERR_TRUNCATED, bstarts[b]
        ntx, pos = _varint(buf, pos, end)
        if ntx < 0:
            return ERR_TRUNCATED, pos
        if fill:
            blk_ntx[b] = ntx
        for _t in range(ntx):
            start = pos
            if end - pos < 10:
                return ERR_TRUNCATED, pos
            version = _u32(buf, pos)
            if version >= 0x80000000:
                version -= 0x100000000
            pos += 4
            segwit = False
            if buf[pos] == 0:
                if buf[pos + 1] != 1:
                    return ERR_BAD_FLAG, pos
                segwit = True
                pos += 2
            nin, pos = _varint(buf, pos, end)
            if nin < 0:
                return ERR_TRUNCATED, pos
            if fill:
                tx_start[nt] = start
                tx_version[nt] = version
                tx_in_first[nt] = ni
                tx_nin[nt] = nin
            first_in = ni
            for _i in range(nin):
                if end - pos < 41:
                    return ERR_TRUNCATED, pos
                if fill:
                    in_prev[ni] = pos
                    in_vout[ni] = _u32(buf, pos + 32)
                pos += 36
                slen, pos = _varint(buf, pos, end)
                if slen < 0 or end - pos < slen + 4:
                    return ERR_TRUNCATED, pos
                if fill:
                    in_soff[ni] = pos
                    in_slen[ni] = slen
                    in_seq[ni] = _u32(buf, pos + slen)
                    in_wcount[ni] = 0
                    in_wfirst[ni] = nw
                pos += slen + 4
                ni += 1
            nout, pos = _varint(buf, pos, end)
            if nout < 0:
                return ERR_TRUNCATED, pos
            if fill:
                tx_out_first[nt] = no
                tx_nout[nt] = nout
            for _o in range(nout):
                if end - pos < 9:
                    return ERR_TRUNCATED, pos
                if fill:
                    v = np.int64(0)
                    for k in range(8):
                        v |= np.int64(buf[pos + k]) << (8 * k)
                    out_value[no] = v
                pos += 8
                slen, pos = _varint(buf, pos, end)
                if slen < 0 or end - pos < slen:
                    return ERR_TRUNCATED, pos
                if fill:
                    out_soff[no] = pos
                    out_slen[no] = slen
                pos += slen
                no += 1
            if fill:
                tx_wit[nt] = pos if segwit else 0
            if segwit:
                for i in range(nin):
                    nitems, pos = _varint(buf, pos, end)
                    if nitems < 0:
                        return ERR_TRUNCATED, pos
                    if fill:
                        in_wfirst[first_in + i] = nw
                        in_wcount[first_in + i] = nitems
                    for _w in range(nitems):
                        wl, pos = _varint(buf, pos, end)
                        if wl < 0 or end - pos < wl:
                            return ERR_TRUNCATED, pos
                        if fill:
                            wit_off[nw] = pos
                            wit_len[nw] = wl
                        pos += wl
                        nw += 1
            if end - pos < 4:
                return ERR_TRUNCATED, pos
            if fill:
                tx_locktime[nt] = _u32(buf, pos)
            pos += 4
            if fill:
                tx_end[nt] = pos
            nt += 1
        if pos != end:
            return ERR_TRAILING, pos
    counts[0] = nt
    counts[1] = ni
    counts[2] = no
    counts[3] = nw
    return ERR_OK, 0


# -- hex and asm text -----------------------------------------------------------------


# Two hex characters per byte value, as one little-endian uint16 (one store per byte).
HEX_PAIRS = np.array([ord("0123456789abcdef"[b >> 4]) | (ord("0123456789abcdef"[b & 15]) << 8)
                      for b in range(256)], dtype=np.uint16)


@njit(cache=True, nogil=True)
def hex_slices(buf, offs, lens, reverse):
    """Hex text of each ``buf[offs[i]:offs[i]+lens[i]]``: (chars, int64 offsets)."""
    n = offs.shape[0]
    offsets = np.empty(n + 1, dtype=np.int64)
    offsets[0] = 0
    for i in range(n):
        offsets[i + 1] = offsets[i] + 2 * lens[i]
    pairs = np.empty(offsets[n] // 2, dtype=np.uint16)
    for i in range(n):
        o = offs[i]
        n_bytes = lens[i]
        p = offsets[i] // 2
        if reverse:
            for k in range(n_bytes):
                pairs[p + k] = HEX_PAIRS[buf[o + n_bytes - 1 - k]]
        else:
            for k in range(n_bytes):
                pairs[p + k] = HEX_PAIRS[buf[o + k]]
    return pairs.view(np.uint8), offsets


@njit(cache=True, nogil=True)
def _is_strict_der(buf, o, n):
    # BIP66 IsValidSignatureEncoding on buf[o:o+n] (sighash byte included).
    if n < 9 or n > 73 or buf[o] != 0x30 or buf[o + 1] != n - 3:
        return False
    len_r = np.int64(buf[o + 3])
    if 5 + len_r >= n:
        return False
    len_s = np.int64(buf[o + 5 + len_r])
    if len_r + len_s + 7 != n or buf[o + 2] != 2 or len_r == 0 or (buf[o + 4] & 0x80):
        return False
    if len_r > 1 and buf[o + 4] == 0 and not (buf[o + 5] & 0x80):
        return False
    if buf[o + len_r + 4] != 2 or len_s == 0 or (buf[o + len_r + 6] & 0x80):
        return False
    if len_s > 1 and buf[o + len_r + 6] == 0 and not (buf[o + len_r + 7] & 0x80):
        return False
    return True


@njit(cache=True, nogil=True)
def _put(out, p, text):
    for k in range(text.shape[0]):
        out[p + k] = text[k]
    return p + text.shape[0]


ERROR_TEXT = np.frombuffer(b"[error]", dtype=np.uint8).copy()
SIGHASH_BUF = np.frombuffer(b"[ALL][NONE][SINGLE][ALL|ANYONECANPAY][NONE|ANYONECANPAY][SINGLE|ANYONECANPAY]", dtype=np.uint8).copy()
SIGHASH_OFF = np.array([0, 5, 11, 19, 37, 56, 77], dtype=np.int64)


@njit(cache=True, nogil=True)
def asm_slices(buf, offs, lens, sighash, opname_buf, opname_off):
    """Bitcoin Core asm (ScriptToAsmStr) of each script slice: (chars, int64 offsets)."""
    n = offs.shape[0]
    bound = 0
    for i in range(n):
        bound += 24 * lens[i] + 8
    out = np.empty(bound, dtype=np.uint8)
    offsets = np.empty(n + 1, dtype=np.int64)
    offsets[0] = 0
    p = 0
    digits = np.empty(12, dtype=np.uint8)
    for i in range(n):
        o = offs[i]
        end = o + lens[i]
        unspendable = (lens[i] > 0 and buf[o] == 0x6A) or lens[i] > 10000
        pc = o
        first = True
        while pc < end:
            if not first:
                out[p] = 32
                p += 1
            first = False
            op = buf[pc]
            pc += 1
            if op <= 0x4E:
                size = np.int64(op)
                bad = False
                if op >= 0x4C:
                    width = 1 if op == 0x4C else 2 if op == 0x4D else 4
                    if end - pc < width:
                        bad = True
                    else:
                        size = 0
                        for k in range(width):
                            size |= np.int64(buf[pc + k]) << (8 * k)
                        pc += width
                if bad or end - pc < size:
                    for k in range(ERROR_TEXT.shape[0]):
                        out[p] = ERROR_TEXT[k]
                        p += 1
                    break
                if size <= 4:
                    v = np.int64(0)
                    for k in range(size):
                        v |= np.int64(buf[pc + k]) << (8 * k)
                    if size > 0 and (buf[pc + size - 1] & 0x80):
                        v = -(v & ~(np.int64(0x80) << (8 * (size - 1))))
                    if v < 0:
                        out[p] = 45  # '-'
                        p += 1
                        v = -v
                    nd = 0
                    while True:
                        digits[nd] = 48 + v % 10
                        nd += 1
                        v //= 10
                        if v == 0:
                            break
                    for k in range(nd):
                        out[p + k] = digits[nd - 1 - k]
                    p += nd
                else:
                    hexlen = size
                    suffix = -1
                    if sighash and not unspendable and _is_strict_der(buf, pc, size):
                        ht = buf[pc + size - 1]
                        base = ht & 0x7F
                        if 1 <= base <= 3 and (ht & 0x7C) == 0:
                            suffix = base - 1 + (3 if ht & 0x80 else 0)
                            hexlen = size - 1
                    for k in range(hexlen):
                        byte = buf[pc + k]
                        out[p] = HEX_CHARS[byte >> 4]
                        out[p + 1] = HEX_CHARS[byte & 15]
                        p += 2
                    if suffix >= 0:
                        for k in range(SIGHASH_OFF[suffix], SIGHASH_OFF[suffix + 1]):
                            out[p] = SIGHASH_BUF[k]
                            p += 1
                pc += size
            else:
                for k in range(opname_off[op], opname_off[op + 1]):
                    out[p] = opname_buf[k]
                    p += 1
        offsets[i + 1] = p
    return out[:p], offsets


# -- script classification and addresses ----------------------------------------------


@njit(cache=True, nogil=True)
def classify_outputs(buf, offs, lens):
    """Core Solver type code per output script, and the payload offset/length.

    Codes needing hash160 or several addresses (pubkey, multisig) and
    nonstandard scripts are finished in Python; the rest are encoded here.
    """
    n = offs.shape[0]
    code = np.zeros(n, dtype=np.int8)
    poff = np.zeros(n, dtype=np.int64)
    plen = np.zeros(n, dtype=np.int64)
    wver = np.zeros(n, dtype=np.int8)
    for i in range(n):
        o = offs[i]
        n_bytes = lens[i]
        if n_bytes == 23 and buf[o] == 0xA9 and buf[o + 1] == 20 and buf[o + 22] == 0x87:
            code[i] = T_SCRIPTHASH
            poff[i] = o + 2
            plen[i] = 20
            continue
        if 4 <= n_bytes <= 42 and (buf[o] == 0 or 0x51 <= buf[o] <= 0x60) and buf[o + 1] + 2 == n_bytes:
            ver = 0 if buf[o] == 0 else buf[o] - 0x50
            pl = n_bytes - 2
            poff[i] = o + 2
            plen[i] = pl
            wver[i] = ver
            if ver == 0:
                code[i] = T_WPKH if pl == 20 else T_WSH if pl == 32 else T_NONSTANDARD
            elif ver == 1 and pl == 32:
                code[i] = T_TAPROOT
            elif ver == 1 and pl == 2 and buf[o + 2] == 0x4E and buf[o + 3] == 0x73:
                code[i] = T_ANCHOR
            else:
                code[i] = T_WUNKNOWN
            continue
        if n_bytes >= 1 and buf[o] == 0x6A:
            pc = o + 1
            end = o + n_bytes
            ok = True
            while pc < end:
                op = buf[pc]
                pc += 1
                if op > 0x60:
                    ok = False
                    break
                if op <= 0x4E:
                    size = np.int64(op)
                    if op >= 0x4C:
                        width = 1 if op == 0x4C else 2 if op == 0x4D else 4
                        if end - pc < width:
                            ok = False
                            break
                        size = 0
                        for k in range(width):
                            size |= np.int64(buf[pc + k]) << (8 * k)
                        pc += width
                    if end - pc < size:
                        ok = False
                        break
                    pc += size
            code[i] = T_NULLDATA if ok else T_NONSTANDARD
            continue
        if n_bytes == 25 and buf[o] == 0x76 and buf[o + 1] == 0xA9 and buf[o + 2] == 20 \
                and buf[o + 23] == 0x88 and buf[o + 24] == 0xAC:
            code[i] = T_PUBKEYHASH
            poff[i] = o + 3
            plen[i] = 20
            continue
        if ((n_bytes == 67 and buf[o] == 65 and (buf[o + 1] == 4 or buf[o + 1] == 6 or buf[o + 1] == 7))
                or (n_bytes == 35 and buf[o] == 33 and (buf[o + 1] == 2 or buf[o + 1] == 3))) \
                and buf[o + n_bytes - 1] == 0xAC:
            code[i] = T_PUBKEY
            poff[i] = o + 1
            plen[i] = n_bytes - 2
            continue
        if n_bytes >= 1 and buf[o + n_bytes - 1] == 0xAE:
            code[i] = T_MULTISIG  # candidate: Python confirms or says nonstandard
            continue
        code[i] = T_NONSTANDARD
    return code, poff, plen, wver


_B58_LIMB = np.uint64(58**5)  # base-58 digits five at a time: a limb times 2**32 fits 64 bits


@njit(cache=True, nogil=True)
def _base58check(buf, poff, version, out, p, payload, h1, h2, limbs, ctx):
    """Base58Check of version byte + 20-byte payload at ``buf[poff:]``; returns the length."""
    payload[0] = version
    for k in range(20):
        payload[1 + k] = buf[poff + k]
    _sha256_at(payload.ctypes.data, 21, h1.ctypes.data, ctx.ctypes.data)
    _sha256_at(h1.ctypes.data, 32, h2.ctypes.data, ctx.ctypes.data)
    for k in range(4):
        payload[21 + k] = h2[k]
    # The 25 bytes as one number: the first byte, then six 32-bit words, into base-58**5 limbs.
    nl = 0
    for c in range(7):
        if c == 0:
            carry = np.uint64(payload[0])
            shift = np.uint64(8)
        else:
            o = 1 + 4 * (c - 1)
            carry = (np.uint64(payload[o]) << np.uint64(24)) | (np.uint64(payload[o + 1]) << np.uint64(16)) \
                | (np.uint64(payload[o + 2]) << np.uint64(8)) | np.uint64(payload[o + 3])
            shift = np.uint64(32)
        for j in range(nl):
            carry += limbs[j] << shift
            q = carry // _B58_LIMB
            limbs[j] = carry - q * _B58_LIMB
            carry = q
        while carry > np.uint64(0):
            q = carry // _B58_LIMB
            limbs[nl] = carry - q * _B58_LIMB
            nl += 1
            carry = q
    q = p
    for k in range(25):  # each leading zero byte is a '1'
        if payload[k] != 0:
            break
        out[q] = B58_CHARS[0]
        q += 1
    started = False
    for j in range(nl - 1, -1, -1):
        v = limbs[j]
        d4 = v % np.uint64(58)
        v //= np.uint64(58)
        d3 = v % np.uint64(58)
        v //= np.uint64(58)
        d2 = v % np.uint64(58)
        v //= np.uint64(58)
        d1 = v % np.uint64(58)
        d0 = v // np.uint64(58)
        for d in (d0, d1, d2, d3, d4):
            if started or d != 0:
                started = True
                out[q] = B58_CHARS[d]
                q += 1
    return q - p


@njit(cache=True, nogil=True)
def _bech32(buf, poff, plen, ver, hrp, out, p):
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    data = np.empty(80, dtype=np.int64)
    nd = 0
    data[nd] = ver
    nd += 1
    acc = 0
    bits = 0
    for k in range(plen):
        acc = ((acc << 8) | buf[poff + k]) & 0xFFFF
        bits += 8
        while bits >= 5:
            bits -= 5
            data[nd] = (acc >> bits) & 31
            nd += 1
    if bits:
        data[nd] = (acc << (5 - bits)) & 31
        nd += 1
    nh = hrp.shape[0]
    values = np.zeros(2 * nh + 1 + nd + 6, dtype=np.int64)
    for k in range(nh):
        values[k] = hrp[k] >> 5
        values[nh + 1 + k] = hrp[k] & 31
    for k in range(nd):
        values[2 * nh + 1 + k] = data[k]
    chk = 1
    for k in range(values.shape[0]):
        top = chk >> 25
        chk = ((chk & 0x1FFFFFF) << 5) ^ values[k]
        for g in range(5):
            if (top >> g) & 1:
                chk ^= gen[g]
    chk ^= 1 if ver == 0 else 0x2BC830A3
    q = p
    for k in range(nh):
        out[q] = hrp[k]
        q += 1
    out[q] = 49  # '1'
    q += 1
    for k in range(nd):
        out[q] = BECH32_CHARS[data[k]]
        q += 1
    for k in range(6):
        out[q] = BECH32_CHARS[(chk >> (5 * (5 - k))) & 31]
        q += 1
    return q - p


@njit(cache=True, nogil=True)
def encode_addresses(buf, code, poff, plen, wver, p2pkh, p2sh, hrp):
    """Address text per output for the single-address types (fixed-width slots)."""
    n = code.shape[0]
    out = np.empty(n * ADDR_WIDTH, dtype=np.uint8)
    alen = np.zeros(n, dtype=np.int64)
    payload = np.empty(25, dtype=np.uint8)
    h1 = np.empty(32, dtype=np.uint8)
    h2 = np.empty(32, dtype=np.uint8)
    limbs = np.zeros(8, dtype=np.uint64)
    ctx = np.empty(CTX_BYTES, dtype=np.uint8)
    for i in range(n):
        c = code[i]
        p = i * ADDR_WIDTH
        if c == T_PUBKEYHASH:
            alen[i] = _base58check(buf, poff[i], p2pkh, out, p, payload, h1, h2, limbs, ctx)
        elif c == T_SCRIPTHASH:
            alen[i] = _base58check(buf, poff[i], p2sh, out, p, payload, h1, h2, limbs, ctx)
        elif T_WPKH <= c <= T_ANCHOR:  # the five witness-program codes are consecutive
            alen[i] = _bech32(buf, poff[i], plen[i], wver[i], hrp, out, p)
    return out, alen


@njit(cache=True, nogil=True)
def assemble_lists(slots, alen, count, extra_buf, extra_off, extra_first):
    """Flatten per-output address lists into (chars, value offsets, list offsets).

    ``count[i]`` addresses per output: from ``slots`` when ``extra_first[i] < 0``,
    else strings ``extra_first[i]..+count[i]`` of the extra buffer.
    """
    n = count.shape[0]
    list_off = np.empty(n + 1, dtype=np.int32)
    list_off[0] = 0
    total_chars = 0
    for i in range(n):
        list_off[i + 1] = list_off[i] + count[i]
        if extra_first[i] < 0:
            total_chars += alen[i] * (1 if count[i] > 0 else 0)
        else:
            e = extra_first[i]
            total_chars += extra_off[e + count[i]] - extra_off[e]
    nvals = list_off[n]
    val_off = np.empty(nvals + 1, dtype=np.int64)
    val_off[0] = 0
    chars = np.empty(total_chars, dtype=np.uint8)
    p = 0
    v = 0
    for i in range(n):
        if count[i] == 0:
            continue
        if extra_first[i] < 0:
            s = i * ADDR_WIDTH
            for k in range(alen[i]):
                chars[p + k] = slots[s + k]
            p += alen[i]
            v += 1
            val_off[v] = p
        else:
            e = extra_first[i]
            for j in range(count[i]):
                for k in range(extra_off[e + j], extra_off[e + j + 1]):
                    chars[p] = extra_buf[k]
                    p += 1
                v += 1
                val_off[v] = p
    return chars, val_off, list_off


# -- linking inputs to outputs of the same batch ---------------------------------------


@njit(cache=True, nogil=True)
def _key64(a, off):
    v = np.uint64(0)
    for k in range(8):
        v |= np.uint64(a[off + k]) << np.uint64(8 * k)
    return v


@njit(cache=True, nogil=True)
def link_inputs(buf, txid_raw, in_prev, in_vout, in_tx, tx_nout, tx_out_first, out_value):
    """Resolve inputs against the outputs of this batch (open-addressing table on txids).

    Returns ``(src_out, in_value, unresolved_per_tx, in_sum_per_tx)``; ``src_out`` is
    -1 where the prevout is not in the batch. With duplicate txids (BIP30) the
    earliest transaction wins.
    """
    nt = tx_nout.shape[0]
    size = 16
    while size < 2 * nt:
        size *= 2
    mask = np.uint64(size - 1)
    table = np.zeros(size, dtype=np.int64)  # tx index + 1, 0 = empty
    for t in range(nt):
        h = _key64(txid_raw, 32 * t) & mask
        while table[h] != 0:
            h = (h + np.uint64(1)) & mask
        table[h] = t + 1
    n = in_prev.shape[0]
    src_out = np.full(n, -1, dtype=np.int64)
    in_value = np.zeros(n, dtype=np.int64)
    unresolved = np.zeros(nt, dtype=np.int64)
    in_sum = np.zeros(nt, dtype=np.int64)
    for i in range(n):
        p = in_prev[i]
        h = _key64(buf, p) & mask
        src = -1
        while table[h] != 0:
            t = table[h] - 1
            same = True
            for k in range(32):
                if txid_raw[32 * t + k] != buf[p + k]:
                    same = False
                    break
            if same:
                src = t
                break
            h = (h + np.uint64(1)) & mask
        tx = in_tx[i]
        if src >= 0 and in_vout[i] < tx_nout[src]:
            o = tx_out_first[src] + in_vout[i]
            src_out[i] = o
            in_value[i] = out_value[o]
            in_sum[tx] += out_value[o]
        else:
            unresolved[tx] += 1
    return src_out, in_value, unresolved, in_sum


@njit(cache=True, nogil=True)
def gather_fixed(chars, width, idx):
    """Row ``i`` = the ``width`` characters of string ``idx[i]`` in a fixed-width buffer.

    ``width`` must be a multiple of 8 (copied as 64-bit words).
    """
    words = width // 8
    src = chars.view(np.uint64)
    n = idx.shape[0]
    out = np.empty(n * words, dtype=np.uint64)
    for i in range(n):
        s = idx[i] * words
        d = i * words
        for k in range(words):
            out[d + k] = src[s + k]
    return out.view(np.uint8)
