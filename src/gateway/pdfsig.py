"""Whether a PDF attachment carries a valid PDF (PAdES) signature, for the monthly figures (seeds/004).

``valid`` means every embedded signature is cryptographically intact and valid over the bytes it
covers; whether the signer chains to a trusted root is NOT judged here (no national root store is
configured, and fetching revocation data is not allowed from the gateway). ``invalid`` is reported, never
refused: the legally binding check belongs to the recipient's văn thư. ``none``: no signature.
"""

from __future__ import annotations

import io
from typing import BinaryIO, Literal

PdfSignature = Literal["none", "valid", "invalid"]
_MARKER = b"/ByteRange"  # every PDF signature dictionary has one


def pdf_signature_state(data: bytes) -> PdfSignature:
    if _MARKER not in data:
        return "none"
    return _validate(io.BytesIO(data))


def pdf_signature_state_of(stream: BinaryIO) -> PdfSignature:
    """The same, reading from a seekable stream (large attachments stay on disk, scanned in chunks)."""
    if not _contains(stream, _MARKER):
        return "none"
    stream.seek(0)
    return _validate(stream)


def _validate(stream: BinaryIO) -> PdfSignature:
    try:
        from pyhanko.pdf_utils.reader import PdfFileReader
        from pyhanko.sign.validation import validate_pdf_signature
        from pyhanko_certvalidator import ValidationContext

        reader = PdfFileReader(stream, strict=False)
        signatures = reader.embedded_signatures
        if not signatures:
            return "none"
        context = ValidationContext(trust_roots=[], allow_fetching=False)
        for signature in signatures:
            status = validate_pdf_signature(signature, signer_validation_context=context, skip_diff=True)
            if not (status.intact and status.valid):
                return "invalid"
        return "valid"
    except Exception:
        return "invalid"


def _contains(stream: BinaryIO, needle: bytes, chunk: int = 1 << 20) -> bool:
    tail = b""
    while block := stream.read(chunk):
        if needle in tail + block:
            return True
        tail = (tail + block)[-(len(needle) - 1) :]
    return False
