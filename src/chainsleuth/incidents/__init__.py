"""Incident registry: attributed heists, their seeds, and the traces attached to them."""
