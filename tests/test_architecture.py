"""The layering, enforced: import-linter's contracts in pyproject.toml ([tool.importlinter]),
and a check that the import graph of `reconciler` has no circle.

The contracts say, with no exception list:
- layers: front ends (cli; api, github, preview, demo) > engine > views (render, board,
  status) > apply, planfile, verify > apply's parts (dub_work, runtime, section_store,
  results; recording, pay_once) > the
  planner > its parts (master, adoption, removal) > the plan's data > observe > the state
  index > seams > the seams' pure halves > data. A module never imports one above it, and
  every module has its layer;
- pure-planner: `planner`, its parts and `plan` import no I/O (boto3, httpx, subprocess,
  sockets, a store, a seam);
- front-ends: cli, api, github and demo import neither apply nor a seam: they go through the
  engine, its views and its models;
- seam-users: apply (with dub_work) and observe reach the world only through the seams they
  are handed (no ffmpeg, fetcher, store, CDN or dubbing implementation, lock or git of their
  own).

Every import counts: function-level ones and those under TYPE_CHECKING too. Each contract is
shown to fail on a synthetic violation (one bad import added to a copy of the package).
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "reconciler"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    """`lint-imports` on the package and pyproject.toml under `root` (only `contracts`, if
    given): exit 0 when every contract is kept."""
    args = [str(LINT_IMPORTS), "--no-cache", "--no-logo",
            *(arg for c in contracts for arg in ("--contract", c))]
    return subprocess.run(args, cwd=root, env={"PYTHONPATH": str(root), "PATH": ""},
                          capture_output=True, text=True, timeout=120)


def function_level(module: str) -> set[int]:
    """Line numbers of the imports made inside a function of `module` (run when called)."""
    path = PACKAGE.joinpath(*module.split(".")[1:])
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.lineno for func in ast.walk(tree)
            if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef)
            for node in ast.walk(func) if isinstance(node, ast.Import | ast.ImportFrom)}


def is_factory_import(graph: grimp.ImportGraph, importer: str, imported: str) -> bool:
    """A seam package's factory picking one of its own implementations when called
    (`store.open_store` importing `store.s3`, whose module imports the Protocol from the
    package): the shape of every seam, and no circle at import time, so not counted."""
    if not imported.startswith(importer + "."):
        return False
    lines = {d["line_number"] for d in graph.get_import_details(importer=importer,
                                                                 imported=imported)}
    return bool(lines) and lines <= function_level(importer)


def circles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Every strongly connected set of more than one module of `reconciler` (each a circle or
    several), by Tarjan's algorithm over the direct imports."""
    edges = {m: sorted(i for i in graph.find_modules_directly_imported_by(m)
                       if i.startswith("reconciler") and not is_factory_import(graph, m, i))
             for m in graph.modules if m.startswith("reconciler")}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in edges[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return found


def package_graph() -> grimp.ImportGraph:
    return grimp.build_graph("reconciler", cache_dir=None)


def test_the_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


def test_every_module_has_its_layer():
    """A module the layers do not name is not constrained by them: a new one must be placed."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    layers = next(c for c in config["tool"]["importlinter"]["contracts"] if c["id"] == "layers")
    named = {m.strip() for layer in layers["layers"] for m in layer.split("|")}
    top = {f"reconciler.{p.stem if p.is_file() else p.name}" for p in PACKAGE.iterdir()
           if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert top - named == set()


def test_the_import_graph_has_no_circle():
    assert circles(package_graph()) == []


def test_a_circle_is_found():
    """engine -> planfile -> render -> engine was one: planfile borrowed its codec from the
    views, and render named the engine's Outcome."""
    graph = package_graph()
    graph.add_import(importer="reconciler.planfile", imported="reconciler.render")
    graph.add_import(importer="reconciler.render", imported="reconciler.engine")
    assert ["reconciler.engine", "reconciler.planfile", "reconciler.render"] in circles(graph)



def test_only_a_factory_s_import_of_its_own_implementation_is_not_a_circle():
    """store/__init__.py imports store.s3 inside open_store; the same import at module level
    (line 1) would be a circle at import time, and is one."""
    assert is_factory_import(package_graph(), "reconciler.store", "reconciler.store.s3")
    graph = package_graph()
    graph.add_import(importer="reconciler.store", imported="reconciler.store.s3",
                     line_number=1, line_contents="from .s3 import S3Store")
    assert ["reconciler.store", "reconciler.store.s3"] in [
        [m for m in c if m in ("reconciler.store", "reconciler.store.s3")] for c in circles(graph)]


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("engine", "from . import cli", "layers"),
    ("observe", "from . import engine", "layers"),
    ("state", "from . import apply", "layers"),
    ("apply", "from . import samples", "layers"),
    ("render", "from .engine import Reconciler", "layers"),
    ("layout", "from . import hls", "layers"),  # data siblings are independent
    ("plan", "import boto3", "pure-planner"),
    ("plan", "from .store import Store", "pure-planner"),  # the layers allow it; I/O is not
    ("plan", "import subprocess", "pure-planner"),
    ("planner", "from .store import Store", "pure-planner"),
    ("planner", "from . import apply", "layers"),
    ("master", "from . import planner", "layers"),
    ("removal", "from .store import Store", "pure-planner"),
    ("plan", "from . import planner", "layers"),
    ("dub_work", "from . import apply", "layers"),
    ("cli", "from . import apply", "front-ends"),
    ("api.service", "from .. import git", "front-ends"),
    ("github.workflow", "from .. import gitscope", "front-ends"),
    ("apply", "from .packager import ffmpeg", "seam-users"),
    ("observe", "from .packager.ffmpeg import FfmpegPackager", "seam-users"),
    ("planner", "from .packager.ffmpeg import probe", "pure-planner"),
    ("dub_work", "from .dubbing.elevenlabs import ElevenLabs", "seam-users"),
    ("observe", "from .store.s3 import S3Store", "seam-users"),
    ("apply", "from .dubbing.elevenlabs import ElevenLabs", "seam-users"),
    ("observe", "from .inputs.reader import InputReader", "seam-users"),
])
def test_a_synthetic_violation_breaks_its_contract(tmp_path: Path, module: str, line: str,
                                                   contract: str):
    shutil.copytree(PACKAGE, tmp_path / "reconciler",
                    ignore=shutil.ignore_patterns("__pycache__", "static"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    path = tmp_path.joinpath("reconciler", *module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")
    result = lint_imports(tmp_path, contract)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 broken" in result.stdout
    importer = f"reconciler.{module}"
    assert importer in result.stdout, result.stdout  # the report names the importer


def test_the_cli_starts_without_the_http_libraries():
    """httpx and httpcore (a fifth of a second of every start) load only when something talks
    HTTP: an https input (transport.py), a dub, verify, GitHub. A local or S3 run never does."""
    code = ("import sys, reconciler.cli; "
            "print(sorted(m for m in ('httpx', 'httpcore', 'reconciler.transport') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=PACKAGE.parent)
    assert out.stdout.strip() == "[]"
