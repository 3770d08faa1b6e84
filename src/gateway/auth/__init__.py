"""Credentials: operators (admin, auditor) and bearer tokens for operators and agencies."""
