"""Accepted documents and statuses: their stored rows, attachments and per-recipient deliveries.

Intake writes them, delivery moves the delivery rows along, and ``GET /v1/documents`` reads them.
"""
