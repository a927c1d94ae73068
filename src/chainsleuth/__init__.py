"""chainsleuth: open-source crypto-crime forensics.

Layers (imports point one way): ingest -> store -> entities/tags -> flows ->
screening/reporting -> interfaces (cli). See docs/architecture.md.
"""

__version__ = "0.1.0"
