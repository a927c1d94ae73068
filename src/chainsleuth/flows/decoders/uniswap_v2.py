"""Uniswap V2 swaps, and every fork that emits the same events (SushiSwap,
PancakeSwap V2, ...).

Event (Uniswap v2-core ``UniswapV2Pair.sol``)::

    Swap(address indexed sender, uint256 amount0In, uint256 amount1In,
         uint256 amount0Out, uint256 amount1Out, address indexed to)
    topic0 0xd78ad95fa46c994b6551d0da85fc275fe613ce37657fb8d5e3d130840159d822

The event names no token. ``token0``/``token1`` come from the factory's
``PairCreated(address indexed token0, address indexed token1, address pair, uint256)``
when the ledger holds it (the pool registry ``flows.pools``), otherwise from the
pair's ``Transfer`` logs in the same transaction: ``UniswapV2Pair.swap`` sends
``amountOut`` with ``_safeTransfer`` and then emits ``Sync`` and ``Swap``; the
input was transferred to the pair before (by the router or the trader).

Direction: a pair may receive and send the same token in one swap (flash
swaps). The decoder nets each side: the token with a net inflow is
``token_in`` (``amount_in`` = net inflow), the one with a net outflow is
``token_out``. A swap without one of each (a flash loan repaid in the same
token) converts nothing and is not a row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .base import EvmLog, PoolTokens, Swap, address, resolve_by_transfers, uint, words

SWAP_TOPIC = "0xd78ad95fa46c994b6551d0da85fc275fe613ce37657fb8d5e3d130840159d822"
SYNC_TOPIC = "0x1c411e9a96e071241c2f21f7726b17ae89e3cab4c78be50e062b03a9fffbbad1"
PAIR_CREATED_TOPIC = "0x0d3648bd0f6ba80134a33ba9275ac585d9d315f0ad8355cddefde31afa28d0e9"


@dataclass(frozen=True)
class UniswapV2Decoder:
    protocol: str = "uniswap_v2"
    swap_topics: tuple[str, ...] = (SWAP_TOPIC,)
    factory_topic: str | None = PAIR_CREATED_TOPIC

    def pool_from_factory_log(self, log: EvmLog) -> PoolTokens | None:
        ws = words(log.data)
        if log.topic0 != PAIR_CREATED_TOPIC or len(log.topics) != 3 or len(ws) != 2:
            return None
        return PoolTokens(pool=address(ws[0]), protocol=self.protocol,
                          token0=address(log.topics[1]), token1=address(log.topics[2]),
                          factory=log.address, transaction_hash=log.transaction_hash,
                          block_number=log.block_number)

    def decode(
        self, chain: str, swap: EvmLog, tx_logs: Sequence[EvmLog], pools: Mapping[str, PoolTokens]
    ) -> Swap | None:
        ws = words(swap.data)
        if swap.topic0 != SWAP_TOPIC or len(swap.topics) != 3 or len(ws) != 4:
            return None
        in0, in1, out0, out1 = (uint(w) for w in ws)
        net0, net1 = in0 - out0, in1 - out1
        if net0 > 0 > net1:
            side_in, amount_in, amount_out = 0, net0, -net1
        elif net1 > 0 > net0:
            side_in, amount_in, amount_out = 1, net1, -net0
        else:
            return None
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
            found_in = found_out = None  # half a conversion is not one
        sender = address(swap.topics[1])
        return Swap(
            chain=chain, transaction_hash=swap.transaction_hash, log_index=swap.log_index,
            pool=pool, sender=sender, trader=payer or sender, recipient=address(swap.topics[2]),
            token_in=found_in, amount_in=amount_in, token_out=found_out, amount_out=amount_out,
            block_number=swap.block_number, block_timestamp=swap.block_timestamp,
            protocol=self.protocol, tokens_from=tokens_from,
            transaction_index=swap.transaction_index,
        )


DECODER = UniswapV2Decoder()
