"""Liveness, readiness, metrics and the gateway certificate: the unauthenticated endpoints."""
