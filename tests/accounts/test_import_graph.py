"""The accounts package is laid out by concern (login, signup, directory, selfservice), each
subpackage with its own services, selectors, views and tasks, over a few shared modules at the
package's root (models, forms, throttle, tokens, sessions, tunnels, ...). These tests read the
package's import graph from the source and fail on an import circle between those parts, so the
circle that ``services.py``, ``account_services.py`` and ``tasks.py`` once made cannot return.

Today's direction: ``signup`` uses ``login`` (an inviter's groups) and ``directory`` (the Users
page); ``login`` and ``selfservice`` use ``directory`` (the directory copy, reset links);
``directory`` uses only the shared root modules.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import clusterweb.accounts

PACKAGE = "clusterweb.accounts"
ROOT = Path(clusterweb.accounts.__file__).parent
CONCERNS = {"login", "signup", "directory", "selfservice"}


def _module_name(root: Path, package: str, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The dotted names an import statement names, with ``from x import y`` giving ``x.y`` (a
    submodule or a name in ``x``; the caller keeps whichever is a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        anchor = module.split(".")
        anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
        base = ".".join(anchor + ([base] if base else []))
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def import_graph(root: Path, package: str, *, module_level_only: bool = False) -> dict:
    """Module -> the package's modules it imports (anywhere in the file, or at module level
    only). Migrations are left out: they import nothing of ours but models."""
    files = {
        _module_name(root, package, path): path
        for path in root.rglob("*.py")
        if "migrations" not in path.relative_to(root).parts
    }
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        nodes = tree.body if module_level_only else ast.walk(tree)
        edges = set()
        for node in nodes:
            for name in _imported(node, module, path.name == "__init__.py"):
                # the longest prefix of the name that is one of our modules
                while name and name not in files:
                    name = name.rpartition(".")[0]
                if name and name != module and name != package:
                    edges.add(name)
        graph[module] = edges
    return graph


def part_of(module: str, package: str) -> str:
    """The part a module belongs to: its subpackage (``login``, ``management``, ...) or, for a
    module at the package's root, the module itself."""
    return module[len(package) + 1 :].split(".")[0]


def circles(graph: dict[str, set[str]], unit=lambda module: module) -> list[list[str]]:
    """Every strongly connected group of more than one unit (Tarjan), as sorted lists."""
    edges: dict[str, set[str]] = defaultdict(set)
    for source, targets in graph.items():
        edges.setdefault(unit(source), set())  # every unit is a node, even with no edges
        for target in targets:
            if unit(source) != unit(target):
                edges[unit(source)].add(unit(target))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _explain(graph: dict[str, set[str]], group: list[str], unit) -> str:
    lines = [
        f"  {source} -> {target}"
        for source, targets in sorted(graph.items())
        for target in sorted(targets)
        if unit(source) in group and unit(target) in group and unit(source) != unit(target)
    ]
    return f"import circle between {', '.join(group)}:\n" + "\n".join(lines)


def test_the_package_is_laid_out_by_concern():
    parts = {part_of(module, PACKAGE) for module in import_graph(ROOT, PACKAGE)}
    assert parts >= CONCERNS
    for concern in CONCERNS:
        assert (ROOT / concern / "services.py").exists(), concern
    # the old catch-all modules are gone for good
    assert not {"services", "account_services", "selectors", "views", "tasks"} & parts


def test_no_import_circle_between_the_accounts_subpackages():
    graph = import_graph(ROOT, PACKAGE)
    # The graph is really read: signup asks login for an inviter's groups.
    assert f"{PACKAGE}.login.services" in graph[f"{PACKAGE}.signup.services"]

    def unit(module: str) -> str:
        return part_of(module, PACKAGE)

    found = circles(graph, unit)
    assert not found, "\n".join(_explain(graph, group, unit) for group in found)


def test_no_module_of_accounts_imports_another_in_a_circle_when_loaded():
    """At module level not even two modules of one concern import each other (a service that
    enqueues its concern's task imports the task module inside the function)."""
    graph = import_graph(ROOT, PACKAGE, module_level_only=True)
    found = circles(graph)
    assert not found, "\n".join(_explain(graph, group, lambda m: m) for group in found)


def test_the_check_finds_a_circle_between_subpackages(tmp_path):
    """The check itself: two subpackages importing each other (one of them inside a function,
    as the old ``services.py`` did) are reported, with the imports that make the circle."""
    package = tmp_path / "pkg"
    for sub in ("a", "b"):
        (package / sub).mkdir(parents=True)
        (package / sub / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "shared.py").write_text("X = 1\n")
    a_imports = "from pkg import shared\nfrom pkg.b import services\n"
    (package / "a" / "services.py").write_text(a_imports)
    (package / "b" / "services.py").write_text("def f():\n    from ..a.services import g\n")
    graph = import_graph(package, "pkg")
    assert graph["pkg.b.services"] == {"pkg.a.services"}

    def unit(module: str) -> str:
        return part_of(module, "pkg")

    found = circles(graph, unit)
    assert found == [["a", "b"]]
    assert "pkg.b.services -> pkg.a.services" in _explain(graph, found[0], unit)
    assert circles(import_graph(package, "pkg", module_level_only=True)) == []
