"""Risk categories for exposure, mapped from the tag store's categories and abuse concepts.

The tag store (``tags.tags``) speaks the GraphSense/INTERPOL concept taxonomy
(graphsense-tagpack-tool ``concepts.yaml``, see :mod:`chainsleuth.tags.taxonomy`): a tag
has a ``category``, an ``abuse`` concept and a ``concepts`` list. Exposure reports speak
the coarser categories compliance teams consume (Chainalysis KYT / Elliptic Lens show
exposure per category such as *sanctions*, *stolen funds*, *mixing*, *ransomware*,
*scam*, *darknet market*, *exchange*, *gambling*). This module is that mapping.

Each address gets ONE category, the highest-priority one among all its tags (the
order of :data:`CATEGORIES`, most severe first). One category per address keeps the
shares of an address's value additive (they sum to at most 1); a sanctioned mixer
(Tornado Cash: ``sanction`` and ``mixing_service``) counts as *sanctions*.

Categories marked ``risk=False`` are counterparty *types* (exchange, bridge, DeFi, ...):
they are reported like the others (an exchange deposit's direct exchange exposure is
useful), but they are not risk. Every category, risk or not, is a *stop* for indirect
exposure: value received from a categorised entity counts as that category, not as the
entity's own sources (see :mod:`chainsleuth.flows.exposure`).

Concepts not listed (``user``, ``victim``, ``hot_wallet``, ``organization``, ...) say
nothing about the risk of funds: such an address is unlabelled and value flows through it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..tags.taxonomy import CONCEPTS, LEGACY_CONCEPTS


@dataclass(frozen=True)
class RiskCategory:
    name: str
    risk: bool
    concepts: tuple[str, ...]
    description: str


# Priority order: an address with several tags gets the first category that matches.
CATEGORIES: tuple[RiskCategory, ...] = (
    RiskCategory("sanctions", True, ("sanction",), "sanctioned entity (OFAC SDN and others)"),
    RiskCategory("terrorist_financing", True, ("terrorism", "extremism"), "terrorism, extremism"),
    RiskCategory("child_abuse", True, ("child_sexual_abuse", "sexual_abuse"),
                 "child sexual abuse material vendors"),
    RiskCategory("ransomware", True, ("ransomware",), "ransomware operators"),
    RiskCategory("stolen_funds", True, ("service_hack",), "theft / hack of a service or user"),
    RiskCategory("darknet_market", True, ("market", "dark_web"), "darknet markets"),
    RiskCategory("scam", True,
                 ("scam", "phishing", "investment_fraud", "ponzi_scheme", "pyramid_scheme"),
                 "scams, phishing, fraudulent investment schemes"),
    RiskCategory("extortion", True, ("extortion", "sextortion", "violence", "torture"),
                 "extortion and violence"),
    RiskCategory("mixer", True, ("mixing_service", "mixing", "coinjoin"),
                 "mixing services and CoinJoin coordinators"),
    RiskCategory("illicit_other", True,
                 ("money_laundering", "payment_card_fraud", "financial_crime", "abuse"),
                 "other abuse (money laundering, card fraud, blacklisted, unspecified abuse)"),
    RiskCategory("gambling", False, ("gambling",), "gambling services"),
    RiskCategory("exchange", False, ("exchange",), "exchanges (counterparty type)"),
    RiskCategory("bridge", False, ("defi_bridge",), "cross-chain bridges"),
    RiskCategory("defi", False, ("defi", "defi_dex", "defi_lending", "defi_derivative"),
                 "DeFi protocols (DEX, lending, derivatives)"),
    RiskCategory("payment_processor", False, ("payment_processor", "atm", "shop"),
                 "payment processors, ATMs, merchants"),
    RiskCategory("mining", False, ("mining_service", "miner"), "mining pools and miners"),
    RiskCategory("wallet_service", False,
                 ("wallet_service", "escrow_wallet", "ico_wallet", "faucet", "hosting", "vpn",
                  "messaging_service", "filesharing", "search_engine", "index"),
                 "other services (hosted wallets, ICO, faucets, hosting)"),
)  # fmt: skip

CATEGORY_NAMES: tuple[str, ...] = tuple(c.name for c in CATEGORIES)
CATEGORY_INDEX: dict[str, int] = {c.name: i for i, c in enumerate(CATEGORIES)}
RISK_CATEGORIES: frozenset[str] = frozenset(c.name for c in CATEGORIES if c.risk)
# concept id -> index of its category
CONCEPT_CATEGORY: dict[str, int] = {
    concept: i for i, cat in enumerate(CATEGORIES) for concept in cat.concepts
}

for _concept in CONCEPT_CATEGORY:  # a mapping typo would silently drop tags
    assert _concept in CONCEPTS, _concept


def category_of_concept(concept: str | None) -> int | None:
    """Index into :data:`CATEGORIES` of one concept id (legacy ids mapped), or None."""
    if not concept:
        return None
    concept = LEGACY_CONCEPTS.get(concept, concept)
    return CONCEPT_CATEGORY.get(concept)


def category_of_tags(concepts: Iterable[str | None]) -> int | None:
    """The highest-priority category among all concepts of an address's tags, or None."""
    best: int | None = None
    for concept in concepts:
        idx = category_of_concept(concept)
        if idx is not None and (best is None or idx < best):
            best = idx
    return best


def mapping_sql_values() -> str:
    """``VALUES (concept, category_index), ...`` for joining the mapping inside DuckDB."""
    pairs = list(CONCEPT_CATEGORY.items()) + [
        (legacy, CONCEPT_CATEGORY[target])
        for legacy, target in LEGACY_CONCEPTS.items()
        if target in CONCEPT_CATEGORY
    ]
    return ", ".join(f"('{c}', {i})" for c, i in pairs)
