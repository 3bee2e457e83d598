"""Imports point one way (docs/design.md, "Modules"): no import cycle in ``shared/``, and parsing
settings loads none of the heavy libraries the writers and parsers need."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / "shared"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the ``shared`` modules it imports anywhere in its text: at the top, inside
    functions and under ``if TYPE_CHECKING`` alike (each of those can close a circle)."""
    modules = {_module_name(p): p for p in SHARED.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [base]
                # ``from shared import writers`` imports the submodule itself.
                targets += [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_a_circle_and_nothing_else() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_function_level_imports() -> None:
    graph = import_graph()
    assert "shared.export" in graph and "shared.writers.base" in graph
    # checks.py imports the ETL client inside a function: that edge counts too.
    assert "shared.etl_client" in graph["shared.checks"]


def test_no_import_cycle_in_shared() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle in shared/: " + " -> ".join(cycle or [])


def test_settings_import_without_the_heavy_libraries() -> None:
    """Parsing settings (the CLI's `check`, the timer's first step) loads no pyarrow, numpy or
    msgspec: a bad setting is reported fast, and settings cannot depend on the writers."""
    code = (
        "import sys, shared.settings\n"
        "heavy = sorted(m for m in ('pyarrow', 'numpy', 'msgspec') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"shared.settings loaded {out.stdout.strip()}"


def test_the_etl_client_does_not_read_settings() -> None:
    """The ETL client takes its options as arguments (shared/clients.py builds it)."""
    assert "shared.settings" not in import_graph()["shared.etl_client"]


def test_only_the_storage_modules_see_azure_sdk_errors() -> None:
    """Azure SDK errors are mapped to ours in shared/azure_errors.py; the stores (blobs, state rows,
    destinations, work queue, work markers) may only see the conditional-write outcomes (409, 412, 404) that their
    callers decide on."""
    seeing = set()
    for path in SHARED.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "azure.core.exceptions":
                seeing.add(_module_name(path))
                if path.name != "azure_errors.py":
                    names = {alias.name for alias in node.names}
                    assert names <= {"ResourceExistsError", "ResourceModifiedError", "ResourceNotFoundError",
                                     "HttpResponseError"}, f"{path.name} imports {sorted(names)}"
    assert seeing <= {"shared.azure_errors", "shared.blob_store", "shared.state_store", "shared.destinations",
                      "shared.work_queue", "shared.work_markers"}, sorted(seeing)
