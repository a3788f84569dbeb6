"""The import graph of `python/cra/` has no cycles, not even hidden ones.

Every `import` and `from ... import` in every module counts: at module
level and inside functions, methods and classes (a function-level "lazy"
import hides a cycle from Python, not from this test), relative ones
resolved. `from pkg import name` counts as importing the submodule
`pkg.name` when there is one, else as importing `pkg` (its `__init__`).
Importing a package counts as importing its `__init__`, so `__init__`
re-exports are edges from the package to its submodules.

The only imports left out are those inside an `if TYPE_CHECKING:` block:
they never run, and annotations may name any module.

A module inside `cra` never imports a package that contains it (`from .
import __version__` in `cra.cli.parser` would be `cra.cli.parser` -> `cra`;
with `cra/__init__` re-exporting its submodules that is a cycle in waiting):
it imports the sibling that defines the name. And it imports its siblings
by name, never through `importlib` with a computed string, which no static
check can follow.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "python"

#: Modules allowed a dynamic `importlib.import_module(...)`, and why.
DYNAMIC_IMPORTS_ALLOWED = {
    "cra.server.state": "imports the user's executors (`--executors module:attribute`)",
}


@dataclass(frozen=True)
class Edge:
    importer: str
    target: str
    line: int
    lazy: bool  # inside a function or class body

    def __str__(self) -> str:
        where = "in a function" if self.lazy else "at module level"
        return f"{self.importer} -> {self.target} (line {self.line}, {where})"


def find_modules(root: Path, package: str) -> Dict[str, Path]:
    """Module name -> file, for every `.py` file of `package` under `root`,
    and every stub (`.pyi`) of a compiled module, such as `cra._core`."""
    out: Dict[str, Path] = {}
    for path in sorted((root / package).rglob("*.py*")):
        if path.suffix not in (".py", ".pyi") or (
            path.suffix == ".pyi" and path.with_suffix(".py").exists()
        ):
            continue
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Imports(ast.NodeVisitor):
    """Collects (node, lazy) for every import statement and every
    `importlib.import_module(...)` / `__import__(...)` call."""

    def __init__(self) -> None:
        self.found: List[Tuple[ast.AST, bool]] = []
        self._depth = 0

    def _nested(self, node: ast.AST) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = visit_Lambda = _nested

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for stmt in node.orelse:  # the `else:` of TYPE_CHECKING does run
                self.visit(stmt)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.append((node, self._depth > 0))

    visit_ImportFrom = visit_Import

    def visit_Call(self, node: ast.Call) -> None:
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
        if name in ("import_module", "__import__"):
            self.found.append((node, self._depth > 0))
        self.generic_visit(node)


def _base(importer: str, is_package: bool, module: Optional[str], level: int) -> str:
    """The absolute module a (possibly relative) `from` import names."""
    if level == 0:
        return module or ""
    parts = importer.split(".")
    if not is_package:
        parts.pop()  # a module's `.` is its package
    if level > 1:
        parts = parts[: len(parts) - (level - 1)]
    return ".".join([*parts, *([module] if module else [])])


@dataclass(repr=False)
class Graph:
    modules: Dict[str, Path]
    edges: List[Edge]
    dynamic: List[Edge]  # import_module calls with a computed name
    unknown: List[Edge]  # names inside the package that match no module

    def out(self, name: str) -> List[Edge]:
        return [e for e in self.edges if e.importer == name]

    def targets(self, name: str) -> Set[str]:
        return {e.target for e in self.out(name)}


def build_graph(root: Path, package: str) -> Graph:
    modules = find_modules(root, package)
    graph = Graph(modules, [], [], [])

    def add(importer: str, target: str, node: ast.AST, lazy: bool, submodule: str = "") -> None:
        line = getattr(node, "lineno", 0)
        if submodule and submodule in modules:
            target = submodule
        if target == package or target.startswith(package + "."):
            bucket = graph.edges if target in modules else graph.unknown
            bucket.append(Edge(importer, target, line, lazy))

    for name, path in modules.items():
        if path.suffix == ".pyi":
            continue  # a compiled module imports nothing of the package
        is_package = path.name == "__init__.py"
        visitor = _Imports()
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        for node, lazy in visitor.found:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    add(name, alias.name, node, lazy)
            elif isinstance(node, ast.ImportFrom):
                base = _base(name, is_package, node.module, node.level)
                for alias in node.names:
                    add(name, base, node, lazy, submodule=f"{base}.{alias.name}")
            elif isinstance(node, ast.Call):
                arg = node.args[0] if node.args else None
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    text = arg.value
                    level = len(text) - len(text.lstrip("."))
                    add(name, _base(name, is_package, text[level:] or None, level), node, lazy)
                else:
                    graph.dynamic.append(Edge(name, "?", node.lineno, lazy))
    return graph


def find_cycles(graph: Graph) -> List[List[Edge]]:
    """One shortest cycle (as its edges) per strongly connected component
    that has one, starting at the component's first module by name."""
    return [shortest_cycle(graph, comp) for comp in tangles(graph)]


def tangles(graph: Graph) -> List[Set[str]]:
    """The strongly connected components with a cycle: groups of modules
    that all import each other, directly or not (or one importing itself)."""
    by_importer: Dict[str, List[Edge]] = {m: graph.out(m) for m in graph.modules}

    # Tarjan's algorithm, iterative.
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    components: List[Set[str]] = []
    for start in sorted(graph.modules):
        if start in index:
            continue
        work: List[Tuple[str, Iterator[Edge]]] = [(start, iter(by_importer.get(start, [])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, it = work[-1]
            advanced = False
            for e in it:
                if e.target not in index:
                    index[e.target] = low[e.target] = len(index)
                    stack.append(e.target)
                    on_stack.add(e.target)
                    work.append((e.target, iter(by_importer.get(e.target, []))))
                    advanced = True
                    break
                if e.target in on_stack:
                    low[node] = min(low[node], index[e.target])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp: Set[str] = set()
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.add(m)
                    if m == node:
                        break
                self_loop = any(e.target == node for e in by_importer.get(node, []))
                if len(comp) > 1 or self_loop:
                    components.append(comp)
    return components


def shortest_cycle(graph: Graph, comp: Set[str]) -> List[Edge]:
    """The shortest cycle through the component's first module by name
    (breadth-first, inside the component)."""
    start = min(comp)
    came: Dict[str, Edge] = {}
    frontier = [start]
    while frontier:
        following = []
        for m in frontier:
            for e in graph.out(m):
                if e.target == start:
                    path = [e]
                    while path[0].importer != start:
                        path.insert(0, came[path[0].importer])
                    return path
                if e.target in comp and e.target not in came:
                    came[e.target] = e
                    following.append(e.target)
        frontier = following
    raise AssertionError(f"no cycle through {start}")


def describe(cycle: List[Edge]) -> str:
    names = " -> ".join([e.importer for e in cycle] + [cycle[0].importer])
    return names + "\n" + "\n".join(f"    {e}" for e in cycle)


# -- the checks of `cra` ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def cra_graph() -> Graph:
    return build_graph(SOURCE, "cra")


def test_the_graph_sees_the_package(cra_graph: Graph) -> None:
    assert {"cra", "cra.runtime", "cra.carp", "cra.server"} <= set(cra_graph.modules)
    assert "cra.runtime" in cra_graph.targets("cra")  # an `__init__` re-export is an edge
    assert len(cra_graph.edges) > 50


def test_every_import_names_a_module(cra_graph: Graph) -> None:
    assert not cra_graph.unknown, "\n".join(map(str, cra_graph.unknown))


def test_no_import_cycles(cra_graph: Graph) -> None:
    groups = tangles(cra_graph)
    assert not groups, "import cycles in python/cra:\n" + "\n".join(
        f"{', '.join(sorted(g))} import each other, e.g.\n  {describe(shortest_cycle(cra_graph, g))}"
        for g in groups
    )


def test_no_module_imports_a_package_that_contains_it(cra_graph: Graph) -> None:
    bad = [e for e in cra_graph.edges if e.importer.startswith(e.target + ".")]
    assert not bad, "import the defining sibling instead:\n" + "\n".join(map(str, bad))


def test_no_dynamic_imports_of_own_modules(cra_graph: Graph) -> None:
    bad = [e for e in cra_graph.dynamic if e.importer not in DYNAMIC_IMPORTS_ALLOWED]
    assert not bad, "import modules by name, not by a computed string:\n" + "\n".join(
        f"{e.importer} line {e.line}" for e in bad
    )


# -- the checker itself, on small made-up packages --------------------------------------------


def _package(tmp_path: Path, files: Dict[str, str]) -> Graph:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return build_graph(tmp_path, "pkg")


def test_a_lazy_cycle_is_found(tmp_path: Path) -> None:
    g = _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from .b import x\n",
            "pkg/b.py": "def f():\n    from . import a\n    return a\n",
        },
    )
    [cycle] = find_cycles(g)
    assert [e.importer for e in cycle] == ["pkg.a", "pkg.b"]
    assert cycle[1].lazy and "pkg.a -> pkg.b -> pkg.a" in describe(cycle)


def test_type_checking_imports_are_left_out(tmp_path: Path) -> None:
    g = _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from .b import x\n",
            "pkg/b.py": (
                "from typing import TYPE_CHECKING\nimport typing\nif TYPE_CHECKING:\n"
                "    from .a import y\nif typing.TYPE_CHECKING:\n    import pkg.a\n"
            ),
        },
    )
    assert find_cycles(g) == []


def test_a_package_import_is_its_init(tmp_path: Path) -> None:
    g = _package(
        tmp_path,
        {
            "pkg/__init__.py": "from .sub.m import thing\n",
            "pkg/sub/__init__.py": "from . import m\n",
            "pkg/sub/m.py": "import pkg\nfrom .. import sub\nfrom ..sub import m as me\n",
        },
    )
    assert g.targets("pkg") == {"pkg.sub.m"}
    assert g.targets("pkg.sub") == {"pkg.sub.m"}  # `from . import m` is the submodule
    assert g.targets("pkg.sub.m") == {"pkg", "pkg.sub", "pkg.sub.m"}
    assert [[e.importer for e in c] for c in find_cycles(g)] == [["pkg", "pkg.sub.m"]]


def test_import_module_with_a_literal_is_an_edge(tmp_path: Path) -> None:
    g = _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": (
                "import importlib\ndef f(n):\n    importlib.import_module('pkg.b')\n"
                "    importlib.import_module('.b', __package__)\n"
                "    return importlib.import_module(n)\n"
            ),
            "pkg/b.py": "",
        },
    )
    assert g.targets("pkg.a") == {"pkg.b"}
    assert [e.importer for e in g.dynamic] == ["pkg.a"]
