"""The cluster's monthly budget: thresholds and their alert emails (each at most once per month,
claimed in the database before sending), the freeze of new launches, the action links of an
alert, and the monthly statement. See docs/budgets.md."""
