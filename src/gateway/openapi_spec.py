"""The committed OpenAPI document, rendered the same way by ``gateway openapi`` and the drift test."""

from __future__ import annotations

import json

from gateway.app import create_app
from gateway.config import Settings


def render() -> str:
    spec = create_app(Settings()).openapi()
    return json.dumps(spec, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
