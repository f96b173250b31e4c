"""The project's layout rules, read from the source: the import graph, module sizes, what is installed."""

from __future__ import annotations

import ast
import functools
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("curate", "sad", "bsrnn", "pipelines", "reports")


@functools.cache
def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the installed packages."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path) -> set[str]:
    """Modules of the project that ``name`` imports anywhere (module level or inside functions), as the
    dotted names of the modules they resolve to (``from curate.data import schema`` -> ``curate.data.schema``)."""
    mods = _modules()
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            # importlib.import_module("pipelines.cli"): an import all the same
            arg = node.args[0] if node.args else None
            if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                continue
            targets = [arg.value]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the module's package
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for target in targets:
            if target.split(".")[0] not in PACKAGES + ("tests",):
                continue
            while target and target not in mods and target.split(".")[0] != "tests":
                target = target.rpartition(".")[0]
            found.add(target)
    return found


def _reach(start: str, graph: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for m in graph.get(todo.pop(), ()):
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return seen


def test_the_import_graph_has_no_forbidden_arrow():
    """curate never depends on training code, not even through reports; the model and SAD packages stand alone."""
    mods = _modules()
    graph = {name: _imports(name, path) for name, path in mods.items()}
    forbidden = {"sad": set(PACKAGES) - {"sad"}, "bsrnn": set(PACKAGES) - {"bsrnn"}, "curate": {"pipelines"}}
    wrong = []
    for name in mods:
        top = name.split(".")[0]
        bad = {m for m in _reach(name, graph) if m.split(".")[0] in forbidden.get(top, set()) | {"tests"}}
        if bad:
            wrong.append(f"{name} reaches {', '.join(sorted(bad))}")
    assert not wrong, "\n".join(wrong)


CURATE_LAYERS = ("curate.common", "curate.data", "curate.scoring", "curate.simulate")
"""curate's sub-packages, lowest first: each may import those before it, never those after it nor the
commands on top (``curate.scan``, ``curate.scantrack``, ``curate.reference``, ``curate.cli``, ...)."""


def test_curate_sub_packages_import_only_downwards():
    mods = _modules()
    wrong = []
    for name, path in mods.items():
        layer = next((i for i, p in enumerate(CURATE_LAYERS) if name == p or name.startswith(p + ".")), None)
        if layer is None:
            continue
        for m in _imports(name, path):
            if not m.startswith("curate.") or m == "curate":
                continue
            other = next((i for i, p in enumerate(CURATE_LAYERS) if m == p or m.startswith(p + ".")), None)
            if other is None or other > layer:
                wrong.append(f"{name} imports {m}")
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_imports_inside_functions(tmp_path):
    # the graph test must not pass by missing lazy imports or from-imports of modules
    f = tmp_path / "m.py"
    f.write_text(
        "def f():\n    from pipelines.runs import RunDir\n    from bsrnn import model\n    from . import scan\n"
        "    importlib.import_module('reports.run')\n"
    )
    assert _imports("curate.m", f) == {"pipelines.runs", "bsrnn", "bsrnn.model", "curate", "curate.scan", "reports.run"}
    graph = {"curate.a": {"reports.b"}, "reports.b": {"pipelines.c"}}
    assert _reach("curate.a", graph) == {"reports.b", "pipelines.c"}


@pytest.mark.parametrize("limit", [420])
def test_no_module_is_over_about_400_lines(limit):
    long = {n: len(p.read_text().splitlines()) for n, p in _modules().items()}
    assert not {n: k for n, k in long.items() if k > limit}


def test_tests_are_not_installed_and_every_package_is():
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    include = cfg["include"]
    assert not any(fnmatch("tests", p) or fnmatch("tests.curate", p) for p in include)
    for name in _modules():
        assert any(fnmatch(name, p) for p in include), name


def test_the_readme_import_paths_still_work():
    """Every import line of the Python examples of the README and of ``docs/*.md`` runs as written, and the
    paths the README showed before the modules moved into sub-packages (``curate.datasets``,
    ``curate.schema``) still work."""
    import re

    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    blocks = [b for page in pages for b in re.findall(r"```python\n(.*?)```", page.read_text(), re.S)]
    lines = [
        ln.strip()
        for b in blocks
        for ln in b.splitlines()
        if re.match(r"\s*(from|import) (" + "|".join(PACKAGES) + r")\b", ln)
    ]
    assert any("discover" in ln for ln in lines) and any("read_manifest" in ln for ln in lines)
    lines += ["from curate.datasets import discover", "from curate.schema import read_manifest"]
    for line in lines:
        exec(line, {})
    import curate.data.datasets
    import curate.datasets

    assert curate.datasets is curate.data.datasets  # an alias, not a copy
