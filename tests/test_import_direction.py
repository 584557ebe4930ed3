"""The package's layers import only downward, and nothing imports in a circle: read with ast from the
source (module-level and function-local imports alike), so a lazy import cannot hide an upward arrow."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pytest_lvlmbench"

# Each layer and the layers it may import (besides itself). The face: pytest hooks, options, the suite
# helper, gates, marks and the non-test commands. quant/ is below everything and imports none of these.
FACE = "face"
MAY_IMPORT = {
    FACE: {"zoo", "report", "storage", "engine", "analysis", "tasks", "metrics", "core"},
    "zoo": {"report", "storage", "engine", "analysis", "tasks", "metrics", "core"},
    "report": {"storage", "analysis", "tasks", "metrics", "core"},
    "storage": {"analysis", "metrics", "core"},
    "engine": {"analysis", "tasks", "metrics", "core"},
    "analysis": {"tasks", "metrics", "core"},
    "tasks": {"metrics", "core"},
    "core": {"metrics"},
    "metrics": set(),
}


def module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in MAY_IMPORT else FACE


def package_imports(path: Path) -> set[str]:
    """The pytest_lvlmbench modules ``path`` imports (``from pkg import mod`` counts as ``pkg.mod``)."""
    module = module_of(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[:len(package) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] == "pytest_lvlmbench":
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    found.add(sub if (ROOT / sub.replace(".", "/")).with_suffix(".py").exists()
                              or (ROOT / sub.replace(".", "/")).is_dir() else base)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "pytest_lvlmbench"}
    return found - {module}


def graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    return {module_of(path): package_imports(path) for path in sorted(root.rglob("*.py"))
            if path.relative_to(root).parts[:2] != ("zoo", "models")}


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    return sorted(f"{source} -> {target}" for source, targets in edges.items() for target in targets
                  if layer_of(target) != layer_of(source) and layer_of(target) not in MAY_IMPORT[layer_of(source)])


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Each import cycle once (as found by a depth-first search from every module)."""
    found, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(edges.get(module, ())):
            if state.get(target) == "open":
                found.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    return found


def test_every_import_goes_down_the_layers():
    assert upward_imports(graph()) == []


def test_no_module_imports_itself_in_a_circle():
    edges = graph()
    # a package's __init__ importing its own modules is not a circle of two layers: drop those edges
    edges = {m: {t for t in targets if not m.startswith(t + ".") and not t.startswith(m + ".")}
             for m, targets in edges.items()}
    assert circles(edges) == []


def test_quant_imports_nothing_of_the_benchmark_and_pytest_lives_only_in_the_face():
    for path in sorted((ROOT / "quant").rglob("*.py")):
        assert not any(name.startswith("pytest_lvlmbench") for name in package_imports(path)), path
    for path in sorted(PACKAGE.rglob("*.py")):
        names = {alias.name for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Import)
                 for alias in node.names}
        if "pytest" in names:
            assert layer_of(module_of(path)) == FACE, f"{path} imports pytest"


@pytest.mark.parametrize("source, target", [("pytest_lvlmbench.engine.session", "pytest_lvlmbench.report.tables"),
                                            ("pytest_lvlmbench.storage.runs", "pytest_lvlmbench.engine.session"),
                                            ("pytest_lvlmbench.metrics.judged", "pytest_lvlmbench.engine.judges"),
                                            ("pytest_lvlmbench.core.records", "pytest_lvlmbench.tasks")])
def test_an_upward_import_is_caught(source, target):
    assert upward_imports({source: {target}}) == [f"{source} -> {target}"]


def test_a_circle_is_caught():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
