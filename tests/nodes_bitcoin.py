"""Bitcoin Knots regtest fixtures (see helper)."""
