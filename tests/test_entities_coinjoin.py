"""CoinJoin detectors on transactions with the real shapes and denominations,
each tagged in ``entities.transaction_tags`` and excluded from co-spend."""

from __future__ import annotations

import pytest

from chainsleuth.entities import cluster_chain, cluster_members
from chainsleuth.entities import coinjoin as cj
from chainsleuth.entities.synthetic import Tx, write_utxo_blocks
from chainsleuth.store import Ledger

Spec = tuple[list[tuple[str, int]], list[tuple[str | None, int]]]


def wpkh(tag: str, i: int) -> str:
    """A P2WPKH-shaped bech32 address (42 characters); only its shape matters here."""
    return f"bc1q{tag}{i:0{38 - len(tag)}d}"


def whirlpool_mix() -> Spec:
    # 0.01 BTC pool: 2 remixes (exactly the denomination) + 3 premixes (denomination + miner fee)
    ins = [(f"1wp{i}", v) for i, v in enumerate([1_000_000, 1_000_000, 1_000_170, 1_000_170, 1_000_170])]
    return ins, [(f"1wpout{i}", 1_000_000) for i in range(5)]


def whirlpool_tx0() -> Spec:
    premix = 1_000_170
    outs: list[tuple[str | None, int]] = [(None, 0), ("1coordinatorfee", 50_000)]
    outs += [(f"1premix{i}", premix) for i in range(4)]
    outs += [("1tx0change", 50_000_000 + 10_000_000 - 50_000 - 4 * premix - 1_000)]
    return [("1tx0in0", 50_000_000), ("1tx0in1", 10_000_000)], outs


def wasabi2() -> Spec:
    ins = [(wpkh("wsin", i), 2_000_000 - 1_000 * i) for i in range(60)]
    std = [1_048_576] * 20 + [1_000_000] * 15 + [531_441] * 15  # 2^20, 10^6, 3^12
    change = [987_654, 876_543, 765_432, 654_321, 543_210]
    values = sorted(std + change, reverse=True)
    return ins, [(wpkh("wsout", i), v) for i, v in enumerate(values)]


def wasabi1() -> Spec:
    ins = [(f"1ww1in{i}", 12_000_000 + 7_777 * i) for i in range(15)]
    outs: list[tuple[str | None, int]] = [(f"1ww1mix{i}", 9_987_655) for i in range(12)]
    outs += [(f"1ww1chg{i}", 1_900_000 + 7_777 * i) for i in range(12)]
    outs += [("1ww1coordinator", 3_691_350)]
    return ins, outs


def joinmarket(mixed_types: bool = False) -> Spec:
    ins = [(wpkh("jmin", i), 20_000_000 + 1_111 * i) for i in range(4)]
    if mixed_types:
        ins[0] = ("1legacyinput", ins[0][1])
    outs: list[tuple[str | None, int]] = [(wpkh("jmcj", i), 15_000_000) for i in range(3)]
    outs += [(wpkh("jmchg", i), 4_990_000 + 1_111 * i) for i in range(3)]
    return ins, outs


def batch_payout() -> Spec:
    # an exchange paying 5 equal withdrawals from one input: not a CoinJoin
    return [("1exchange", 60_000_000)], [(f"1user{i}", 10_000_000) for i in range(5)] + [("1exchange", 9_990_000)]


def dust_equal() -> Spec:
    # BlockSci excludes the dust values 546/2730 from the equal-output rule
    return [("1d0", 10_000), ("1d1", 10_000)], [("1d2", 546), ("1d3", 546), ("1d4", 17_000)]


SHAPES = {
    "coinjoin:whirlpool": whirlpool_mix(),
    "whirlpool:tx0": whirlpool_tx0(),
    "coinjoin:wasabi2": wasabi2(),
    "coinjoin:wasabi1": wasabi1(),
    "coinjoin:joinmarket": joinmarket(),
    "coinjoin:generic": joinmarket(mixed_types=True),
    "none:batch": batch_payout(),
    "none:dust": dust_equal(),
}


def _ledger_with(ledger: Ledger, specs: dict[str, Spec]) -> None:
    fund_outputs: list[tuple[str | None, int]] = []
    txs: list[Tx] = []
    for name, (ins, outs) in specs.items():
        refs = []
        for addr, value in ins:
            refs.append(("fund", len(fund_outputs)))
            fund_outputs.append((addr, value))
        txs.append(Tx(name, refs, outs))
    write_utxo_blocks(ledger, "btc", [[Tx("fund", [], fund_outputs)], txs])


def test_each_coinjoin_is_tagged_and_excluded(ledger: Ledger) -> None:
    _ledger_with(ledger, SHAPES)
    res = cluster_chain(ledger, "btc")
    tags = ledger.con.execute(
        "SELECT transaction_hash, tag, confidence, details FROM entities.transaction_tags "
        "ORDER BY transaction_hash").fetchall()
    assert [(h, t) for h, t, _, _ in tags] == sorted(
        (k, k) for k in SHAPES if not k.startswith("none:"))
    assert {t: c for _, t, c, _ in tags} == {
        "coinjoin:whirlpool": 0.99, "whirlpool:tx0": 0.95, "coinjoin:wasabi2": 0.95,
        "coinjoin:wasabi1": 0.9, "coinjoin:joinmarket": 0.8, "coinjoin:generic": 0.7}
    details = {h: d for h, _, _, d in tags}
    assert details["coinjoin:wasabi2"] == '{"inputs": 60, "outputs": 55, "excluded_from_cospend": true}'
    assert details["whirlpool:tx0"] == '{"inputs": 2, "outputs": 7, "excluded_from_cospend": false}'
    assert res.transaction_tags == {t: 1 for t in SHAPES if not t.startswith("none:")}
    # the only unions: the Tx0 (one owner entering a pool) and the dust tx's two inputs
    assert ledger.con.execute(
        "SELECT transaction_hash, address_a, address_b FROM entities.cluster_evidence "
        "ORDER BY 1").fetchall() == [("none:dust", "1d0", "1d1"), ("whirlpool:tx0", "1tx0in0", "1tx0in1")]
    members = cluster_members(ledger, "btc")
    for name in ("coinjoin:whirlpool", "coinjoin:wasabi2", "coinjoin:wasabi1",
                 "coinjoin:joinmarket", "coinjoin:generic"):
        ins = [a for a, _ in SHAPES[name][0]]
        assert len({members[a] for a in ins}) == len(ins), name


def test_exclusion_can_be_switched_off(ledger: Ledger) -> None:
    _ledger_with(ledger, {"coinjoin:whirlpool": whirlpool_mix()})
    res = cluster_chain(ledger, "btc", coinjoin_exclusion=False)
    assert res.unions == 4 and res.transaction_tags == {"coinjoin:whirlpool": 1}
    assert len({cluster_members(ledger, "btc")[f"1wp{i}"] for i in range(5)}) == 1


@pytest.mark.parametrize(("name", "mutate", "expected"), [
    # a 5x5 at a value that is no pool denomination is not a Whirlpool mix
    ("coinjoin:whirlpool", lambda s: (s[0], [(a, 2_000_000) for a, _ in s[1]]), ""),
    # an input below the pool denomination cannot enter the pool
    ("coinjoin:whirlpool", lambda s: ([(s[0][0][0], 999_999), *s[0][1:]], s[1]), ""),
    # 49 inputs: below Dumplings' WabiSabi minimum (and 20 equal outputs of 55 are too
    # few for the generic rule, which needs exactly 28)
    ("coinjoin:wasabi2", lambda s: (s[0][:49], s[1]), ""),
    # outputs not sorted descending: not a WabiSabi round
    ("coinjoin:wasabi2", lambda s: (s[0], list(reversed(s[1]))), ""),
    # 9 equal outputs is below the Wasabi 1 anonymity-set floor
    ("coinjoin:wasabi1", lambda s: (s[0], s[1][3:]), ""),
    # Tx0 without the OP_RETURN fee payload
    ("whirlpool:tx0", lambda s: (s[0], s[1][1:]), ""),
])
def test_near_misses(ledger: Ledger, name: str, mutate: object, expected: str) -> None:
    spec = mutate(SHAPES[name])  # type: ignore[operator]
    _ledger_with(ledger, {name: spec})
    cluster_chain(ledger, "btc")
    tags = ledger.con.execute("SELECT tag FROM entities.transaction_tags").fetchall()
    assert tags == ([(expected,)] if expected else [])


def test_wasabi2_denominations() -> None:
    d = set(cj.WASABI2_DENOMINATIONS.tolist())
    assert {5_000, 8_192, 6_561, 13_122, 10_000, 20_000, 50_000, 1_048_576, 134_375_000_000} <= d
    assert not {5_001, 7_000, 999_999, 3} & d
    assert min(d) == 5_000 and max(d) == 134_375_000_000
