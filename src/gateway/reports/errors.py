"""The report's answers to bad requests (problem+json); slugs are stable once published."""

from __future__ import annotations

from gateway.problems import GatewayError


class ReportMonthInvalid(GatewayError):
    status = 422
    slug = "report-month-invalid"
    title = "The month must be given as YYYY-MM"
