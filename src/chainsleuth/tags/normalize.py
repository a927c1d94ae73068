"""Address normalisation: one canonical spelling per address, whatever the input format.

Every importer and every search goes through :func:`normalize_address`, so a listed
address never misses because of case, whitespace or a prefix:

* EVM (ETH and every EVM chain/token): stored lower-case with ``0x``. Mixed-case input
  is checked against EIP-55 (a bad checksum is a warning, not a miss). A missing
  ``0x`` is added when the currency is EVM or the text is exactly 40 hex digits.
* Bitcoin-family bech32/bech32m (``bc1``, ``tb1``, ``bcrt1``, ``ltc1``, ...): lower-case
  (BIP-173: case-insensitive but one case only; mixed case is lowered with a warning).
* Bitcoin Cash cashaddr: lower-case, without the ``bitcoincash:`` prefix.
* Tron: the base58check ``T...`` form is canonical; hex ``41...`` and ``0x41...`` map to it.
* Everything else base58 (legacy Bitcoin, Litecoin, Zcash t-addr, XMR, XRP, ...): kept
  exactly (base58 is case-sensitive), only trimmed.
Invisible characters (whitespace, zero-width spaces, BOM) are removed everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from Crypto.Hash import keccak

from ..ingest.bitcoin_script import (
    B58_ALPHABET,
    base58_encode,
    base58check_decode,
    bech32_decode,
    sha256d,
)

# Currencies whose addresses are 20-byte EVM accounts (GraphSense codes and the OFAC asset codes).
EVM_CURRENCIES = frozenset(
    {
        "ETH", "ETC", "ARB", "BSC", "BEP20", "MATIC", "POLY", "OP", "AVAX", "FTM", "USDC",
        "USDT", "DAI", "WETH", "BASE", "GNO", "XDAI", "KCS", "CELO", "RBTC",
    }
)  # fmt: skip
# USDT/USDC live on several chains; the address form decides (0x... EVM, T... Tron).
TRON_CURRENCIES = frozenset({"TRX"})
CASHADDR_CURRENCIES = frozenset({"BCH", "BSV"})

_INVISIBLE = re.compile(r"[\s\u200b\u200c\u200d\u2060\ufeff]+")
_HEX40 = re.compile(r"^(?:0[xX])?([0-9a-fA-F]{40})$")
_TRON_HEX = re.compile(r"^(?:0[xX])?41([0-9a-fA-F]{40})$")
_BECH32_HRP = re.compile(r"^(bc|tb|bcrt|ltc|tltc|rltc)1[02-9ac-hj-np-z]{6,}$", re.IGNORECASE)
_CASHADDR = re.compile(r"^(?:(bitcoincash|bchtest|bchreg):)?([qp][02-9ac-hj-np-z]{41})$", re.I)


@dataclass(frozen=True)
class Normalized:
    """A canonical address, its kind, and what was noticed on the way."""

    address: str
    kind: str  # evm | tron | bech32 | cashaddr | base58 | other
    warnings: tuple[str, ...] = field(default=())


def clean(text: str) -> str:
    """Remove whitespace and invisible characters anywhere in the text."""
    return _INVISIBLE.sub("", text)


def eip55(address_hex40: str) -> str:
    """The EIP-55 mixed-case checksum spelling of a 40-hex-digit address (with ``0x``)."""
    lower = address_hex40.lower()
    digest = keccak.new(digest_bits=256, data=lower.encode("ascii")).hexdigest()
    return "0x" + "".join(
        c.upper() if c.isalpha() and int(d, 16) >= 8 else c
        for c, d in zip(lower, digest[:40], strict=True)
    )


def b58encode_check(payload: bytes) -> str:
    """Base58check of ``payload`` (version byte included), Bitcoin's alphabet."""
    return base58_encode(payload + sha256d(payload)[:4])


def b58decode_check(text: str) -> bytes | None:
    """The payload of a base58check string, or None when it is not valid base58check."""
    try:
        version, rest = base58check_decode(text)
    except ValueError:
        return None
    return bytes([version]) + rest


def tron_from_hex(hex40: str) -> str:
    """Tron base58check address from the 20-byte account (version byte 0x41)."""
    return b58encode_check(b"\x41" + bytes.fromhex(hex40))


def bech32_valid(address: str) -> bool:
    """BIP-173/350 checksum check (bech32 or bech32m) of a lower-case address."""
    try:
        bech32_decode(address)
    except ValueError:
        return False
    return True


def is_evm_currency(currency: str | None) -> bool:
    return currency is not None and currency.upper() in EVM_CURRENCIES


def normalize_address(text: str, currency: str | None = None) -> Normalized:
    """The canonical spelling of ``text`` (see the module docstring for the rules).

    ``currency`` (a GraphSense/OFAC code such as BTC, ETH, TRX) disambiguates forms that
    are ambiguous on their own (40 hex digits without ``0x``); without it the form decides.
    Never raises: an unrecognised form is returned trimmed, kind ``other``.
    """
    s = clean(text)
    cur = currency.upper() if currency else None
    warnings: list[str] = []

    m = _TRON_HEX.match(s)
    if m:  # 21-byte hex with the 0x41 version byte is only ever a Tron account
        return Normalized(tron_from_hex(m.group(1)), "tron", ())
    if s[:1] == "T" and cur in (None, "TRX", "USDT", "USDC") and len(s) == 34:
        payload = b58decode_check(s)
        if payload is not None and payload[:1] == b"\x41":
            return Normalized(s, "tron", ())

    m = _HEX40.match(s)
    if m and (s[:2].lower() == "0x" or cur is None or is_evm_currency(cur)):
        digits = m.group(1)
        mixed = digits not in (digits.lower(), digits.upper())
        if mixed and eip55(digits) != "0x" + digits:
            warnings.append(f"bad EIP-55 checksum in {s!r}; matched case-insensitively")
        return Normalized("0x" + digits.lower(), "evm", tuple(warnings))

    if _BECH32_HRP.match(s):
        low = s.lower()
        if s != low and s != s.upper():
            warnings.append(f"mixed-case bech32 {s!r} (BIP-173 requires one case); lower-cased")
        return Normalized(low, "bech32", tuple(warnings))

    m = _CASHADDR.match(s)
    if m and (
        cur in CASHADDR_CURRENCIES
        or m.group(1)
        or (cur is None and (s == s.lower() or s == s.upper()))
    ):
        body = m.group(2)
        if body != body.lower() and body != body.upper():
            warnings.append(f"mixed-case cashaddr {s!r}; lower-cased")
        return Normalized(body.lower(), "cashaddr", tuple(warnings))

    if s and all(c in B58_ALPHABET for c in s):
        return Normalized(s, "base58", ())
    # e.g. XMR payment ids / hex keys: hex is case-insensitive
    if re.fullmatch(r"(?:0x)?[0-9a-fA-F]+", s):
        return Normalized(s.lower(), "other", ())
    return Normalized(s, "other", ())


def canonical(text: str, currency: str | None = None) -> str:
    """Just the canonical address (see :func:`normalize_address`)."""
    return normalize_address(text, currency).address
