"""The entry service's wiring: what ``service.py`` declares to BentoML, built from every layer.

The one package that may import all the others (``ensemble``, ``ledger``, ``ops``,
``models``): start-up checks (``startup``), the running service's parts (``runtime``),
where served predictions go (``evidence``), readiness (``health``), the routes' answers
and errors (``answers``), feedback (``feedback``) and the report and dashboard reads
(``reads``). None of it imports BentoML but ``startup``'s member calls and ``service.py``.
"""
