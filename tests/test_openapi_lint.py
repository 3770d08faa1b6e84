"""The OpenAPI document holds to Redocly's recommended rules (``redocly lint --extends recommended``), checked
here in Python on the document ``gateway openapi`` writes, so that a new route that breaks one fails the suite
(no npm in the tests). README "API" says how to run the real linter.

The rules: servers and a license; on every operation a 2xx and a 4xx answer, a summary, tags, unique
parameters, a unique operationId, and a security decision; every tag declared with a description; 429 and 503
answers declare ``Retry-After``, 401 ``WWW-Authenticate``; the push delivery is the webhook ``delivery`` with
its headers. And the security decision is the right one: bearer exactly on the routes that take the caller's
credential (``deps.current_principal``), ``security: []`` on the public ones, which are listed here.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from gateway.app import create_app
from gateway.config import Settings
from gateway.deps import current_principal
from gateway.envelope.push_signature import H_ATTEMPT, H_SIGNATURE, SIGNED_HEADERS
from gateway.openapi_spec import TAGS, render

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

#: the operations anyone may call without a bearer token: probes, metrics, the certificate that verifies what
#: the gateway signs, and the national axis face (its own HMAC credential, declared as header parameters)
PUBLIC = {
    ("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics"), ("get", "/v1/gateway/certificate"),
}
PUBLIC_PREFIXES = ("/vxp/",)


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(render())
    return document


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for section in ("paths", "webhooks"):
        for path, item in spec.get(section, {}).items():
            for method, op in item.items():
                if method in METHODS:
                    yield method, f"{section}:{path}", op


def test_servers_and_license_are_declared(spec: dict[str, Any]) -> None:
    assert spec["servers"], "no servers"
    assert all(server.get("url") for server in spec["servers"])
    assert spec["info"]["license"]["name"]


def test_every_operation_answers_a_2xx_and_a_4xx(spec: dict[str, Any]) -> None:
    without_4xx = [f"{m.upper()} {p}" for m, p, op in operations(spec)
                   if not any(str(s).startswith("4") for s in op["responses"])]
    without_2xx = [f"{m.upper()} {p}" for m, p, op in operations(spec)
                   if not any(str(s).startswith("2") for s in op["responses"])]
    assert without_4xx == [], "declare its problems: responses=problems(...) (gateway.problem_handlers)"
    assert without_2xx == []


def test_operation_ids_are_unique_and_every_operation_has_a_summary(spec: dict[str, Any]) -> None:
    ids = Counter(op.get("operationId") for _, _, op in operations(spec))
    assert None not in ids
    assert [i for i, n in ids.items() if n > 1] == []
    assert [p for _, p, op in operations(spec) if not op.get("summary")] == []


def test_parameters_are_unique_per_operation(spec: dict[str, Any]) -> None:
    for method, path, op in operations(spec):
        keys = Counter((p["name"], p["in"]) for p in op.get("parameters", []))
        assert [k for k, n in keys.items() if n > 1] == [], f"{method.upper()} {path}"


def test_every_tag_is_declared_with_a_description(spec: dict[str, Any]) -> None:
    declared = {t["name"]: t.get("description", "") for t in spec["tags"]}
    used = {tag for _, _, op in operations(spec) for tag in op.get("tags", [])}
    untagged = [f"{m.upper()} {p}" for m, p, op in operations(spec) if not op.get("tags")]
    assert untagged == []
    assert sorted(used - set(declared)) == [], "describe the tag in gateway.openapi_spec.TAGS"
    assert [name for name, text in declared.items() if not text.strip()] == []
    assert sorted(set(declared) - used) == []  # only the tags in use are listed


def test_every_operation_has_a_security_decision_of_known_schemes(spec: dict[str, Any]) -> None:
    schemes = set(spec["components"]["securitySchemes"])
    for method, path, op in operations(spec):
        assert "security" in op, f"{method.upper()} {path}"
        for requirement in op["security"]:
            assert set(requirement) <= schemes, f"{method.upper()} {path}"
            if requirement:
                assert "401" in op["responses"], f"{method.upper()} {path}: a credential can be refused"


def _takes_the_credential(dependant: Dependant) -> bool:
    return dependant.call is current_principal or any(_takes_the_credential(d) for d in dependant.dependencies)


def test_bearer_exactly_where_the_route_takes_the_callers_credential(spec: dict[str, Any]) -> None:
    app = create_app(Settings())
    # FastAPI ≥ 0.160 keeps included routers as such; iter_route_contexts sees their routes with the prefix.
    iterate = getattr(routing, "iter_route_contexts", iter)
    checked = 0
    for route in iterate(app.routes):
        if not isinstance(getattr(route, "original_route", route), APIRoute) or not route.include_in_schema:
            continue
        for method in sorted(m.lower() for m in route.methods if m.lower() in METHODS):
            op = spec["paths"][route.path_format][method]
            checked += 1
            public = (method, route.path_format) in PUBLIC or route.path_format.startswith(PUBLIC_PREFIXES)
            if _takes_the_credential(route.dependant):
                assert op["security"] == [{"HTTPBearer": []}], f"{method.upper()} {route.path_format}"
                assert not public, f"{method.upper()} {route.path_format} takes a credential: not public"
            else:
                assert op["security"] == [], f"{method.upper()} {route.path_format}"
                assert public, (f"{method.upper()} {route.path_format} takes no credential: make it depend on "
                                "the caller (deps.CurrentPrincipal …), or list it in PUBLIC if anyone may call it")
    assert checked >= 40


def test_429_and_503_declare_retry_after_and_401_www_authenticate(spec: dict[str, Any]) -> None:
    missing = []
    for method, path, op in operations(spec):
        for status, response in op["responses"].items():
            headers = response.get("headers", {})
            if str(status) in ("429", "503") and "Retry-After" not in headers:
                missing.append(f"{method.upper()} {path} {status}")
            if str(status) == "401" and "WWW-Authenticate" not in headers:
                missing.append(f"{method.upper()} {path} {status}")
    assert missing == []


def test_the_push_delivery_is_a_webhook_with_its_headers(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1")
    push = spec["webhooks"]["delivery"]["post"]
    headers = {p["name"]: p for p in push["parameters"] if p["in"] == "header"}
    for name in (*SIGNED_HEADERS, H_SIGNATURE, H_ATTEMPT):
        assert headers[name]["required"] is True, name
    assert set(push["requestBody"]["content"]) == {"application/xml", "multipart/form-data"}
    assert {"200", "4XX", "408", "429", "5XX"} <= set(push["responses"])
    assert "Retry-After" in push["responses"]["429"]["headers"]
    download = spec["paths"]["/v1/inbox/{delivery_id}"]["get"]["responses"]["200"]["headers"]
    assert set(SIGNED_HEADERS) | {H_SIGNATURE} <= set(download)


def test_pages_for_people_are_not_in_the_document(spec: dict[str, Any]) -> None:
    assert [p for p in spec["paths"] if p.startswith(("/docs", "/redoc", "/console"))] == []
    assert set(TAGS) >= {t["name"] for t in spec["tags"]}
