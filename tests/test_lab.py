"""The heist lab on real nodes (anvil + Bitcoin Knots regtest): ground truth checked
against the ingested ledger, the conversions the lab must produce, determinism."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from chainsleuth.cli.main import app
from chainsleuth.errors import ConfigError
from chainsleuth.lab import LabParams, LabResult, load_dataset, parse_scale, run_lab
from chainsleuth.lab.ground_truth import conservation
from chainsleuth.lab.nodes import find_node_file
from chainsleuth.lab.scenario import BRIDGE_RATE, LOCKED_TOPIC, PEEL_HOPS_PER_BLOCK, SCALES, Delays
from chainsleuth.store import Ledger
from nodes_bitcoin import install_bitcoind
from nodes_ethereum import install_anvil

ETH_C, BTC_C = "ethereum_lab", "bitcoin_lab"


@pytest.fixture(scope="module")
def small_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabResult, Ledger, Path]]:
    install_anvil()
    install_bitcoind()
    out = tmp_path_factory.mktemp("lab")
    res = run_lab(LabParams(seed=7, scale="small", out=out, export_demo=out / "dataset"))
    with Ledger(res.ledger, read_only=True) as ledger:
        yield res, ledger, out


def q(ledger: Ledger, sql: str, params: list[object] | None = None) -> list[tuple[object, ...]]:
    return ledger.con.execute(sql, params or []).fetchall()


# -- ground truth -------------------------------------------------------------------------------
@pytest.mark.node
def test_books_balance_exactly_per_asset(small_lab: tuple[LabResult, Ledger, Path]) -> None:
    _, ledger, _ = small_lab
    sc = SCALES["small"]
    rows = conservation(ledger)
    assert rows and all(r["difference"] == 0 for r in rows), rows
    theft = dict(q(ledger, "SELECT asset, sum(value) FROM lab.stolen WHERE step = 'theft' GROUP BY asset"))
    assert theft.pop("ETH") == sc.stolen_eth * 10**18
    assert sorted(theft.values()) == sorted([sc.stolen_usdt * 10**6, sc.stolen_usdc * 10**6])
    # stablecoins are all swapped: nothing of them reaches an endpoint, all is converted
    for token, value in theft.items():
        (swapped,) = q(ledger, "SELECT sum(src_value) FROM lab.conversions WHERE src_asset = ?", [token])[0]
        assert swapped == value
    kinds = {k for (k,) in q(ledger, "SELECT DISTINCT kind FROM lab.endpoints")}
    assert kinds == {"exchange", "otc", "mixer", "unspent", "fee"}
    steps = {s for (s,) in q(ledger, "SELECT DISTINCT step FROM lab.steps")}
    assert {"theft", "split", "swap", "mixer_deposit", "mixer_withdraw", "bridge_lock", "bridge_payout", "peel",
            "consolidation", "exchange_deposit", "otc_deposit", "background"} <= steps
    seeds = q(ledger, "SELECT role, count(*) FROM lab.seeds GROUP BY role ORDER BY role")
    assert seeds == [("thief", 1), ("victim", 1)]


@pytest.mark.node
def test_endpoints_are_real_transfers_in_the_ledger(small_lab: tuple[LabResult, Ledger, Path]) -> None:
    _, ledger, _ = small_lab
    # every exchange/OTC deposit on Ethereum is a native transfer of exactly that value
    missing = q(ledger, f"""
        SELECT e.address, e.transaction_hash, e.value FROM lab.endpoints e
        WHERE e.chain = '{ETH_C}' AND e.kind IN ('exchange', 'otc') AND NOT EXISTS (
            SELECT 1 FROM {ETH_C}.transfers t WHERE t.transaction_hash = e.transaction_hash
              AND t.to_address = e.address AND t.kind = 'native' AND t.amount = e.value)""")
    assert missing == []
    # and on Bitcoin an output of exactly that value to that address
    missing = q(ledger, f"""
        SELECT e.address, e.transaction_hash FROM lab.endpoints e
        WHERE e.chain = '{BTC_C}' AND e.kind IN ('exchange', 'otc') AND NOT EXISTS (
            SELECT 1 FROM {BTC_C}.outputs o WHERE o.transaction_hash = e.transaction_hash
              AND o.addresses[1] = e.address AND o.value = e.value)""")
    assert missing == []
    # every stolen UTXO exists with its value
    missing = q(ledger, f"""
        SELECT s.transaction_hash, s.output_index FROM lab.stolen s WHERE s.chain = '{BTC_C}' AND NOT EXISTS (
            SELECT 1 FROM {BTC_C}.outputs o WHERE o.transaction_hash = s.transaction_hash
              AND o."index" = s.output_index AND o.addresses[1] = s.address AND o.value = s.value)""")
    assert missing == []


@pytest.mark.node
def test_unspent_matches_ledger_balances(small_lab: tuple[LabResult, Ledger, Path]) -> None:
    _, ledger, _ = small_lab
    eth = q(ledger, f"""
        WITH u AS (SELECT address, value FROM lab.endpoints WHERE chain = '{ETH_C}' AND kind = 'unspent'
                   AND asset = 'ETH'),
             bal AS (SELECT a AS address, sum(v) AS balance FROM (
                 SELECT to_address AS a, amount AS v FROM {ETH_C}.transfers WHERE asset = 'ETH'
                 UNION ALL SELECT from_address, -amount FROM {ETH_C}.transfers WHERE asset = 'ETH')
                 GROUP BY a)
        SELECT u.address, u.value, bal.balance FROM u LEFT JOIN bal USING (address)""")
    assert eth and all(v == b for _, v, b in eth), eth
    btc = q(ledger, f"""
        SELECT e.transaction_hash, e.output_index, o.value, i.transaction_hash, e.value
        FROM lab.endpoints e LEFT JOIN {BTC_C}.outputs o
          ON o.transaction_hash = e.transaction_hash AND o."index" = e.output_index
        LEFT JOIN {BTC_C}.inputs i
          ON i.spent_transaction_hash = e.transaction_hash AND i.spent_output_index = e.output_index
        WHERE e.chain = '{BTC_C}' AND e.kind = 'unspent'""")
    assert btc and all(v == ev and spent is None for _, _, v, spent, ev in btc), btc
    # the thief's fees are the ledger's fees of the thief's transactions
    (fees_truth, fees_ledger) = q(ledger, f"""
        SELECT (SELECT sum(value) FROM lab.endpoints WHERE chain = '{BTC_C}' AND kind = 'fee'),
               (SELECT sum(fee) FROM {BTC_C}.transactions WHERE hash IN (
                   SELECT transaction_hash FROM lab.steps WHERE chain = '{BTC_C}'
                   AND step IN ('peel', 'consolidation', 'exchange_deposit', 'otc_deposit')))""")[0]
    assert fees_truth == fees_ledger


@pytest.mark.node
def test_swaps_and_bridge_are_decoded_and_matched(small_lab: tuple[LabResult, Ledger, Path]) -> None:
    res, ledger, _ = small_lab
    conv = q(ledger, "SELECT src_transaction_hash, src_asset, src_value, dst_value FROM lab.conversions "
                     "WHERE step = 'swap' ORDER BY 1")
    assert len(conv) >= 2
    swaps = {r[0]: r[1:] for r in q(ledger, "SELECT transaction_hash, token_in, amount_in, amount_out "
                                            "FROM flows.swaps WHERE protocol = 'uniswap_v2'")}
    for tx, token, value_in, value_out in conv:
        assert swaps[tx] == (token, value_in, value_out)
    locks = q(ledger, f"SELECT count(*) FROM {ETH_C}.logs WHERE topics[1] = ?", [LOCKED_TOPIC])[0][0]
    bridge = q(ledger, "SELECT src_transaction_hash, src_value, dst_transaction_hash, dst_value FROM lab.conversions "
                       "WHERE step = 'bridge' ORDER BY 1")
    assert locks == len(bridge) == SCALES["small"].bridge_locks
    matched = {r[0]: r[1:] for r in q(ledger, "SELECT src_transaction_hash, match_key, dst_transaction_hash, dst_amount "
                                              "FROM flows.bridge_transfers ORDER BY 1")}
    for src_tx, wei, dst_tx, sats in bridge:
        key, dst, amount = matched[src_tx]
        assert key.startswith("deposit_id:") and dst == dst_tx and amount == sats
        assert wei * BRIDGE_RATE[0] // BRIDGE_RATE[1] - sats == wei * BRIDGE_RATE[0] // BRIDGE_RATE[1] // 1000
    assert res.bridge_unmatched == 0


@pytest.mark.node
def test_tags_written_for_services_and_thief(small_lab: tuple[LabResult, Ledger, Path]) -> None:
    _, ledger, _ = small_lab
    cats = dict(q(ledger, "SELECT category, count(*) FROM tags.tags WHERE source = 'heist-lab' GROUP BY ALL"))
    assert set(cats) == {"exchange", "mixing_service", "defi_bridge", "defi_dex", "perpetrator"}
    thief = q(ledger, "SELECT t.address, t.abuse, t.actor FROM tags.tags t JOIN lab.seeds s USING (address) "
                      "WHERE s.role = 'thief'")
    assert len(thief) == 1 and thief[0][1:] == ("service_hack", "lazarusgroup")


@pytest.mark.node
def test_dataset_round_trip(small_lab: tuple[LabResult, Ledger, Path], tmp_path: Path) -> None:
    res, ledger, out = small_lab
    assert res.exported is not None and res.export_bytes > 0
    with Ledger(tmp_path / "loaded.duckdb") as fresh:
        load_dataset(fresh, out / "dataset")
        for table in ("lab.endpoints", "lab.stolen", "tags.tags", "flows.swaps", "flows.bridge_transfers",
                      f"{ETH_C}.logs", f"{BTC_C}.outputs"):
            sql = f"SELECT * FROM {table} ORDER BY ALL" if table.startswith("lab.") else \
                f"SELECT count(*) FROM {table}"
            assert fresh.con.execute(sql).fetchall() == ledger.con.execute(sql).fetchall(), table
        assert all(r["difference"] == 0 for r in conservation(fresh))


# -- determinism ----------------------------------------------------------------------------------
@pytest.mark.node
def test_same_seed_same_ground_truth(tmp_path: Path) -> None:
    install_anvil()
    install_bitcoind()

    def truth(seed: int, name: str) -> list[tuple[object, ...]]:
        res = run_lab(LabParams(seed=seed, scale="tiny", out=tmp_path / name))
        with Ledger(res.ledger, read_only=True) as led:
            return led.con.execute(
                "SELECT chain, address, transaction_hash, output_index, asset, value, step FROM lab.stolen "
                "UNION ALL SELECT chain, address, transaction_hash, output_index, asset, value, kind "
                "FROM lab.endpoints ORDER BY ALL").fetchall()

    first = truth(3, "a")
    assert first == truth(3, "b")
    other = truth(4, "c")
    assert {r[1] for r in other}.isdisjoint({r[1] for r in first if r[6] != "exchange"} - {""})


# -- bad input -------------------------------------------------------------------------------------
def test_scale_and_delays_parsing() -> None:
    assert parse_scale("small").hops == SCALES["small"].hops
    custom = parse_scale("small,hops=5,splits=9", background=7)
    assert (custom.hops, custom.splits, custom.background, custom.name) == (5, 9, 7, "small+custom")
    assert Delays.parse("mixer=60,peel=5") == Delays(mixer=60, peel=5)
    for bad in ("huge", "small,colour=3", "small,hops=x", "small,hops=0"):
        with pytest.raises(ConfigError):
            parse_scale(bad)
    for bad in ("mixer=1h", "sleep=3", "mixer=0"):
        with pytest.raises(ConfigError):
            Delays.parse(bad)
    with pytest.raises(ConfigError, match="make nodes"):
        find_node_file(Path("no/such/binary"), "thing")


def test_cli_bad_scale_is_one_line_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["lab", "--scale", "enormous", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError) and "unknown preset" in str(result.exception)


@pytest.mark.node
def test_lab_on_given_nodes(anvil_fresh: Any, fresh_bitcoind: Any, tmp_path: Path) -> None:
    """--anvil-rpc/--bitcoin-rpc: the lab plays on running nodes (automine on, wall-clock time)."""
    res = run_lab(LabParams(seed=1, scale="tiny", out=tmp_path, anvil_rpc=anvil_fresh.rpc_url,
                            bitcoin_rpc=fresh_bitcoind.rpc_url))
    assert res.bridge_matched == SCALES["tiny"].bridge_locks and res.bridge_unmatched == 0
    assert all(r["difference"] == 0 for r in res.conservation)
    with Ledger(res.ledger, read_only=True) as led:
        (n,) = led.con.execute("SELECT count(*) FROM lab.endpoints WHERE kind = 'exchange'").fetchone() or (0,)
        assert n > 0


@pytest.mark.node
def test_cli_lab_tiny(tmp_path: Path) -> None:
    install_anvil()
    install_bitcoind()
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["-q", "lab", "--scale", "tiny", "--seed", "2", "--hops", "3",
                                      "--delays", "mixer=3600", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "books balance on every asset: yes" in result.output
    assert "bridge 2 matched / 0 unmatched" in result.output
    with Ledger(out / "lab.duckdb", read_only=True) as led:
        (peels,) = led.con.execute("SELECT count(*) FROM lab.steps WHERE step = 'peel'").fetchone() or (0,)
        assert peels == 3 * SCALES["tiny"].bridge_locks  # --hops per bridged coin
        (p,) = led.con.execute("SELECT value FROM lab.meta WHERE key = 'params'").fetchone() or ("",)
        assert '"mixer": 3600' in p


@pytest.mark.node
def test_peel_chain_longer_than_the_mempool_ancestor_limit(tmp_path: Path) -> None:
    """26 peel hops in a row would be refused (25 unconfirmed ancestors at most): the lab
    confirms the chain every PEEL_HOPS_PER_BLOCK hops, and every hop is still there."""
    install_anvil()
    install_bitcoind()
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["-q", "lab", "--scale", "tiny", "--seed", "2", "--hops", "26", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "books balance on every asset: yes" in result.output
    with Ledger(out / "lab.duckdb", read_only=True) as led:
        per_block = q(led, f"""SELECT t.block_number, count(*) FROM lab.steps s
                              JOIN {BTC_C}.transactions t ON t.hash = s.transaction_hash
                              WHERE s.step = 'peel' GROUP BY ALL""")  # fmt: skip
        assert sum(int(str(n)) for _, n in per_block) == 26 * SCALES["tiny"].bridge_locks
        assert max(int(str(n)) for _, n in per_block) <= PEEL_HOPS_PER_BLOCK


# -- loading the shipped dataset into a ledger that holds other work (no node needed) -------------
def _snapshot(led: Ledger) -> dict[str, list[tuple[object, ...]]]:
    tables = ("tags.tags", "tags.imports", "lab.endpoints", "lab.steps", "flows.swaps", "flows.pools",
              "flows.bridge_transfers", f"{ETH_C}.blocks", f"{ETH_C}.logs", f"{BTC_C}.outputs")
    return {t: q(led, f"SELECT * EXCLUDE (imported_at) FROM {t} ORDER BY ALL" if t == "tags.imports"
                 else f"SELECT * FROM {t} ORDER BY ALL") for t in tables}  # fmt: skip


def test_load_dataset_keeps_the_users_own_work_and_is_idempotent(tmp_path: Path) -> None:
    from chainsleuth.demo import default_dataset
    from chainsleuth.tags.importers import import_tags

    dataset = default_dataset()
    user_csv = tmp_path / "mine.csv"
    user_csv.write_text("address,currency,label,confidence,category\n"
                        "1BoatSLRHtKNngkdXEeobR76b53LETtpyT,BTC,my own tag,manual_transaction,exchange\n")  # fmt: skip
    with Ledger(tmp_path / "led.duckdb") as led:
        import_tags(led, "csv", user_csv)
        mine = q(led, "SELECT * FROM tags.tags")
        (user_import,) = q(led, "SELECT import_id, kind FROM tags.imports WHERE kind = 'csv'")
        load_dataset(led, dataset)
        # a swap on another chain, and a stale block past the dataset's end on a lab chain
        led.con.execute("INSERT INTO flows.swaps BY NAME SELECT * REPLACE ('ethereum' AS chain) FROM flows.swaps "
                        "ORDER BY ALL LIMIT 1")  # fmt: skip
        led.con.execute(f"INSERT INTO {ETH_C}.blocks SELECT * REPLACE (number + 100000 AS number) "
                        f"FROM {ETH_C}.blocks ORDER BY number DESC LIMIT 1")  # fmt: skip
        first = _snapshot(led)
        load_dataset(led, dataset)
        second = _snapshot(led)
        # the user's tag and its import survive both loads, with their ids
        assert q(led, "SELECT * FROM tags.tags WHERE import_id = ?", [user_import[0]]) == mine
        assert user_import in q(led, "SELECT import_id, kind FROM tags.imports")
        # the dataset's own tags: 18 heist-lab tags under one heist-lab import, once
        assert q(led, "SELECT kind, rows FROM tags.imports WHERE kind = 'heist-lab'") == [("heist-lab", 18)]
        assert q(led, "SELECT count(*), count(DISTINCT tag_id) FROM tags.tags WHERE source = 'heist-lab'") == [(18, 18)]
        assert q(led, "SELECT count(*) FROM flows.swaps WHERE chain = 'ethereum'") == [(1,)]
        assert q(led, f"SELECT count(*) FROM flows.swaps WHERE chain = '{ETH_C}'") == [(930,)]
        assert q(led, f"SELECT count(*), max(number) FROM {ETH_C}.blocks") == [(936, 935)]
        assert q(led, "SELECT count(*) FROM lab.steps") == [(5570,)]
        # the second load changed nothing but the stale block (the dataset's chain is exact)
        assert {k for k in first if first[k] != second[k]} == {f"{ETH_C}.blocks"}
        load_dataset(led, dataset)
        assert _snapshot(led) == second


def test_load_dataset_bad_folder_changes_nothing(tmp_path: Path) -> None:
    import shutil

    from chainsleuth.demo import default_dataset
    from chainsleuth.errors import InputFileError

    broken = tmp_path / "broken"
    shutil.copytree(default_dataset(), broken)
    (broken / "_schemas" / "lab.steps.parquet").unlink()
    with Ledger(tmp_path / "led.duckdb") as led:
        load_dataset(led, default_dataset())
        before = _snapshot(led)
        with pytest.raises(InputFileError, match=r"lab\.steps\.parquet"):
            load_dataset(led, broken)
        assert _snapshot(led) == before
