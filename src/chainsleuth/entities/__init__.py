"""Entities: address clustering with the evidence for every merge."""
