"""Bitcoin script decoding shared by every Bitcoin-family source.

* :func:`classify_script` names an output script the way Bitcoin Core's
  ``Solver`` does (``src/script/solver.cpp``) and derives its addresses the way
  bitcoin-etl exports them: P2PK and bare multisig get the P2PKH address of each
  public key (Core < 22 ``ExtractDestinations``), ``required_signatures`` is
  Core's old ``reqSigs`` (m for multisig, 1 for other address types).
  Scripts without an address follow bitcoin-etl's
  ``btc_service._add_non_standard_addresses``/``script_hex_to_non_standard_address``:
  ``"nonstandard" + sha256(script).hex()[:40]``. OP_RETURN (``nulldata``) keeps
  Core's type and no address: it holds no spendable value, so a pseudo-address
  would only create a false common-ownership hub.
* :func:`disassemble` is Core's ``ScriptToAsmStr`` (``src/core_io.cpp``),
  including the ``[ALL]``-style sighash decoding Core applies to scriptSigs.
* Base58Check (Bitcoin wiki "Base58Check encoding") and bech32/bech32m
  (BIP173, BIP350) are implemented here; :func:`network_params` holds each
  network's magic bytes, address versions and bech32 prefix (Core
  ``src/kernel/chainparams.cpp``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

from ..errors import ConfigError

# -- networks -----------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkParams:
    name: str
    magic: bytes
    p2pkh_version: int
    p2sh_version: int
    hrp: str
    genesis_hash: str
    native_asset: str = "BTC"


_NETWORKS: dict[str, NetworkParams] = {
    "mainnet": NetworkParams(
        "mainnet", bytes.fromhex("f9beb4d9"), 0x00, 0x05, "bc",
        "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
    ),
    "testnet": NetworkParams(
        "testnet", bytes.fromhex("0b110907"), 0x6F, 0xC4, "tb",
        "000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943",
    ),
    "testnet4": NetworkParams(
        "testnet4", bytes.fromhex("1c163f28"), 0x6F, 0xC4, "tb",
        "00000000da84f2bafbbc53dee25a72ae507ff4914b867c565be350b0da8bf043",
    ),
    "signet": NetworkParams(
        "signet", bytes.fromhex("0a03cf40"), 0x6F, 0xC4, "tb",
        "00000008819873e925422c1ff0f99f7cc9bbb232af63a077a480a3633bee1ef6",
    ),
    "regtest": NetworkParams(
        "regtest", bytes.fromhex("fabfb5da"), 0x6F, 0xC4, "bcrt",
        "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
    ),
    # Litecoin Core chainparams.cpp: same block/tx format, its own magic and versions.
    "litecoin": NetworkParams(
        "litecoin", bytes.fromhex("fbc0b6db"), 0x30, 0x32, "ltc",
        "12a765e31ffd4059bada1e25190f6e98c99d9714d334efa41a195a7e7e04bfe2",
        native_asset="LTC",
    ),
}
_ALIASES = {"main": "mainnet", "bitcoin": "mainnet", "test": "testnet", "testnet3": "testnet"}


def network_params(name: str) -> NetworkParams:
    """Parameters of a network: mainnet, testnet (testnet3), testnet4, signet, regtest, litecoin."""
    key = _ALIASES.get(name.lower(), name.lower())
    try:
        return _NETWORKS[key]
    except KeyError:
        raise ConfigError(
            f"unknown network {name!r} (known: {', '.join(_NETWORKS)})"
        ) from None


def network_by_magic(magic: bytes) -> str | None:
    for p in _NETWORKS.values():
        if p.magic == magic:
            return p.name
    return None


# -- hashes and encodings -------------------------------------------------------------


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def hash160(data: bytes) -> bytes:
    return hashlib.new("ripemd160", hashlib.sha256(data).digest()).digest()


B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58_encode(payload: bytes) -> str:
    n = int.from_bytes(payload, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(B58_ALPHABET[r])
    pad = len(payload) - len(payload.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


def base58check_encode(version: int, payload: bytes) -> str:
    data = bytes([version]) + payload
    return base58_encode(data + sha256d(data)[:4])


def base58check_decode(text: str) -> tuple[int, bytes]:
    """Inverse of :func:`base58check_encode`; raises ValueError on a bad string."""
    n = 0
    for ch in text:
        i = B58_ALPHABET.find(ch)
        if i < 0:
            raise ValueError(f"invalid base58 character {ch!r}")
        n = n * 58 + i
    pad = len(text) - len(text.lstrip("1"))
    raw = b"\0" * pad + (n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b"")
    if len(raw) < 5 or sha256d(raw[:-4])[:4] != raw[-4:]:
        raise ValueError("bad base58check checksum")
    return raw[0], raw[1:-4]


BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
BECH32_CONST = 1
BECH32M_CONST = 0x2BC830A3


def _bech32_polymod(values: list[int]) -> int:
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(x) >> 5 for x in hrp] + [0] + [ord(x) & 31 for x in hrp]


def bech32_encode(hrp: str, data: list[int], const: int) -> str:
    values = _hrp_expand(hrp) + data
    polymod = _bech32_polymod([*values, 0, 0, 0, 0, 0, 0]) ^ const
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(BECH32_CHARSET[d] for d in data + checksum)


def bech32_decode(text: str) -> tuple[str, list[int], int]:
    """Return ``(hrp, data, const)``; raises ValueError on a bad string (BIP173 rules)."""
    if any(ord(c) < 33 or ord(c) > 126 for c in text) or (text.lower() != text and text.upper() != text):
        raise ValueError("invalid characters or mixed case")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text) or len(text) > 90:
        raise ValueError("bad separator position or length")
    hrp = text[:pos]
    try:
        data = [BECH32_CHARSET.index(c) for c in text[pos + 1 :]]
    except ValueError:
        raise ValueError("invalid data character") from None
    const = _bech32_polymod(_hrp_expand(hrp) + data)
    if const not in (BECH32_CONST, BECH32M_CONST):
        raise ValueError("bad checksum")
    return hrp, data[:-6], const


def _convertbits(data: bytes | list[int], frombits: int, tobits: int, pad: bool) -> list[int]:
    acc = bits = 0
    out: list[int] = []
    maxv = (1 << tobits) - 1
    for value in data:
        if value < 0 or value >> frombits:
            raise ValueError("bad value for bit conversion")
        acc = (acc << frombits) | value
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (tobits - bits)) & maxv)
    elif bits >= frombits or ((acc << (tobits - bits)) & maxv):
        raise ValueError("bad padding")
    return out


def segwit_address(hrp: str, version: int, program: bytes) -> str:
    """BIP173 (version 0, bech32) / BIP350 (version >= 1, bech32m) address."""
    const = BECH32_CONST if version == 0 else BECH32M_CONST
    return bech32_encode(hrp, [version, *_convertbits(program, 8, 5, True)], const)


def decode_segwit_address(hrp: str, addr: str) -> tuple[int, bytes]:
    """Return ``(version, program)``; raises ValueError if invalid for ``hrp``."""
    got_hrp, data, const = bech32_decode(addr)
    if got_hrp != hrp or not data:
        raise ValueError("wrong hrp or empty data")
    version = data[0]
    program = bytes(_convertbits(data[1:], 5, 8, False))
    if version > 16 or not 2 <= len(program) <= 40:
        raise ValueError("bad witness version or program length")
    if version == 0 and len(program) not in (20, 32):
        raise ValueError("bad v0 program length")
    if (version == 0) != (const == BECH32_CONST):
        raise ValueError("wrong checksum variant for witness version")
    return version, program


# -- script parsing -------------------------------------------------------------------

OP_0, OP_PUSHDATA1, OP_PUSHDATA2, OP_PUSHDATA4 = 0x00, 0x4C, 0x4D, 0x4E
OP_1NEGATE, OP_RESERVED, OP_1, OP_16 = 0x4F, 0x50, 0x51, 0x60
OP_RETURN, OP_DUP, OP_EQUAL, OP_EQUALVERIFY = 0x6A, 0x76, 0x87, 0x88
OP_HASH160, OP_CHECKSIG, OP_CHECKMULTISIG = 0xA9, 0xAC, 0xAE

_NAMED_OPS = ["OP_NOP", "OP_VER", "OP_IF", "OP_NOTIF", "OP_VERIF", "OP_VERNOTIF", "OP_ELSE", "OP_ENDIF", "OP_VERIFY", "OP_RETURN", "OP_TOALTSTACK", "OP_FROMALTSTACK", "OP_2DROP", "OP_2DUP", "OP_3DUP", "OP_2OVER", "OP_2ROT", "OP_2SWAP", "OP_IFDUP", "OP_DEPTH", "OP_DROP", "OP_DUP", "OP_NIP", "OP_OVER", "OP_PICK", "OP_ROLL", "OP_ROT", "OP_SWAP", "OP_TUCK", "OP_CAT", "OP_SUBSTR", "OP_LEFT", "OP_RIGHT", "OP_SIZE", "OP_INVERT", "OP_AND", "OP_OR", "OP_XOR", "OP_EQUAL", "OP_EQUALVERIFY", "OP_RESERVED1", "OP_RESERVED2", "OP_1ADD", "OP_1SUB", "OP_2MUL", "OP_2DIV", "OP_NEGATE", "OP_ABS", "OP_NOT", "OP_0NOTEQUAL", "OP_ADD", "OP_SUB", "OP_MUL", "OP_DIV", "OP_MOD", "OP_LSHIFT", "OP_RSHIFT", "OP_BOOLAND", "OP_BOOLOR", "OP_NUMEQUAL", "OP_NUMEQUALVERIFY", "OP_NUMNOTEQUAL", "OP_LESSTHAN", "OP_GREATERTHAN", "OP_LESSTHANOREQUAL", "OP_GREATERTHANOREQUAL", "OP_MIN", "OP_MAX", "OP_WITHIN", "OP_RIPEMD160", "OP_SHA1", "OP_SHA256", "OP_HASH160", "OP_HASH256", "OP_CODESEPARATOR", "OP_CHECKSIG", "OP_CHECKSIGVERIFY", "OP_CHECKMULTISIG", "OP_CHECKMULTISIGVERIFY", "OP_NOP1", "OP_CHECKLOCKTIMEVERIFY", "OP_CHECKSEQUENCEVERIFY", "OP_NOP4", "OP_NOP5", "OP_NOP6", "OP_NOP7", "OP_NOP8", "OP_NOP9", "OP_NOP10", "OP_CHECKSIGADD"]


def _op_names() -> list[str]:
    names = ["OP_UNKNOWN"] * 256
    names[OP_0] = "0"
    names[OP_PUSHDATA1], names[OP_PUSHDATA2], names[OP_PUSHDATA4] = (
        "OP_PUSHDATA1", "OP_PUSHDATA2", "OP_PUSHDATA4",
    )
    names[OP_1NEGATE] = "-1"
    names[OP_RESERVED] = "OP_RESERVED"
    for i in range(16):
        names[OP_1 + i] = str(i + 1)
    for i, name in enumerate(_NAMED_OPS):
        names[0x61 + i] = name
    names[0xFF] = "OP_INVALIDOPCODE"
    return names


OP_NAMES: list[str] = _op_names()
assert OP_NAMES[0xBA] == "OP_CHECKSIGADD" and OP_NAMES[0xAC] == "OP_CHECKSIG"


def iter_ops(script: bytes) -> list[tuple[int, bytes | None]]:
    """``[(opcode, push_data_or_None)]``; a truncated push ends with ``(-1, None)``."""
    ops: list[tuple[int, bytes | None]] = []
    i, n = 0, len(script)
    while i < n:
        op = script[i]
        i += 1
        if op <= OP_PUSHDATA4:
            if op < OP_PUSHDATA1:
                size = op
            else:
                width = 1 if op == OP_PUSHDATA1 else 2 if op == OP_PUSHDATA2 else 4
                if n - i < width:
                    ops.append((-1, None))
                    return ops
                size = int.from_bytes(script[i : i + width], "little")
                i += width
            if n - i < size:
                ops.append((-1, None))
                return ops
            ops.append((op, script[i : i + size]))
            i += size
        else:
            ops.append((op, None))
    return ops


def _script_num(data: bytes) -> int:
    if not data:
        return 0
    value = int.from_bytes(data, "little")
    if data[-1] & 0x80:
        return -(value & ~(0x80 << (8 * (len(data) - 1))))
    return value


def is_valid_signature_encoding(sig: bytes) -> bool:
    """BIP66 strict DER (Core ``IsValidSignatureEncoding``), sighash byte included."""
    n = len(sig)
    if n < 9 or n > 73 or sig[0] != 0x30 or sig[1] != n - 3:
        return False
    len_r = sig[3]
    if 5 + len_r >= n:
        return False
    len_s = sig[5 + len_r]
    if len_r + len_s + 7 != n or sig[2] != 0x02 or len_r == 0 or sig[4] & 0x80:
        return False
    if len_r > 1 and sig[4] == 0 and not sig[5] & 0x80:
        return False
    if sig[len_r + 4] != 0x02 or len_s == 0 or sig[len_r + 6] & 0x80:
        return False
    return not (len_s > 1 and sig[len_r + 6] == 0 and not sig[len_r + 7] & 0x80)


SIGHASH_NAMES = {
    0x01: "ALL", 0x02: "NONE", 0x03: "SINGLE",
    0x81: "ALL|ANYONECANPAY", 0x82: "NONE|ANYONECANPAY", 0x83: "SINGLE|ANYONECANPAY",
}


def disassemble(script: bytes, sighash_decode: bool = False) -> str:
    """Bitcoin Core's asm text (``ScriptToAsmStr``).

    ``sighash_decode=True`` is what Core uses for scriptSigs: a strictly-DER
    signature push shows its sighash byte as ``[ALL]`` etc.
    """
    parts: list[str] = []
    unspendable = (len(script) > 0 and script[0] == OP_RETURN) or len(script) > 10000
    for op, data in iter_ops(script):
        if op < 0:
            parts.append("[error]")
            break
        if data is None:
            parts.append(OP_NAMES[op])
        elif len(data) <= 4:
            parts.append(str(_script_num(data)))
        elif sighash_decode and not unspendable and is_valid_signature_encoding(data) and data[-1] in SIGHASH_NAMES:
            parts.append(data[:-1].hex() + "[" + SIGHASH_NAMES[data[-1]] + "]")
        else:
            parts.append(data.hex())
    return " ".join(parts)


# -- classification -------------------------------------------------------------------


def _valid_pubkey_size(key: bytes) -> bool:
    # Core CPubKey::ValidSize: the header byte fixes the length.
    if not key:
        return False
    if key[0] in (2, 3):
        return len(key) == 33
    if key[0] in (4, 6, 7):
        return len(key) == 65
    return False


def nonstandard_address(script: bytes) -> str:
    """bitcoin-etl's pseudo-address for a script without a real one."""
    return "nonstandard" + hashlib.sha256(script).hexdigest()[:40]


ScriptInfo = tuple[str, int | None, tuple[str, ...]]


@lru_cache(maxsize=1 << 16)
def classify_script(script: bytes, network: str = "mainnet") -> ScriptInfo:
    """``(type, required_signatures, addresses)`` of an output script.

    Types are Core's ``TxoutType`` names; see the module docstring for the
    address conventions (bitcoin-etl's).
    """
    p = network_params(network)
    n = len(script)
    if n == 23 and script[0] == OP_HASH160 and script[1] == 20 and script[22] == OP_EQUAL:
        return "scripthash", 1, (base58check_encode(p.p2sh_version, script[2:22]),)
    if 4 <= n <= 42 and (script[0] == OP_0 or OP_1 <= script[0] <= OP_16) and script[1] + 2 == n:
        version = 0 if script[0] == OP_0 else script[0] - OP_1 + 1
        program = script[2:]
        if version == 0:
            if len(program) == 20:
                return "witness_v0_keyhash", 1, (segwit_address(p.hrp, 0, program),)
            if len(program) == 32:
                return "witness_v0_scripthash", 1, (segwit_address(p.hrp, 0, program),)
            return "nonstandard", None, (nonstandard_address(script),)
        addr = (segwit_address(p.hrp, version, program),)
        if version == 1 and len(program) == 32:
            return "witness_v1_taproot", 1, addr
        if version == 1 and program == b"\x4e\x73":  # pay-to-anchor, Core >= 28
            return "anchor", 1, addr
        return "witness_unknown", 1, addr
    if n >= 1 and script[0] == OP_RETURN:
        ops = iter_ops(script[1:])
        if all(0 <= op <= OP_16 for op, _ in ops):
            return "nulldata", None, ()
        return "nonstandard", None, (nonstandard_address(script),)
    if ((n == 67 and script[0] == 65) or (n == 35 and script[0] == 33)) and script[-1] == OP_CHECKSIG:
        key = script[1:-1]
        if _valid_pubkey_size(key):
            return "pubkey", 1, (base58check_encode(p.p2pkh_version, hash160(key)),)
    if (
        n == 25 and script[0] == OP_DUP and script[1] == OP_HASH160 and script[2] == 20
        and script[23] == OP_EQUALVERIFY and script[24] == OP_CHECKSIG
    ):
        return "pubkeyhash", 1, (base58check_encode(p.p2pkh_version, script[3:23]),)
    multisig = _match_multisig(script)
    if multisig is not None:
        m, keys = multisig
        return "multisig", m, tuple(base58check_encode(p.p2pkh_version, hash160(k)) for k in keys)
    return "nonstandard", None, (nonstandard_address(script),)


def _match_multisig(script: bytes) -> tuple[int, list[bytes]] | None:
    # Core MatchMultisig: OP_m <key>... OP_n OP_CHECKMULTISIG, small-int m and n.
    if len(script) < 1 or script[-1] != OP_CHECKMULTISIG:
        return None
    ops = iter_ops(script)
    if len(ops) < 4 or not OP_1 <= ops[0][0] <= OP_16 or not OP_1 <= ops[-2][0] <= OP_16:
        return None
    m = ops[0][0] - OP_1 + 1
    n = ops[-2][0] - OP_1 + 1
    keys = []
    for op, data in ops[1:-2]:
        if op < 0 or data is None or not _valid_pubkey_size(data):
            return None
        keys.append(data)
    if len(keys) != n or m > n:
        return None
    return m, keys
