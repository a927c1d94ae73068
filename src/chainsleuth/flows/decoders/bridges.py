"""Bridge hops: a lock/burn on one chain matched to the mint/release on the other.

A bridge is a :class:`BridgeDefinition`: how to read its **source legs** (the
lock or burn: who sent how much of what, a deposit id or nonce when the bridge
has one, and the destination address when the event names it) and its
**destination legs** (the mint or release/payout), plus the matching terms
(amount conversion ``rate``, the fee the bridge may keep, the time window).
:func:`match_legs` is the one generic matcher for every bridge:

1. **deposit id** (confidence 1.0): a destination leg that carries the source
   leg's deposit id / nonce. When the id's transaction pays several outputs the
   one to the named recipient wins, then the one whose amount fits, then the
   first (0.9 when the chosen leg is not to the named recipient);
2. **recipient + amount + window** (confidence 0.8, or 0.6 when several legs
   qualified): a destination leg to the recipient the source event named, of
   ``expected - max_fee <= amount <= expected`` (``expected = amount * rate``),
   between ``skew_s`` before and ``window_s`` after the lock. The earliest
   unused leg is taken; locks are matched in time order, each leg used once;
3. anything left is stored with no destination, match key ``unmatched``,
   confidence 0: value that entered the bridge and was not seen leaving it.

The second rule is the time + value + asset matching heuristic of Yan, Huang
and Tessone, "Tracing Cross-chain Transactions between EVM-based Blockchains:
An Analysis of Ethereum-Polygon Bridges" (Ledger 2025, arXiv:2504.15449), with
a fee allowance, keyed on the recipient the lock names instead of a shared
EVM address. Its false-positive risk is two qualifying payouts to the same
address inside one window (the earliest is taken; the lower confidence marks
it); its false negatives are payouts split over several outputs or batched with
other users' payouts beyond the fee allowance.

Concrete definition, ``heist_lab_btc`` (the lock/release bridge of the heist
lab, issue 5): on the EVM side the bridge contract emits

    Locked(address indexed from, bytes32 indexed depositId, uint256 amount, string btcAddress)
    topic0 0x6cc5b4132852c3b3dd8423c5e97c4ea0f7123ff59f5b90e8022d744f3b3a6867

and its relayer pays ``btcAddress`` on the Bitcoin side, writing the 32-byte
``depositId`` in an OP_RETURN output of the payout transaction (``6a20<id>``,
or ``6a4c20<id>``). Without the OP_RETURN the payout is matched by rule 2.
The source asset is the chain's native asset (ETH) unless the definition names
a token; ``rate`` converts the locked amount to satoshi (default 1/1: the
event's amount is already in satoshi; a lab locking wei for BTC passes its
fixed rate, e.g. ``(1, 10**10)`` for 1 BTC per ETH).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import pyarrow as pa

from ...store import Ledger
from .base import EvmLog, address, uint, words

LOCKED_TOPIC = "0x6cc5b4132852c3b3dd8423c5e97c4ea0f7123ff59f5b90e8022d744f3b3a6867"


@dataclass(frozen=True)
class BridgeLeg:
    """One side of a bridge hop. ``position``: log index (EVM) or output index (UTXO)."""

    chain: str
    transaction_hash: str
    position: int
    address: str | None
    asset: str
    amount: int
    block_timestamp: int | None
    deposit_id: str | None = None
    recipient: str | None = None  # the destination address the source event names
    contract: str | None = None  # the bridge contract that emitted the source event


@dataclass(frozen=True)
class BridgeMatch:
    src: BridgeLeg
    dst: BridgeLeg | None
    match_key: str
    confidence: float


class LegSource(Protocol):
    """Reads one side's legs from the ledger. ``src_legs`` is given to a destination
    side so that it can restrict its query (recipients, time range)."""

    @property
    def family(self) -> str:
        """The chain family (``ethereum``/``bitcoin``) this side reads."""
        ...

    def legs(self, ledger: Ledger, chain: str, asset: str, src_legs: Sequence[BridgeLeg],
             contracts: frozenset[str] | None, window: tuple[int, int]) -> list[BridgeLeg]: ...


# -- EVM event side ------------------------------------------------------------------------
@dataclass(frozen=True)
class EvmEventSide:
    """Legs from one EVM event; ``decode`` turns a log into a leg (None: not this event)."""

    topic: str
    decode: Callable[[str, str, EvmLog], BridgeLeg | None]
    family: str = "ethereum"

    def legs(self, ledger: Ledger, chain: str, asset: str, src_legs: Sequence[BridgeLeg],
             contracts: frozenset[str] | None, window: tuple[int, int]) -> list[BridgeLeg]:
        rows = ledger.con.execute(
            f"""SELECT l.transaction_hash, l.log_index, l.block_number, l.address, l.topics, l.data,
                       l.transaction_index, CAST(epoch(b.timestamp) AS BIGINT)
                FROM "{chain}".logs l LEFT JOIN "{chain}".blocks b ON b.number = l.block_number
                WHERE lower(l.topics[1]) = ?
                ORDER BY l.block_number, l.transaction_index, l.log_index""",
            [self.topic],
        ).fetchall()
        out: list[BridgeLeg] = []
        for tx, idx, bn, addr, topics, data, txi, ts in rows:
            if contracts is not None and addr not in contracts:
                continue
            log = EvmLog(tx, int(idx), int(bn), addr, tuple(topics or ()), data or "0x", txi,
                         None if ts is None else int(ts))
            leg = self.decode(chain, asset, log)
            if leg is not None:
                out.append(replace(leg, contract=addr))
        return out


def decode_locked(chain: str, asset: str, log: EvmLog) -> BridgeLeg | None:
    """``Locked(address indexed from, bytes32 indexed depositId, uint256 amount, string btcAddress)``."""
    ws = words(log.data)
    if len(log.topics) != 3 or len(ws) < 3:
        return None
    amount = uint(ws[0])
    offset = uint(ws[1]) // 32
    if offset + 1 > len(ws):
        return None
    length = uint(ws[offset])
    body = "".join(ws[offset + 1 :])[: 2 * length]
    if len(body) != 2 * length:
        return None
    try:
        btc_address = bytes.fromhex(body).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        btc_address = None
    return BridgeLeg(chain=chain, transaction_hash=log.transaction_hash, position=log.log_index,
                     address=address(log.topics[1]), asset=asset, amount=amount,
                     block_timestamp=log.block_timestamp, deposit_id="0x" + log.topics[2][-64:].lower(),
                     recipient=btc_address or None)


# -- Bitcoin payout side -------------------------------------------------------------------
@dataclass(frozen=True)
class BitcoinPayoutSide:
    """Payout outputs on a UTXO chain: every spendable output of a transaction that
    carries a 32-byte OP_RETURN id (deposit id legs), and outputs to the source
    legs' named recipients inside the time window (recipient legs)."""

    family: str = "bitcoin"

    def legs(self, ledger: Ledger, chain: str, asset: str, src_legs: Sequence[BridgeLeg],
             contracts: frozenset[str] | None, window: tuple[int, int]) -> list[BridgeLeg]:
        s = f'"{chain}"'
        id_rows = ledger.con.execute(
            f"""WITH ids AS (
                  SELECT transaction_hash,
                         CASE WHEN script_hex LIKE '6a20%' THEN substr(script_hex, 5, 64)
                              ELSE substr(script_hex, 7, 64) END AS deposit_id
                  FROM {s}.outputs
                  WHERE (script_hex LIKE '6a20%' AND length(script_hex) = 68)
                     OR (script_hex LIKE '6a4c20%' AND length(script_hex) = 70))
                SELECT o.transaction_hash, o."index", o.addresses, o.value,
                       CAST(epoch(o.block_timestamp) AS BIGINT), lower(ids.deposit_id)
                FROM {s}.outputs o JOIN ids USING (transaction_hash)
                WHERE len(o.addresses) = 1 AND o.value IS NOT NULL
                ORDER BY o.block_number, o.transaction_hash, o."index" """
        ).fetchall()
        out = [BridgeLeg(chain, tx, int(i), addrs[0], asset, int(v), None if ts is None else int(ts),
                         "0x" + dep) for tx, i, addrs, v, ts, dep in id_rows]
        recipients = sorted({leg.recipient for leg in src_legs if leg.recipient})
        if recipients:
            ledger.con.register("_cs_bridge_recipients", pa.table({"a": pa.array(recipients)}))
            try:
                rows = ledger.con.execute(
                    f"""SELECT o.transaction_hash, o."index", o.addresses[1], o.value,
                               CAST(epoch(o.block_timestamp) AS BIGINT)
                        FROM {s}.outputs o JOIN _cs_bridge_recipients r ON r.a = o.addresses[1]
                        WHERE len(o.addresses) = 1 AND o.value IS NOT NULL
                          AND epoch(o.block_timestamp) BETWEEN ? AND ?
                        ORDER BY o.block_number, o.transaction_hash, o."index" """,
                    [window[0], window[1]],
                ).fetchall()
            finally:
                ledger.con.unregister("_cs_bridge_recipients")
            seen = {(leg.transaction_hash, leg.position) for leg in out}
            out += [BridgeLeg(chain, tx, int(i), a, asset, int(v), None if ts is None else int(ts))
                    for tx, i, a, v, ts in rows if (tx, int(i)) not in seen]
        return out


# -- definitions ---------------------------------------------------------------------------
@dataclass(frozen=True)
class BridgeDefinition:
    """A bridge: its two sides and its matching terms.

    ``src_asset``/``dst_asset`` None mean the chain's native asset. ``rate`` is
    (numerator, denominator): expected destination amount = ``amount * num // den``.
    The bridge may keep ``max(fee_abs, expected * fee_bps // 10000)``.
    ``contracts`` None accepts the event from any emitter.
    """

    name: str
    src: LegSource
    dst: LegSource
    src_asset: str | None = None
    dst_asset: str | None = None
    rate: tuple[int, int] = (1, 1)
    fee_bps: int = 100
    fee_abs: int = 0
    window_s: int = 24 * 3600
    skew_s: int = 2 * 3600  # block clocks of two chains disagree (Bitcoin allows 2 h ahead)
    contracts: frozenset[str] | None = field(default=None)

    def expected(self, amount: int) -> int:
        return amount * self.rate[0] // self.rate[1]

    def max_fee(self, expected: int) -> int:
        return max(self.fee_abs, expected * self.fee_bps // 10_000)

    def with_terms(self, **terms: object) -> BridgeDefinition:
        """A copy with some terms changed (``rate``, ``fee_bps``, ``window_s``, ``contracts``...)."""
        return replace(self, **{k: v for k, v in terms.items() if v is not None})  # type: ignore[arg-type]


HEIST_LAB_BTC = BridgeDefinition(
    name="heist_lab_btc",
    src=EvmEventSide(LOCKED_TOPIC, decode_locked),
    dst=BitcoinPayoutSide(),
)


# -- the generic matcher -------------------------------------------------------------------
def match_legs(src: Sequence[BridgeLeg], dst: Sequence[BridgeLeg],
               definition: BridgeDefinition) -> list[BridgeMatch]:
    """Match source legs to destination legs (rules in the module docstring).
    Pure: the same legs always give the same matches, in source time order."""
    def when(leg: BridgeLeg) -> tuple[int, str, int]:
        return (leg.block_timestamp or 0, leg.transaction_hash, leg.position)

    by_id: dict[str, list[BridgeLeg]] = defaultdict(list)
    by_address: dict[str, list[BridgeLeg]] = defaultdict(list)
    for leg in sorted(dst, key=when):
        if leg.deposit_id is not None:
            by_id[leg.deposit_id].append(leg)
        if leg.address is not None:
            by_address[leg.address].append(leg)
    used: set[tuple[str, int]] = set()
    matched: dict[tuple[str, int], BridgeMatch] = {}
    ordered = sorted(src, key=when)

    def fits(s: BridgeLeg, d: BridgeLeg) -> bool:
        expected = definition.expected(s.amount)
        return expected - definition.max_fee(expected) <= d.amount <= expected

    for s in ordered:  # rule 1: deposit id
        cands = [d for d in by_id.get(s.deposit_id or "", []) if (d.transaction_hash, d.position) not in used]
        if s.deposit_id is None or not cands:
            continue
        to_recipient = [d for d in cands if s.recipient is not None and d.address == s.recipient]
        best = (to_recipient or [d for d in cands if fits(s, d)] or cands)[0]
        confident = s.recipient is None or best.address == s.recipient
        used.add((best.transaction_hash, best.position))
        matched[(s.transaction_hash, s.position)] = BridgeMatch(
            s, best, f"deposit_id:{s.deposit_id}", 1.0 if confident else 0.9)
    for s in ordered:  # rule 2: recipient + amount + window
        if (s.transaction_hash, s.position) in matched or s.recipient is None:
            continue
        t0 = s.block_timestamp or 0
        cands = [d for d in by_address.get(s.recipient, [])
                 if (d.transaction_hash, d.position) not in used and fits(s, d)
                 and t0 - definition.skew_s <= (d.block_timestamp or 0) <= t0 + definition.window_s]
        if not cands:
            continue
        best = cands[0]
        used.add((best.transaction_hash, best.position))
        matched[(s.transaction_hash, s.position)] = BridgeMatch(
            s, best, f"recipient_amount:{s.recipient}", 0.8 if len(cands) == 1 else 0.6)
    return [matched.get((s.transaction_hash, s.position)) or BridgeMatch(s, None, "unmatched", 0.0)
            for s in ordered]
