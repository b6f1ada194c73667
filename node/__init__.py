"""A region's credit-bank node: API, ledger, workflows, rules."""
