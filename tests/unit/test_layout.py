"""The package's shape: no import circle among its modules (what each module imports at
its top, TYPE_CHECKING blocks included: an import inside a function is a deliberate,
late one), and the network's files apart from the database."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "adapter"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_imports(path: Path) -> set[str]:
    """The adapter modules ``path`` imports outside any function."""
    found: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else \
        module_name(path).rpartition(".")[0]

    def visit(nodes):
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                    + ([base] if base else []))
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                visit(getattr(node, "body", []) + getattr(node, "orelse", [])
                      + [h for handler in getattr(node, "handlers", []) for h in handler.body])
    visit(ast.parse(path.read_text()).body)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in ROOT.rglob("*.py")
               if "migrations" not in path.parts}
    return {name: {other for other in top_imports(path) if other in modules and other != name}
            for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def strong(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for other in sorted(edges.get(node, ())):
            if other not in index:
                strong(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            strong(node)
    return found


def test_no_module_imports_itself_round_a_circle():
    edges = graph()
    assert "adapter.storage.unit_of_work" in edges and edges["adapter.storage.unit_of_work"]
    assert cycles(edges) == []


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_files_room_knows_no_database_and_no_service():
    for name, imported in graph().items():
        if name.startswith("adapter.files"):
            assert not [other for other in imported if other.startswith(
                ("adapter.storage", "adapter.service", "adapter.soap", "adapter.api"))], name


def test_only_the_command_line_reaches_the_simulators():
    """The stand-ins (adapter/sim/) are served by `pmc-adapter erp-sim` and `pmc-sim`; no
    other module imports them, not even inside a function."""
    reaching = []
    for path in sorted(ROOT.rglob("*.py")):
        name = module_name(path)
        if name.startswith("adapter.sim") or name == "adapter.cli":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [f"{node.module}.{alias.name}" for alias in node.names] \
                if isinstance(node, ast.ImportFrom) and node.module else []
            reaching += [(name, imported) for imported in names
                         if imported == "adapter.sim" or imported.startswith("adapter.sim.")]
    assert reaching == []
    assert (ROOT / "sim" / "erp.py").exists() and (ROOT / "sim" / "pmc.py").exists()
