"""Ingest: sources -> canonical ledger rows.

One module per source. Each splits into a *job* (batches, concurrency,
checkpoints and reorgs), a pure *mapper* (node JSON or raw bytes -> rows) and
the store's writer, as ethereum-etl does, so that golden tests of real node
responses need no node.
"""
