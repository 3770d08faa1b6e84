"""Resource limits applied to an envelope before and while it is read.

They exist so that a hostile or careless sender cannot make the gateway spend unbounded memory or CPU:
every count and size the envelope package looks at is capped here, and the caps are checked *while*
reading (the parser counts elements as it goes, decompression stops at the cap), never after.
The application's settings build one :class:`Limits`; the defaults suit a single gateway process.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits"]

_MiB = 1024 * 1024
_GiB = 1024 * _MiB


@dataclass(frozen=True)
class Limits:
    #: Whole edXML document in bytes, inline attachments included.
    max_envelope_bytes: int = 64 * _MiB
    #: Element nesting depth (edXML itself needs about 8).
    max_depth: int = 64
    #: Elements in the whole document.
    max_elements: int = 100_000
    #: ``To`` blocks in one document.
    max_recipients: int = 500
    #: Attachments (and manifest entries) in one document.
    max_attachments: int = 100
    #: One inline attachment after base64 decoding (the ZIP as it travels).
    max_inline_attachment_bytes: int = 32 * _MiB
    #: One decoded inline file (what the ZIP holds).
    max_attachment_bytes: int = 64 * _MiB
    #: One profile large attachment (a multipart part).
    max_large_attachment_bytes: int = 4 * _GiB
    #: Sum of all decoded files of one document.
    max_total_attachment_bytes: int = 8 * _GiB
    #: Uncompressed/compressed ratio above which a ZIP member is treated as a bomb ...
    max_zip_ratio: int = 100
    #: ... once its uncompressed size exceeds this (small, very regular files compress very well).
    zip_ratio_floor_bytes: int = 1 * _MiB
    #: Characters in a text field for which EDXML.md gives no length of its own.
    max_text_chars: int = 1000

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"Limits.{name} must be a positive integer")
