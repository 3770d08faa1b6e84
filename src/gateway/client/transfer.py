"""Streaming bodies: the multipart upload of an envelope with large files, and the multipart download.

Both directions stream in chunks, so a multi-gigabyte attachment never sits in memory: the upload reads
each file from disk as it is sent (with a ``Content-Length`` computed beforehand, so progress can be
shown), and the download writes each part to a file while hashing it.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.multipart import MultipartParser, parse_options_header

from gateway.envelope.attachments import normalize_content_id

from .compose import PreparedEnvelope, PreparedFile
from .errors import MessageInvalid

__all__ = ["Progress", "ReceivedPart", "counted", "multipart_upload", "read_multipart"]

#: called with (bytes done, bytes in total) as a transfer proceeds; total is 0 when unknown
Progress = Callable[[int, int], None]

_SLICE = 256 * 1024
_HEAD = 64


def _ascii(value: str) -> str:
    out = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in value)
    return out[:200] or "file"


def _part_head(boundary: str, name: str, filename: str, content_type: str) -> bytes:
    return (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{_ascii(name)}"; filename="{_ascii(filename)}"\r\n'
        f"Content-Type: {_ascii(content_type)}\r\n\r\n"
    ).encode("ascii")


def counted(chunks: Iterable[bytes], total: int, progress: Progress | None) -> Iterator[bytes]:
    """Yield ``chunks`` re-sliced to at most 256 KiB, reporting progress after each."""
    done = 0
    if progress is not None:
        progress(0, total)
    for chunk in chunks:
        for start in range(0, len(chunk), _SLICE):
            piece = chunk[start:start + _SLICE]
            yield piece
            done += len(piece)
            if progress is not None:
                progress(done, total)


def multipart_upload(prepared: PreparedEnvelope) -> tuple[str, int, Iterator[bytes]]:
    """Content type, exact length and chunks of the ``multipart/form-data`` body for ``prepared``: part
    ``envelope`` with the edXML, then one part per large file named by its Content-ID without ``cid:``."""
    boundary = "gateway-client-" + secrets.token_hex(16)
    heads: list[tuple[bytes, PreparedFile | None]] = [
        (_part_head(boundary, "envelope", "envelope.edxml", "application/xml"), None)]
    heads += [(_part_head(boundary, f.part_name, f.name, f.content_type), f) for f in prepared.large_files]
    closing = f"--{boundary}--\r\n".encode("ascii")
    length = sum(len(h) + 2 for h, _ in heads) + len(prepared.xml) + sum(f.size for f in prepared.large_files)
    length += len(closing)

    def file_chunks(f: PreparedFile) -> Iterator[bytes]:
        sent = 0
        for chunk in f.source.chunks():
            sent += len(chunk)
            yield chunk
        if sent != f.size:
            # The file changed after it was hashed: the gateway would refuse the digest anyway.
            raise MessageInvalid(f"{f.name} changed while it was being sent")

    def chunks() -> Iterator[bytes]:
        for head, f in heads:
            yield head
            if f is None:
                yield prepared.xml
            else:
                yield from file_chunks(f)
            yield b"\r\n"
        yield closing

    return f"multipart/form-data; boundary={boundary}", length, chunks()


@dataclass(frozen=True)
class ReceivedPart:
    """A large attachment part of a download, written to ``path``."""

    content_id: str
    filename: str | None
    path: Path
    sha256: str
    size: int
    head: bytes = field(repr=False)


@dataclass
class _Writer:
    content_id: str
    filename: str | None
    path: Path
    fh: BinaryIO
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)
    size: int = 0
    head: bytes = b""

    def write(self, data: bytes) -> None:
        self.fh.write(data)
        self.digest.update(data)
        if len(self.head) < _HEAD:
            self.head = (self.head + data)[:_HEAD]
        self.size += len(data)


def read_multipart(chunks: Iterable[bytes], content_type: str, directory: Path, *,
                   max_envelope_bytes: int) -> tuple[bytes, dict[str, ReceivedPart]]:
    """Split a multipart download: the ``envelope`` part in memory, every other part into a new file in
    ``directory`` (named by nothing the sender chose), keyed by Content-ID."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise MessageInvalid("the multipart download has no boundary")
    envelope: bytearray | None = None
    in_envelope = False
    writer: _Writer | None = None
    parts: dict[str, ReceivedPart] = {}
    headers: dict[str, str] = {}
    field_buf, value_buf = bytearray(), bytearray()
    finished = False
    open_files: list[_Writer] = []
    names: set[str] = set()

    def on_part_begin() -> None:
        headers.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        field_buf.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        value_buf.extend(data[start:end])

    def on_header_end() -> None:
        headers[bytes(field_buf).decode("latin-1").strip().lower()] = bytes(value_buf).decode("latin-1").strip()
        field_buf.clear()
        value_buf.clear()

    def on_headers_finished() -> None:
        nonlocal envelope, in_envelope, writer
        _, disp = parse_options_header(headers.get("content-disposition", ""))
        name = disp.get(b"name", b"").decode("utf-8", errors="replace")
        if name == "envelope":
            if envelope is not None:
                raise MessageInvalid("two envelope parts")
            envelope, in_envelope = bytearray(), True
            return
        in_envelope = False
        cid = normalize_content_id(headers.get("content-id") or name)
        if not cid or cid in parts or cid in names:
            raise MessageInvalid("a part without a name, or two parts with the same name")
        fd, tmp = tempfile.mkstemp(prefix=".part-", dir=directory)
        filename = disp.get(b"filename")
        writer = _Writer(cid, filename.decode("utf-8", errors="replace") if filename else None, Path(tmp),
                         os.fdopen(fd, "wb"))
        names.add(cid)
        open_files.append(writer)

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if in_envelope:
            assert envelope is not None
            if len(envelope) + end - start > max_envelope_bytes:
                raise MessageInvalid("the envelope part is larger than allowed")
            envelope.extend(data[start:end])
        elif writer is not None:
            writer.write(data[start:end])

    def on_part_end() -> None:
        nonlocal writer, in_envelope
        if writer is not None:
            writer.fh.close()
            parts[writer.content_id] = ReceivedPart(writer.content_id, writer.filename, writer.path,
                                                    writer.digest.hexdigest(), writer.size, writer.head)
            writer = None
        in_envelope = False

    def on_end() -> None:
        nonlocal finished
        finished = True

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data, "on_part_end": on_part_end, "on_end": on_end,
    })
    try:
        for chunk in chunks:
            if chunk:
                parser.write(chunk)
        parser.finalize()
        if not finished or envelope is None:
            raise MessageInvalid("the multipart download is truncated or has no envelope part")
    except BaseException as exc:
        for w in open_files:
            w.fh.close()
            w.path.unlink(missing_ok=True)
        if isinstance(exc, MessageInvalid) or not isinstance(exc, Exception):
            raise
        raise MessageInvalid("the multipart download cannot be read") from exc
    return bytes(envelope), parts
