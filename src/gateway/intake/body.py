"""Reading a request body within a limit, without trusting Content-Length."""

from __future__ import annotations

from fastapi import Request

from gateway.problems import BodyTooLarge


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"the body exceeds {limit} bytes")
    buffer = bytearray()
    async for chunk in request.stream():
        buffer += chunk
        if len(buffer) > limit:
            raise BodyTooLarge(f"the body exceeds {limit} bytes")
    return bytes(buffer)
