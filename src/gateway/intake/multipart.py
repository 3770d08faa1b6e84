"""Streaming ``multipart/form-data`` reader for envelopes with large attachments.

The envelope part (name ``envelope``) is kept in memory (it is bounded like any envelope); every other
part is streamed to a staging file in the blob store while it is hashed, so a 2 GB attachment never sits
in memory. A part is matched to its manifest entry by its ``Content-ID`` header, or by its form name.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header

from gateway.blobs import BlobStore, BlobWriter
from gateway.intake.errors import (
    EnvelopePartMissing,
    MultipartInvalid,
    MultipartTruncated,
    PartTooLarge,
)
from gateway.problems import BodyTooLarge


def normalise_content_id(value: str) -> str:
    value = value.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1]
    if value.lower().startswith("cid:"):
        value = value[4:]
    return value


@dataclass
class MultipartUpload:
    envelope: bytes
    parts: dict[str, BlobWriter] = field(default_factory=dict)

    def discard(self) -> None:
        for writer in self.parts.values():
            writer.discard()


@dataclass
class _State:
    headers: dict[str, str] = field(default_factory=dict)
    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    envelope: bytearray | None = None
    in_envelope: bool = False
    writer: BlobWriter | None = None
    ended: list[BlobWriter] = field(default_factory=list)
    finished: bool = False
    error: Exception | None = None


async def read_multipart(
    chunks: AsyncIterator[bytes],
    content_type: str,
    store: BlobStore,
    *,
    max_envelope_bytes: int,
    max_part_bytes: int,
    max_parts: int,
) -> MultipartUpload:
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise MultipartInvalid("the multipart content type has no usable boundary")
    state = _State()
    parts: dict[str, BlobWriter] = {}

    def on_part_begin() -> None:
        state.headers = {}

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state.header_field += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state.header_value += data[start:end]

    def on_header_end() -> None:
        name = bytes(state.header_field).decode("latin-1").strip().lower()
        state.headers[name] = bytes(state.header_value).decode("latin-1").strip()
        state.header_field.clear()
        state.header_value.clear()

    def on_headers_finished() -> None:
        _, disp = parse_options_header(state.headers.get("content-disposition", ""))
        form_name = disp.get(b"name", b"").decode("utf-8", errors="replace")
        if form_name == "envelope":
            if state.envelope is not None:
                raise MultipartInvalid("more than one 'envelope' part")
            state.envelope = bytearray()
            state.in_envelope = True
            return
        state.in_envelope = False
        cid = normalise_content_id(state.headers.get("content-id") or form_name)
        if not cid or len(cid) > 300:
            raise MultipartInvalid("a part has neither a Content-ID nor a form name")
        if cid in parts:
            raise MultipartInvalid("two parts carry the same Content-ID")
        if len(parts) >= max_parts:
            raise MultipartInvalid("too many parts")
        state.writer = store.writer(limit=max_part_bytes)
        parts[cid] = state.writer

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state.in_envelope:
            assert state.envelope is not None
            if len(state.envelope) + (end - start) > max_envelope_bytes:
                raise BodyTooLarge("the envelope part exceeds the configured limit", field="envelope")
            state.envelope += data[start:end]
        elif state.writer is not None:
            try:
                state.writer.write(data[start:end])
            except OverflowError as exc:
                raise PartTooLarge("an attachment part exceeds the configured limit") from exc

    def on_part_end() -> None:
        if state.writer is not None:
            state.ended.append(state.writer)  # closed by keep_up, off the event loop
            state.writer = None
        state.in_envelope = False

    def on_end() -> None:
        state.finished = True

    async def keep_up() -> None:
        # The writers' threads hash, write (and stream) the parts; the event loop waits for them only in a
        # thread of its own: when a writer's queue is full (so memory stays constant), and to close an ended part.
        if state.writer is not None and state.writer.congested:
            await asyncio.to_thread(state.writer.wait_room)
        while state.ended:
            await asyncio.to_thread(state.ended.pop(0).close)

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_end": on_end,
        },
    )
    try:
        async for chunk in chunks:
            if chunk:
                parser.write(chunk)
                await keep_up()
        parser.finalize()
        await keep_up()
        if not state.finished:
            raise MultipartTruncated()
        if state.envelope is None:
            raise EnvelopePartMissing()
        return MultipartUpload(envelope=bytes(state.envelope), parts=parts)
    except (MultipartInvalid, MultipartTruncated, EnvelopePartMissing, PartTooLarge, BodyTooLarge):
        for writer in parts.values():
            writer.discard()
        raise
    except BaseException as exc:  # a cancelled request (the client went away) leaves nothing staged either
        for writer in parts.values():
            writer.discard()
        if isinstance(exc, Exception):
            raise MultipartInvalid() from exc
        raise
