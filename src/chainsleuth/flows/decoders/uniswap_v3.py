"""Uniswap V3 swaps, and forks with the same event (PancakeSwap V3 uses a
different event with two more fields and is not this shape).

Event (Uniswap v3-core ``IUniswapV3PoolEvents``)::

    Swap(address indexed sender, address indexed recipient, int256 amount0,
         int256 amount1, uint160 sqrtPriceX96, uint128 liquidity, int24 tick)
    topic0 0xc42079f94a6350d7e6235f29174924f928cc2ac818eb64fed8004e115fbcca67

Amounts are signed deltas of the pool's balances: positive = the pool received
that token (``token_in``), negative = it paid it out (``token_out``).
``token0``/``token1`` come from the factory's
``PoolCreated(address indexed token0, address indexed token1, uint24 indexed fee,
int24 tickSpacing, address pool)`` when present (the pool registry), otherwise
from the token ``Transfer`` logs of the transaction: ``UniswapV3Pool.swap``
pays the output first, then takes the input in the swap callback, then emits
``Swap``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .base import EvmLog, PoolTokens, Swap, address, int256, resolve_by_transfers, uint, words

SWAP_TOPIC = "0xc42079f94a6350d7e6235f29174924f928cc2ac818eb64fed8004e115fbcca67"
POOL_CREATED_TOPIC = "0x783cca1c0412dd0d695e784568c96da2e9c22ff989357a2e8b1d9b2b4e6b7118"


@dataclass(frozen=True)
class UniswapV3Decoder:
    protocol: str = "uniswap_v3"
    swap_topics: tuple[str, ...] = (SWAP_TOPIC,)
    factory_topic: str | None = POOL_CREATED_TOPIC

    def pool_from_factory_log(self, log: EvmLog) -> PoolTokens | None:
        ws = words(log.data)
        if log.topic0 != POOL_CREATED_TOPIC or len(log.topics) != 4 or len(ws) != 2:
            return None
        return PoolTokens(pool=address(ws[1]), protocol=self.protocol,
                          token0=address(log.topics[1]), token1=address(log.topics[2]),
                          fee=uint(log.topics[3]), factory=log.address,
                          transaction_hash=log.transaction_hash, block_number=log.block_number)

    def decode(
        self, chain: str, swap: EvmLog, tx_logs: Sequence[EvmLog], pools: Mapping[str, PoolTokens]
    ) -> Swap | None:
        ws = words(swap.data)
        if swap.topic0 != SWAP_TOPIC or len(swap.topics) != 3 or len(ws) != 5:
            return None
        amount0, amount1 = int256(ws[0]), int256(ws[1])
        if amount0 > 0 > amount1:
            side_in, amount_in, amount_out = 0, amount0, -amount1
        elif amount1 > 0 > amount0:
            side_in, amount_in, amount_out = 1, amount1, -amount0
        else:
            return None  # nothing converted (zero-amount swap)
        pool = swap.address
        known = pools.get(pool)
        tok_in: str | None = None
        tok_out: str | None = None
        if known is not None:
            tok_in, tok_out = (known.token0, known.token1) if side_in == 0 else (known.token1, known.token0)
        found_in, found_out, payer = resolve_by_transfers(pool, swap, tx_logs, amount_in, amount_out,
                                                          tok_in, tok_out, side_in)
        tokens_from = "factory" if known is not None else (
            "transfers" if found_in is not None and found_out is not None else "unresolved")
        if tokens_from == "unresolved":
            found_in = found_out = None
        sender = address(swap.topics[1])
        return Swap(
            chain=chain, transaction_hash=swap.transaction_hash, log_index=swap.log_index,
            pool=pool, sender=sender, trader=payer or sender, recipient=address(swap.topics[2]),
            token_in=found_in, amount_in=amount_in, token_out=found_out, amount_out=amount_out,
            block_number=swap.block_number, block_timestamp=swap.block_timestamp,
            protocol=self.protocol, tokens_from=tokens_from,
            transaction_index=swap.transaction_index,
        )


DECODER = UniswapV3Decoder()
