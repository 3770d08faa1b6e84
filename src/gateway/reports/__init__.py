"""The monthly report of Điều 15.11: per agency, what went electronically, what was signed, how fast it arrived.

Its own package because it reads the other packages' tables together: the register (``agencies``), the
documents and their attachments, and the deliveries. It used to live in :mod:`gateway.ledger`; but every
package appends to the ledger, so the ledger is a lower layer that imports none of them, and the report,
which needs them all, sits above (``tests/test_layering.py``). Nothing imports this package but the wiring
(:mod:`gateway.app`, :mod:`gateway.cli`).
"""
