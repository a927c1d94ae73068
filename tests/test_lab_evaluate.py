"""Scoring a trace against the heist lab's ground truth: hand-computed recall and precision."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from chainsleuth.errors import ConfigError
from chainsleuth.flows.trace import TraceResult
from chainsleuth.lab.evaluate import evaluate, evaluate_against
from chainsleuth.store import Ledger

T0 = datetime(2025, 2, 21, tzinfo=UTC)


def _result(endpoints: list[dict[str, Any]], holdings: list[dict[str, Any]], edges: list[dict[str, Any]],
            chain: str = "eth") -> TraceResult:  # fmt: skip
    return TraceResult(chain=chain, model="haircut", backward=False, seeds=["0xseed"], seed_value={"ETH": 100},
                       edges=edges, endpoints=endpoints, holdings=holdings, fees={}, left={})  # fmt: skip


def _end(address: str, value: int, asset: str = "ETH", **kw: Any) -> dict[str, Any]:
    return {"address": address, "asset": asset, "value": value, "first_time": T0, "last_time": T0, **kw}


TRUTH = [
    {"chain": "eth", "service": "ExA", "kind": "exchange", "address": "0xA", "asset": "ETH", "value": 40},
    {"chain": "eth", "service": "ExA", "kind": "exchange", "address": "0xA", "asset": "ETH", "value": 10},
    {"chain": "eth", "service": "OTC", "kind": "otc", "address": "0xO", "asset": "ETH", "value": 20},
    {"chain": "btc", "service": "ExB", "kind": "exchange", "address": "bc1x", "asset": "BTC", "value": 7},
    {"chain": "eth", "service": "Mix", "kind": "mixer", "address": "0xM", "asset": "ETH", "value": 10},
    {"chain": "eth", "service": "", "kind": "unspent", "address": "0xU", "asset": "ETH", "value": 20},
]
STOLEN = [{"chain": "eth", "address": a, "asset": "ETH", "value": 1} for a in ("0xs1", "0xs2", "0xs3")]


def test_recall_is_capped_per_endpoint_and_precision_counts_false_endpoints() -> None:
    res = _result(
        # 0xA gets more than its truth (60 > 50): credit capped at 50; 0xO half; a clean exchange 0xF flagged
        [_end("0xa", 60), _end("0xO", 10), _end("0xF", 5), _end("0xM", 10)],
        [{"address": "0xU", "asset": "ETH", "value": 15}, {"address": "0xs1", "asset": "ETH", "value": 3}],
        [{"from": "0xseed", "to": "0xs1", "asset": "ETH", "value": 30},
         {"from": "0xs1", "to": "0xnot", "asset": "ETH", "value": 2},
         {"from": "0xs1", "to": "0xa", "asset": "ETH", "value": 60}],
    )  # fmt: skip
    ev = evaluate_against([res], TRUTH, STOLEN)
    rec = {(r.kind, r.chain, r.asset): (r.found, r.truth) for r in ev.recall}
    assert rec == {("exchange", "eth", "ETH"): (50, 50), ("otc", "eth", "ETH"): (10, 20),
                   ("exchange", "btc", "BTC"): (0, 7), ("mixer", "eth", "ETH"): (10, 10),
                   ("unspent", "eth", "ETH"): (15, 20)}  # fmt: skip
    assert ev.service_recall() == {"BTC": (0, 7), "ETH": (60, 70)}
    # flagged endpoints 0xa, 0xo, 0xf, 0xm; true 0xa, 0xo, 0xm (bc1x is on the other chain)
    assert (ev.endpoints_true, ev.endpoints_flagged, ev.endpoints_truth) == (3, 4, 4)
    assert ev.endpoint_precision == Fraction(3, 4)
    assert ev.endpoint_value == {"ETH": (80, 85)}
    # flagged addresses: 0xu, 0xs1 (holdings), 0xnot, 0xa (edges); true: s1, s2, s3, a, o, x, m, u
    assert (ev.addresses_true, ev.addresses_flagged, ev.addresses_truth) == (3, 4, 8)
    assert {(m["address"], m["found"], m["truth"]) for m in ev.misses} == {("0xo", 10, 20), ("bc1x", 0, 7),
                                                                            ("0xu", 15, 20)}  # fmt: skip


def test_bridged_endpoints_count_on_their_own_chain() -> None:
    res = _result([_end("bc1x", 7, asset="BTC", chain="btc")], [], [])
    ev = evaluate_against([res], TRUTH, STOLEN)
    assert ev.service_recall()["BTC"] == (7, 7)
    assert ev.to_json()["service_recall"]["BTC"] == {"found": "7", "truth": "7", "ratio": 1.0}


def test_min_value_drops_dust_from_the_flagged_sets() -> None:
    res = _result([_end("0xa", 50), _end("0xF", 1)], [], [{"from": "0xs", "to": "0xdust", "asset": "ETH", "value": 1}])
    ev = evaluate_against([res], TRUTH, STOLEN, min_value=1)
    assert (ev.endpoints_true, ev.endpoints_flagged) == (1, 1) and ev.addresses_flagged == 0


def test_evaluate_needs_the_lab_tables(tmp_path: Path) -> None:
    with Ledger(tmp_path / "x.duckdb") as led, pytest.raises(ConfigError, match=r"lab\.endpoints"):
        evaluate(led, _result([], [], []))


def test_fees_services_and_deposit_addresses_the_trace_passed_through() -> None:
    truth: list[dict[str, Any]] = [
        {"chain": "eth", "service": "ExA", "kind": "exchange", "address": "0xdep", "asset": "ETH", "value": 30},
        {"chain": "eth", "service": "", "kind": "fee", "address": None, "asset": "ETH", "value": 4},
    ]
    services = [{"chain": "eth", "service": "ExA", "address": a} for a in ("0xdep", "0xhot")]
    # the deposit address is no stop: the trace passes it (edge 30 in) and stops at the hot wallet
    res = _result([_end("0xhot", 30)], [], [{"from": "0xs", "to": "0xdep", "asset": "ETH", "value": 30},
                                             {"from": "0xdep", "to": "0xhot", "asset": "ETH", "value": 30}])
    res.fees = {"ETH": 3}
    ev = evaluate_against([res], truth, [], services=services)
    rec = {(r.kind, r.asset): (r.found, r.truth) for r in ev.recall}
    assert rec == {("exchange", "ETH"): (30, 30), ("fee", "ETH"): (3, 4)}
    assert ev.by_service == [{"service": "ExA", "asset": "ETH", "truth": 30, "found": 30}]
    # the hot wallet is not the true deposit address, but it is the same service
    assert (ev.endpoints_true, ev.endpoints_true_service, ev.endpoints_flagged) == (0, 1, 1)
