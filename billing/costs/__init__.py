"""Costs: the billing rules (``costing``), the cost rows and the Cost Explorer read
(``services``), month to date, the comparison with the bill, the forecast and the dashboard
(``selectors``, ``forecasting``), and the daily chart (``charts``). Reads the inventory
(``provisioning``) and prices it with ``billing.prices``; neither of those imports this package
(a test reads the import graph: tests/test_layers.py)."""
