"""Problem types: one class per ``type`` slug across the whole app, and every slug the app can raise is
named in the committed OpenAPI spec (integrators switch on ``type``; a second class with the same slug would
make two rules indistinguishable, and a slug missing from the spec is one they cannot know about)."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from pathlib import Path

import gateway
from gateway.problems import GatewayError

SPEC = Path(__file__).resolve().parents[1] / "openapi" / "openapi.json"

# Bases that are never raised themselves, only subclassed (their slug is a fallback, not a rule).
ABSTRACT = {"agency-invalid", "envelope-invalid", "certificate-error", "not-found", "conflict", "vxp-unauthenticated",
            "upstream-error"}
# Raised only inside the upstream client and for messages the upstream poller fetched (gateway.upstream: federation,
# issue 15): ledgered and, for the poller's, sent upstream as the updateStatus fail description; never answered
# over this gateway's HTTP API.
UPSTREAM_ONLY = {"upstream-unavailable", "upstream-refused", "upstream-answer-invalid", "upstream-sender-unknown",
                 "upstream-sender-local", "upstream-no-local-recipient"}
# Answered only by the web console's pages (gateway.webconsole.errors: HTML pages carrying the slug; /console is not
# in the spec). (operator-invalid / operator-exists were console-command only until POST /v1/operators, issue 16.)
CONSOLE_ONLY = {"console-csrf-invalid", "console-operator-token-required"}


def _all_problem_classes() -> list[type[GatewayError]]:
    for module in pkgutil.walk_packages(gateway.__path__, "gateway."):
        if module.name.startswith("gateway.client"):
            continue  # the agency client's own errors are not problem types the server answers with
        importlib.import_module(module.name)
    seen: list[type[GatewayError]] = []
    stack: list[type[GatewayError]] = [GatewayError]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return [c for c in seen if c.__module__.startswith("gateway.")]


def test_each_problem_slug_belongs_to_one_class() -> None:
    owners: dict[str, list[str]] = {}
    for cls in _all_problem_classes():
        owners.setdefault(cls.slug, []).append(f"{cls.__module__}.{cls.__qualname__}")
    duplicates = {slug: names for slug, names in owners.items() if len(names) > 1}
    assert duplicates == {}


def test_every_problem_slug_is_in_the_spec() -> None:
    spec = SPEC.read_text(encoding="utf-8")
    named = set(re.findall(r"urn:gateway:problem:([a-z0-9-]+)", spec))
    slugs = {cls.slug for cls in _all_problem_classes()}
    assert sorted(slugs - ABSTRACT - CONSOLE_ONLY - UPSTREAM_ONLY - named) == []
    assert sorted(named & UPSTREAM_ONLY) == []
    # and the spec names no slug that no class has, nor one listed above as never answered over HTTP
    assert sorted(named - slugs) == []
    assert sorted(named & CONSOLE_ONLY) == []
    assert json.loads(spec)["openapi"].startswith("3.")


def test_abstract_bases_are_really_abstract() -> None:
    """A base listed above as never raised must not be raised anywhere in the source."""
    by_slug = {cls.slug: cls for cls in _all_problem_classes()}
    source = "\n".join(p.read_text(encoding="utf-8") for p in Path(gateway.__file__).parent.rglob("*.py"))
    for slug in ABSTRACT:
        name = by_slug[slug].__name__
        assert re.search(rf"raise {name}\(", source) is None, name
