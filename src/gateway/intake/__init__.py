"""``POST /v1/envelopes``: take a signed edXML envelope, verify it, fix the sent instant, sign a receipt."""
