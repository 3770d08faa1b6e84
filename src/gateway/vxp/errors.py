"""The typed refusals of the national axis (VXP) face.

The axis SDK reads no HTTP status and no problem document: the face answers every refusal as the SDK's
JSON (``gateway.vxp.protocol.failure``), with the slug below as ``ErrorCode`` and ``detail`` as
``ErrorDesc``, so a refusal carries the same name on both APIs. The slugs are as stable as any other
problem type. ``detail`` names the header or the rule, never the value received.

The tree::

    GatewayError                                    (gateway.problems)
    ├── VxpAuthError                  401 vxp-unauthenticated       the call does not authenticate
    │   ├── VxpSignatureHeadersMissing 401 vxp-credentials-missing  systemid, sign-header, sign-header-key
    │   │                                                           or hash-header absent or empty
    │   ├── VxpHmacInvalid            401 vxp-hmac-invalid          HMAC, signed JSON, signed headers or
    │   │                                                           sign-header-key do not hold together
    │   └── VxpSystemUnknown          401 vxp-system-unknown        unknown or revoked system id (caller)
    ├── VxpAgencyNotServed            403 vxp-agency-not-served     the system does not serve that agency
    ├── VxpHashFileMismatch           422 vxp-hash-file-mismatch    the body is not the signed hash-file
    ├── VxpParameterMissing           422 vxp-parameter-missing     a required signed parameter (``parameter``)
    ├── VxpParameterAmbiguous         422 vxp-parameter-ambiguous   spellings of one parameter disagree
    ├── VxpOperationNotSupported      403 vxp-operation-not-supported  registerAgency, deleteAgency
    └── VxpOperationUnknown           404 vxp-operation-unknown     no such operation

``VxpAuthError`` is never raised itself; it lets a caller catch the credential family.
"""

from __future__ import annotations

from gateway.problems import GatewayError


class VxpAuthError(GatewayError):
    status = 401
    slug = "vxp-unauthenticated"
    title = "The call does not carry valid VXP credentials"


class VxpSignatureHeadersMissing(VxpAuthError):
    slug = "vxp-credentials-missing"
    title = "A VXP credential header is missing"


class VxpHmacInvalid(VxpAuthError):
    slug = "vxp-hmac-invalid"
    title = "The VXP signature of the headers does not verify"


class VxpSystemUnknown(VxpAuthError):
    slug = "vxp-system-unknown"
    title = "The VXP system id is unknown or revoked"


class VxpAgencyNotServed(GatewayError):
    status = 403
    slug = "vxp-agency-not-served"
    title = "The VXP system does not serve this agency"


class VxpHashFileMismatch(GatewayError):
    status = 422
    slug = "vxp-hash-file-mismatch"
    title = "The body does not match the signed hash-file"


class VxpParameterMissing(GatewayError):
    """A required parameter is absent from the signed headers (extension ``parameter``: its name)."""

    status = 422
    slug = "vxp-parameter-missing"
    title = "A required VXP parameter is missing"


class VxpParameterAmbiguous(GatewayError):
    """Two signed spellings of one parameter (``docId``/``docid``) carry different values where the
    operation cannot tell which is the caller's (extension ``parameter``). The SDK never clears its header
    map, so a stale spelling from an earlier call rides along; guessing could act on the wrong document."""

    status = 422
    slug = "vxp-parameter-ambiguous"
    title = "Two spellings of a VXP parameter disagree"


class VxpOperationNotSupported(GatewayError):
    """registerAgency and deleteAgency: the register is kept by the gateway's operators."""

    status = 403
    slug = "vxp-operation-not-supported"
    title = "This VXP operation is not offered by the gateway"


class VxpOperationUnknown(GatewayError):
    status = 404
    slug = "vxp-operation-unknown"
    title = "No such VXP operation"
