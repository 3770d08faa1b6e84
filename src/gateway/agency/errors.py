"""Register rules, one error type each (status and stable slug)."""

from __future__ import annotations

from gateway.problems import Conflict, GatewayError, NotFound


class AgencyError(GatewayError):
    status = 422
    slug = "agency-invalid"
    title = "The agency registration is invalid"


class AgencyCodeInvalid(AgencyError):
    slug = "agency-code-invalid"
    title = "The agency code does not match LLL.KK.JJ.Xnn"


class AgencyParentUnknown(AgencyError):
    slug = "agency-parent-unknown"
    title = "The parent agency is not registered"


class AgencyEndpointInvalid(AgencyError):
    slug = "agency-endpoint-invalid"
    title = "Push delivery needs an absolute http(s) endpoint URL; pull takes none"


class AgencyNameInvalid(AgencyError):
    slug = "agency-name-invalid"
    title = "The agency name is empty or too long"


class AgencyExists(Conflict):
    slug = "agency-exists"
    title = "An agency with this code is already registered"


class AgencyNotFound(NotFound):
    slug = "agency-not-found"
    title = "No agency with this code is registered"


class CertificateMalformed(AgencyError):
    slug = "certificate-malformed"
    title = "The certificate is not a single readable PEM X.509 certificate"


class CertificateExists(Conflict):
    slug = "certificate-exists"
    title = "This certificate is already registered"


class CertificateNotFound(NotFound):
    slug = "certificate-not-found"
    title = "No such certificate is registered for this agency"
