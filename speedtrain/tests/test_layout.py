"""The package's shape: layers by concern, imports pointing down, no circles, light readers.

Layers, lowest first; a module may import its own package and any lower one, never a higher
one. Data flows config -> data -> models -> train -> records -> verdicts -> report; the
records and statistics sit low because the trainer fills a record and every later stage reads
one, and neither needs torch.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1]
LAYERS = ["common", "config", "stats", "records", "hw", "data", "models", "train", "recipes", "verdicts", "report", "doctor", "suite",
          "cli"]
# Libraries worth deferring to the call that needs them (seconds of import, or a GPU library).
HEAVY = {"torch", "torchvision", "matplotlib", "pandas", "numpy", "pynvml", "tqdm", "PIL", "xdist", "yaml",
         "pytest_benchmark", "tabulate", "scipy"}
# Top-level modules outside the packages: the package root and the stable re-exports.
ENTRY = {"speedtrain", "speedtrain.runs", "speedtrain.pytest_plugin"}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (a speedtrain module, or a library's top-level name)
    deferred: bool  # inside a function
    typing_only: bool  # under ``if TYPE_CHECKING:``
    line: int


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(name: str, known: set[str]) -> str:
    """The module an import names: ``speedtrain.train.loop.train`` -> ``speedtrain.train.loop``."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name


def imports_of(path: Path, known: set[str]) -> list[Import]:
    tree = ast.parse(path.read_text())
    source = module_name(path)
    found: list[Import] = []

    def visit(node: ast.AST, deferred: bool, typing_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, True, typing_only)
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for sub in child.body:
                    visit(ast.Module(body=[sub], type_ignores=[]), deferred, True)
                for sub in child.orelse:
                    visit(ast.Module(body=[sub], type_ignores=[]), deferred, typing_only)
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    target = alias.name if not alias.name.startswith("speedtrain") else _resolve(alias.name, known)
                    found.append(Import(source, target, deferred, typing_only, child.lineno))
            elif isinstance(child, ast.ImportFrom) and child.module:
                if child.module.startswith("speedtrain"):
                    for alias in child.names:
                        target = _resolve(f"{child.module}.{alias.name}", known)
                        found.append(Import(source, target, deferred, typing_only, child.lineno))
                else:
                    found.append(Import(source, child.module, deferred, typing_only, child.lineno))
            else:
                visit(child, deferred, typing_only)

    visit(tree, False, False)
    return found


def package_sources() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if "tests" not in p.relative_to(PACKAGE).parts]


@pytest.fixture(scope="module")
def graph() -> list[Import]:
    paths = package_sources()
    known = {module_name(p) for p in paths}
    return [imp for p in paths for imp in imports_of(p, known)]


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_sits_in_a_layer(graph: list[Import]) -> None:
    modules = {module_name(p) for p in package_sources()}
    strays = sorted(m for m in modules if layer(m) is None and m not in ENTRY)
    assert not strays, f"modules outside the layered packages: {strays}; allowed packages: {LAYERS}"


def test_imports_point_down(graph: list[Import]) -> None:
    upward = [f"{i.source}:{i.line} imports {i.target}" for i in graph
              if i.target.startswith("speedtrain.") and layer(i.source) is not None and layer(i.target) is not None
              and layer(i.target) > layer(i.source)]
    assert not upward, "imports from a lower layer into a higher one:\n" + "\n".join(upward)


def test_no_import_circles(graph: list[Import]) -> None:
    """Among speedtrain modules, counting deferred and type-only imports too: a circle hidden in
    a function is still a circle in the design."""
    edges: dict[str, set[str]] = {}
    for i in graph:
        if i.target.startswith("speedtrain.") and i.target != i.source and not i.target.startswith(i.source + "."):
            if i.source.startswith(i.target + ".") or i.source in ENTRY or i.target in ENTRY:
                continue  # a package's own submodule, or a stable re-export
            edges.setdefault(i.source, set()).add(i.target)
    circles = _cycles(edges)
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One representative circle per strongly connected component (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10_000)

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return found


def _loads_heavy(module: str, graph: list[Import], seen: set[str] | None = None) -> bool:
    """Does importing ``module`` import a heavy library at its top level, directly or through
    the speedtrain modules it imports at top level?"""
    seen = set() if seen is None else seen
    if module in seen:
        return False
    seen.add(module)
    for i in graph:
        if i.source != module or i.deferred or i.typing_only:
            continue
        if i.target.split(".")[0] in HEAVY:
            return True
        if i.target.startswith("speedtrain.") and _loads_heavy(i.target, graph, seen):
            return True
    return False


def test_function_level_imports_only_defer_heavy_libraries(graph: list[Import]) -> None:
    needless = [f"{i.source}:{i.line} imports {i.target} inside a function" for i in graph
                if i.deferred and not i.typing_only and i.target.split(".")[0] not in HEAVY
                and not (i.target.startswith("speedtrain.") and _loads_heavy(i.target, graph))
                and i.target.split(".")[0] in ("speedtrain",)]
    assert not needless, ("function-level imports that defer no heavy library (import at the top, or break "
                          "the circle they dodge):\n" + "\n".join(needless))


@pytest.mark.parametrize("package", ["speedtrain.records", "speedtrain.stats", "speedtrain.report",
                                     "speedtrain.config", "speedtrain.runs"])
def test_readers_do_not_import_torch(package: str) -> None:
    """Reading, judging and reporting saved runs works without loading torch."""
    code = ("import importlib, pkgutil, sys\n"
            f"pkg = importlib.import_module({package!r})\n"
            "for m in pkgutil.walk_packages(getattr(pkg, '__path__', []), pkg.__name__ + '.'):\n"
            "    importlib.import_module(m.name)\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False", f"importing {package} loads torch"


def test_the_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: an upward import and a circle in a made-up tree are found."""
    fake = tmp_path / "speedtrain"
    for rel, text in {"records/a.py": "from speedtrain.report.b import x\n",
                      "report/b.py": "from speedtrain.records.a import y\n"}.items():
        (fake / rel).parent.mkdir(parents=True, exist_ok=True)
        (fake / rel).write_text(text)
    global PACKAGE
    old, PACKAGE = PACKAGE, fake
    try:
        paths = list(fake.rglob("*.py"))
        known = {module_name(p) for p in paths}
        g = [imp for p in paths for imp in imports_of(p, known)]
    finally:
        PACKAGE = old
    assert any(layer(i.target) > layer(i.source) for i in g)
    edges: dict[str, set[str]] = {}
    for i in g:
        edges.setdefault(i.source, set()).add(i.target)
    assert _cycles(edges) == [["speedtrain.records.a", "speedtrain.report.b"]]
