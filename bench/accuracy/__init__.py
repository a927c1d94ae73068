"""Ground-truth accuracy harness for address clustering (see docs/accuracy.md).

``groundtruth``: a seeded scenario of real wallets on a regtest node (one wallet =
one owner). ``metrics``: pair- and cluster-level precision/recall/F1.
``harness``: ingest + cluster with each heuristic set + score.
"""
