"""The package import graph follows the layers of DESIGN.md: nothing imports upward and no two
packages import each other (directly or round a longer loop), function-level imports included,
so a lazy import cannot hide a cycle. ``TYPE_CHECKING`` blocks are skipped (they never run)."""

from __future__ import annotations

import ast
from pathlib import Path

import postmix

PACKAGE = Path(postmix.__file__).parent

# DESIGN.md: schemas, io -> llm, verifiers -> curate, judge, mix, train, eval -> scale -> pipeline
# -> cli. One rank per layer; a unit may import its own rank or lower ones.
RANK = {
    "__init__": 0, "errors": 0, "yamlfile": 0, "progress": 0, "pausepoints": 0, "ray_connect": 0,
    "schemas": 0, "io": 0,
    "llm": 1, "verifiers": 1, "testing": 1,
    "curate": 2, "judge": 2, "mix": 2, "train": 2, "eval": 2,
    "scale": 3,
    "pipeline": 4,
    "cli": 5,
}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for n in ast.walk(node))
    return skipped


def import_edges(package: Path = PACKAGE) -> dict[tuple[str, str], list[str]]:
    """(importer unit, imported unit) -> where, for every postmix import in the package."""
    edges: dict[tuple[str, str], list[str]] = {}
    for file in sorted(package.rglob("*.py")):
        relative = file.relative_to(package.parent).with_suffix("")
        module = ".".join(relative.parts).removesuffix(".__init__")
        source = _unit(module)
        tree = ast.parse(file.read_text(encoding="utf-8"))
        skipped = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.ImportFrom) and node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (file.name == "__init__.py")]
                targets = [".".join(base + ([node.module] if node.module else []))]
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                if target.startswith("postmix.") and _unit(target) != source:
                    edges.setdefault((source, _unit(target)), []).append(f"{file.name}:{node.lineno}")
    return edges


def upward(edges: dict[tuple[str, str], list[str]]) -> list[str]:
    return [f"{a} -> {b} ({', '.join(where)})" for (a, b), where in sorted(edges.items())
            if RANK.get(b, 99) > RANK.get(a, -1)]


def cycles(edges: dict[tuple[str, str], list[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one unit (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def test_every_unit_has_a_layer():
    units = {a for a, _ in import_edges()} | {b for _, b in import_edges()}
    assert units <= set(RANK), f"give these a layer in RANK (and DESIGN.md): {sorted(units - set(RANK))}"


def test_no_package_imports_a_higher_layer():
    assert upward(import_edges()) == []


def test_no_import_cycle_between_packages():
    assert cycles(import_edges()) == []


def test_the_checks_see_an_upward_import_and_a_loop(tmp_path):
    """The walk catches what it is there to catch: a function-level upward import, a relative
    import, and a two-package loop."""
    package = tmp_path / "postmix"
    for name in ("io", "curate", "cli"):
        (package / name).mkdir(parents=True)
        (package / name / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "io" / "read.py").write_text("def f():\n    from postmix.cli import main\n")
    (package / "curate" / "steps.py").write_text("from ..io import read\n")
    (package / "io" / "write.py").write_text("import postmix.curate.steps\n")
    edges = import_edges(package)
    assert ("io", "cli") in edges and ("curate", "io") in edges
    assert any(line.startswith("io -> cli") for line in upward(edges))
    assert cycles(edges) == [["curate", "io"]]
