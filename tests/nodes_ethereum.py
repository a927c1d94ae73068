"""anvil fixtures (see helper)."""
