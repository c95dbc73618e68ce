"""Prices: the catalog (bundled tables, AWS offer-file import), spot price points and their sync,
admin overrides, price gaps, lookups (one price, or many over time for the cost rows) and plan
estimates. The lowest layer: imports nothing from ``provisioning`` or ``billing.costs`` (a test
reads the import graph: tests/test_layers.py)."""
