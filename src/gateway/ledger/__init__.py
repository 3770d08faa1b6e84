"""The append-only, hash-chained ledger: every step of every document, and every admin action."""
