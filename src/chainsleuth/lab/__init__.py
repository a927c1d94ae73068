"""The heist lab: a DPRK-style heist and its laundering, played on real local nodes
(anvil and Bitcoin Knots regtest), ingested with chainsleuth's own ingesters, with
ground truth in schema ``lab`` of the ledger. Guide: docs/lab.md."""

from .dataset import export_dataset, load_dataset
from .run import LabParams, LabResult, parse_scale, run_lab

__all__ = ["LabParams", "LabResult", "export_dataset", "load_dataset", "parse_scale", "run_lab"]
