"""What every conversion decoder shares: the log record it reads, the swap row it
writes, the decoder protocol and the few ABI helpers the decoders need.

A decoder is a small object registered in :mod:`chainsleuth.flows.decoders`;
:func:`chainsleuth.flows.conversions.decode_conversions` feeds it the logs of
each transaction that carries its event and stores what it returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
_WORD = 64  # hex digits in an ABI word


@dataclass(frozen=True)
class EvmLog:
    """One ``logs`` row, with its block's time (epoch seconds) when known.

    Hex (address, topics, data) is lower-case, as the ledger query delivers it.
    """

    transaction_hash: str
    log_index: int
    block_number: int
    address: str
    topics: tuple[str, ...]
    data: str
    transaction_index: int | None = None
    block_timestamp: int | None = None

    @property
    def topic0(self) -> str | None:
        return self.topics[0] if self.topics else None


@dataclass(frozen=True)
class PoolTokens:
    """A pool's two tokens as its factory announced them (``PairCreated``/``PoolCreated``)."""

    pool: str
    protocol: str
    token0: str
    token1: str
    fee: int | None = None
    factory: str | None = None
    transaction_hash: str | None = None
    block_number: int | None = None


@dataclass(frozen=True)
class Swap:
    """One decoded swap: ``amount_in`` of ``token_in`` went into ``pool`` and
    ``amount_out`` of ``token_out`` came out to ``recipient``.

    ``sender`` is the event's ``sender`` (``msg.sender`` of the pool: usually a
    router); ``trader`` is who paid ``token_in`` into the pool, read from the
    token's ``Transfer`` log in the same transaction (``sender`` when no such
    log is found). ``tokens_from`` says how the tokens were resolved:
    ``factory`` (pool registry), ``transfers`` (Transfer logs of the
    transaction) or ``unresolved`` (token columns NULL: not convertible).
    """

    chain: str
    transaction_hash: str
    log_index: int
    pool: str
    sender: str | None
    trader: str | None
    recipient: str | None
    token_in: str | None
    amount_in: int
    token_out: str | None
    amount_out: int
    block_number: int
    block_timestamp: int | None
    protocol: str
    tokens_from: str
    transaction_index: int | None = None


class SwapDecoder(Protocol):
    """A swap event shape. ``protocol`` names it in ``flows.swaps``."""

    @property
    def protocol(self) -> str: ...

    @property
    def swap_topics(self) -> tuple[str, ...]:
        """topic0 of the events this decoder turns into swaps."""
        ...

    @property
    def factory_topic(self) -> str | None:
        """topic0 of the factory event that announces pools and their tokens (or None)."""
        ...

    def pool_from_factory_log(self, log: EvmLog) -> PoolTokens | None:
        """A factory log -> the pool it created, or None when it is not one."""
        ...

    def decode(
        self, chain: str, swap: EvmLog, tx_logs: Sequence[EvmLog], pools: Mapping[str, PoolTokens]
    ) -> Swap | None:
        """One swap log (with every Transfer/swap log of its transaction) -> a Swap.

        None when the log is not a swap of this shape (wrong topic count or data length).
        """
        ...


# -- ABI helpers ---------------------------------------------------------------------------
def words(data: str | None) -> list[str]:
    """ABI data ``0x...`` -> its 32-byte words as hex (no 0x); a short tail is dropped."""
    body = (data or "").removeprefix("0x")
    return [body[i : i + _WORD] for i in range(0, len(body) - _WORD + 1, _WORD)]


def uint(word: str) -> int:
    return int(word, 16)


def int256(word: str) -> int:
    """Two's complement signed 256-bit word."""
    v = int(word, 16)
    return v - (1 << 256) if v >> 255 else v


def address(word: str) -> str:
    return "0x" + word[-40:].lower()


@dataclass(frozen=True)
class TokenMove:
    """An ERC-20 Transfer log in a transaction."""

    log_index: int
    token: str
    from_address: str
    to_address: str
    value: int


def token_moves(tx_logs: Sequence[EvmLog]) -> list[TokenMove]:
    """The ERC-20 ``Transfer`` logs (3 topics + 1 word) of a transaction, in log order."""
    out: list[TokenMove] = []
    for log in tx_logs:
        if log.topic0 != TRANSFER_TOPIC or len(log.topics) != 3:
            continue
        ws = words(log.data)
        if len(ws) != 1:
            continue
        out.append(TokenMove(log.log_index, log.address, address(log.topics[1]),
                             address(log.topics[2]), uint(ws[0])))
    return out


def previous_swap_index(swap: EvmLog, tx_logs: Sequence[EvmLog]) -> int:
    """Log index of the same pool's previous swap in the transaction (-1 if none):
    Transfers before it belong to that swap, not to this one."""
    prev = -1
    for log in tx_logs:
        if log.log_index >= swap.log_index:
            break
        if log.address == swap.address and log.topic0 == swap.topic0:
            prev = log.log_index
    return prev


def nearest_move(moves: Sequence[TokenMove], *, token: str | None = None, to: str | None = None,
                 frm: str | None = None, after: int, before: int, value: int | None = None,
                 used: set[int] | None = None) -> TokenMove | None:
    """The last Transfer in ``(after, before)`` matching the filters, preferring an
    exact ``value`` match; moves whose log index is in ``used`` are skipped."""
    exact: TokenMove | None = None
    any_value: TokenMove | None = None
    for m in moves:
        if not after < m.log_index < before or (used is not None and m.log_index in used):
            continue
        if (token is not None and m.token != token) or (to is not None and m.to_address != to):
            continue
        if frm is not None and m.from_address != frm:
            continue
        any_value = m
        if value is not None and m.value == value:
            exact = m
    return exact if value is not None and exact is not None else any_value


def resolve_by_transfers(
    pool: str, swap: EvmLog, tx_logs: Sequence[EvmLog], amount_in: int, amount_out: int,
    token_in: str | None = None, token_out: str | None = None, side_in: int | None = None,
) -> tuple[str | None, str | None, str | None]:
    """Tokens and payer of a swap from the Transfer logs of its transaction.

    Looks between the pool's previous swap in the transaction and this swap's log
    (V2 pairs and V3 pools both transfer before they emit ``Swap``):
    ``token_out`` is the token the pool sent with exactly ``amount_out`` (pools
    transfer the computed amount); ``token_in`` the token sent to the pool,
    preferring exactly ``amount_in`` (a fee-on-transfer token delivers less).
    Tokens already known (from the pool registry) are used as filters.

    A fee-on-transfer ``token_out`` logs less than ``amount_out``; then, when
    ``side_in`` (0: token0 is the input) is given, the token the pool sent that
    is not ``token_in`` is accepted if the pair's address order agrees (Uniswap
    factories sort ``token0 < token1``).
    Returns ``(token_in, token_out, payer)``; a part not found is None.
    """
    moves = [m for m in token_moves(tx_logs) if m.token != pool]  # not the LP token
    after = previous_swap_index(swap, tx_logs)
    out_move = nearest_move(moves, token=token_out, frm=pool, after=after,
                            before=swap.log_index, value=amount_out)
    if token_out is None and out_move is not None and out_move.value != amount_out:
        out_move = None  # without the registry only the exact amount identifies the token
    found_out = token_out or (out_move.token if out_move is not None else None)
    in_move = nearest_move([m for m in moves if m.token != found_out], token=token_in, to=pool,
                           after=after, before=swap.log_index, value=amount_in)
    found_in = token_in or (in_move.token if in_move is not None else None)
    if found_out is None and found_in is not None and side_in is not None:
        sent = nearest_move([m for m in moves if m.token != found_in], frm=pool, after=after,
                            before=swap.log_index)
        if sent is not None and (found_in < sent.token) == (side_in == 0):
            found_out = sent.token
    return found_in, found_out, in_move.from_address if in_move is not None else None
