"""The conversion decoders, registered in one place.

To add a DEX whose swap event has another shape, write a module with a
:class:`~chainsleuth.flows.decoders.base.SwapDecoder` (see ``uniswap_v2.py``,
under 90 lines) and add its ``DECODER`` to :data:`SWAP_DECODERS`. To add a
bridge, write a :class:`~chainsleuth.flows.decoders.bridges.BridgeDefinition`
(its lock/burn side, its mint/release side, its terms) and add it to
:data:`BRIDGES`. Forks that emit the Uniswap V2 or V3 events need nothing.
"""

from __future__ import annotations

from . import bridges, uniswap_v2, uniswap_v3, wrapped_native
from .base import SwapDecoder
from .bridges import BridgeDefinition

SWAP_DECODERS: list[SwapDecoder] = [uniswap_v2.DECODER, uniswap_v3.DECODER, wrapped_native.DECODER]
BRIDGES: dict[str, BridgeDefinition] = {b.name: b for b in [bridges.HEIST_LAB_BTC]}

__all__ = ["BRIDGES", "SWAP_DECODERS", "BridgeDefinition", "SwapDecoder"]
