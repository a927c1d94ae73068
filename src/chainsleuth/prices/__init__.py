"""USD valuation: daily BTC/ETH prices, stablecoins at par, other tokens from DEX swaps."""

from .store import (
    DEFAULT_FILES,
    FORMATS,
    PriceFormat,
    PriceImport,
    import_price_files,
    import_prices,
    price_imports,
)
from .valuation import STABLECOINS, UsdValue, daily_price, dex_price, usd_value, value_now, with_usd

__all__ = [
    "DEFAULT_FILES",
    "FORMATS",
    "STABLECOINS",
    "PriceFormat",
    "PriceImport",
    "UsdValue",
    "daily_price",
    "dex_price",
    "import_price_files",
    "import_prices",
    "price_imports",
    "usd_value",
    "value_now",
    "with_usd",
]
