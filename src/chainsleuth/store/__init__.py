"""The ledger store: DuckDB schema, the transfers view, Parquet and SQL access."""

from .ledger import Ledger
from .schema import TABLES, Family

__all__ = ["TABLES", "Family", "Ledger"]
