"""The ledger: the evidence yield teams decide on.

Every served prediction (``predlog``: tables, background writer, spill and dead letter
in ``spool``), the ground truth fed back and its history, and the A/B analysis over
them (``report`` with ``stats``; ``html_report`` renders it as one page). Imports go
one way: the ledger uses ``ensemble.settings`` and nothing else of the request path;
the service and the CLI use the ledger.
"""
