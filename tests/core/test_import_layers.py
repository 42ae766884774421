"""Imports run one way: llm3d_core <- sim <- llm3d_ros <- llm3d_bench <- llm3d_cli (a package never imports one to its
right, not even inside a function), and the modules' top-level imports form no circle."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAYERS = {"llm3d_core": 0, "sim": 1, "llm3d_ros": 2, "llm3d_bench": 3, "llm3d_cli": 4}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST, top_level_only: bool, modules: frozenset = frozenset()) -> list[str]:
    """Absolute module names imported; top_level_only: only statements run at import time (module
    body, not functions, not `if TYPE_CHECKING:` blocks). `from pkg import module` names the module
    only (one of `modules`): it needs pkg begun, not finished."""
    found = []
    nodes = ast.walk(tree) if not top_level_only else _top_level(tree.body)
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = [f"{node.module}.{a.name}" for a in node.names]
            found += subs if all(s in modules for s in subs) else [node.module]
    return found


def _top_level(body: list[ast.stmt]):
    for node in body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, (ast.If, ast.Try)):
            yield from _top_level(node.body + getattr(node, "orelse", []) + getattr(node, "finalbody", [])
                                  + [s for h in getattr(node, "handlers", []) for s in h.body])
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node


def _sources():
    for package in LAYERS:
        for path in sorted((REPO / package).rglob("*.py")):
            yield path, ast.parse(path.read_text(), str(path))


def test_packages_import_only_to_their_left():
    wrong = []
    for path, tree in _sources():
        layer = LAYERS[path.relative_to(REPO).parts[0]]
        for name in _imports(tree, top_level_only=False):
            top = name.split(".")[0]
            if top in LAYERS and LAYERS[top] > layer:
                wrong.append(f"{path.relative_to(REPO)} imports {name}")
    assert wrong == []


def test_no_import_circles_at_import_time():
    modules = {_module_name(p): tree for p, tree in _sources()}
    names = frozenset(modules)
    graph = {m: sorted({n for n in _imports(tree, True, names) if n in modules and n != m})
             for m, tree in modules.items()}
    assert len(graph) > 100 and sum(map(len, graph.values())) > 100  # the scan sees the code base
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    circles = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in graph[m]:
            if state.get(n) == 1:
                circles.append(" -> ".join(path[path.index(n):] + [n]))
            elif n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert circles == []
