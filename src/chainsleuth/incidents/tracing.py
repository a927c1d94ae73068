"""Run a trace from an incident's seeds and attach it to the incident."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import ConfigError
from ..flows.trace import TraceResult, trace
from ..store import Ledger
from .registry import TRACE_ROLES, get_incident, incident_seeds, record_trace


@dataclass
class IncidentTraceRun:
    trace_id: int
    result: TraceResult
    used_seeds: list[str]  # seed addresses found on the chain
    missing_seeds: list[str]  # seed addresses of the chain's asset that never occur in the ledger


def incident_trace_seeds(ledger: Ledger, incident_id: str, chain: str,
                         roles: tuple[str, ...] = TRACE_ROLES) -> tuple[list[str], list[str]]:  # fmt: skip
    """(seeds present on ``chain``, seeds absent) among the incident's seeds of the chain's
    native asset (BTC seeds for a Bitcoin-family chain, ETH seeds for an Ethereum one)
    with a value-carrying role (attacker, cash-out; victims' addresses are not seeds)."""
    chains = {c["name"]: c for c in ledger.chains()}
    if chain not in chains:
        raise ConfigError(f"unknown chain {chain!r}; the ledger has: {', '.join(sorted(chains)) or 'none'}")
    currency = str(chains[chain]["native_asset"]).upper()
    get_incident(ledger, incident_id)
    rows = [s for s in incident_seeds(ledger, incident_id, roles=roles) if s.currency == currency]
    if not rows:
        raise ConfigError(f"incident {incident_id} has no {'/'.join(roles)} seed addresses on {currency} "
                          "(import them with `chainsleuth incidents import --seeds`)")  # fmt: skip
    addrs = sorted({s.address for s in rows})
    ledger.con.register("_cs_seed_addrs", _arrow_list(addrs))
    try:
        present = {str(r[0]) for r in ledger.con.execute(
            f'SELECT DISTINCT a FROM _cs_seed_addrs JOIN "{chain}".transfers t '
            "ON t.from_address = a OR t.to_address = a").fetchall()}  # fmt: skip
    finally:
        ledger.con.unregister("_cs_seed_addrs")
    return [a for a in addrs if a in present], [a for a in addrs if a not in present]


def _arrow_list(values: list[str]) -> Any:
    import pyarrow as pa

    return pa.table({"a": pa.array(values, type=pa.string())})


def trace_incident(ledger: Ledger, incident_id: str, chain: str, *, run_at: datetime | None = None,
                   **trace_options: Any) -> IncidentTraceRun:  # fmt: skip
    """Trace the incident's seeds present on ``chain`` (options as :func:`~chainsleuth.flows.trace.trace`)
    and record the run with the incident; ConfigError when none of its seeds is in the ledger."""
    used, missing = incident_trace_seeds(ledger, incident_id, chain)
    if not used:
        raise ConfigError(f"none of incident {incident_id}'s {len(missing)} seed address(es) occurs on chain "
                          f"{chain!r} (ingest the blocks of the theft first)")  # fmt: skip
    res = trace(ledger, chain, used, **trace_options)
    params = {k: v for k, v in trace_options.items() if v is not None}
    params["seeds_missing"] = len(missing)
    tid = record_trace(ledger, incident_id, res, run_at=run_at or datetime.now(UTC), params=params)
    return IncidentTraceRun(tid, res, used, missing)
