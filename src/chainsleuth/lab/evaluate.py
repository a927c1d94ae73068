"""Score a trace against the heist lab's ground truth (schema ``lab`` in the ledger).

Ground truth, written by the lab (``chainsleuth lab``) and shipped in the demo dataset:

* ``lab.endpoints(chain, service, kind, address, transaction_hash, asset, value)``: where
  the stolen value ended; ``kind`` is ``exchange``, ``otc``, ``mixer`` (left in the mixer)
  or ``unspent`` (still held by the launderer);
* ``lab.stolen(chain, address, transaction_hash, output_index, asset, value, step)``:
  every address (and output) that held stolen value.

Measures (all exact integers; ratios as ``Fraction``):

* **recall** per (kind, chain, asset): of the stolen value that truly ended at
  endpoints of that kind, how much the trace put there. Service kinds (exchange, otc,
  mixer) are matched against the trace's endpoints, ``unspent`` against its holdings; per
  address the credit is capped at the true value, so over-attribution elsewhere cannot
  buy recall. An endpoint that is a deposit address (``service_address`` set by the
  trace) also delivers its value to that service address. The headline is the **service recall** (exchange + OTC: what an
  investigator can ask a service to freeze), per asset.
* **endpoint precision**: of the endpoints the trace flagged (address with traced value
  > ``min_value``), how many are true endpoints (count), and how much of the flagged
  value sits at true endpoints (value, per asset).
* **address precision / recall**: of the addresses the trace says received taint (edge
  recipients and holdings), how many truly held stolen value (``lab.stolen``, the true
  endpoints, and the addresses of a service that received stolen value: its deposit
  addresses sweep to its hot wallets), and of those, how many the trace found.
* **per service**: what the trace's endpoints at any address of a service (``lab.services``)
  hold, against what the service truly received; and the endpoint precision at service
  level (the trace may stop at the hot wallet a true deposit address swept to).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ..errors import ConfigError
from ..flows.trace import TraceResult
from ..store import Ledger
from ..tags.store import table_exists

SERVICE_KINDS = ("exchange", "otc")
ENDPOINT_KINDS = ("exchange", "otc", "mixer")


def _ratio(num: int, den: int) -> Fraction | None:
    return Fraction(num, den) if den else None


@dataclass
class Recall:
    kind: str
    chain: str
    asset: str
    truth: int
    found: int

    @property
    def ratio(self) -> Fraction | None:
        return _ratio(self.found, self.truth)


@dataclass
class Evaluation:
    """The scores of one trace (or the union of per-chain traces) against ``lab.*``."""

    model: str
    recall: list[Recall] = field(default_factory=list)
    endpoints_flagged: int = 0
    endpoints_true: int = 0  # flagged endpoints that are true endpoints
    endpoints_truth: int = 0  # true endpoint addresses (exchange, otc, mixer)
    endpoint_value: dict[str, tuple[int, int]] = field(default_factory=dict)  # asset -> (at true, flagged)
    addresses_flagged: int = 0
    addresses_true: int = 0  # flagged and truly reached by stolen value (incl. swept-to hot wallets)
    addresses_found: int = 0  # flagged and in the truth set (held stolen value in the lab's books)
    addresses_truth: int = 0
    misses: list[dict[str, Any]] = field(default_factory=list)  # true endpoints not (fully) found
    by_service: list[dict[str, Any]] = field(default_factory=list)  # service, asset, truth, found
    from_mixer: dict[str, int] = field(default_factory=dict)  # asset -> true service value straight out of the mixer
    endpoints_true_service: int = 0  # flagged endpoints at an address of a service that got stolen value
    false_endpoints: list[dict[str, Any]] = field(default_factory=list)

    def service_recall(self, kinds: Sequence[str] = SERVICE_KINDS) -> dict[str, tuple[int, int]]:
        """asset -> (found, truth) over the endpoint kinds ``kinds``."""
        out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for r in self.recall:
            if r.kind in kinds:
                out[r.asset][0] += r.found
                out[r.asset][1] += r.truth
        return {a: (v[0], v[1]) for a, v in sorted(out.items())}

    @property
    def endpoint_precision(self) -> Fraction | None:
        return _ratio(self.endpoints_true, self.endpoints_flagged)

    @property
    def address_precision(self) -> Fraction | None:
        return _ratio(self.addresses_true, self.addresses_flagged)

    @property
    def address_recall(self) -> Fraction | None:
        return _ratio(self.addresses_found, self.addresses_truth)

    def to_json(self) -> dict[str, Any]:
        def f(x: Fraction | None) -> float | None:
            return None if x is None else float(x)

        return {
            "model": self.model,
            "recall": [{"kind": r.kind, "chain": r.chain, "asset": r.asset, "truth": str(r.truth),
                        "found": str(r.found), "ratio": f(r.ratio)} for r in self.recall],
            "service_recall": {a: {"found": str(fd), "truth": str(t), "ratio": f(_ratio(fd, t))}
                               for a, (fd, t) in self.service_recall().items()},
            "from_mixer": {a: str(v) for a, v in self.from_mixer.items()},
            "service_recall_without_mixer": {
                a: {"found": str(fd), "truth": str(t - self.from_mixer.get(a, 0)),
                    "ratio": f(_ratio(fd, t - self.from_mixer.get(a, 0)))}
                for a, (fd, t) in self.service_recall().items()},
            "endpoint_precision": {"true": self.endpoints_true, "flagged": self.endpoints_flagged,
                                   "ratio": f(self.endpoint_precision)},
            "endpoint_value_precision": {a: {"at_true": str(t), "flagged": str(fl), "ratio": f(_ratio(t, fl))}
                                         for a, (t, fl) in self.endpoint_value.items()},
            "address_precision": {"true": self.addresses_true, "flagged": self.addresses_flagged,
                                  "ratio": f(self.address_precision)},
            "address_recall": {"found": self.addresses_found, "truth": self.addresses_truth,
                               "ratio": f(self.address_recall)},
            "by_service": [{**r, "truth": str(r["truth"]), "found": str(r["found"])} for r in self.by_service],
            "endpoint_precision_service": {"true": self.endpoints_true_service, "flagged": self.endpoints_flagged,
                                           "ratio": f(_ratio(self.endpoints_true_service, self.endpoints_flagged))},
            "misses": [{k: (str(v) if isinstance(v, int) else v) for k, v in m.items()} for m in self.misses],
        }  # fmt: skip


def _norm(x: Any) -> str:
    return str(x).lower()


def ground_truth(ledger: Ledger) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``lab.endpoints`` and ``lab.stolen`` rows (values as ints); ConfigError when absent."""
    for t in ("endpoints", "stolen"):
        if not table_exists(ledger, "lab", t):
            raise ConfigError(f"the ledger has no lab.{t} table: load the heist lab dataset (chainsleuth demo) first")

    def rows(sql: str) -> list[dict[str, Any]]:
        rel = ledger.con.execute(sql)
        names = [d[0] for d in rel.description]
        return [dict(zip(names, r, strict=True)) for r in rel.fetchall()]

    ends = rows("SELECT chain, service, kind, address, transaction_hash, asset, CAST(value AS VARCHAR) AS value "
                "FROM lab.endpoints")  # fmt: skip
    stolen = rows("SELECT chain, address, asset, CAST(value AS VARCHAR) AS value FROM lab.stolen")
    for r in (*ends, *stolen):
        r["value"] = int(r["value"]) if r["value"] is not None else 0
    return ends, stolen


def evaluate(
    ledger: Ledger, results: TraceResult | Iterable[TraceResult], *, min_value: int = 0
) -> Evaluation:
    """Score ``results`` (one trace, or one per seed chain) against the lab's ground truth."""
    res_list = [results] if isinstance(results, TraceResult) else list(results)
    if not res_list:
        raise ConfigError("no trace results to evaluate")
    truth_ends, stolen = ground_truth(ledger)
    services: list[dict[str, Any]] = []
    if table_exists(ledger, "lab", "services"):
        rel = ledger.con.execute("SELECT chain, service, role, address FROM lab.services")
        services = [{"chain": c, "service": sv, "role": r, "address": a} for c, sv, r, a in rel.fetchall()]
    ev = evaluate_against(res_list, truth_ends, stolen, services=services, min_value=min_value)
    ev.from_mixer = mixer_downstream(ledger)
    return ev


def mixer_downstream(ledger: Ledger) -> dict[str, int]:
    """asset -> value at true exchange/OTC endpoints whose deposit was sent straight from a
    mixer withdrawal address (``lab.stolen`` step ``mixer_withdraw``), on account chains.

    No trace that stops at the mixer can find this value: it is what the mixer's
    unlinkability costs (value that left the mixer and was bridged first is not counted)."""
    out: dict[str, int] = {}
    for c in ledger.chains():
        if c["family"] != "ethereum":
            continue
        rows = ledger.con.execute(f"""
            SELECT e.asset, CAST(sum(e.value) AS VARCHAR) FROM lab.endpoints e
            JOIN "{c["name"]}".transactions t ON t.hash = e.transaction_hash
            WHERE e.chain = ? AND e.kind IN ('exchange', 'otc')
              AND t.from_address IN (SELECT address FROM lab.stolen WHERE step = 'mixer_withdraw' AND chain = ?)
            GROUP BY e.asset""", [c["name"], c["name"]]).fetchall()  # fmt: skip
        for asset, v in rows:
            out[str(asset)] = out.get(str(asset), 0) + int(v)
    return out


def evaluate_against(
    results: Sequence[TraceResult], truth_ends: Sequence[dict[str, Any]], stolen: Sequence[dict[str, Any]],
    *, services: Sequence[dict[str, Any]] = (), min_value: int = 0,
) -> Evaluation:
    """:func:`evaluate` on given ground-truth rows (pure; for tests and the bench).

    ``services`` (``lab.services`` rows: chain, service, address) name the addresses of
    each service (deposit addresses and hot wallets), for the per-service scores."""
    ev = Evaluation(model=",".join(sorted({r.model for r in results})))
    # what the trace put where: (chain, address, asset) -> value
    traced_end: dict[tuple[str, str, str], int] = defaultdict(int)
    traced_in: dict[tuple[str, str, str], int] = defaultdict(int)  # edge inflow
    traced_hold: dict[tuple[str, str, str], int] = defaultdict(int)
    traced_fees: dict[str, int] = defaultdict(int)
    flagged_addr: set[tuple[str, str]] = set()
    for res in results:
        for a, v in res.fees.items():
            traced_fees[_norm(a)] += int(v)
        for e in res.endpoints:
            chain = _norm(e.get("chain", res.chain))
            traced_end[(chain, _norm(e["address"]), _norm(e["asset"]))] += int(e["value"])
            if e.get("service_address"):
                # a deposit-address endpoint: the trace states the value goes on to this
                # service address (the deposit sweeps there), so it is delivered there too
                traced_in[(chain, _norm(e["service_address"]), _norm(e["asset"]))] += int(e["value"])
        for h in res.holdings:
            if h.get("address") is None:
                continue
            key = (_norm(h.get("chain", res.chain)), _norm(h["address"]), _norm(h["asset"]))
            traced_hold[key] += int(h["value"])
            if int(h["value"]) > min_value:
                flagged_addr.add(key[:2])
        for ed in res.edges:
            if ed.get("to") is None:
                continue
            key = (_norm(ed.get("chain", res.chain)), _norm(ed["to"]), _norm(ed["asset"]))
            traced_in[key] += int(ed["value"])
            if int(ed["value"]) > min_value:
                flagged_addr.add(key[:2])
    # recall per kind/chain/asset, credit capped per true (kind, chain, address, asset)
    truth: dict[tuple[str, str, str, str], int] = defaultdict(int)
    service_of: dict[tuple[str, str], str] = {(_norm(r["chain"]), _norm(r["address"])): str(r["service"])
                                              for r in services if r.get("address")}  # fmt: skip
    spelled = {_norm(t["asset"]): str(t["asset"]) for t in truth_ends}  # lower -> as the lab writes it
    fee_truth: dict[tuple[str, str], int] = defaultdict(int)
    for t in truth_ends:
        if str(t["kind"]) == "fee":  # gas and miner fees: compared per asset with the trace's fees
            fee_truth[(_norm(t["chain"]), _norm(t["asset"]))] += int(t["value"])
            continue
        tkey = (str(t["kind"]), _norm(t["chain"]), _norm(t["address"]), _norm(t["asset"]))
        truth[tkey] += int(t["value"])
        if t.get("service"):
            service_of.setdefault((tkey[1], tkey[2]), str(t["service"]))
    agg: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for (kind, chain, addr, asset), tv in sorted(truth.items()):
        key = (chain, addr, asset)
        # value the trace delivered there: its holding (unspent), else its endpoint value or,
        # when the address is no stop (a deposit address the trace passed through), its inflow
        got = traced_hold.get(key, 0) if kind == "unspent" else max(traced_end.get(key, 0), traced_in.get(key, 0))
        credit = min(got, tv)
        agg[(kind, chain, asset)][0] += tv
        agg[(kind, chain, asset)][1] += credit
        if credit < tv:
            ev.misses.append({"kind": kind, "chain": chain, "address": addr, "asset": spelled.get(asset, asset),
                              "service": service_of.get((chain, addr), ""), "truth": tv, "found": credit})  # fmt: skip
    for (chain, asset), tv in sorted(fee_truth.items()):
        credit = min(traced_fees.get(asset, 0), tv)
        agg[("fee", chain, asset)][0] += tv
        agg[("fee", chain, asset)][1] += credit
    ev.recall = [Recall(k, c, spelled.get(a, a), v[0], v[1]) for (k, c, a), v in sorted(agg.items())]
    # per service: what the trace's endpoints at any address of the service hold, capped at the truth
    svc_truth: dict[tuple[str, str], int] = defaultdict(int)
    for (kind, chain, addr, asset), tv in truth.items():
        if kind in ENDPOINT_KINDS:
            svc_truth[(service_of.get((chain, addr), addr), asset)] += tv
    svc_found: dict[tuple[str, str], int] = defaultdict(int)
    for (c, a, asset), v in traced_end.items():
        svc = service_of.get((c, a))
        if svc is not None:
            svc_found[(svc, asset)] += v
    ev.by_service = [{"service": svc, "asset": spelled.get(asset, asset), "truth": tv,
                      "found": min(tv, svc_found.get((svc, asset), 0))}
                     for (svc, asset), tv in sorted(svc_truth.items())]  # fmt: skip
    # endpoint precision
    true_end_addr = {(c, a) for (k, c, a, _), _v in truth.items() if k in ENDPOINT_KINDS}
    true_services = {svc for (svc, _a), tv in svc_truth.items() if tv > 0}
    flagged_end: dict[tuple[str, str], int] = defaultdict(int)
    value: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (c, a, asset), v in traced_end.items():
        if v <= min_value:
            continue
        flagged_end[(c, a)] += v
        value[asset][1] += v
        if (c, a) in true_end_addr:
            value[asset][0] += v
    ev.endpoints_flagged = len(flagged_end)
    ev.endpoints_true = len(set(flagged_end) & true_end_addr)
    ev.endpoints_true_service = sum(1 for k in flagged_end if service_of.get(k) in true_services)
    ev.endpoints_truth = len(true_end_addr)
    ev.endpoint_value = {spelled.get(a, a): (v[0], v[1]) for a, v in sorted(value.items())}
    ev.false_endpoints = [{"chain": c, "address": a, "value": v, "service": service_of.get((c, a), "")}
                          for (c, a), v in sorted(flagged_end.items()) if (c, a) not in true_end_addr]  # fmt: skip
    # address precision / recall
    true_addr = {(_norm(s["chain"]), _norm(s["address"])) for s in stolen if s.get("address") and int(s["value"]) > 0}
    true_addr |= {(c, a) for (_k, c, a, _asset), v in truth.items() if v > 0}
    # the hot wallets (any non-deposit address) of services that received stolen value: their
    # deposit addresses sweep to them, so stolen value truly reaches them (the lab books it
    # at the deposit); flagging them is no false positive, finding them is not required
    swept_to = {(_norm(r["chain"]), _norm(r["address"])) for r in services
                if r.get("address") and str(r["service"]) in true_services and r.get("role") != "deposit"}  # fmt: skip
    ev.addresses_flagged = len(flagged_addr)
    ev.addresses_true = len(flagged_addr & (true_addr | swept_to))
    ev.addresses_found = len(flagged_addr & true_addr)
    ev.addresses_truth = len(true_addr)
    return ev
