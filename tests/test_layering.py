"""The layering of ``src/gateway``, read from the source (``ast``), not from what happens to be imported.

Every ``import gateway.X…`` and ``from gateway.X… import …`` counts, relative ones resolved, wherever it
stands: at the top, inside a function, under ``if TYPE_CHECKING:``. A domain package is a top-level
subpackage of ``gateway`` (``gateway.ledger``, ``gateway.agency``, …). The other top-level modules are
nodes of the graph too (``gateway.problems``, ``gateway.config``, …), so that a cycle running through one
of them is still found, except the wiring below: the composition root, which builds the application and
the commands out of every package and may import anything. Endpoint modules import the wiring's FastAPI
dependencies (``gateway.deps``); those edges are not layering, so edges into the wiring are not counted.

The rules:

- no cycle among the packages (and shared top-level modules);
- the pure core (``gateway.envelope``, ``gateway.ledger.chain``, and what they import in turn) imports no
  web or database framework;
- the agency client (``gateway.client``) imports nothing of the server: only the envelope package;
- the ledger is a lower layer: every package appends to it, so it imports none of them.
"""

from __future__ import annotations

import ast
import itertools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = SRC / "gateway"

#: The composition root: builds the app and the commands from every package; may import anything.
WIRING = frozenset({
    "gateway.app",
    "gateway.cli",
    "gateway.deps",
    "gateway.command",
    "gateway.__main__",
    "gateway.openapi_spec",
    "gateway.demo",
})

FRAMEWORKS = frozenset({"fastapi", "sqlalchemy", "httpx", "starlette"})
PURE_CORE = ("gateway.envelope", "gateway.ledger.chain", "gateway.ledger.merkle", "gateway.ledger.timestamp",
             "gateway.ledger.note", "gateway.ledger.bundle")
CLIENT_MAY_IMPORT = ("gateway.client", "gateway.envelope")
LEDGER_MUST_NOT_IMPORT = ("agency", "auth", "documents", "delivery", "intake", "acceptance", "reports")


@dataclass(frozen=True, slots=True)
class Import:
    """One import statement's target, where it stands."""

    source: str  # the importing module, e.g. gateway.ledger.query
    target: str  # a module (gateway.…) or a third-party top-level name
    where: str  # path:line
    text: str  # the statement as written


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _resolve(name: str, known: dict[str, Path]) -> str:
    """The longest known module ``name`` starts with (a ``from m import name`` may name a module or not)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return name


def _imports(module: str, path: Path, known: dict[str, Path]) -> Iterable[Import]:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    rel = path.relative_to(SRC.parent)
    for node in ast.walk(tree):  # every statement: top level, functions, TYPE_CHECKING blocks
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level - 1 > 0:
                    base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            # ``from gateway.ledger import service`` imports the module gateway.ledger.service.
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        text = ast.get_source_segment(source, node) or ""
        for name in dict.fromkeys(names):
            target = _resolve(name, known) if name.split(".")[0] == "gateway" else name.split(".")[0]
            yield Import(module, target, f"{rel}:{node.lineno}", " ".join(text.split()))


@pytest.fixture(scope="module")
def graph() -> dict[str, list[Import]]:
    known = _modules()
    return {module: list(_imports(module, path, known)) for module, path in known.items()}


def _node(module: str) -> str | None:
    """The layering node of a gateway module: its top-level package or module; None for the wiring and root."""
    if module == "gateway" or not module.startswith("gateway."):
        return None
    top = ".".join(module.split(".")[:2])
    if top in WIRING:
        return None
    return top


def _package_edges(graph: dict[str, list[Import]]) -> dict[str, dict[str, list[Import]]]:
    edges: dict[str, dict[str, list[Import]]] = defaultdict(lambda: defaultdict(list))
    for module, imports in graph.items():
        source = _node(module)
        if source is None:
            continue
        for imp in imports:
            target = _node(imp.target)
            if target is not None and target != source:
                edges[source][target].append(imp)
    return edges


def _cycles(edges: dict[str, dict[str, list[Import]]]) -> list[list[str]]:
    """The shortest cycle through each node that is on one (Tarjan's components, then breadth-first)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(v: str) -> None:  # Tarjan; the graph has a few dozen nodes, recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, {})):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            components.append(component)

    nodes = sorted(set(edges) | {t for targets in edges.values() for t in targets})
    for v in nodes:
        if v not in index:
            connect(v)

    cycles: list[list[str]] = []
    for component in components:
        if len(component) < 2:
            continue
        seen: set[tuple[str, ...]] = set()
        for start in sorted(component):  # the shortest cycle through each node, breadth-first in the component
            paths = {start: [start]}
            frontier = [start]
            found: list[str] | None = None
            while frontier and found is None:
                following = []
                for v in frontier:
                    for w in sorted(edges.get(v, {})):
                        if w == start:
                            found = [*paths[v], start]
                            break
                        if w in component and w not in paths:
                            paths[w] = [*paths[v], w]
                            following.append(w)
                    if found:
                        break
                frontier = following
            assert found is not None  # every node of a strongly connected component is on a cycle
            ring = found[:-1]
            first = ring.index(min(ring))
            canonical = (*ring[first:], *ring[:first])
            if canonical not in seen:
                seen.add(canonical)
                cycles.append([*canonical, canonical[0]])
    return cycles


def _describe(cycle: list[str], edges: dict[str, dict[str, list[Import]]]) -> str:
    lines = [" → ".join(cycle)]
    for a, b in itertools.pairwise(cycle):
        lines.append(f"  {a} → {b}:")
        lines += [f"    {imp.where}: {imp.text}" for imp in edges[a][b]]
    return "\n".join(lines)


def test_the_graph_is_read(graph: dict[str, list[Import]]) -> None:
    """A sanity check that the reader sees imports of every kind (so that an empty graph cannot pass)."""
    edges = _package_edges(graph)
    assert "gateway.ledger" in edges["gateway.agency"]  # agency appends to the ledger
    assert {"gateway.envelope", "gateway.ledger", "gateway.problems"} <= set(edges) | {
        t for targets in edges.values() for t in targets
    }
    relative = [i for i in graph["gateway.envelope.document"] if i.text.startswith("from .")]
    assert relative
    assert all(i.target.startswith("gateway.envelope.") for i in relative)
    # ``from gateway import logs`` names a module; an import inside a function counts.
    assert "gateway.logs" in {i.target for i in graph["gateway.app"]}
    assert "gateway.app" in {i.target for i in graph["gateway.cli"]}


def test_no_import_cycle_between_packages(graph: dict[str, list[Import]]) -> None:
    edges = _package_edges(graph)
    cycles = _cycles(edges)
    assert not cycles, "import cycles between packages:\n" + "\n".join(_describe(c, edges) for c in cycles)


def _closure(graph: dict[str, list[Import]], roots: Iterable[str]) -> set[str]:
    """The gateway modules ``roots`` load, with the packages around each (their ``__init__`` runs first)."""
    seen: set[str] = set()
    todo = [m for m in graph if any(m == r or m.startswith(r + ".") for r in roots)]
    while todo:
        module = todo.pop()
        if module in seen or module not in graph:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += [i.target for i in graph[module] if i.target.startswith("gateway")]
    return seen


def test_pure_core_imports_no_framework(graph: dict[str, list[Import]]) -> None:
    bad = [
        f"{imp.where}: {imp.text}"
        for module in sorted(_closure(graph, PURE_CORE))
        for imp in graph[module]
        if imp.target in FRAMEWORKS
    ]
    assert not bad, f"{' and '.join(PURE_CORE)} (with what they import) must stay pure:\n" + "\n".join(bad)


def test_client_imports_only_the_envelope(graph: dict[str, list[Import]]) -> None:
    bad = [
        f"{imp.where}: {imp.text}"
        for module, imports in sorted(graph.items())
        if module == "gateway.client" or module.startswith("gateway.client.")
        for imp in imports
        if imp.target.split(".")[0] == "gateway"
        and not any(imp.target == p or imp.target.startswith(p + ".") for p in CLIENT_MAY_IMPORT)
    ]
    assert not bad, "gateway.client imports the server:\n" + "\n".join(bad)


def test_ledger_is_a_lower_layer(graph: dict[str, list[Import]]) -> None:
    forbidden = tuple(f"gateway.{name}" for name in LEDGER_MUST_NOT_IMPORT)
    bad = [
        f"{imp.where}: {imp.text}"
        for module, imports in sorted(graph.items())
        if module == "gateway.ledger" or module.startswith("gateway.ledger.")
        for imp in imports
        if any(imp.target == p or imp.target.startswith(p + ".") for p in forbidden)
    ]
    assert not bad, "the ledger imports a package that appends to it:\n" + "\n".join(bad)
