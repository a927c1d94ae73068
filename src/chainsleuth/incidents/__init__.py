"""Incident registry: attributed heists, their seeds, and the traces attached to them.

``chainsleuth.incidents.tracing`` (trace from an incident's seeds) and
``chainsleuth.incidents.exports`` (STIX 2.1, FollowTheMoney) are imported on use.
"""

from .importers import import_incident_seeds, import_incidents, import_registry
from .model import Incident, IncidentFilter, IncidentTrace
from .registry import (
    ImportResult,
    add_incident,
    get_incident,
    incident_seeds,
    incident_traces,
    list_incidents,
    record_trace,
)

__all__ = [
    "ImportResult",
    "Incident",
    "IncidentFilter",
    "IncidentTrace",
    "add_incident",
    "get_incident",
    "import_incident_seeds",
    "import_incidents",
    "import_registry",
    "incident_seeds",
    "incident_traces",
    "list_incidents",
    "record_trace",
]
