"""GraphSense confidence levels and the GraphSense/INTERPOL concept taxonomy.

Sources (ids and levels copied as facts, definitions left in the sources):
* confidence: graphsense/graphsense-tagpack-tool ``src/tagpack/db/confidence.csv``
* concepts: graphsense/graphsense-tagpack-tool ``src/tagpack/db/concepts.yaml`` (v0.1.0,
  2023-01-27, "derived from the INTERPOL Darknet and Cryptocurrencies Working Group
  taxonomy"), which subsumes the older ``entities.yaml`` and ``abuses.yaml`` schemes.
"""

from __future__ import annotations

from ..errors import ConfigError

CONFIDENCE_LEVELS: dict[str, int] = {
    "override": 100,
    "ownership": 100,
    # added in tagpack-tool 23.03 ("new confidence scores unknown (5) heuristic (10),
    # ledger_immanent (100)"): facts read from the ledger itself, e.g. Tether's blacklist
    "ledger_immanent": 100,
    "manual_transaction": 90,
    "service_api": 70,
    "forensic_investigation": 70,
    "authority_data": 60,
    "trusted_provider": 50,
    "service_data": 50,
    "forensic": 50,
    "untrusted_transaction": 40,
    "web_crawl": 20,
    "heuristic": 10,
    "unknown": 5,
}

# concept id -> broader concept id
CONCEPTS: dict[str, str | None] = {
    "concept": None, "behaviour": "concept", "source": "concept", "mention": "source",
    "website_mention": "mention", "forum_mention": "website_mention", "abuse": "behaviour",
    "gray_usage": "behaviour", "mixing": "gray_usage", "white_usage": "behaviour",
    "sexual_abuse": "abuse", "child_sexual_abuse": "sexual_abuse", "violence": "abuse",
    "torture": "violence", "scam": "abuse", "financial_crime": "abuse",
    "investment_fraud": "financial_crime", "ponzi_scheme": "investment_fraud",
    "pyramid_scheme": "ponzi_scheme", "money_laundering": "financial_crime",
    "extortion": "abuse", "sextortion": "extortion", "phishing": "abuse",
    "service_hack": "abuse", "payment_card_fraud": "financial_crime", "ransomware": "abuse",
    "sanction": "abuse", "extremism": "abuse", "terrorism": "extremism", "dark_web": "source",
    "entity": "concept", "organization": "entity", "user": "entity", "service": "entity",
    "victim": "user", "perpetrator": "user", "donation": "user", "exchange": "service",
    "wallet_service": "service", "escrow_wallet": "wallet_service",
    "ico_wallet": "wallet_service", "cold_wallet": "white_usage", "hot_wallet": "white_usage",
    "warm_wallet": "white_usage", "filesharing": "service", "index": "service",
    "market": "service", "messaging_service": "service", "mixing_service": "service",
    "coinjoin": "mixing", "miner": "user", "mining_service": "service", "gambling": "service",
    "search_engine": "service", "shop": "service", "faucet": "service",
    "payment_processor": "service", "atm": "service", "hosting": "service", "vpn": "service",
    "defi": "service", "defi_lending": "defi", "defi_dex": "defi", "defi_derivative": "defi",
    "defi_bridge": "defi", "item": "concept", "collectible": "item",
}  # fmt: skip

# Values found in real public TagPacks that are not (or no longer) taxonomy ids.
# 'black_list' (GraphSense usdt_blacklist.yaml, Tether freezes) has no concept of its own;
# the generic 'abuse' concept is the nearest, and the original value is kept in context.
LEGACY_CONCEPTS: dict[str, str] = {"black_list": "abuse", "defi_derivatives": "defi_derivative"}


def is_abuse_concept(concept: str | None) -> bool:
    """True when the concept is ``abuse`` or lies under it in the taxonomy."""
    seen = 0
    while concept is not None and seen < 20:
        if concept == "abuse":
            return True
        concept = CONCEPTS.get(concept)
        seen += 1
    return False


def confidence_level(name: str) -> int:
    """Numeric level of a confidence name; ConfigError listing the allowed names."""
    try:
        return CONFIDENCE_LEVELS[name]
    except KeyError:
        raise ConfigError(
            f"unknown confidence {name!r}; allowed: {', '.join(CONFIDENCE_LEVELS)}"
        ) from None


def check_concept(value: str) -> str:
    """The taxonomy id for ``value`` (legacy ids mapped); ConfigError listing allowed ids."""
    if value in CONCEPTS:
        return value
    if value in LEGACY_CONCEPTS:
        return LEGACY_CONCEPTS[value]
    raise ConfigError(f"unknown category {value!r}; allowed: {', '.join(sorted(CONCEPTS))}")
