"""Wrapping and unwrapping the native asset (WETH9 and its copies on other chains).

Routers swap native ETH by wrapping it: ``swapExactETHForTokens`` deposits ETH
into WETH, ``swapExactTokensForETH`` withdraws it. WETH9 emits no ``Transfer``
for these, only::

    Deposit(address indexed dst, uint256 wad)      0xe1fffcc4...c9109c
    Withdrawal(address indexed src, uint256 wad)   0x7fcf532c...081b65

so without this decoder taint stops at the router in WETH. Each event is a 1:1
conversion between the native asset (``token`` = the chain's native symbol,
``ETH``, as in the transfers view) and the WETH token, by and for the same
address (WETH9 credits ``msg.sender`` and pays ``msg.sender``).

``Deposit(address,uint256)`` is a common signature, so only contracts in the pool
registry with protocol ``wrapped_native`` are decoded: register them with
:func:`chainsleuth.flows.conversions.register_wrapped_native` (mainnet WETH9 is
:data:`MAINNET_WETH`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .base import EvmLog, PoolTokens, Swap, address, uint, words

DEPOSIT_TOPIC = "0xe1fffcc4923d04b559f4d29a8bfc6cda04eb5b0d3c460751c2402c5c5cc9109c"
WITHDRAWAL_TOPIC = "0x7fcf532c15f0a6db0bd6d0e038bea71d30d808c7d98cb3bf7268a95bf5081b65"
MAINNET_WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
PROTOCOL = "wrapped_native"


@dataclass(frozen=True)
class WrappedNativeDecoder:
    protocol: str = PROTOCOL
    swap_topics: tuple[str, ...] = (DEPOSIT_TOPIC, WITHDRAWAL_TOPIC)
    factory_topic: str | None = None

    def pool_from_factory_log(self, log: EvmLog) -> PoolTokens | None:
        return None

    def decode(
        self, chain: str, swap: EvmLog, tx_logs: Sequence[EvmLog], pools: Mapping[str, PoolTokens]
    ) -> Swap | None:
        known = pools.get(swap.address)
        ws = words(swap.data)
        if known is None or known.protocol != PROTOCOL or len(swap.topics) != 2 or len(ws) != 1:
            return None
        who, wad = address(swap.topics[1]), uint(ws[0])
        native, wrapped = known.token0, known.token1
        token_in, token_out = (native, wrapped) if swap.topic0 == DEPOSIT_TOPIC else (wrapped, native)
        return Swap(
            chain=chain, transaction_hash=swap.transaction_hash, log_index=swap.log_index,
            pool=swap.address, sender=who, trader=who, recipient=who,
            token_in=token_in, amount_in=wad, token_out=token_out, amount_out=wad,
            block_number=swap.block_number, block_timestamp=swap.block_timestamp,
            protocol=self.protocol, tokens_from="factory", transaction_index=swap.transaction_index,
        )


DECODER = WrappedNativeDecoder()
