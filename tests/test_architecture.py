"""The layering, enforced over `ast` imports (every import statement, function-level ones too):

- `plan` (the plan's data) and `planner` (a pure function) import no I/O module;
- the data modules (`manifest`, `layout`, `hls`, `mp4`) import nothing of apply, engine or the
  front ends;
- the front ends (`cli`, `api`, `github`, `preview`) import the library through `engine`, the
  views and the models only: never `apply`, never a seam (store, CDN, media, sources, lock,
  git), never a `_private` name of `observe` or `plan`. Each may import its own package;
- `apply` and `observe` reach the outside world only through the seams they are handed
  (`apply.Runtime`, `observe`'s arguments): of an I/O module they import nothing but the seam's
  Protocol and the types that cross it (SEAM_TYPES), never a function or class that does I/O.

Two narrow rules say where a front end honestly needs more, and why:

- `cli` starts the front ends it offers as commands: `reconcile serve` imports `api`,
  `reconcile preview` imports `preview`, and `reconcile demo` imports `demo` (a scripted engine
  run over generated sample media). No other front end imports another one.
- `preview` imports `reconciler.store` (the Store protocol and StoreError, not an
  implementation): it stands in for CloudFront, serving a store's objects read-only over HTTP,
  so the store is what it serves, not a library it drives.

There is no exception list: the code follows these rules, and a new forbidden import fails the
test (the synthetic violations below prove the checker sees each kind).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "reconciler"

IO_MODULES = ("reconciler.store", "reconciler.media", "reconciler.inputs", "reconciler.dubbing",
              "reconciler.cdn", "reconciler.sources", "reconciler.transport", "reconciler.git",
              "reconciler.gitscope", "reconciler.lock", "boto3", "botocore", "httpx", "subprocess",
              "socket", "urllib.request")
DATA_MODULES = ("reconciler.manifest", "reconciler.layout", "reconciler.hls", "reconciler.mp4")
FRONT_ENDS = ("reconciler.cli", "reconciler.api", "reconciler.github", "reconciler.preview")
ABOVE_DATA = ("reconciler.apply", "reconciler.engine", "reconciler.observe", "reconciler.plan",
              "reconciler.planner", *FRONT_ENDS)
# What a front end may import of the library: the engine, the views, the models (and itself).
FRONT_END_MAY_USE = ("reconciler.engine", "reconciler.render", "reconciler.verify",
                     "reconciler.board", "reconciler.status", "reconciler.progress",
                     "reconciler.redaction",
                     "reconciler.logs",
                     "reconciler.manifest", "reconciler.plan", "reconciler.layout",
                     "reconciler.observe")
PRIVATE_INTERNALS = ("reconciler.observe", "reconciler.plan", "reconciler.planner")
PURE = ("reconciler.plan", "reconciler.planner")  # no I/O: the plan's data and its planner
# The docstring's two narrow rules: (front end, exactly the modules it may import beyond those).
STARTS_FRONT_ENDS = ("reconciler.cli", ("reconciler.api", "reconciler.preview", "reconciler.demo"))
CDN_STAND_IN = ("reconciler.preview", ("reconciler.store",))
SEAM_USERS = ("reconciler.apply", "reconciler.observe")
# What apply/observe may import of an I/O module, each name only as a type: the seam's Protocol
# (annotations), the exceptions its implementations raise (caught by name) and the data it hands
# back. The packager's Protocol, settings and MediaError live in the pure `packaging` module, so
# nothing of `media` (ffmpeg) is allowed; nothing of `sources`, `cdn`, `lock`, `store.s3`, ...
SEAM_TYPES = {
    "reconciler.store": {"Store", "StoreError", "PreconditionFailed", "ObjectInfo"},
    "reconciler.inputs": {"Inputs", "InputError", "InputState"},
    "reconciler.dubbing": {"Dubber", "DubbingError"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(module: str) -> set[tuple[str, str]]:
    """(imported module, name or "") for every import in `module`, relative ones resolved."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[tuple[str, str]] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {(alias.name, "") for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, node.module] if node.module else parts)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add((sub, "") if sub in MODULES else (base, alias.name))
    return found


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def front_end_may_import(module: str, imported: str) -> bool:
    """The front-end rule with its two narrow extensions (see the docstring)."""
    own = next(f for f in FRONT_ENDS if under(module, (f,)))
    if under(imported, (own,)) or imported == "reconciler":  # itself, __version__
        return True
    return any(module == who and imported in allowed
               for who, allowed in (STARTS_FRONT_ENDS, CDN_STAND_IN))


def seam_import_allowed(imported: str, name: str) -> bool:
    """May apply/observe import `name` of `imported` ("" for the whole module)?"""
    return not under(imported, IO_MODULES) or name in SEAM_TYPES.get(imported, ())


def violations(found: Mapping[str, Iterable[tuple[str, str]]]) -> set[tuple[str, str]]:
    """(importer, imported) for every import against the rules, from module -> its imports."""
    bad: set[tuple[str, str]] = set()
    for module, module_imports in found.items():
        for imported, name in module_imports:
            if module in PURE and under(imported, IO_MODULES):
                bad.add((module, imported))
            if module in SEAM_USERS and not seam_import_allowed(imported, name):
                bad.add((module, f"{imported}.{name}" if name else imported))
            if under(module, DATA_MODULES) and under(imported, ABOVE_DATA):
                bad.add((module, imported))
            if (under(module, FRONT_ENDS) and imported.startswith("reconciler")
                    and not front_end_may_import(module, imported)):
                if not under(imported, FRONT_END_MAY_USE):
                    bad.add((module, imported))
                elif under(imported, PRIVATE_INTERNALS) and name.startswith("_"):
                    bad.add((module, f"{imported}.{name}"))
    return bad


def all_violations() -> set[tuple[str, str]]:
    return violations({module: imports(module) for module in MODULES})


def test_layers_hold():
    found = sorted(all_violations())
    assert not found, f"imports against the layering (see this file's docstring): {found}"


@pytest.mark.parametrize(("module", "imported"), [
    ("reconciler.cli", "reconciler.store"),  # open the store through engine
    ("reconciler.cli", "reconciler.lock"),
    ("reconciler.cli", "reconciler.apply"),
    ("reconciler.api.service", "reconciler.git"),  # commit through engine
    ("reconciler.api.service", "reconciler.cdn"),  # name errors through engine
    ("reconciler.api", "reconciler.preview"),  # only cli starts another front end
    ("reconciler.github.workflow", "reconciler.gitscope"),
    ("reconciler.preview", "reconciler.store.s3"),  # the protocol, not an implementation
    ("reconciler.preview", "reconciler.media"),
    ("reconciler.plan", "reconciler.inputs"),
    ("reconciler.plan", "reconciler.media"),
    ("reconciler.planner", "reconciler.store"),
    ("reconciler.apply", "reconciler.media"),  # through the Packager on its Runtime
    ("reconciler.observe", "reconciler.sources"),  # the fetch policy is the Inputs' business
    ("reconciler.layout", "reconciler.engine"),
])
def test_a_new_forbidden_import_is_caught(module: str, imported: str):
    assert violations({module: [(imported, "")]}) == {(module, imported)}


def test_apply_and_observe_import_only_the_seams_types():
    """apply's and observe's imports before the seams (ffmpeg and input fetching called
    directly, the dubber's concrete class, the fetch policy) are each caught; the Protocols and
    exception types they import now are not."""
    before = {"reconciler.apply": [("reconciler.media", ""), ("reconciler.inputs", "fetch"),
                                   ("reconciler.dubbing", "ElevenLabs"),
                                   ("reconciler.sources", "FetchPolicy")],
              "reconciler.observe": [("reconciler.inputs", "identify"),
                                     ("reconciler.store.s3", "S3Store")]}
    assert violations(before) == {
        ("reconciler.apply", "reconciler.media"), ("reconciler.apply", "reconciler.inputs.fetch"),
        ("reconciler.apply", "reconciler.dubbing.ElevenLabs"),
        ("reconciler.apply", "reconciler.sources.FetchPolicy"),
        ("reconciler.observe", "reconciler.inputs.identify"),
        ("reconciler.observe", "reconciler.store.s3.S3Store")}
    now = {module: imports(module) for module in SEAM_USERS}
    assert ("reconciler.inputs", "Inputs") in now["reconciler.apply"]
    assert ("reconciler.dubbing", "Dubber") in now["reconciler.apply"]
    assert violations(now) == set()


def test_private_names_of_plan_and_observe_are_caught():
    assert violations({"reconciler.cli": [("reconciler.observe", "_list_section")]}) == {
        ("reconciler.cli", "reconciler.observe._list_section")}


@pytest.mark.parametrize(("module", "imported"), [
    ("reconciler.cli", "reconciler.api"),  # reconcile serve
    ("reconciler.cli", "reconciler.preview"),  # reconcile preview
    ("reconciler.cli", "reconciler.demo"),  # reconcile demo
    ("reconciler.preview", "reconciler.store"),  # the CDN stand-in serves the store
    ("reconciler.api.service", "reconciler.api.jobs"),  # its own package
    ("reconciler.github.workflow", "reconciler.engine"),
])
def test_the_narrow_rules_allow_exactly_what_they_say(module: str, imported: str):
    assert violations({module: [(imported, "")]}) == set()


def test_the_checker_sees_relative_and_function_level_imports():
    """The rules are only as good as the import reading: `from .preview import serve` inside a
    function of cli, and `from .. import engine` in the api package, are both seen."""
    assert ("reconciler.preview", "serve") in imports("reconciler.cli")  # in a function
    assert ("reconciler.engine", "") in imports("reconciler.api.service")
    assert ("reconciler.engine", "") in imports("reconciler.github.workflow")


def test_the_cli_starts_without_the_http_libraries():
    """httpx and httpcore (a fifth of a second of every start) load only when something talks
    HTTP: an https input (transport.py), a dub, verify, GitHub. A local or S3 run never does."""
    code = ("import sys, reconciler.cli; "
            "print(sorted(m for m in ('httpx', 'httpcore', 'reconciler.transport') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=PACKAGE.parent)
    assert out.stdout.strip() == "[]"
