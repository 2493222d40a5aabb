"""The layering the package promises: ``config`` (the one home of every option's choices)
imports no torch, so ``isograph-gpu --help`` stays light; ``ops`` imports no pandas,
pyarrow, matplotlib, click or captum; every user of a choice takes it from config; and the
package's import graph has no circle and no upward import (docs/ARCHITECTURE.md's layers,
walked statically with ast)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers import paths

ROOT = paths.REPO
HEAVY = ("torch", "pandas", "pyarrow", "matplotlib", "click", "captum")


def _imported_after(statement: str) -> set[str]:
    code = (f"import sys; {statement}; "
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return set(out.stdout.split())


def test_config_and_the_cli_help_import_no_torch():
    assert _imported_after("import isograph_gpu.config") == set()
    assert "torch" not in _imported_after(
        "from isograph_gpu.cli import main; main(['--help'], standalone_mode=False)")


def test_ops_imports_only_torch():
    assert _imported_after("import isograph_gpu.ops") == {"torch"}


@pytest.mark.parametrize("command", ["explain-module", "plot"])
def test_cli_format_choices_are_configs(command):
    from isograph_gpu.cli import main
    from isograph_gpu.config import PLOT_FORMATS

    option = next(p for p in main.commands[command].params if p.name == "output_format")
    assert tuple(option.type.choices) == PLOT_FORMATS


def test_each_choice_tuple_has_one_home():
    from isograph_gpu import config
    from isograph_gpu.attribution import integrated_gradients
    from isograph_gpu.ops import fdr
    from isograph_gpu.plots import render, style

    assert fdr.FDR_METHODS is config.FDR_METHODS
    assert integrated_gradients.IG_BASELINES is config.IG_BASELINES
    assert style.PLOT_FORMATS is render.PLOT_FORMATS is config.PLOT_FORMATS


# --- the import graph: no circle, no upward import (docs/ARCHITECTURE.md's layers) -------



def module_name(path: Path, root: Path) -> str:
    """``pkg.sub.mod`` of the file ``path`` under ``root`` (a package's ``__init__.py``
    is the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_statements(path: Path) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement of the file ``path``, at module level or inside functions,
    except those under ``if TYPE_CHECKING:`` (they never run)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking_only(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.append(child)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def imported_modules(path: Path, name: str, modules: set[str]) -> set[str]:
    """The modules of ``modules`` that the file ``path`` (module ``name``) imports
    (:func:`import_statements`), relative or absolute; ``from a import b`` is the module
    ``a.b`` when that is a module, else ``a``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for statement in import_statements(path):
        if isinstance(statement, ast.Import):
            found.update(alias.name for alias in statement.names)
            continue
        if statement.level:
            base = package.split(".")[: len(package.split(".")) - statement.level + 1]
            source = ".".join([*base, *([statement.module] if statement.module else [])])
        else:
            source = statement.module or ""
        for alias in statement.names:
            found.add(f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules
                      else source)
    return {m for m in found if m in modules and m != name}


def external_imports(path: Path) -> set[str]:
    """Top-level names of the absolute imports of the file ``path`` (``pandas`` for
    ``import pandas.api``)."""
    names = set()
    for statement in import_statements(path):
        if isinstance(statement, ast.Import):
            names.update(alias.name.split(".")[0] for alias in statement.names)
        elif not statement.level and statement.module:
            names.add(statement.module.split(".")[0])
    return names


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, for every module of ``root/package``."""
    paths = {module_name(p, root): p for p in (root / package).rglob("*.py")
             if "__pycache__" not in p.parts}
    return {name: imported_modules(path, name, set(paths)) for name, path in paths.items()}


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or around a circle (the
    strongly connected components of more than one module, Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(circles)


def documented_layers(text: str) -> list[tuple[str, list[str]]]:
    """``(layer, names)`` of the ```layers block, lowest layer first."""
    block = re.search(r"```layers\n(.*?)```", text, re.S)
    assert block, "ARCHITECTURE.md has no ```layers block"
    layers = []
    for line in block.group(1).splitlines():
        layer, sep, names = line.partition(":")
        assert sep and names.split(), f"not 'layer: names': {line!r}"
        layers.append((layer.strip(), names.split()))
    return layers


def layer_of(module: str, package: str, ranks: dict[str, int]) -> int:
    """The rank of ``module``'s top-level name under ``package`` (the root: ``__init__``)."""
    parts = module.split(".")
    return ranks[parts[1] if len(parts) > 1 else "__init__"]


def layering_problems(graph: dict[str, set[str]], package: str,
                      layers: list[tuple[str, list[str]]]) -> dict[str, list[str]]:
    """What keeps ``graph`` from the layering: names without a layer or in two, listed
    names that are not in the package, imports of a higher layer, circles (empty: none)."""
    listed = [name for _, names in layers for name in names]
    ranks = {name: rank for rank, (_, names) in enumerate(layers) for name in names}
    tops = {m.split(".")[1] if "." in m else "__init__" for m in graph}
    problems = {
        "in two layers": sorted({n for n in listed if listed.count(n) > 1}),
        "without a layer": sorted(tops - set(ranks)),
        "not in the package": sorted(set(ranks) - tops),
    }
    if not any(problems.values()):
        names = [name for name, _ in layers]
        problems["upward imports"] = sorted(
            f"{m} ({names[layer_of(m, package, ranks)]}) imports {t} "
            f"({names[layer_of(t, package, ranks)]})"
            for m, targets in graph.items() for t in targets
            if layer_of(t, package, ranks) > layer_of(m, package, ranks))
    problems["import circles"] = [" <-> ".join(c) for c in import_circles(graph)]
    return {what: found for what, found in problems.items() if found}


def test_no_import_circle_and_no_upward_import():
    """Every module of isograph_gpu imports only its own layer and those below
    (docs/ARCHITECTURE.md's ```layers block), and no modules import each other around a
    circle, counting imports inside functions."""
    layers = documented_layers((ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8"))
    assert layering_problems(import_graph(ROOT, "isograph_gpu"), "isograph_gpu", layers) == {}


def test_the_import_walk_catches_circles_and_upward_imports(tmp_path):
    """The walk sees relative, absolute and function-level imports, skips TYPE_CHECKING
    ones, and reports each way the layering can break: a circle through a lazy import, an
    upward import, a module without a layer."""
    files = {
        "__init__.py": "from .top import run\n",
        "top.py": "from .low import base\n\ndef run():\n    from . import mid\n",
        "low/__init__.py": "",
        "low/base.py": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                        "    from ..top import run\n"),
        "low/other.py": "import pkg.low.base\n",
        "mid.py": "def f():\n    from .low.base import x\n",
    }
    for rel, text in files.items():
        (tmp_path / "pkg" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pkg" / rel).write_text(text)
    layers = [("low", ["low"]), ("mid", ["mid"]), ("top", ["top", "__init__"])]
    graph = import_graph(tmp_path, "pkg")
    assert graph == {"pkg": {"pkg.top"}, "pkg.top": {"pkg.low.base", "pkg.mid"},
                     "pkg.low": set(), "pkg.low.base": set(),
                     "pkg.low.other": {"pkg.low.base"}, "pkg.mid": {"pkg.low.base"}}
    assert layering_problems(graph, "pkg", layers) == {}

    (tmp_path / "pkg" / "low" / "base.py").write_text("def g():\n    from ..mid import f\n")
    assert layering_problems(import_graph(tmp_path, "pkg"), "pkg", layers) == {
        "upward imports": ["pkg.low.base (low) imports pkg.mid (mid)"],
        "import circles": ["pkg.low.base <-> pkg.mid"]}
    (tmp_path / "pkg" / "extra.py").write_text("")
    assert layering_problems(import_graph(tmp_path, "pkg"), "pkg", layers) == {
        "without a layer": ["extra"], "import circles": ["pkg.low.base <-> pkg.mid"]}


#: modules that compute on tensors: the strings (ids, tables) are io's work
TENSOR_SIDE = ("ops", "backends", "compute", "engine", "statistics", "distributed", "training")
TABLE_LIBRARIES = {"pandas", "pyarrow", "polars"}


def test_the_tensor_side_imports_no_table_library():
    """ops, backends, the engine, the statistics, Dask tasks and the training-loop
    statistics import no pandas, pyarrow or polars, not even inside a function: io hands
    them integer codes and float arrays (io.gene_codes)."""
    found = {module_name(p, ROOT): sorted(external_imports(p) & TABLE_LIBRARIES)
             for top in TENSOR_SIDE
             for p in sorted([*(ROOT / "isograph_gpu").glob(f"{top}.py"),
                              *(ROOT / "isograph_gpu" / top).rglob("*.py")])}
    assert len(found) > len(TENSOR_SIDE)  # ops/ and backends/ hold several modules
    assert {m: libs for m, libs in found.items() if libs} == {}


@pytest.mark.parametrize(("command", "option", "choices"), [
    ("explain-module", "device", "DEVICES"), ("explain-module", "precision", "PRECISIONS"),
    ("explain-module", "fdr_method", "FDR_METHODS"), ("demo", "device", "DEVICES")])
def test_cli_device_precision_and_fdr_choices_are_configs(command, option, choices):
    from isograph_gpu import config
    from isograph_gpu.cli import main

    param = next(p for p in main.commands[command].params if p.name == option)
    assert tuple(param.type.choices) == getattr(config, choices)
