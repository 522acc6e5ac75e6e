"""Operations: what an operator sees and controls around the request path.

Prometheus metrics (``metrics``), JSON logs (``logs``), garbage-collector tuning
(``gc_tuning``), and the HTTP edge (``edge``: API keys from ``auth``, body limits,
error answers). Imports ``ensemble`` (validation helpers) and nothing of the ledger.
"""
