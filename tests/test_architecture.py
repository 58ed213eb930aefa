"""The architecture, checked: size limits and no private name reached across modules.

The layers are checked by ``lint-imports`` (contracts in pyproject.toml); these are
what its contracts do not express: cycles inside a layer, sizes, private names.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1] / "labkit"
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 600


@functools.cache  # parsed once for every check of this module
def _sources() -> list[tuple[Path, ast.Module, int]]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        out.append((path, ast.parse(text, filename=str(path)), len(text.splitlines())))
    return out


def _dotted(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    rel = Path(*dotted.split("."))
    return (ROOT.parent / rel).with_suffix(".py").is_file() or (ROOT.parent / rel / "__init__.py").is_file()


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _resolve(module: str | None, level: int, here: str, is_package: bool) -> str:
    if not level:
        return module or ""
    base = here.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def private_reaches(path: Path, tree: ast.Module) -> list[str]:
    """``from labkit.x import _y`` and ``x._y`` where ``x`` is another labkit module imported here."""
    here = _dotted(path)
    found: list[str] = []
    modules: dict[str, str] = {}  # local name -> labkit module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _resolve(node.module, node.level, here, path.name == "__init__.py")
            if not source.startswith("labkit"):
                continue
            for alias in node.names:
                if _private(alias.name) and source != here:
                    found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: from {source} import {alias.name}")
                if _is_module(f"{source}.{alias.name}"):
                    modules[alias.asname or alias.name] = f"{source}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("labkit") and alias.asname:
                    modules[alias.asname] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and _private(node.attr):
            target = modules.get(node.value.id)
            if target and target != here:
                found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_no_private_name_is_imported_from_another_module() -> None:
    offenders = [hit for path, tree, _ in _sources() for hit in private_reaches(path, tree)]
    assert offenders == [], "make these names public (drop the underscore):\n" + "\n".join(offenders)


def long_functions() -> dict[str, int]:
    """``path:name`` -> lines, for every function over the limit."""
    out = {}
    for path, tree, _ in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    out[f"{path.relative_to(ROOT.parent).as_posix()}:{node.name}"] = lines
    return out


def test_no_function_is_longer_than_the_limit() -> None:
    offenders = [f"{name}: {lines} lines" for name, lines in long_functions().items()]
    assert offenders == [], f"split these (limit {MAX_FUNCTION_LINES} lines):\n" + "\n".join(offenders)


def test_no_module_is_longer_than_the_limit() -> None:
    offenders = [f"{path.relative_to(ROOT.parent)}: {lines} lines" for path, _, lines in _sources() if lines > MAX_MODULE_LINES]
    assert offenders == [], f"split these (limit {MAX_MODULE_LINES} lines):\n" + "\n".join(offenders)


def test_the_checks_catch_what_they_claim(tmp_path: Path) -> None:
    """A check that cannot fail is no check: feed it an offender."""
    fake = ROOT / "cli" / "x.py"
    tree = ast.parse(
        "from labkit.analysis.summary_table import _fmt\nfrom labkit.results import layout as r\nr._hidden()\nfrom labkit.config import RunSettings\n"
    )
    hits = private_reaches(fake, tree)
    assert len(hits) == 2
    assert "import _fmt" in hits[0] and "r._hidden" in hits[1]


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    cycles.append(sorted(group))
    return cycles


def dynamic_imports(path: Path, tree: ast.Module) -> tuple[set[str], list[str]]:
    """What a module loads through importlib: the labkit modules it names in strings, and the calls it hides.

    A module that calls ``import_module`` (or ``__import__``) is taken to load every labkit module a string
    of it names (a lazy-export table's values, a literal argument). A call whose argument is built at run
    time (an f-string, a concatenation) cannot be followed, so it is reported instead.
    """
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__"))
        )
    ]
    if not calls:
        return set(), []
    named = {
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.startswith("labkit.") and _is_module(n.value)
    }
    hidden = [f"{path.relative_to(ROOT.parent)}:{c.lineno}" for c in calls if c.args and isinstance(c.args[0], ast.JoinedStr | ast.BinOp)]
    return named, hidden


@functools.cache  # built once for every check here; import_graph hands out copies
def _import_graph() -> dict[str, frozenset[str]]:
    """Every import of labkit, also those inside functions and those made through importlib."""
    g = grimp.build_graph("labkit", cache_dir=None)
    graph = {m: set(g.find_modules_directly_imported_by(m)) for m in g.modules}
    for path, tree, _ in _sources():
        named, _ = dynamic_imports(path, tree)
        graph.setdefault(_dotted(path), set()).update(named)
    return {m: frozenset(v) for m, v in graph.items()}


def import_graph() -> dict[str, set[str]]:
    """Every import of labkit, also those inside functions and through importlib (a copy the caller may change)."""
    return {m: set(v) for m, v in _import_graph().items()}


def test_no_import_cycles_in_labkit() -> None:
    """Every import counts, also those inside functions and through importlib: a cycle there is a cycle too."""
    assert import_cycles(import_graph()) == []


def test_importlib_loads_only_modules_it_names() -> None:
    """A module name built at run time is an import no check can see."""
    hidden = [hit for path, tree, _ in _sources() for hit in dynamic_imports(path, tree)[1]]
    assert hidden == [], "name these modules in strings (a table), not in f-strings:\n" + "\n".join(hidden)


def test_importlib_edges_are_counted() -> None:
    """The old cycle (settings -> style registry -(importlib)-> a style -> settings) would be found."""
    tree = ast.parse('import importlib\nSHIPPED = ("labkit.styles.webhook",)\nimportlib.import_module(SHIPPED[0])\n')
    named, hidden = dynamic_imports(ROOT / "styles" / "registry.py", tree)
    assert named == {"labkit.styles.webhook"} and hidden == []
    graph = import_graph()
    graph["labkit.styles.registry"] = graph["labkit.styles.registry"] | named
    graph["labkit.config"] = graph["labkit.config"] | {"labkit.styles.registry"}
    assert any("labkit.config" in group for group in import_cycles(graph))
    built = ast.parse('import importlib\nname = "x"\nimportlib.import_module(f"labkit.{name}")\n')
    assert dynamic_imports(ROOT / "x.py", built)[1] == ["labkit/x.py:3"]


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert import_cycles(graph) == [["a", "b", "c"]]


def test_the_readme_test_command_is_what_ci_runs() -> None:
    """The README promises `.ci/run` runs exactly its test command; keep the two in step."""
    repo = ROOT.parent
    ci = [line for line in (repo / ".ci" / "run").read_text().splitlines() if line and not line.startswith(("#", "set ", "cd "))]
    assert len(ci) == 1
    assert f"```bash\n{ci[0]}\n```" in (repo / "README.md").read_text()
    for check in ("ruff check", "ruff format --check", "mypy", "lint-imports", "python -m pytest"):
        assert check in ci[0]
