"""The typed refusals of the edXML intake rules.

Every rule the envelope package enforces has its own :class:`EnvelopeError` subclass with a stable
``slug`` (the problem ``type`` is ``urn:gateway:problem:<slug>``), an HTTP ``status`` and a ``title``.
Integrators switch on the slug, so a slug never changes once published. ``detail`` names the element or
field and the rule; it never repeats the offending bytes (they are hostile until proven otherwise).

The tree::

    GatewayError                                  (gateway.problems)
    └── EnvelopeError                     422 envelope-invalid
        ├── XmlError                      400 xml-invalid           the bytes are not acceptable XML
        │   ├── XmlMalformed              400 xml-malformed
        │   ├── XmlDtdForbidden           400 xml-dtd-forbidden     DOCTYPE, ENTITY (XXE, billion laughs)
        │   ├── XmlXIncludeForbidden      400 xml-xinclude-forbidden
        │   ├── XmlTooLarge               413 xml-too-large
        │   ├── XmlTooDeep                413 xml-too-deep
        │   ├── XmlTooManyElements        413 xml-too-many-elements
        │   ├── EncodingNotUtf8           415 encoding-not-utf8     TCVN3, VNI, UTF-16, invalid UTF-8
        │   └── NulByte                   400 nul-byte
        ├── SchemaInvalid                 422 schema-invalid        schemas/edxml.xsd or element cardinality
        ├── SenderMismatch                403 sender-mismatch       From/OrganId is not the caller
        ├── SignatureError                422 signature-error
        │   ├── SignatureMissing          422 signature-missing     (a legacy edXML Signature does not count)
        │   ├── SignatureInvalid          422 signature-invalid     digest or value does not verify
        │   ├── SignatureAlgorithmForbidden 422 signature-algorithm-forbidden   SHA-1, DSA, HMAC, c14n ...
        │   ├── SignatureTransformForbidden 422 signature-transform-forbidden   XSLT, XPath, base64 ...
        │   └── SignatureWrongLocation    422 signature-wrong-location  not last in edXMLHeader, not URI="",
        │                                                           several W3C signatures
        ├── CertificateError              422 certificate-error
        │   ├── CertificateUnregistered   422 certificate-unregistered
        │   ├── CertificateRevoked        422 certificate-revoked
        │   ├── CertificateExpired        422 certificate-expired
        │   └── CertificateNotYetValid    422 certificate-not-yet-valid
        ├── AttachmentError               422 attachment-error
        │   ├── AttachmentUndecodable     422 attachment-undecodable     bad base64
        │   ├── AttachmentZipInvalid      422 attachment-zip-invalid     bomb, several files, traversal,
        │   │                                                            encrypted, corrupt, not a ZIP
        │   ├── AttachmentDigestMismatch  422 attachment-digest-mismatch large part SHA-256 / size
        │   ├── AttachmentWithoutManifest 422 attachment-without-manifest
        │   ├── ManifestWithoutAttachment 422 manifest-without-attachment
        │   ├── AttachmentTooLarge        413 attachment-too-large
        │   ├── TooManyAttachments        413 too-many-attachments
        │   └── FileTypeForbidden         415 file-type-forbidden        by name or by content
        ├── RecipientError                422 recipient-error
        │   ├── RecipientDuplicate        422 recipient-duplicate
        │   ├── TooManyRecipients         413 too-many-recipients
        │   └── RecipientIdMalformed      422 recipient-id-malformed
        ├── SecrecyForbidden              422 secrecy-forbidden
        ├── TextInvalid                   422 text-invalid          control characters, empty, too long
        ├── CodeListInvalid               422 code-list-invalid     StatusCode, BussinessDocType, Priority ...
        └── DateInvalid                   422 date-invalid

The intermediate classes (``XmlError``, ``SignatureError`` ...) are never raised themselves; they exist
so callers can catch a family.
"""

from __future__ import annotations

from gateway.problems import GatewayError

__all__ = [
    "AttachmentDigestMismatch",
    "AttachmentError",
    "AttachmentTooLarge",
    "AttachmentUndecodable",
    "AttachmentWithoutManifest",
    "AttachmentZipInvalid",
    "CertificateError",
    "CertificateExpired",
    "CertificateNotYetValid",
    "CertificateRevoked",
    "CertificateUnregistered",
    "CodeListInvalid",
    "DateInvalid",
    "EncodingNotUtf8",
    "EnvelopeError",
    "FileTypeForbidden",
    "ManifestWithoutAttachment",
    "NulByte",
    "RecipientDuplicate",
    "RecipientError",
    "RecipientIdMalformed",
    "SchemaInvalid",
    "SecrecyForbidden",
    "SenderMismatch",
    "SignatureAlgorithmForbidden",
    "SignatureError",
    "SignatureInvalid",
    "SignatureMissing",
    "SignatureTransformForbidden",
    "SignatureWrongLocation",
    "TextInvalid",
    "TooManyAttachments",
    "TooManyRecipients",
    "XmlDtdForbidden",
    "XmlError",
    "XmlMalformed",
    "XmlTooDeep",
    "XmlTooLarge",
    "XmlTooManyElements",
    "XmlXIncludeForbidden",
    "envelope_error_types",
]


class EnvelopeError(GatewayError):
    status = 422
    slug = "envelope-invalid"
    title = "The edXML envelope breaks an intake rule"


# --- XML layer -------------------------------------------------------------------------------------


class XmlError(EnvelopeError):
    status = 400
    slug = "xml-invalid"
    title = "The envelope is not acceptable XML"


class XmlMalformed(XmlError):
    status = 400
    slug = "xml-malformed"
    title = "The envelope is not well-formed XML"


class XmlDtdForbidden(XmlError):
    status = 400
    slug = "xml-dtd-forbidden"
    title = "DOCTYPE and entity declarations are not accepted"


class XmlXIncludeForbidden(XmlError):
    status = 400
    slug = "xml-xinclude-forbidden"
    title = "XInclude elements are not accepted"


class XmlTooLarge(XmlError):
    status = 413
    slug = "xml-too-large"
    title = "The envelope exceeds the size limit"


class XmlTooDeep(XmlError):
    status = 413
    slug = "xml-too-deep"
    title = "The envelope nests elements deeper than the limit"


class XmlTooManyElements(XmlError):
    status = 413
    slug = "xml-too-many-elements"
    title = "The envelope holds more elements than the limit"


class EncodingNotUtf8(XmlError):
    status = 415
    slug = "encoding-not-utf8"
    title = "The envelope is not UTF-8 (legacy TCVN3/VNI or UTF-16 encodings are not accepted)"


class NulByte(XmlError):
    status = 400
    slug = "nul-byte"
    title = "The envelope contains a NUL byte"


# --- schema and sender -----------------------------------------------------------------------------


class SchemaInvalid(EnvelopeError):
    status = 422
    slug = "schema-invalid"
    title = "The envelope does not match the edXML schema"


class SenderMismatch(EnvelopeError):
    status = 403
    slug = "sender-mismatch"
    title = "The envelope's sender is not the authenticated agency"


# --- signature -------------------------------------------------------------------------------------


class SignatureError(EnvelopeError):
    status = 422
    slug = "signature-error"
    title = "The envelope's XML signature is not acceptable"


class SignatureMissing(SignatureError):
    slug = "signature-missing"
    title = "A W3C XML signature is required and none was found"


class SignatureInvalid(SignatureError):
    slug = "signature-invalid"
    title = "The XML signature does not verify"


class SignatureAlgorithmForbidden(SignatureError):
    slug = "signature-algorithm-forbidden"
    title = "The XML signature uses an algorithm outside the allow-list (SHA-1 is refused)"


class SignatureTransformForbidden(SignatureError):
    slug = "signature-transform-forbidden"
    title = "The XML signature uses a transform other than enveloped-signature and exclusive c14n"


class SignatureWrongLocation(SignatureError):
    slug = "signature-wrong-location"
    title = "The XML signature is not one enveloped signature over the whole document, last in edXMLHeader"


# --- certificate -----------------------------------------------------------------------------------


class CertificateError(EnvelopeError):
    status = 422
    slug = "certificate-error"
    title = "The signing certificate is not acceptable"


class CertificateUnregistered(CertificateError):
    slug = "certificate-unregistered"
    title = "The signing certificate is not registered for the sending agency"


class CertificateRevoked(CertificateError):
    slug = "certificate-revoked"
    title = "The signing certificate has been revoked in the register"


class CertificateExpired(CertificateError):
    slug = "certificate-expired"
    title = "The signing certificate has expired"


class CertificateNotYetValid(CertificateError):
    slug = "certificate-not-yet-valid"
    title = "The signing certificate is not yet valid"


# --- attachments -----------------------------------------------------------------------------------


class AttachmentError(EnvelopeError):
    status = 422
    slug = "attachment-error"
    title = "An attachment is not acceptable"


class AttachmentUndecodable(AttachmentError):
    slug = "attachment-undecodable"
    title = "An attachment's ContentTransferEncoded is not valid base64"


class AttachmentZipInvalid(AttachmentError):
    slug = "attachment-zip-invalid"
    title = "An attachment is not a plain ZIP holding exactly one regular file"


class AttachmentDigestMismatch(AttachmentError):
    slug = "attachment-digest-mismatch"
    title = "An attachment does not match its declared SHA-256 or size"


class AttachmentWithoutManifest(AttachmentError):
    slug = "attachment-without-manifest"
    title = "An attachment has no entry in edXMLManifest"


class ManifestWithoutAttachment(AttachmentError):
    slug = "manifest-without-attachment"
    title = "A manifest entry has no attachment"


class AttachmentTooLarge(AttachmentError):
    status = 413
    slug = "attachment-too-large"
    title = "An attachment exceeds the size limit"


class TooManyAttachments(AttachmentError):
    status = 413
    slug = "too-many-attachments"
    title = "The envelope carries more attachments than the limit"


class FileTypeForbidden(AttachmentError):
    status = 415
    slug = "file-type-forbidden"
    title = "An attachment's file type is not among those allowed (pdf, office documents, text, images)"


# --- recipients ------------------------------------------------------------------------------------


class RecipientError(EnvelopeError):
    status = 422
    slug = "recipient-error"
    title = "The recipient list is not acceptable"


class RecipientDuplicate(RecipientError):
    slug = "recipient-duplicate"
    title = "The same recipient OrganId appears twice"


class TooManyRecipients(RecipientError):
    status = 413
    slug = "too-many-recipients"
    title = "The envelope names more recipients than the limit"


class RecipientIdMalformed(RecipientError):
    slug = "recipient-id-malformed"
    title = "A recipient OrganId does not match the identifier pattern"


# --- content rules ---------------------------------------------------------------------------------


class SecrecyForbidden(EnvelopeError):
    status = 422
    slug = "secrecy-forbidden"
    title = "Classified documents must not travel through the gateway"


class TextInvalid(EnvelopeError):
    status = 422
    slug = "text-invalid"
    title = "A text field is empty, too long or holds forbidden characters"


class CodeListInvalid(EnvelopeError):
    status = 422
    slug = "code-list-invalid"
    title = "A coded field holds a value outside its code list"


class DateInvalid(EnvelopeError):
    status = 422
    slug = "date-invalid"
    title = "A date is unreadable or out of range"


def envelope_error_types() -> list[type[EnvelopeError]]:
    """Every concrete envelope refusal (for OpenAPI descriptions and docs), sorted by slug."""
    out: dict[str, type[EnvelopeError]] = {}
    stack: list[type[EnvelopeError]] = [EnvelopeError]
    while stack:
        cls = stack.pop()
        out.setdefault(cls.slug, cls)
        stack.extend(cls.__subclasses__())
    return sorted(out.values(), key=lambda c: c.slug)
